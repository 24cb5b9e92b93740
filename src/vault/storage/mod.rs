//! Where vault objects live: one small trait, two strict backends.
//!
//! Everything rotation relies on for safety is a conditional write, so both
//! backends must refuse a stale `If-Match` and an `If-None-Match: *` on an existing
//! key, under concurrency, exactly like S3 does.

mod contract;
mod dir;
#[cfg(feature = "s3")]
mod s3;

pub(crate) use dir::write_atomic as write_atomic_file;
pub use dir::DirStorage;
#[cfg(feature = "s3")]
pub use s3::{S3Options, S3Storage};

pub use contract::{
    unquote, Meta, Object, PutCondition, Storage, StorageError, StorageErrorKind, MAX_OBJECT_BYTES,
};
pub use vsync_orchestrate_api::shell_quote;
