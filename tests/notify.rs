//! Notifications as a receiver sees them: the real binary rotates the demo vault
//! and posts to a Slack incoming webhook and a generic JSON webhook, both played by
//! the test kit's fake HTTP server on 127.0.0.1 (a local stand-in that records
//! every request; Slack's side is just "200 ok" for a JSON `{"text": …}`).

mod support;

use std::time::{Duration, Instant};
use support::demo::{bin, Demo};
use vsync_orchestrate_testkit::fake_http::{FakeHttp, Fault, Request, Response, When};

async fn receiver() -> FakeHttp<()> {
    FakeHttp::builder(())
        .route("POST", "/slack/T0/B0/secret", |_, _| {
            Response::text(200, "ok")
        })
        .route("POST", "/hook", |_, _| {
            Response::json(202, &serde_json::json!({}))
        })
        .start()
        .await
}

/// Adds `[notify]` with both webhooks (URLs from the environment) to the demo plan.
fn with_notify(demo: &Demo, extra: &str) {
    let plan = std::fs::read_to_string(&demo.plan).unwrap();
    let plan = format!(
        "{plan}\n[notify]\n{extra}\n[notify.slack]\nurl = {{ env = \"VSYNC_TEST_SLACK_URL\" }}\n\n[notify.webhook]\nurl = {{ env = \"VSYNC_TEST_HOOK_URL\" }}\n"
    );
    std::fs::write(&demo.plan, plan).unwrap();
}

struct Ran {
    code: Option<i32>,
    stderr: String,
    took: Duration,
}

async fn run(demo: &Demo, fake: &FakeHttp<()>) -> Ran {
    let mut cmd = bin();
    cmd.args(["run", "--yes"])
        .arg(&demo.plan)
        .env(
            "VSYNC_TEST_SLACK_URL",
            format!("{}/slack/T0/B0/secret", fake.url()),
        )
        .env("VSYNC_TEST_HOOK_URL", format!("{}/hook", fake.url()));
    let t = Instant::now();
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    Ran {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: t.elapsed(),
    }
}

fn posted(fake: &FakeHttp<()>, path: &str) -> Vec<Request> {
    fake.requests()
        .into_iter()
        .filter(|r| r.path == path)
        .collect()
}

fn events(hook: &[Request]) -> Vec<String> {
    hook.iter()
        .map(|r| r.json()["event"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// No request, header or body, holds either passphrase or the webhook's own path
/// secret in a body.
fn assert_no_secret(fake: &FakeHttp<()>, secrets: &[&str]) {
    for r in fake.requests() {
        let body = String::from_utf8_lossy(&r.body);
        for s in secrets {
            assert!(
                !body.contains(s),
                "a notification body holds a secret: {body}"
            );
            assert!(
                !format!("{:?}", r.headers).contains(s),
                "a notification header holds a secret"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_and_success_reach_slack_and_the_webhook_without_a_secret() {
    let demo = Demo::setup(1);
    let dir = demo.dir.path().canonicalize().unwrap();
    let old = std::fs::read_to_string(dir.join("passphrase")).unwrap();
    with_notify(&demo, "");
    let fake = receiver().await;
    let ran = run(&demo, &fake).await;
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let new = std::fs::read_to_string(dir.join("passphrase")).unwrap();
    assert_ne!(old, new);

    let hook = posted(&fake, "/hook");
    assert_eq!(events(&hook), ["start", "success"], "{}", ran.stderr);
    let (start, done) = (hook[0].json(), hook[1].json());
    assert_eq!(start["env"], "demo");
    assert_eq!(
        (start["gen_before"].as_u64(), start["gen_after"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(done["run_id"], start["run_id"]);
    assert_eq!(
        (done["gen_before"].as_u64(), done["gen_after"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(done["exit_code"], 0);
    assert!(done["window_ms"].as_f64().is_some(), "{done}");
    let row = done["audit_row"].as_str().expect("the audit row");
    assert!(
        row.contains(",rotate,") && row.contains(done["new_version"].as_str().unwrap()),
        "{row}"
    );
    assert_eq!(hook[1].header("content-type"), Some("application/json"));

    let slack = posted(&fake, "/slack/T0/B0/secret");
    assert_eq!(slack.len(), 2);
    let text = slack[1].json()["text"].as_str().unwrap().to_owned();
    assert!(text.contains("vsync demo: rotated, gen 0 → 1"), "{text}");
    assert!(text.contains("audit: `"), "{text}");
    assert!(slack[0].json()["text"]
        .as_str()
        .unwrap()
        .contains("rotation starting (gen 0 → 1)"));

    assert_no_secret(&fake, &[old.trim(), new.trim()]);
    assert!(
        !ran.stderr.contains("/slack/T0/B0/secret"),
        "the webhook URL was printed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_names_the_phase_the_target_and_what_to_do() {
    let demo = Demo::setup(1);
    let dir = demo.dir.path().canonicalize().unwrap();
    let old = std::fs::read_to_string(dir.join("passphrase")).unwrap();
    // A restarter that fails after the rotation: the vault is on gen 1, apps are not.
    let plan = std::fs::read_to_string(&demo.plan).unwrap()
        + "\n[[restart]]\ntype = \"command\"\ntargets = [{ name = \"broken-app\", argv = [\"/bin/sh\", \"-c\", \"echo cannot restart >&2; exit 3\"] }]\n";
    std::fs::write(&demo.plan, plan).unwrap();
    with_notify(&demo, "on = [\"failure\", \"window_open\"]");
    let fake = receiver().await;
    let ran = run(&demo, &fake).await;
    let code = ran.code.unwrap();
    assert!(code != 0 && code != 14, "exit {code}: {}", ran.stderr);

    let hook = posted(&fake, "/hook");
    assert_eq!(events(&hook), ["failure"], "only the moments asked for");
    let f = hook[0].json();
    assert_eq!(f["exit_code"].as_u64(), Some(code as u64));
    assert_eq!(f["phase"], "restart", "{f}");
    assert!(f["target"].as_str().unwrap().contains("broken-app"), "{f}");
    assert!(!f["next_steps"].as_array().unwrap().is_empty(), "{f}");
    let text = posted(&fake, "/slack/T0/B0/secret")[0].json()["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        text.contains(&format!("rotation failed (exit {code})")) && text.contains("broken-app"),
        "{text}"
    );
    let new = std::fs::read_to_string(dir.join("passphrase")).unwrap();
    assert_no_secret(&fake, &[old.trim(), new.trim()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_or_hanging_webhook_never_fails_or_holds_up_the_rotation() {
    let demo = Demo::setup(1);
    with_notify(&demo, "timeout = \"1s\"");
    let fake = receiver().await;
    // Slack answers 500 every time; the webhook never answers in time.
    fake.inject(
        When::path("/slack/T0/B0/secret").times(10),
        Fault::Status(500),
    );
    fake.inject(
        When::path("/hook").times(10),
        Fault::Delay(Duration::from_secs(60)),
    );
    let ran = run(&demo, &fake).await;
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("notification (slack) was not delivered")
            && ran
                .stderr
                .contains("notification (webhook) was not delivered"),
        "{}",
        ran.stderr
    );
    assert_eq!(
        posted(&fake, "/hook").len(),
        2,
        "start and success were both tried"
    );
    // Each of the two deliveries waits at most its 1 s timeout, at the same time
    // as the rotation (start) or after it (success): nowhere near the 60 s hang.
    assert!(
        ran.took < Duration::from_secs(30),
        "the run took {:?}",
        ran.took
    );
    let out = bin().args(["validate"]).arg(&demo.plan).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn a_literal_webhook_url_is_refused_with_its_location() {
    let demo = Demo::setup(1);
    let plan = std::fs::read_to_string(&demo.plan).unwrap()
        + "\n[notify.slack]\nurl = \"https://hooks.example.invalid/services/T0/B0/abc\"\n";
    std::fs::write(&demo.plan, &plan).unwrap();
    let out = bin().arg("validate").arg(&demo.plan).output().unwrap();
    // validate's verdicts are its result: stdout.
    let err = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(10), "{err}");
    let line = plan
        .lines()
        .position(|l| l.starts_with("url = \"https"))
        .unwrap()
        + 1;
    assert!(err.contains(&format!(":{line}:")), "{err}");
    assert!(err.contains("never written in a plan"), "{err}");
    assert!(
        !err.contains("/services/T0/B0/abc"),
        "the literal URL was echoed: {err}"
    );
}
