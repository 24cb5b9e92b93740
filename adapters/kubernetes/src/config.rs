//! The plan table `[[restart]] type = "kubernetes"`: keys, static checks, identity.

use crate::workload::{check_name, check_namespace, Kind, WorkloadRef};
use crate::KubernetesRestarter;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use vsync_orchestrate_api::{
    async_trait, BuildContext, Finding, Restarter, RestarterConfig, Result,
};

/// `[[restart]] type = "kubernetes"`.
///
/// Workloads are named by kind (`deployments`, `statefulsets`, `daemonsets`), found
/// by a label `selector`, or listed in ordered `waves` (`"deployment/api"`), each
/// wave restarted only once the one before it has rolled out.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    serde::Deserialize,
    serde::Serialize,
    vsync_orchestrate_api::schemars::JsonSchema,
)]
#[schemars(crate = "vsync_orchestrate_api::schemars")]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// A kubeconfig file; default: `$KUBECONFIG`, then `~/.kube/config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (cluster + user); default: its current context. Naming it
    /// keeps a plan from restarting whatever cluster the operator last switched to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Use the pod's ServiceAccount (the tool running as a CronJob) instead of a
    /// kubeconfig.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_cluster: bool,
    /// Required: a plan says where it acts rather than inheriting a context's default.
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deployments: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statefulsets: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub daemonsets: Vec<String>,
    /// A label selector (`app=shop,tier!=batch`): every Deployment, StatefulSet and
    /// DaemonSet it matches when the restart starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Ordered waves of `TYPE/NAME`; instead of the keys above.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waves: Vec<Vec<String>>,
    /// How long every wave together may take (default 10 minutes).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Duration>,
    /// How often pods of the new template are checked for crash loops (default 5 s).
    #[serde(default = "KubernetesConfig::default_poll", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub poll_interval: Duration,
    /// How long one watch runs before the status is listed afresh (default 60 s): a
    /// watch that silently stops delivering cannot stall the wait.
    #[serde(default = "KubernetesConfig::default_resync", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub resync: Duration,
    /// ExternalSecrets (external-secrets.io, this namespace) that copy the cloud
    /// store's passphrase into the Secret the pods read. The restart force-syncs
    /// each and waits until its target Secret holds a new value before rolling
    /// anything: pods started on the stale Secret would crash-loop until ESO's next
    /// scheduled refresh (1 hour by default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_secrets: Vec<String>,
    /// How long the restart waits for the ExternalSecrets to sync (default 2
    /// minutes); on a timeout nothing is rolled.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub external_secrets_timeout: Option<Duration>,
}

impl KubernetesConfig {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
    pub const DEFAULT_POLL: Duration = Duration::from_secs(5);
    pub const DEFAULT_RESYNC: Duration = Duration::from_secs(60);
    pub const DEFAULT_SYNC_TIMEOUT: Duration = Duration::from_secs(120);

    fn default_poll() -> Duration {
        Self::DEFAULT_POLL
    }

    fn default_resync() -> Duration {
        Self::DEFAULT_RESYNC
    }

    /// A table for `namespace` with every other key at its default.
    pub fn new(namespace: impl Into<String>) -> Self {
        KubernetesConfig {
            kubeconfig: None,
            context: None,
            in_cluster: false,
            namespace: namespace.into(),
            deployments: vec![],
            statefulsets: vec![],
            daemonsets: vec![],
            selector: None,
            waves: vec![],
            timeout: None,
            poll_interval: Self::DEFAULT_POLL,
            resync: Self::DEFAULT_RESYNC,
            external_secrets: vec![],
            external_secrets_timeout: None,
        }
    }

    /// How long the ExternalSecrets may take to sync.
    pub fn sync_timeout(&self) -> Duration {
        self.external_secrets_timeout
            .unwrap_or(Self::DEFAULT_SYNC_TIMEOUT)
    }

    /// The cluster as the identity names it: the context, or where the config comes
    /// from when no context is named.
    pub fn cluster_label(&self) -> String {
        crate::connect::cluster_label(
            self.kubeconfig.as_deref(),
            self.context.as_deref(),
            self.in_cluster,
        )
    }

    /// The named workloads, wave by wave (one wave without `waves`). Invalid
    /// entries are left out here; `check` reports them.
    pub fn named_waves(&self) -> Vec<Vec<WorkloadRef>> {
        if !self.waves.is_empty() {
            return self
                .waves
                .iter()
                .map(|w| {
                    w.iter()
                        .filter_map(|s| WorkloadRef::parse(s).ok())
                        .collect()
                })
                .collect();
        }
        let mut one = Vec::new();
        for (kind, names) in [
            (Kind::Deployment, &self.deployments),
            (Kind::StatefulSet, &self.statefulsets),
            (Kind::DaemonSet, &self.daemonsets),
        ] {
            one.extend(names.iter().map(|n| WorkloadRef::new(kind, n.clone())));
        }
        vec![one]
    }

    /// What the plan names, for messages: `deployment/api, statefulset/db` and the
    /// selector.
    pub fn describe_workloads(&self) -> String {
        let mut parts: Vec<String> = self
            .named_waves()
            .iter()
            .flatten()
            .map(ToString::to_string)
            .collect();
        if let Some(s) = &self.selector {
            parts.push(format!("selector {s}"));
        }
        parts.join(",")
    }
}

fn positive(key: &str, d: Option<Duration>) -> Option<Finding> {
    d.is_some_and(|d| d.is_zero())
        .then(|| Finding::error(Some(key), format!("{key} must be positive")))
}

/// The grammar of a set-based label selector, checked loosely: the API server is
/// the judge, this only catches what is clearly not one.
fn check_selector(s: &str) -> Option<String> {
    if s.trim().is_empty() {
        return Some("selector is empty".into());
    }
    let bad = s.split(',').any(|term| term.trim().is_empty());
    bad.then(|| format!("{s:?} is not a label selector like \"app=shop,tier!=batch\""))
}

#[async_trait]
impl RestarterConfig for KubernetesConfig {
    fn check(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        if let Err(e) = check_namespace(&self.namespace) {
            out.push(Finding::error(Some("namespace"), e));
        }
        if self.in_cluster && (self.context.is_some() || self.kubeconfig.is_some()) {
            out.push(Finding::error(
                Some("in_cluster"),
                "in_cluster uses the pod's ServiceAccount; drop context and kubeconfig",
            ));
        }
        if self.context.as_deref().is_some_and(|c| c.trim().is_empty()) {
            out.push(Finding::error(Some("context"), "context is empty"));
        }
        if !self.in_cluster && self.context.is_none() {
            out.push(Finding::warning(
                Some("context"),
                "no context: the kubeconfig's current context decides which cluster is \
                 restarted; name it with context = \"…\"",
            ));
        }
        for (key, names) in [
            ("deployments", &self.deployments),
            ("statefulsets", &self.statefulsets),
            ("daemonsets", &self.daemonsets),
        ] {
            for n in names {
                if let Err(e) = check_name(n) {
                    out.push(Finding::error(Some(key), e));
                }
            }
        }
        if let Some(e) = self.selector.as_deref().and_then(check_selector) {
            out.push(Finding::error(Some("selector"), e));
        }
        if !self.waves.is_empty() {
            if !(self.deployments.is_empty()
                && self.statefulsets.is_empty()
                && self.daemonsets.is_empty()
                && self.selector.is_none())
            {
                out.push(Finding::error(
                    Some("waves"),
                    "waves names every workload itself (\"deployment/api\"); drop \
                     deployments, statefulsets, daemonsets and selector",
                ));
            }
            for (i, w) in self.waves.iter().enumerate() {
                if w.is_empty() {
                    out.push(Finding::error(
                        Some("waves"),
                        format!("wave {} is empty", i + 1),
                    ));
                }
                for s in w {
                    if let Err(e) = WorkloadRef::parse(s) {
                        out.push(Finding::error(Some("waves"), e));
                    }
                }
            }
        } else if self.deployments.is_empty()
            && self.statefulsets.is_empty()
            && self.daemonsets.is_empty()
            && self.selector.is_none()
        {
            out.push(Finding::error(
                Some("deployments"),
                "name the workloads: deployments, statefulsets, daemonsets, selector or waves",
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for w in self.named_waves().into_iter().flatten() {
            if !seen.insert(w.clone()) {
                out.push(Finding::error(
                    Some(if self.waves.is_empty() {
                        "deployments"
                    } else {
                        "waves"
                    }),
                    format!("{w} is listed twice"),
                ));
            }
        }
        let mut es_seen = std::collections::BTreeSet::new();
        for n in &self.external_secrets {
            if let Err(e) = check_name(n) {
                out.push(Finding::error(Some("external_secrets"), e));
            } else if !es_seen.insert(n) {
                out.push(Finding::error(
                    Some("external_secrets"),
                    format!("externalsecret/{n} is listed twice"),
                ));
            }
        }
        if self.external_secrets.is_empty() && self.external_secrets_timeout.is_some() {
            out.push(Finding::error(
                Some("external_secrets_timeout"),
                "external_secrets_timeout without external_secrets: name the ExternalSecrets \
                 to sync",
            ));
        }
        out.extend(positive("timeout", self.timeout));
        out.extend(positive(
            "external_secrets_timeout",
            self.external_secrets_timeout,
        ));
        out.extend(positive("poll_interval", Some(self.poll_interval)));
        out.extend(positive("resync", Some(self.resync)));
        if self.resync > Duration::from_secs(290) {
            out.push(Finding::error(
                Some("resync"),
                "resync must be at most 290s (the API server ends watches after 5 minutes)",
            ));
        }
        out
    }

    /// `kubernetes:CONTEXT/NAMESPACE:deployment/api,statefulset/db`.
    fn identity(&self) -> String {
        format!(
            "kubernetes:{}/{}:{}",
            self.cluster_label(),
            self.namespace,
            self.describe_workloads()
        )
    }

    /// One per workload (and one for the selector): two tables restarting the same
    /// workload in the same cluster would race; the same name in two clusters is two
    /// targets.
    fn targets(&self) -> Vec<String> {
        let scope = format!("kubernetes:{}/{}", self.cluster_label(), self.namespace);
        let mut out: Vec<String> = self
            .named_waves()
            .iter()
            .flatten()
            .map(|w| format!("{scope}/{w}"))
            .collect();
        if let Some(s) = &self.selector {
            out.push(format!("{scope}/selector/{s}"));
        }
        out
    }

    fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(Self::DEFAULT_TIMEOUT)
    }

    /// Offline: the kubeconfig is read, and the cluster contacted, in preflight.
    async fn build(&self, _ctx: &BuildContext) -> Result<Arc<dyn Restarter>> {
        Ok(Arc::new(KubernetesRestarter::new(self.clone())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vsync_orchestrate_api::Severity;

    fn table(toml_like: serde_json::Value) -> KubernetesConfig {
        serde_json::from_value(toml_like).unwrap()
    }

    fn errors(c: &KubernetesConfig) -> Vec<String> {
        c.check()
            .into_iter()
            .filter(|f| f.severity == Severity::Error)
            .map(|f| format!("{}: {}", f.key.unwrap_or_default(), f.message))
            .collect()
    }

    #[test]
    fn defaults_and_identity() {
        let c = table(serde_json::json!({
            "context": "prod", "namespace": "shop", "deployments": ["api", "worker"],
            "statefulsets": ["db"]
        }));
        assert!(errors(&c).is_empty(), "{:?}", errors(&c));
        assert_eq!(c.poll_interval, KubernetesConfig::DEFAULT_POLL);
        assert_eq!(
            RestarterConfig::timeout(&c),
            KubernetesConfig::DEFAULT_TIMEOUT
        );
        assert_eq!(
            c.identity(),
            "kubernetes:prod/shop:deployment/api,deployment/worker,statefulset/db"
        );
        assert_eq!(
            c.targets(),
            vec![
                "kubernetes:prod/shop/deployment/api",
                "kubernetes:prod/shop/deployment/worker",
                "kubernetes:prod/shop/statefulset/db"
            ]
        );
    }

    #[test]
    fn the_same_name_in_two_clusters_is_two_targets() {
        let a = table(
            serde_json::json!({"context": "east", "namespace": "shop", "deployments": ["api"]}),
        );
        let b = table(
            serde_json::json!({"context": "west", "namespace": "shop", "deployments": ["api"]}),
        );
        assert_ne!(a.targets(), b.targets());
    }

    #[test]
    fn bad_tables_are_refused_with_their_key() {
        let none = table(serde_json::json!({"context": "c", "namespace": "shop"}));
        assert!(
            errors(&none)[0].starts_with("deployments:"),
            "{:?}",
            errors(&none)
        );
        let mixed = table(serde_json::json!({
            "context": "c", "namespace": "shop", "deployments": ["api"],
            "waves": [["deployment/db"], ["deploy/api", "job/x"], []]
        }));
        let e = errors(&mixed).join("\n");
        assert!(e.contains("waves: waves names every workload"), "{e}");
        assert!(e.contains("\"job\" is not deployment"), "{e}");
        assert!(e.contains("wave 3 is empty"), "{e}");
        let incluster = table(serde_json::json!({
            "in_cluster": true, "context": "c", "namespace": "Shop", "deployments": ["api", "api"],
            "resync": "10m"
        }));
        let e = errors(&incluster).join("\n");
        assert!(e.contains("in_cluster:"), "{e}");
        assert!(e.contains("namespace:"), "{e}");
        assert!(e.contains("deployment/api is listed twice"), "{e}");
        assert!(e.contains("resync:"), "{e}");
        let r: std::result::Result<KubernetesConfig, _> =
            serde_json::from_value(serde_json::json!({"namespace": "x", "deployment": ["api"]}));
        assert!(r.unwrap_err().to_string().contains("unknown field"));
    }

    #[test]
    fn external_secrets_are_checked() {
        let c = table(serde_json::json!({
            "context": "c", "namespace": "shop", "deployments": ["api"],
            "external_secrets": ["vsync", "vsync"], "external_secrets_timeout": "0s"
        }));
        let e = errors(&c).join("\n");
        assert!(
            e.contains("external_secrets: externalsecret/vsync is listed twice"),
            "{e}"
        );
        assert!(
            e.contains("external_secrets_timeout: external_secrets_timeout must be positive"),
            "{e}"
        );
        let c = table(serde_json::json!({
            "context": "c", "namespace": "shop", "deployments": ["api"],
            "external_secrets": ["vsync"], "external_secrets_timeout": "90s"
        }));
        assert!(errors(&c).is_empty(), "{:?}", errors(&c));
        assert_eq!(c.sync_timeout(), Duration::from_secs(90));
        assert_eq!(
            KubernetesConfig::new("x").sync_timeout(),
            KubernetesConfig::DEFAULT_SYNC_TIMEOUT
        );
    }

    #[test]
    fn waves_keep_their_order() {
        let c = table(serde_json::json!({
            "context": "c", "namespace": "shop",
            "waves": [["deployment/migrate"], ["deploy/api", "ds/agent"]]
        }));
        assert!(errors(&c).is_empty(), "{:?}", errors(&c));
        let w = c.named_waves();
        assert_eq!(w.len(), 2);
        assert_eq!(w[1][1], WorkloadRef::new(Kind::DaemonSet, "agent"));
        assert_eq!(
            c.identity(),
            "kubernetes:c/shop:deployment/migrate,deployment/api,daemonset/agent"
        );
    }
}
