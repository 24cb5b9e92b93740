//! The plan tables of this crate's adapters: `[[store]] type = "file"` and
//! `[[restart]] type = "command"`.

use crate::{CommandRestarter, FileStore};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use vsync_orchestrate_api::{
    async_trait, BuildContext, FileMode, Finding, Restarter, RestarterConfig, Result, SecretStore,
    StoreConfig,
};

/// `[[store]] type = "file"`.
#[derive(
    Debug, Clone, PartialEq, Eq, Deserialize, Serialize, vsync_orchestrate_api::schemars::JsonSchema,
)]
#[schemars(crate = "vsync_orchestrate_api::schemars")]
#[serde(deny_unknown_fields)]
pub struct FileStoreConfig {
    /// The file apps read through `VSYNC_PASSPHRASE_FILE`.
    pub path: PathBuf,
    /// The staged (and so the activated) file's mode; default `"0600"`.
    #[serde(default)]
    pub mode: FileMode,
}

#[async_trait]
impl StoreConfig for FileStoreConfig {
    fn check(&self) -> Vec<Finding> {
        let mut out: Vec<Finding> = self.mode.check("mode").into_iter().collect();
        if !self.path.is_absolute() {
            out.push(Finding::warning(
                Some("path"),
                format!(
                    "file store path {} is relative to the working directory",
                    self.path.display()
                ),
            ));
        }
        if self.path.file_name().is_none() {
            out.push(Finding::error(
                Some("path"),
                format!("file store path {} names no file", self.path.display()),
            ));
        }
        out
    }

    /// One name per file however it is spelt: relative paths are resolved against
    /// the working directory (`./p` and `p`), and the directory is resolved as the
    /// file system has it (`/etc/vsync/../vsync/p`, a symlinked directory) where it
    /// exists; elsewhere `..` is removed lexically.
    fn identity(&self) -> String {
        format!(
            "{}:{}",
            crate::file_store::KIND,
            canonical_file(&self.path).display()
        )
    }

    async fn build(&self, _ctx: &BuildContext) -> Result<Arc<dyn SecretStore>> {
        Ok(Arc::new(FileStore::new(
            self.path.clone(),
            self.mode.bits(),
        )))
    }
}

/// One `targets = [{ name, argv }]` entry.
#[derive(
    Debug, Clone, PartialEq, Eq, Deserialize, Serialize, vsync_orchestrate_api::schemars::JsonSchema,
)]
#[schemars(crate = "vsync_orchestrate_api::schemars")]
#[serde(deny_unknown_fields)]
pub struct CommandTarget {
    pub name: String,
    pub argv: Vec<String>,
}

/// The file at `path` as one canonical path, without requiring the file itself to
/// exist (it may be created by the first activation).
fn canonical_file(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let (Some(dir), Some(name)) = (abs.parent(), abs.file_name()) else {
        return abs;
    };
    if let Ok(dir) = std::fs::canonicalize(dir) {
        return dir.join(name);
    }
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// `[[restart]] type = "command"`.
#[derive(
    Debug, Clone, PartialEq, Eq, Deserialize, Serialize, vsync_orchestrate_api::schemars::JsonSchema,
)]
#[schemars(crate = "vsync_orchestrate_api::schemars")]
#[serde(deny_unknown_fields)]
pub struct CommandRestarterConfig {
    pub targets: Vec<CommandTarget>,
    /// Run targets at once instead of in order.
    #[serde(default)]
    pub parallel: bool,
    /// Per target, default 2 minutes. When set it is also the deadline of the whole
    /// rollout (default 10 minutes), as it always was.
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Duration>,
}

impl CommandRestarterConfig {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

    fn per_target(&self) -> Duration {
        self.timeout.unwrap_or(Self::DEFAULT_TIMEOUT)
    }
}

#[async_trait]
impl RestarterConfig for CommandRestarterConfig {
    fn check(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        if self.targets.is_empty() {
            out.push(Finding::error(
                Some("targets"),
                "a command restarter needs at least one target",
            ));
        }
        let mut names = BTreeSet::new();
        for t in &self.targets {
            if t.argv.is_empty() {
                out.push(Finding::error(
                    Some("targets"),
                    format!("target {:?} has an empty argv", t.name),
                ));
            }
            if !names.insert(&t.name) {
                out.push(Finding::error(
                    Some("targets"),
                    format!("target name {:?} appears twice", t.name),
                ));
            }
        }
        if self.timeout.is_some_and(|t| t.is_zero()) {
            out.push(Finding::error(Some("timeout"), "timeout must be positive"));
        }
        out
    }

    fn identity(&self) -> String {
        let names: Vec<&str> = self.targets.iter().map(|t| t.name.as_str()).collect();
        format!("{}:{}", crate::command_restarter::KIND, names.join(","))
    }

    /// Commands are not exclusive resources: two tables may run the same script.
    fn targets(&self) -> Vec<String> {
        Vec::new()
    }

    fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(Duration::from_secs(600))
    }

    async fn build(&self, _ctx: &BuildContext) -> Result<Arc<dyn Restarter>> {
        Ok(Arc::new(CommandRestarter::new(
            self.targets.clone(),
            self.parallel,
            self.per_target(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(path: &Path) -> String {
        FileStoreConfig {
            path: path.to_path_buf(),
            mode: FileMode::default(),
        }
        .identity()
    }

    #[test]
    fn one_file_spelt_two_ways_has_one_identity() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("vsync");
        std::fs::create_dir(&sub).unwrap();
        assert_eq!(
            identity(&sub.join("passphrase")),
            identity(&dir.path().join("vsync/../vsync/./passphrase"))
        );
        std::os::unix::fs::symlink(&sub, dir.path().join("link")).unwrap();
        assert_eq!(
            identity(&sub.join("passphrase")),
            identity(&dir.path().join("link/passphrase"))
        );
        // Where the directory does not exist (yet), `..` is removed lexically.
        assert_eq!(
            identity(Path::new("/nonexistent-vsync-dir/a/../b/passphrase")),
            "file:/nonexistent-vsync-dir/b/passphrase"
        );
        assert_ne!(
            identity(&sub.join("passphrase")),
            identity(&sub.join("passphrase2"))
        );
    }
}
