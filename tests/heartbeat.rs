//! A slow wait with stderr not a terminal (cron, CI): a heartbeat line every
//! 10 s instead of silence, and none when stderr carries JSON log lines only.
//! The demo's restart is made slow by a shell that sleeps before it.

mod support;

use support::demo::{bin, Demo};

/// A demo whose one app's restart takes 11 s: past one heartbeat, short of two.
fn slow_demo() -> Demo {
    let demo = Demo::setup(1);
    let plan = std::fs::read_to_string(&demo.plan).unwrap();
    assert!(plan.contains("argv = ["), "{plan}");
    let slow = plan.replace(
        "argv = [",
        r#"argv = ["/bin/sh", "-c", "sleep 11; exec \"$0\" \"$@\"", "#,
    );
    std::fs::write(&demo.plan, slow).unwrap();
    demo
}

#[test]
fn a_slow_wait_without_a_terminal_prints_a_heartbeat() {
    let demo = slow_demo();
    // `output()` gives the child a pipe for stderr: not a terminal.
    let out = bin()
        .args(["run", "--yes"])
        .arg(&demo.plan)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let beats: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("waiting for"))
        .collect();
    assert_eq!(
        beats,
        ["            waiting for rollouts (10s)…"],
        "{stderr}"
    );
    // A plain line: no spinner, no cursor movement.
    assert!(
        !stderr.contains('\r') && !stderr.contains("\x1b["),
        "{stderr:?}"
    );
}

#[test]
fn json_logs_get_no_heartbeat() {
    let demo = slow_demo();
    let out = bin()
        .args(["--log-format", "json", "run", "--yes"])
        .arg(&demo.plan)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("waiting for rollouts ("), "{stderr}");
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"));
    }
}
