//! The contract between the vsync-orchestrate engine and every platform adapter.
//!
//! Adapters depend on this crate only, so the engine can drive any secret store or
//! restarter without naming a cloud. The behaviour every adapter is held to lives in
//! the dev-only `vsync-orchestrate-testkit` crate, not here: production builds carry
//! no test code.
//!
//! Besides the contract it holds what every restarter's `wait` shares: the
//! poll-until-deadline skeleton ([`wait::wait_until`], [`wait::wait_before`]), so an
//! adapter writes only its probe. And the one atomic file write ([`atomic_write`]),
//! shared by the engine's files and the `local` adapter's staged files.

mod atomic_write;
mod build_context;
pub mod child_env;
mod config;
mod error;
mod passphrase;
mod shell;
mod traits;
mod types;
pub mod wait;

pub use async_trait::async_trait;
pub use atomic_write::{atomic_write, AtomicFile, TEMP_PREFIX};
pub use build_context::BuildContext;
pub use config::{FileMode, Finding, RestarterConfig, Severity, StoreConfig};
pub use error::{Error, ErrorKind, Result};
pub use passphrase::Passphrase;
pub use schemars;
pub use shell::shell_quote;
pub use traits::{Restarter, SecretStore};
pub use types::{
    ActivatedVersion, Delivers, Delivery, Preflight, RestartContext, RestarterCapabilities,
    Rollout, RolloutOutcome, RunId, Staged, StoreCapabilities, Target,
};
