//! Hostile vault content, through the real binary: vault objects come from a bucket
//! many hands can write, so every malformed state must give the upstream error
//! class, the README's exit code and no write, for `plan` and for `run`, and never
//! a panic (exit 101).
//!
//! Each case seeds a vault (directory backend; a subset on moto), breaks it one
//! way, hashes every file (the vault, its sidecars, the passphrase files), runs
//! `plan` then `run`, and hashes again.

mod support;

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vsync_orchestrate::api::Passphrase;
use vsync_orchestrate::vault::crypto::{self, Key};
use vsync_orchestrate::vault::storage::{DirStorage, Storage};
use vsync_orchestrate::vault::{seal, KdfParams, Layout, LayoutChoice, SeedContent, Stamp, Vault};

const OLD: &str = "the-old-passphrase-0123456789";
const SALT: &str = "HostileSaltHostileSalt01";
const PREFIX: &str = "app/prod/";
const ITERATIONS: u32 = 2000;

fn kdf() -> KdfParams {
    KdfParams::new(SALT, ITERATIONS)
}

fn content(layout: Layout) -> SeedContent {
    match layout {
        Layout::Cli => SeedContent::Files(vec![(
            "infra/vault/prod/.env.prod".into(),
            b"A=1\n".to_vec(),
        )]),
        Layout::Runtime => SeedContent::Json {
            kv: BTreeMap::from([("A".into(), "1".into())]),
            assets: BTreeMap::new(),
        },
    }
}

/// An RQE1 envelope of `plain` under `passphrase` and the vault's salt.
fn encrypt(passphrase: &str, plain: &[u8]) -> Vec<u8> {
    crypto::encrypt(&Key::derive(&Passphrase::from(passphrase), &kdf()), plain)
}

/// A seeded directory vault, a 0600 passphrase file holding OLD, and a plan over
/// them with the `file` store (no restarter, no health URL: the vault is the point).
struct DirCase {
    dir: tempfile::TempDir,
    plan: PathBuf,
    stamp: Stamp,
}

impl DirCase {
    async fn new(layout: Layout) -> DirCase {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        std::fs::write(dir.path().join("salt"), SALT).unwrap();
        support::write_0600(&dir.path().join("passphrase"), OLD);
        let plan = dir.path().join("plan.toml");
        std::fs::write(
            &plan,
            format!(
                r#"env = "prod"
state_dir = "{d}/state"
[vault]
dir = "{d}/vault"
prefix = "{PREFIX}"
salt = {{ file = "{d}/salt" }}
iterations = {ITERATIONS}
[passphrase]
note = "hostile vault"
[[store]]
type = "file"
path = "{d}/passphrase"
"#
            ),
        )
        .unwrap();
        let storage = DirStorage::new(dir.path().join("vault")).unwrap();
        let vault = Vault::new(Arc::new(storage), PREFIX, kdf(), LayoutChoice::Auto);
        let stamp = vault
            .seed(layout, &Passphrase::from(OLD), &content(layout))
            .await
            .unwrap();
        DirCase { dir, plan, stamp }
    }

    /// The path of an object of the vault.
    fn object(&self, name: &str) -> PathBuf {
        self.dir.path().join("vault").join(PREFIX).join(name)
    }

    fn write(&self, name: &str, body: impl AsRef<[u8]>) {
        let p = self.object(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.object(name)).unwrap()
    }

    fn bundle(&self, layout: Layout) -> String {
        layout.bundle_name(&self.stamp)
    }

    /// Every file of the sandbox but the run journals (the tool's own state, not
    /// the vault), as SHA-256 digests.
    fn hashes(&self) -> BTreeMap<PathBuf, String> {
        let state = self.dir.path().join("state");
        let mut out = BTreeMap::new();
        let mut stack = vec![self.dir.path().to_owned()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.starts_with(&state) {
                    continue;
                }
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let mut h = Sha256::new();
                    std::io::copy(&mut std::fs::File::open(&p).unwrap(), &mut h).unwrap();
                    out.insert(p, format!("{:x}", h.finalize()));
                }
            }
        }
        out
    }
}

/// The binary, as an operator runs it: `--yes`, human output (stderr), no
/// inherited state directory.
fn bin(args: &[&str], plan: &Path, env: &[(&str, &str)]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vsync-orchestrate"))
        .args(args)
        .arg("--yes")
        .arg(plan)
        .env_remove("VSYNC_ORCHESTRATE_STATE_DIR")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A signal (no code) or a panic (101) is never an answer.
    let code = out.status.code().unwrap_or(-1);
    assert!(code != 101 && code != -1, "{args:?}: {code}\n{text}");
    assert!(!text.contains("panicked"), "{args:?}: panic\n{text}");
    // Messages quote vault content only in bounded excerpts (a 40 MiB pointer once
    // came back as 84 MB of output).
    assert!(
        text.len() < 16 << 10,
        "{args:?}: {} bytes of output",
        text.len()
    );
    (code, text)
}

/// What a hostile case must produce, for `plan` and `run` alike.
struct Expect {
    code: i32,
    /// The upstream class in the output, or (for refusals upstream has no class
    /// for) a phrase of our own.
    says: &'static str,
}

const CORRUPT: Expect = Expect {
    code: 1,
    says: "BundleCorruptError",
};
const WRONG: Expect = Expect {
    code: 1,
    says: "WrongPassphraseError",
};
const COUNTER: Expect = Expect {
    code: 3,
    says: "BundleCorruptError: the counter cell",
};

struct Outcome {
    name: &'static str,
    codes: (i32, i32),
}

/// Runs `plan` and `run` over a broken vault: expected code and words, no write.
fn check(name: &'static str, case: &DirCase, want: &Expect) -> Outcome {
    let before = case.hashes();
    let (plan_code, plan_out) = bin(&["plan"], &case.plan, &[]);
    assert_eq!(case.hashes(), before, "{name}: `plan` wrote\n{plan_out}");
    let (run_code, run_out) = bin(&["run"], &case.plan, &[]);
    assert_eq!(case.hashes(), before, "{name}: `run` wrote\n{run_out}");
    for (cmd, code, out) in [("plan", plan_code, &plan_out), ("run", run_code, &run_out)] {
        assert_eq!(code, want.code, "{name}: `{cmd}` exit code\n{out}");
        assert!(
            out.contains(want.says),
            "{name}: `{cmd}` does not say {:?}\n{out}",
            want.says
        );
    }
    Outcome {
        name,
        codes: (plan_code, run_code),
    }
}

async fn runtime() -> DirCase {
    DirCase::new(Layout::Runtime).await
}

async fn cli() -> DirCase {
    DirCase::new(Layout::Cli).await
}

/// Every hostile state of a directory vault, one after the other, with a table of
/// what each gave (`--nocapture` prints it; docs/safety.md quotes it).
async fn hostile_directory_vaults_give_the_upstream_class_and_write_nothing() {
    let mut seen = Vec::new();

    // Bundles.
    let c = runtime().await;
    let b = c.bundle(Layout::Runtime);
    c.write(&b, &c.read(&b)[..20]);
    seen.push(check("bundle truncated below 32 bytes", &c, &CORRUPT));

    let c = runtime().await;
    let b = c.bundle(Layout::Runtime);
    let body = c.read(&b);
    c.write(&b, &body[..body.len() / 2 + 16]);
    seen.push(check("bundle truncated (GCM tag gone)", &c, &WRONG));

    let c = cli().await;
    let older = Stamp::parse("20250101-000000").unwrap();
    let older_bundle = encrypt(OLD, &seal::seal(&older, b"PK\x05\x06older zip"));
    c.write(&Layout::Cli.bundle_name(&older), &older_bundle);
    c.write(&c.bundle(Layout::Cli), &older_bundle);
    seen.push(check(
        "CLI bundle swapped with an older version's",
        &c,
        &CORRUPT,
    ));

    let c = runtime().await;
    c.write(
        &c.bundle(Layout::Runtime),
        encrypt("an-earlier-passphrase-0123", br#"{"kv":{"A":"0"}}"#),
    );
    seen.push(check(
        "runtime bundle swapped with a version under another passphrase",
        &c,
        &WRONG,
    ));

    let c = runtime().await;
    let b = c.bundle(Layout::Runtime);
    let mut big = c.read(&b);
    big.resize(64 << 20, 0);
    c.write(&b, &big);
    drop(big);
    seen.push(check(
        "bundle of 64 MiB (cap 32 MiB)",
        &c,
        &Expect {
            code: 1,
            says: "BundleCorruptError: object of 67108864 bytes or more, over the 33554432-byte limit",
        },
    ));

    let c = runtime().await;
    let b = c.bundle(Layout::Runtime);
    let mut body = c.read(&b);
    body[0] = b'X';
    c.write(&b, &body);
    seen.push(check("bundle magic XQE1", &c, &CORRUPT));

    let c = runtime().await;
    let b = c.bundle(Layout::Runtime);
    let mut body = c.read(&b);
    body[3] = b'2';
    c.write(&b, &body);
    seen.push(check(
        "bundle version RQE2",
        &c,
        &Expect {
            code: 1,
            says: "UnsupportedSpecVersionError",
        },
    ));

    let c = runtime().await;
    c.write(&c.bundle(Layout::Runtime), encrypt(OLD, b"not json"));
    seen.push(check("runtime bundle that is not JSON", &c, &CORRUPT));

    let c = runtime().await;
    c.write(
        &c.bundle(Layout::Runtime),
        encrypt(OLD, br#"{"kv":{"A":1}}"#),
    );
    seen.push(check(
        "runtime bundle with a non-string value",
        &c,
        &CORRUPT,
    ));

    let c = runtime().await;
    let key = "k".repeat(1 << 20);
    c.write(
        &c.bundle(Layout::Runtime),
        encrypt(OLD, format!(r#"{{"kv":{{"{key}":1}}}}"#).as_bytes()),
    );
    seen.push(check(
        "runtime bundle with a 1 MiB key holding a number",
        &c,
        &CORRUPT,
    ));

    let c = cli().await;
    c.write(
        &c.bundle(Layout::Cli),
        encrypt(OLD, b"PK\x05\x06 a zip, no seal"),
    );
    seen.push(check("CLI bundle without its RQEM0001 seal", &c, &CORRUPT));

    let c = runtime().await;
    std::fs::remove_file(c.object(&c.bundle(Layout::Runtime))).unwrap();
    seen.push(check("pointer naming a missing bundle", &c, &CORRUPT));

    // Pointers.
    let c = runtime().await;
    let mut m = c.read("manifest");
    m[0] = b'X';
    c.write("manifest", &m);
    seen.push(check("manifest magic XQEM0001", &c, &CORRUPT));

    let c = runtime().await;
    c.write("manifest", b"");
    seen.push(check("empty manifest", &c, &CORRUPT));

    let c = cli().await;
    c.write("latest", b"");
    seen.push(check(
        "empty latest",
        &c,
        &Expect {
            code: 5,
            says: "ManifestNotFoundError",
        },
    ));

    let c = cli().await;
    c.write("latest", format!("{}garbage", c.stamp));
    seen.push(check("latest with trailing garbage", &c, &CORRUPT));

    let c = cli().await;
    c.write("latest", b"\xff\xfe\x00\x0120260101-000000");
    seen.push(check("latest that is not UTF-8", &c, &CORRUPT));

    let c = cli().await;
    c.write("latest", b"20261399-250000");
    seen.push(check("latest naming no real time", &c, &CORRUPT));

    let c = cli().await;
    c.write("latest", vec![b'2'; 40 << 20]);
    seen.push(check("latest of 40 MiB", &c, &CORRUPT));

    let c = cli().await;
    let last = Stamp::parse("99991231-235959").unwrap();
    c.write(
        &Layout::Cli.bundle_name(&last),
        encrypt(OLD, &seal::seal(&last, b"PK\x05\x06")),
    );
    c.write("latest", last.as_str());
    seen.push(check(
        "far-future stamp 99991231-235959 (CLI)",
        &c,
        &CORRUPT,
    ));

    let c = runtime().await;
    c.write(
        &Layout::Runtime.bundle_name(&last),
        encrypt(OLD, br#"{"kv":{"A":"1"}}"#),
    );
    c.write("manifest", seal::seal(&last, b"{}"));
    seen.push(check(
        "far-future stamp 99991231-235959 (runtime)",
        &c,
        &CORRUPT,
    ));

    let c = runtime().await;
    let vault = Vault::new(
        Arc::new(DirStorage::new(c.dir.path().join("vault")).unwrap()),
        PREFIX,
        kdf(),
        LayoutChoice::Auto,
    );
    vault
        .seed(Layout::Cli, &Passphrase::from(OLD), &content(Layout::Cli))
        .await
        .unwrap();
    seen.push(check(
        "both layouts at one prefix",
        &c,
        &Expect {
            code: 1,
            says: "both layouts exist",
        },
    ));

    // Counter cells.
    for (what, body) in [
        (
            "maximal generation u64::MAX",
            &b"{\"gen\":18446744073709551615}"[..],
        ),
        ("gen past u64", b"{\"gen\":18446744073709551616}"),
        ("counter cell that is not JSON", b"gen=4"),
        ("negative gen", b"{\"gen\":-1}"),
        ("float gen", b"{\"gen\":1.5}"),
        ("gen as a string", b"{\"gen\":\"4\"}"),
        ("counter cell that is an array", b"[4]"),
        ("counter cell that is binary", b"\x00\xff\xfe{"),
    ] {
        for cell in ["latest.meta", "latest.manifest"] {
            let c = runtime().await;
            c.write(cell, body);
            seen.push(check(
                Box::leak(format!("{what} in {cell}").into_boxed_str()),
                &c,
                &COUNTER,
            ));
        }
    }
    let c = runtime().await;
    c.write("latest.meta", vec![b' '; 33 << 20]);
    seen.push(check("counter cell of 33 MiB", &c, &COUNTER));

    // The run lock (read by the engine before anything else) is bounded too.
    let c = runtime().await;
    c.write(".vsync-orchestrate.lock", vec![b'{'; 40 << 20]);
    seen.push(check(
        "run lock object of 40 MiB",
        &c,
        &Expect {
            code: 12,
            says: "over the 33554432-byte limit",
        },
    ));

    eprintln!(
        "\n{:<62} {:>5} {:>4}",
        "hostile directory vault", "plan", "run"
    );
    for o in &seen {
        eprintln!("{:<62} {:>5} {:>4}", o.name, o.codes.0, o.codes.1);
    }
    eprintln!(
        "{} cases, {} runs of the binary, 0 panics, 0 writes",
        seen.len(),
        2 * seen.len()
    );
}

/// An `audit.csv` of binary garbage is not the vault: `plan` passes, `run` rotates
/// (a log anyone can write must not be a way to stop rotations), and the row is not
/// appended over bytes that cannot be read: exit 4 with the manual row, the log
/// byte-identical, everything else rotated.
async fn an_audit_log_of_garbage_is_left_alone_and_the_row_printed() {
    let c = runtime().await;
    let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 7919 % 251) as u8).collect();
    c.write("audit.csv", &garbage);
    let before = c.hashes();
    let (code, out) = bin(&["plan"], &c.plan, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(c.hashes(), before, "`plan` wrote\n{out}");

    let (code, out) = bin(&["run"], &c.plan, &[]);
    assert_eq!(code, 4, "{out}");
    assert!(
        out.contains("BundleCorruptError: the audit log is not an upstream audit.csv"),
        "{out}"
    );
    assert!(out.contains(",rotate,"), "the manual row is printed\n{out}");
    assert_eq!(c.read("audit.csv"), garbage, "the log was rewritten");
    let new = std::fs::read_to_string(c.dir.path().join("passphrase")).unwrap();
    let vault = Vault::new(
        Arc::new(DirStorage::new(c.dir.path().join("vault")).unwrap()),
        PREFIX,
        kdf(),
        LayoutChoice::Auto,
    );
    let opened = vault.open(&Passphrase::new(new)).await.unwrap();
    assert_eq!(opened.gen, 1);
}

/// After the 23-byte header a runtime manifest's bytes are payload, which the
/// libraries ignore: trailing bytes of any kind are not an error, and rotation
/// keeps them.
async fn trailing_bytes_in_a_runtime_manifest_are_payload() {
    let c = runtime().await;
    let mut m = c.read("manifest");
    m.extend_from_slice(b"\x00\xff trailing, not JSON");
    c.write("manifest", &m);
    let (code, out) = bin(&["run"], &c.plan, &[]);
    assert_eq!(code, 0, "{out}");
    let after = c.read("manifest");
    assert!(after.ends_with(b"\x00\xff trailing, not JSON"));
    assert_ne!(after[8..23], m[8..23], "the stamp moved");
}

/// A subset on moto (the real S3 protocol): the same classes and codes, and every
/// object (key, body, ETag) the same before and after `plan` and `run`.
#[cfg(feature = "s3")]
async fn hostile_s3_vaults_on_moto() {
    let Some(ep) = support::moto_endpoint() else {
        return;
    };
    type Break = fn(&Stamp) -> Vec<(String, Option<Vec<u8>>)>;
    let cases: Vec<(&str, Layout, Break, Expect)> = vec![
        (
            "bundle truncated below 32 bytes",
            Layout::Runtime,
            |s| vec![(format!("{PREFIX}v={s}"), Some(b"RQE1 short".to_vec()))],
            CORRUPT,
        ),
        (
            "bundle magic XQE1",
            Layout::Runtime,
            |s| {
                vec![(
                    format!("{PREFIX}v={s}"),
                    Some([b"XQE1".as_slice(), &[0u8; 40]].concat()),
                )]
            },
            CORRUPT,
        ),
        (
            "pointer naming a missing bundle",
            Layout::Runtime,
            |s| vec![(format!("{PREFIX}v={s}"), None)],
            CORRUPT,
        ),
        (
            "bundle of 33 MiB (cap 32 MiB)",
            Layout::Runtime,
            |s| vec![(format!("{PREFIX}v={s}"), Some(vec![0u8; 33 << 20]))],
            CORRUPT,
        ),
        (
            "empty latest",
            Layout::Cli,
            |_| vec![(format!("{PREFIX}latest"), Some(Vec::new()))],
            Expect {
                code: 5,
                says: "ManifestNotFoundError",
            },
        ),
        (
            "maximal generation",
            Layout::Cli,
            |_| {
                vec![(
                    format!("{PREFIX}latest.manifest"),
                    Some(b"{\"gen\":18446744073709551615}".to_vec()),
                )]
            },
            COUNTER,
        ),
        (
            "both layouts at one prefix",
            Layout::Cli,
            |s| vec![(format!("{PREFIX}manifest"), Some(seal::seal(s, b"{}")))],
            Expect {
                code: 1,
                says: "both layouts exist",
            },
        ),
    ];
    for (name, layout, breaks, want) in cases {
        let (bucket, storage) = support::moto_bucket(&ep).await;
        let vault = Vault::new(storage.clone(), PREFIX, kdf(), LayoutChoice::Auto);
        let stamp = vault
            .seed(layout, &Passphrase::from(OLD), &content(layout))
            .await
            .unwrap();
        for (key, body) in breaks(&stamp) {
            use vsync_orchestrate::vault::storage::{Meta, PutCondition};
            match body {
                Some(b) => {
                    storage
                        .put(&key, b, PutCondition::None, &Meta::new())
                        .await
                        .unwrap();
                }
                None => storage.delete(&key, None).await.unwrap(),
            }
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("salt"), SALT).unwrap();
        support::write_0600(&dir.path().join("passphrase"), OLD);
        let d = dir.path().display();
        let plan = dir.path().join("plan.toml");
        std::fs::write(
            &plan,
            format!(
                r#"env = "prod"
state_dir = "{d}/state"
[vault]
bucket = "{bucket}"
prefix = "{PREFIX}"
region = "us-east-1"
endpoint = "{ep}"
salt = {{ file = "{d}/salt" }}
iterations = {ITERATIONS}
[passphrase]
note = "hostile vault on moto"
[[store]]
type = "file"
path = "{d}/passphrase"
"#
            ),
        )
        .unwrap();
        let env = [
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ];
        let before = objects(&*storage).await;
        for cmd in ["plan", "run"] {
            let (code, out) = bin(&[cmd], &plan, &env);
            assert_eq!(code, want.code, "{name}: `{cmd}`\n{out}");
            assert!(out.contains(want.says), "{name}: `{cmd}`\n{out}");
            assert_eq!(objects(&*storage).await, before, "{name}: `{cmd}` wrote");
            assert_eq!(
                std::fs::read_to_string(dir.path().join("passphrase")).unwrap(),
                OLD
            );
            assert!(!dir.path().join("passphrase.new").exists());
        }
        eprintln!("moto: {name}: plan and run exit {}", want.code);
    }
}

/// Every object of a bucket: key → (SHA-256 of the body, ETag).
#[cfg(feature = "s3")]
async fn objects(storage: &dyn Storage) -> BTreeMap<String, (String, String)> {
    let mut out = BTreeMap::new();
    for key in storage.list("").await.unwrap() {
        let o = storage.get_limited(&key, 64 << 20).await.unwrap().unwrap();
        out.insert(key, (format!("{:x}", Sha256::digest(&o.body)), o.etag));
    }
    out
}

vsync_orchestrate_testkit::main! {
    tests: [
        hostile_directory_vaults_give_the_upstream_class_and_write_nothing,
        an_audit_log_of_garbage_is_left_alone_and_the_row_printed,
        trailing_bytes_in_a_runtime_manifest_are_payload,
        #[cfg(feature = "s3")] hostile_s3_vaults_on_moto,
    ],
}
