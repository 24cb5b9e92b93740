//! The binary as an operator uses it: `validate` and `plan` output (snapshots),
//! every example plan, and the embedded demo end to end.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::demo::Demo;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vsync-orchestrate"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("VSYNC_ORCHESTRATE_STATE_DIR");
    c
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Compares with `tests/snapshots/NAME`; `UPDATE_SNAPSHOTS=1` rewrites it.
fn snapshot(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var("UPDATE_SNAPSHOTS").as_deref() == Ok("1") {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "output differs from {} (UPDATE_SNAPSHOTS=1 to accept)\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

/// Replaces what changes from run to run with placeholders.
fn normalize(s: &str, dir: &Path) -> String {
    let s = s.replace(&dir.display().to_string(), "<DIR>");
    let s = s.replace(env!("CARGO_BIN_EXE_vsync-orchestrate"), "<EXE>");
    let rules = [
        (r"\d{8}T\d{6}Z-[0-9a-f]{6}", "<RUN>"),
        (r"\d{8}-\d{6}", "<STAMP>"),
        (r"\(\d+(\.\d+)? (ms|s)\)", "(<T>)"),
        (r"\b\d+(\.\d+)? (ms|s)\b", "<T>"),
        (r"\[ *\d+\.\d+s\]", "[<T>]"),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:<PORT>"),
        (r"If-Match: [0-9a-f]{32}", "If-Match: <ETAG>"),
    ];
    rules.iter().fold(s, |acc, (re, rep)| {
        regex::Regex::new(re)
            .unwrap()
            .replace_all(&acc, *rep)
            .into_owned()
    })
}

/// The list of store types `validate` offers for an unknown one is the registry's
/// (`tests/registry.rs` checks it there): shown as a placeholder, so a new adapter
/// changes no snapshot.
fn store_types_as_placeholder(s: &str) -> String {
    regex::Regex::new(r"unknown variant `([a-z_]+)`, expected one of (?:`[a-z_]+`(?:, )?)+")
        .unwrap()
        .replace_all(s, "unknown variant `${1}`, expected one of <STORE TYPES>")
        .into_owned()
}

#[test]
fn every_example_plan_validates() {
    let plans: Vec<PathBuf> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("plans"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
    assert!(plans.len() >= 4, "{plans:?}");
    for p in &plans {
        vsync_orchestrate::plan::load(p).unwrap_or_else(|e| panic!("{e}"));
    }
    let out = bin().arg("validate").args(&plans).output().unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
}

/// "Validates" must mean "runs": every example plan's stores and restarters are
/// built (offline: building opens no connection), so no plan in `plans/` names an
/// adapter `run` would refuse.
#[tokio::test]
async fn every_example_plan_builds_its_adapters() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans");
    let mut built = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let loaded = vsync_orchestrate::plan::load(&p).unwrap_or_else(|e| panic!("{e}"));
        let ctx = vsync_orchestrate::api::BuildContext::new();
        let (stores, restarters) = vsync_orchestrate::engine::build::adapters(&loaded.plan, &ctx)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_eq!(stores.len(), loaded.plan.stores.len());
        assert_eq!(restarters.len(), loaded.plan.restarts.len());
        built += 1;
    }
    assert!(built >= 4);
}

#[test]
fn validate_output() {
    let mut fixtures: Vec<PathBuf> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
            .unwrap()
            .map(|e| {
                e.unwrap()
                    .path()
                    .strip_prefix(env!("CARGO_MANIFEST_DIR"))
                    .unwrap()
                    .to_owned()
            })
            .collect();
    fixtures.sort();
    let out = bin().arg("validate").args(&fixtures).output().unwrap();
    assert_eq!(out.status.code(), Some(10));
    let (stdout, stderr) = text(&out);
    // The verdicts are validate's result: stdout (issue "operator's first contact").
    assert_eq!(stderr, "");
    assert!(
        !stdout.contains("hunter2"),
        "a literal secret was echoed back"
    );
    snapshot("validate.txt", &store_types_as_placeholder(&stdout));

    let json = bin()
        .args(["validate", "--output", "json"])
        .args(&fixtures)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["exit_code"], 10);
    assert_eq!(v["plans"].as_array().unwrap().len(), fixtures.len());
}

#[test]
fn plan_output_is_a_dry_run() {
    let demo = Demo::setup(2);
    let dir = demo.dir.path().canonicalize().unwrap();
    let before = std::fs::read(dir.join("passphrase")).unwrap();
    let out = bin().arg("plan").arg(&demo.plan).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // Progress on stderr, the closing block (the dry run's result) on stdout.
    assert!(stdout.contains("exit 0: dry run"), "{stdout}");
    assert!(!stderr.contains("exit 0: dry run"), "{stderr}");
    let json = bin()
        .args(["plan", "--output", "json"])
        .arg(&demo.plan)
        .output()
        .unwrap();
    let (json_out, json_err) = text(&json);
    support::assert_rows_match(&json_err, &serde_json::from_str(&json_out).unwrap());
    assert_eq!(std::fs::read(dir.join("passphrase")).unwrap(), before);
    assert!(!dir.join("passphrase.new").exists());
    snapshot("plan.txt", &normalize(&format!("{stderr}{stdout}"), &dir));
}

#[test]
fn demo_rotates_under_running_apps() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["demo", "--apps", "3", "--output", "json", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let s: serde_json::Value =
        serde_json::from_str(&stdout).expect("stdout is exactly one JSON object");
    support::assert_rows_match(&stderr, &s);
    assert_eq!(
        (
            s["exit_code"].as_u64(),
            s["gen_before"].as_u64(),
            s["gen_after"].as_u64()
        ),
        (Some(0), Some(0), Some(1))
    );
    assert!(s["window_ms"].as_f64().unwrap() < 1000.0);
    assert_eq!(s["health"].as_array().unwrap().len(), 3);
    assert!(s["health"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["ok"] == true && h["last"]["gen"] == 1));
    assert!(stderr.contains("window T0 → T1"), "{stderr}");

    // The sandbox holds what the apps boot from, with the previous passphrase beside it.
    let d = dir.path().canonicalize().unwrap();
    use std::os::unix::fs::PermissionsExt;
    for f in ["passphrase", "passphrase.prev", "vsync-config"] {
        let mode = std::fs::metadata(d.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    let new = std::fs::read_to_string(d.join("passphrase")).unwrap();
    let old = std::fs::read_to_string(d.join("passphrase.prev")).unwrap();
    assert_ne!(new, old);
    assert!(d.join("plan.toml").exists() && d.join("state/runs").read_dir().unwrap().count() == 1);
    let journal: String = d
        .join("state/runs")
        .read_dir()
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    for secret in [&new, &old] {
        assert!(
            !stdout.contains(secret.as_str())
                && !stderr.contains(secret.as_str())
                && !journal.contains(secret.as_str())
        );
    }
    // No app processes left behind.
    for n in 1..=3 {
        assert!(
            !d.join(format!("apps/app-{n}.pid")).exists(),
            "app {n} still has a pid file"
        );
        let port: u16 = std::fs::read_to_string(d.join(format!("apps/app-{n}.port")))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "app {n} still listens"
        );
    }
}

#[test]
fn status_and_audit_after_a_run() {
    let demo = Demo::setup(1);
    let run = bin()
        .args(["run", "--yes"])
        .arg(&demo.plan)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", text(&run).1);
    let st = bin()
        .args(["status", "--output", "json"])
        .arg(&demo.plan)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(v["status"]["gen"], 1);
    assert!(v["lock"].is_null());
    assert_eq!(v["last_run"]["exit_code"], 0);
    let audit = bin()
        .args(["audit", "--limit", "5", "--output", "json"])
        .arg(&demo.plan)
        .output()
        .unwrap();
    let a: serde_json::Value = serde_json::from_slice(&audit.stdout).unwrap();
    let rows = a["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["action"], "rotate");
    assert_eq!(a["key"], "demo/demo/audit.csv");
}

#[test]
fn yes_refuses_where_a_prompt_would_be_needed() {
    let demo = Demo::setup(1);
    let plan_text = std::fs::read_to_string(&demo.plan)
        .unwrap()
        .replace("old = \"store\"", "old = \"prompt\"");
    std::fs::write(&demo.plan, plan_text).unwrap();
    let out = bin()
        .args(["run", "--yes"])
        .arg(&demo.plan)
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--yes forbids prompts"), "{stderr}");
    assert!(!demo.dir.path().join("passphrase.new").exists());
}

#[test]
fn a_straggler_is_named_by_url_and_notify_gets_the_summary() {
    let demo = Demo::setup(2);
    let dir = demo.dir.path().canonicalize().unwrap();
    let original = std::fs::read_to_string(&demo.plan).unwrap();
    // Restart only app-1: app-2 keeps serving the old generation.
    let app2 = original
        .lines()
        .find(|l| l.contains("name = \"app-2\""))
        .unwrap()
        .to_owned();
    let stale_port = std::fs::read_to_string(dir.join("apps/app-2.port"))
        .unwrap()
        .trim()
        .to_owned();
    let notified = dir.join("notified.json");
    let plan_text = original
        .replace(&format!("{app2}\n"), "")
        .replace("timeout = \"60s\"", "timeout = \"2s\"")
        + &format!(
            "\n[notify]\ncommand = [\"/bin/sh\", \"-c\", \"cat > {}\"]\n",
            notified.display()
        );
    std::fs::write(&demo.plan, plan_text).unwrap();
    let out = bin()
        .args(["run", "--yes", "--output", "json"])
        .arg(&demo.plan)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(16), "{stderr}");
    let s: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    support::assert_rows_match(&stderr, &s);
    let stragglers: Vec<&serde_json::Value> = s["health"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["ok"] == false)
        .collect();
    assert_eq!(stragglers.len(), 1);
    assert!(stragglers[0]["url"]
        .as_str()
        .unwrap()
        .contains(&format!(":{stale_port}/")));
    assert_eq!(stragglers[0]["last"]["state"], "stale");
    assert!(s["next_steps"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n.as_str().unwrap().contains(&stale_port)));
    // The notify command got the same summary on stdin, and no passphrase.
    let sent: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&notified).unwrap()).unwrap();
    assert_eq!(
        (sent["exit_code"].as_u64(), sent["run_id"].clone()),
        (Some(16), s["run_id"].clone())
    );
    let new = std::fs::read_to_string(dir.join("passphrase")).unwrap();
    assert!(!std::fs::read_to_string(&notified).unwrap().contains(&new));
}

/// A passphrase taken from an environment variable never reaches a child process:
/// not a restart command, not a passphrase helper, not the `[notify]` command.
#[test]
fn child_processes_never_inherit_a_passphrase_variable() {
    let demo = Demo::setup(1);
    let dir = demo.dir.path().canonicalize().unwrap();
    let d = dir.display();
    let secret = "child-env-secret-value-0123456789";
    let original = std::fs::read_to_string(&demo.plan).unwrap();
    let plan_text = original
        .replace(
            "new = { generate = { length = 32 } }",
            "new = { env = \"VSYNC_TEST_NEW_PASSPHRASE\" }",
        )
        .replace(
            "old = \"store\"",
            &format!("old = {{ command = [\"/bin/sh\", \"-c\", \"env > {d}/helper.env; cat {d}/passphrase\"] }}"),
        )
        + &format!(
            "\n[[restart]]\ntype = \"command\"\ntargets = [{{ name = \"dump\", argv = [\"/bin/sh\", \"-c\", \"env > {d}/restart.env\"] }}]\n\n[notify]\ncommand = [\"/bin/sh\", \"-c\", \"env > {d}/notify.env\"]\n"
        );
    assert!(plan_text.contains("VSYNC_TEST_NEW_PASSPHRASE") && plan_text.contains("helper.env"));
    std::fs::write(&demo.plan, plan_text).unwrap();
    let out = bin()
        .args(["run", "--yes"])
        .arg(&demo.plan)
        .env("VSYNC_TEST_NEW_PASSPHRASE", secret)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    assert_eq!(
        std::fs::read_to_string(dir.join("passphrase")).unwrap(),
        secret,
        "the rotation used the variable's value"
    );
    for f in ["helper.env", "restart.env", "notify.env"] {
        let env = std::fs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(env.contains("PATH="), "{f} is a real environment dump");
        assert!(
            !env.contains(secret) && !env.contains("VSYNC_TEST_NEW_PASSPHRASE"),
            "{f} inherited the passphrase variable"
        );
    }
}

/// Logs at every level, text and JSON, hold no passphrase — old or new — and the
/// JSON lines carry the run id.
#[test]
fn logs_at_every_level_hold_no_secret() {
    let demo = Demo::setup(1);
    let dir = demo.dir.path().canonicalize().unwrap();
    let mut secrets = vec![std::fs::read_to_string(dir.join("passphrase")).unwrap()];
    for (args, rust_log) in [
        (vec!["-v"], None),
        (vec!["-vv"], None),
        (vec!["-vvv", "--log-format", "json"], None),
        (vec![], Some("trace")),
    ] {
        let mut cmd = bin();
        cmd.args(["run", "--yes"]).args(&args).arg(&demo.plan);
        match rust_log {
            Some(l) => cmd.env("RUST_LOG", l),
            None => cmd.env_remove("RUST_LOG"),
        };
        let out = cmd.output().unwrap();
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        secrets.push(std::fs::read_to_string(dir.join("passphrase")).unwrap());
        for s in &secrets {
            assert!(
                !stderr.contains(s.trim()) && !stdout.contains(s.trim()),
                "{args:?} {rust_log:?}: a passphrase reached the logs"
            );
        }
        assert!(
            stderr.contains("INFO") || stderr.contains("\"level\":\"INFO\""),
            "{args:?} {rust_log:?}: no log lines at all"
        );
        if args.contains(&"json") {
            let line = stderr
                .lines()
                .find(|l| l.starts_with('{') && l.contains("staged as"))
                .expect("a JSON log line for the stage row");
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(v["run"].as_str().is_some_and(|r| r.len() > 10), "{line}");
            assert_eq!(v["phase"], "stage", "{line}");
            assert_eq!(v["span"]["slot"], "store.1", "{line}");
        }
    }
}

/// `--metrics-file` writes a Prometheus textfile a real parser reads, keeps other
/// environments' series, and `status` says how old the rotation is and whether it
/// is due.
#[test]
fn metrics_file_and_status_age() {
    let demo = Demo::setup(1);
    let dir = demo.dir.path().canonicalize().unwrap();
    let metrics = dir.join("vsync.prom");
    std::fs::write(
        &metrics,
        "# HELP vsync_orchestrate_last_exit_code x\n# TYPE vsync_orchestrate_last_exit_code gauge\nvsync_orchestrate_last_exit_code{env=\"other\"} 15\n",
    )
    .unwrap();
    let with_schedule =
        std::fs::read_to_string(&demo.plan).unwrap() + "\n[schedule]\nmin_age = \"30d\"\n";
    std::fs::write(&demo.plan, with_schedule).unwrap();
    let out = bin()
        .args(["run", "--yes", "--metrics-file"])
        .arg(&metrics)
        .arg(&demo.plan)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    let body = std::fs::read_to_string(&metrics).unwrap();
    let parsed = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let value = |name: &str, env: &str| {
        parsed
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get("env") == Some(env))
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
    };
    assert_eq!(
        value("vsync_orchestrate_last_exit_code", "demo"),
        Some(0.0),
        "{body}"
    );
    assert_eq!(
        value("vsync_orchestrate_generation", "demo"),
        Some(1.0),
        "{body}"
    );
    assert!(value("vsync_orchestrate_window_seconds", "demo").unwrap() < 1.0);
    // The demo's file store is read at boot: the window apps feel is the store's.
    assert_eq!(
        value("vsync_orchestrate_delivery_window_seconds", "demo"),
        value("vsync_orchestrate_window_seconds", "demo"),
        "{body}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let last = value("vsync_orchestrate_last_success_timestamp_seconds", "demo").unwrap();
    assert!((now - last).abs() < 120.0, "{body}");
    assert_eq!(
        value("vsync_orchestrate_last_exit_code", "other"),
        Some(15.0),
        "another env's series was lost"
    );

    let st = bin()
        .args(["status", "--output", "json"])
        .arg(&demo.plan)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(v["overdue"], false, "{v}");
    assert!(v["rotation_age_seconds"].as_u64().unwrap() < 120);
    assert!(text(&st).1.contains("not due yet"), "{}", text(&st).1);
}

/// `--version` names the commit; completions and the man page come from the CLI.
#[test]
fn version_completions_and_man_page() {
    let v = bin().arg("--version").output().unwrap();
    let line = text(&v).0;
    let has_commit = regex::Regex::new(r"\(([0-9a-f]{12}|unknown commit)\)")
        .unwrap()
        .is_match(&line);
    assert!(has_commit, "{line}");
    let c = bin().args(["completions", "bash"]).output().unwrap();
    let comp = text(&c).0;
    assert!(
        comp.contains("vsync-orchestrate")
            && comp.contains("resume")
            && comp.contains("--state-dir")
    );
    let m = bin().arg("man").output().unwrap();
    let man = text(&m).0;
    assert!(
        man.starts_with(".ie") || man.contains(".TH"),
        "{}",
        &man[..200.min(man.len())]
    );
    assert!(man.contains("resume"));
}
