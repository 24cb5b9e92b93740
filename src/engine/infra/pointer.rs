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

/// How a pointer swap whose first answer was not a 200 ended, decided only from
/// answers that no write of ours can still change.
///
/// Every swap this run sends is `If-Match` the ETag preflight read. While that ETag
/// is still the pointer's, any attempt the tool gave up on (a timeout, a cut, a 5xx
/// that was applied behind a proxy, a request a load balancer queued) can still land
/// — reading the old stamp proves nothing then. Two answers are final: a 200 on one
/// of our attempts (ours landed now, and the others can only fail), and a 412 (the
/// ETag moved: none of ours can land any more; a read then says whose write moved
/// it). So the swap is rolled forward: sent again, with the same body and the same
/// condition, until one of those answers comes or the deadline passes.
#[derive(Debug)]
pub enum Settled {
    /// This run's bundle is live. `committed`: our own 200, so T0 is known; `None`:
    /// an earlier attempt landed at a moment nobody saw.
    Ours {
        committed: Option<crate::vault::Committed>,
    },
    /// The ETag moved to a pointer this run did not write: no attempt of ours can
    /// land, so what was staged may be discarded (after the usual checks).
    Theirs(PointerState),
    /// No final answer within the deadline: an attempt may still land. Nothing
    /// staged may be thrown away; `resume` rolls the swap forward again.
    InFlight(String),
}

/// Rolls a swap forward after `first` (the error of the attempt already sent).
/// `deadline` bounds the whole effort, reads included.
pub async fn settle(
    vault: &Vault,
    p: &crate::vault::Prepared,
    first: Option<crate::vault::RotateError>,
    deadline: Duration,
) -> Settled {
    use crate::vault::RotateError;
    let until = std::time::Instant::now() + deadline;
    let mut pause = Duration::from_millis(250);
    let mut last = match first {
        Some(e) => e,
        None => match vault.commit(p).await {
            Ok(c) => return Settled::Ours { committed: Some(c) },
            Err(e) => e,
        },
    };
    loop {
        let seen = vault.pointer_stamp(p.layout).await;
        let state = match seen {
            Ok(Some(s)) if s == p.new_stamp => return Settled::Ours { committed: None },
            Ok(Some(s)) if s == p.old_stamp => PointerState::Old,
            Ok(other) => PointerState::Other(other),
            Err(e) => PointerState::Unknown(e.to_string()),
        };
        match (&last, &state) {
            // The ETag moved, and not to ours: final.
            (RotateError::PointerConflict { .. }, PointerState::Old | PointerState::Other(_)) => {
                return Settled::Theirs(state)
            }
            // A pointer that names someone else's bundle moved the ETag too.
            (_, PointerState::Other(_)) => return Settled::Theirs(state),
            _ => {}
        }
        if std::time::Instant::now() + pause >= until {
            return Settled::InFlight(format!(
                "{last}; {}",
                state.describe(&p.old_stamp, Some(&p.new_stamp))
            ));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
        // Every answer but a 200 is followed by a read at the top of the loop.
        last = match vault.commit(p).await {
            Ok(c) => return Settled::Ours { committed: Some(c) },
            Err(e) => e,
        };
    }
}
