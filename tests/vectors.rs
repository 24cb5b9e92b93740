//! The upstream conformance corpus (`tests/test-vectors/`, see its NOTICE.md), one
//! named test per vector, dispatched by category and asserting bytes or the exact
//! error class.

mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use vsync_orchestrate::api::Passphrase;
use vsync_orchestrate::vault::crypto::{self, Key};
use vsync_orchestrate::vault::{bootstrap, config_blob, lookup, seal, KdfParams, Stamp};

/// The copy kept in this repository, which the guard tests below always check.
fn in_repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/test-vectors")
}

/// `VSYNC_TEST_VECTORS` runs the vector tests against another copy of the corpus
/// (a newer upstream one, before it is taken in).
fn corpus() -> PathBuf {
    std::env::var_os("VSYNC_TEST_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(in_repo)
}

/// Files in the corpus folder that are notes about the copy, not vectors.
const NOTES: [&str; 5] = [
    ".gitattributes",
    "MISSING.txt",
    "NOTICE.md",
    "README.md",
    "SHA256SUMS",
];

/// Every file under `dir` (one folder deep, as the corpus is laid out), relative,
/// with `/` separators.
fn files_under(dir: &std::path::Path) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_owned();
        if p.is_dir() {
            for f in std::fs::read_dir(&p).unwrap() {
                let f = f.unwrap().path();
                assert!(f.is_file(), "{}: nothing nests deeper", f.display());
                out.insert(format!(
                    "{name}/{}",
                    f.file_name().unwrap().to_str().unwrap()
                ));
            }
        } else {
            out.insert(name);
        }
    }
    out
}

/// The in-repo copy is there, whole and byte-identical to what was taken from
/// upstream: a moved or emptied folder, a reformatted JSON or a checkout that
/// converted line ends fails here instead of leaving the vector tests reading
/// something else. Deliberately ignores `VSYNC_TEST_VECTORS`.
#[test]
fn the_in_repo_copy_is_complete_and_unaltered() {
    use sha2::Digest;
    let dir = in_repo();
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS"))
        .unwrap_or_else(|e| panic!("{}/SHA256SUMS: {e}", dir.display()));
    let mut listed = std::collections::BTreeSet::new();
    for line in sums.lines() {
        let (want, name) = line.split_once("  ").unwrap_or_else(|| panic!("{line:?}"));
        let bytes = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            hex(&sha2::Sha256::digest(&bytes)),
            want,
            "{name} differs from upstream"
        );
        listed.insert(name.to_owned());
    }
    let count = |ext: &str| listed.iter().filter(|n| n.ends_with(ext)).count();
    assert_eq!(
        (count(".json"), count(".bin")),
        (31, 24),
        "vector files listed"
    );
    let mut present = files_under(&dir);
    for note in NOTES {
        assert!(
            present.remove(note),
            "{note} missing from {}",
            dir.display()
        );
    }
    assert_eq!(present, listed, "files in the folder vs SHA256SUMS");
}

struct Vector {
    json: Value,
    bin: Option<Vec<u8>>,
}

fn load(name: &str) -> Vector {
    let base = corpus().join(name);
    let text = std::fs::read_to_string(base.with_extension("json"))
        .unwrap_or_else(|e| panic!("vector {name}: {e} (looked in {})", corpus().display()));
    Vector {
        json: serde_json::from_str(&text).unwrap(),
        bin: std::fs::read(base.with_extension("bin")).ok(),
    }
}

fn expected_error(v: &Vector) -> Option<&str> {
    v.json["expected"]["error"].as_str()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn kdf(v: &Vector) -> (Passphrase, KdfParams) {
    let i = &v.json["inputs"];
    (
        Passphrase::from(i["passphrase"].as_str().unwrap()),
        KdfParams::new(i["salt"].as_str().unwrap(), 600_000),
    )
}

async fn run(name: &str) {
    let v = load(name);
    let category = name.split('/').next().unwrap();
    assert_eq!(v.json["category"], category, "{name}: category mismatch");
    match category {
        "rqe1-decrypt" | "rqe1-decrypt-error" => {
            let (pass, kdf) = kdf(&v);
            let res = crypto::decrypt(&Key::derive(&pass, &kdf), v.bin.as_ref().unwrap());
            match expected_error(&v) {
                None => assert_eq!(
                    hex(&res.unwrap()),
                    v.json["expected"]["plaintext_hex"].as_str().unwrap()
                ),
                Some(class) => assert_eq!(res.unwrap_err().kind.class_name(), class, "{name}"),
            }
        }
        "rqem0001-manifest" => {
            let bin = v.bin.as_ref().unwrap();
            let claimed = Stamp::parse(v.json["inputs"]["remote_ts"].as_str().unwrap()).unwrap();
            let res = seal::unseal_expecting(bin, &claimed);
            if let Some(ts) = v.json["expected"]["embedded_ts"].as_str() {
                assert_eq!(
                    seal::unseal(bin).unwrap().0.as_str(),
                    ts,
                    "{name}: parsing alone"
                );
            }
            match expected_error(&v) {
                None => {
                    let (stamp, payload) = res.unwrap();
                    assert_eq!(
                        stamp.as_str(),
                        v.json["expected"]["embedded_ts"].as_str().unwrap()
                    );
                    assert_eq!(
                        hex(payload),
                        v.json["expected"]["payload_hex"].as_str().unwrap()
                    );
                }
                Some(class) => assert_eq!(res.unwrap_err().kind.class_name(), class),
            }
        }
        "config-blob" => {
            let blob = String::from_utf8(v.bin.clone().unwrap()).unwrap();
            let res = config_blob::decode(&blob);
            match expected_error(&v) {
                None => {
                    let cfg = res.unwrap();
                    assert_eq!(
                        serde_json::to_value(&cfg).unwrap(),
                        v.json["expected"]["config_json"]
                    );
                    // And our encoder's output decodes to the same config.
                    assert_eq!(
                        config_blob::decode(&config_blob::encode(&cfg)).unwrap(),
                        cfg
                    );
                }
                Some(class) => assert_eq!(res.unwrap_err().kind.class_name(), class),
            }
        }
        "fallback-chain" => {
            let i = &v.json["inputs"];
            let map = |x: &Value| -> BTreeMap<String, String> {
                x.as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                    .collect()
            };
            let (vault, env, defaults) = (map(&i["vault"]), map(&i["env"]), map(&i["defaults"]));
            let env_fn = |k: &str| env.get(k).cloned();
            let results = v.json["expected"]["results"].as_array().unwrap();
            for (q, want) in i["queries"].as_array().unwrap().iter().zip(results) {
                let (value, source) =
                    lookup::lookup(q.as_str().unwrap(), &vault, &env_fn, &defaults);
                assert_eq!(want["key"], *q);
                assert_eq!(value.as_deref(), want["value"].as_str());
                assert_eq!(source.as_str(), want["source"].as_str().unwrap());
                assert_eq!(value.is_some(), want["has"].as_bool().unwrap());
            }
        }
        "asset-path" => {
            use std::os::unix::fs::PermissionsExt;
            let dir = tempfile::tempdir().unwrap();
            let key = v.json["inputs"]["key"].as_str().unwrap();
            let path = lookup::materialize_asset(dir.path(), key, v.bin.as_ref().unwrap()).unwrap();
            assert_eq!(
                hex(&std::fs::read(&path).unwrap()),
                v.json["expected"]["bytes_hex"].as_str().unwrap()
            );
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(
                format!("{mode:04o}"),
                v.json["expected"]["mode_octal"].as_str().unwrap()
            );
        }
        "error-taxonomy" => {
            let class = expected_error(&v).unwrap();
            let got = match name {
                "error-taxonomy/config-missing" => {
                    let env = v.json["inputs"]["env"].as_object().unwrap().clone();
                    let env_fn = |k: &str| env.get(k).and_then(|x| x.as_str()).map(str::to_owned);
                    bootstrap::bootstrap(&env_fn).err().unwrap().kind
                }
                "error-taxonomy/config-unsupported-version" => {
                    config_blob::decode(&String::from_utf8(v.bin.clone().unwrap()).unwrap())
                        .unwrap_err()
                        .kind
                }
                "error-taxonomy/manifest-not-found" => {
                    // A reachable store with nothing at the prefix.
                    let dir = tempfile::tempdir().unwrap();
                    let vault = local_vault(dir.path());
                    vault
                        .open(&Passphrase::from("irrelevant-passphrase"))
                        .await
                        .unwrap_err()
                        .kind
                }
                "error-taxonomy/s3-unreachable" => unreachable_kind().await,
                _ => {
                    let (pass, kdf) = kdf(&v);
                    crypto::decrypt(&Key::derive(&pass, &kdf), v.bin.as_ref().unwrap())
                        .unwrap_err()
                        .kind
                }
            };
            assert_eq!(got.class_name(), class, "{name}");
        }
        other => panic!("unknown vector category {other}"),
    }
}

fn local_vault(dir: &std::path::Path) -> vsync_orchestrate::vault::Vault {
    use vsync_orchestrate::vault::{storage::DirStorage, LayoutChoice, Vault};
    Vault::new(
        std::sync::Arc::new(DirStorage::new(dir).unwrap()),
        "myapp/prod/",
        KdfParams::new("0123456789abcdefghij", 1000),
        LayoutChoice::Runtime,
    )
}

/// An S3 endpoint nothing listens on: the network-error half of the scenario.
#[cfg(feature = "s3")]
async fn unreachable_kind() -> vsync_orchestrate::vault::VaultErrorKind {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = config_blob::VsyncConfig {
        v: 1,
        endpoint: format!("http://127.0.0.1:{port}"),
        region: "us-east-1".into(),
        bucket: "nobody-home".into(),
        access_key_id: "testing".into(),
        secret_access_key: "testing".into(),
        prefix: "app/".into(),
        env: "prod".into(),
        salt: "0123456789abcdefghij".into(),
        iterations: 1000,
    };
    let vault = bootstrap::vault_for(&cfg).await.unwrap();
    vault
        .open(&Passphrase::from("irrelevant-passphrase"))
        .await
        .unwrap_err()
        .kind
}

macro_rules! vectors {
    ($($test:ident => $name:literal,)*) => {
        $(#[tokio::test] async fn $test() { run($name).await })*

        /// Every vector file in the corpus is read by one of the tests above: each
        /// JSON is a named vector, and each `.bin` belongs to one (`run` reads it).
        #[test]
        fn every_vector_in_the_corpus_has_a_test() {
            let named: std::collections::BTreeSet<&str> = [$($name),*].into_iter().collect();
            assert_eq!(named.len(), 31);
            let mut found = files_under(&corpus());
            found.retain(|f| !NOTES.contains(&f.as_str()));
            let mut jsons = std::collections::BTreeSet::new();
            for f in &found {
                let (stem, ext) = f.rsplit_once('.').unwrap_or_else(|| panic!("{f}: not a vector"));
                match ext {
                    "json" => { jsons.insert(stem); }
                    "bin" => assert!(named.contains(stem), "{f} belongs to no vector"),
                    _ => panic!("{f}: not a vector"),
                }
            }
            assert_eq!(jsons, named);
        }
    };
}

vectors! {
    asset_path_pem_key => "asset-path/pem-key",
    asset_path_service_account_json => "asset-path/service-account-json",
    config_blob_negative_malformed_gzip => "config-blob/negative-malformed-gzip",
    config_blob_negative_unknown_version => "config-blob/negative-unknown-version",
    config_blob_negative_wrong_magic => "config-blob/negative-wrong-magic",
    config_blob_positive_aws => "config-blob/positive-aws",
    config_blob_positive_minio => "config-blob/positive-minio",
    config_blob_positive_r2 => "config-blob/positive-r2",
    error_taxonomy_bundle_corrupt => "error-taxonomy/bundle-corrupt",
    error_taxonomy_config_missing => "error-taxonomy/config-missing",
    error_taxonomy_config_unsupported_version => "error-taxonomy/config-unsupported-version",
    error_taxonomy_manifest_not_found => "error-taxonomy/manifest-not-found",
    error_taxonomy_s3_unreachable => "error-taxonomy/s3-unreachable",
    error_taxonomy_unsupported_spec_version => "error-taxonomy/unsupported-spec-version",
    error_taxonomy_wrong_passphrase => "error-taxonomy/wrong-passphrase",
    fallback_chain_default_hit => "fallback-chain/default-hit",
    fallback_chain_env_hit => "fallback-chain/env-hit",
    fallback_chain_missing => "fallback-chain/missing",
    fallback_chain_vault_hit => "fallback-chain/vault-hit",
    rqe1_decrypt_empty_plaintext => "rqe1-decrypt/empty-plaintext",
    rqe1_decrypt_hello_world => "rqe1-decrypt/hello-world",
    rqe1_decrypt_non_utf8_bytes => "rqe1-decrypt/non-utf8-bytes",
    rqe1_decrypt_error_bad_gcm_tag => "rqe1-decrypt-error/bad-gcm-tag",
    rqe1_decrypt_error_corrupt_magic => "rqe1-decrypt-error/corrupt-magic",
    rqe1_decrypt_error_truncated_ciphertext => "rqe1-decrypt-error/truncated-ciphertext",
    rqe1_decrypt_error_wrong_passphrase => "rqe1-decrypt-error/wrong-passphrase",
    rqe1_decrypt_error_wrong_version => "rqe1-decrypt-error/wrong-version",
    rqem0001_manifest_positive_basic => "rqem0001-manifest/positive-basic",
    rqem0001_manifest_positive_gen_counter => "rqem0001-manifest/positive-gen-counter",
    rqem0001_manifest_ts_mismatch => "rqem0001-manifest/ts-mismatch",
    rqem0001_manifest_wrong_magic => "rqem0001-manifest/wrong-magic",
}
