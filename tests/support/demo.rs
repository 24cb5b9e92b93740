//! The embedded demo as a test fixture: `demo-setup` writes a directory vault, a
//! passphrase file, running demo apps and a plan; dropping it stops the apps.

use std::path::PathBuf;
use std::process::Command;
use vsync_orchestrate::api::Passphrase;

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vsync-orchestrate"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("VSYNC_ORCHESTRATE_STATE_DIR");
    c
}

pub struct Demo {
    pub dir: tempfile::TempDir,
    /// `dir`, canonical (plans name it, apps report it).
    pub root: PathBuf,
    /// The plan `demo-setup` wrote.
    pub plan: PathBuf,
    pub apps: u32,
}

impl Demo {
    /// `apps` demo apps, with a cheap key derivation.
    pub fn setup(apps: u32) -> Demo {
        let dir = tempfile::tempdir().unwrap();
        let out = bin()
            .args([
                "demo-setup",
                "--apps",
                &apps.to_string(),
                "--iterations",
                "2000",
                "--dir",
            ])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let plan = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        Demo {
            root: dir.path().canonicalize().unwrap(),
            dir,
            plan,
            apps,
        }
    }

    /// What the passphrase file holds now.
    pub fn passphrase(&self) -> String {
        std::fs::read_to_string(self.root.join("passphrase")).unwrap()
    }

    /// Each demo app's `/healthz` port.
    pub fn ports(&self) -> Vec<u16> {
        (1..=self.apps)
            .map(|n| {
                std::fs::read_to_string(self.root.join(format!("apps/app-{n}.port")))
                    .unwrap()
                    .trim()
                    .parse()
                    .unwrap()
            })
            .collect()
    }

    /// The generation the current passphrase file opens.
    pub async fn gen(&self) -> u64 {
        let cfg = vsync_orchestrate::vault::config_blob::decode(
            &std::fs::read_to_string(self.root.join("vsync-config")).unwrap(),
        )
        .unwrap();
        let vault = vsync_orchestrate::vault::bootstrap::vault_for(&cfg)
            .await
            .unwrap();
        vault
            .open(&Passphrase::from_file_contents(self.passphrase()))
            .await
            .expect("the passphrase file opens the vault")
            .gen
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        for n in 1..=self.apps {
            let _ = bin()
                .args(["demo-ctl", "stop", "--app", &n.to_string(), "--dir"])
                .arg(self.dir.path())
                .output();
        }
    }
}
