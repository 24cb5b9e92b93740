//! SIGINT and SIGTERM: before T0 the run stops and discards (17); inside the
//! window activation is finished first, then the run stops (17); after T1 it
//! journals where it is and stops (17); `resume` finishes. Its own test binary,
//! since the stop request is process-wide; the in-process tests take turns.

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::fakes::MemStore;
use support::sandbox::{log, Sandbox, Shown, OLD};
use vsync_orchestrate::api::Passphrase;
use vsync_orchestrate::engine::{self, interrupt, lock::Lock};

static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn a_signal_while_staging_discards_and_exits_17() {
    let _turn = TURN.lock().await;
    interrupt::reset();
    let sb = Sandbox::new("").await;
    let mem = MemStore::new("mem", OLD, &log(), Some(sb.vault.clone()));
    *mem.on_stage.lock().unwrap() = Some(Box::new(interrupt::request));
    let before = sb.vault.status().await.unwrap().unwrap();
    let parts = sb.parts(vec![sb.file_store(), mem.clone()], None).await;
    let shown = Shown::new();
    let s = engine::run_with(&sb.loaded, parts, &sb.opts(), &shown.p, false).await;
    shown.check(&s);
    interrupt::reset();
    assert_eq!(s.exit_code, 17, "{}", s.outcome);
    assert!(s.outcome.contains("discarded"), "{}", s.outcome);
    assert_eq!(sb.passphrase_file(), OLD);
    assert!(!sb.dir.path().join("passphrase.new").exists());
    assert!(mem.current().same_as(&Passphrase::from(OLD)));
    assert!(
        mem.staged.lock().unwrap().is_none(),
        "the staged value was discarded"
    );
    let after = sb.vault.status().await.unwrap().unwrap();
    assert_eq!((after.stamp, after.gen), (before.stamp, before.gen));
    assert!(Lock::peek(&sb.vault).await.unwrap().is_none());
}

#[tokio::test]
async fn a_signal_inside_the_window_waits_for_activation_then_resume_finishes() {
    let _turn = TURN.lock().await;
    interrupt::reset();
    let sb = Sandbox::new("").await;
    let mem = MemStore::new("mem", OLD, &log(), Some(sb.vault.clone()));
    *mem.on_activate.lock().unwrap() = Some(Box::new(interrupt::request));
    let parts = sb.parts(vec![sb.file_store(), mem.clone()], None).await;
    let shown = Shown::new();
    let s = engine::run_with(&sb.loaded, parts, &sb.opts(), &shown.p, false).await;
    shown.check(&s);
    interrupt::reset();
    assert_eq!(s.exit_code, 17, "{}", s.outcome);
    // Both stores were switched before the run stopped: the window is closed.
    let new = Passphrase::new(sb.passphrase_file());
    assert!(!new.same_as(&Passphrase::from(OLD)));
    assert!(mem.current().same_as(&new));
    assert!(sb.vault.open(&new).await.is_ok());
    assert!(s.window_ms.is_some(), "the window was measured");
    assert!(
        s.next_steps.iter().any(|n| n.contains("resume")),
        "{:?}",
        s.next_steps
    );
    assert!(sb.journal_texts().contains("\"phase\": \"activated\""));

    let parts = sb.parts(vec![sb.file_store(), mem.clone()], None).await;
    let shown = Shown::new();
    let r = engine::resume_with(&sb.loaded, parts, &sb.opts(), &shown.p).await;
    shown.check(&r);
    assert_eq!(r.exit_code, 0, "{}", r.outcome);
    assert_eq!(sb.vault.status().await.unwrap().unwrap().gen, 1);
    assert!(Lock::peek(&sb.vault).await.unwrap().is_none());
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vsync-orchestrate"))
}

struct Demo {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Demo {
    fn new() -> Demo {
        let tmp = tempfile::tempdir().unwrap();
        let out = bin()
            .args(["demo-setup", "--apps", "1", "--iterations", "2000", "--dir"])
            .arg(tmp.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Demo {
            dir: tmp.path().canonicalize().unwrap(),
            _tmp: tmp,
        }
    }

    /// The demo's vault and passphrase file, with a restart that takes `restart`
    /// seconds and a new passphrase from `new`.
    fn plan(&self, restart_secs: f32, new: &str) -> PathBuf {
        let d = self.dir.display();
        let path = self.dir.join("signal-plan.toml");
        std::fs::write(
            &path,
            format!(
                r#"env = "demo"
state_dir = "{d}/state"
[vault]
dir = "{d}/vault"
prefix = "demo/demo/"
config = {{ file = "{d}/vsync-config" }}
[passphrase]
new = {new}
[[store]]
type = "file"
path = "{d}/passphrase"
[[restart]]
type = "command"
targets = [{{ name = "slow", argv = ["sh", "-c", "sleep {restart_secs}"] }}]
"#
            ),
        )
        .unwrap();
        path
    }

    async fn gen(&self) -> u64 {
        let cfg = vsync_orchestrate::vault::config_blob::decode(
            &std::fs::read_to_string(self.dir.join("vsync-config")).unwrap(),
        )
        .unwrap();
        let vault = vsync_orchestrate::vault::bootstrap::vault_for(&cfg)
            .await
            .unwrap();
        let pass = Passphrase::from_file_contents(
            std::fs::read_to_string(self.dir.join("passphrase")).unwrap(),
        );
        vault
            .open(&pass)
            .await
            .expect("the current file opens the vault")
            .gen
    }

    fn journal_says(&self, phase: &str) -> bool {
        std::fs::read_dir(self.dir.join("state/runs"))
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .any(|e| {
                std::fs::read_to_string(e.path())
                    .is_ok_and(|t| t.contains(&format!("\"phase\": \"{phase}\"")))
            })
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = bin()
            .args(["demo-ctl", "stop", "--app", "1", "--dir"])
            .arg(&self.dir)
            .output();
    }
}

fn signal(child: &std::process::Child, sig: libc::c_int) {
    // SAFETY: sending a signal to a child process we spawned and still own.
    unsafe { libc::kill(child.id() as libc::pid_t, sig) };
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

async fn signal_during_rollout(sig: libc::c_int) {
    let demo = Demo::new();
    let plan = demo.plan(3.0, "{ generate = { length = 32 } }");
    let child = bin()
        .args(["run", "--yes", "--output", "json"])
        .arg(&plan)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let began = Instant::now();
    while !demo.journal_says("restarting") {
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "the rollout never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    signal(&child, sig);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(17),
        "signal {sig}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "the run waited for the rollout instead of stopping"
    );
    // Activated and booked before the restart began: the current file opens the
    // new bundle, and the counter is already on gen 1.
    assert_eq!(demo.gen().await, 1);
    assert!(json(&out)["next_steps"].to_string().contains("resume"));

    let resumed = bin()
        .args(["resume", "--yes", "--output", "json"])
        .arg(&plan)
        .output()
        .unwrap();
    assert_eq!(
        resumed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert_eq!(
        demo.gen().await,
        1,
        "resume finished the same rotation, no second one"
    );
}

#[tokio::test]
async fn sigterm_during_a_rollout_exits_17_and_resume_finishes() {
    signal_during_rollout(libc::SIGTERM).await;
}

#[tokio::test]
async fn a_single_sigint_after_t0_stops_the_run() {
    signal_during_rollout(libc::SIGINT).await;
}

#[tokio::test]
async fn sigterm_before_anything_is_written_exits_17_and_changes_nothing() {
    let demo = Demo::new();
    let plan = demo.plan(
        0.0,
        r#"{ command = ["sh", "-c", "sleep 1.5; echo slow-helper-passphrase-0123456789"] }"#,
    );
    let child = bin()
        .args(["run", "--yes", "--output", "json"])
        .arg(&plan)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(600));
    signal(&child, libc::SIGTERM);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(17),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(demo.gen().await, 0);
    assert!(!demo.dir.join("passphrase.new").exists());
    assert!(!demo.journal_says("staged"));
}

/// The process's signal bits from `/proc/<pid>/status` (`SigBlk`, `SigCgt`).
fn sig_bits(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(&format!("{field}:\t")).map(str::to_owned))
        })
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .unwrap_or(0)
}

/// A SIGTERM that arrives while the process is still starting (after `main`'s
/// first instruction, before the runtime and its handlers exist) is held and then
/// handled: exit 17, nothing written — not a process killed by the signal.
#[tokio::test]
async fn a_signal_at_start_is_handled_not_fatal() {
    let demo = Demo::new();
    let plan = demo.plan(0.0, r#"{ generate = { length = 32 } }"#);
    let both = (1u64 << (libc::SIGINT - 1)) | (1u64 << (libc::SIGTERM - 1));
    let child = bin()
        .args(["run", "--yes", "--output", "json"])
        .arg(&plan)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // As soon as the signals are held (or already handled): never before `main`.
    // Until the exec the child is still a copy of this test (with every signal
    // briefly blocked around the fork), so the mask only counts once it runs the
    // tool's binary.
    let exe = std::fs::canonicalize(env!("CARGO_BIN_EXE_vsync-orchestrate")).unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    let mut held_first = false;
    loop {
        let execed =
            std::fs::read_link(format!("/proc/{}/exe", child.id())).ok() == Some(exe.clone());
        if execed && sig_bits(child.id(), "SigBlk") & both == both {
            held_first = true;
            break;
        }
        if (execed && sig_bits(child.id(), "SigCgt") & both == both) || Instant::now() > until {
            break;
        }
        std::hint::spin_loop();
    }
    signal(&child, libc::SIGTERM);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(17),
        "held first: {held_first}\n{err}"
    );
    assert_eq!(demo.gen().await, 0);
    assert!(!demo.journal_says("staged"));
}

/// `plan` is read-only, but a signal still ends it as interrupted (17), never as
/// "dry run: preflight passed".
#[tokio::test]
async fn sigterm_during_plan_exits_17() {
    let demo = Demo::new();
    let plan = demo.plan(
        0.0,
        r#"{ command = ["sh", "-c", "sleep 1.5; echo slow-helper-passphrase-0123456789"] }"#,
    );
    let child = bin()
        .args(["plan", "--output", "json"])
        .arg(&plan)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(600));
    signal(&child, libc::SIGTERM);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(17), "{err}");
    let s = json(&out);
    assert!(
        s["outcome"].as_str().unwrap_or("").contains("interrupted"),
        "{s}"
    );
    assert!(!err.contains("preflight passed"), "{err}");
    assert_eq!(demo.gen().await, 0);
}
