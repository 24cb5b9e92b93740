//! The runtime libraries' lookup semantics: vault, then environment, then defaults.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Vault,
    Env,
    Default,
    Missing,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Vault => "vault",
            Source::Env => "env",
            Source::Default => "default",
            Source::Missing => "missing",
        }
    }
}

pub fn lookup(
    key: &str,
    vault: &BTreeMap<String, String>,
    env: &dyn Fn(&str) -> Option<String>,
    defaults: &BTreeMap<String, String>,
) -> (Option<String>, Source) {
    if let Some(v) = vault.get(key) {
        (Some(v.clone()), Source::Vault)
    } else if let Some(v) = env(key) {
        (Some(v), Source::Env)
    } else if let Some(v) = defaults.get(key) {
        (Some(v.clone()), Source::Default)
    } else {
        (None, Source::Missing)
    }
}

/// Writes an asset (a key, a service-account file) where a library expects a path:
/// a new 0600 file, never a pre-existing one.
pub fn materialize_asset(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let mut rnd = [0u8; 6];
    getrandom::fill(&mut rnd).map_err(std::io::Error::other)?;
    let suffix: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
    let safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let path = dir.join(format!("vsync-asset-{safe}-{suffix}"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(path)
}
