//! The vsync vault: byte formats, both storage layouts, rotation and audit.
//!
//! Everything here is compatible with what upstream's CLI and runtime libraries
//! read and write (see `docs/wire-format.md`), except where upstream's rotate is
//! buggy: we re-seal the stamp, send real conditional writes, and write the counter
//! where both readers look (`docs/wire-format.md` §9.4, §9.5).

pub mod audit;
pub mod bootstrap;
pub mod config_blob;
pub mod counter;
pub mod crypto;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
mod handle;
pub mod layout;
pub mod lookup;
mod open;
mod rotate;
pub mod seal;
mod seed;
pub mod stamp;
pub mod storage;
mod zip;

pub use crypto::{KdfParams, DEFAULT_ITERATIONS};
pub use error::{VaultError, VaultErrorKind};
pub use layout::{Layout, LayoutChoice};
pub use open::{Content, Opened, VaultStatus};
pub use rotate::{
    AuditOutcome, AuditSpec, Committed, Finished, Inspection, Prepared, Refusal, RotateError,
};
pub use seed::SeedContent;
pub use stamp::Stamp;

pub use handle::Vault;
