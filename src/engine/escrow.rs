//! Break-glass escrow: the new passphrase, sealed with age to the security team's
//! public keys, written before anything is staged.
//!
//! Staging protects against the tool losing the passphrase; escrow protects against
//! a store losing it after accepting it (a deleted secret, a wiped host). The sealed
//! copy lives beside the journal and, when the plan asks, under the vault prefix;
//! only the holders of the matching age identities can open it. Nothing is ever
//! written in the clear, and the journal records only where the copies are.

use super::context::Ctx;
use super::events::{JournalEvent, Step};
use super::failure::Failure;
use crate::plan::EscrowSection;
use crate::vault::storage::{Meta, PutCondition};
use crate::vault::Vault;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;
use vsync_orchestrate_api::Passphrase;

/// Where one generation's sealed copies went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscrowRecord {
    /// The generation the sealed passphrase opens (the one this run writes).
    pub generation: u64,
    pub local: PathBuf,
    /// The object key under the vault, with `vault_copy`.
    pub remote: Option<String>,
    pub recipients: usize,
}

/// An `age1…` X25519 recipient, or why it is not one.
pub fn parse_recipient(s: &str) -> Result<age::x25519::Recipient, String> {
    age::x25519::Recipient::from_str(s.trim()).map_err(|e| {
        let shown: String = s.chars().take(12).collect();
        format!("{shown:?}… is not an age X25519 public key (age1…): {e}")
    })
}

/// The passphrase encrypted to every recipient, ASCII-armored.
fn seal(new: &Passphrase, recipients: &[age::x25519::Recipient]) -> Result<Vec<u8>, String> {
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| format!("age: {e}"))?;
    let mut out = Vec::new();
    let armor = age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
        .map_err(|e| format!("age armor: {e}"))?;
    let mut w = encryptor
        .wrap_output(armor)
        .map_err(|e| format!("age: {e}"))?;
    w.write_all(new.expose().as_bytes())
        .map_err(|e| format!("age: {e}"))?;
    w.finish()
        .and_then(|armor| armor.finish())
        .map_err(|e| format!("age: {e}"))?;
    Ok(out)
}

/// The object key of a generation's sealed copy under the vault prefix.
pub fn remote_key(vault: &Vault, generation: u64, run: &str) -> String {
    vault.key(&format!(
        ".vsync-orchestrate/escrow/gen-{generation}-{run}.age"
    ))
}

/// Seals `new` and writes every copy; the run stops (nothing staged) if any fails.
pub(super) async fn write(
    cx: &mut Ctx<'_>,
    vault: &Vault,
    new: &Passphrase,
    section: &EscrowSection,
    generation: u64,
) -> Result<(), Failure> {
    let t = Instant::now();
    let recipients = section
        .age_recipients
        .iter()
        .map(|r| parse_recipient(r))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Failure::Preflight(format!("escrow: {e}")))?;
    let sealed = seal(new, &recipients).map_err(|e| Failure::Preflight(format!("escrow: {e}")))?;
    let dir = cx.opts.state_dir.join("escrow");
    let local = dir.join(format!("{}.gen{generation}.age", cx.run));
    let write_local = || -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        crate::vault::storage::write_atomic_file(&local, &sealed)
    };
    write_local().map_err(|e| {
        Failure::Preflight(format!(
            "escrow: writing {}: {e}; nothing was staged",
            local.display()
        ))
    })?;
    let remote = if section.vault_copy {
        let key = remote_key(vault, generation, cx.run.as_str());
        vault
            .storage
            .put(&key, sealed.clone(), PutCondition::IfAbsent, &Meta::new())
            .await
            .map_err(|e| {
                Failure::Preflight(format!("escrow: writing {key}: {e}; nothing was staged"))
            })?;
        Some(key)
    } else {
        None
    };
    let record = EscrowRecord {
        generation,
        local: local.clone(),
        remote: remote.clone(),
        recipients: recipients.len(),
    };
    cx.row(
        Step::Stage,
        "escrow",
        "",
        None,
        true,
        format!(
            "gen {generation} sealed to {} age recipient(s): {}{}",
            recipients.len(),
            local.display(),
            remote.map(|k| format!(" and {k}")).unwrap_or_default()
        ),
        t.elapsed(),
    );
    cx.record(JournalEvent::Escrow(record));
    cx.checkpoint().map_err(|e| {
        Failure::Preflight(format!(
            "cannot write the journal ({e}); nothing was staged"
        ))
    })
}
