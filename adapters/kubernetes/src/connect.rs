//! How the restarter and the Secret store reach a cluster: a kubeconfig context or
//! the pod's ServiceAccount, with the client's own retries off.

use std::path::{Path, PathBuf};
use vsync_orchestrate_api::{Error, Result};

/// Which cluster a table acts on, in its identity and messages: the context it
/// names, else the kubeconfig's current one, or `in-cluster`.
pub(crate) fn cluster_label(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
    in_cluster: bool,
) -> String {
    if in_cluster {
        return "in-cluster".to_owned();
    }
    match (context, kubeconfig) {
        (Some(c), _) => c.to_owned(),
        (None, Some(p)) => format!("{}#current-context", p.display()),
        (None, None) => "current-context".to_owned(),
    }
}

/// The `kubectl` flags that reach the same objects (`-n NS [--context C]`), for
/// the commands messages print.
pub(crate) fn kubectl_args(namespace: &str, context: Option<&str>) -> String {
    let mut s = format!("-n {namespace}");
    if let Some(c) = context {
        s.push_str(&format!(" --context {c}"));
    }
    s
}

/// The client configuration for `context` of `kubeconfig` (default: `$KUBECONFIG`,
/// then `~/.kube/config`), or the pod's ServiceAccount with `in_cluster`.
pub(crate) async fn load_config(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
    in_cluster: bool,
) -> Result<kube::Config> {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let mut config = if in_cluster {
        kube::Config::incluster().map_err(|e| {
            Error::invalid_config(format!(
                "in_cluster: not running in a pod with a ServiceAccount token ({e})"
            ))
        })?
    } else {
        let opts = KubeConfigOptions {
            context: context.map(str::to_owned),
            ..Default::default()
        };
        let loaded = match kubeconfig.map(expand_home) {
            Some(path) => {
                let kc = Kubeconfig::read_from(&path).map_err(|e| {
                    Error::invalid_config(format!("kubeconfig {}: {e}", path.display()))
                        .with_next_step(MAKE_KUBECONFIG)
                })?;
                kube::Config::from_custom_kubeconfig(kc, &opts).await
            }
            None => kube::Config::from_kubeconfig(&opts).await,
        };
        loaded.map_err(|e| unusable(kubeconfig, context, &e.to_string()))?
    };
    // Retries are the engine's, by error kind and within its deadlines: the
    // client's own policy would sleep for whatever Retry-After a server names.
    config.default_retry = false;
    Ok(config)
}

/// How a kubeconfig comes to be, for the clusters the examples name.
const MAKE_KUBECONFIG: &str = "aws eks update-kubeconfig --name <cluster> (EKS), gcloud container clusters get-credentials <cluster> (GKE), or set `kubeconfig` in the plan";

/// Why a kubeconfig context cannot be used, said once: where the tool looked (the
/// plan's file, else `$KUBECONFIG`, else `~/.kube/config`), which contexts are
/// there, and the one command that shows or makes them.
fn unusable(kubeconfig: Option<&Path>, context: Option<&str>, why: &str) -> Error {
    use kube::config::Kubeconfig;
    let (looked, read) = match kubeconfig.map(expand_home) {
        Some(path) => (path.display().to_string(), Kubeconfig::read_from(&path)),
        None => (
            match std::env::var("KUBECONFIG") {
                Ok(v) if !v.is_empty() => format!("$KUBECONFIG ({v})"),
                _ => "~/.kube/config".to_owned(),
            },
            Kubeconfig::read(),
        ),
    };
    let names: Vec<String> = read
        .as_ref()
        .map(|kc| kc.contexts.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default();
    let (message, next) = match (context, &read) {
        (_, Err(_)) => (
            format!("no kubeconfig could be read at {looked} ({why})"),
            MAKE_KUBECONFIG.to_owned(),
        ),
        (Some(c), Ok(_)) if !names.iter().any(|n| n == c) => (
            format!(
                "context {c:?} is not in {looked}; it has {}",
                if names.is_empty() {
                    "no contexts".to_owned()
                } else {
                    names.join(", ")
                }
            ),
            "kubectl config get-contexts".to_owned(),
        ),
        (Some(c), Ok(_)) => (
            format!("context {c:?} of {looked} cannot be used: {why}"),
            format!("kubectl --context {c} auth whoami"),
        ),
        (None, Ok(_)) => (
            format!("the current context of {looked} cannot be used: {why}"),
            "kubectl config current-context".to_owned(),
        ),
    };
    Error::invalid_config(format!("kubeconfig: {message}")).with_next_step(next)
}

/// `~/x` as the shell would read it: plans are written by people.
fn expand_home(p: &Path) -> PathBuf {
    match (p.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => Path::new(&home).join(rest),
        _ => p.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE_CONTEXT: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\ncontexts:\n- name: staging\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user:\n    token: t\ncurrent-context: staging\n";

    #[tokio::test]
    async fn a_context_that_is_not_there_names_the_ones_that_are() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, ONE_CONTEXT).unwrap();
        let e = load_config(Some(&path), Some("prod"), false)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), vsync_orchestrate_api::ErrorKind::InvalidConfig);
        assert_eq!(
            e.message(),
            format!(
                "kubeconfig: context \"prod\" is not in {}; it has staging",
                path.display()
            )
        );
        assert_eq!(e.next_step(), Some("kubectl config get-contexts"));
    }

    #[tokio::test]
    async fn a_missing_kubeconfig_says_where_it_looked_and_how_to_make_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope");
        let e = load_config(Some(&path), Some("prod"), false)
            .await
            .unwrap_err();
        assert!(
            e.message()
                .starts_with(&format!("kubeconfig {}: ", path.display())),
            "{}",
            e.message()
        );
        assert!(e.next_step().unwrap().contains("aws eks update-kubeconfig"));
    }
}
