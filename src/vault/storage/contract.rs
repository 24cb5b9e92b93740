//! The contract every backend keeps: objects with ETags, conditional puts that are
//! as strict as S3's, bounded reads, and errors by kind.

use std::collections::BTreeMap;
use std::fmt;

/// User metadata (`x-amz-meta-<name>`), names without the prefix.
pub type Meta = BTreeMap<String, String>;

#[derive(Debug, Clone)]
pub struct Object {
    pub body: Vec<u8>,
    /// Without surrounding quotes.
    pub etag: String,
    pub meta: Meta,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutCondition {
    /// Unconditional: only for objects nothing races on.
    None,
    /// Replace only the version we read.
    IfMatch(String),
    /// Create only; never overwrite.
    IfAbsent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageErrorKind {
    NotFound,
    /// 412 (or 409 ConditionalRequestConflict): someone else wrote first.
    PreconditionFailed,
    Permission,
    Unavailable,
    /// Larger than the read allows ([`MAX_OBJECT_BYTES`] unless a caller says
    /// otherwise): refused before its body is read into memory.
    TooLarge,
    Other,
}

/// The largest object `get` reads: bundles, pointers, counters and the lock all
/// come from a bucket many hands can write, and an object of any size must not
/// become a read of any size. A vsync bundle is a zip of an env folder or a small
/// JSON, far below this; a larger one is refused as `BundleCorruptError`.
pub const MAX_OBJECT_BYTES: u64 = 32 << 20;

#[derive(Debug, Clone, thiserror::Error)]
#[error("{op} {key}: {message}")]
pub struct StorageError {
    pub kind: StorageErrorKind,
    pub op: &'static str,
    pub key: String,
    pub message: String,
}

impl StorageError {
    pub fn too_large(op: &'static str, key: &str, size: u64, limit: u64) -> Self {
        StorageError::new(
            StorageErrorKind::TooLarge,
            op,
            key,
            format!("object of {size} bytes or more, over the {limit}-byte limit; not read"),
        )
    }

    pub fn new(
        kind: StorageErrorKind,
        op: &'static str,
        key: &str,
        message: impl Into<String>,
    ) -> Self {
        StorageError {
            kind,
            op,
            key: key.to_owned(),
            message: message.into(),
        }
    }
}

#[async_trait::async_trait]
pub trait Storage: Send + Sync + fmt::Debug {
    /// `s3://bucket` or `dir:/path`, for messages.
    fn describe(&self) -> String;
    /// The object, or `None` when it does not exist; at most [`MAX_OBJECT_BYTES`].
    async fn get(&self, key: &str) -> Result<Option<Object>, StorageError> {
        self.get_limited(key, MAX_OBJECT_BYTES).await
    }
    /// Like `get` with another bound: a larger object is a
    /// [`StorageErrorKind::TooLarge`] error, found out without holding more than
    /// `limit` bytes of it in memory.
    async fn get_limited(&self, key: &str, limit: u64) -> Result<Option<Object>, StorageError>;
    /// ETag of an object, without reading its body.
    async fn head(&self, key: &str) -> Result<Option<String>, StorageError>;
    /// Returns the new ETag.
    async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        cond: PutCondition,
        meta: &Meta,
    ) -> Result<String, StorageError>;
    /// Deletes, optionally only if the ETag still matches. Missing is success.
    async fn delete(&self, key: &str, if_match: Option<&str>) -> Result<(), StorageError>;
    /// Every key under `prefix`, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError>;
    /// A shell command an operator can run to delete `key` by hand (printed when
    /// the tool itself could not, e.g. a lock whose release kept failing).
    fn delete_command(&self, key: &str) -> String;
}

/// S3 ETags come quoted; conditions are sent bare (Ceph treats quotes as a mismatch).
pub fn unquote(etag: &str) -> String {
    etag.trim().trim_matches('"').to_owned()
}
