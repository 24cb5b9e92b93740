//! `VSYNC_CONFIG`: `vsync-cfg-v1:` + base64url(gzip(JSON))
//! (`docs/wire-format.md` §7).

use super::error::{VaultError, VaultErrorKind};
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};

pub const PREFIX: &str = "vsync-cfg-v1:";
/// The most decompressed JSON a blob may hold. A real one is a few hundred bytes;
/// without a bound, a blob of a few kilobytes can gunzip to gigabytes.
pub const MAX_JSON_BYTES: u64 = 64 << 10;

/// The bootstrap blob's JSON, in the key order `runtime-token` writes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VsyncConfig {
    pub v: u32,
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub prefix: String,
    pub env: String,
    pub salt: String,
    pub iterations: u32,
}

impl std::fmt::Debug for VsyncConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VsyncConfig")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("env", &self.env)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

fn corrupt(detail: impl Into<String>) -> VaultError {
    VaultError::corrupt(detail)
}

/// Decodes a blob with the reader rules of the runtime libraries: prefix first,
/// then encoding, then `v` before any required field.
pub fn decode(blob: &str) -> Result<VsyncConfig, VaultError> {
    let blob = blob.trim();
    let body = blob.strip_prefix(PREFIX).ok_or_else(|| {
        VaultError::new(
            VaultErrorKind::ConfigMissing,
            "VSYNC_CONFIG does not start with vsync-cfg-v1:",
        )
    })?;
    if body.contains(['+', '/', '=']) {
        return Err(VaultError::new(
            VaultErrorKind::ConfigUnsupportedVersion,
            "VSYNC_CONFIG body uses standard base64; expected base64url without padding",
        ));
    }
    let gz = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|e| corrupt(format!("VSYNC_CONFIG body is not base64url: {e}")))?;
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .take(MAX_JSON_BYTES + 1)
        .read_to_end(&mut json)
        .map_err(|e| corrupt(format!("VSYNC_CONFIG body is not gzip: {e}")))?;
    if json.len() as u64 > MAX_JSON_BYTES {
        return Err(corrupt(format!(
            "VSYNC_CONFIG decompresses to more than {MAX_JSON_BYTES} bytes"
        )));
    }
    let value: serde_json::Value = serde_json::from_slice(&json)
        .map_err(|e| corrupt(format!("VSYNC_CONFIG is not JSON: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| corrupt("VSYNC_CONFIG JSON is not an object"))?;
    match obj.get("v").and_then(|v| v.as_u64()) {
        Some(1) => {}
        other => {
            return Err(VaultError::new(
                VaultErrorKind::ConfigUnsupportedVersion,
                format!("VSYNC_CONFIG version {other:?}, only 1 is understood"),
            ))
        }
    }
    let cfg: VsyncConfig = serde_json::from_value(value)
        .map_err(|e| corrupt(format!("VSYNC_CONFIG is missing a field: {e}")))?;
    if cfg.iterations == 0 {
        return Err(corrupt("VSYNC_CONFIG iterations must be positive"));
    }
    Ok(cfg)
}

/// Encodes like `vsync runtime-token`: compact JSON, gzip level 6 with a zero mtime.
pub fn encode(cfg: &VsyncConfig) -> String {
    let json = serde_json::to_vec(cfg).expect("config serialises");
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::new(6));
    gz.write_all(&json).expect("in-memory gzip");
    let bytes = gz.finish().expect("in-memory gzip");
    format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}
