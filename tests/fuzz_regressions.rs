//! The fuzz targets' properties (`src/vault/fuzzing.rs`, `src/plan/fuzzing.rs`) under
//! the normal test suite: every conformance vector, example plan and hand-written
//! seed, the malformed-plan corpus, and every input a fuzzer ever found a fault with,
//! so a fixed crash stays fixed without cargo-fuzz.

use std::path::PathBuf;
use vsync_orchestrate::plan::fuzzing as fuzzing_plan;
use vsync_orchestrate::vault::fuzzing;
use vsync_orchestrate::vault::{config_blob, VaultErrorKind};

/// The conformance corpus kept in this repository (`tests/vectors.rs` checks that it
/// is whole); `VSYNC_TEST_VECTORS` points at another copy.
fn vectors() -> PathBuf {
    std::env::var_os("VSYNC_TEST_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/test-vectors"))
}

/// The categories whose `.bin` files are parser inputs, by the target fed them.
const RQE1: [&str; 3] = ["rqe1-decrypt", "rqe1-decrypt-error", "error-taxonomy"];
const RQEM0001: &str = "rqem0001-manifest";
const CONFIG: &str = "config-blob";

/// Categories whose `.bin` is no parser's input: an asset's content is opaque bytes.
const NOT_PARSED: [&str; 1] = ["asset-path"];

fn bins(category: &str) -> Vec<Vec<u8>> {
    let dir = vectors().join(category);
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert!(!out.is_empty(), "no vectors in {}", dir.display());
    out.sort();
    out
}

/// A `.bin` in a category nobody feeds (a new upstream category, say) fails here
/// rather than silently going unfuzzed.
#[test]
fn every_binary_vector_is_fed_to_a_target() {
    let fed: Vec<&str> = RQE1.into_iter().chain([RQEM0001, CONFIG]).collect();
    let mut seen = 0;
    for cat in std::fs::read_dir(vectors()).unwrap() {
        let cat = cat.unwrap().path();
        if !cat.is_dir() {
            continue;
        }
        let name = cat.file_name().unwrap().to_str().unwrap().to_owned();
        for f in std::fs::read_dir(&cat).unwrap() {
            if f.unwrap().path().extension().is_some_and(|x| x == "bin") {
                assert!(
                    fed.contains(&name.as_str()) || NOT_PARSED.contains(&name.as_str()),
                    "{name}: .bin vectors no fuzz property reads"
                );
                seen += 1;
            }
        }
    }
    assert_eq!(seen, 24, "binary vectors in {}", vectors().display());
    let fed: usize = fed.iter().map(|c| bins(c).len()).sum();
    assert_eq!(fed, 22, "the 2 asset-path files are the only ones not fed");
}

/// Every prefix and a few mutations of `input`: the cheap neighbourhood a fuzzer
/// starts from.
fn around(input: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = (0..=input.len()).map(|n| input[..n].to_vec()).collect();
    for i in 0..input.len() {
        for b in [0x00, 0xff, b'"', b'\n', b',', 0x80] {
            let mut m = input.to_vec();
            m[i] = b;
            out.push(m);
        }
    }
    out
}

#[test]
fn rqe1_vectors_and_their_neighbourhood() {
    for v in RQE1.into_iter().flat_map(bins) {
        for input in around(&v) {
            fuzzing::rqe1_decrypt(&input);
        }
    }
}

#[test]
fn rqem0001_vectors_and_their_neighbourhood() {
    for v in bins(RQEM0001) {
        for input in around(&v) {
            fuzzing::rqem0001_unseal(&input);
        }
    }
    for input in around(b"99991231-235959") {
        fuzzing::rqem0001_unseal(&input);
    }
}

#[test]
fn vsync_config_vectors_and_their_neighbourhood() {
    for v in bins(CONFIG) {
        for input in around(&v) {
            fuzzing::vsync_config_decode(&input);
        }
    }
}

#[test]
fn counter_cells() {
    for cell in [
        &br#"{"gen":4,"prev_gen":3,"rotated_at":"2026-05-23T11:42:07.498Z"}"#[..],
        br#"{"gen":18446744073709551615}"#,
        br#"{"gen":1e3}"#,
        br#"{"gen":-0}"#,
        b" \n",
    ] {
        for input in around(cell) {
            fuzzing::counter_parse(&input);
        }
    }
}

#[test]
fn audit_logs() {
    let h = vsync_orchestrate::vault::audit::HEADER;
    for log in [
        format!("{h}\n"),
        format!("{h}\r\n2026,push,x,h,,u,,v,,\"{{\"\"a\"\"\":1}}\"\r\n"),
        format!("{h}\n2026,pull,x,h,,u,,v,,\"open"),
        "host\u{1f}user\u{1f}{\"note\":\"q\\\"uote, comma\\nnewline\"}".to_owned(),
    ] {
        for input in around(log.as_bytes()) {
            fuzzing::audit_parse(&input);
        }
    }
}

#[test]
fn whole_vaults() {
    for v in [
        &b"\x1520260523-114201\xff{\"gen\":2}\xffRQEM000120260523-114201PK\x05\x06"[..],
        b"\x2aRQEM000120260523-114201{\"gen\":0}\xff{\"gen\":0}\xff{\"kv\":{\"A\":\"b\"}}",
        b"\x3f99991231-235959\xffRQEM000120260523-114201\xff{\"gen\":18446744073709551615}\xff[]\xffRQE2\xff{\"A\":1}",
    ] {
        for input in around(v) {
            fuzzing::vault_inspect(&input);
        }
    }
}

/// A blob of a few kilobytes must not gunzip into gigabytes (found by reading the
/// decoder, not by a fuzzer: libFuzzer's memory limit would have reported it as an
/// out-of-memory crash).
#[test]
fn a_vsync_config_gzip_bomb_is_refused_early() {
    use base64::Engine;
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![b' '; 1 << 20];
    for _ in 0..64 {
        gz.write_all(&zeros).unwrap();
    }
    let blob = format!(
        "vsync-cfg-v1:{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(gz.finish().unwrap())
    );
    assert!(blob.len() < 200_000, "{}", blob.len());
    let e = config_blob::decode(&blob).unwrap_err();
    assert_eq!(e.kind, VaultErrorKind::BundleCorrupt);
    assert!(e.detail.contains("more than 65536 bytes"), "{e}");
}

/// Every file under `dir` whose name ends in one of `exts` (any file when empty).
fn files(dir: &str, exts: &[&str]) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| exts.is_empty() || exts.iter().any(|x| p.to_string_lossy().ends_with(x)))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    out.sort();
    out
}

/// The `plan_load` target's property on what it is seeded with: every example plan
/// (each with all its prefixes and a few byte mutations per position) and every file
/// of the malformed-plan corpus (`tests/malformed_plans.rs` runs the binary on them).
#[test]
fn plans_and_the_malformed_plan_corpus() {
    let plans = files("plans", &[".toml"]);
    assert!(plans.len() >= 4);
    for (path, bytes) in &plans {
        fuzzing_plan::plan_load(bytes);
        if let Err(e) = vsync_orchestrate::plan::parse_bytes(path, bytes) {
            // Only a plan naming an adapter this build leaves out is refused.
            assert!(e.to_string().contains("needs a build with the"), "{e}");
        }
        let mut inputs: Vec<Vec<u8>> = (0..=bytes.len()).map(|n| bytes[..n].to_vec()).collect();
        for i in 0..bytes.len() {
            for b in [0x00, 0xff, b'"', b'\n', b'[', b'='] {
                let mut m = bytes.clone();
                m[i] = b;
                inputs.push(m);
            }
        }
        for input in inputs {
            fuzzing_plan::plan_load(&input);
        }
    }
    let corpus = files("tests/malformed_plans", &[]);
    assert!(corpus.len() >= 60);
    for (path, bytes) in &corpus {
        fuzzing_plan::plan_load(bytes);
        let e = vsync_orchestrate::plan::parse_bytes(path, bytes)
            .map(|_| ())
            .expect_err(&path.display().to_string());
        assert!(e.problems.iter().all(|p| p.at.is_some()), "{e}");
    }
    // Larger than a plan may be, and a document nested past the parser's limit.
    fuzzing_plan::plan_load(&vec![b'#'; vsync_orchestrate::plan::MAX_PLAN_BYTES + 1]);
    fuzzing_plan::plan_load(format!("env = {}", "[".repeat(100_000)).as_bytes());
    fuzzing_plan::plan_load("a = { b = { c = { d = 1 } } }\n".repeat(1000).as_bytes());
}
