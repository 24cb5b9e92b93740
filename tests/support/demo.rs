//! The embedded demo as a test fixture: `demo-setup` writes a directory vault, a
//! passphrase file, running demo apps and a plan; dropping it stops the apps.

use std::path::PathBuf;
use std::process::Command;

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vsync-orchestrate"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("VSYNC_ORCHESTRATE_STATE_DIR");
    c
}

pub struct Demo {
    pub dir: tempfile::TempDir,
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
        Demo { dir, plan, apps }
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
