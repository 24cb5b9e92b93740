//! The read side, equal to what the runtime libraries (and `vsync pull`) do.

use super::counter::Counter;
use super::crypto::{self, Key};
use super::error::{excerpt, VaultError, VaultErrorKind};
use super::handle::Vault;
use super::layout::{self, Detected, Layout, COUNTER_CELLS};
use super::seal;
use super::stamp::Stamp;
use super::storage::{StorageError, StorageErrorKind};
use base64::Engine;
use std::collections::BTreeMap;
use vsync_orchestrate_api::Passphrase;
use zeroize::Zeroizing;

/// A decrypted bundle.
pub enum Content {
    /// Runtime layout: `{"kv":{…},"assets":{…}}` or a flat object of strings.
    Json {
        kv: BTreeMap<String, String>,
        assets: BTreeMap<String, Vec<u8>>,
    },
    /// CLI layout: the zip of the vault folder, never opened by us.
    Zip(Zeroizing<Vec<u8>>),
}

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Content::Json { kv, assets } => write!(
                f,
                "Json {{ kv: {:?}, assets: {:?} }}",
                kv.keys().collect::<Vec<_>>(),
                assets.keys().collect::<Vec<_>>()
            ),
            Content::Zip(z) => write!(f, "Zip({} bytes)", z.len()),
        }
    }
}

impl Drop for Content {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        if let Content::Json { kv, assets } = self {
            kv.values_mut().for_each(|v| v.zeroize());
            assets.values_mut().for_each(|v| v.zeroize());
        }
    }
}

#[derive(Debug)]
pub struct Opened {
    pub layout: Layout,
    pub stamp: Stamp,
    pub gen: u64,
    pub content: Content,
}

/// What `status` shows without a passphrase.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VaultStatus {
    pub layout: Layout,
    pub stamp: String,
    /// The highest generation of the two counter cells (0 when neither exists).
    pub gen: u64,
    pub rotated_at: Option<String>,
    /// `(cell, gen)` per counter cell present.
    pub cells: Vec<(String, Option<u64>)>,
    pub pointer_meta: BTreeMap<String, String>,
}

/// Why a pointer could not be read.
pub(crate) enum PointerReadError {
    Storage(StorageError),
    Corrupt(VaultError),
}

/// A failed read in the libraries' terms: an object over the size cap is content
/// (`BundleCorruptError`); anything else is the store (`S3UnreachableError`).
fn unreachable(e: StorageError) -> VaultError {
    match e.kind {
        StorageErrorKind::TooLarge => VaultError::corrupt(e.to_string()),
        _ => VaultError::new(VaultErrorKind::S3Unreachable, e.to_string()),
    }
}

/// `kv` and decoded `assets` of a runtime-layout bundle.
pub type JsonBundle = (BTreeMap<String, String>, BTreeMap<String, Vec<u8>>);

/// Parses a runtime-layout bundle with the libraries' rules: non-string values are
/// corrupt, assets are standard base64.
pub fn parse_json_bundle(bytes: &[u8]) -> Result<JsonBundle, VaultError> {
    let v: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|_| VaultError::corrupt("bundle plaintext is not JSON"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| VaultError::corrupt("bundle JSON is not an object"))?;
    let strings = |o: &serde_json::Map<String, serde_json::Value>, what: &str| {
        o.iter()
            .map(|(k, v)| {
                v.as_str()
                    .map(|s| (k.clone(), s.to_owned()))
                    .ok_or_else(|| {
                        VaultError::corrupt(format!("{what} value {} is not a string", excerpt(k)))
                    })
            })
            .collect::<Result<BTreeMap<_, _>, _>>()
    };
    let structured = obj.keys().all(|k| k == "kv" || k == "assets")
        && (obj.contains_key("kv") || obj.contains_key("assets"));
    if !structured {
        return Ok((strings(obj, "kv")?, BTreeMap::new()));
    }
    let section = |name: &str| match obj.get(name) {
        None => Ok(BTreeMap::new()),
        Some(serde_json::Value::Object(o)) => strings(o, name),
        Some(_) => Err(VaultError::corrupt(format!(
            "bundle {name} is not an object"
        ))),
    };
    let kv = section("kv")?;
    let assets = section("assets")?
        .into_iter()
        .map(|(k, v)| {
            base64::engine::general_purpose::STANDARD
                .decode(v)
                .map(|b| (k.clone(), b))
                .map_err(|_| VaultError::corrupt(format!("asset {} is not base64", excerpt(&k))))
        })
        .collect::<Result<_, _>>()?;
    Ok((kv, assets))
}

impl Vault {
    pub(crate) async fn detect_for_read(&self) -> Result<Layout, VaultError> {
        match layout::detect(&*self.storage, &self.prefix, self.layout)
            .await
            .map_err(unreachable)?
        {
            Detected::Found(l) => Ok(l),
            // Apps read the runtime layout; prefer it as they would.
            Detected::Both => Ok(Layout::Runtime),
            Detected::Nothing => Err(VaultError::new(
                VaultErrorKind::ManifestNotFound,
                format!("no vault pointer at {}", self.describe()),
            )),
        }
    }

    /// Reads the current pointer's stamp (and its raw body) for a layout.
    pub(crate) async fn read_pointer(
        &self,
        layout: Layout,
    ) -> Result<Option<(Stamp, super::storage::Object)>, VaultError> {
        self.read_pointer_raw(layout).await.map_err(|e| match e {
            PointerReadError::Storage(e) => unreachable(e),
            PointerReadError::Corrupt(e) => e,
        })
    }

    /// [`Vault::read_pointer`], keeping "could not read" apart from "read garbage":
    /// the first is not a fact about the vault, the second is.
    pub(crate) async fn read_pointer_raw(
        &self,
        layout: Layout,
    ) -> Result<Option<(Stamp, super::storage::Object)>, PointerReadError> {
        let Some(obj) = self
            .storage
            .get(&self.key(layout.pointer_name()))
            .await
            .map_err(|e| match e.kind {
                StorageErrorKind::TooLarge => {
                    PointerReadError::Corrupt(VaultError::corrupt(e.to_string()))
                }
                _ => PointerReadError::Storage(e),
            })?
        else {
            return Ok(None);
        };
        let stamp = match layout {
            Layout::Cli => {
                let text = String::from_utf8_lossy(&obj.body);
                if text.trim().is_empty() {
                    return Ok(None);
                }
                Stamp::parse(text.trim())
                    .map_err(|e| PointerReadError::Corrupt(VaultError::corrupt(e.to_string())))?
            }
            Layout::Runtime => {
                seal::unseal(&obj.body)
                    .map_err(PointerReadError::Corrupt)?
                    .0
            }
        };
        Ok(Some((stamp, obj)))
    }

    /// Best effort, like the libraries' `generation()`: missing or unreadable is 0.
    pub(crate) async fn read_gen(&self, layout: Layout) -> u64 {
        match self.storage.get(&self.key(layout.counter_name())).await {
            Ok(Some(o)) => Counter::parse(&o.body)
                .ok()
                .and_then(|c| c.gen)
                .unwrap_or(0),
            _ => 0,
        }
    }

    /// Opens the vault as an app would: pointer → bundle → decrypt → content.
    pub async fn open(&self, passphrase: &Passphrase) -> Result<Opened, VaultError> {
        let layout = self.detect_for_read().await?;
        let (stamp, _) = self.read_pointer(layout).await?.ok_or_else(|| {
            VaultError::new(VaultErrorKind::ManifestNotFound, "vault pointer is empty")
        })?;
        let bundle_key = self.key(&layout.bundle_name(&stamp));
        let envelope = self
            .storage
            .get(&bundle_key)
            .await
            .map_err(unreachable)?
            .ok_or_else(|| {
                VaultError::corrupt(format!(
                    "pointer names {bundle_key}, which does not exist (torn bucket)"
                ))
            })?;
        let key = Key::derive(passphrase, &self.kdf);
        let plain = crypto::decrypt(&key, &envelope.body)?;
        let content = match layout {
            Layout::Cli => {
                let (_, payload) = seal::unseal_expecting(&plain, &stamp)?;
                Content::Zip(Zeroizing::new(payload.to_vec()))
            }
            Layout::Runtime => {
                let (kv, assets) = parse_json_bundle(&plain)?;
                Content::Json { kv, assets }
            }
        };
        let gen = self.read_gen(layout).await;
        Ok(Opened {
            layout,
            stamp,
            gen,
            content,
        })
    }

    /// The vault's state without decrypting anything: for `status` and verify.
    pub async fn status(&self) -> Result<Option<VaultStatus>, VaultError> {
        let layout = match self.detect_for_read().await {
            Ok(l) => l,
            Err(e) if e.kind == VaultErrorKind::ManifestNotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some((stamp, pointer)) = self.read_pointer(layout).await? else {
            return Ok(None);
        };
        let mut cells = Vec::new();
        let mut gen = 0;
        let mut rotated_at = None;
        for name in COUNTER_CELLS {
            if let Some(o) = self
                .storage
                .get(&self.key(name))
                .await
                .map_err(unreachable)?
            {
                let c = Counter::parse(&o.body).unwrap_or_default();
                if c.gen.unwrap_or(0) >= gen {
                    gen = c.gen.unwrap_or(0);
                    rotated_at = c.rotated_at.clone().or(rotated_at);
                }
                cells.push((name.to_owned(), c.gen));
            }
        }
        Ok(Some(VaultStatus {
            layout,
            stamp: stamp.to_string(),
            gen,
            rotated_at,
            cells,
            pointer_meta: pointer.meta,
        }))
    }
}

impl From<StorageErrorKind> for VaultErrorKind {
    fn from(k: StorageErrorKind) -> Self {
        match k {
            StorageErrorKind::NotFound => VaultErrorKind::ManifestNotFound,
            _ => VaultErrorKind::S3Unreachable,
        }
    }
}
