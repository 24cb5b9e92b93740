//! How an app finds its vault at boot, exactly like the runtime libraries:
//! `VSYNC_CONFIG[_FILE]` and `VSYNC_PASSPHRASE[_FILE]`, the `_FILE` form winning.

use super::config_blob::{self, VsyncConfig};
use super::error::{VaultError, VaultErrorKind};
use std::os::unix::fs::PermissionsExt;
use vsync_orchestrate_api::Passphrase;

pub struct Bootstrap {
    pub config: VsyncConfig,
    pub passphrase: Passphrase,
    /// Group- or world-readable `_FILE`s: allowed, but worth a line on stderr.
    pub warnings: Vec<String>,
}

fn missing(detail: impl Into<String>) -> VaultError {
    VaultError::new(VaultErrorKind::ConfigMissing, detail)
}

/// Reads a `_FILE` input with the libraries' rules: world-writable is refused.
fn read_file_input(
    var: &str,
    path: &str,
    warnings: &mut Vec<String>,
) -> Result<String, VaultError> {
    let meta = std::fs::metadata(path).map_err(|e| missing(format!("{var}={path}: {e}")))?;
    let mode = meta.permissions().mode();
    if mode & 0o002 != 0 {
        return Err(missing(format!(
            "{var}={path} is world-writable; refusing to use it"
        )));
    }
    if mode & 0o044 != 0 {
        warnings.push(format!(
            "{var}={path} is readable by group or others (mode {:o})",
            mode & 0o777
        ));
    }
    std::fs::read_to_string(path).map_err(|e| missing(format!("{var}={path}: {e}")))
}

/// `env` is the process environment in production and a map in tests.
pub fn bootstrap(env: &dyn Fn(&str) -> Option<String>) -> Result<Bootstrap, VaultError> {
    let mut warnings = Vec::new();
    let blob = match (env("VSYNC_CONFIG_FILE"), env("VSYNC_CONFIG")) {
        (Some(path), _) => read_file_input("VSYNC_CONFIG_FILE", &path, &mut warnings)?,
        (None, Some(v)) => v,
        (None, None) => return Err(missing("neither VSYNC_CONFIG_FILE nor VSYNC_CONFIG is set")),
    };
    let passphrase = match (env("VSYNC_PASSPHRASE_FILE"), env("VSYNC_PASSPHRASE")) {
        (Some(path), _) => {
            let text = read_file_input("VSYNC_PASSPHRASE_FILE", &path, &mut warnings)?;
            Passphrase::from_file_contents(text)
        }
        (None, Some(v)) => Passphrase::new(v),
        (None, None) => {
            return Err(missing(
                "neither VSYNC_PASSPHRASE_FILE nor VSYNC_PASSPHRASE is set",
            ))
        }
    };
    let config = config_blob::decode(&blob)?;
    if config.salt.chars().count() < 16 {
        return Err(VaultError::new(
            VaultErrorKind::ConfigUnsupportedVersion,
            "VSYNC_CONFIG salt is shorter than 16 characters",
        ));
    }
    Ok(Bootstrap {
        config,
        passphrase,
        warnings,
    })
}

/// The storage a `VSYNC_CONFIG` points at: S3 (or S3-compatible) with the blob's
/// keys, or — an extension for single-host setups and the demo — a local directory
/// when the endpoint is `file:///path`.
pub async fn storage_for(
    config: &VsyncConfig,
) -> Result<std::sync::Arc<dyn super::storage::Storage>, VaultError> {
    if let Some(path) = config.endpoint.strip_prefix("file://") {
        let s = super::storage::DirStorage::open(path)
            .map_err(|e| VaultError::new(VaultErrorKind::S3Unreachable, format!("{path}: {e}")))?;
        return Ok(std::sync::Arc::new(s));
    }
    #[cfg(feature = "s3")]
    {
        let opts = super::storage::S3Options {
            bucket: config.bucket.clone(),
            region: Some(config.region.clone()),
            endpoint: Some(config.endpoint.clone()),
            path_style: true,
            static_keys: Some((
                config.access_key_id.clone(),
                config.secret_access_key.clone(),
            )),
            ..Default::default()
        };
        Ok(std::sync::Arc::new(
            super::storage::S3Storage::connect(&opts).await,
        ))
    }
    #[cfg(not(feature = "s3"))]
    Err(VaultError::new(
        VaultErrorKind::S3Unreachable,
        "built without the s3 feature",
    ))
}

/// The vault a `VSYNC_CONFIG` describes.
pub async fn vault_for(config: &VsyncConfig) -> Result<super::handle::Vault, VaultError> {
    Ok(super::handle::Vault::new(
        storage_for(config).await?,
        &config.prefix,
        super::crypto::KdfParams::new(config.salt.clone(), config.iterations),
        super::layout::LayoutChoice::Runtime,
    ))
}
