//! Adapters for a single host, used by the demo and tests and by users who run
//! their app next to the tool: a passphrase file and restart commands.

mod command_restarter;
mod file_store;

pub use command_restarter::{CommandRestarter, CommandTargetSpec};
pub use file_store::FileStore;
