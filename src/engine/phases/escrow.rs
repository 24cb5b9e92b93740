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
use crate::vault::storage::{Meta, PutCondition, StorageError};
use crate::vault::Vault;
use std::io::Write;
use std::time::Instant;
use vsync_orchestrate_api::Passphrase;

/// Why escrow could not seal or store its copy. None of them carries the
/// passphrase: age's errors are about recipients and the output stream, and the
/// storage errors name keys.
#[derive(Debug, thiserror::Error)]
pub enum EscrowError {
    #[error("age: {0}")]
    Encryptor(#[source] age::EncryptError),
    #[error("age armor: {0}")]
    Armor(#[source] std::io::Error),
    #[error("age: {0}")]
    Seal(#[source] std::io::Error),
    /// The create failed and the key already held a tombstone: the run that
    /// owned it (this one, on an earlier attempt, or `resume`) withdrew it.
    #[error("{source}; the key is fenced with a tombstone")]
    AlreadyFenced { source: StorageError },
    /// The create failed and the key holds bytes that are neither ours nor a
    /// tombstone.
    #[error("{source}; {key} holds another object")]
    Occupied { key: String, source: StorageError },
    /// The create failed and nothing was there: this run wrote a tombstone so
    /// the create, if it is still travelling, cannot land.
    #[error("{source}; the key is fenced with a tombstone, so a late copy cannot appear")]
    Fenced { source: StorageError },
    /// The create failed and neither reading the key nor fencing it worked.
    #[error("{source}; the key could not be fenced: a sealed copy of a passphrase that was never staged may still appear there; remove it: {remove}")]
    Unfenced {
        source: StorageError,
        remove: String,
    },
}

/// The passphrase encrypted to every recipient, ASCII-armored.
fn seal(new: &Passphrase, recipients: &[age::x25519::Recipient]) -> Result<Vec<u8>, EscrowError> {
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
            .map_err(EscrowError::Encryptor)?;
    let mut out = Vec::new();
    let armor = age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
        .map_err(EscrowError::Armor)?;
    let mut w = encryptor.wrap_output(armor).map_err(EscrowError::Seal)?;
    w.write_all(new.expose().as_bytes())
        .map_err(EscrowError::Seal)?;
    w.finish()
        .and_then(|armor| armor.finish())
        .map_err(EscrowError::Seal)?;
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
async fn put_remote(vault: &Vault, key: &str, sealed: &[u8]) -> Result<(), EscrowError> {
    let first = match vault
        .storage
        .put(key, sealed.to_vec(), PutCondition::IfAbsent, &Meta::new())
        .await
    {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    for attempt in 0..4u32 {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(250 << attempt)).await;
        }
        match vault.storage.get(key).await {
            Ok(Some(o)) if o.body == sealed => return Ok(()),
            Ok(Some(o)) if is_tombstone(&o.body) => {
                return Err(EscrowError::AlreadyFenced { source: first })
            }
            Ok(Some(_)) => {
                return Err(EscrowError::Occupied {
                    key: key.to_owned(),
                    source: first,
                })
            }
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
            return Err(EscrowError::Fenced { source: first });
        }
    }
    Err(EscrowError::Unfenced {
        source: first,
        remove: vault.storage.delete_command(key),
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::storage::{DirStorage, StorageErrorKind};
    use crate::vault::{KdfParams, LayoutChoice};
    use std::sync::Arc;

    #[test]
    fn sealing_to_nobody_is_age_s_own_refusal() {
        let e = seal(&Passphrase::new("correct horse battery".into()), &[]).unwrap_err();
        assert!(
            matches!(
                e,
                EscrowError::Encryptor(age::EncryptError::MissingRecipients)
            ),
            "{e:?}"
        );
        assert!(e.to_string().starts_with("age: "), "{e}");
        assert!(!e.to_string().contains("correct horse"), "{e}");
    }

    /// A create refused because the key is taken keeps the storage error that
    /// refused it, and says what the key holds.
    #[tokio::test]
    async fn a_taken_key_is_reported_with_the_storage_error() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::new(
            Arc::new(DirStorage::new(dir.path()).unwrap()),
            "app/prod/",
            KdfParams::new("c2FsdA==", 1),
            LayoutChoice::Runtime,
        );
        let key = remote_key(&vault, 4, "run-1");
        vault
            .storage
            .put(
                &key,
                b"someone else's bytes".to_vec(),
                PutCondition::IfAbsent,
                &Meta::new(),
            )
            .await
            .unwrap();
        let e = put_remote(&vault, &key, b"ours").await.unwrap_err();
        match &e {
            EscrowError::Occupied { key: k, source } => {
                assert_eq!(k, &key);
                assert_eq!(source.kind, StorageErrorKind::PreconditionFailed);
            }
            other => panic!("{other:?}"),
        }
        assert!(std::error::Error::source(&e).is_some());
        assert!(e.to_string().ends_with("holds another object"), "{e}");

        // Our own bytes already there are success (a create whose answer was lost).
        put_remote(&vault, &key, b"someone else's bytes")
            .await
            .unwrap();

        let fenced = remote_key(&vault, 5, "run-2");
        vault
            .storage
            .put(
                &fenced,
                TOMBSTONE.to_vec(),
                PutCondition::IfAbsent,
                &Meta::new(),
            )
            .await
            .unwrap();
        let e = put_remote(&vault, &fenced, b"ours").await.unwrap_err();
        assert!(matches!(e, EscrowError::AlreadyFenced { .. }), "{e:?}");
    }
}
