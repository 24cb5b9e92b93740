//! GCP adapters for vsync-orchestrate: the Secret Manager store, staged through
//! version aliases, and the Cloud Run restarter.
//!
//! Both use Google's own client crates over REST. Credentials are Application
//! Default Credentials unless a plan says `credentials = "anonymous"` (emulators
//! and test fakes, which also need an `endpoint`). Clients are built on first use,
//! not in `build`: building one may ask the metadata server for the universe
//! domain, and `build` must stay offline so `validate` can build every plan.
//!
//! No error carries a Google client error as its source: those can hold the raw
//! HTTP payload, and an AccessSecretVersion payload is the passphrase.

mod cloud_run;
mod common;
mod config;
mod crc32c;
mod error;
mod secret_manager;

pub use cloud_run::{CloudRunConfig, CloudRunRestarter, RUN_ANNOTATION};
pub use common::{check_credentials, CredentialSource, DISCOVERY_TIMEOUT};
pub use secret_manager::{SecretManagerConfig, SecretManagerStore, PENDING_ALIAS, PREVIOUS_ALIAS};
