//! Adapters for a single host, used by the demo and tests and by users who run
//! their app next to the tool:
//!
//! * `[[store]] type = "file"` ([`FileStore`]): a passphrase file, staged as
//!   `<path>.new`, activated by rename, the old value kept as `<path>.prev`.
//! * `[[restart]] type = "command"` ([`CommandRestarter`]): one argv per target,
//!   never given the passphrase.
//!
//! [`staged_file`] is the one implementation of the file protocol on this host; the
//! `vps_file` store's local transport uses it too.

mod command_restarter;
mod config;
mod file_store;
pub mod staged_file;

pub use command_restarter::{CommandRestarter, CommandTargetSpec, KIND as COMMAND_KIND};
pub use config::{CommandRestarterConfig, CommandTarget, FileStoreConfig};
pub use file_store::{FileStore, KIND as FILE_KIND};
