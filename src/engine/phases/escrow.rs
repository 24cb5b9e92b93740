//! Break-glass escrow: the new passphrase, sealed with age to the security team's
//! public keys, written before anything is staged.
//!
//! Staging protects against the tool losing the passphrase; escrow protects against
//! a store losing it after accepting it (a deleted secret, a wiped host). The sealed
//! copy lives beside the journal and, when the plan asks, under the vault prefix;
//! only the holders of the matching age identities can open it. Nothing is ever
//! written in the clear, and the journal records only where the copies are.

use crate::engine::context::Ctx;
use crate::engine::events::Step;
use crate::engine::failure::{EscrowProblem, Failure, PreflightProblem};
use crate::engine::infra::journal::{EscrowRecord, Journal, JournalEvent, Phase};
use crate::plan::escrow_key::parse_recipient;
use crate::plan::EscrowSection;
use crate::vault::storage::{Meta, PutCondition};
use crate::vault::Vault;
use std::io::Write;
use std::time::Instant;
use vsync_orchestrate_api::Passphrase;

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

/// What an escrow object holds once its run stopped before T0: the key stays
/// taken, so a create of the sealed copy that is still travelling can only fail,
/// and `status` can tell it from a copy of a passphrase that went live.
pub const TOMBSTONE: &[u8] =
    b"vsync-orchestrate: this run stopped before T0; its passphrase was never live\n";

/// Whether an escrow object is a tombstone (see [`TOMBSTONE`]).
pub fn is_tombstone(body: &[u8]) -> bool {
    body == TOMBSTONE
}

/// Creates the sealed copy under `key` (`If-None-Match: *`). A create whose answer
/// was lost may have landed — the SDK's own retry then meets 412 — so an error is
/// followed by reading the key: our own bytes there are success. When they are not
/// there, the create may still land later, so the key is fenced with a tombstone
/// before the error is returned.
async fn put_remote(vault: &Vault, key: &str, sealed: &[u8]) -> Result<(), String> {
    let first = match vault
        .storage
        .put(key, sealed.to_vec(), PutCondition::IfAbsent, &Meta::new())
        .await
    {
        Ok(_) => return Ok(()),
        Err(e) => e.to_string(),
    };
    for attempt in 0..4u32 {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(250 << attempt)).await;
        }
        match vault.storage.get(key).await {
            Ok(Some(o)) if o.body == sealed => return Ok(()),
            Ok(Some(o)) if is_tombstone(&o.body) => {
                return Err(format!("{first}; the key is fenced with a tombstone"))
            }
            Ok(Some(_)) => return Err(format!("{first}; {key} holds another object")),
            Ok(None) => {}
            Err(_) => continue,
        }
        if vault
            .storage
            .put(
                key,
                TOMBSTONE.to_vec(),
                PutCondition::IfAbsent,
                &Meta::new(),
            )
            .await
            .is_ok()
        {
            return Err(format!(
                "{first}; the key is fenced with a tombstone, so a late copy cannot appear"
            ));
        }
    }
    Err(format!(
        "{first}; the key could not be fenced: a sealed copy of a passphrase that was never staged may still appear there; remove it: {}",
        vault.storage.delete_command(key)
    ))
}

/// A run that stopped before T0 withdraws its sealed copies: the vault never
/// needed that passphrase. The remote copy becomes a tombstone (see [`TOMBSTONE`]),
/// the local one is removed. Failures come back as warnings.
pub(crate) async fn withdraw(vault: &Vault, record: &EscrowRecord) -> Vec<String> {
    let mut warnings = Vec::new();
    if record.local.as_os_str().is_empty() {
        // Only the remote copy is asked for.
    } else if let Err(e) = std::fs::remove_file(&record.local) {
        if e.kind() != std::io::ErrorKind::NotFound {
            warnings.push(format!(
                "escrow: {} holds a passphrase that was never live and could not be removed: {e}",
                record.local.display()
            ));
        }
    }
    let Some(key) = &record.remote else {
        return warnings;
    };
    let mut last = String::new();
    for attempt in 0..4u32 {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(250 << attempt)).await;
        }
        let cond = match vault.storage.get(key).await {
            Ok(Some(o)) if is_tombstone(&o.body) => return warnings,
            Ok(Some(o)) => PutCondition::IfMatch(o.etag),
            Ok(None) => PutCondition::IfAbsent,
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        match vault
            .storage
            .put(key, TOMBSTONE.to_vec(), cond, &Meta::new())
            .await
        {
            Ok(_) => return warnings,
            Err(e) => last = e.to_string(),
        }
    }
    warnings.push(format!(
        "escrow: {key} holds a sealed passphrase that was never live and could not be replaced with a tombstone ({last}); remove it: {}",
        vault.storage.delete_command(key)
    ));
    warnings
}

/// Withdraws the remote copies of this vault's runs that stopped before T0 and
/// whose tombstone could not be written then (a create still travelling lands
/// after its run gave up, a fence that timed out). Run under the lock, before this
/// run writes its own copy; a key that already holds a tombstone costs one read.
pub(crate) async fn sweep(vault: &Vault, state_dir: &std::path::Path) -> Vec<String> {
    let mut warnings = Vec::new();
    for (_, j) in Journal::all(state_dir) {
        if j.vault != vault.describe() || j.phase != Phase::Aborted {
            continue;
        }
        if let Some(record) = j.escrow.as_ref().filter(|r| r.remote.is_some()) {
            let remote_only = EscrowRecord {
                local: std::path::PathBuf::new(),
                ..record.clone()
            };
            warnings.extend(withdraw(vault, &remote_only).await);
        }
    }
    warnings
}

/// Seals `new` and writes every copy; the run stops (nothing staged) if any fails.
pub(crate) async fn write(
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
        .map_err(|e| escrow_failure(EscrowProblem::Recipient(e.to_string())))?;
    let sealed =
        seal(new, &recipients).map_err(|e| escrow_failure(EscrowProblem::Seal(e.to_string())))?;
    let dir = cx.opts.state_dir.join("escrow");
    let local = dir.join(format!("{}.gen{generation}.age", cx.run));
    let remote = section
        .vault_copy
        .then(|| remote_key(vault, generation, cx.run.as_str()));
    let record = EscrowRecord {
        generation,
        local: local.clone(),
        remote: remote.clone(),
        recipients: recipients.len(),
    };
    // Journaled before either copy is written: a run killed while its remote create
    // is still travelling leaves a journal that names the key, so `resume` can
    // fence it with a tombstone instead of leaving a copy of a passphrase that was
    // never staged to appear later.
    cx.record(JournalEvent::Escrow(record));
    cx.checkpoint()
        .map_err(|e| escrow_failure(EscrowProblem::Journal(e)))?;
    let write_local = || -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        crate::vault::storage::write_atomic_file(&local, &sealed)
    };
    write_local().map_err(|source| {
        escrow_failure(EscrowProblem::Local {
            path: local.clone(),
            source,
        })
    })?;
    if let Some(key) = &remote {
        if let Err(e) = put_remote(vault, key, &sealed).await {
            // The passphrase in it will never be staged: neither copy may outlive
            // the run as if it were a real one.
            let _ = std::fs::remove_file(&local);
            return Err(escrow_failure(EscrowProblem::Remote {
                key: key.clone(),
                why: e.to_string(),
            }));
        }
    }
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
    Ok(())
}

fn escrow_failure(p: EscrowProblem) -> Failure {
    Failure::Preflight(PreflightProblem::Escrow(p))
}
