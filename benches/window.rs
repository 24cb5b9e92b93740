//! The number this tool exists to shrink: the window between the pointer swap (T0)
//! and the last store's activation (T1). Side by side in one run:
//!
//! * `engine`     — `vsync-orchestrate`'s own path (`engine::run_with`): every
//!   store activated concurrently over connections warmed in preflight;
//! * `sequential` — the same stores activated one after another right after the
//!   swap (what a careful script would do);
//!
//! for N local file stores, and — when `VSYNC_TEST_MOTO_ENDPOINT` points at a moto
//! server — N AWS Secrets Manager stores on moto, plus the PBKDF2 cost that
//! preflight and re-encryption pay before T0.
//!
//! Run: `cargo bench --bench window` (with moto: see README, "Benchmarks").

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use vsync_orchestrate::api::{Passphrase, RunId, SecretStore};
use vsync_orchestrate::engine::{self, build, RunOptions};
use vsync_orchestrate::report::Progress;
use vsync_orchestrate::vault::{crypto, KdfParams, Layout, SeedContent};

#[path = "../tests/support/fault_proxy.rs"]
mod fault_proxy;

const OLD: &str = "bench-old-passphrase-0123456789";
/// `cargo bench` passes `--bench`; under `cargo test --all-targets` the same code
/// runs once as a quick smoke test instead of a measurement.
fn full() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn rounds() -> usize {
    if full() {
        7
    } else {
        1
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

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
    // The tool never creates a missing vault directory; the bench seeds a new one.
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

type Factory =
    dyn Fn(&Sandbox, usize) -> futures_util::future::BoxFuture<'static, Vec<Arc<dyn SecretStore>>>;

fn file_stores(
    sb: &Sandbox,
    n: usize,
) -> futures_util::future::BoxFuture<'static, Vec<Arc<dyn SecretStore>>> {
    let dir = sb.dir.path().to_owned();
    Box::pin(async move {
        (0..n)
            .map(|i| {
                let p = dir.join(format!("pass-{i}"));
                std::fs::write(&p, OLD).unwrap();
                Arc::new(vsync_orchestrate::local::FileStore::new(p, 0o600)) as Arc<dyn SecretStore>
            })
            .collect()
    })
}

fn moto_stores(
    endpoint: String,
) -> impl Fn(&Sandbox, usize) -> futures_util::future::BoxFuture<'static, Vec<Arc<dyn SecretStore>>>
{
    move |_sb, n| {
        let endpoint = endpoint.clone();
        Box::pin(async move {
            let mut out: Vec<Arc<dyn SecretStore>> = Vec::new();
            for _ in 0..n {
                let mut r = [0u8; 6];
                getrandom::fill(&mut r).unwrap();
                let id = format!(
                    "bench/{}",
                    r.iter().map(|b| format!("{b:02x}")).collect::<String>()
                );
                let cfg = vsync_orchestrate_aws::SecretsManagerConfig {
                    secret_id: id.clone(),
                    region: Some("us-east-1".into()),
                    endpoint: Some(endpoint.clone()),
                    profile: None,
                    json_key: None,
                    attempt_timeout: None,
                };
                let store = vsync_orchestrate_aws::SecretsManagerStore::new(cfg)
                    .await
                    .unwrap();
                create_secret(&endpoint, &id).await;
                out.push(Arc::new(store));
            }
            out
        })
    }
}

async fn create_secret(endpoint: &str, id: &str) {
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
        .create_secret()
        .name(id)
        .secret_string(OLD)
        .send()
        .await
        .unwrap();
}

/// The engine's window, from its own summary.
async fn engine_window(make: &Factory, n: usize) -> f64 {
    let sb = sandbox().await;
    let stores = make(&sb, n).await;
    let parts = build::Parts {
        vault: build::vault(&sb.loaded.plan).await.unwrap(),
        stores,
        restarters: vec![],
    };
    let mut opts = RunOptions::new(sb.dir.path().join("state"));
    opts.yes = true;
    let quiet = Progress::quiet();
    let s = engine::run_with(&sb.loaded, parts, &opts, &quiet, false).await;
    assert_eq!(s.exit_code, 0, "{}", s.outcome);
    s.window_ms.unwrap()
}

/// The same stores, activated one after another after the swap.
async fn sequential_window(make: &Factory, n: usize) -> f64 {
    let sb = sandbox().await;
    let stores = make(&sb, n).await;
    let vault = build::vault(&sb.loaded.plan).await.unwrap();
    let new = Passphrase::from("bench-new-passphrase-9876543210");
    let run = RunId(format!("seq-{n}"));
    for s in &stores {
        s.preflight().await.unwrap();
    }
    let mut staged = Vec::new();
    for s in &stores {
        staged.push(s.stage(&new, &run).await.unwrap());
    }
    let insp = vault.inspect(&Passphrase::from(OLD), false).await.unwrap();
    let prepared = vault.prepare(&insp, &new).await.unwrap();
    let committed = vault.commit(&prepared).await.unwrap();
    for (s, st) in stores.iter().zip(&staged) {
        s.activate(st).await.unwrap();
    }
    committed.t0.elapsed().as_secs_f64() * 1000.0
}

async fn compare(label: &str, make: &Factory, sizes: &[usize]) {
    println!("\n{label}: window T0 → T1, median of {} runs", rounds());
    println!(
        "  {:>7}  {:>12}  {:>14}  {:>8}",
        "stores", "engine (ms)", "sequential (ms)", "ratio"
    );
    let sizes = if full() { sizes } else { &sizes[..1] };
    for &n in sizes {
        let mut e = Vec::new();
        let mut s = Vec::new();
        for _ in 0..rounds() {
            e.push(engine_window(make, n).await);
            s.push(sequential_window(make, n).await);
        }
        let (e, s) = (median(e), median(s));
        println!("  {n:>7}  {e:>12.2}  {s:>14.2}  {:>7.1}x", s / e);
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut kdf = Vec::new();
        for _ in 0..if full() { 3 } else { 0 } {
            let t = Instant::now();
            let salt = KdfParams::new("BenchSaltBenchSalt012345", 600_000);
            let _ = crypto::Key::derive(&Passphrase::from(OLD), &salt);
            kdf.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        if !kdf.is_empty() {
            println!(
                "PBKDF2-HMAC-SHA256, 600000 iterations (paid before T0, twice per run): {:.0} ms median",
                median(kdf)
            );
        }
        let files: Box<Factory> = Box::new(file_stores);
        compare("local file stores", files.as_ref(), &[1, 4, 16]).await;
        match std::env::var("VSYNC_TEST_MOTO_ENDPOINT") {
            Ok(ep) if !ep.is_empty() => {
                let moto: Box<Factory> = Box::new(moto_stores(ep.clone()));
                compare("AWS Secrets Manager stores on moto (loopback HTTP)", moto.as_ref(), &[1, 4, 8]).await;
                // moto answers in a few ms on loopback and serialises requests in
                // Python; a real region is a network round trip away. A proxy that
                // holds every request 20 ms shows what concurrency buys there.
                let proxy = fault_proxy::start_with_delay(&ep, vec![], std::time::Duration::from_millis(20)).await;
                let far: Box<Factory> = Box::new(moto_stores(proxy.endpoint.clone()));
                compare("the same, behind a proxy adding 20 ms per request (a network round trip)", far.as_ref(), &[1, 4, 8]).await;
            }
            _ => println!("\n(VSYNC_TEST_MOTO_ENDPOINT not set: the Secrets Manager comparison is skipped)"),
        }
    });
}
