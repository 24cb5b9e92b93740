//! A person at a terminal is asked before the first write, as `terraform apply`
//! asks unless `-auto-approve`: anything but `yes` stops with nothing written;
//! `--yes` and no terminal never ask. The binary on the embedded demo, on a real
//! pseudo-terminal (util-linux `script`): no service needed.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use support::demo::Demo;

/// Runs `run PLAN` (and `extra` flags) on a pseudo-terminal, typing `answer`.
fn run_on_a_terminal(plan: &std::path::Path, extra: &str, answer: &str) -> (Option<i32>, String) {
    let bin = env!("CARGO_BIN_EXE_vsync-orchestrate");
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c"])
        .arg(format!("{bin} run {extra} {}", plan.display()))
        .arg("/dev/null")
        .env_remove("VSYNC_ORCHESTRATE_STATE_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux script");
    // Typed once the prompt can be read: the terminal holds it until then.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answer.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn no_at_the_prompt_writes_nothing() {
    let demo = Demo::setup(1);
    let before = demo.passphrase();
    let (code, shown) = run_on_a_terminal(&demo.plan, "", "no\n");
    assert!(shown.contains("Only 'yes' continues"), "{shown}");
    assert_eq!(code, Some(17), "{shown}");
    assert!(shown.contains("not confirmed at the prompt"), "{shown}");
    assert_eq!(demo.passphrase(), before, "the passphrase changed");
    assert!(
        !demo.root.join("passphrase.new").exists(),
        "something was staged"
    );
}

#[test]
fn yes_at_the_prompt_rotates() {
    let demo = Demo::setup(1);
    let before = demo.passphrase();
    let (code, shown) = run_on_a_terminal(&demo.plan, "", "yes\n");
    assert!(shown.contains("Only 'yes' continues"), "{shown}");
    assert_eq!(code, Some(0), "{shown}");
    assert_ne!(demo.passphrase(), before);
}

#[test]
fn the_yes_flag_never_asks() {
    let demo = Demo::setup(1);
    let (code, shown) = run_on_a_terminal(&demo.plan, "--yes", "");
    assert_eq!(code, Some(0), "{shown}");
    assert!(!shown.contains("Only 'yes' continues"), "{shown}");
}
