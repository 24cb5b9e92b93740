//! The single-host adapters now live in `adapters/local`; re-exported here so code
//! written against `vsync_orchestrate::local` keeps compiling.

#[cfg(feature = "local")]
pub use vsync_orchestrate_local::{
    CommandRestarter, CommandRestarterConfig, CommandTargetSpec, FileStore, FileStoreConfig,
};
