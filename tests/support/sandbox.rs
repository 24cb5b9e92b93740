//! A seeded directory vault, a passphrase file and a plan over them: the sandbox
//! the engine tests (and the signal tests) run in.

use super::fakes::{Log, MemRestarter};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vsync_orchestrate::api::{Passphrase, SecretStore};
use vsync_orchestrate::engine::{build, RunOptions};
use vsync_orchestrate::plan;
use vsync_orchestrate::vault::{Layout, SeedContent, Vault};

pub const OLD: &str = "the-old-passphrase-0123456789";

pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub loaded: plan::LoadedPlan,
    pub vault: Vault,
}

impl Sandbox {
    /// A seeded runtime-layout vault in a directory, a passphrase file holding OLD,
    /// and a plan over them (`extra` is appended to the plan).
    pub async fn new(extra: &str) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        std::fs::write(dir.path().join("salt"), "AbCdEfGhIjKlMnOpQrStUvWx").unwrap();
        super::write_0600(&dir.path().join("passphrase"), OLD);
        let text = format!(
            r#"env = "prod"
state_dir = "{d}/state"
[vault]
dir = "{d}/vault"
prefix = "app/prod/"
salt = {{ file = "{d}/salt" }}
iterations = 2000
[passphrase]
note = "engine test"
[[store]]
type = "file"
path = "{d}/passphrase"
{extra}"#
        );
        let path = dir.path().join("plan.toml");
        std::fs::write(&path, text).unwrap();
        let loaded = plan::load(&path).unwrap();
        // `run` never creates a vault directory; seeding is what makes one.
        std::fs::create_dir_all(dir.path().join("vault")).unwrap();
        let vault = build::vault(&loaded.plan).await.unwrap();
        vault
            .seed(
                Layout::Runtime,
                &Passphrase::from(OLD),
                &SeedContent::Json {
                    kv: BTreeMap::from([("K".into(), "v".into())]),
                    assets: BTreeMap::new(),
                },
            )
            .await
            .unwrap();
        Sandbox { dir, loaded, vault }
    }

    pub fn opts(&self) -> RunOptions {
        let mut o = RunOptions::new(self.dir.path().join("state"));
        o.yes = true;
        o
    }

    pub async fn parts(
        &self,
        stores: Vec<Arc<dyn SecretStore>>,
        restart: Option<Arc<MemRestarter>>,
    ) -> build::Parts {
        build::Parts {
            vault: build::vault(&self.loaded.plan).await.unwrap(),
            stores,
            restarters: restart
                .into_iter()
                .map(|r| {
                    (
                        r as Arc<dyn vsync_orchestrate::api::Restarter>,
                        std::time::Duration::from_secs(5),
                    )
                })
                .collect(),
        }
    }

    pub fn file_store(&self) -> Arc<dyn SecretStore> {
        Arc::new(vsync_orchestrate::local::FileStore::new(
            self.dir.path().join("passphrase"),
            0o600,
        ))
    }

    pub fn passphrase_file(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("passphrase")).unwrap()
    }

    pub fn journal_texts(&self) -> String {
        let runs = self.dir.path().join("state/runs");
        std::fs::read_dir(runs)
            .map(|d| {
                d.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Every file under `root` with its bytes and mode: the "nothing was written" oracle.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let mode = std::fs::metadata(&p).unwrap().permissions().mode();
                out.insert(p.clone(), (std::fs::read(&p).unwrap(), mode));
            }
        }
    }
    out
}

pub fn log() -> Log {
    Default::default()
}

/// A progress display that keeps what it showed, to check it against the summary
/// the same run returned (human output and JSON must not disagree).
pub struct Shown {
    pub p: vsync_orchestrate::report::Progress,
    buf: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Shown {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Shown {
        let (p, buf) = vsync_orchestrate::report::Progress::capture();
        Shown { p, buf }
    }

    /// What was printed so far.
    pub fn text(&self) -> String {
        self.buf.lock().unwrap().clone()
    }

    pub fn check(&self, s: &vsync_orchestrate::report::Summary) {
        super::assert_rows_match(&self.text(), &serde_json::to_value(s).unwrap());
    }
}
