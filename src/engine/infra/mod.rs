//! What every phase relies on and none of them is: the journal `resume` reads, the
//! vault's lock, reading the pointer after a lost answer, signals, crash points for
//! the tests, retries and run ids.

pub(crate) mod crash;
pub mod interrupt;
pub mod journal;
pub mod lock;
pub(crate) mod pointer;
pub(crate) mod retry;
pub mod run_id;
