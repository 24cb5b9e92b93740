//! The demo's plan, as the README hands it out: after `demo --dir DIR`,
//! `plans/demo.toml` (which names DIR=/tmp/vsync-demo; here DIR is a temporary
//! directory put in its place) and `DIR/plan.toml` both rotate the kept sandbox
//! again, through the binary, with `vsync-orchestrate` found on PATH.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EXE: &str = env!("CARGO_BIN_EXE_vsync-orchestrate");

fn bin() -> Command {
    let mut c = Command::new(EXE);
    let dir = Path::new(EXE).parent().unwrap();
    let path = std::env::join_paths(std::iter::once(dir.to_owned()).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("VSYNC_ORCHESTRATE_STATE_DIR")
        .env("PATH", path);
    c
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Stops whatever app the plans' restarts started, whatever the test's outcome.
struct Apps(PathBuf);

impl Drop for Apps {
    fn drop(&mut self) {
        for n in 1..=3 {
            let _ = bin()
                .args(["demo-ctl", "stop", "--app", &n.to_string(), "--dir"])
                .arg(&self.0)
                .output();
        }
    }
}

fn run_json(plan: &Path) -> serde_json::Value {
    let out = bin()
        .args(["run", "--yes", "--output", "json"])
        .arg(plan)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "run {}: {}",
        plan.display(),
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

#[test]
fn the_example_plan_runs_after_the_demo() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap();
    let _apps = Apps(dir.clone());

    let out = bin()
        .args(["demo", "--apps", "3", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let own_plan = dir.join("plan.toml");
    assert!(
        err.contains(&format!(
            "demo: rotate it again with: vsync-orchestrate run {}",
            own_plan.display()
        )),
        "{err}"
    );
    // The apps were on the ports plans/demo.toml names.
    let ports: Vec<u16> = (1..=3)
        .map(|n| {
            std::fs::read_to_string(dir.join(format!("apps/app-{n}.port")))
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(
        ports,
        [8081, 8082, 8083],
        "ports 8081-8083 must be free for this test: {err}"
    );

    // plans/demo.toml is the sandbox's own plan but for the sandbox's path (in the
    // plan's strings; its comments name /tmp/vsync-demo) and the binary's (found on
    // PATH).
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/demo.toml"))
            .unwrap()
            .replace("\"/tmp/vsync-demo", &format!("\"{}", dir.display()));
    let written = std::fs::read_to_string(&own_plan)
        .unwrap()
        .replace(&toml::Value::from(EXE).to_string(), "\"vsync-orchestrate\"");
    assert_eq!(example, written);
    let copied = dir.join("copied.toml");
    std::fs::write(&copied, &example).unwrap();

    // The demo stopped its apps; the example plan's restarts start them again and
    // its health URLs find them on the new generation.
    let s = run_json(&copied);
    assert_eq!(
        (s["gen_before"].as_u64(), s["gen_after"].as_u64()),
        (Some(1), Some(2)),
        "{s}"
    );
    let health = s["health"].as_array().unwrap();
    assert_eq!(health.len(), 3, "{s}");
    assert!(
        health
            .iter()
            .all(|h| h["ok"] == true && h["last"]["gen"] == 2),
        "{s}"
    );

    // And the plan the demo printed, with the apps running this time.
    let s = run_json(&own_plan);
    assert_eq!(
        (s["gen_before"].as_u64(), s["gen_after"].as_u64()),
        (Some(2), Some(3)),
        "{s}"
    );
}
