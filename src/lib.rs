//! vsync-orchestrate: rotate the passphrase of a vsync vault end to end.

pub mod adapters;
pub mod cli;
pub mod commands;
pub mod demo;
pub mod engine;
pub mod fleet;
pub mod local;
pub mod notify;
pub mod plan;
pub mod report;
pub mod vault;

pub use vsync_orchestrate_api as api;
