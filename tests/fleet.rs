//! Many environments at once (`run PLAN… --parallel N`), against moto: a failing
//! environment never stops the others, the exit code is the most urgent one, and
//! two processes running the same plans at once rotate each vault exactly once
//! (the locks live in the vaults' bucket).

mod support;

use aws_sdk_secretsmanager as sm;
use std::path::{Path, PathBuf};
use vsync_orchestrate::api::Passphrase;
use vsync_orchestrate::vault::{KdfParams, Layout, LayoutChoice, SeedContent, Vault};

const OLD: &str = "fleet-old-passphrase-0123456789";
const SALT: &str = "FleetSaltFleetSalt012345";

struct Env {
    name: String,
    vault: Vault,
    secret: String,
}

async fn env(ep: &str, name: &str, bucket: &str, sm: &sm::Client) -> Env {
    let storage = std::sync::Arc::new(support::s3_storage(ep, bucket).await);
    let prefix = format!("app/{name}/");
    let vault = Vault::new(
        storage,
        &prefix,
        KdfParams::new(SALT, 1000),
        LayoutChoice::Auto,
    );
    vault
        .seed(
            Layout::Runtime,
            &Passphrase::from(OLD),
            &SeedContent::Json {
                kv: [("K".to_owned(), name.to_owned())].into(),
                assets: Default::default(),
            },
        )
        .await
        .unwrap();
    let secret = support::unique(&format!("fleet/{name}"));
    sm.create_secret()
        .name(&secret)
        .secret_string(OLD)
        .send()
        .await
        .unwrap();
    Env {
        name: name.to_owned(),
        vault,
        secret,
    }
}

fn plan(dir: &Path, ep: &str, bucket: &str, e: &Env, secret: &str, extra: &str) -> PathBuf {
    let path = dir.join(format!("{}.toml", e.name));
    std::fs::write(
        &path,
        format!(
            r#"env = "{name}"
state_dir = "{state}"
[vault]
bucket = "{bucket}"
prefix = "app/{name}/"
region = "us-east-1"
endpoint = "{ep}"
salt = "{SALT}"
iterations = 1000
[[store]]
type = "aws_secrets_manager"
secret_id = "{secret}"
region = "us-east-1"
endpoint = "{ep}"
{extra}"#,
            name = e.name,
            state = dir.join("state").display(),
        ),
    )
    .unwrap();
    path
}

fn cmd(plans: &[PathBuf], parallel: &str) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_vsync-orchestrate"));
    c.args(["run", "--yes", "--output", "json", "--parallel", parallel])
        .args(plans)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL");
    c
}

/// The runs of the one JSON object a fleet run prints.
fn summaries(stdout: &[u8]) -> Vec<serde_json::Value> {
    let v: serde_json::Value =
        serde_json::from_slice(stdout).expect("stdout is exactly one JSON object");
    v["runs"].as_array().expect("its `runs`").clone()
}

async fn five_plans_three_at_a_time_one_failing() {
    let Some(ep) = support::moto_endpoint() else {
        return;
    };
    let (bucket, _) = support::moto_bucket(&ep).await;
    let sm = support::moto_sm(&ep);
    let dir = tempfile::tempdir().unwrap();
    let mut envs = Vec::new();
    let mut plans = Vec::new();
    for name in ["alpha", "bravo", "charlie", "delta", "echo"] {
        let e = env(&ep, name, &bucket, &sm).await;
        // charlie's store names a secret that does not exist: preflight fails (12).
        let secret = if name == "charlie" {
            "no-such-secret".to_owned()
        } else {
            e.secret.clone()
        };
        plans.push(plan(dir.path(), &ep, &bucket, &e, &secret, ""));
        envs.push(e);
    }
    let out = cmd(&plans, "3").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(12), "{stderr}");
    let runs = summaries(&out.stdout);
    assert_eq!(runs.len(), 5, "{stderr}");
    for e in &envs {
        let s = runs.iter().find(|s| s["env"] == e.name.as_str()).unwrap();
        let gen = e.vault.status().await.unwrap().unwrap().gen;
        if e.name == "charlie" {
            assert_eq!(s["exit_code"], 12, "{s}");
            assert_eq!(gen, 0, "a failed preflight touched the vault");
        } else {
            assert_eq!(s["exit_code"], 0, "{}: {}", e.name, s["outcome"]);
            assert_eq!(gen, 1, "{}", e.name);
        }
        // The closing table has a line per env, with its exit code.
        let code = s["exit_code"].as_u64().unwrap();
        assert!(
            stderr
                .lines()
                .any(|l| l.trim_start().starts_with(&e.name) && l.contains(&format!(" {code} "))),
            "{}: no table line\n{stderr}",
            e.name
        );
        // Progress lines are prefixed with the env, so interleaved runs stay readable.
        assert!(
            stderr.contains(&format!("[{:<7}] vsync-orchestrate run", e.name)),
            "{stderr}"
        );
    }
}

async fn two_processes_running_the_same_plans_rotate_each_vault_once() {
    let Some(ep) = support::moto_endpoint() else {
        return;
    };
    let (bucket, _) = support::moto_bucket(&ep).await;
    let sm = support::moto_sm(&ep);
    let dir = tempfile::tempdir().unwrap();
    let mut envs = Vec::new();
    let mut plans = Vec::new();
    for name in ["red", "green", "blue"] {
        let e = env(&ep, name, &bucket, &sm).await;
        let secret = e.secret.clone();
        plans.push(plan(
            dir.path(),
            &ep,
            &bucket,
            &e,
            &secret,
            "[schedule]\nmin_age = \"1h\"\n",
        ));
        envs.push(e);
    }
    // Two "CI jobs" on the same plans at the same moment (their own state dirs: two
    // machines share nothing but the bucket).
    let spawn = |state: &str| {
        let mut c = cmd(&plans, "3");
        c.env("VSYNC_ORCHESTRATE_STATE_DIR", dir.path().join(state));
        c.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("a"), spawn("b"));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let mut all = summaries(&a.stdout);
    all.extend(summaries(&b.stdout));
    assert_eq!(all.len(), 6);
    for e in &envs {
        let runs: Vec<&serde_json::Value> =
            all.iter().filter(|s| s["env"] == e.name.as_str()).collect();
        let rotated = runs.iter().filter(|s| s["gen_after"] == 1).count();
        assert_eq!(rotated, 1, "{}: {runs:?}", e.name);
        for s in &runs {
            let code = s["exit_code"].as_u64().unwrap();
            // The other job saw the lock (11) or, once the first had finished, a
            // vault not due yet (0 without a rotation).
            assert!(code == 0 || code == 11, "{}: {s}", e.name);
        }
        assert_eq!(
            e.vault.status().await.unwrap().unwrap().gen,
            1,
            "{}",
            e.name
        );
        let current = sm
            .get_secret_value()
            .secret_id(&e.secret)
            .version_stage("AWSCURRENT")
            .send()
            .await
            .unwrap();
        assert!(e
            .vault
            .open(&Passphrase::from(current.secret_string().unwrap()))
            .await
            .is_ok());
    }
}

vsync_orchestrate_testkit::main! {
    tests: [
        five_plans_three_at_a_time_one_failing,
        two_processes_running_the_same_plans_rotate_each_vault_once,
    ],
}
