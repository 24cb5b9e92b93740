//! From a validated plan to live objects: the vault, and one adapter per table.
//! Adapters build themselves from their own plan tables (`src/adapters.rs`); this
//! file only hands them one shared [`BuildContext`].

use crate::plan::{self, LoadedPlan, RestartSpec, StoreSpec, ValueSource};
use crate::vault::{audit, storage, KdfParams, Vault, DEFAULT_ITERATIONS};
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;
use vsync_orchestrate_api::{BuildContext, ErrorKind, Restarter, SecretStore};

/// Why the plan could not be turned into working parts.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(pub String, BuildErrorKind, Option<String>);

/// What kind of failure stopped the build, so the caller can pick the exit code:
/// a credential that cannot be loaded is a preflight failure (12), not bad input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildErrorKind {
    /// The plan (or a value it points to) is wrong.
    Plan,
    /// Credentials could not be loaded or were refused.
    Credential,
    /// Something needed was not reachable; trying again may work.
    Unavailable,
}

impl BuildError {
    fn plan(message: impl Into<String>) -> Self {
        BuildError(message.into(), BuildErrorKind::Plan, None)
    }

    pub fn kind(&self) -> BuildErrorKind {
        self.1
    }

    /// The one command that fixes this machine's setup, when the adapter knows it.
    pub fn next_step(&self) -> Option<&str> {
        self.2.as_deref()
    }

    /// An adapter error that names a command to run is about this machine's setup
    /// (a profile to create, a region to export), not the plan: preflight, like a
    /// refused credential.
    fn adapter(what: &str, e: vsync_orchestrate_api::Error) -> Self {
        let kind = match e.kind() {
            ErrorKind::Permission => BuildErrorKind::Credential,
            _ if e.next_step().is_some() => BuildErrorKind::Credential,
            _ if e.is_temporary() => BuildErrorKind::Unavailable,
            _ => BuildErrorKind::Plan,
        };
        let next = e.next_step().map(str::to_owned);
        BuildError(format!("{what}: {}", e.chain()), kind, next)
    }
}

impl BuildError {
    /// A credential or service that is not usable right now (exit 12, preflight),
    /// as opposed to a plan that cannot work (exit 1).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self.1,
            BuildErrorKind::Credential | BuildErrorKind::Unavailable
        )
    }
}

fn resolve_value(what: &str, v: &ValueSource) -> Result<String, BuildError> {
    match v {
        ValueSource::Literal(s) => Ok(s.clone()),
        ValueSource::Env { env } => std::env::var(env).map_err(|_| {
            BuildError::plan(format!("{what}: environment variable {env} is not set"))
        }),
        ValueSource::File { file } => std::fs::read_to_string(file)
            .map(|s| s.trim_end().to_owned())
            .map_err(|e| BuildError::plan(format!("{what}: {}: {e}", file.display()))),
    }
}

/// Salt and iterations, from wherever the plan says the deployed config keeps them.
pub fn kdf(plan: &plan::Plan) -> Result<KdfParams, BuildError> {
    let v = &plan.vault;
    let (salt, iterations) = if let Some(s) = &v.salt {
        (resolve_value("vault.salt", s)?, v.iterations)
    } else if let Some(c) = &v.config {
        let blob = resolve_value("vault.config", c)?;
        let cfg = crate::vault::config_blob::decode(&blob)
            .map_err(|e| BuildError::plan(format!("vault.config: {e}")))?;
        (
            cfg.salt.clone(),
            Some(v.iterations.unwrap_or(cfg.iterations)),
        )
    } else if let Some(path) = &v.cli_config {
        let gz = std::fs::read(path)
            .map_err(|e| BuildError::plan(format!("vault.cli_config: {}: {e}", path.display())))?;
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut json)
            .map_err(|e| {
                BuildError::plan(format!(
                    "vault.cli_config: {} is not the vsync CLI's gzip config: {e}",
                    path.display()
                ))
            })?;
        let value: serde_json::Value = serde_json::from_slice(&json)
            .map_err(|e| BuildError::plan(format!("vault.cli_config: {}: {e}", path.display())))?;
        let salt = value["encryption"]["salt"].as_str().ok_or_else(|| {
            BuildError::plan(format!(
                "vault.cli_config: {} has no encryption.salt",
                path.display()
            ))
        })?;
        (salt.to_owned(), v.iterations)
    } else {
        return Err(BuildError::plan("vault: no salt source"));
    };
    if salt.chars().count() < 16 {
        return Err(BuildError::plan(
            "vault salt is shorter than 16 characters; vsync refuses such configs",
        ));
    }
    Ok(KdfParams::new(
        salt,
        iterations.unwrap_or(DEFAULT_ITERATIONS),
    ))
}

pub async fn vault(plan: &plan::Plan) -> Result<Vault, BuildError> {
    vault_in(plan, &BuildContext::new()).await
}

/// The vault, sharing `ctx`'s AWS credential chain with the plan's adapters.
pub async fn vault_in(plan: &plan::Plan, ctx: &BuildContext) -> Result<Vault, BuildError> {
    #[cfg(not(feature = "s3"))]
    let _ = ctx;
    let v = &plan.vault;
    let storage: Arc<dyn storage::Storage> = match (&v.dir, &v.bucket) {
        (Some(dir), _) => Arc::new(
            storage::DirStorage::open(dir)
                .map_err(|e| BuildError::plan(format!("vault.dir {}: {e}", dir.display())))?,
        ),
        #[cfg(feature = "s3")]
        (None, Some(bucket)) => {
            if let Err(e) = vsync_orchestrate_aws_auth::check_endpoint(v.endpoint.as_deref()) {
                return Err(BuildError::adapter("vault.endpoint", e));
            }
            let sdk = vsync_orchestrate_aws_auth::sdk_config(
                ctx,
                v.profile.as_deref(),
                v.region.as_deref(),
            )
            .await
            .map_err(|e| BuildError::adapter("vault", e))?;
            credentials(ctx)
                .await
                .map_err(|e| BuildError::adapter("vault", e))?;
            Arc::new(storage::S3Storage::from_sdk_config(
                &sdk,
                &storage::S3Options {
                    bucket: bucket.clone(),
                    region: v.region.clone(),
                    endpoint: v.endpoint.clone(),
                    profile: v.profile.clone(),
                    path_style: v.path_style.unwrap_or(v.endpoint.is_some()),
                    checksum_when_required: v.checksum == Some(plan::ChecksumMode::WhenRequired),
                    static_keys: None,
                    attempt_timeout: v
                        .timeout
                        .as_deref()
                        .and_then(|t| plan::parse_duration(t).ok()),
                },
            ))
        }
        #[cfg(not(feature = "s3"))]
        (None, Some(_)) => {
            return Err(BuildError::plan(
                "this build has no S3 support (feature `s3`)",
            ))
        }
        (None, None) => return Err(BuildError::plan("vault needs bucket or dir")),
    };
    Ok(Vault::new(storage, &v.prefix, kdf(plan)?, v.layout))
}

/// `<repo>/<env>/audit.csv`, or `None` when the plan turned audit off.
pub fn audit_key(plan: &plan::Plan) -> Option<String> {
    if !plan.vault.audit {
        return None;
    }
    let repo = plan
        .vault
        .repo
        .clone()
        .unwrap_or_else(|| plan.vault.prefix.split('/').next().unwrap_or("").to_owned());
    Some(audit::audit_key(&repo, &plan.env))
}

/// The deadline a restarter gets for its rollout.
pub fn restart_timeout(spec: &RestartSpec) -> Duration {
    spec.timeout()
}

/// One store, with a context of its own (`status` builds them one by one).
pub async fn store(spec: &StoreSpec) -> Result<Arc<dyn SecretStore>, BuildError> {
    store_in(spec, &BuildContext::new()).await
}

pub async fn store_in(
    spec: &StoreSpec,
    ctx: &BuildContext,
) -> Result<Arc<dyn SecretStore>, BuildError> {
    spec.build(ctx)
        .await
        .map_err(|e| BuildError::adapter(&spec.config().identity(), e))
}

pub async fn restarter(spec: &RestartSpec) -> Result<Arc<dyn Restarter>, BuildError> {
    restarter_in(spec, &BuildContext::new()).await
}

pub async fn restarter_in(
    spec: &RestartSpec,
    ctx: &BuildContext,
) -> Result<Arc<dyn Restarter>, BuildError> {
    spec.build(ctx)
        .await
        .map_err(|e| BuildError::adapter(&spec.config().identity(), e))
}

/// The plan's stores and restarters, without the vault: what `validate`'s tests
/// build offline for every example plan.
pub async fn adapters(
    plan: &plan::Plan,
    ctx: &BuildContext,
) -> Result<
    (
        Vec<Arc<dyn SecretStore>>,
        Vec<(Arc<dyn Restarter>, Duration)>,
    ),
    BuildError,
> {
    let mut stores = Vec::new();
    for s in &plan.stores {
        stores.push(store_in(s, ctx).await?);
    }
    let mut restarters = Vec::new();
    for r in &plan.restarts {
        restarters.push((restarter_in(r, ctx).await?, restart_timeout(r)));
    }
    Ok((stores, restarters))
}

/// Everything `run` needs, built once.
pub struct Parts {
    pub vault: Vault,
    pub stores: Vec<Arc<dyn SecretStore>>,
    pub restarters: Vec<(Arc<dyn Restarter>, Duration)>,
}

pub async fn parts(loaded: &LoadedPlan) -> Result<Parts, BuildError> {
    let plan = &loaded.plan;
    let ctx = BuildContext::new();
    let vault = vault_in(plan, &ctx).await?;
    let mut stores = Vec::new();
    for s in &plan.stores {
        stores.push(store_in(s, &ctx).await?);
        credentials(&ctx)
            .await
            .map_err(|e| BuildError::adapter(&s.config().identity(), e))?;
    }
    let mut restarters = Vec::new();
    for r in &plan.restarts {
        restarters.push((restarter_in(r, &ctx).await?, restart_timeout(r)));
        credentials(&ctx)
            .await
            .map_err(|e| BuildError::adapter(&r.config().identity(), e))?;
    }
    Ok(Parts {
        vault,
        stores,
        restarters,
    })
}

/// Fetches the credentials the tables built so far will use, so that a machine
/// without them stops here with the command that fixes it (`run` and `plan` are
/// about to call out; `validate` builds offline and never gets here).
async fn credentials(ctx: &BuildContext) -> vsync_orchestrate_api::Result<()> {
    #[cfg(any(feature = "s3", feature = "aws"))]
    vsync_orchestrate_aws_auth::check_credentials(ctx).await?;
    #[cfg(feature = "gcp")]
    vsync_orchestrate_gcp::check_credentials(ctx).await?;
    #[cfg(not(any(feature = "s3", feature = "aws", feature = "gcp")))]
    let _ = ctx;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vsync_orchestrate_api::Error;

    /// Exit 12 (preflight) for what the machine lacks, 1 for what the plan says.
    #[test]
    fn setup_problems_are_preflight_and_keep_their_fix() {
        let refused = BuildError::adapter("vault", Error::permission("no AWS credentials"));
        assert!(refused.is_unavailable());
        assert_eq!(refused.next_step(), None);

        let region = BuildError::adapter(
            "vault",
            Error::invalid_config("no AWS region").with_next_step("export AWS_REGION=<region>"),
        );
        assert_eq!(region.kind(), BuildErrorKind::Credential);
        assert!(region.is_unavailable());
        assert_eq!(region.next_step(), Some("export AWS_REGION=<region>"));
        assert_eq!(
            region.to_string(),
            "vault: invalid configuration: no AWS region"
        );

        let plan = BuildError::adapter("vault.endpoint", Error::invalid_config("no scheme"));
        assert!(!plan.is_unavailable());
    }
}
