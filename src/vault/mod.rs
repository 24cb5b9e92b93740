//! The vsync vault: byte formats, both storage layouts, rotation and audit.
//!
//! Everything here is compatible with what upstream's CLI and runtime libraries
//! read and write (see `shared/docs/vsync-wire-format.md`), except where upstream's
//! rotate is buggy: we re-seal the stamp, send real conditional writes, and write
//! the counter where both readers look.

pub mod audit;
pub mod bootstrap;
pub mod config_blob;
pub mod counter;
pub mod crypto;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
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
pub use rotate::{AuditOutcome, AuditSpec, Committed, Finished, Inspection, Prepared, RotateError};
pub use seed::SeedContent;
pub use stamp::Stamp;

use std::sync::Arc;
use storage::Storage;

/// One vault: a prefix in a storage backend, and the key-derivation parameters the
/// deployed `VSYNC_CONFIG` carries (rotation never changes them).
#[derive(Clone, Debug)]
pub struct Vault {
    pub storage: Arc<dyn Storage>,
    /// Ends with `/`, or is empty.
    pub prefix: String,
    pub kdf: KdfParams,
    pub layout: LayoutChoice,
}

impl Vault {
    pub fn new(
        storage: Arc<dyn Storage>,
        prefix: &str,
        kdf: KdfParams,
        layout: LayoutChoice,
    ) -> Vault {
        Vault {
            storage,
            prefix: prefix.to_owned(),
            kdf,
            layout,
        }
    }

    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// `s3://bucket/prefix` or `dir:/path/prefix`, for messages.
    pub fn describe(&self) -> String {
        format!("{}/{}", self.storage.describe(), self.prefix)
    }
}
