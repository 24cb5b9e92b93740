//! One run per vault prefix: a lock object created with `If-None-Match: *`,
//! carrying owner, run id and expiry, taken over only when expired, when it is this
//! run's own (the SDK retried a create whose answer was lost), when `resume` takes
//! over the run that holds it, or when the journal says its run finished (a release
//! that failed). The pointer's `If-Match` is the last line of defence; this is the
//! first.

use crate::vault::storage::{Meta, PutCondition, StorageErrorKind};
use crate::vault::Vault;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use vsync_orchestrate_api::RunId;

pub const LOCK_NAME: &str = ".vsync-orchestrate.lock";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockBody {
    pub owner: String,
    pub run_id: String,
    pub created_at: String,
    /// Unix seconds.
    pub expires_at: u64,
}

impl LockBody {
    /// When the lock expires, as an ISO instant.
    pub fn until(&self) -> String {
        iso(self.expires_at)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("the vault is locked by run {run_id} of {owner} until {until}; wait for it, or `vsync-orchestrate resume` it if it crashed")]
    Held {
        owner: String,
        run_id: String,
        until: String,
    },
    #[error("taking the lock failed: {0}")]
    Storage(String),
    /// Not a lock this tool wrote: neither taken over (it may guard a run of a
    /// newer or other tool) nor ignored.
    #[error("the lock object {key} does not parse as a vsync-orchestrate lock, so this run neither takes it over nor ignores it; if no rotation is running on this vault, remove it: {remove}")]
    Unparsable { key: String, remove: String },
}

impl LockError {
    /// The one command that clears the way, where there is one.
    pub fn remedy(&self) -> Option<String> {
        match self {
            LockError::Unparsable { remove, .. } => Some(format!(
                "check that no rotation is running on this vault, then remove the lock: {remove}"
            )),
            _ => None,
        }
    }
}

/// Releasing failed even after retries: the lock stays until it expires or is
/// removed with `remove`.
#[derive(Debug, thiserror::Error)]
#[error("releasing the lock {key} failed ({cause}); it expires by itself at {until}, or remove it now: {remove}")]
pub struct ReleaseError {
    pub key: String,
    pub cause: String,
    pub until: String,
    /// The exact command that removes it.
    pub remove: String,
}

#[derive(Debug)]
pub struct Lock {
    key: String,
    /// `None` for a lock this run could not write but knows is its own or free
    /// (see [`Lock::assume`]); release reads the ETag first.
    etag: Option<String>,
    run_id: String,
    expires_at: u64,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn owner() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    format!(
        "{user}@{} pid {}",
        crate::vault::audit::hostname(),
        std::process::id()
    )
}

fn iso(secs: u64) -> String {
    crate::vault::stamp::iso_millis(UNIX_EPOCH + Duration::from_secs(secs))
}

/// What may be taken over besides an expired lock.
#[derive(Debug, Default, Clone)]
pub struct Takeover {
    /// The run `resume` is finishing.
    pub run: Option<RunId>,
    /// Runs this machine's journals record as finished.
    pub finished: Vec<String>,
}

impl Lock {
    pub fn key(vault: &Vault) -> String {
        vault.key(LOCK_NAME)
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    pub async fn acquire(
        vault: &Vault,
        run: &RunId,
        ttl: Duration,
        takeover: &Takeover,
    ) -> Result<Lock, LockError> {
        let key = Self::key(vault);
        let expires_at = now_secs() + ttl.as_secs();
        let body = LockBody {
            owner: owner(),
            run_id: run.to_string(),
            created_at: crate::vault::stamp::iso_millis(SystemTime::now()),
            expires_at,
        };
        let bytes = serde_json::to_vec(&body).expect("serialises");
        let lock = |etag: String| Lock {
            key: key.clone(),
            etag: Some(etag),
            run_id: run.to_string(),
            expires_at,
        };
        let mut last = String::new();
        for attempt in 0..4 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
            }
            match vault
                .storage
                .put(&key, bytes.clone(), PutCondition::IfAbsent, &Meta::new())
                .await
            {
                Ok(etag) => return Ok(lock(etag)),
                Err(e) if e.kind == StorageErrorKind::PreconditionFailed => {}
                // The create may have happened: read before deciding.
                Err(e) if e.kind == StorageErrorKind::Unavailable => {
                    last = e.to_string();
                }
                Err(e) => return Err(LockError::Storage(e.to_string())),
            }
            let existing = match vault.storage.get(&key).await {
                Ok(Some(o)) => o,
                Ok(None) => continue,
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            };
            let Ok(held) = serde_json::from_slice::<LockBody>(&existing.body) else {
                return Err(LockError::Unparsable {
                    remove: vault.storage.delete_command(&key),
                    key,
                });
            };
            let expired = held.expires_at <= now_secs();
            let mine = held.run_id == run.as_str()
                || takeover
                    .run
                    .as_ref()
                    .is_some_and(|r| r.as_str() == held.run_id)
                || takeover.finished.contains(&held.run_id);
            if expired || mine {
                match vault
                    .storage
                    .put(
                        &key,
                        bytes.clone(),
                        PutCondition::IfMatch(existing.etag),
                        &Meta::new(),
                    )
                    .await
                {
                    Ok(etag) => return Ok(lock(etag)),
                    Err(e)
                        if matches!(
                            e.kind,
                            StorageErrorKind::PreconditionFailed
                                | StorageErrorKind::NotFound
                                | StorageErrorKind::Unavailable
                        ) =>
                    {
                        last = e.to_string();
                        continue;
                    }
                    Err(e) => return Err(LockError::Storage(e.to_string())),
                }
            }
            return Err(LockError::Held {
                owner: held.owner,
                until: iso(held.expires_at),
                run_id: held.run_id,
            });
        }
        Err(LockError::Storage(if last.is_empty() {
            "the lock object kept changing; try again".into()
        } else {
            last
        }))
    }

    /// Who holds the lock now, if anyone (read-only, for `plan` and `status`). An
    /// object that does not parse is reported as such, as `acquire` will refuse it.
    pub async fn peek(vault: &Vault) -> Result<Option<LockBody>, LockError> {
        let key = Self::key(vault);
        let Some(obj) = vault
            .storage
            .get(&key)
            .await
            .map_err(|e| LockError::Storage(e.to_string()))?
        else {
            return Ok(None);
        };
        match serde_json::from_slice::<LockBody>(&obj.body) {
            Ok(b) => Ok(Some(b).filter(|b| b.expires_at > now_secs())),
            Err(_) => Err(LockError::Unparsable {
                remove: vault.storage.delete_command(&key),
                key,
            }),
        }
    }

    /// `resume` after T0 when the lock cannot be written (S3 refuses writes to it):
    /// closing an open window matters more than refreshing the lock, and the lock
    /// on the vault, if any, is the resumed run's own. Released like any other.
    pub fn assume(vault: &Vault, run: &RunId, ttl: Duration) -> Lock {
        Lock {
            key: Self::key(vault),
            etag: None,
            run_id: run.to_string(),
            expires_at: now_secs() + ttl.as_secs(),
        }
    }

    /// After a failed `acquire`: a create whose answer was lost may have left a
    /// lock in this run's name. Removes it if so.
    pub async fn release_if_ours(vault: &Vault, run: &RunId) -> Result<(), ReleaseError> {
        let key = Self::key(vault);
        let existing = match vault.storage.get(&key).await {
            Ok(Some(o)) => o,
            Ok(None) => return Ok(()),
            Err(e) => {
                return Err(ReleaseError {
                    remove: vault.storage.delete_command(&key),
                    key,
                    cause: e.to_string(),
                    until: "its expiry".into(),
                })
            }
        };
        let Ok(body) = serde_json::from_slice::<LockBody>(&existing.body) else {
            return Ok(());
        };
        if body.run_id != run.as_str() {
            return Ok(());
        }
        Lock {
            key,
            etag: Some(existing.etag),
            run_id: body.run_id,
            expires_at: body.expires_at,
        }
        .release(vault)
        .await
    }

    /// Deletes the lock if it is still ours. A lost answer is retried and then
    /// checked by reading: gone, or someone else's, is released.
    pub async fn release(mut self, vault: &Vault) -> Result<(), ReleaseError> {
        let mut cause = String::new();
        for attempt in 0..4u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(250 * 2u64.pow(attempt - 1))).await;
            }
            if let Some(etag) = &self.etag {
                match vault.storage.delete(&self.key, Some(etag)).await {
                    Ok(()) => return Ok(()),
                    Err(e) => cause = e.to_string(),
                }
            }
            match vault.storage.get(&self.key).await {
                Ok(None) => return Ok(()),
                Ok(Some(o)) => {
                    let theirs = serde_json::from_slice::<LockBody>(&o.body)
                        .map(|b| b.run_id != self.run_id)
                        .unwrap_or(false);
                    if theirs {
                        return Ok(());
                    }
                    // Still ours (perhaps under a new ETag after a retried write).
                    self.etag = Some(o.etag);
                }
                Err(e) => cause = e.to_string(),
            }
        }
        Err(ReleaseError {
            remove: vault.storage.delete_command(&self.key),
            key: self.key,
            cause,
            until: iso(self.expires_at),
        })
    }
}

/// Why a renewal did not extend the lock.
#[derive(Debug)]
enum Renewal {
    /// Someone else's lock is there now (ours expired and was taken over).
    Lost(String),
    /// S3 did not answer; the next renewal tries again.
    Retry,
}

impl Lock {
    /// Extends the lock by `ttl`, if it is still this run's.
    async fn renew(&mut self, vault: &Vault, ttl: Duration) -> Result<(), Renewal> {
        let expires_at = now_secs() + ttl.as_secs();
        let body = LockBody {
            owner: owner(),
            run_id: self.run_id.clone(),
            created_at: crate::vault::stamp::iso_millis(SystemTime::now()),
            expires_at,
        };
        let bytes = serde_json::to_vec(&body).expect("serialises");
        let cond = match &self.etag {
            Some(e) => PutCondition::IfMatch(e.clone()),
            None => PutCondition::IfAbsent,
        };
        match vault
            .storage
            .put(&self.key, bytes, cond, &Meta::new())
            .await
        {
            Ok(etag) => {
                self.etag = Some(etag);
                self.expires_at = expires_at;
                Ok(())
            }
            Err(e) if matches!(e.kind, StorageErrorKind::Unavailable) => Err(Renewal::Retry),
            // A renewal whose answer was lost also ends here: read before deciding.
            Err(_) => match vault.storage.get(&self.key).await {
                Ok(Some(o)) => match serde_json::from_slice::<LockBody>(&o.body) {
                    Ok(b) if b.run_id == self.run_id => {
                        self.etag = Some(o.etag);
                        self.expires_at = b.expires_at;
                        Ok(())
                    }
                    Ok(b) => Err(Renewal::Lost(format!(
                        "run {} of {} took the vault's lock over",
                        b.run_id, b.owner
                    ))),
                    Err(_) => Err(Renewal::Lost("the lock object was replaced".into())),
                },
                Ok(None) => Err(Renewal::Lost("the lock object was deleted".into())),
                Err(_) => Err(Renewal::Retry),
            },
        }
    }
}

/// A held lock, renewed in the background every third of its TTL for as long as
/// the run holds it: restart timeouts are the operator's choice and may be longer
/// than any fixed TTL. A run whose lock was taken over is told so by
/// [`Keeper::lost`] and makes no further write.
pub struct Keeper {
    lock: Arc<tokio::sync::Mutex<Lock>>,
    lost: Arc<std::sync::Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// A run that ends without `stop` (a panic, a test dropping the future) must not
/// leave a task renewing its lock forever.
impl Drop for Keeper {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl Keeper {
    pub fn start(vault: &Vault, lock: Lock, ttl: Duration) -> Keeper {
        let lock = Arc::new(tokio::sync::Mutex::new(lock));
        let lost = Arc::new(std::sync::Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let every = (ttl / 3).max(Duration::from_millis(200));
        let task = tokio::spawn({
            let (vault, lock, lost, stop) =
                (vault.clone(), lock.clone(), lost.clone(), stop.clone());
            async move {
                loop {
                    tokio::time::sleep(every).await;
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let mut l = lock.lock().await;
                    match l.renew(&vault, ttl).await {
                        Ok(()) | Err(Renewal::Retry) => {}
                        Err(Renewal::Lost(why)) => {
                            *lost.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
                            return;
                        }
                    }
                }
            }
        });
        Keeper {
            lock,
            lost,
            stop,
            task: Some(task),
        }
    }

    /// `Some(why)` once another run took the lock over.
    pub fn lost(&self) -> Option<String> {
        self.lost.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops renewing and hands the lock back (to release it, or to leave it for
    /// `resume` to take over).
    pub async fn stop(mut self) -> Lock {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
        // The renewal task, the only other owner, is gone.
        let l = self.lock.lock().await;
        Lock {
            key: l.key.clone(),
            etag: l.etag.clone(),
            run_id: l.run_id.clone(),
            expires_at: l.expires_at,
        }
    }
}
