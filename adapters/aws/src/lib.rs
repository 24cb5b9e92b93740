//! AWS adapters for vsync-orchestrate: the Secrets Manager store and the ECS restarter.
//!
//! Both load credentials through the standard `aws-config` chain (environment, shared
//! config and credentials files, named profiles, SSO, web identity, container and
//! instance metadata), so a plan only names what differs from the operator's usual
//! AWS setup: a `profile`, a `region`, or an `endpoint` for a local emulator.
//!
//! Neither adapter ever attaches an SDK error as an error source: SDK errors can carry
//! the raw HTTP response, and a `GetSecretValue` response holds the passphrase. Errors
//! are rebuilt from the service's error code and message only.

mod common;
mod config;
mod ecs;
mod json_member;
mod secrets_manager;

pub use ecs::{EcsConfig, EcsRestarter};
pub use secrets_manager::{SecretsManagerConfig, SecretsManagerStore};

/// Re-exported so callers of the `from_sdk_config` constructors can share one loaded
/// credential chain (one SSO sign-in, one profile resolution) among adapters without
/// naming an `aws-config` version of their own.
pub use vsync_orchestrate_aws_auth::aws_config::SdkConfig;
