//! Test helpers shared by the integration tests: the moto endpoint (or a skip), static
//! test credentials, and names unique to one test in one run.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_secretsmanager::config::Credentials;

/// The moto server the tests run against. `None` means "skip": only on a developer's
/// machine; in CI (`CI=true`) a missing moto is a failure, never a silent pass.
pub fn moto_endpoint() -> Option<String> {
    match std::env::var("VSYNC_TEST_MOTO_ENDPOINT") {
        Ok(v) if !v.trim().is_empty() => Some(v.trim().to_owned()),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "VSYNC_TEST_MOTO_ENDPOINT is not set but CI=true: the moto server must be \
                     running for these tests (see .ci/services/10-moto.sh)"
                );
            }
            eprintln!(
                "skipping: VSYNC_TEST_MOTO_ENDPOINT is not set (start moto_server and export \
                 its http://127.0.0.1:PORT to run this test)"
            );
            None
        }
    }
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

/// A name no other test (or earlier run against the same moto) uses.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "vso-{tag}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
