//! The vault handle: where a vault lives and how its key is derived. Every vault
//! operation (`inspect`, `prepare`, `commit`, `open`, `seed`, …) is a method on it,
//! defined beside what it does.

use super::crypto::KdfParams;
use super::layout::LayoutChoice;
use super::storage::Storage;
use std::sync::Arc;

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
