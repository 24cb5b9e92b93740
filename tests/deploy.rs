//! The deploy examples in `deploy/`, exercised: the CI validation step on a plan
//! repository, and the systemd timer + service booted in the nspawn container CI
//! runs (the timer must fire the tool, and the tool must rotate).

mod support;

use std::path::Path;
use std::process::Command;

const EXE: &str = env!("CARGO_BIN_EXE_vsync-orchestrate");

fn repo(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// The CI example: the script (and the workflow's command) passes a good plan
/// repository and fails a bad one with exit 10 and file:line:column.
fn validate_plans_script_checks_a_plan_repository() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("plans")).unwrap();
    for p in ["demo.toml", "aws-ecs.toml"] {
        std::fs::copy(repo("plans").join(p), dir.path().join("plans").join(p)).unwrap();
    }
    let bin_dir = Path::new(EXE).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap());
    let run = || {
        Command::new("sh")
            .arg(repo("deploy/ci/validate-plans.sh"))
            .current_dir(dir.path())
            .env("PATH", &path)
            .output()
            .unwrap()
    };
    let ok = run();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    std::fs::write(
        dir.path().join("plans/broken.toml"),
        "env = \"prod\"\n[vault]\nbucket = \"b\"\nprefix = \"app/prod/\"\nsalt = { env = \"S\" }\n[[store]]\ntype = \"aws_secrets_manager\"\nsecretid = \"x\"\n",
    )
    .unwrap();
    let bad = run();
    // validate's verdicts are its result (stdout); the script's own words, stderr.
    let err = format!(
        "{}{}",
        String::from_utf8_lossy(&bad.stdout),
        String::from_utf8_lossy(&bad.stderr)
    );
    assert_eq!(bad.status.code(), Some(10), "{err}");
    assert!(err.contains("plans/broken.toml:8:1"), "{err}");
    assert!(err.contains("did you mean `secret_id`"), "{err}");

    let workflow = std::fs::read_to_string(repo("deploy/ci/github-actions.yml")).unwrap();
    assert!(workflow.contains("vsync-orchestrate validate plans/*.toml"));
}

/// The systemd example, booted for real: the timer fires the service, the service
/// runs every plan in /etc/vsync-orchestrate/plans, the vault rotates, and the
/// metrics file appears. (A drop-in shortens the timer to seconds and runs it as
/// root; everything else is the shipped unit.)
async fn systemd_timer_fires_the_tool() {
    let Some(env) = support::nspawn::env("systemd_timer_fires_the_tool") else {
        return;
    };
    let cleanup = "systemctl stop vsync-orchestrate.timer vsync-orchestrate.service 2>/dev/null; \
        rm -f /etc/systemd/system/vsync-orchestrate.service /etc/systemd/system/vsync-orchestrate.timer; \
        rm -rf /etc/systemd/system/vsync-orchestrate.timer.d /etc/systemd/system/vsync-orchestrate.service.d; \
        if [ -x /usr/local/bin/vsync-orchestrate-deploy-test ] && [ -d /var/lib/vsync-deploy-test ]; then \
          /usr/local/bin/vsync-orchestrate-deploy-test demo-ctl stop --app 1 --dir /var/lib/vsync-deploy-test; fi; \
        rm -rf /var/lib/vsync-deploy-test /etc/vsync-orchestrate /var/lib/vsync-orchestrate \
          /var/lib/prometheus/node-exporter/vsync-orchestrate.prom /usr/local/bin/vsync-orchestrate-deploy-test; \
        systemctl reset-failed vsync-orchestrate.service vsync-orchestrate.timer 2>/dev/null; \
        systemctl daemon-reload";
    env.ssh(cleanup);

    // The tool, and a demo sandbox (vault, passphrase file, one app) in the container.
    env.put(
        "/usr/local/bin/vsync-orchestrate-deploy-test",
        &std::fs::read(EXE).unwrap(),
        "0755",
    );
    let plan = env.ssh(
        "/usr/local/bin/vsync-orchestrate-deploy-test demo-setup --apps 1 --iterations 2000 --dir /var/lib/vsync-deploy-test",
    );
    let plan = plan.trim().to_owned();
    // Without its [[restart]] and [verify] tables: the demo app needs a terminal
    // session this test does not keep; the vault and the passphrase file are what
    // the service must rotate.
    env.ssh(&format!(
        "mkdir -p /etc/vsync-orchestrate/plans /var/lib/prometheus/node-exporter && \
         sed '/^\\[\\[restart\\]\\]/,$d' {plan} > /etc/vsync-orchestrate/plans/demo.toml && \
         /usr/local/bin/vsync-orchestrate-deploy-test demo-ctl stop --app 1 --dir /var/lib/vsync-deploy-test"
    ));

    // The shipped units, with the binary at the path the test installed it.
    let service = std::fs::read_to_string(repo("deploy/systemd/vsync-orchestrate.service"))
        .unwrap()
        .replace(
            "/usr/local/bin/vsync-orchestrate ",
            "/usr/local/bin/vsync-orchestrate-deploy-test ",
        );
    let timer = std::fs::read_to_string(repo("deploy/systemd/vsync-orchestrate.timer")).unwrap();
    env.put(
        "/etc/systemd/system/vsync-orchestrate.service",
        service.as_bytes(),
        "0644",
    );
    env.put(
        "/etc/systemd/system/vsync-orchestrate.timer",
        timer.as_bytes(),
        "0644",
    );
    env.put(
        "/etc/systemd/system/vsync-orchestrate.service.d/test.conf",
        // A directory vault and a `file` store on this host are writes the
        // unit's ProtectSystem=strict refuses unless listed, as its comment says.
        b"[Service]\nUser=root\nReadWritePaths=/var/lib/vsync-deploy-test\n",
        "0644",
    );
    env.put(
        "/etc/systemd/system/vsync-orchestrate.timer.d/test.conf",
        b"[Timer]\nOnCalendar=\nRandomizedDelaySec=0\nOnActiveSec=2s\nAccuracySec=100ms\n",
        "0644",
    );
    env.ssh("systemd-analyze verify /etc/systemd/system/vsync-orchestrate.service /etc/systemd/system/vsync-orchestrate.timer 2>&1 | grep -v 'demo@\\|vsyncapp@' || true");
    env.ssh("systemctl daemon-reload");
    // A fresh unit: an earlier run's exit (kept by systemd) must not pass for this one.
    assert_eq!(
        env.prop(
            "vsync-orchestrate.service",
            "ExecMainExitTimestampMonotonic"
        ),
        "0"
    );
    env.ssh("systemctl start vsync-orchestrate.timer");

    // The timer fires; the oneshot service runs to completion.
    let began = std::time::Instant::now();
    loop {
        let runs = env.prop(
            "vsync-orchestrate.service",
            "ExecMainExitTimestampMonotonic",
        );
        if runs != "0" && !runs.is_empty() {
            break;
        }
        assert!(
            began.elapsed().as_secs() < 120,
            "the timer never fired the service: {}",
            env.ssh("systemctl status vsync-orchestrate.timer vsync-orchestrate.service --no-pager 2>&1 || true")
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let result = env.prop("vsync-orchestrate.service", "Result");
    let journal = env.ssh("journalctl -u vsync-orchestrate.service --no-pager -n 80 2>&1 || true");
    assert_eq!(result, "success", "{journal}");
    let status = env.ssh(&format!(
        "/usr/local/bin/vsync-orchestrate-deploy-test status --output json {plan}"
    ));
    let st: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(st["status"]["gen"], 1, "{journal}");
    let metrics = env
        .get("/var/lib/prometheus/node-exporter/vsync-orchestrate.prom")
        .expect("the metrics file was written");
    // Labelled by env, plan and vault (two plans of one env keep a series each).
    assert!(
        metrics.lines().any(|l| l.starts_with(
            "vsync_orchestrate_last_exit_code{env=\"demo\",plan=\"/etc/vsync-orchestrate/plans/"
        ) && l.ends_with("} 0")),
        "{metrics}"
    );
    assert!(
        env.ssh("ls /var/lib/vsync-orchestrate/runs")
            .contains(".json"),
        "the journal lives in the service's StateDirectory"
    );
    env.ssh(cleanup);
}

vsync_orchestrate_testkit::main! {
    tests: [
        #[sync] validate_plans_script_checks_a_plan_repository,
        systemd_timer_fires_the_tool,
    ],
}
