//! The fault matrix: every S3 and Secrets Manager request a `run` and a `resume`
//! make, against real moto in server mode, with each way a network loses a request
//! or its answer injected by a proxy in front of moto (`support::fault_proxy`):
//! an error before the write, an error after it was applied, a cut before, a cut
//! after, a stall past the client's attempt timeout — once (a blip the SDK's own
//! retry meets) and for good (an outage).
//!
//! After each case, read straight from moto (not through the proxy):
//! * some Secrets Manager value (AWSCURRENT, AWSPENDING or AWSPREVIOUS) opens the
//!   live bundle — the passphrase was not lost;
//! * the exit code says what happened: 0 only when the vault is on gen N+1 and
//!   AWSCURRENT opens it; a "vault untouched" code only when the pointer still
//!   names the old bundle and AWSCURRENT is the old passphrase;
//! * a lock left behind belongs to a run that said so (exit 14 or 17, or printed the
//!   command that removes it);
//! * then `resume` (and, when the run stopped before T0, a new `run`), with no
//!   faults, ends on exactly gen N+1 with AWSCURRENT opening the vault and the
//!   lock free.
//!
//! The binary is the real one; every case has its own bucket, secret, proxy and
//! state directory, and cases run a few at a time.

mod support;

use aws_sdk_secretsmanager as sm;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use support::fault_proxy::{self, Fault, Rule};
use tokio::sync::Semaphore;
use vsync_orchestrate::api::Passphrase;
use vsync_orchestrate::vault::storage::Storage;
use vsync_orchestrate::vault::{KdfParams, Layout, LayoutChoice, SeedContent, Vault};

const OLD: &str = "matrix-old-passphrase-0123456789";
const SALT: &str = "MatrixSaltMatrixSalt0123";
const PREFIX: &str = "app/prod/";
/// The client's attempt timeout in the plan, and a stall comfortably past it.
const ATTEMPT: &str = "1s";
const STALL: Duration = Duration::from_millis(2500);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum When {
    /// Faults injected into the first `run`.
    Run,
    /// The first run crashes right after the pointer swap (T0, nothing activated);
    /// faults injected into the `resume` that follows.
    Resume,
}

#[derive(Clone, Debug)]
struct Case {
    name: String,
    when: When,
    rules: Vec<Rule>,
    /// Exit codes the first faulted command may end with, where the case pins it.
    expect: Option<Vec<i32>>,
}

/// A request the tool makes, as the proxy recognises it.
#[derive(Clone, Copy)]
struct Req {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    text: &'static [&'static str],
    write: bool,
}

const S3: &[Req] = &[
    Req {
        name: "s3 lock create",
        method: "PUT",
        path: ".vsync-orchestrate.lock",
        text: &[],
        write: true,
    },
    Req {
        name: "s3 lock read",
        method: "GET",
        path: ".vsync-orchestrate.lock",
        text: &[],
        write: false,
    },
    Req {
        name: "s3 lock release",
        method: "DELETE",
        path: ".vsync-orchestrate.lock",
        text: &[],
        write: true,
    },
    Req {
        name: "s3 layout probe",
        method: "HEAD",
        path: "/app/prod/manifest",
        text: &[],
        write: false,
    },
    Req {
        name: "s3 pointer read",
        method: "GET",
        path: "/app/prod/manifest",
        text: &[],
        write: false,
    },
    Req {
        name: "s3 pointer swap",
        method: "PUT",
        path: "/app/prod/manifest",
        text: &[],
        write: true,
    },
    Req {
        name: "s3 bundle read",
        method: "GET",
        path: "/app/prod/v%3D",
        text: &[],
        write: false,
    },
    Req {
        name: "s3 bundle upload",
        method: "PUT",
        path: "/app/prod/v%3D",
        text: &[],
        write: true,
    },
    Req {
        name: "s3 counter read",
        method: "GET",
        path: "/app/prod/latest.meta",
        text: &[],
        write: false,
    },
    Req {
        name: "s3 counter write (latest.meta)",
        method: "PUT",
        path: "/app/prod/latest.meta",
        text: &[],
        write: true,
    },
    Req {
        name: "s3 counter write (latest.manifest)",
        method: "PUT",
        path: "/app/prod/latest.manifest",
        text: &[],
        write: true,
    },
    Req {
        name: "s3 audit read",
        method: "GET",
        path: "/app/prod/audit.csv",
        text: &[],
        write: false,
    },
    Req {
        name: "s3 audit append",
        method: "PUT",
        path: "/app/prod/audit.csv",
        text: &[],
        write: true,
    },
];

const SM: &[Req] = &[
    Req {
        name: "sm describe",
        method: "POST",
        path: "/",
        text: &["secretsmanager.DescribeSecret"],
        write: false,
    },
    Req {
        name: "sm read",
        method: "POST",
        path: "/",
        text: &["secretsmanager.GetSecretValue"],
        write: false,
    },
    Req {
        name: "sm stage",
        method: "POST",
        path: "/",
        text: &["secretsmanager.PutSecretValue"],
        write: true,
    },
    Req {
        name: "sm activate",
        method: "POST",
        path: "/",
        text: &["secretsmanager.UpdateSecretVersionStage", "AWSCURRENT"],
        write: true,
    },
    Req {
        name: "sm tidy/discard",
        method: "POST",
        path: "/",
        text: &["secretsmanager.UpdateSecretVersionStage", "AWSPENDING"],
        write: true,
    },
];

/// Requests `resume` makes after a crash right after T0 (no stage, no upload, no swap).
fn in_resume(r: &Req) -> bool {
    !matches!(
        r.name,
        "sm stage" | "s3 bundle upload" | "s3 pointer swap" | "s3 layout probe"
    )
}

fn rule(r: &Req, fault: Fault, times: usize) -> Rule {
    Rule {
        method: r.method,
        path_contains: r.path.into(),
        text_contains: r.text.iter().map(|t| (*t).to_owned()).collect(),
        skip: 0,
        times,
        fault,
    }
}

fn cases() -> Vec<Case> {
    let once = [
        ("error before", Fault::ErrorBefore(500)),
        ("error after", Fault::ErrorAfter(503)),
        ("cut before", Fault::CutBefore),
        ("cut after", Fault::CutAfter),
        ("stall", Fault::Stall(STALL)),
    ];
    let always = [
        ("error before", Fault::ErrorBefore(500)),
        ("error after", Fault::ErrorAfter(500)),
    ];
    let mut out = Vec::new();
    for when in [When::Run, When::Resume] {
        for r in S3.iter().chain(SM) {
            if when == When::Resume && !in_resume(r) {
                continue;
            }
            let faults: Vec<(&str, Fault)> = if r.write {
                once.to_vec()
            } else {
                // A read has nothing to apply: before and after are the same.
                once.iter()
                    .copied()
                    .filter(|(_, f)| !matches!(f, Fault::ErrorAfter(_) | Fault::CutAfter))
                    .collect()
            };
            for (fname, f) in faults {
                out.push(Case {
                    name: format!("{when:?}: {} — {fname}, once", r.name),
                    when,
                    rules: vec![rule(r, f, 1)],
                    expect: None,
                });
            }
            let faults: Vec<(&str, Fault)> = if r.write {
                always.to_vec()
            } else {
                vec![("error", Fault::ErrorBefore(503))]
            };
            for (fname, f) in faults {
                out.push(Case {
                    name: format!("{when:?}: {} — {fname}, every time", r.name),
                    when,
                    rules: vec![rule(r, f, usize::MAX)],
                    expect: None,
                });
            }
        }
    }
    let pointer_swap = &S3[5];
    let pointer_read = &S3[4];
    // The swap is applied, its answer lost on every attempt, and the pointer
    // cannot be read back: the outcome is unknown, so nothing may be discarded.
    let mut unreadable = rule(pointer_read, Fault::ErrorBefore(500), usize::MAX);
    unreadable.skip = 1; // preflight reads it once
    out.push(Case {
        name: "Run: pointer swap applied, answer lost, pointer unreadable".into(),
        when: When::Run,
        rules: vec![
            rule(pointer_swap, Fault::ErrorAfter(500), usize::MAX),
            unreadable.clone(),
        ],
        expect: Some(vec![14]),
    });
    // The same swap, answer lost but the pointer readable: T0 passed; activate.
    out.push(Case {
        name: "Run: pointer swap applied, every answer lost, pointer readable".into(),
        when: When::Run,
        rules: vec![rule(pointer_swap, Fault::ErrorAfter(500), usize::MAX)],
        expect: Some(vec![0]),
    });
    // The swap never reaches S3, but a 5xx is not a "no": from the client's side
    // it cannot be told from a write that was applied (or is still queued), so the
    // run keeps every staged version and says "outcome unknown"; `resume` rolls
    // the same conditional swap forward.
    out.push(Case {
        name: "Run: pointer swap answered 500 every time".into(),
        when: When::Run,
        rules: vec![rule(pointer_swap, Fault::ErrorBefore(500), usize::MAX)],
        expect: Some(vec![14]),
    });
    // A definite refusal of our own swap (412): the ETag moved, no attempt of ours
    // can land any more, so discarding is safe.
    out.push(Case {
        name: "Run: pointer swap refused (412)".into(),
        when: When::Run,
        rules: vec![rule(pointer_swap, Fault::ErrorBefore(412), usize::MAX)],
        expect: Some(vec![3]),
    });
    // Verify cannot read the vault: reported as that, not as stragglers.
    out.push(Case {
        name: "Run: verify cannot read the pointer".into(),
        when: When::Run,
        rules: vec![unreadable.clone()],
        expect: Some(vec![0]),
    });
    // Resume after T0 cannot read the pointer: nothing changes.
    let mut resume_unreadable = rule(pointer_read, Fault::ErrorBefore(500), usize::MAX);
    resume_unreadable.skip = 0;
    out.push(Case {
        name: "Resume: pointer unreadable after a crash past T0".into(),
        when: When::Resume,
        rules: vec![resume_unreadable],
        expect: Some(vec![14]),
    });
    out
}

struct Env {
    ep: String,
    bucket: String,
    secret: String,
    dir: tempfile::TempDir,
    sm: sm::Client,
    direct: Arc<dyn Storage>,
}

impl Env {
    async fn new(ep: &str) -> Env {
        let (bucket, storage) = support::moto_bucket(ep).await;
        let vault = Vault::new(
            storage.clone(),
            PREFIX,
            KdfParams::new(SALT, 1000),
            LayoutChoice::Auto,
        );
        let content = SeedContent::Json {
            kv: [("K".to_owned(), "v".to_owned())].into(),
            assets: Default::default(),
        };
        vault
            .seed(Layout::Runtime, &Passphrase::from(OLD), &content)
            .await
            .unwrap();
        let sm = support::moto_sm(ep);
        let secret = support::unique("matrix/vsync");
        sm.create_secret()
            .name(&secret)
            .secret_string(OLD)
            .send()
            .await
            .unwrap();
        Env {
            ep: ep.to_owned(),
            bucket,
            secret,
            dir: tempfile::tempdir().unwrap(),
            sm,
            direct: storage,
        }
    }

    fn vault(&self) -> Vault {
        Vault::new(
            self.direct.clone(),
            PREFIX,
            KdfParams::new(SALT, 1000),
            LayoutChoice::Auto,
        )
    }

    /// A plan whose S3 and Secrets Manager requests go to `endpoint`.
    fn plan(&self, name: &str, endpoint: &str) -> PathBuf {
        self.plan_with(name, endpoint, "")
    }

    /// The same plan with `extra` (whole tables) appended.
    fn plan_with(&self, name: &str, endpoint: &str, extra: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                r#"env = "prod"
state_dir = "{state}"
[vault]
bucket = "{bucket}"
prefix = "{PREFIX}"
region = "us-east-1"
endpoint = "{endpoint}"
salt = "{SALT}"
iterations = 1000
timeout = "{ATTEMPT}"
[passphrase]
note = "fault matrix"
[[store]]
type = "aws_secrets_manager"
secret_id = "{secret}"
region = "us-east-1"
endpoint = "{endpoint}"
timeout = "{ATTEMPT}"
{extra}"#,
                state = self.dir.path().join("state").display(),
                bucket = self.bucket,
                secret = self.secret,
            ),
        )
        .unwrap();
        path
    }

    /// Each labelled Secrets Manager value, read directly from moto.
    async fn values(&self) -> Vec<(&'static str, Passphrase)> {
        let mut out = Vec::new();
        for stage in ["AWSCURRENT", "AWSPENDING", "AWSPREVIOUS"] {
            if let Ok(v) = self
                .sm
                .get_secret_value()
                .secret_id(&self.secret)
                .version_stage(stage)
                .send()
                .await
            {
                if let Some(s) = v.secret_string() {
                    out.push((stage, Passphrase::from(s)));
                }
            }
        }
        out
    }

    /// The first Secrets Manager label whose value opens the live bundle: the
    /// passphrase is not lost while there is one.
    async fn opener(&self, vault: &Vault) -> Option<&'static str> {
        for (label, v) in &self.values().await {
            if vault.open(v).await.is_ok() {
                return Some(label);
            }
        }
        None
    }

    /// `resume` without faults, then `run` if the vault was never rotated: it must
    /// end on exactly gen 1 with AWSCURRENT opening the vault. Says which did it.
    async fn converge(
        &self,
        vault: &Vault,
        plan: &Path,
        old_stamp: &str,
        after: &str,
    ) -> Result<&'static str, String> {
        let resumed = cli(&["resume"], plan, &[]).await;
        let mut converged_by = "resume";
        if resumed.code != 0 {
            return Err(format!(
                "resume after {after} exited {}: {}\n{}",
                resumed.code, resumed.summary["outcome"], resumed.stderr
            ));
        }
        if vault.status().await.unwrap().unwrap().stamp == old_stamp {
            let again = cli(&["run"], plan, &[]).await;
            converged_by = "run again";
            if again.code != 0 {
                return Err(format!(
                    "a fresh run after {after} exited {}: {}\n{}",
                    again.code, again.summary["outcome"], again.stderr
                ));
            }
        }
        let st = vault.status().await.unwrap().unwrap();
        if st.gen != 1 || st.stamp == old_stamp {
            return Err(format!(
                "did not converge to exactly gen 1: gen {}, stamp {} (old {old_stamp})",
                st.gen, st.stamp
            ));
        }
        if !self.current_opens(vault).await {
            return Err("after converging, AWSCURRENT does not open the vault".into());
        }
        Ok(converged_by)
    }

    /// Whether AWSCURRENT's value opens the live bundle.
    async fn current_opens(&self, vault: &Vault) -> bool {
        for (label, v) in &self.values().await {
            if *label == "AWSCURRENT" {
                return vault.open(v).await.is_ok();
            }
        }
        false
    }

    async fn lock_present(&self) -> bool {
        self.direct
            .get(&format!("{PREFIX}.vsync-orchestrate.lock"))
            .await
            .unwrap()
            .is_some()
    }
}

struct Ran {
    code: i32,
    summary: serde_json::Value,
    stderr: String,
}

async fn cli(args: &[&str], plan: &Path, env: &[(&str, &str)]) -> Ran {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_vsync-orchestrate"));
    cmd.args(args)
        .arg("--yes")
        .arg("--output")
        .arg("json")
        .arg(plan)
        .envs(env.iter().copied())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(180), cmd.output())
        .await
        .expect("the command finished within 3 minutes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if let Ok(v) = serde_json::from_str(&stdout) {
        support::assert_rows_match(&stderr, &v);
    }
    Ran {
        code: out.status.code().unwrap_or(-1),
        summary: serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn text_of(v: &serde_json::Value) -> String {
    v.to_string()
}

/// What one case ended with, for the table.
struct Report {
    name: String,
    first_exit: i32,
    faults: usize,
    converged_by: &'static str,
}

async fn run_case(ep: String, case: Case) -> Result<Report, String> {
    let env = Env::new(&ep).await;
    let vault = env.vault();
    let old_stamp = vault.status().await.unwrap().unwrap().stamp;
    let direct_plan = env.plan("direct.toml", &env.ep);
    let proxy = fault_proxy::start(&env.ep, case.rules.clone()).await;
    let faulty_plan = env.plan("faulty.toml", &proxy.endpoint);
    let fail = |why: String| Err(format!("{}: {why}", case.name));
    let verbose = std::env::var("VSYNC_TEST_MATRIX_FILTER").is_ok();

    let first = match case.when {
        When::Run => cli(&["run"], &faulty_plan, &[]).await,
        When::Resume => {
            let crashed = cli(
                &["run"],
                &direct_plan,
                &[("VSYNC_ORCHESTRATE_CRASH_AT", "committed")],
            )
            .await;
            if !crashed.stderr.contains("crashing on purpose") {
                return fail(format!("the setup run did not crash: {}", crashed.stderr));
            }
            cli(&["resume"], &faulty_plan, &[]).await
        }
    };
    if verbose {
        eprintln!("--- {} (first command)\n{}", case.name, first.stderr);
    }
    let faults = *proxy.hits.lock().unwrap();
    if faults == 0 {
        return fail(format!(
            "the fault was never injected (requests seen: {:?})",
            proxy.seen.lock().unwrap()
        ));
    }
    let s = &first.summary;
    if s.is_null() {
        return fail(format!(
            "exit {} without a JSON summary (a panic?)\n{}",
            first.code, first.stderr
        ));
    }
    if let Some(codes) = &case.expect {
        if !codes.contains(&first.code) {
            return fail(format!(
                "exit {} (expected one of {codes:?}): {}",
                first.code, s["outcome"]
            ));
        }
    }
    let outcome = s["outcome"].as_str().unwrap_or("").to_owned();
    let steps = text_of(&s["next_steps"]);

    // The invariant: some store value opens what the vault serves now.
    let Some(opener) = env.opener(&vault).await else {
        return fail(format!(
            "PASSPHRASE LOST: no Secrets Manager value opens the live bundle (exit {}, {outcome})",
            first.code
        ));
    };
    let st = vault.status().await.unwrap().unwrap();
    let current_opens = opener == "AWSCURRENT";
    match first.code {
        0 | 4 | 15 | 16 => {
            if st.stamp == old_stamp || !current_opens {
                return fail(format!(
                    "exit {} claims a rotation, but the pointer is {} (old {old_stamp}) and AWSCURRENT {} the vault",
                    first.code,
                    st.stamp,
                    if current_opens { "opens" } else { "does not open" }
                ));
            }
            if first.code == 0 && st.gen != 1 {
                return fail(format!("exit 0 but the counter shows gen {}", st.gen));
            }
        }
        1 | 2 | 3 | 5 | 11 | 12 | 13 => {
            if st.stamp != old_stamp || !current_opens {
                return fail(format!(
                    "exit {} says the vault is untouched, but the pointer is {} (old {old_stamp}), AWSCURRENT {}",
                    first.code,
                    st.stamp,
                    if current_opens { "opens it" } else { "does not open it" }
                ));
            }
            if outcome.contains("old passphrase does not open") {
                return fail(format!(
                    "a fault was reported as a wrong passphrase: {outcome}"
                ));
            }
        }
        14 => {
            if !steps.contains("resume") {
                return fail(format!(
                    "exit 14 without `resume` in the next steps: {steps}"
                ));
            }
        }
        other => {
            return fail(format!(
                "unexpected exit {other}: {outcome}\n{}",
                first.stderr
            ));
        }
    }
    if env.lock_present().await
        && !(first.code == 14 || steps.contains("resume") || steps.contains("remove the lock"))
    {
        return fail(format!(
            "exit {} left the lock held without saying so: {outcome}; next steps {steps}",
            first.code
        ));
    }

    // Converge without faults.
    let converged_by = match env
        .converge(&vault, &direct_plan, &old_stamp, "the fault")
        .await
    {
        Ok(by) => by,
        Err(why) => return fail(why),
    };
    if env.lock_present().await {
        // A lock a finished run could not release is taken over, never a wall.
        let dry = cli(&["plan"], &direct_plan, &[]).await;
        if dry.code != 0 {
            return fail(format!(
                "the lock left by a finished run blocks the next run (plan exited {}): {}",
                dry.code, dry.summary["outcome"]
            ));
        }
    }
    Ok(Report {
        name: case.name,
        first_exit: first.code,
        faults,
        converged_by,
    })
}

async fn no_single_fault_loses_the_passphrase() {
    let Some(ep) = support::moto_endpoint() else {
        return;
    };
    // `VSYNC_TEST_MATRIX_FILTER=substring` runs only the matching cases (debugging).
    let filter = std::env::var("VSYNC_TEST_MATRIX_FILTER").unwrap_or_default();
    let cases: Vec<Case> = cases()
        .into_iter()
        .filter(|c| c.name.contains(&filter))
        .collect();
    let total = cases.len();
    let gate = Arc::new(Semaphore::new(6));
    let mut tasks = Vec::new();
    for case in cases {
        let (ep, gate) = (ep.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            let _slot = gate.acquire().await.unwrap();
            run_case(ep, case).await
        }));
    }
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => reports.push(r),
            Err(e) => failures.push(e),
        }
    }
    reports.sort_by(|a, b| a.name.cmp(&b.name));
    eprintln!("fault matrix: {total} cases");
    for r in &reports {
        eprintln!(
            "  exit {:>2}  faults {:>2}  then {:<9}  {}",
            r.first_exit, r.faults, r.converged_by, r.name
        );
    }
    let mut by_exit = std::collections::BTreeMap::new();
    for r in &reports {
        *by_exit.entry(r.first_exit).or_insert(0) += 1;
    }
    eprintln!(
        "fault matrix: {} cases passed, {} failed, passphrases lost: {}; first exit codes {by_exit:?}",
        reports.len(),
        failures.len(),
        failures.iter().filter(|f| f.contains("PASSPHRASE LOST")).count()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// ---------------------------------------------------------------------------
// Late writes: a request the tool gave up on that still lands.
//
// The proxy *holds* every matching request for `HOLD` and then forwards it to moto,
// whether or not the tool is still waiting (a slow path, a queued retry, a load
// balancer that lets a request through after the client has gone). `HOLD` is past
// every attempt timeout and every deadline the tool has for that write, so the
// tool always gives up first and the write always lands afterwards.
//
// For every write a run and a resume make, three ways:
// * `Through`: the run meets the held write and ends however it ends; then it lands;
// * `KilledResumeHeld`: SIGKILL while the write is held, `resume` at once (its own
//   requests to that path held too);
// * `KilledResumeLanded`: SIGKILL while held, `resume` after it landed.
//
// Once every held request has landed, read straight from moto:
// * some Secrets Manager value opens the live bundle (no passphrase lost);
// * an exit code that said "vault untouched" is still true;
// * `status` tells the truth: exit 14 whenever AWSCURRENT does not open the live
//   bundle, and its stamp is the pointer's;
// * every escrow copy that is not a tombstone opens to a passphrase that went live;
// * `resume` (and `run` where the vault was never rotated) converge on gen 1, and
//   the next `run` works.
// ---------------------------------------------------------------------------

/// Past every attempt timeout (1 s) and every deadline (the swap's and an
/// activation's, 20 s) of the tool's.
const HOLD: Duration = Duration::from_secs(25);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Late {
    Through,
    KilledResumeHeld,
    KilledResumeLanded,
}

/// Every write a run and a resume make, as the proxy recognises it.
fn late_writes() -> Vec<Req> {
    let mut w: Vec<Req> = S3.iter().chain(SM).filter(|r| r.write).copied().collect();
    w.push(Req {
        name: "s3 escrow copy",
        method: "PUT",
        path: "/app/prod/.vsync-orchestrate/escrow/",
        text: &[],
        write: true,
    });
    w
}

fn age_identity() -> age::x25519::Identity {
    age::x25519::Identity::generate()
}

fn age_open(id: &age::x25519::Identity, sealed: &[u8]) -> Option<String> {
    use std::io::Read;
    let d = age::Decryptor::new(age::armor::ArmoredReader::new(sealed)).ok()?;
    let mut r = d.decrypt(std::iter::once(id as &dyn age::Identity)).ok()?;
    let mut out = String::new();
    r.read_to_string(&mut out).ok()?;
    Some(out)
}

/// Runs the CLI and SIGKILLs it once the proxy holds a request; what it printed.
async fn killed_while_held(plan: &Path, proxy: &fault_proxy::FaultProxy) -> Result<(), String> {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_vsync-orchestrate"));
    cmd.args(["run", "--yes", "--output", "json"])
        .arg(plan)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let holding = tokio::select! {
        h = proxy.holding_one(Duration::from_secs(120)) => h,
        _ = child.wait() => false,
    };
    if !holding {
        let out = child.wait_with_output().await.unwrap();
        return Err(format!(
            "the run ended (exit {:?}) without the write being held: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    child.start_kill().unwrap(); // SIGKILL
    child.wait().await.unwrap();
    Ok(())
}

async fn run_late_case(ep: String, write: Req, late: Late) -> Result<Report, String> {
    let name = format!("{late:?}: {} held {}s", write.name, HOLD.as_secs());
    let fail = |why: String| Err(format!("{name}: {why}"));
    let env = Env::new(&ep).await;
    let vault = env.vault();
    let old_stamp = vault.status().await.unwrap().unwrap().stamp;
    let id = age_identity();
    let escrow = format!(
        "[escrow]\nage_recipients = [\"{}\"]\nvault_copy = true\n",
        id.to_public()
    );
    let direct_plan = env.plan_with("direct.toml", &env.ep, &escrow);
    let proxy =
        fault_proxy::start(&env.ep, vec![rule(&write, Fault::Hold(HOLD), usize::MAX)]).await;
    let faulty_plan = env.plan_with("faulty.toml", &proxy.endpoint, &escrow);

    let first = match late {
        Late::Through => Some(cli(&["run"], &faulty_plan, &[]).await),
        Late::KilledResumeHeld => {
            if let Err(e) = killed_while_held(&faulty_plan, &proxy).await {
                return fail(e);
            }
            Some(cli(&["resume"], &faulty_plan, &[]).await)
        }
        Late::KilledResumeLanded => {
            if let Err(e) = killed_while_held(&faulty_plan, &proxy).await {
                return fail(e);
            }
            None
        }
    };
    if *proxy.hits.lock().unwrap() == 0 {
        return fail(format!(
            "the write was never held (requests seen: {:?})",
            proxy.seen.lock().unwrap()
        ));
    }
    // Every held request lands before anything is judged.
    if !proxy.landed(HOLD * 6).await {
        return fail("held requests never landed".into());
    }
    let first = match (late, first) {
        (Late::KilledResumeLanded, _) => cli(&["resume"], &direct_plan, &[]).await,
        (_, Some(f)) => f,
        (_, None) => unreachable!(),
    };
    if first.summary.is_null() {
        return fail(format!(
            "exit {} without a JSON summary (a panic?)\n{}",
            first.code, first.stderr
        ));
    }
    let outcome = first.summary["outcome"].as_str().unwrap_or("").to_owned();

    // No passphrase lost, now that nothing is in flight any more.
    let Some(opener) = env.opener(&vault).await else {
        return fail(format!(
            "PASSPHRASE LOST: once the held write landed, no Secrets Manager value opens the live bundle (exit {}, {outcome})",
            first.code
        ));
    };
    let st = vault.status().await.unwrap().unwrap();
    if matches!(first.code, 1 | 2 | 3 | 5 | 11 | 12 | 13) && st.stamp != old_stamp {
        return fail(format!(
            "exit {} said the vault was untouched, but once the held write landed the pointer is {} (old {old_stamp}): {outcome}",
            first.code, st.stamp
        ));
    }

    // `status` tells the truth.
    let status = cli(&["status"], &direct_plan, &[]).await;
    if status.summary["status"]["stamp"].as_str() != Some(st.stamp.as_str()) {
        return fail(format!(
            "status shows stamp {} but the pointer is {}",
            status.summary["status"]["stamp"], st.stamp
        ));
    }
    if opener != "AWSCURRENT" && status.code != 14 {
        return fail(format!(
            "AWSCURRENT does not open the live bundle (only {opener} does), but status exited {}:\n{}",
            status.code, status.stderr
        ));
    }

    // Converge without faults, then the next run works.
    let converged_by = match env
        .converge(&vault, &direct_plan, &old_stamp, "the held write landed")
        .await
    {
        Ok(by) => by,
        Err(why) => return fail(why),
    };
    let next = cli(&["run"], &direct_plan, &[]).await;
    if next.code != 0 {
        return fail(format!(
            "the next run exited {}: {}\n{}",
            next.code, next.summary["outcome"], next.stderr
        ));
    }
    if !env.current_opens(&vault).await {
        return fail("after the next run, AWSCURRENT does not open the vault".into());
    }
    let values = env.values().await;
    // Every escrow copy that is not a tombstone holds a passphrase that went live
    // (gen 1's is AWSPREVIOUS now, gen 2's AWSCURRENT).
    let live: Vec<&Passphrase> = values
        .iter()
        .filter(|(l, _)| *l == "AWSCURRENT" || *l == "AWSPREVIOUS")
        .map(|(_, v)| v)
        .collect();
    for key in env
        .direct
        .list(&format!("{PREFIX}.vsync-orchestrate/escrow/"))
        .await
        .unwrap()
    {
        let body = env.direct.get(&key).await.unwrap().unwrap().body;
        if vsync_orchestrate::engine::escrow::is_tombstone(&body) {
            continue;
        }
        match age_open(&id, &body) {
            Some(p) if live.iter().any(|l| l.expose() == p) => {}
            Some(_) => {
                return fail(format!(
                "escrow copy {key} opens to a passphrase that never went live, and is not marked"
            ))
            }
            None => return fail(format!("escrow copy {key} does not open")),
        }
    }
    let faults = *proxy.hits.lock().unwrap();
    Ok(Report {
        name,
        first_exit: first.code,
        faults,
        converged_by,
    })
}

async fn no_late_write_loses_the_passphrase() {
    let Some(ep) = support::moto_endpoint() else {
        return;
    };
    // `VSYNC_TEST_MATRIX_FILTER=substring` runs only the matching cases (debugging).
    let filter = std::env::var("VSYNC_TEST_MATRIX_FILTER").unwrap_or_default();
    let mut cases = Vec::new();
    for w in late_writes() {
        for late in [
            Late::Through,
            Late::KilledResumeHeld,
            Late::KilledResumeLanded,
        ] {
            if format!("{late:?}: {}", w.name).contains(&filter) {
                cases.push((w, late));
            }
        }
    }
    let total = cases.len();
    let gate = Arc::new(Semaphore::new(11));
    let mut tasks = Vec::new();
    for (w, late) in cases {
        let (ep, gate) = (ep.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            let _slot = gate.acquire().await.unwrap();
            run_late_case(ep, w, late).await
        }));
    }
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => reports.push(r),
            Err(e) => failures.push(e),
        }
    }
    reports.sort_by(|a, b| a.name.cmp(&b.name));
    eprintln!("late writes: {total} cases");
    for r in &reports {
        eprintln!(
            "  exit {:>2}  held {:>2}  then {:<9}  {}",
            r.first_exit, r.faults, r.converged_by, r.name
        );
    }
    eprintln!(
        "late writes: {} cases passed, {} failed, passphrases lost: {}",
        reports.len(),
        failures.len(),
        failures
            .iter()
            .filter(|f| f.contains("PASSPHRASE LOST"))
            .count()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

vsync_orchestrate_testkit::main! {
    tests: [
        #[multi_thread(4)] no_single_fault_loses_the_passphrase,
        #[multi_thread(4)] no_late_write_loses_the_passphrase,
    ],
}
