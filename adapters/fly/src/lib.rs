//! The `fly` restarter for vsync-orchestrate: a rolling restart of a Fly.io app's
//! Machines over the Machines REST API (there is no official Rust SDK), the way
//! `flyctl machine restart` does it, through the shared HTTP stack.
//!
//! `restart` lists the machines to restart (started ones by default; release
//! command, console and test machines never) and starts nothing: `wait` does the
//! rolling restart, batch after batch, each machine as
//! lease → restart → `started` → checks passing → lease released, and stops at the
//! first machine that fails, naming it with its check output.
//!
//! Idempotent across processes: after a machine's restart the run id is written
//! into its metadata (`vsync_orchestrate_run`), and a machine that carries it is
//! only waited on, never restarted again. A lease held by someone else (a deploy)
//! is a temporary conflict, retried until the deadline; this run's leases are
//! released on every path — done, failed, timed out, cancelled, or the wait's
//! future dropped.

mod config;
mod restarter;

pub use restarter::{FlyConfig, FlyRestarter, DEFAULT_API_BASE, DEFAULT_TOKEN_ENV, RUN_METADATA};
