//! From a validated plan to live objects: the vault, and one adapter per table.
//! The only place that maps plan tables onto adapter crates.

use crate::plan::{self, HostEntry, LoadedPlan, RestartSpec, StoreSpec, ValueSource};
use crate::vault::{audit, storage, KdfParams, Vault, DEFAULT_ITERATIONS};
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;
use vsync_orchestrate_api::{Restarter, SecretStore};

/// Why the plan could not be turned into working parts (exit 1 or 12).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(pub String);

impl BuildError {
    /// A credential or service that is not usable right now (exit 12), as opposed
    /// to a plan that cannot work (exit 1).
    pub fn is_unavailable(&self) -> bool {
        false
    }
}

fn resolve_value(what: &str, v: &ValueSource) -> Result<String, BuildError> {
    match v {
        ValueSource::Literal(s) => Ok(s.clone()),
        ValueSource::Env { env } => std::env::var(env)
            .map_err(|_| BuildError(format!("{what}: environment variable {env} is not set"))),
        ValueSource::File { file } => std::fs::read_to_string(file)
            .map(|s| s.trim_end().to_owned())
            .map_err(|e| BuildError(format!("{what}: {}: {e}", file.display()))),
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
            .map_err(|e| BuildError(format!("vault.config: {e}")))?;
        (
            cfg.salt.clone(),
            Some(v.iterations.unwrap_or(cfg.iterations)),
        )
    } else if let Some(path) = &v.cli_config {
        let gz = std::fs::read(path)
            .map_err(|e| BuildError(format!("vault.cli_config: {}: {e}", path.display())))?;
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut json)
            .map_err(|e| {
                BuildError(format!(
                    "vault.cli_config: {} is not the vsync CLI's gzip config: {e}",
                    path.display()
                ))
            })?;
        let value: serde_json::Value = serde_json::from_slice(&json)
            .map_err(|e| BuildError(format!("vault.cli_config: {}: {e}", path.display())))?;
        let salt = value["encryption"]["salt"].as_str().ok_or_else(|| {
            BuildError(format!(
                "vault.cli_config: {} has no encryption.salt",
                path.display()
            ))
        })?;
        (salt.to_owned(), v.iterations)
    } else {
        return Err(BuildError("vault: no salt source".into()));
    };
    if salt.chars().count() < 16 {
        return Err(BuildError(
            "vault salt is shorter than 16 characters; vsync refuses such configs".into(),
        ));
    }
    Ok(KdfParams::new(
        salt,
        iterations.unwrap_or(DEFAULT_ITERATIONS),
    ))
}

pub async fn vault(plan: &plan::Plan) -> Result<Vault, BuildError> {
    let v = &plan.vault;
    let storage: Arc<dyn storage::Storage> = match (&v.dir, &v.bucket) {
        (Some(dir), _) => Arc::new(
            storage::DirStorage::open(dir)
                .map_err(|e| BuildError(format!("vault.dir {}: {e}", dir.display())))?,
        ),
        #[cfg(feature = "s3")]
        (None, Some(bucket)) => Arc::new(
            storage::S3Storage::connect(&storage::S3Options {
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
            })
            .await,
        ),
        #[cfg(not(feature = "s3"))]
        (None, Some(_)) => {
            return Err(BuildError(
                "this build has no S3 support (feature `s3`)".into(),
            ))
        }
        (None, None) => return Err(BuildError("vault needs bucket or dir".into())),
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

fn duration(v: &Option<String>, default: Duration) -> Duration {
    v.as_deref()
        .and_then(|s| plan::parse_duration(s).ok())
        .unwrap_or(default)
}

fn mode(v: &Option<String>) -> u32 {
    v.as_deref()
        .and_then(|m| u32::from_str_radix(m, 8).ok())
        .unwrap_or(0o600)
}

/// The deadline a restarter gets for its rollout.
pub fn restart_timeout(spec: &RestartSpec) -> Duration {
    let t = match spec {
        RestartSpec::Command(c) => &c.timeout,
        RestartSpec::Kubernetes(k) => &k.timeout,
        RestartSpec::Ecs(e) => &e.timeout,
        RestartSpec::CloudRun(r) => &r.timeout,
        RestartSpec::Fly(f) => &f.timeout,
        RestartSpec::Systemd(s) => &s.timeout,
        RestartSpec::Vercel(v) => &v.timeout,
    };
    duration(t, Duration::from_secs(600))
}

#[cfg(feature = "ssh")]
fn hosts(entries: &[HostEntry]) -> Vec<vsync_orchestrate_ssh::HostSpec> {
    entries
        .iter()
        .map(|h| match h {
            HostEntry::Name(n) => vsync_orchestrate_ssh::HostSpec::new(n.clone()),
            HostEntry::Spec(t) => vsync_orchestrate_ssh::HostSpec {
                host: t.host.clone(),
                port: t.port,
                user: t.user.clone(),
                identity_file: t.identity_file.clone(),
                known_hosts_file: t.known_hosts_file.clone(),
            },
        })
        .collect()
}

#[cfg_attr(all(feature = "ssh", feature = "aws"), allow(dead_code))]
fn not_built(kind: &str, feature: &str) -> BuildError {
    BuildError(format!(
        "`type = \"{kind}\"` needs a build with the `{feature}` feature"
    ))
}

fn not_yet(kind: &str) -> BuildError {
    BuildError(format!(
        "`type = \"{kind}\"` is known to the plan format but has no adapter in this release yet; the plan validates, `run` refuses"
    ))
}

pub async fn store(spec: &StoreSpec) -> Result<Arc<dyn SecretStore>, BuildError> {
    match spec {
        StoreSpec::File(f) => Ok(Arc::new(crate::local::FileStore::new(
            f.path.clone(),
            mode(&f.mode),
        ))),
        #[cfg(feature = "ssh")]
        StoreSpec::VpsFile(f) => {
            let cfg = vsync_orchestrate_ssh::VpsFileConfig {
                owner: f.owner.clone(),
                group: f.group.clone(),
                mode: Some(mode(&f.mode)),
                sudo: f.sudo,
                ..vsync_orchestrate_ssh::VpsFileConfig::new(
                    vsync_orchestrate_ssh::Transport::Ssh(hosts(&f.hosts)),
                    f.path.clone(),
                )
            };
            Ok(Arc::new(
                vsync_orchestrate_ssh::VpsFileStore::new(cfg)
                    .map_err(|e| BuildError(e.to_string()))?,
            ))
        }
        #[cfg(not(feature = "ssh"))]
        StoreSpec::VpsFile(_) => Err(not_built("vps_file", "ssh")),
        #[cfg(feature = "aws")]
        StoreSpec::AwsSecretsManager(a) => crate::engine::build_aws::store(a).await,
        #[cfg(not(feature = "aws"))]
        StoreSpec::AwsSecretsManager(_) => Err(not_built("aws_secrets_manager", "aws")),
        StoreSpec::GcpSecretManager(_) => Err(not_yet("gcp_secret_manager")),
        StoreSpec::Vercel(_) => Err(not_yet("vercel")),
    }
}

pub async fn restarter(spec: &RestartSpec) -> Result<Arc<dyn Restarter>, BuildError> {
    match spec {
        RestartSpec::Command(c) => Ok(Arc::new(crate::local::CommandRestarter::new(
            c.targets
                .iter()
                .map(|t| crate::local::CommandTargetSpec {
                    name: t.name.clone(),
                    argv: t.argv.clone(),
                })
                .collect(),
            c.parallel,
            duration(&c.timeout, Duration::from_secs(120)),
        ))),
        #[cfg(feature = "ssh")]
        RestartSpec::Systemd(s) => {
            use vsync_orchestrate_ssh::{RestartMode, SystemdConfig, Transport};
            let transport = if s.local {
                Transport::Local
            } else {
                Transport::Ssh(hosts(&s.hosts))
            };
            let mode = match s.mode {
                Some(plan::SystemdMode::Rolling) => RestartMode::Rolling {
                    batch_size: s.batch_size.unwrap_or(1),
                    pause: duration(&s.pause, Duration::from_secs(0)),
                },
                _ => RestartMode::Parallel,
            };
            let defaults = SystemdConfig::new(transport, s.units.clone());
            let cfg = SystemdConfig {
                mode,
                settle: duration(&s.settle, defaults.settle),
                sudo: s.sudo,
                ..defaults
            };
            Ok(Arc::new(
                vsync_orchestrate_ssh::SystemdRestarter::new(cfg)
                    .map_err(|e| BuildError(e.to_string()))?,
            ))
        }
        #[cfg(not(feature = "ssh"))]
        RestartSpec::Systemd(_) => Err(not_built("systemd", "ssh")),
        #[cfg(feature = "aws")]
        RestartSpec::Ecs(e) => crate::engine::build_aws::ecs(e).await,
        #[cfg(not(feature = "aws"))]
        RestartSpec::Ecs(_) => Err(not_built("ecs", "aws")),
        RestartSpec::Kubernetes(_) => Err(not_yet("kubernetes")),
        RestartSpec::CloudRun(_) => Err(not_yet("cloud_run")),
        RestartSpec::Fly(_) => Err(not_yet("fly")),
        RestartSpec::Vercel(_) => Err(not_yet("vercel")),
    }
}

/// Everything `run` needs, built once.
pub struct Parts {
    pub vault: Vault,
    pub stores: Vec<Arc<dyn SecretStore>>,
    pub restarters: Vec<(Arc<dyn Restarter>, Duration)>,
}

pub async fn parts(loaded: &LoadedPlan) -> Result<Parts, BuildError> {
    let plan = &loaded.plan;
    let vault = vault(plan).await?;
    let mut stores = Vec::new();
    for s in &plan.stores {
        stores.push(store(s).await?);
    }
    let mut restarters = Vec::new();
    for r in &plan.restarts {
        restarters.push((restarter(r).await?, restart_timeout(r)));
    }
    Ok(Parts {
        vault,
        stores,
        restarters,
    })
}
