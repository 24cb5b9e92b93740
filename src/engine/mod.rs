//! The runbook as code: preflight → stage → rotate → activate → restart → verify.
//!
//! The engine never names a cloud: it drives `SecretStore`s and `Restarter`s, the
//! vault, a journal and a lock. What it optimises is the window between the
//! pointer swap (T0) and the last store's activation (T1): everything slow (key
//! derivation, uploads, connection set-up) happens before T0, and activation is
//! one concurrent round of already-warm requests.
//!
//! What it never does is guess. A write whose answer was lost may have happened,
//! and a write it gave up on may still land: nothing staged is thrown away on the
//! strength of a read alone (`infra/pointer.rs`, `phases/stage.rs`). Every step is
//! journaled before it is taken, so `resume` can finish from wherever a crash or a
//! signal stopped the run.
//!
//! The folder reads as the runbook: `runbook.rs` runs the phases in order and
//! `resume.rs` enters them where a journal says a run stopped; `phases/` holds one
//! file per phase; `infra/` what every phase relies on (journal, lock, pointer,
//! signals, crash points, retries, run ids); beside them the run's vocabulary
//! (`events`, `summary`, `exit`, `failure`, `options`, `context`). Nothing below
//! reaches up: a phase takes what it needs from the file that defines it.

pub mod build;
mod context;
pub mod events;
pub mod exit;
mod failure;
pub mod health;
pub mod infra;
mod options;
pub mod phases;
mod resume;
mod runbook;
pub mod secrets;
pub mod summary;

pub use exit::Exit;
pub use infra::run_id::new_run_id;
pub use infra::{interrupt, journal, lock};
pub use options::{Confirm, Observers, RunOptions};
pub use phases::escrow;
pub use resume::{resume, resume_with};
pub use runbook::{run, run_with};
