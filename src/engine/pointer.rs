//! Reading where the vault's pointer is, to decide after a lost answer.
//!
//! A write whose answer was lost (a 5xx after it was applied, a cut connection, a
//! timeout, a 412 on the SDK's own retry of a swap that had succeeded) may have
//! happened. Only a successful read of the pointer says which bundle — and so which
//! passphrase — the vault needs now; until one succeeds, nothing staged is thrown
//! away.

use crate::vault::{Layout, Stamp, Vault};
use std::time::Duration;
use vsync_orchestrate_api::Passphrase;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PointerState {
    /// The pointer names the bundle the run started from.
    Old,
    /// The pointer names this run's new bundle: T0 passed.
    New,
    /// Someone else's bundle (or none at all).
    Other(Option<Stamp>),
    /// The pointer could not be read: the state is not known.
    Unknown(String),
}

impl PointerState {
    pub fn describe(&self, old: &Stamp, new: Option<&Stamp>) -> String {
        match self {
            PointerState::Old => format!("the pointer names the old bundle {old}"),
            PointerState::New => format!(
                "the pointer names the new bundle {}",
                new.map(Stamp::as_str).unwrap_or("?")
            ),
            PointerState::Other(Some(s)) => {
                format!("the pointer names {s}, a bundle this run did not write")
            }
            PointerState::Other(None) => "the vault has no pointer any more".into(),
            PointerState::Unknown(e) => format!("the pointer could not be read: {e}"),
        }
    }
}

/// How many times, and how far apart, a read is tried before the state is called
/// unknown: a few seconds covers a blip without making an outage look like a hang.
const BACKOFF_MS: [u64; 4] = [0, 250, 1000, 2500];

/// Reads the pointer, retrying transient failures.
pub async fn read(vault: &Vault, layout: Layout, old: &Stamp, new: Option<&Stamp>) -> PointerState {
    let mut last = String::new();
    for wait in BACKOFF_MS {
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        match vault.pointer_stamp(layout).await {
            Ok(Some(s)) if Some(&s) == new => return PointerState::New,
            Ok(Some(s)) if &s == old => return PointerState::Old,
            Ok(other) => return PointerState::Other(other),
            Err(e) => last = e.to_string(),
        }
    }
    PointerState::Unknown(last)
}

/// Whether `new` opens the bundle the vault serves now: for a pointer that names
/// neither our old nor our new bundle, the only question that matters before a
/// staged passphrase is thrown away. `None`: the vault could not be read.
pub async fn opens_with(vault: &Vault, new: &Passphrase) -> Option<bool> {
    use crate::vault::VaultErrorKind as K;
    for wait in BACKOFF_MS {
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        match vault.open(new).await {
            Ok(_) => return Some(true),
            Err(e)
                if matches!(
                    e.kind,
                    K::WrongPassphrase | K::BundleCorrupt | K::ManifestNotFound
                ) =>
            {
                return Some(false)
            }
            Err(_) => continue,
        }
    }
    None
}
