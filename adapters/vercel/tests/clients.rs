//! Vercel's own clients against the same fake the adapter tests use (`fake/mod.rs`,
//! started here in-process on a loopback port): a field, status or error body
//! Vercel would not send fails here.
//!
//! * `@vercel/sdk` (`clients/sdk.mjs`) makes the store's and the restarter's calls
//!   and validates every answer against the schemas of Vercel's OpenAPI document;
//! * the `vercel` CLI runs `env ls`, `env update` (the value on stdin), `redeploy`,
//!   `rollback status` and `promote` with `--api` pointed at the fake; it asks
//!   `/v2/user` and the team first and waits for the deployment with
//!   `@vercel/client`.
//!
//! `VSYNC_TEST_VERCEL_SDK_DIR` and `VSYNC_TEST_VERCEL_CLI` name them
//! (`.ci/services/41-vercel-clients.sh` installs both). The token (the fake's)
//! goes to both in the environment (`VERCEL_TOKEN` for the CLI), never in argv;
//! the env value the SDK writes in a file.

mod fake;

use fake::{start, Build, VercelState, PROJECT, PROJECT_ID, TEAM, TEAM_SLUG, TOKEN};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use vsync_orchestrate_testkit::fake_http::FakeHttp;
use vsync_orchestrate_testkit::service::{current_test, env_or_skip};

const SDK_DIR: &str = "VSYNC_TEST_VERCEL_SDK_DIR";
const CLI: &str = "VSYNC_TEST_VERCEL_CLI";

/// A directory of its own under the system's temp dir, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!(
            "vsync-vercel-{what}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The project the adapters see: a sensitive production passphrase next to a
/// preview and a branch entry of the same key, and an Instant Rollback.
async fn seeded() -> FakeHttp<VercelState> {
    let mut st = VercelState::default();
    st.add_env(
        "VSYNC_PASSPHRASE",
        "old-passphrase-0123456789",
        "sensitive",
        &["production"],
        None,
    );
    st.add_env(
        "VSYNC_PASSPHRASE",
        "preview-value-xxxxxxxx",
        "encrypted",
        &["preview"],
        None,
    );
    st.add_env(
        "VSYNC_PASSPHRASE",
        "branch-value-xxxxxxxx",
        "encrypted",
        &["preview"],
        Some("feature-x"),
    );
    st.roll_back();
    start(st).await
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/sdk.mjs")
}

async fn the_sdk_accepts_every_answer_the_adapters_read() {
    let Some(dir) = env_or_skip(&current_test(), &[SDK_DIR]) else {
        return;
    };
    let fake = seeded().await;
    let before = fake.state().production.clone().unwrap();
    let scratch = Scratch::new("sdk");
    let value_file = scratch.0.join("value");
    std::fs::write(&value_file, "new-passphrase-from-a-file").unwrap();
    let out = tokio::process::Command::new("node")
        .arg(script())
        .env(SDK_DIR, &dir[0])
        .env("VSYNC_FAKE_URL", fake.url())
        .env("VSYNC_FAKE_TEAM", TEAM)
        .env("VSYNC_FAKE_PROJECT", PROJECT)
        .env("VSYNC_FAKE_TOKEN", TOKEN)
        .env("VSYNC_FAKE_VALUE_FILE", &value_file)
        .current_dir(&scratch.0)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the SDK refused an answer:\n{stderr}");
    let saw: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));

    // The store's calls.
    assert_eq!(saw["plainHasRollbackInfo"], false, "{saw}");
    assert_eq!(
        saw["envKeys"],
        json!([
            "VSYNC_PASSPHRASE:sensitive:production",
            "VSYNC_PASSPHRASE:encrypted:preview",
            "VSYNC_PASSPHRASE:encrypted:preview#feature-x"
        ])
    );
    assert_eq!(
        saw["liveRead"],
        json!({"type": "sensitive", "decrypted": false, "hasValue": false})
    );
    assert_eq!(
        saw["staged"],
        json!({"key": "VSYNC_PASSPHRASE_NEXT", "type": "encrypted"})
    );
    assert_eq!(saw["stagedReadBack"], true);
    assert_eq!(
        saw["edited"],
        json!({"type": "sensitive", "comment": "vsync-orchestrate run sdk"})
    );
    assert_eq!(saw["typeChange"]["status"], 400, "{saw}");
    assert_eq!(saw["typeChange"]["code"], "bad_request");
    assert_eq!(saw["removed"], json!(["VSYNC_PASSPHRASE_NEXT"]));
    assert_eq!(
        fake.state().production_value("VSYNC_PASSPHRASE").unwrap(),
        "new-passphrase-from-a-file"
    );

    // The restarter's calls.
    assert_eq!(saw["lastAliasRequest"]["type"], "rollback", "{saw}");
    assert_eq!(saw["lastAliasRequest"]["toDeploymentId"], before.as_str());
    assert_eq!(saw["listed"], json!([before]));
    let id = saw["created"]["id"].as_str().unwrap().to_owned();
    assert_eq!(saw["created"]["readyState"], "QUEUED");
    // Rolled back: READY, but no alias until promoted.
    assert_eq!(saw["ready"]["readyState"], "READY", "{saw}");
    assert!(
        matches!(
            saw["ready"]["aliasAssigned"],
            Value::Null | Value::Bool(false)
        ),
        "{saw}"
    );
    assert_eq!(saw["byUrl"], id.as_str());
    assert_eq!(
        saw["job"],
        json!({"type": "promote", "jobStatus": "succeeded", "toDeploymentId": id})
    );
    assert_eq!(saw["productionAfter"], id.as_str());

    // Failures in Vercel's shape, each with a request id.
    for (k, status, code) in [
        ("missingProject", 404, "not_found"),
        ("badToken", 403, "forbidden"),
        ("missingDeployment", 404, "not_found"),
    ] {
        assert_eq!(saw[k]["status"], status, "{k}: {saw}");
        assert_eq!(saw[k]["code"], code, "{k}: {saw}");
        assert!(saw[k]["message"].is_string(), "{k}: {saw}");
        assert!(saw[k]["requestId"].is_string(), "{k}: {saw}");
    }
}

/// The `vercel` CLI in a home of its own, linked to the fake's project, no
/// telemetry, nothing to answer on stdin.
struct Cli {
    bin: String,
    home: Scratch,
    api: String,
}

/// What the fake was asked, for a failure's message.
fn trail(fake: &FakeHttp<VercelState>) -> String {
    let mut s = String::from("\nthe fake was asked:\n");
    for q in fake.requests() {
        s.push_str(&format!(
            "  {} {}?{}\n",
            q.method,
            q.path,
            q.query.as_deref().unwrap_or("")
        ));
    }
    s
}

struct Ran {
    ok: bool,
    out: String,
}

impl Cli {
    fn find(fake: &FakeHttp<VercelState>) -> Option<Cli> {
        let bin = env_or_skip(&current_test(), &[CLI])?.remove(0);
        let home = Scratch::new("cli");
        let link = home.0.join("app/.vercel");
        std::fs::create_dir_all(&link).unwrap();
        std::fs::write(
            link.join("project.json"),
            json!({ "projectId": PROJECT_ID, "orgId": TEAM }).to_string(),
        )
        .unwrap();
        Some(Cli {
            bin,
            home,
            api: fake.url(),
        })
    }

    async fn run(&self, args: &[&str]) -> Ran {
        self.run_with_stdin(args, None).await
    }

    /// `input` on stdin (an env value: never argv).
    async fn run_with_stdin(&self, args: &[&str], input: Option<&str>) -> Ran {
        use tokio::io::AsyncWriteExt;
        let h = &self.home.0;
        let mut child = tokio::process::Command::new("node")
            .arg(&self.bin)
            .args(["--api", &self.api, "--scope", TEAM_SLUG])
            .args(["--global-config", &h.join("global").to_string_lossy()])
            .args(args)
            .current_dir(h.join("app"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", h)
            .env("XDG_CONFIG_HOME", h.join("config"))
            .env("XDG_DATA_HOME", h.join("data"))
            .env("XDG_CACHE_HOME", h.join("cache"))
            // The token from the environment, not argv.
            .env("VERCEL_TOKEN", TOKEN)
            .env("VERCEL_TELEMETRY_DISABLED", "1")
            .env("NO_UPDATE_NOTIFIER", "1")
            .env("FORCE_COLOR", "0")
            .stdin(if input.is_some() {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(text) = input {
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(text.as_bytes()).await.unwrap();
        }
        let out = child.wait_with_output().await.unwrap();
        Ran {
            ok: out.status.success(),
            out: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }
}

async fn the_cli_lists_env_redeploys_reads_the_rollback_and_promotes() {
    let fake = seeded().await;
    let Some(cli) = Cli::find(&fake) else {
        return;
    };
    let before = fake.state().production.clone().unwrap();

    // (Not rate-limited here: the CLI honours Retry-After plus up to 30 s of
    // random skew, `util/client.ts`.)
    let r = cli.run(&["env", "ls", "production"]).await;
    assert!(r.ok, "{}{}", r.out, trail(&fake));
    assert!(r.out.contains("VSYNC_PASSPHRASE"), "{}", r.out);

    // `env update` re-sends the entry's type, as the store now does; the fake
    // takes it (and would refuse a change out of sensitive).
    let r = cli
        .run_with_stdin(
            &["env", "update", "VSYNC_PASSPHRASE", "production", "--yes"],
            Some("value-from-the-cli-stdin"),
        )
        .await;
    assert!(r.ok, "{}{}", r.out, trail(&fake));
    let patch = fake
        .requests()
        .into_iter()
        .find(|q| q.method == "PATCH")
        .unwrap();
    assert_eq!(patch.json()["type"], "sensitive", "{}", patch.json());
    assert_eq!(
        fake.state().production_value("VSYNC_PASSPHRASE").unwrap(),
        "value-from-the-cli-stdin"
    );

    // Read with `rollbackInfo=true`, as the restarter now reads it.
    let r = cli.run(&["rollback", "status", PROJECT]).await;
    assert!(r.ok, "{}{}", r.out, trail(&fake));
    assert!(
        r.out.contains(&format!(
            "rolled back to {PROJECT}-{}",
            before.to_lowercase()
        )),
        "{}",
        r.out
    );

    // Rolled back: the redeployed build is READY without the production alias, so
    // the CLI's wait (`@vercel/client`) would not end; `--no-wait` then follow it.
    let r = cli.run(&["redeploy", &before, "--no-wait"]).await;
    assert!(r.ok, "{}{}", r.out, trail(&fake));
    let id = {
        let st = fake.state();
        assert_eq!(st.redeploys, 1);
        st.deployments.keys().last().unwrap().clone()
    };
    let post = fake
        .requests()
        .into_iter()
        .find(|q| q.method == "POST" && q.path == "/v13/deployments")
        .unwrap();
    assert_eq!(post.json()["deploymentId"], before.as_str());
    assert_eq!(post.json()["meta"]["action"], "redeploy");
    // Bring it to READY, as the restarter's polls would.
    while fake.state().deployment(&id)["readyState"] != "READY" {
        fake.state().advance(&id);
    }

    let r = cli
        .run(&["promote", &id, "--yes", "--timeout", "30s"])
        .await;
    assert!(r.ok, "{}{}", r.out, trail(&fake));
    assert!(r.out.contains("promoted"), "{}", r.out);
    {
        let st = fake.state();
        assert_eq!(st.production.as_deref(), Some(id.as_str()));
        assert_eq!(st.promotions, 1);
    }
    let promote = fake
        .requests()
        .into_iter()
        .find(|q| q.method == "POST" && q.path.contains("/promote/"))
        .unwrap();
    assert_eq!(promote.json(), json!({}), "the CLI's body");

    // With nothing rolled back, `redeploy` waits for READY and the alias itself.
    let r = cli.run(&["redeploy", &id]).await;
    assert!(r.ok, "{}{}", r.out, trail(&fake));
    assert_eq!(fake.state().redeploys, 2);
}

/// A build that fails ends the CLI's wait with an error, as it ends the
/// restarter's.
async fn the_cli_sees_a_failed_build_fail() {
    let fake = start({
        let mut st = VercelState::default();
        st.build = Build::Fails;
        st
    })
    .await;
    let Some(cli) = Cli::find(&fake) else {
        return;
    };
    let before = fake.state().production.clone().unwrap();
    let r = cli.run(&["redeploy", &before]).await;
    assert!(!r.ok, "{}{}", r.out, trail(&fake));
    assert!(r.out.contains("exited with 1"), "{}", r.out);
}

vsync_orchestrate_testkit::main! {
    tests: [
        the_sdk_accepts_every_answer_the_adapters_read,
        the_cli_lists_env_redeploys_reads_the_rollback_and_promotes,
        the_cli_sees_a_failed_build_fail,
    ],
}
