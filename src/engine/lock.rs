//! One run per vault prefix: a lock object created with `If-None-Match: *`,
//! carrying owner, run id and expiry, taken over only when expired (or by the
//! `resume` of the run that holds it). The pointer's `If-Match` is the last line
//! of defence; this is the first.

use crate::vault::storage::{Meta, PutCondition, StorageErrorKind};
use crate::vault::Vault;
use serde::{Deserialize, Serialize};
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
}

#[derive(Debug)]
pub struct Lock {
    key: String,
    etag: String,
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

impl Lock {
    pub fn key(vault: &Vault) -> String {
        vault.key(LOCK_NAME)
    }

    /// `takeover_run`: the run id `resume` may take the lock over from.
    pub async fn acquire(
        vault: &Vault,
        run: &RunId,
        ttl: Duration,
        takeover_run: Option<&RunId>,
    ) -> Result<Lock, LockError> {
        let key = Self::key(vault);
        let body = LockBody {
            owner: owner(),
            run_id: run.to_string(),
            created_at: crate::vault::stamp::iso_millis(SystemTime::now()),
            expires_at: now_secs() + ttl.as_secs(),
        };
        let bytes = serde_json::to_vec(&body).expect("serialises");
        for _ in 0..3 {
            match vault
                .storage
                .put(&key, bytes.clone(), PutCondition::IfAbsent, &Meta::new())
                .await
            {
                Ok(etag) => return Ok(Lock { key, etag }),
                Err(e) if e.kind == StorageErrorKind::PreconditionFailed => {}
                Err(e) => return Err(LockError::Storage(e.to_string())),
            }
            let Some(existing) = vault
                .storage
                .get(&key)
                .await
                .map_err(|e| LockError::Storage(e.to_string()))?
            else {
                continue;
            };
            let held: Option<LockBody> = serde_json::from_slice(&existing.body).ok();
            let expired = held.as_ref().is_none_or(|h| h.expires_at <= now_secs());
            let ours = held
                .as_ref()
                .is_some_and(|h| Some(h.run_id.as_str()) == takeover_run.map(|r| r.as_str()));
            if expired || ours {
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
                    Ok(etag) => return Ok(Lock { key, etag }),
                    Err(e)
                        if matches!(
                            e.kind,
                            StorageErrorKind::PreconditionFailed | StorageErrorKind::NotFound
                        ) =>
                    {
                        continue
                    }
                    Err(e) => return Err(LockError::Storage(e.to_string())),
                }
            }
            let h = held.expect("not expired means parsed");
            let until =
                crate::vault::stamp::iso_millis(UNIX_EPOCH + Duration::from_secs(h.expires_at));
            return Err(LockError::Held {
                owner: h.owner,
                run_id: h.run_id,
                until,
            });
        }
        Err(LockError::Storage(
            "the lock object kept changing; try again".into(),
        ))
    }

    /// Who holds the lock now, if anyone (read-only, for `plan` and `status`).
    pub async fn peek(vault: &Vault) -> Option<LockBody> {
        let obj = vault.storage.get(&Self::key(vault)).await.ok()??;
        serde_json::from_slice::<LockBody>(&obj.body)
            .ok()
            .filter(|b| b.expires_at > now_secs())
    }

    pub async fn release(self, vault: &Vault) -> Result<(), String> {
        vault
            .storage
            .delete(&self.key, Some(&self.etag))
            .await
            .map_err(|e| e.to_string())
    }
}
