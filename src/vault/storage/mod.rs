//! Where vault objects live: one small trait, two strict backends.
//!
//! Everything rotation relies on for safety is a conditional write, so both
//! backends must refuse a stale `If-Match` and an `If-None-Match: *` on an existing
//! key, under concurrency, exactly like S3 does.

mod dir;
#[cfg(feature = "s3")]
mod s3;

pub(crate) use dir::write_atomic as write_atomic_file;
pub use dir::DirStorage;
#[cfg(feature = "s3")]
pub use s3::{S3Options, S3Storage};

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
    Other,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{op} {key}: {message}")]
pub struct StorageError {
    pub kind: StorageErrorKind,
    pub op: &'static str,
    pub key: String,
    pub message: String,
}

impl StorageError {
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
    async fn get(&self, key: &str) -> Result<Option<Object>, StorageError>;
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

/// Quotes for a POSIX shell only when needed, so printed commands stay readable.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@+,".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// S3 ETags come quoted; conditions are sent bare (Ceph treats quotes as a mismatch).
pub fn unquote(etag: &str) -> String {
    etag.trim().trim_matches('"').to_owned()
}
