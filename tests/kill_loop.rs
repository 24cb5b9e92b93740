//! Random SIGKILLs against the demo: the real binary rotating a directory vault
//! under live demo apps, killed at a random moment of its run, again and again.
//! After each kill, whatever the moment:
//! * one of the passphrase files (current, `.new` staged, `.prev`) opens the live
//!   bundle;
//! * `resume` (then, if the kill came before the pointer swap, a new `run`) ends on
//!   exactly one generation more than before, with the current file opening the
//!   vault, every app healthy and the lock free.
//!
//! The count is `VSYNC_TEST_KILLS` (default 30, what CI runs).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use vsync_orchestrate::api::Passphrase;
use vsync_orchestrate::vault::{bootstrap, config_blob, Vault};

const APPS: u32 = 2;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vsync-orchestrate"))
}

fn random_below(n: u64) -> u64 {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    u64::from_le_bytes(b) % n.max(1)
}

async fn vault_of(dir: &Path) -> Vault {
    let cfg =
        config_blob::decode(&std::fs::read_to_string(dir.join("vsync-config")).unwrap()).unwrap();
    bootstrap::vault_for(&cfg).await.unwrap()
}

/// Which passphrase files open the live bundle.
async fn openers(dir: &Path, vault: &Vault) -> Vec<&'static str> {
    let mut ok = Vec::new();
    for f in ["passphrase", "passphrase.new", "passphrase.prev"] {
        if let Ok(p) = std::fs::read_to_string(dir.join(f)) {
            if vault.open(&Passphrase::from_file_contents(p)).await.is_ok() {
                ok.push(f);
            }
        }
    }
    ok
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

fn cli(args: &[&str], plan: &Path) -> std::process::Output {
    bin()
        .args(args)
        .args(["--yes", "--output", "json"])
        .arg(plan)
        .output()
        .unwrap()
}

fn journal_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir.join("state/runs"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect()
}

/// The phase of the journal the killed run wrote, if it got that far.
fn newest_journal_phase(dir: &Path, before: &[String]) -> Option<String> {
    let name = journal_names(dir)
        .into_iter()
        .find(|n| !before.contains(n))?;
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("state/runs").join(name)).ok()?).ok()?;
    j["phase"].as_str().map(str::to_owned)
}

struct Demo {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    plan: PathBuf,
}

impl Drop for Demo {
    fn drop(&mut self) {
        for n in 1..=APPS {
            let _ = bin()
                .args(["demo-ctl", "stop", "--app", &n.to_string(), "--dir"])
                .arg(&self.dir)
                .output();
        }
    }
}

#[tokio::test]
async fn random_kills_never_lose_the_passphrase() {
    let kills: u32 = std::env::var("VSYNC_TEST_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let tmp = tempfile::tempdir().unwrap();
    let setup = bin()
        .args([
            "demo-setup",
            "--apps",
            &APPS.to_string(),
            "--iterations",
            "2000",
            "--dir",
        ])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(
        setup.status.success(),
        "{}",
        String::from_utf8_lossy(&setup.stderr)
    );
    let demo = Demo {
        plan: PathBuf::from(String::from_utf8_lossy(&setup.stdout).trim()),
        dir: tmp.path().canonicalize().unwrap(),
        _tmp: tmp,
    };
    let vault = vault_of(&demo.dir).await;

    // One undisturbed run measures how long a run takes; kills land inside that.
    let t = Instant::now();
    let first = cli(&["run"], &demo.plan);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let span = t.elapsed();
    // Where T0 falls in a run: process start-up, then preflight, stage and rotate.
    // A third of the kills land within 15 ms of it, where the window is.
    let phases = &json(&first)["phases_ms"];
    let ms = |k: &str| phases[k].as_f64().unwrap_or(0.0);
    let all: f64 = [
        "preflight",
        "stage",
        "rotate",
        "activate",
        "restart",
        "verify",
    ]
    .iter()
    .map(|k| ms(k))
    .sum();
    let startup = (span.as_secs_f64() * 1000.0 - all).max(0.0);
    let t0_ms = startup + ms("preflight") + ms("stage") + ms("rotate");
    let mut gen = vault.status().await.unwrap().unwrap().gen;
    assert_eq!(gen, 1);

    let mut landed = std::collections::BTreeMap::<String, u32>::new();
    for i in 0..kills {
        let delay = if i % 3 == 0 {
            let from = (t0_ms - 15.0).max(0.0);
            Duration::from_micros((from * 1000.0) as u64 + random_below(30_000))
        } else {
            Duration::from_micros(random_below(span.as_micros() as u64 * 11 / 10))
        };
        let journals_before = journal_names(&demo.dir);
        let mut child = bin()
            .args(["run", "--yes", "--output", "json"])
            .arg(&demo.plan)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().unwrap();

        let open = openers(&demo.dir, &vault).await;
        assert!(
            !open.is_empty(),
            "kill {i} after {delay:?}: no passphrase file opens the live bundle"
        );
        let where_ = if status.success() {
            "finished".to_owned()
        } else {
            newest_journal_phase(&demo.dir, &journals_before)
                .unwrap_or_else(|| "before the journal".to_owned())
        };
        *landed.entry(where_).or_default() += 1;

        let resumed = cli(&["resume"], &demo.plan);
        assert_eq!(
            resumed.status.code(),
            Some(0),
            "kill {i} after {delay:?}: resume failed: {}\n{}",
            json(&resumed)["outcome"],
            String::from_utf8_lossy(&resumed.stderr)
        );
        let now = vault.status().await.unwrap().unwrap().gen;
        if now == gen {
            let again = cli(&["run"], &demo.plan);
            assert_eq!(
                again.status.code(),
                Some(0),
                "kill {i}: a new run after resume failed: {}",
                String::from_utf8_lossy(&again.stderr)
            );
        }
        let now = vault.status().await.unwrap().unwrap().gen;
        assert_eq!(
            now,
            gen + 1,
            "kill {i} after {delay:?}: not exactly one generation more"
        );
        gen = now;
        assert_eq!(
            openers(&demo.dir, &vault).await.first(),
            Some(&"passphrase"),
            "kill {i}: the current file must open the vault"
        );
        let status = cli(&["status"], &demo.plan);
        assert!(
            json(&status)["lock"].is_null(),
            "kill {i}: lock left behind: {}",
            json(&status)["lock"]
        );
        assert!(
            !demo.dir.join("passphrase.prev.tmp").exists(),
            "kill {i}: a copy of the old passphrase was left behind"
        );
    }
    eprintln!("{kills} random kills over a {span:?} run; where they landed: {landed:?}; passphrases lost: 0");
}
