//! The fuzz targets' properties (`src/vault/fuzzing.rs`) under the normal test
//! suite: every conformance vector and hand-written seed, and every input a fuzzer
//! ever found a fault with, so a fixed crash stays fixed without cargo-fuzz.

use std::path::PathBuf;
use vsync_orchestrate::vault::fuzzing;
use vsync_orchestrate::vault::{config_blob, VaultErrorKind};

fn vectors() -> PathBuf {
    std::env::var_os("VSYNC_TEST_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/test-vectors"))
}

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
    let mut all = bins("rqe1-decrypt");
    all.extend(bins("rqe1-decrypt-error"));
    all.extend(bins("error-taxonomy"));
    for v in &all {
        for input in around(v) {
            fuzzing::rqe1_decrypt(&input);
        }
    }
}

#[test]
fn rqem0001_vectors_and_their_neighbourhood() {
    for v in bins("rqem0001-manifest") {
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
    for v in bins("config-blob") {
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
