//! Vercel adapters for vsync-orchestrate, over Vercel's documented REST API (there
//! is no official Rust SDK) through the shared HTTP stack:
//!
//! * the `vercel` store: the passphrase is a project environment variable. A change
//!   reaches only new deployments, and an unrelated deploy would pick a changed
//!   value up before the vault is rotated, so the new value is staged in a
//!   separate variable (`<key>_NEXT`, readable "encrypted" type so `resume` can
//!   read it back), activation writes it into the real variable (its type is kept:
//!   sensitive stays sensitive), and the staged variable is removed after T1;
//! * the `vercel` restarter: redeploys the current production deployment the way
//!   `vercel redeploy` does and follows it until it is READY with the production
//!   alias assigned.
//!
//! The token comes from the environment (`VERCEL_TOKEN` unless the plan names
//! another variable), never from the plan, and is read when the first request is
//! made: `build` stays offline and token-free so `validate` can build every plan.

mod api;
mod config;
mod redeploy;
mod store;

pub use api::{DEFAULT_API_BASE, DEFAULT_TOKEN_ENV};
pub use redeploy::{VercelRedeploy, VercelRedeployConfig, RUN_META};
pub use store::{VercelStore, VercelStoreConfig, VercelTarget, MARKER_PREFIX};
