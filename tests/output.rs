//! Output where Unix expects it: a command's result on stdout (so `status > f` and
//! `audit | grep rotate` capture it), progress and errors on stderr; with
//! `--output json` exactly one JSON object on stdout whatever happens; usage
//! errors with their own exit code. The binary on the embedded demo (a directory
//! vault and demo apps on loopback): no service needed.

mod support;

use std::process::Output;
use support::demo::{bin, Demo};

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn status_prints_its_table_on_stdout() {
    let demo = Demo::setup(1);
    let out = bin().arg("status").arg(&demo.plan).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for field in ["vault ", "layout ", "pointer ", "gen ", "lock "] {
        assert!(stdout.contains(field), "{field:?} not on stdout:\n{stdout}");
        assert!(!stderr.contains(field), "{field:?} on stderr:\n{stderr}");
    }
}

#[test]
fn audit_rows_go_to_stdout_for_grep() {
    let demo = Demo::setup(1);
    let run = bin()
        .args(["run", "--yes"])
        .arg(&demo.plan)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", text(&run).1);
    let out = bin().arg("audit").arg(&demo.plan).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.lines().any(|l| l.contains("rotate")),
        "no rotate row on stdout:\n{stdout}\n--- stderr\n{stderr}"
    );
}

#[test]
fn json_failure_is_still_exactly_one_object() {
    let demo = Demo::setup(1);
    // The same plan over an empty vault directory: no pointer, exit 5.
    let plan = std::fs::read_to_string(&demo.plan).unwrap();
    let vault_dir = demo.root.join("vault");
    let empty = demo.root.join("empty-vault");
    std::fs::create_dir(&empty).unwrap();
    let moved = plan.replace(vault_dir.to_str().unwrap(), empty.to_str().unwrap());
    assert_ne!(moved, plan, "the demo plan names its vault directory");
    let path = demo.root.join("empty.toml");
    std::fs::write(&path, moved).unwrap();

    let out = bin()
        .args(["status", "--output", "json"])
        .arg(&path)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    let v: serde_json::Value =
        serde_json::from_str(&stdout).expect("stdout is exactly one JSON object");
    assert_eq!(v["exit_code"], 5, "{v}");
    assert!(
        v["errors"][0]
            .as_str()
            .is_some_and(|e| e.contains("vault not found")),
        "{v}"
    );
    assert!(stderr.contains("vault not found"), "{stderr}");
}

#[test]
fn json_plan_invalid_is_one_object_too() {
    let out = bin()
        .args(["status", "--output", "json", "tests/fixtures/typo-key.toml"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(10), "{stderr}");
    let v: serde_json::Value =
        serde_json::from_str(&stdout).expect("stdout is exactly one JSON object");
    assert_eq!(v["exit_code"], 10, "{v}");
    assert!(!v["problems"].as_array().unwrap().is_empty(), "{v}");
}

#[test]
fn usage_errors_have_their_own_exit_code() {
    for args in [
        vec!["--no-such-flag"],
        vec!["status"],
        vec!["run", "--parallel", "many", "plans/demo.toml"],
    ] {
        let out = bin().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", text(&out).1);
    }
    for args in [vec!["--help"], vec!["--version"], vec!["status", "--help"]] {
        let out = bin().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out).1);
        assert!(!out.stdout.is_empty(), "{args:?}: help goes to stdout");
    }
}
