//! Entry points for the cargo-fuzz targets in `fuzz/` (and their regression tests):
//! one function per parser, taking arbitrary bytes. Each returns normally for every
//! input — an `Err` from the parser is a correct answer — and panics only when a
//! property fails (a round trip that does not round-trip, an error of the wrong
//! upstream class), so libFuzzer reports exactly the inputs worth a look.
//!
//! Not an API: hidden from the docs and free to change with the targets.

use super::audit::{self, Origin};
use super::config_blob;
use super::counter::Counter;
use super::crypto::{self, KdfParams, Key};
use super::error::VaultErrorKind;
use super::handle::Vault;
use super::layout::LayoutChoice;
use super::seal;
use super::stamp::Stamp;
use super::storage::{Meta, Object, PutCondition, Storage, StorageError, StorageErrorKind};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use vsync_orchestrate_api::Passphrase;

/// The fixed passphrase every target decrypts with.
pub const PASSPHRASE: &str = "fuzzing passphrase, not a secret";
/// Salt and a single PBKDF2 iteration: the targets exercise parsing, not the KDF.
pub fn kdf() -> KdfParams {
    KdfParams::new("fuzzing-salt-0123456789", 1)
}

fn key() -> &'static Key {
    static KEY: OnceLock<Key> = OnceLock::new();
    KEY.get_or_init(|| Key::derive(&Passphrase::from(PASSPHRASE), &kdf()))
}

/// An RQE1 envelope under the fixed key, for seeds and tests.
pub fn envelope(plaintext: &[u8]) -> Vec<u8> {
    crypto::encrypt(key(), plaintext)
}

/// RQE1: header checks in the upstream order, then GCM with a fixed key. Arbitrary
/// bytes almost never authenticate; whatever happens, the class must be the one the
/// header dictates. Then encrypt → decrypt of the same bytes must round-trip.
pub fn rqe1_decrypt(data: &[u8]) {
    let expected = if data.len() < crypto::MIN_LEN || &data[..3] != b"RQE" {
        Some(VaultErrorKind::BundleCorrupt)
    } else if data[3] != b'1' {
        Some(VaultErrorKind::UnsupportedSpecVersion)
    } else {
        None
    };
    match (crypto::decrypt(key(), data), expected) {
        (Err(e), Some(kind)) => assert_eq!(e.kind, kind, "{e}"),
        (Err(e), None) => assert_eq!(e.kind, VaultErrorKind::WrongPassphrase, "{e}"),
        (Ok(plain), None) => assert_eq!(plain.len() + crypto::MIN_LEN, data.len()),
        (Ok(_), Some(kind)) => panic!("decrypted an envelope whose header says {kind}"),
    }
    let sealed = envelope(data);
    assert_eq!(
        &crypto::decrypt(key(), &sealed).expect("round trip")[..],
        data
    );
}

/// RQEM0001: unseal; a successful unseal re-seals to the same bytes and passes its
/// own stamp check. Sealing the input under a valid stamp unseals back to it.
pub fn rqem0001_unseal(data: &[u8]) {
    if let Ok((stamp, payload)) = seal::unseal(data) {
        assert_eq!(seal::seal(&stamp, payload), data);
        assert!(seal::unseal_expecting(data, &stamp).is_ok());
    } else {
        let e = seal::unseal(data).unwrap_err();
        assert_eq!(e.kind, VaultErrorKind::BundleCorrupt, "{e}");
    }
    let stamp = Stamp::parse("20260523-114201").expect("a valid stamp");
    let sealed = seal::seal(&stamp, data);
    let (back, payload) = seal::unseal(&sealed).expect("round trip");
    assert_eq!((back, payload), (stamp, data));
    pointer(data);
}

/// A CLI pointer body (`latest`) and the stamp arithmetic rotation does on it.
pub fn pointer(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(stamp) = Stamp::parse(text.trim()) {
        assert_eq!(stamp.as_str(), text.trim());
        if let Some(next) = Stamp::next_after(&stamp) {
            assert!(next > stamp, "{next} after {stamp}");
        }
    }
}

/// `VSYNC_CONFIG`: decode; every error is one of the classes the readers raise;
/// a decoded config encodes and decodes to itself.
pub fn vsync_config_decode(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match config_blob::decode(text) {
        Ok(cfg) => {
            let again = config_blob::decode(&config_blob::encode(&cfg)).expect("round trip");
            assert!(again == cfg, "re-encoded config differs");
        }
        Err(e) => assert!(
            matches!(
                e.kind,
                VaultErrorKind::ConfigMissing
                    | VaultErrorKind::ConfigUnsupportedVersion
                    | VaultErrorKind::BundleCorrupt
            ),
            "{e}"
        ),
    }
}

/// Counter cells: parse strictly; what parses writes back compactly and parses to
/// the same cell.
pub fn counter_parse(data: &[u8]) {
    if let Ok(c) = Counter::parse(data) {
        let json = c.to_json();
        let back = Counter::parse(json.as_bytes())
            .unwrap_or_else(|e| panic!("{json} does not parse back: {e}"));
        assert_eq!(back, c, "{json}");
    }
}

/// The audit log: lenient display parse, strict parse, and appending a row whose
/// fields come from the input. An append that is accepted must leave every existing
/// byte in place and read back with the new row, field for field, as its last row.
pub fn audit_parse(data: &[u8]) {
    let _ = audit::parse(&String::from_utf8_lossy(data));
    let strict = audit::parse_strict(data);
    let text = String::from_utf8_lossy(data);
    let mut fields = text.splitn(3, '\u{1f}');
    let origin = Origin {
        hostname: fields.next().unwrap_or("").to_owned(),
        os_user: fields.next().unwrap_or("").to_owned(),
        ..Origin::default()
    };
    let meta = fields.next().unwrap_or("");
    let row = audit::rotate_row("2026-05-23T11:42:07.512Z", "20260523-114207", &origin, meta);
    let fresh = audit::appended(b"", &row).expect("an empty log takes any row");
    let rows = audit::parse_strict(&fresh)
        .expect("our own log")
        .expect("rows");
    assert_eq!(rows.len(), 1);
    let get = |c: &str| {
        rows[0]
            .iter()
            .find(|(k, _)| k == c)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("hostname"), Some(origin.hostname.as_str()));
    assert_eq!(get("os_user"), Some(origin.os_user.as_str()));
    assert_eq!(get("meta"), Some(meta));
    match (audit::appended(data, &row), strict) {
        (Ok(body), Ok(existing)) => {
            let before = match existing {
                Some(r) => {
                    assert!(body.starts_with(data), "existing bytes were changed");
                    r.len()
                }
                None => 0,
            };
            let after = audit::parse_strict(&body)
                .expect("appended log parses")
                .expect("rows");
            assert_eq!(after.len(), before + 1);
            assert_eq!(after.last(), rows.first());
        }
        (Err(_), _) => {}
        (Ok(_), Err(e)) => panic!("appended to a log parse_strict refuses: {e}"),
    }
}

/// An in-memory store for [`vault_inspect`]: no I/O, no runtime.
#[derive(Debug, Default)]
pub struct MemStorage(Mutex<BTreeMap<String, Vec<u8>>>);

impl MemStorage {
    pub fn with(objects: impl IntoIterator<Item = (String, Vec<u8>)>) -> MemStorage {
        MemStorage(Mutex::new(objects.into_iter().collect()))
    }
}

fn etag(body: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(body)[..8])
}

#[async_trait::async_trait]
impl Storage for MemStorage {
    fn describe(&self) -> String {
        "mem:".into()
    }
    async fn get_limited(&self, key: &str, limit: u64) -> Result<Option<Object>, StorageError> {
        let map = self.0.lock().expect("not poisoned");
        match map.get(key) {
            Some(b) if b.len() as u64 > limit => {
                Err(StorageError::too_large("get", key, b.len() as u64, limit))
            }
            Some(b) => Ok(Some(Object {
                body: b.clone(),
                etag: etag(b),
                meta: Meta::new(),
            })),
            None => Ok(None),
        }
    }
    async fn head(&self, key: &str) -> Result<Option<String>, StorageError> {
        Ok(self
            .0
            .lock()
            .expect("not poisoned")
            .get(key)
            .map(|b| etag(b)))
    }
    async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        cond: PutCondition,
        _meta: &Meta,
    ) -> Result<String, StorageError> {
        let mut map = self.0.lock().expect("not poisoned");
        let ok = match (&cond, map.get(key)) {
            (PutCondition::IfAbsent, Some(_)) => false,
            (PutCondition::IfMatch(t), Some(b)) => *t == etag(b),
            (PutCondition::IfMatch(_), None) => false,
            _ => true,
        };
        if !ok {
            return Err(StorageError::new(
                StorageErrorKind::PreconditionFailed,
                "put",
                key,
                "condition failed",
            ));
        }
        let tag = etag(&body);
        map.insert(key.to_owned(), body);
        Ok(tag)
    }
    async fn delete(&self, key: &str, _if_match: Option<&str>) -> Result<(), StorageError> {
        self.0.lock().expect("not poisoned").remove(key);
        Ok(())
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        Ok(self
            .0
            .lock()
            .expect("not poisoned")
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }
    fn delete_command(&self, key: &str) -> String {
        format!("rm {key}")
    }
}

/// Drives a future that never waits (every [`MemStorage`] call is ready at once).
fn ready<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// The objects of a vault at prefix `p/` cut out of one input: a selector byte
/// picks which keys exist, the rest is split at `0xFF 0x00` into their bodies, and
/// a body that is not an RQE1 envelope is sealed into one under the fixed key, so
/// the decoders behind GCM (RQEM0001 in a bundle, bundle JSON) are reached too.
pub fn vault_objects(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    const NAMES: [&str; 6] = [
        "latest",
        "manifest",
        "latest.manifest",
        "latest.meta",
        "BUNDLE_CLI",
        "BUNDLE_RUNTIME",
    ];
    let Some((&sel, rest)) = data.split_first() else {
        return Vec::new();
    };
    let mut parts = rest.split_inclusive(|b| *b == 0xFF).fold(
        vec![Vec::new()],
        |mut acc: Vec<Vec<u8>>, chunk| {
            acc.last_mut().expect("non-empty").extend_from_slice(chunk);
            if chunk.last() == Some(&0xFF) {
                acc.push(Vec::new());
            }
            acc
        },
    );
    for p in &mut parts {
        if p.last() == Some(&0xFF) {
            p.pop();
        }
    }
    let mut parts = parts.into_iter();
    let mut objects = Vec::new();
    let stamp_of = |objects: &[(String, Vec<u8>)], pointer: &str| -> String {
        objects
            .iter()
            .find(|(k, _)| k == &format!("p/{pointer}"))
            .map(|(_, b)| {
                if pointer == "manifest" {
                    String::from_utf8_lossy(b.get(8..23).unwrap_or(b"")).into_owned()
                } else {
                    String::from_utf8_lossy(b).trim().to_owned()
                }
            })
            .unwrap_or_default()
    };
    for (i, name) in NAMES.iter().enumerate() {
        if sel & (1 << i) == 0 {
            continue;
        }
        let body = parts.next().unwrap_or_default();
        let (key, body) = match *name {
            "BUNDLE_CLI" => (
                format!("p/versions/{}.enc", stamp_of(&objects, "latest")),
                encrypt_unless_envelope(body),
            ),
            "BUNDLE_RUNTIME" => (
                format!("p/v={}", stamp_of(&objects, "manifest")),
                encrypt_unless_envelope(body),
            ),
            n => (format!("p/{n}"), body),
        };
        objects.push((key, body));
    }
    objects
}

fn encrypt_unless_envelope(body: Vec<u8>) -> Vec<u8> {
    if body.starts_with(b"RQE") {
        body
    } else {
        envelope(&body)
    }
}

/// The read path `plan` and `run` take before any write (layout detection, pointer,
/// counters, bundle, decrypt, seal or JSON) over a vault cut from the input, on both
/// the strict and the `accept_unsealed` path; and `open` and `status` as an app and
/// `status` would. Every outcome must be an answer, and `inspect` must not write.
pub fn vault_inspect(data: &[u8]) {
    let objects: BTreeMap<String, Vec<u8>> = vault_objects(data).into_iter().collect();
    let storage = Arc::new(MemStorage::with(objects.clone()));
    for layout in [LayoutChoice::Auto, LayoutChoice::Cli, LayoutChoice::Runtime] {
        let vault = Vault::new(storage.clone(), "p/", kdf(), layout);
        let old = Passphrase::from(PASSPHRASE);
        for accept_unsealed in [false, true] {
            if let Ok(insp) = ready(vault.inspect(&old, accept_unsealed)) {
                assert_eq!(Some(insp.next_gen), insp.gen.checked_add(1));
                assert!(Stamp::next_after(&insp.stamp).is_some());
            }
        }
        let _ = ready(vault.open(&old));
        let _ = ready(vault.status());
    }
    let after = storage.0.lock().expect("not poisoned").clone();
    assert!(after == objects, "the read path wrote");
}
