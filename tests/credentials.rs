//! Credential and configuration failures as an operator meets them: `plan` on a
//! machine without cloud credentials. Each class ends in preflight (exit 12) with
//! one message that says what is missing, where the tool looked and the command
//! that fixes it, said once on each stream, and the JSON carries the phase and
//! the command. Nothing here reaches a cloud: every environment is built from
//! scratch, with metadata services off or pointed at local ports.

#![cfg(all(feature = "s3", feature = "aws", feature = "gcp"))]

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The binary with nothing of this machine's environment: a temporary HOME,
/// PATH, the plans' salt, and `vars`.
fn plan(home: &Path, file: &str, json: bool, vars: &[(&str, &str)]) -> (i32, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vsync-orchestrate"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home)
        .env("VSYNC_SALT", "0123456789abcdefghij")
        .env("VSYNC_ORCHESTRATE_STATE_DIR", home.join("state"));
    for (k, v) in vars {
        c.env(k, v);
    }
    if json {
        c.args(["--output", "json"]);
    }
    let out = c.args(["plan", file]).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `file` twice (human, then JSON) and checks everything a failure class
/// promises: exit 12, `message` exactly once on stderr and once in the human
/// result, no SDK dump, and the JSON's phase, outcome and next step.
fn fails_in_preflight(home: &Path, file: &str, vars: &[(&str, &str)], message: &str, fix: &str) {
    let (code, stdout, stderr) = plan(home, file, false, vars);
    assert_eq!(code, 12, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(stderr.matches(message).count(), 1, "stderr:\n{stderr}");
    assert_eq!(stdout.matches(message).count(), 1, "stdout:\n{stdout}");
    assert!(
        stdout.contains(&format!("next steps:\n    - {fix}\n")),
        "stdout:\n{stdout}"
    );
    for dump in [
        "DispatchFailure",
        "ConnectorError",
        "ProviderError",
        "aws_config",
    ] {
        assert!(!stderr.contains(dump), "{dump} in stderr:\n{stderr}");
    }
    let (code, stdout, _) = plan(home, file, true, vars);
    assert_eq!(code, 12);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["failure"]["phase"], "preflight", "{v:#}");
    assert_eq!(v["failure"]["exit"], "preflight_failed", "{v:#}");
    assert_eq!(v["next_steps"], serde_json::json!([fix]), "{v:#}");
    assert!(v["outcome"].as_str().unwrap().ends_with(message), "{v:#}");
}

fn home() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

const STATIC_KEYS: [(&str, &str); 2] = [
    ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
    (
        "AWS_SECRET_ACCESS_KEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
];

#[test]
fn aws_without_any_credentials() {
    let h = home();
    let p = h.path().display();
    fails_in_preflight(
        h.path(),
        "plans/aws-ecs.toml",
        &[("AWS_EC2_METADATA_DISABLED", "true")],
        &format!(
            "vault: permission denied: no AWS credentials: none in the environment (AWS_ACCESS_KEY_ID, AWS_PROFILE, AWS_WEB_IDENTITY_TOKEN_FILE, AWS_CONTAINER_CREDENTIALS_*), none in {p}/.aws/config or {p}/.aws/credentials, and the instance metadata service is off (AWS_EC2_METADATA_DISABLED=true); run `aws configure`"
        ),
        "aws configure",
    );
}

/// A metadata service that accepts connections and never answers costs at most
/// the discovery timeout, not the SDK's retry budget.
#[test]
fn aws_with_a_silent_metadata_service() {
    let h = home();
    let p = h.path().display();
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let began = Instant::now();
    let (code, stdout, _) = plan(
        h.path(),
        "plans/aws-ecs.toml",
        false,
        &[("AWS_EC2_METADATA_SERVICE_ENDPOINT", &endpoint)],
    );
    assert!(
        began.elapsed() < Duration::from_secs(6),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(code, 12, "{stdout}");
    assert!(
        stdout.contains(&format!(
            "none in {p}/.aws/config or {p}/.aws/credentials, and the instance metadata service "
        )),
        "{stdout}"
    );
}

#[test]
fn aws_profile_not_in_the_config() {
    let h = home();
    let p = h.path().display();
    std::fs::create_dir_all(h.path().join(".aws")).unwrap();
    std::fs::write(
        h.path().join(".aws/config"),
        "[default]\nregion = eu-west-1\n\n[profile staging]\nregion = eu-west-1\n",
    )
    .unwrap();
    fails_in_preflight(
        h.path(),
        "plans/aws-ecs.toml",
        &[("AWS_PROFILE", "nope"), ("AWS_EC2_METADATA_DISABLED", "true")],
        &format!(
            "vault: invalid configuration: AWS profile `nope` (from AWS_PROFILE) is in neither {p}/.aws/config nor {p}/.aws/credentials; create it with `aws configure --profile nope`"
        ),
        "aws configure --profile nope",
    );
}

/// `plans/aws-eks.toml`'s store names `profile = "prod-admin"` and no region.
#[test]
fn aws_plan_profile_missing() {
    let h = home();
    let p = h.path().display();
    let mut vars = STATIC_KEYS.to_vec();
    vars.push(("AWS_EC2_METADATA_DISABLED", "true"));
    fails_in_preflight(
        h.path(),
        "plans/aws-eks.toml",
        &vars,
        &format!(
            "aws_secrets_manager:prod-admin@(default region):prod/myapp/config: invalid configuration: AWS profile `prod-admin` (from the plan) is in neither {p}/.aws/config nor {p}/.aws/credentials; create it with `aws configure --profile prod-admin`"
        ),
        "aws configure --profile prod-admin",
    );
}

#[test]
fn aws_region_missing() {
    let h = home();
    let p = h.path().display();
    std::fs::create_dir_all(h.path().join(".aws")).unwrap();
    std::fs::write(
        h.path().join(".aws/config"),
        "[profile prod-admin]\nsso_session = acme\nsso_account_id = 123456789012\nsso_role_name = Admin\n",
    )
    .unwrap();
    let mut vars = STATIC_KEYS.to_vec();
    vars.push(("AWS_EC2_METADATA_DISABLED", "true"));
    fails_in_preflight(
        h.path(),
        "plans/aws-eks.toml",
        &vars,
        &format!(
            "aws_secrets_manager:prod-admin@(default region):prod/myapp/config: invalid configuration: no AWS region: not in the plan, AWS_REGION, AWS_DEFAULT_REGION, or profile `prod-admin` in {p}/.aws/config; set `region` in the plan or run `export AWS_REGION=<region>`"
        ),
        "export AWS_REGION=<region>",
    );
}

/// An SSO profile without a session: the fix is to sign in.
#[test]
fn aws_sso_profile_signed_out() {
    let h = home();
    std::fs::create_dir_all(h.path().join(".aws")).unwrap();
    std::fs::write(
        h.path().join(".aws/config"),
        "[profile prod-admin]\nsso_session = acme\nsso_account_id = 123456789012\nsso_role_name = Admin\nregion = us-east-1\n\n[sso-session acme]\nsso_start_url = https://acme.awsapps.com/start\nsso_region = us-east-1\n",
    )
    .unwrap();
    // The vault's chain (no profile) finds keys in the default profile; keys in
    // the environment would win over the store's profile too.
    std::fs::write(
        h.path().join(".aws/credentials"),
        format!(
            "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            STATIC_KEYS[0].1, STATIC_KEYS[1].1
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = plan(
        h.path(),
        "plans/aws-eks.toml",
        true,
        &[("AWS_EC2_METADATA_DISABLED", "true")],
    );
    assert_eq!(code, 12, "{stdout}\n{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let outcome = v["outcome"].as_str().unwrap();
    assert!(
        outcome.starts_with("aws_secrets_manager:prod-admin@(default region):prod/myapp/config: permission denied: AWS profile `prod-admin` signs in through SSO and has no valid session ("),
        "{outcome}"
    );
    assert!(
        outcome.ends_with("); run `aws sso login --profile prod-admin`"),
        "{outcome}"
    );
    assert_eq!(
        v["next_steps"],
        serde_json::json!(["aws sso login --profile prod-admin"])
    );
}

/// No `GOOGLE_APPLICATION_CREDENTIALS`, no gcloud file, a metadata server that
/// refuses connections. (The S3 vault gets static keys: it is not under test.)
#[test]
fn gcp_without_application_default_credentials() {
    let h = home();
    let p = h.path().display();
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let host = closed.to_string();
    fails_in_preflight(
        h.path(),
        "plans/cloud-run.toml",
        &[STATIC_KEYS[0], STATIC_KEYS[1], ("GCE_METADATA_HOST", &host)],
        &format!(
            "gcp_secret_manager:projects/acme-prod/secrets/vsync-passphrase: permission denied: no Google credentials: GOOGLE_APPLICATION_CREDENTIALS is not set, {p}/.config/gcloud/application_default_credentials.json does not exist, and the metadata server ({host}) gave no token; run `gcloud auth application-default login`"
        ),
        "gcloud auth application-default login",
    );
}

/// `GOOGLE_APPLICATION_CREDENTIALS` naming a file that is not there: ADC reads
/// nothing else while it is set, so the fix unsets it.
#[test]
fn gcp_credentials_file_missing() {
    let h = home();
    let file = h.path().join("sa.json");
    let file = file.to_str().unwrap();
    fails_in_preflight(
        h.path(),
        "plans/cloud-run.toml",
        &[
            STATIC_KEYS[0],
            STATIC_KEYS[1],
            ("GOOGLE_APPLICATION_CREDENTIALS", file),
        ],
        &format!(
            "gcp_secret_manager:projects/acme-prod/secrets/vsync-passphrase: permission denied: Google credentials: GOOGLE_APPLICATION_CREDENTIALS names {file}, which could not be loaded (could not find or open the credentials file {file}. This file name was found in the `GOOGLE_APPLICATION_CREDENTIALS` environment variable. Verify this environment variable points to a valid file.); point it at a valid credentials file or run `unset GOOGLE_APPLICATION_CREDENTIALS && gcloud auth application-default login`"
        ),
        "unset GOOGLE_APPLICATION_CREDENTIALS && gcloud auth application-default login",
    );
}

/// A metadata server that accepts and never answers: the discovery timeout, not
/// the client's retries, decides how long that takes.
#[test]
fn gcp_with_a_silent_metadata_server() {
    let h = home();
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let host = silent.local_addr().unwrap().to_string();
    let began = Instant::now();
    let (code, stdout, _) = plan(
        h.path(),
        "plans/cloud-run.toml",
        false,
        &[STATIC_KEYS[0], STATIC_KEYS[1], ("GCE_METADATA_HOST", &host)],
    );
    assert!(
        began.elapsed() < Duration::from_secs(6),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(code, 12, "{stdout}");
    assert!(
        stdout.contains(&format!(
            "and the metadata server ({host}) gave no token within 3s; run `gcloud auth application-default login`"
        )),
        "{stdout}"
    );
}
