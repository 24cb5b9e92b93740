//! The `kubernetes_secret` store: the passphrase is one key of a Kubernetes Secret
//! that pods read (an env var from `secretKeyRef`, or a volume).
//!
//! Pods read whatever the Secret holds when they start, so nothing may be written
//! to it before the vault is rotated. The new value is staged in a second Secret
//! no pod references (`<name>-vsync-staged`, with the run id and the value the live
//! key held at staging), from which `resume` reads it back; activation is one JSON
//! merge patch of the live key (and the run-id annotation) under the
//! `resourceVersion` it was read at, so a write that arrives late — an answer that
//! was lost, a request a proxy held until after a retry — can never overwrite a
//! newer change: the API server refuses it with `409 Conflict`
//! (https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md#concurrency-control-and-consistency).
//! A `409` is then decided by reading the Secret back: holding the staged value
//! (or our run id) it was our own earlier write; holding the value it had at
//! staging, someone touched another field and a retry resolves it; anything else
//! is someone else's passphrase and is left alone.
//!
//! Values are compared in memory ([`Passphrase::same_as`]); no message, record or
//! label carries one, nor a digest of one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::Client;
use vsync_orchestrate_api::{
    async_trait, BuildContext, Error, ErrorKind, Finding, Passphrase, Preflight, Result, RunId,
    SecretStore, Severity, Staged, StoreCapabilities, StoreConfig, Target,
};

use crate::error::bounded;
use crate::error::kube_error;
use crate::workload::{check_name, check_namespace};
use crate::RUN_ANNOTATION;

const KIND: &str = "kubernetes_secret";
/// Appended to the live Secret's name for the staged one.
pub const STAGED_SUFFIX: &str = "-vsync-staged";
/// The staged Secret's key holding the new value.
pub const STAGED_VALUE: &str = "value";
/// The staged Secret's key holding what the live key held at staging: how
/// activation tells a Secret someone else changed from one it may write.
pub const STAGED_PREVIOUS: &str = "previous";
/// Labels of the staged Secret, so `kubectl get secret -l` finds leftovers.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
const MANAGER: &str = "vsync-orchestrate";

/// `[[store]] type = "kubernetes_secret"`.
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
pub struct KubernetesSecretConfig {
    /// A kubeconfig file; default: `$KUBECONFIG`, then `~/.kube/config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context; default: its current context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Use the pod's ServiceAccount instead of a kubeconfig.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_cluster: bool,
    /// Required: a plan says where it writes.
    pub namespace: String,
    /// The Secret pods read.
    pub secret: String,
    /// The key of the Secret holding the passphrase (default `VSYNC_PASSPHRASE`).
    #[serde(default = "KubernetesSecretConfig::default_key")]
    pub key: String,
    /// How long one API request may take (default 10 s): a stalled activation
    /// must not hold the window open.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Duration>,
}

impl KubernetesSecretConfig {
    pub const DEFAULT_KEY: &'static str = "VSYNC_PASSPHRASE";
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

    fn default_key() -> String {
        Self::DEFAULT_KEY.to_owned()
    }

    /// A table for `namespace/secret`, every other key at its default.
    pub fn new(namespace: impl Into<String>, secret: impl Into<String>) -> Self {
        KubernetesSecretConfig {
            kubeconfig: None,
            context: None,
            in_cluster: false,
            namespace: namespace.into(),
            secret: secret.into(),
            key: Self::default_key(),
            timeout: None,
        }
    }

    fn cluster_label(&self) -> String {
        crate::connect::cluster_label(
            self.kubeconfig.as_deref(),
            self.context.as_deref(),
            self.in_cluster,
        )
    }

    /// The staged Secret's name.
    pub fn staged_name(&self) -> String {
        format!("{}{STAGED_SUFFIX}", self.secret)
    }
}

/// A Secret data key: "alphanumeric characters, '-', '_' or '.'"
/// (https://kubernetes.io/docs/reference/kubernetes-api/config-and-storage-resources/secret-v1/).
fn check_key(k: &str) -> Result<(), String> {
    let ok = !k.is_empty()
        && k.len() <= 253
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{k:?} is not a Secret key (letters, digits, '-', '_' and '.')"
        ))
    }
}

#[async_trait]
impl StoreConfig for KubernetesSecretConfig {
    fn check(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        if let Err(e) = check_namespace(&self.namespace) {
            out.push(Finding::error(Some("namespace"), e));
        }
        if let Err(e) = check_name(&self.secret) {
            out.push(Finding::error(Some("secret"), e));
        } else if self.staged_name().len() > 253 {
            out.push(Finding::error(
                Some("secret"),
                format!(
                    "the staged copy {:?} would be longer than 253 characters",
                    self.staged_name()
                ),
            ));
        }
        if self.secret.ends_with(STAGED_SUFFIX) {
            out.push(Finding::error(
                Some("secret"),
                format!(
                    "{:?} is a staged copy this store makes, not a Secret pods read",
                    self.secret
                ),
            ));
        }
        if let Err(e) = check_key(&self.key) {
            out.push(Finding::error(Some("key"), e));
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
                "no context: the kubeconfig's current context decides which cluster's \
                 Secret is written; name it with context = \"…\"",
            ));
        }
        if self.timeout.is_some_and(|d| d.is_zero()) {
            out.push(Finding::error(Some("timeout"), "timeout must be positive"));
        }
        out
    }

    /// `kubernetes_secret:CONTEXT/NAMESPACE/SECRET#KEY`.
    fn identity(&self) -> String {
        format!(
            "kubernetes_secret:{}/{}/{}#{}",
            self.cluster_label(),
            self.namespace,
            self.secret,
            self.key
        )
    }

    /// The whole Secret: two tables on two keys of one Secret would share the
    /// staged copy.
    fn targets(&self) -> Vec<String> {
        vec![format!(
            "kubernetes_secret:{}/{}/{}",
            self.cluster_label(),
            self.namespace,
            self.secret
        )]
    }

    /// Offline: the kubeconfig is read, and the cluster contacted, in preflight.
    async fn build(&self, _ctx: &BuildContext) -> Result<Arc<dyn SecretStore>> {
        Ok(Arc::new(KubernetesSecretStore::new(self.clone())?))
    }
}

/// A key of a Kubernetes Secret as a [`SecretStore`].
pub struct KubernetesSecretStore {
    cfg: KubernetesSecretConfig,
    /// Opened on first use, never in `build` (plans build offline).
    client: tokio::sync::OnceCell<Client>,
    /// What this instance staged, and the live Secret's resourceVersion it read
    /// then: activation tries that one conditional patch first, so when nothing
    /// touched the Secret since staging the window is a single request.
    prepared: std::sync::Mutex<Option<Prepared>>,
}

#[derive(Clone)]
struct Prepared {
    run: RunId,
    uid: String,
    live_rv: String,
    value: Passphrase,
}

impl std::fmt::Debug for KubernetesSecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesSecretStore")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// What `Staged::extra` holds, for people reading the journal.
#[derive(serde::Serialize, serde::Deserialize)]
struct Extra {
    secret: String,
    key: String,
    staged_secret: String,
}

fn annotation<'a>(s: &'a Secret, k: &str) -> Option<&'a str> {
    s.metadata.annotations.as_ref()?.get(k).map(String::as_str)
}

/// A label value, when the run id is one (at most 63 characters of
/// `[A-Za-z0-9._-]`, alphanumeric at both ends).
fn label_value(s: &str) -> Option<String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric());
    ok.then(|| s.to_owned())
}

impl KubernetesSecretStore {
    /// Checks the table; opens nothing.
    pub fn new(cfg: KubernetesSecretConfig) -> Result<Self> {
        if let Some(f) = cfg
            .check()
            .into_iter()
            .find(|f| f.severity == Severity::Error)
        {
            return Err(Error::invalid_config(format!(
                "{KIND}{}: {}",
                f.key.map(|k| format!(" {k}")).unwrap_or_default(),
                f.message
            )));
        }
        Ok(KubernetesSecretStore {
            cfg,
            client: tokio::sync::OnceCell::new(),
            prepared: std::sync::Mutex::new(None),
        })
    }

    fn limit(&self) -> Duration {
        self.cfg
            .timeout
            .unwrap_or(KubernetesSecretConfig::DEFAULT_TIMEOUT)
    }

    fn ctx(&self, e: Error) -> Error {
        e.context(format!(
            "{KIND} {}/{}/{}",
            self.cfg.cluster_label(),
            self.cfg.namespace,
            self.cfg.secret
        ))
    }

    /// `-n NS --context CTX`, for the commands messages suggest.
    fn kubectl_args(&self) -> String {
        crate::connect::kubectl_args(&self.cfg.namespace, self.cfg.context.as_deref())
    }

    /// The Role rules this store needs, as YAML a Role's `rules:` takes. `create`
    /// cannot be limited to a name: "You cannot restrict create or
    /// deletecollection requests by their resource name"
    /// (https://kubernetes.io/docs/reference/access-authn-authz/rbac/#referring-to-resources).
    pub fn role_rules(&self) -> String {
        format!(
            "[{{apiGroups: [\"\"], resources: [\"secrets\"], resourceNames: [\"{live}\"], \
             verbs: [\"get\", \"patch\"]}}, {{apiGroups: [\"\"], resources: [\"secrets\"], \
             resourceNames: [\"{staged}\"], verbs: [\"get\", \"delete\"]}}, {{apiGroups: \
             [\"\"], resources: [\"secrets\"], verbs: [\"create\"]}}]",
            live = self.cfg.secret,
            staged = self.cfg.staged_name()
        )
    }

    /// A refusal by RBAC, with the rules that fix it.
    fn with_rules(&self, e: Error) -> Error {
        if e.kind() == ErrorKind::Permission {
            let rules = self.role_rules();
            Error::permission(format!(
                "{}; the Role bound to this identity in namespace {} needs the rules: {rules}",
                e.message(),
                self.cfg.namespace
            ))
        } else {
            e
        }
    }

    async fn client(&self) -> Result<Client> {
        self.client
            .get_or_try_init(|| async {
                let config = crate::connect::load_config(
                    self.cfg.kubeconfig.as_deref(),
                    self.cfg.context.as_deref(),
                    self.cfg.in_cluster,
                )
                .await?;
                Client::try_from(config).map_err(|e| kube_error("client", e))
            })
            .await
            .cloned()
            .map_err(|e| self.ctx(e))
    }

    async fn api(&self) -> Result<Api<Secret>> {
        Ok(Api::namespaced(self.client().await?, &self.cfg.namespace))
    }

    /// A Secret by name; `None` when it does not exist.
    async fn get(&self, name: &str) -> Result<Option<Secret>> {
        let api = self.api().await?;
        bounded(
            &format!("get secret {name}"),
            self.limit(),
            api.get_opt(name),
        )
        .await
        .map_err(|e| self.ctx(self.with_rules(e)))
    }

    async fn live(&self) -> Result<Secret> {
        self.get(&self.cfg.secret).await?.ok_or_else(|| {
            self.ctx(Error::not_found(format!(
                "Secret {} does not exist in namespace {}",
                self.cfg.secret, self.cfg.namespace
            )))
        })
    }

    /// One key's value as text; `None` when the key is absent.
    fn value(&self, s: &Secret, key: &str) -> Result<Option<Passphrase>> {
        let name = s.metadata.name.as_deref().unwrap_or("");
        let Some(b) = s.data.as_ref().and_then(|d| d.get(key)) else {
            return Ok(None);
        };
        let text = String::from_utf8(b.0.clone()).map_err(|_| {
            self.ctx(Error::unsupported(format!(
                "key {key} of Secret {name} is not UTF-8 text, so it cannot be a vsync passphrase"
            )))
        })?;
        Ok(Some(Passphrase::new(text)))
    }

    fn live_value(&self, s: &Secret) -> Result<Passphrase> {
        self.value(s, &self.cfg.key)?.ok_or_else(|| {
            let keys: Vec<&str> = s
                .data
                .as_ref()
                .map(|d| d.keys().map(String::as_str).collect())
                .unwrap_or_default();
            self.ctx(Error::not_found(format!(
                "Secret {} has no key {} (its keys: {})",
                self.cfg.secret,
                self.cfg.key,
                if keys.is_empty() {
                    "none".to_owned()
                } else {
                    keys.join(", ")
                }
            )))
        })
    }

    /// Why this tool will not write the live Secret, if it will not.
    fn refusal(&self, s: &Secret) -> Option<Error> {
        let name = &self.cfg.secret;
        let args = self.kubectl_args();
        if s.immutable == Some(true) {
            // https://kubernetes.io/docs/concepts/configuration/secret/#secret-immutable
            return Some(self.ctx(Error::unsupported(format!(
                "Secret {name} is immutable (immutable: true): the API server refuses any change \
                 of its data, and kubelet never re-reads an immutable Secret for pods already \
                 using it. Recreate it without `immutable` (kubectl {args} get secret {name} -o \
                 yaml, drop `immutable: true`, then kubectl {args} replace --force -f the file) \
                 and restart its pods, or rotate through a store apps read directly"
            ))));
        }
        let owner = s
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.kind == "ExternalSecret");
        if let Some(o) = owner {
            // ESO overwrites the target Secret's data from the provider on every
            // refresh (https://external-secrets.io/latest/api/externalsecret/).
            return Some(self.ctx(Error::unsupported(format!(
                "Secret {name} is owned by ExternalSecret {}: External Secrets Operator \
                 overwrites it from the provider on its next refresh, undoing a rotation written \
                 here. Rotate the provider's secret (its own store type) instead",
                o.name
            ))));
        }
        None
    }

    /// What the RBAC of this identity does not allow, by SelfSubjectAccessReview.
    async fn denied(&self) -> Result<Vec<String>> {
        let client = self.client().await?;
        let ssar: Api<SelfSubjectAccessReview> = Api::all(client);
        let live = self.cfg.secret.clone();
        let staged = self.cfg.staged_name();
        let asks: Vec<(&str, Option<String>)> = vec![
            ("get", Some(live.clone())),
            ("patch", Some(live)),
            ("get", Some(staged.clone())),
            ("delete", Some(staged)),
            ("create", None),
        ];
        let reviews = asks.iter().map(|(verb, name)| {
            let review = SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        namespace: Some(self.cfg.namespace.clone()),
                        verb: Some((*verb).to_owned()),
                        group: Some(String::new()),
                        resource: Some("secrets".to_owned()),
                        name: name.clone(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            };
            let ssar = ssar.clone();
            let limit = self.limit();
            async move {
                bounded(
                    "SelfSubjectAccessReview",
                    limit,
                    ssar.create(&PostParams::default(), &review),
                )
                .await
            }
        });
        let answers = futures_util::future::join_all(reviews).await;
        let mut denied = Vec::new();
        for ((verb, name), answer) in asks.iter().zip(answers) {
            let r = answer?;
            if !r.status.is_some_and(|s| s.allowed) {
                denied.push(match name {
                    Some(n) => format!("{verb} secrets {n}"),
                    None => format!("{verb} secrets"),
                });
            }
        }
        Ok(denied)
    }

    /// The staged Secret, checked to be the one `staged` records.
    async fn staged_secret(&self, staged: &Staged) -> Result<Secret> {
        let name = self.cfg.staged_name();
        let gone = || {
            self.ctx(Error::not_found(format!(
                "the staged Secret {name} of run {} is gone (discarded, tidied or replaced)",
                staged.run
            )))
        };
        let s = self.get(&name).await?.ok_or_else(gone)?;
        if s.metadata.uid.as_deref() != Some(staged.version.as_str())
            || annotation(&s, RUN_ANNOTATION) != Some(staged.run.as_str())
        {
            return Err(gone());
        }
        Ok(s)
    }

    fn staged_value(&self, s: &Secret, what: &str) -> Result<Passphrase> {
        self.value(s, what)?.ok_or_else(|| {
            self.ctx(Error::failed(format!(
                "the staged Secret {} has no key {what}: it was edited by hand",
                self.cfg.staged_name()
            )))
        })
    }

    /// Deletes the staged Secret, only the copy with `uid`; gone already is done.
    async fn delete_staged(&self, uid: &str) -> Result<()> {
        let api = self.api().await?;
        let name = self.cfg.staged_name();
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(uid.to_owned()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match bounded(
            &format!("delete secret {name}"),
            self.limit(),
            api.delete(&name, &dp),
        )
        .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            // Another copy under the same name (another run's): not ours to delete.
            Err(e) if e.kind() == ErrorKind::Conflict => Ok(()),
            Err(e) => Err(self.ctx(self.with_rules(e))),
        }
    }

    /// Whether the live Secret shows run `run` activated: the annotation our
    /// activation patch sets together with the value.
    fn activated_by(live: &Secret, run: &RunId) -> bool {
        annotation(live, RUN_ANNOTATION) == Some(run.as_str())
    }

    fn remember(&self, run: &RunId, uid: &str, live_rv: Option<&str>, value: &Passphrase) {
        let prepared = live_rv.map(|rv| Prepared {
            run: run.clone(),
            uid: uid.to_owned(),
            live_rv: rv.to_owned(),
            value: value.clone(),
        });
        *self.prepared.lock().unwrap_or_else(|e| e.into_inner()) = prepared;
    }

    /// The one write of activation: a JSON merge patch (RFC 7386) of the key and
    /// the run-id annotation, with `metadata.resourceVersion` in the body as the
    /// precondition the API server checks before applying it. Errors unwrapped,
    /// so the caller can tell a `409` from the rest.
    async fn patch_live(&self, run: &RunId, new: &Passphrase, rv: &str) -> Result<()> {
        let value = serde_json::to_value(ByteString(new.expose().as_bytes().to_vec()))
            .map_err(|e| Error::failed(format!("encoding the value: {e}")))?;
        let patch = serde_json::json!({
            "metadata": {
                "resourceVersion": rv,
                "annotations": { RUN_ANNOTATION: run.as_str() },
            },
            "data": { self.cfg.key.as_str(): value },
        });
        let api = self.api().await?;
        bounded(
            &format!("patch secret {}", self.cfg.secret),
            self.limit(),
            api.patch(
                &self.cfg.secret,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            ),
        )
        .await
        .map(|_| ())
    }

    /// A failed patch other than a `409`: made immutable after preflight (`422
    /// Invalid`, "field is immutable") is the preflight refusal; RBAC gets the rules.
    async fn patch_failure(&self, err: Error) -> Error {
        if err.kind() == ErrorKind::InvalidConfig {
            if let Some(refusal) = self.live().await.ok().and_then(|l| self.refusal(&l)) {
                return refusal;
            }
        }
        self.ctx(self.with_rules(err))
    }

    /// Activation from what the cluster holds now: a fresh instance (`resume`),
    /// or a Secret that changed since staging.
    async fn activate_by_reading(&self, staged: &Staged) -> Result<()> {
        let live = self.live().await?;
        if Self::activated_by(&live, &staged.run) {
            return Ok(()); // a retry whose first answer was lost, or a resume
        }
        if let Some(e) = self.refusal(&live) {
            return Err(e);
        }
        let s = self.staged_secret(staged).await?;
        let new = self.staged_value(&s, STAGED_VALUE)?;
        let previous = self.staged_value(&s, STAGED_PREVIOUS)?;
        let now = self.live_value(&live)?;
        if now.same_as(&new) {
            return Ok(()); // activated by hand, with the printed command
        }
        let changed = || {
            self.ctx(Error::conflict(format!(
                "key {} of Secret {} was changed by someone else since run {} staged (it holds \
                 neither the value it had then nor the staged one); it was not overwritten",
                self.cfg.key, self.cfg.secret, staged.run
            )))
        };
        if !now.same_as(&previous) {
            return Err(changed());
        }
        let rv = live.metadata.resource_version.clone().unwrap_or_default();
        let sent = self.patch_live(&staged.run, &new, &rv).await;
        let err = match sent {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        match err.kind() {
            ErrorKind::Conflict => {
                // The Secret changed after it was read: find out by whom.
                let back = self.live().await?;
                if Self::activated_by(&back, &staged.run) || self.live_value(&back)?.same_as(&new) {
                    return Ok(()); // our own earlier write, whose answer was lost
                }
                if self.live_value(&back)?.same_as(&previous) {
                    return Err(self.ctx(
                        Error::conflict(format!(
                            "Secret {} changed (another field) between reading and patching \
                             it; read again and retry",
                            self.cfg.secret
                        ))
                        .retryable(),
                    ));
                }
                Err(changed())
            }
            _ => Err(self.patch_failure(err).await),
        }
    }

    fn record(&self, run: &RunId, uid: String, live_rv: Option<String>) -> Staged {
        Staged {
            target: self.describe(),
            run: run.clone(),
            version: uid,
            previous: live_rv,
            extra: serde_json::to_value(Extra {
                secret: self.cfg.secret.clone(),
                key: self.cfg.key.clone(),
                staged_secret: self.cfg.staged_name(),
            })
            .unwrap_or_default(),
        }
    }

    /// A staged Secret left by another run: refused unless that run's activation
    /// is what the live Secret shows (only its tidy is missing).
    fn stale(&self, live: &Secret, staged: &Secret) -> Option<Error> {
        let run = annotation(staged, RUN_ANNOTATION).unwrap_or("an unknown run");
        if annotation(live, RUN_ANNOTATION) == Some(run) {
            return None;
        }
        Some(self.ctx(Error::conflict(format!(
            "Secret {} holds a passphrase staged by run {run}, which did not finish. Run \
             `vsync-orchestrate resume PLAN` to finish that run, or `vsync-orchestrate run \
             --clean-stale PLAN` to delete the staged copy first",
            self.cfg.staged_name()
        ))))
    }
}

#[async_trait]
impl SecretStore for KubernetesSecretStore {
    /// Both the live and the staged value can be read back.
    fn capabilities(&self) -> StoreCapabilities {
        StoreCapabilities::ALL
    }

    fn describe(&self) -> Target {
        Target::new(
            KIND,
            format!(
                "{}/{}/{}#{}",
                self.cfg.cluster_label(),
                self.cfg.namespace,
                self.cfg.secret,
                self.cfg.key
            ),
        )
    }

    async fn preflight(&self) -> Result<Preflight> {
        let live = self.live().await?;
        if let Some(e) = self.refusal(&live) {
            return Err(e);
        }
        let current = self.live_value(&live)?;
        let mut warnings = Vec::new();
        match self.denied().await {
            Ok(d) if d.is_empty() => {}
            Ok(d) => {
                return Err(self.ctx(Error::permission(format!(
                    "RBAC in namespace {} does not allow: {}; the Role bound to this identity \
                     needs the rules: {}",
                    self.cfg.namespace,
                    d.join(", "),
                    self.role_rules()
                ))))
            }
            Err(e) => warnings.push(format!("could not check RBAC ({})", e.message())),
        }
        if let Some(staged) = self.get(&self.cfg.staged_name()).await? {
            if let Some(e) = self.stale(&live, &staged) {
                return Err(e);
            }
            warnings.push(format!(
                "Secret {} is a finished run's staged copy (its tidy did not run); staging \
                 replaces it",
                self.cfg.staged_name()
            ));
        }
        if current.expose().ends_with(['\n', '\r', ' ', '\t']) {
            warnings.push(format!(
                "key {} ends with whitespace (a newline from `--from-file`?): apps reading it \
                 from an env var get it as part of the passphrase; the new value has none",
                self.cfg.key
            ));
        }
        Ok(Preflight {
            detail: format!(
                "Secret {}/{} key {} (resourceVersion {})",
                self.cfg.namespace,
                self.cfg.secret,
                self.cfg.key,
                live.metadata.resource_version.as_deref().unwrap_or("?")
            ),
            warnings,
            current: Some(current),
        })
    }

    async fn read_current(&self) -> Result<Option<Passphrase>> {
        let live = self.live().await?;
        Ok(Some(self.live_value(&live)?))
    }

    async fn stage(&self, new: &Passphrase, run: &RunId) -> Result<Staged> {
        let live = self.live().await?;
        if let Some(e) = self.refusal(&live) {
            return Err(e);
        }
        let current = self.live_value(&live)?;
        let name = self.cfg.staged_name();
        let rv = live.metadata.resource_version.clone();
        // Twice: a create that met a copy (a lost answer, another run) looks again.
        for _ in 0..2 {
            if let Some(existing) = self.get(&name).await? {
                if annotation(&existing, RUN_ANNOTATION) == Some(run.as_str()) {
                    let held = self.staged_value(&existing, STAGED_VALUE)?;
                    if !held.same_as(new) {
                        return Err(self.ctx(Error::conflict(format!(
                            "Secret {name} holds another passphrase staged by this run ({run}); \
                             `vsync-orchestrate resume PLAN` finishes the run with it"
                        ))));
                    }
                    let uid = existing.metadata.uid.clone().unwrap_or_default();
                    self.remember(run, &uid, rv.as_deref(), new);
                    return Ok(self.record(run, uid, rv));
                }
                if let Some(e) = self.stale(&live, &existing) {
                    return Err(e);
                }
                let uid = existing.metadata.uid.clone().unwrap_or_default();
                self.delete_staged(&uid).await?;
            }
            let mut labels = BTreeMap::from([(MANAGED_BY.to_owned(), MANAGER.to_owned())]);
            if let Some(v) = label_value(run.as_str()) {
                labels.insert(RUN_ANNOTATION.to_owned(), v);
            }
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(self.cfg.namespace.clone()),
                    labels: Some(labels),
                    annotations: Some(BTreeMap::from([
                        (RUN_ANNOTATION.to_owned(), run.as_str().to_owned()),
                        (
                            "vsync-orchestrate/staged-for".to_owned(),
                            format!("{}#{}", self.cfg.secret, self.cfg.key),
                        ),
                    ])),
                    ..Default::default()
                },
                type_: Some("Opaque".to_owned()),
                data: Some(BTreeMap::from([
                    (
                        STAGED_VALUE.to_owned(),
                        ByteString(new.expose().as_bytes().to_vec()),
                    ),
                    (
                        STAGED_PREVIOUS.to_owned(),
                        ByteString(current.expose().as_bytes().to_vec()),
                    ),
                ])),
                ..Default::default()
            };
            let api = self.api().await?;
            match bounded(
                &format!("create secret {name}"),
                self.limit(),
                api.create(&PostParams::default(), &secret),
            )
            .await
            {
                Ok(created) => {
                    let uid = created.metadata.uid.unwrap_or_default();
                    self.remember(run, &uid, rv.as_deref(), new);
                    return Ok(self.record(run, uid, rv));
                }
                // AlreadyExists: an earlier attempt's create landed, or a racer's.
                Err(e) if e.kind() == ErrorKind::Conflict => continue,
                Err(e) => return Err(self.ctx(self.with_rules(e))),
            }
        }
        Err(self.ctx(
            Error::conflict(format!(
                "Secret {name} keeps being created by someone else while staging"
            ))
            .retryable(),
        ))
    }

    async fn read_staged(&self, staged: &Staged) -> Result<Passphrase> {
        let s = self.staged_secret(staged).await?;
        self.staged_value(&s, STAGED_VALUE)
    }

    async fn activate(&self, staged: &Staged) -> Result<()> {
        let prepared = self
            .prepared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .filter(|p| p.run == staged.run && p.uid == staged.version);
        if let Some(p) = prepared {
            match self.patch_live(&staged.run, &p.value, &p.live_rv).await {
                Ok(()) => return Ok(()),
                // Changed since staging (or our own write landed): decide by reading.
                Err(e) if e.kind() == ErrorKind::Conflict => {
                    *self.prepared.lock().unwrap_or_else(|e| e.into_inner()) = None;
                }
                Err(e) => return Err(self.patch_failure(e).await),
            }
        }
        self.activate_by_reading(staged).await
    }

    /// The staged copy is deleted once the live Secret shows the activation; before
    /// that it is what `resume` needs, and is kept.
    async fn tidy(&self, staged: &Staged) -> Result<()> {
        let Some(s) = self.get(&self.cfg.staged_name()).await? else {
            return Ok(());
        };
        if s.metadata.uid.as_deref() != Some(staged.version.as_str()) {
            return Ok(()); // another run's copy
        }
        let live = self.live().await?;
        let active = Self::activated_by(&live, &staged.run)
            || match (
                self.value(&live, &self.cfg.key)?,
                self.value(&s, STAGED_VALUE)?,
            ) {
                (Some(a), Some(b)) => a.same_as(&b),
                _ => false,
            };
        if active {
            self.delete_staged(&staged.version).await?;
        }
        Ok(())
    }

    async fn discard(&self, staged: &Staged) -> Result<()> {
        *self.prepared.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let Some(s) = self.get(&self.cfg.staged_name()).await? else {
            return Ok(());
        };
        if s.metadata.uid.as_deref() != Some(staged.version.as_str()) {
            return Ok(()); // not this stage's copy: nothing of ours to undo
        }
        let live = self.live().await?;
        if Self::activated_by(&live, &staged.run) {
            return Err(self.ctx(Error::conflict(format!(
                "run {} already activated the staged passphrase in Secret {}; it cannot be \
                 discarded",
                staged.run, self.cfg.secret
            ))));
        }
        self.delete_staged(&staged.version).await
    }

    async fn clean_stale(&self) -> Result<Option<String>> {
        *self.prepared.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let live = self.live().await?;
        let Some(s) = self.get(&self.cfg.staged_name()).await? else {
            return Ok(None);
        };
        let run = annotation(&s, RUN_ANNOTATION)
            .unwrap_or("an unknown run")
            .to_owned();
        if self.stale(&live, &s).is_none() {
            return Ok(None);
        }
        self.delete_staged(s.metadata.uid.as_deref().unwrap_or_default())
            .await?;
        Ok(Some(format!(
            "deleted Secret {}, staged by unfinished run {run}",
            self.cfg.staged_name()
        )))
    }

    /// kubectl copies the staged value into the live key through a pipe, so the
    /// value is never in a command line.
    fn activate_hint(&self, _staged: &Staged) -> Option<String> {
        let args = self.kubectl_args();
        let template = format!(
            "{{\"data\":{{\"{key}\":\"{{{{index .data \"{STAGED_VALUE}\"}}}}\"}}}}",
            key = self.cfg.key
        );
        Some(format!(
            "kubectl {args} patch secret {live} --type merge --patch-file <(kubectl {args} get \
             secret {staged} -o go-template='{template}')",
            live = self.cfg.secret,
            staged = self.cfg.staged_name(),
        ))
    }
}
