//! How the restarter and the Secret store reach a cluster: a kubeconfig context or
//! the pod's ServiceAccount, with the client's own retries off.

use std::path::{Path, PathBuf};
use vsync_orchestrate_api::{Error, Result};

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
                })?;
                kube::Config::from_custom_kubeconfig(kc, &opts).await
            }
            None => kube::Config::from_kubeconfig(&opts).await,
        };
        loaded.map_err(|e| {
            let what = match context {
                Some(c) => format!("context {c:?}"),
                None => "the current context".to_owned(),
            };
            Error::invalid_config(format!("kubeconfig: cannot use {what}: {e}"))
        })?
    };
    // Retries are the engine's, by error kind and within its deadlines: the
    // client's own policy would sleep for whatever Retry-After a server names.
    config.default_retry = false;
    Ok(config)
}

/// `~/x` as the shell would read it: plans are written by people.
fn expand_home(p: &Path) -> PathBuf {
    match (p.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => Path::new(&home).join(rest),
        _ => p.to_owned(),
    }
}
