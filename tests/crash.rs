//! Crash tests: the real binary is killed (abort) right after each step boundary
//! of a run under live demo apps, then `resume` must converge to gen N+1 with every
//! app healthy. Between crash and resume, the passphrase that decrypts the live
//! bundle must be retrievable from the store (current or staged).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use vsync_orchestrate::api::Passphrase;
use vsync_orchestrate::vault::{bootstrap, config_blob};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vsync-orchestrate"))
}

fn stop(dir: &Path, apps: u32) {
    for n in 1..=apps {
        let _ = bin()
            .args(["demo-ctl", "stop", "--app", &n.to_string(), "--dir"])
            .arg(dir)
            .output();
    }
}

/// Opens the vault with whatever each passphrase file holds; returns which opened.
async fn openers(dir: &Path) -> Vec<String> {
    let cfg =
        config_blob::decode(&std::fs::read_to_string(dir.join("vsync-config")).unwrap()).unwrap();
    let vault = bootstrap::vault_for(&cfg).await.unwrap();
    let mut ok = Vec::new();
    for f in ["passphrase", "passphrase.new"] {
        if let Ok(p) = std::fs::read_to_string(dir.join(f)) {
            if vault.open(&Passphrase::new(p)).await.is_ok() {
                ok.push(f.to_owned());
            }
        }
    }
    ok
}

async fn crash_then_resume(phase: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let setup = bin()
        .args(["demo-setup", "--apps", "2", "--iterations", "2000", "--dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(
        setup.status.success(),
        "{}",
        String::from_utf8_lossy(&setup.stderr)
    );
    let plan = PathBuf::from(String::from_utf8_lossy(&setup.stdout).trim());
    let dir = tmp.path().canonicalize().unwrap();

    let crashed = bin()
        .args(["run", "--yes"])
        .arg(&plan)
        .env("VSYNC_ORCHESTRATE_CRASH_AT", phase)
        .output()
        .unwrap();
    assert!(!crashed.status.success(), "{phase}: the run did not crash");
    let err = String::from_utf8_lossy(&crashed.stderr);
    assert!(err.contains("crashing on purpose"), "{phase}: {err}");

    assert!(
        !openers(&dir).await.is_empty(),
        "{phase}: no store holds the passphrase of the live bundle"
    );

    // `status` tells the truth from the journal and the vault together: past the
    // swap and before activation the window may be open (14); otherwise the run
    // waits for `resume` (17).
    let status = bin()
        .args(["status", "--output", "json"])
        .arg(&plan)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&status.stderr);
    let window = matches!(phase, "committing" | "committed");
    assert_eq!(
        status.status.code(),
        Some(if window { 14 } else { 17 }),
        "{phase}: status\n{err}"
    );
    assert_eq!(err.contains("WINDOW MAY BE OPEN"), window, "{phase}: {err}");
    assert!(err.contains("vsync-orchestrate resume"), "{phase}: {err}");
    let st: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        st["unfinished"]["exit"],
        if window { 14 } else { 17 },
        "{phase}"
    );

    let resumed = bin()
        .args(["resume", "--yes", "--output", "json"])
        .arg(&plan)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&resumed.stdout);
    let err = String::from_utf8_lossy(&resumed.stderr);
    stop(&dir, 2);
    assert_eq!(
        resumed.status.code(),
        Some(0),
        "{phase}: resume failed\n{err}"
    );
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    support::assert_rows_match(&err, &s);
    assert_eq!(s["gen_after"], 1, "{phase}: {out}");
    assert!(
        s["health"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["ok"] == true),
        "{phase}: {out}"
    );
    assert_eq!(
        openers(&dir).await,
        vec!["passphrase".to_owned()],
        "{phase}: the active file must open the vault"
    );
    let status = bin()
        .args(["status", "--output", "json"])
        .arg(&plan)
        .output()
        .unwrap();
    let st: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(st["status"]["gen"], 1, "{phase}");
    assert!(st["lock"].is_null(), "{phase}: lock left behind");
}

#[tokio::test]
async fn crash_after_staging() {
    crash_then_resume("staged").await;
}

#[tokio::test]
async fn crash_after_upload_before_the_pointer_swap() {
    crash_then_resume("committing").await;
}

#[tokio::test]
async fn crash_right_after_the_pointer_swap() {
    crash_then_resume("committed").await;
}

#[tokio::test]
async fn crash_after_activation() {
    crash_then_resume("activated").await;
}

#[tokio::test]
async fn crash_after_restart() {
    crash_then_resume("restarted").await;
}

/// A rollout was started and journaled; the wait never finished.
#[tokio::test]
async fn crash_after_a_restart_started_before_its_wait_ended() {
    crash_then_resume("restarting").await;
}
