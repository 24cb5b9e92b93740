//! One file per phase of the runbook, in the order a run takes them. A phase is
//! handed the run's context and what the phase before it produced; it never reaches
//! back into the runbook.

pub(crate) mod activate;
pub(crate) mod delivery;
pub mod escrow;
pub(crate) mod preflight;
pub(crate) mod restart;
pub(crate) mod rotate;
pub(crate) mod stage;
pub(crate) mod verify;
