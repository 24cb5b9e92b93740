//! The contract between the vsync-orchestrate engine and every platform adapter.
//!
//! Adapters depend on this crate only, so the engine can drive any secret store or
//! restarter without naming a cloud, and every adapter can be held to the same
//! behaviour by [`conformance`].

pub mod child_env;
pub mod conformance;
mod error;
mod passphrase;
mod traits;
mod types;

pub use async_trait::async_trait;
pub use error::{Error, ErrorKind, Result};
pub use passphrase::Passphrase;
pub use traits::{Restarter, SecretStore};
pub use types::{
    ActivatedVersion, Preflight, RestartContext, RestarterCapabilities, Rollout, RolloutOutcome,
    RunId, Staged, StoreCapabilities, Target,
};
