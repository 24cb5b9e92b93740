//! Test helpers shared by the integration tests: the moto endpoint (or a skip), static
//! test credentials, and names unique to one test in one run.

#![allow(dead_code)]

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_secretsmanager::config::Credentials;

/// The moto server the tests run against. `None` means "skip": only on a developer's
/// machine; in CI (`CI=true`) a missing moto is a failure, never a silent pass.
pub fn moto_endpoint() -> Option<String> {
    vsync_orchestrate_testkit::service::env_or_skip(
        &vsync_orchestrate_testkit::service::current_test(),
        &["VSYNC_TEST_MOTO_ENDPOINT"],
    )
    .map(|mut v| v.remove(0))
}

/// An `SdkConfig` with static credentials pointing at `endpoint`, independent of the
/// developer's own AWS configuration.
pub async fn test_sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .endpoint_url(endpoint)
        .load()
        .await
}

/// A name no other test (or earlier run against the same moto) uses: the testkit's.
pub use vsync_orchestrate_testkit::unique;
