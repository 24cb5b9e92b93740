//! Rotation (`docs/wire-format.md` §9.5, §9.6), split at the points the engine
//! journals: `inspect` (read-only), `prepare` (uploads an orphan bundle nobody
//! references), `commit` (the pointer swap, T0), `finish` (counters and audit,
//! idempotent so a resumed run can call it again).

use super::audit::{self, Origin};
use super::counter::{Counter, CounterError};
use super::crypto::{self, Key};
use super::error::{VaultError, VaultErrorKind};
use super::handle::Vault;
use super::layout::{self, Detected, Layout, COUNTER_CELLS};
use super::open::PointerReadError;
use super::seal;
use super::stamp::{self, Stamp};
use super::storage::{Meta, PutCondition, StorageError, StorageErrorKind};
use std::time::{Instant, SystemTime};
use vsync_orchestrate_api::Passphrase;
use zeroize::Zeroizing;

/// Why a rotation stopped. Each maps to the runbook's exit code (README, "Exit codes").
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("ManifestNotFoundError: vault not found: no pointer (`latest` or `manifest`, or an empty one) at {0}")]
    VaultNotFound(String),
    #[error("both layouts exist at {0} (`latest` and `manifest`); set vault.layout = \"cli\" or \"runtime\" to choose which one to rotate")]
    AmbiguousLayout(String),
    #[error("reading the vault failed (S3UnreachableError): {0}")]
    Read(StorageError),
    #[error("the vault pointer {key} cannot be read as a pointer: {source}")]
    PointerCorrupt { key: String, source: VaultError },
    #[error("the old passphrase does not open the live bundle {key}: {source}")]
    OldPassphrase { key: String, source: VaultError },
    /// The live bundle is missing, oversized or not a bundle: a fact about the
    /// vault, not about the passphrase, so it is not reported as one.
    #[error("the live bundle {key} cannot be used: {source}")]
    BundleUnusable { key: String, source: VaultError },
    #[error("BundleCorruptError: {key} decrypts with the old passphrase, but its embedded stamp {embedded} differs from the pointer's {pointer} (upstream `vsync rotate-passphrase` leaves bundles like this); set accept_unsealed = true under [vault] to re-seal it during this rotation")]
    Unsealed {
        key: String,
        embedded: Stamp,
        pointer: Stamp,
    },
    #[error("BundleCorruptError: the pointer names stamp {0}, the last one a YYYYMMDD-HHMMSS stamp can express, so a rotation has no later stamp to write; point the vault at a real version first")]
    StampExhausted(Stamp),
    #[error("BundleCorruptError: the counter cell {key} is malformed ({source}); fix or remove it before rotating")]
    MalformedCounter { key: String, source: CounterError },
    #[error("{0}")]
    Invalid(String),
    #[error("re-encryption failed its self-check: {0}")]
    Encrypt(String),
    #[error("uploading the new bundle failed: {0}")]
    Upload(StorageError),
    #[error("pointer swap refused: {key} no longer matches the ETag read in preflight (someone else rotated or pushed, or the answer to a swap that took effect was lost)")]
    PointerConflict { key: String },
    #[error("pointer swap failed: {0}")]
    PointerFailed(StorageError),
}

/// Which of the upstream runbook's outcomes a refusal is. The engine maps each to
/// the upstream exit code (1, 2, 3, 5) so on-call muscle memory transfers; the
/// vault only says which it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Bad input, an unreadable vault, or the old passphrase does not open it.
    BadInput,
    /// Re-encryption or the bundle upload failed.
    Upload,
    /// The pointer swap was refused or failed, or a counter is malformed.
    Pointer,
    /// No pointer at the prefix.
    NotFound,
}

impl RotateError {
    pub fn refusal(&self) -> Refusal {
        match self {
            RotateError::VaultNotFound(_) => Refusal::NotFound,
            RotateError::AmbiguousLayout(_)
            | RotateError::Read(_)
            | RotateError::PointerCorrupt { .. }
            | RotateError::OldPassphrase { .. }
            | RotateError::BundleUnusable { .. }
            | RotateError::Unsealed { .. }
            | RotateError::StampExhausted(_)
            | RotateError::Invalid(_) => Refusal::BadInput,
            RotateError::Encrypt(_) | RotateError::Upload(_) => Refusal::Upload,
            RotateError::MalformedCounter { .. }
            | RotateError::PointerConflict { .. }
            | RotateError::PointerFailed(_) => Refusal::Pointer,
        }
    }
}

/// What preflight learned: the live version, read and decrypted with the old
/// passphrase. Holds the plaintext (zeroized on drop) so rotate need not decrypt again.
pub struct Inspection {
    pub layout: Layout,
    pub stamp: Stamp,
    pub gen: u64,
    /// `gen + 1`, checked at inspection so a counter at its limit is refused before
    /// anything is written.
    pub next_gen: u64,
    pub pointer_etag: String,
    pub bundle_key: String,
    pointer_body: Vec<u8>,
    plaintext: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Inspection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspection")
            .field("layout", &self.layout)
            .field("stamp", &self.stamp)
            .field("gen", &self.gen)
            .field("pointer_etag", &self.pointer_etag)
            .finish_non_exhaustive()
    }
}

/// A new bundle uploaded (harmless until the pointer names it).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Prepared {
    pub layout: Layout,
    pub old_stamp: Stamp,
    pub new_stamp: Stamp,
    pub gen_before: u64,
    /// `gen_before + 1`, computed (checked) once at inspection.
    #[serde(default)]
    pub gen_after: u64,
    pub bundle_key: String,
    pub pointer_key: String,
    pub pointer_etag: String,
    #[serde(with = "hex_bytes")]
    pub new_pointer_body: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Committed {
    /// Monotonic instant right after the pointer swap returned: T0.
    pub t0: Instant,
    pub rotated_at: String,
}

/// Where and with what meta to write the audit row.
#[derive(Debug, Clone)]
pub struct AuditSpec {
    pub key: String,
    pub user_meta: Vec<(String, String)>,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum AuditOutcome {
    Written,
    AlreadyPresent,
    Disabled,
    /// Exit-4 semantics: the rotation is live; `row` is exactly the line to append by hand.
    Failed {
        key: String,
        error: String,
        row: String,
    },
}

#[derive(Debug, Clone)]
pub struct Finished {
    pub gen_after: u64,
    /// The rotate row appended to audit.csv (or found there), as written.
    pub audit_row: Option<String>,
    pub audit: AuditOutcome,
    /// Counter cells that could not be written (the rotation is live regardless).
    pub counter_errors: Vec<String>,
}

impl Finished {
    /// Whether the audit row and every counter cell were written (the rotation is
    /// live either way).
    pub fn bookkeeping_complete(&self) -> bool {
        !matches!(self.audit, AuditOutcome::Failed { .. }) && self.counter_errors.is_empty()
    }
}

impl Vault {
    /// Read-only: pointer, counters and live bundle, decrypted with `old`.
    /// `accept_unsealed` lets through a bundle whose embedded stamp differs from the
    /// pointer (what upstream's buggy rotate leaves behind); it is re-sealed anyway.
    pub async fn inspect(
        &self,
        old: &Passphrase,
        accept_unsealed: bool,
    ) -> Result<Inspection, RotateError> {
        let layout = match layout::detect(&*self.storage, &self.prefix, self.layout)
            .await
            .map_err(RotateError::Read)?
        {
            Detected::Found(l) => l,
            Detected::Nothing => return Err(RotateError::VaultNotFound(self.describe())),
            Detected::Both => {
                // An endpoint that answers 200 to every key (a web server, a
                // captive portal) looks like both layouts at once: ask for a key
                // no vault has before telling anyone to choose a layout.
                let probe = self.key(".vsync-orchestrate/no-such-key-probe");
                if matches!(self.storage.head(&probe).await, Ok(Some(_))) {
                    return Err(RotateError::Invalid(format!(
                        "{} answers every key as present (even {probe}, which no vault has): it is not an S3 API. Check vault.endpoint (and vault.bucket) in the plan",
                        self.describe()
                    )));
                }
                return Err(RotateError::AmbiguousLayout(self.describe()));
            }
        };
        let pointer_key = self.key(layout.pointer_name());
        // The pointer and both counter cells are independent reads: one round trip.
        let cells = futures_util::future::join_all(COUNTER_CELLS.iter().map(|name| {
            let key = self.key(name);
            async move {
                let got = self.storage.get(&key).await;
                (key, got)
            }
        }));
        let (pointer_read, cells) = tokio::join!(self.read_pointer_raw(layout), cells);
        let (stamp, pointer) = match pointer_read {
            Ok(Some(p)) => p,
            Ok(None) => return Err(RotateError::VaultNotFound(self.describe())),
            Err(PointerReadError::Storage(e)) => return Err(RotateError::Read(e)),
            Err(PointerReadError::Corrupt(e)) => {
                return Err(RotateError::PointerCorrupt {
                    key: pointer_key,
                    source: e,
                })
            }
        };
        if Stamp::next_after(&stamp).is_none() {
            return Err(RotateError::StampExhausted(stamp));
        }
        let mut gen = 0;
        let mut gen_key = String::new();
        for (key, got) in cells {
            let cell = match got {
                Ok(cell) => cell,
                Err(e) if e.kind == StorageErrorKind::TooLarge => {
                    return Err(RotateError::MalformedCounter {
                        key,
                        source: CounterError::TooLarge(e),
                    })
                }
                Err(e) => return Err(RotateError::Read(e)),
            };
            if let Some(obj) = cell {
                let c =
                    Counter::parse(&obj.body).map_err(|source| RotateError::MalformedCounter {
                        key: key.clone(),
                        source,
                    })?;
                if c.gen.unwrap_or(0) >= gen {
                    gen = c.gen.unwrap_or(0);
                    gen_key = key;
                }
            }
        }
        let next_gen = gen.checked_add(1).ok_or(RotateError::MalformedCounter {
            key: gen_key,
            source: CounterError::Exhausted { gen },
        })?;
        let bundle_key = self.key(&layout.bundle_name(&stamp));
        let unusable = |source| RotateError::BundleUnusable {
            key: bundle_key.clone(),
            source,
        };
        let envelope = match self.storage.get(&bundle_key).await {
            Ok(Some(obj)) => obj,
            Ok(None) => {
                return Err(unusable(VaultError::corrupt(
                    "the bundle the pointer names does not exist (torn bucket)",
                )))
            }
            Err(e) if e.kind == StorageErrorKind::TooLarge => {
                return Err(unusable(VaultError::corrupt(e.message)))
            }
            Err(e) => return Err(RotateError::Read(e)),
        };
        let key = self.derive(old).await;
        let fail = |source: VaultError| match source.kind {
            VaultErrorKind::WrongPassphrase => RotateError::OldPassphrase {
                key: bundle_key.clone(),
                source,
            },
            _ => unusable(source),
        };
        let plaintext = crypto::decrypt(&key, &envelope.body).map_err(fail)?;
        match layout {
            Layout::Cli => {
                let (embedded, _) = seal::unseal(&plaintext).map_err(fail)?;
                if embedded != stamp && !accept_unsealed {
                    return Err(RotateError::Unsealed {
                        key: bundle_key,
                        embedded,
                        pointer: stamp,
                    });
                }
            }
            Layout::Runtime => {
                super::open::parse_json_bundle(&plaintext).map_err(fail)?;
            }
        }
        Ok(Inspection {
            layout,
            stamp,
            gen,
            next_gen,
            pointer_etag: pointer.etag,
            bundle_key,
            pointer_body: pointer.body,
            plaintext,
        })
    }

    /// Re-seals and re-encrypts under `new` (same salt and iterations), checks the
    /// result decrypts, and uploads it with `If-None-Match: *` under a new stamp.
    pub async fn prepare(
        &self,
        insp: &Inspection,
        new: &Passphrase,
    ) -> Result<Prepared, RotateError> {
        let key = self.derive(new).await;
        self.prepare_with_key(insp, &key).await
    }

    /// PBKDF2 of `p` under this vault's salt and iterations, on the blocking pool:
    /// tens of milliseconds of CPU that must not stall the runtime, and that can run
    /// while the network is busy (the engine derives the new key during preflight).
    pub async fn derive(&self, p: &Passphrase) -> Key {
        // Outside a Tokio runtime (the fuzz targets' executor) there is no pool.
        if tokio::runtime::Handle::try_current().is_err() {
            return Key::derive(p, &self.kdf);
        }
        self.derive_task(p)
            .await
            .expect("key derivation does not panic")
    }

    /// [`Vault::derive`] started now and awaited later. Needs a Tokio runtime.
    pub fn derive_task(&self, p: &Passphrase) -> tokio::task::JoinHandle<Key> {
        let (p, kdf) = (p.clone(), self.kdf.clone());
        tokio::task::spawn_blocking(move || Key::derive(&p, &kdf))
    }

    /// [`Vault::prepare`] with the new key already derived.
    pub async fn prepare_with_key(
        &self,
        insp: &Inspection,
        key: &Key,
    ) -> Result<Prepared, RotateError> {
        let mut new_stamp = Stamp::next_after(&insp.stamp)
            .ok_or(RotateError::StampExhausted(insp.stamp.clone()))?;
        for attempt in 0..3 {
            let plain: Zeroizing<Vec<u8>> = match insp.layout {
                Layout::Cli => {
                    let (_, payload) = seal::unseal(&insp.plaintext)
                        .map_err(|e| RotateError::Encrypt(e.to_string()))?;
                    Zeroizing::new(seal::seal(&new_stamp, payload))
                }
                Layout::Runtime => insp.plaintext.clone(),
            };
            let envelope = crypto::encrypt(key, &plain);
            let back =
                crypto::decrypt(key, &envelope).map_err(|e| RotateError::Encrypt(e.to_string()))?;
            if back[..] != plain[..] {
                return Err(RotateError::Encrypt(
                    "decrypting the new bundle gave other bytes".into(),
                ));
            }
            let bundle_key = self.key(&insp.layout.bundle_name(&new_stamp));
            match self
                .storage
                .put(&bundle_key, envelope, PutCondition::IfAbsent, &Meta::new())
                .await
            {
                Ok(_) => {
                    return Ok(Prepared {
                        layout: insp.layout,
                        old_stamp: insp.stamp.clone(),
                        new_stamp: new_stamp.clone(),
                        gen_before: insp.gen,
                        gen_after: insp.next_gen,
                        bundle_key,
                        pointer_key: self.key(insp.layout.pointer_name()),
                        pointer_etag: insp.pointer_etag.clone(),
                        new_pointer_body: self.pointer_body(insp, &new_stamp),
                    })
                }
                // Another writer took this second's key: never overwrite, move on.
                // (Also what the SDK's own retry of a create that had succeeded sees:
                // the first object is then an orphan, as harmless as any.)
                Err(e) if e.kind == StorageErrorKind::PreconditionFailed && attempt < 2 => {
                    new_stamp = Stamp::next_after(&new_stamp)
                        .ok_or(RotateError::StampExhausted(new_stamp.clone()))?;
                }
                Err(e) => return Err(RotateError::Upload(e)),
            }
        }
        unreachable!("the loop returns on its last attempt")
    }

    fn pointer_body(&self, insp: &Inspection, new_stamp: &Stamp) -> Vec<u8> {
        match insp.layout {
            Layout::Cli => new_stamp.as_str().as_bytes().to_vec(),
            Layout::Runtime => {
                // Keep the manifest's payload, refreshing a `gen` it carries.
                let old_payload = seal::unseal(&insp.pointer_body)
                    .map(|(_, p)| p)
                    .unwrap_or(b"");
                let payload = match serde_json::from_slice::<serde_json::Value>(old_payload) {
                    Ok(serde_json::Value::Object(mut o)) if o.contains_key("gen") => {
                        o.insert("gen".into(), insp.next_gen.into());
                        serde_json::to_vec(&o).expect("serialises")
                    }
                    _ => old_payload.to_vec(),
                };
                seal::seal(new_stamp, &payload)
            }
        }
    }

    /// The pointer swap with `If-Match`: T0, the moment apps that boot start needing
    /// the new passphrase.
    pub async fn commit(&self, p: &Prepared) -> Result<Committed, RotateError> {
        let rotated_at = stamp::iso_millis(SystemTime::now());
        let meta: Meta = [
            ("gen".to_owned(), p.gen_after.to_string()),
            ("prev-gen".to_owned(), p.gen_before.to_string()),
            ("rotated-at".to_owned(), rotated_at.clone()),
        ]
        .into();
        // T0 is when the swap is sent, not when its answer arrives: storage may
        // apply it (and a booting app read the new pointer) before answering.
        let t0 = Instant::now();
        let res = self
            .storage
            .put(
                &p.pointer_key,
                p.new_pointer_body.clone(),
                PutCondition::IfMatch(p.pointer_etag.clone()),
                &meta,
            )
            .await;
        match res {
            Ok(_) => Ok(Committed { t0, rotated_at }),
            Err(e)
                if matches!(
                    e.kind,
                    StorageErrorKind::PreconditionFailed | StorageErrorKind::NotFound
                ) =>
            {
                Err(RotateError::PointerConflict {
                    key: p.pointer_key.clone(),
                })
            }
            Err(e) => Err(RotateError::PointerFailed(e)),
        }
    }

    /// The stamp the pointer names now, read fresh: how the engine learns whether a
    /// swap whose answer was lost took effect. `Ok(None)`: no pointer at all.
    pub async fn pointer_stamp(&self, layout: Layout) -> Result<Option<Stamp>, VaultError> {
        Ok(self.read_pointer(layout).await?.map(|(s, _)| s))
    }

    /// Counters in both cells, then the audit row. Idempotent: a cell already at
    /// `gen_before + 1` and a row already present for `new_stamp` are left alone.
    pub async fn finish(
        &self,
        gen_before: u64,
        gen_after: u64,
        new_stamp: &Stamp,
        rotated_at: &str,
        audit_spec: Option<&AuditSpec>,
    ) -> Finished {
        let counter_errors = self.write_counters(gen_before, gen_after, rotated_at).await;
        let (audit, audit_row) = self
            .append_audit(gen_before, gen_after, new_stamp, audit_spec)
            .await;
        Finished {
            gen_after,
            audit_row,
            audit,
            counter_errors,
        }
    }

    /// Both counter cells, concurrently (independent objects, one round trip).
    /// Apps report their generation from these cells, so the engine writes them
    /// before it restarts anything. Returns the cells not written.
    pub async fn write_counters(
        &self,
        gen_before: u64,
        gen_after: u64,
        rotated_at: &str,
    ) -> Vec<String> {
        let cell = Counter {
            gen: Some(gen_after),
            prev_gen: Some(gen_before),
            rotated_at: Some(rotated_at.to_owned()),
        }
        .to_json();
        let counters = futures_util::future::join_all(COUNTER_CELLS.iter().map(|name| {
            let key = self.key(name);
            let cell = &cell;
            async move {
                self.write_counter(&key, cell, gen_after)
                    .await
                    .err()
                    .map(|e| format!("{key}: {e}"))
            }
        }))
        .await;
        counters.into_iter().flatten().collect()
    }

    /// The rotate row appended to the audit log (when the plan keeps one): the
    /// outcome, and the row as written.
    pub async fn append_audit(
        &self,
        gen_before: u64,
        gen_after: u64,
        new_stamp: &Stamp,
        audit_spec: Option<&AuditSpec>,
    ) -> (AuditOutcome, Option<String>) {
        let Some(spec) = audit_spec else {
            return (AuditOutcome::Disabled, None);
        };
        let meta = audit::rotate_meta(&spec.user_meta, gen_after, gen_before);
        let row = audit::rotate_row(
            &stamp::iso_millis(SystemTime::now()),
            new_stamp.as_str(),
            &spec.origin,
            &meta,
        );
        match audit::append(&*self.storage, &spec.key, &row, new_stamp.as_str()).await {
            Ok(audit::Appended::Written) => (AuditOutcome::Written, Some(row)),
            Ok(audit::Appended::AlreadyPresent) => (AuditOutcome::AlreadyPresent, None),
            Err(e) => (
                AuditOutcome::Failed {
                    key: spec.key.clone(),
                    error: e.to_string(),
                    row,
                },
                None,
            ),
        }
    }

    async fn write_counter(
        &self,
        key: &str,
        body: &str,
        gen_after: u64,
    ) -> Result<(), StorageError> {
        let mut last = None;
        for _ in 0..3 {
            let cond = match self.storage.get(key).await? {
                Some(o) => {
                    if Counter::parse(&o.body).ok().and_then(|c| c.gen) >= Some(gen_after) {
                        return Ok(());
                    }
                    PutCondition::IfMatch(o.etag)
                }
                None => PutCondition::IfAbsent,
            };
            match self
                .storage
                .put(key, body.as_bytes().to_vec(), cond, &Meta::new())
                .await
            {
                Ok(_) => return Ok(()),
                // A lost answer may hide a write that happened (the SDK's retry then
                // sees 412): the next round reads the cell before deciding.
                Err(e)
                    if matches!(
                        e.kind,
                        StorageErrorKind::PreconditionFailed | StorageErrorKind::Unavailable
                    ) =>
                {
                    last = Some(e)
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("loop ran"))
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}
