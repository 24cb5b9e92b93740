//! The number this tool exists to shrink: the window between the pointer swap (T0)
//! and the last store's activation (T1), measured side by side with what people
//! run today, in one invocation, variants interleaved so machine noise hits them
//! alike:
//!
//! * AWS Secrets Manager on moto, 1, 4 and 8 stores:
//!   - `tool`    — `engine::run_with`, the whole rotation; its window from the summary;
//!   - `boto3`   — the best script: one Python process, clients created and used
//!     before T0, the pointer `put_object`, then every `update_secret_version_stage`
//!     from a thread pool that already exists; T0 when the `put_object` is sent,
//!     as the tool takes it;
//!   - `aws CLI` — the script an operator writes: `aws s3api put-object`, then one
//!     `aws secretsmanager update-secret-version-stage` per store; T0 when the
//!     `put-object` process has returned (its start-up is not counted: in its
//!     favour).
//! * `vps_file` over SSH, 1, 5, 10 and 20 hosts (each its own sshd):
//!   - `tool`    — the engine with one `vps_file` store on N hosts;
//!   - `floor`   — `ssh -S master host true` on every host at once, over masters
//!     opened beforehand: what any command over SSH costs;
//!   - `ssh loop` — the operator's loop: `ssh host mv -f p.new p`, host after host.
//! * Optionally (`VSYNC_BENCH_RTT_MS`), the Secrets Manager rows again behind a
//!   proxy that holds every request that long: a network round trip.
//!
//! Prints medians, p99 and ratios; writes everything as JSON
//! (`VSYNC_BENCH_JSON`, default `target/bench-window.json`).
//!
//! Run it with everything it needs started and installed: `bash bench/run`.
//! Under `cargo test --all-targets` (no `--bench`) it runs each variant once at
//! the smallest size, as a smoke test, with whatever services are present.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vsync_orchestrate::api::{Passphrase, SecretStore};
use vsync_orchestrate::engine::{self, build, RunOptions};
use vsync_orchestrate::report::Progress;
use vsync_orchestrate::vault::{crypto, KdfParams, Layout, SeedContent};

#[path = "../tests/support/fault_proxy.rs"]
mod fault_proxy;

const OLD: &str = "bench-old-passphrase-0123456789";
const NEW: &str = "bench-new-passphrase-9876543210";

/// `cargo bench` passes `--bench`; under `cargo test --all-targets` the same code
/// runs once as a quick smoke test instead of a measurement.
fn full() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn rounds() -> usize {
    if !full() {
        return 1;
    }
    std::env::var("VSYNC_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20)
}

fn pick(sizes: &[usize]) -> Vec<usize> {
    if full() {
        sizes.to_vec()
    } else {
        sizes[..1].to_vec()
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The value at percentile `p` (nearest rank) of `v`.
fn pct(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

/// Every sample of every variant, by section, size and variant.
#[derive(Default)]
struct Results(BTreeMap<(String, usize, String), Vec<f64>>);

impl Results {
    fn add(&mut self, section: &str, n: usize, variant: &str, sample: f64) {
        self.0
            .entry((section.into(), n, variant.into()))
            .or_default()
            .push(sample);
    }

    fn get(&self, section: &str, n: usize, variant: &str) -> Option<&Vec<f64>> {
        self.0.get(&(section.into(), n, variant.into()))
    }

    fn p50(&self, section: &str, n: usize, variant: &str) -> Option<f64> {
        self.get(section, n, variant).map(|v| pct(v, 50.0))
    }

    fn cell(&self, section: &str, n: usize, variant: &str) -> String {
        match self.get(section, n, variant) {
            Some(v) => format!("{:>8.2} {:>8.2}", pct(v, 50.0), pct(v, 99.0)),
            None => format!("{:>8} {:>8}", "-", "-"),
        }
    }

    fn ratio(&self, section: &str, n: usize, a: &str, b: &str) -> String {
        match (self.p50(section, n, a), self.p50(section, n, b)) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:>7.1}x", a / b),
            _ => format!("{:>8}", "-"),
        }
    }

    fn json(&self) -> serde_json::Value {
        let rows: Vec<serde_json::Value> = self
            .0
            .iter()
            .map(|((section, n, variant), v)| {
                serde_json::json!({
                    "section": section, "n": n, "variant": variant,
                    "runs": v.len(), "p50_ms": pct(v, 50.0), "p99_ms": pct(v, 99.0),
                    "min_ms": pct(v, 0.0), "samples_ms": v,
                })
            })
            .collect();
        serde_json::Value::Array(rows)
    }
}

// ------------------------------------------------------------------------------
// The vault every tool run rotates: a directory vault (the window starts after its
// pointer swap, so where the vault lives does not change what is measured).

struct Sandbox {
    dir: tempfile::TempDir,
    loaded: vsync_orchestrate::plan::LoadedPlan,
}

async fn sandbox() -> Sandbox {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let path = dir.path().join("plan.toml");
    std::fs::write(
        &path,
        format!(
            "env = \"bench\"\nstate_dir = \"{d}/state\"\n[vault]\ndir = \"{d}/vault\"\nprefix = \"b/bench/\"\nsalt = \"BenchSaltBenchSalt012345\"\niterations = 1000\n[[store]]\ntype = \"file\"\npath = \"{d}/unused\"\n"
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("vault")).unwrap();
    let loaded = vsync_orchestrate::plan::load(&path).unwrap();
    let vault = build::vault(&loaded.plan).await.unwrap();
    let content = SeedContent::Json {
        kv: BTreeMap::from([("K".into(), "v".into())]),
        assets: BTreeMap::new(),
    };
    vault
        .seed(Layout::Runtime, &Passphrase::from(OLD), &content)
        .await
        .unwrap();
    Sandbox { dir, loaded }
}

/// One whole rotation by the engine over `stores`; its window from the summary.
async fn tool_window(stores: Vec<Arc<dyn SecretStore>>) -> f64 {
    let sb = sandbox().await;
    let parts = build::Parts {
        vault: build::vault(&sb.loaded.plan).await.unwrap(),
        stores,
        restarters: vec![],
    };
    let mut opts = RunOptions::new(sb.dir.path().join("state"));
    opts.yes = true;
    let s = engine::run_with(&sb.loaded, parts, &opts, &Progress::quiet(), false).await;
    assert_eq!(s.exit_code, 0, "{}", s.outcome);
    s.window_ms.unwrap()
}

/// A table's title and column heads: the size, three variants, two ratios.
fn header(section: &str, cols: [&str; 6]) {
    println!(
        "\n{section}: window T0 → T1 in ms, p50 and p99 of {} interleaved runs",
        rounds()
    );
    println!(
        "  {:>6}  {:>17}  {:>17}  {:>17}  {:>9}  {:>9}",
        cols[0], cols[1], cols[2], cols[3], cols[4], cols[5]
    );
}

// ------------------------------------------------------------------------------
// Secrets Manager on moto.

fn sm_client(endpoint: &str) -> aws_sdk_secretsmanager::Client {
    use aws_sdk_secretsmanager as sm;
    let conf = sm::Config::builder()
        .behavior_version(sm::config::BehaviorVersion::latest())
        .region(sm::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(sm::config::Credentials::new(
            "testing", "testing", None, None, "bench",
        ))
        .build();
    sm::Client::from_conf(conf)
}

fn random_id(prefix: &str) -> String {
    let mut r = [0u8; 6];
    getrandom::fill(&mut r).unwrap();
    format!(
        "{prefix}{}",
        r.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// `n` fresh secrets holding the old passphrase.
async fn secrets(admin: &aws_sdk_secretsmanager::Client, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let id = random_id("bench/");
        admin
            .create_secret()
            .name(&id)
            .secret_string(OLD)
            .send()
            .await
            .unwrap();
        ids.push(id);
    }
    ids
}

/// The tool as a plan runs it: `n` `aws_secrets_manager` tables, built the way
/// `vsync-orchestrate run` builds them (one shared AWS configuration and HTTP
/// client for all stores).
async fn sm_tool(endpoint: &str, admin: &aws_sdk_secretsmanager::Client, n: usize) -> f64 {
    let sb = sandbox().await;
    let d = sb.dir.path().display();
    let mut plan = format!(
        "env = \"bench\"\nstate_dir = \"{d}/state\"\n[vault]\ndir = \"{d}/vault\"\nprefix = \"b/bench/\"\nsalt = \"BenchSaltBenchSalt012345\"\niterations = 1000\n"
    );
    for id in secrets(admin, n).await {
        plan.push_str(&format!(
            "[[store]]\ntype = \"aws_secrets_manager\"\nsecret_id = \"{id}\"\nregion = \"us-east-1\"\nendpoint = \"{endpoint}\"\n"
        ));
    }
    let path = sb.dir.path().join("sm.toml");
    std::fs::write(&path, plan).unwrap();
    let loaded = vsync_orchestrate::plan::load(&path).unwrap();
    let mut opts = RunOptions::new(sb.dir.path().join("state"));
    opts.yes = true;
    let s = engine::run(&loaded, &opts, &Progress::quiet(), false).await;
    assert_eq!(s.exit_code, 0, "{}", s.outcome);
    s.window_ms.unwrap()
}

/// What a script is given: the secret, the staged version and the current one.
/// Staged here, before any timing, the way the scripts' authors would stage.
async fn staged_for_scripts(
    admin: &aws_sdk_secretsmanager::Client,
    n: usize,
) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for id in secrets(admin, n).await {
        let cur = admin
            .describe_secret()
            .secret_id(&id)
            .send()
            .await
            .unwrap()
            .version_ids_to_stages()
            .unwrap()
            .iter()
            .find(|(_, s)| s.iter().any(|s| s == "AWSCURRENT"))
            .map(|(v, _)| v.clone())
            .unwrap();
        let pending = admin
            .put_secret_value()
            .secret_id(&id)
            .secret_string(NEW)
            .version_stages("AWSPENDING")
            .send()
            .await
            .unwrap()
            .version_id()
            .unwrap()
            .to_string();
        out.push((id, pending, cur));
    }
    out
}

const BOTO3_SCRIPT: &str = r#"
import json, sys, time
from concurrent.futures import ThreadPoolExecutor
import boto3, botocore.config
a = json.load(sys.stdin)
cfg = botocore.config.Config(max_pool_connections=max(10, len(a["items"])))
kw = dict(endpoint_url=a["endpoint"], region_name="us-east-1", config=cfg)
s3 = boto3.client("s3", **kw)
sm = boto3.client("secretsmanager", **kw)
# Warm: every client has made a request and holds an open connection.
s3.head_bucket(Bucket=a["bucket"])
for sid, _, _ in a["items"]:
    sm.describe_secret(SecretId=sid)
pool = ThreadPoolExecutor(len(a["items"]))
def move(item):
    sid, pending, current = item
    sm.update_secret_version_stage(SecretId=sid, VersionStage="AWSCURRENT",
        MoveToVersionId=pending, RemoveFromVersionId=current)
# T0 as the tool takes it: when the swap is sent (storage may apply it before
# it answers).
t0 = time.perf_counter()
s3.put_object(Bucket=a["bucket"], Key=a["key"], Body=b"pointer")
if len(a["items"]) == 1:
    move(a["items"][0])
else:
    list(pool.map(move, a["items"]))
t1 = time.perf_counter()
print(json.dumps({"window_ms": (t1 - t0) * 1000}))
"#;

const CLI_SCRIPT: &str = r#"set -eu
ep=$1; bucket=$2; key=$3; shift 3
body=$(mktemp); trap 'rm -f "$body"' EXIT; echo pointer >"$body"
aws --endpoint-url "$ep" s3api put-object --bucket "$bucket" --key "$key" --body "$body" >/dev/null
t0=$(date +%s%N)
while [ $# -gt 0 ]; do
  aws --endpoint-url "$ep" secretsmanager update-secret-version-stage --secret-id "$1" \
    --version-stage AWSCURRENT --move-to-version-id "$2" --remove-from-version-id "$3" >/dev/null
  shift 3
done
t1=$(date +%s%N)
echo $(( (t1 - t0) / 1000 ))
"#;

struct Scripts {
    python: Option<PathBuf>,
    aws: Option<PathBuf>,
    dir: tempfile::TempDir,
}

fn find_tool(var: &str, venv_bin: &str, path_name: &str) -> Option<PathBuf> {
    if let Ok(p) = std::env::var(var) {
        return Some(PathBuf::from(p));
    }
    let cache =
        std::env::var("CI_CACHE_DIR").unwrap_or_else(|_| "/var/cache/vsync-orchestrate-ci".into());
    let p = Path::new(&cache).join(venv_bin);
    if p.exists() {
        return Some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(path_name))
            .find(|p| p.exists())
    })
}

impl Scripts {
    fn new() -> Scripts {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("best.py"), BOTO3_SCRIPT).unwrap();
        std::fs::write(dir.path().join("cli.sh"), CLI_SCRIPT).unwrap();
        let s = Scripts {
            python: find_tool("VSYNC_BENCH_PYTHON", "moto-venv/bin/python", "python3"),
            aws: find_tool("VSYNC_BENCH_AWS", "awscli-venv/bin/aws", "aws"),
            dir,
        };
        if full() {
            assert!(
                s.python.is_some() && s.aws.is_some(),
                "the benchmark needs python3 with boto3 and the aws CLI: run it with `bash bench/run`"
            );
        }
        s
    }

    async fn boto3(&self, endpoint: &str, items: &[(String, String, String)]) -> Option<f64> {
        let python = self.python.as_ref()?;
        let input = serde_json::json!({
            "endpoint": endpoint, "bucket": BUCKET, "key": "bench/pointer", "items": items,
        });
        let out = run_with_stdin(
            tokio::process::Command::new(python).arg(self.dir.path().join("best.py")),
            input.to_string().as_bytes(),
        )
        .await;
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        v["window_ms"].as_f64()
    }

    async fn cli(&self, endpoint: &str, items: &[(String, String, String)]) -> Option<f64> {
        let aws = self.aws.as_ref()?;
        let mut cmd = tokio::process::Command::new("bash");
        cmd.arg(self.dir.path().join("cli.sh"))
            .args([endpoint, BUCKET, "bench/pointer"])
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    aws.parent().unwrap().display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_DEFAULT_REGION", "us-east-1");
        for (id, pending, cur) in items {
            cmd.args([id, pending, cur]);
        }
        let out = run_with_stdin(&mut cmd, b"").await;
        let micros: f64 = String::from_utf8_lossy(&out).trim().parse().unwrap();
        Some(micros / 1000.0)
    }
}

async fn run_with_stdin(cmd: &mut tokio::process::Command, input: &[u8]) -> Vec<u8> {
    use tokio::io::AsyncWriteExt;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut w = child.stdin.take().unwrap();
    w.write_all(input).await.unwrap();
    drop(w);
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

const BUCKET: &str = "vsync-bench-pointer";

async fn secrets_manager(results: &mut Results, section: &str, endpoint: &str, admin_ep: &str) {
    let admin = sm_client(admin_ep);
    let s3 = {
        use aws_sdk_s3 as s3;
        let conf = s3::Config::builder()
            .behavior_version(s3::config::BehaviorVersion::latest())
            .region(s3::config::Region::new("us-east-1"))
            .endpoint_url(admin_ep)
            .force_path_style(true)
            .credentials_provider(s3::config::Credentials::new(
                "testing", "testing", None, None, "bench",
            ))
            .build();
        s3::Client::from_conf(conf)
    };
    let _ = s3.create_bucket().bucket(BUCKET).send().await;
    let scripts = Scripts::new();
    let sizes = pick(&[1, 4, 8]);
    for _ in 0..rounds() {
        for &n in &sizes {
            results.add(section, n, "tool", sm_tool(endpoint, &admin, n).await);
            let items = staged_for_scripts(&admin, n).await;
            if let Some(w) = scripts.boto3(endpoint, &items).await {
                results.add(section, n, "boto3", w);
            }
            let items = staged_for_scripts(&admin, n).await;
            if let Some(w) = scripts.cli(endpoint, &items).await {
                results.add(section, n, "aws CLI", w);
            }
        }
    }
    header(
        section,
        [
            "stores",
            "tool p50/p99",
            "boto3 p50/p99",
            "aws CLI p50/p99",
            "boto3/tl",
            "CLI/tool",
        ],
    );
    for &n in &sizes {
        println!(
            "  {n:>6}  {}  {}  {}  {}  {}",
            results.cell(section, n, "tool"),
            results.cell(section, n, "boto3"),
            results.cell(section, n, "aws CLI"),
            results.ratio(section, n, "boto3", "tool"),
            results.ratio(section, n, "aws CLI", "tool"),
        );
    }
}

// ------------------------------------------------------------------------------
// vps_file over SSH: the hosts `.ci/services/20-sshd.sh` starts.

struct SshHosts {
    ports: Vec<u16>,
    user: String,
    key: PathBuf,
    known_hosts: PathBuf,
    remote_root: PathBuf,
    host_roots: Vec<PathBuf>,
}

fn ssh_hosts() -> Option<SshHosts> {
    let var = |k: &str| std::env::var(k).ok();
    Some(SshHosts {
        ports: var("VSYNC_TEST_SSH_PORTS")?
            .split(',')
            .map(|p| p.trim().parse().unwrap())
            .collect(),
        user: var("VSYNC_TEST_SSH_USER")?,
        key: var("VSYNC_TEST_SSH_KEY")?.into(),
        known_hosts: var("VSYNC_TEST_SSH_KNOWN_HOSTS")?.into(),
        remote_root: var("VSYNC_TEST_SSH_REMOTE_ROOT")?.into(),
        host_roots: var("VSYNC_TEST_SSH_HOST_ROOTS")?
            .split(',')
            .map(PathBuf::from)
            .collect(),
    })
}

fn owner_ids(user: &str) -> (u32, u32) {
    let out = std::process::Command::new("id")
        .arg("-u")
        .arg(user)
        .output()
        .unwrap();
    let uid = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let out = std::process::Command::new("id")
        .arg("-g")
        .arg(user)
        .output()
        .unwrap();
    let gid = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    (uid, gid)
}

impl SshHosts {
    fn spec(&self, i: usize) -> vsync_orchestrate_ssh::HostSpec {
        vsync_orchestrate_ssh::HostSpec {
            host: "127.0.0.1".into(),
            port: Some(self.ports[i]),
            user: Some(self.user.clone()),
            identity_file: Some(self.key.clone()),
            known_hosts_file: Some(self.known_hosts.clone()),
        }
    }

    /// A fresh directory on the first `n` hosts holding `passphrase` (the old
    /// value) and, when `staged`, `passphrase.new`; owned by the login user.
    fn workdir(&self, n: usize, staged: bool) -> (String, Vec<PathBuf>) {
        let name = random_id("bench-");
        let (uid, gid) = owner_ids(&self.user);
        let mut local = Vec::new();
        for root in &self.host_roots[..n] {
            let d = root.join(&name);
            std::fs::create_dir_all(&d).unwrap();
            let mut files = vec![("passphrase", OLD)];
            if staged {
                files.push(("passphrase.new", NEW));
            }
            for (f, v) in files {
                std::fs::write(d.join(f), v).unwrap();
                std::os::unix::fs::chown(d.join(f), Some(uid), Some(gid)).unwrap();
            }
            std::os::unix::fs::chown(&d, Some(uid), Some(gid)).unwrap();
            local.push(d);
        }
        (self.remote_root.join(&name).display().to_string(), local)
    }

    fn ssh(&self, i: usize, master: &Path) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("ssh");
        c.arg("-S")
            .arg(master)
            .args(["-o", "BatchMode=yes", "-p"])
            .arg(self.ports[i].to_string())
            .arg(format!("{}@127.0.0.1", self.user))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        c
    }
}

/// Masters opened with the system ssh, as the tool's own transport opens them.
struct Masters {
    dir: tempfile::TempDir,
    n: usize,
}

impl Masters {
    async fn open(h: &SshHosts, n: usize) -> Masters {
        let dir = tempfile::Builder::new()
            .prefix("vb")
            .tempdir_in("/tmp")
            .unwrap();
        let opened = futures_util::future::join_all((0..n).map(|i| {
            let sock = dir.path().join(format!("m{i}"));
            let mut c = tokio::process::Command::new("ssh");
            c.args([
                "-M",
                "-f",
                "-N",
                "-o",
                "ControlPersist=yes",
                "-o",
                "BatchMode=yes",
            ])
            .arg("-S")
            .arg(&sock)
            .arg("-i")
            .arg(&h.key)
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", h.known_hosts.display()))
            .arg("-p")
            .arg(h.ports[i].to_string())
            .arg(format!("{}@127.0.0.1", h.user))
            .stdin(std::process::Stdio::null());
            async move { c.status().await.unwrap().success() }
        }))
        .await;
        assert!(
            opened.iter().all(|ok| *ok),
            "could not open the ssh masters"
        );
        Masters { dir, n }
    }

    fn sock(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("m{i}"))
    }

    async fn close(self, h: &SshHosts) {
        for i in 0..self.n {
            let _ = h.ssh(i, &self.sock(i)).args(["-O", "exit"]).status().await;
        }
    }
}

async fn vps_tool(h: &SshHosts, n: usize) -> f64 {
    let (remote, _local) = h.workdir(n, false);
    let mut cfg = vsync_orchestrate_ssh::VpsFileConfig::new(
        vsync_orchestrate_ssh::Transport::Ssh((0..n).map(|i| h.spec(i)).collect()),
        format!("{remote}/passphrase"),
    );
    cfg.mode = Some(0o600);
    let store = vsync_orchestrate_ssh::VpsFileStore::new(cfg).unwrap();
    tool_window(vec![Arc::new(store)]).await
}

/// `ssh … true` on every host at once over open masters.
async fn vps_floor(h: &SshHosts, m: &Masters, n: usize) -> f64 {
    let t = Instant::now();
    let all = futures_util::future::join_all((0..n).map(|i| {
        let mut c = h.ssh(i, &m.sock(i));
        c.arg("true");
        async move { c.status().await.unwrap().success() }
    }))
    .await;
    let took = ms(t.elapsed());
    assert!(all.iter().all(|ok| *ok));
    took
}

/// The operator's loop: one `ssh host mv` after another.
async fn vps_loop(h: &SshHosts, m: &Masters, n: usize) -> f64 {
    let (remote, local) = h.workdir(n, true);
    let t = Instant::now();
    for i in 0..n {
        let mut c = h.ssh(i, &m.sock(i));
        c.arg(format!("mv -f {remote}/passphrase.new {remote}/passphrase"));
        assert!(c.status().await.unwrap().success());
    }
    let took = ms(t.elapsed());
    assert_eq!(
        std::fs::read_to_string(local[0].join("passphrase")).unwrap(),
        NEW
    );
    took
}

async fn vps_file(results: &mut Results, h: &SshHosts) {
    let section = "vps_file over SSH";
    let sizes: Vec<usize> = pick(&[1, 5, 10, 20])
        .into_iter()
        .filter(|n| *n <= h.ports.len())
        .collect();
    if full() && sizes.len() < 4 {
        println!(
            "\n(only {} sshd hosts: the 20-host row needs `VSYNC_SSHD_COUNT=20`, as `bench/run` sets)",
            h.ports.len()
        );
    }
    let mut masters = Vec::new();
    for &n in &sizes {
        masters.push(Masters::open(h, n).await);
    }
    for _ in 0..rounds() {
        for (k, &n) in sizes.iter().enumerate() {
            results.add(section, n, "tool", vps_tool(h, n).await);
            results.add(section, n, "floor", vps_floor(h, &masters[k], n).await);
            results.add(section, n, "ssh loop", vps_loop(h, &masters[k], n).await);
        }
    }
    for m in masters {
        m.close(h).await;
    }
    header(
        section,
        [
            "hosts",
            "tool p50/p99",
            "floor p50/p99",
            "ssh loop p50/p99",
            "tool/flr",
            "vs 1 host",
        ],
    );
    for &n in &sizes {
        let vs_one = match (
            results.p50(section, n, "tool"),
            results.p50(section, 1, "tool"),
        ) {
            (Some(a), Some(b)) => format!("{:>8.2}x", a / b),
            _ => "-".into(),
        };
        println!(
            "  {n:>6}  {}  {}  {}  {}  {vs_one:>9}",
            results.cell(section, n, "tool"),
            results.cell(section, n, "floor"),
            results.cell(section, n, "ssh loop"),
            results.ratio(section, n, "tool", "floor"),
        );
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let bin = Path::new(env!("CARGO_BIN_EXE_vsync-orchestrate"));
        let size = std::fs::metadata(bin).map(|m| m.len()).unwrap_or(0);
        println!(
            "binary: {} — {:.1} MB ({} profile)",
            bin.display(),
            size as f64 / 1e6,
            if cfg!(debug_assertions) { "dev" } else { "release: stripped, no LTO" }
        );
        let mut kdf = Vec::new();
        for _ in 0..if full() { 5 } else { 0 } {
            let t = Instant::now();
            let salt = KdfParams::new("BenchSaltBenchSalt012345", 600_000);
            let _ = crypto::Key::derive(&Passphrase::from(OLD), &salt);
            kdf.push(ms(t.elapsed()));
        }
        if !kdf.is_empty() {
            println!(
                "PBKDF2-HMAC-SHA256, 600000 iterations (before T0; the new key is derived during preflight): {:.0} ms p50",
                pct(&kdf, 50.0)
            );
        }
        let mut results = Results::default();
        match std::env::var("VSYNC_TEST_MOTO_ENDPOINT") {
            Ok(ep) if !ep.is_empty() => {
                secrets_manager(&mut results, "Secrets Manager on moto (loopback)", &ep, &ep).await;
                if let Some(rtt) = std::env::var("VSYNC_BENCH_RTT_MS").ok().and_then(|v| v.parse().ok()) {
                    let proxy = fault_proxy::start_with_delay(&ep, vec![], Duration::from_millis(rtt)).await;
                    let section = format!("Secrets Manager behind a proxy adding {rtt} ms per request");
                    secrets_manager(&mut results, &section, &proxy.endpoint, &ep).await;
                }
            }
            _ => {
                assert!(!full(), "VSYNC_TEST_MOTO_ENDPOINT is not set: run `bash bench/run`");
                println!("\n(VSYNC_TEST_MOTO_ENDPOINT not set: Secrets Manager skipped)");
            }
        }
        match ssh_hosts() {
            Some(h) => vps_file(&mut results, &h).await,
            None => {
                assert!(!full(), "no sshd hosts (VSYNC_TEST_SSH_*): run `bash bench/run`");
                println!("\n(VSYNC_TEST_SSH_* not set: vps_file skipped)");
            }
        }
        let out = std::env::var("VSYNC_BENCH_JSON").map(PathBuf::from).unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-window.json")
        });
        let doc = serde_json::json!({
            "binary_bytes": size,
            "rounds": rounds(),
            "pbkdf2_600k_ms": kdf.first().map(|_| pct(&kdf, 50.0)),
            "rows": results.json(),
        });
        if full() {
            std::fs::write(&out, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
            println!("\nJSON: {}", out.display());
        }
    });
}
