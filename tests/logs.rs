//! Logs in the ecosystem's shape: a target per engine phase (so `RUST_LOG`
//! selects by module), a failed run logged once at ERROR with its phase, exit code
//! and failed targets as fields, plain values (no `Some(3)`), and with
//! `--log-format json` nothing on stderr but JSON lines. The binary on the
//! embedded demo: no service needed.

mod support;

use support::demo::{bin, Demo};

fn json_lines(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}")))
        .collect()
}

#[test]
fn json_logs_are_all_stderr_has() {
    let demo = Demo::setup(1);
    let out = bin()
        .args(["run", "--yes", "-vv", "--log-format", "json"])
        .arg(&demo.plan)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let lines = json_lines(&stderr);
    assert!(lines.len() > 10, "{stderr}");
    let facts = lines
        .iter()
        .find(|l| l["message"] == "vault facts")
        .expect("a vault facts line");
    assert!(facts["gen_before"].is_u64(), "plain values: {facts}");
    let window = lines
        .iter()
        .find(|l| l.get("window_ms").is_some())
        .expect("a window line");
    let w = window["window_ms"].as_f64().unwrap();
    assert_eq!(
        (w * 1000.0).round() / 1000.0,
        w,
        "milliseconds to the µs: {w}"
    );
    let stage = lines
        .iter()
        .find(|l| l["phase"] == "stage" && l["ok"] == true)
        .expect("a stage row");
    assert_eq!(
        stage["target"], "vsync_orchestrate::engine::stage",
        "{stage}"
    );
}

#[test]
fn rust_log_selects_the_engine_by_module() {
    let demo = Demo::setup(1);
    let out = bin()
        .args(["run", "--yes"])
        .arg(&demo.plan)
        .env("RUST_LOG", "vsync_orchestrate::engine::activate=debug")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let logged: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("vsync_orchestrate::engine::"))
        .collect();
    assert!(
        !logged.is_empty(),
        "nothing logged for the activate target:\n{stderr}"
    );
    assert!(
        logged
            .iter()
            .all(|l| l.contains("vsync_orchestrate::engine::activate")),
        "other targets got through: {logged:#?}"
    );
}

#[test]
fn a_failed_run_logs_one_error_with_phase_and_targets() {
    let demo = Demo::setup(1);
    // The passphrase file the plan's store reads, unreadable: preflight fails.
    let file = demo.root.join("passphrase");
    let plan = std::fs::read_to_string(&demo.plan).unwrap();
    let broken = plan.replace(
        file.to_str().unwrap(),
        demo.root.join("no-such-passphrase").to_str().unwrap(),
    );
    assert_ne!(broken, plan, "the demo plan names its passphrase file");
    let path = demo.root.join("broken.toml");
    std::fs::write(&path, broken).unwrap();
    let out = bin()
        .args(["run", "--yes", "--log-format", "json"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    let lines = json_lines(&stderr);
    let ends: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l.get("exit_code").is_some())
        .collect();
    assert_eq!(ends.len(), 1, "one outcome line: {stderr}");
    let end = ends[0];
    assert_eq!(end["level"], "ERROR", "{end}");
    assert_eq!(
        end["exit_code"].as_u64(),
        out.status.code().map(|c| c as u64),
        "{end}"
    );
    assert_eq!(end["phase"], "preflight", "{end}");
    assert!(
        end["targets"]
            .as_str()
            .is_some_and(|t| t.contains("store.1")),
        "{end}"
    );
}
