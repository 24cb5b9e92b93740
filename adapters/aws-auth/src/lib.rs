//! The AWS credential chain of a plan, loaded once per (profile, region).
//!
//! The S3 vault, every Secrets Manager store and every ECS restarter of one plan
//! call [`sdk_config`] with the same [`BuildContext`], so a profile that signs in
//! through SSO or assumes a role resolves once, not once per table. Endpoints are not
//! part of the key: they are set on each service's client, on top of the shared
//! credentials.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use vsync_orchestrate_api::{BuildContext, Error, Result};

pub use aws_config;

/// The shared chain for `profile` and `region` (each `None` = the standard chain's
/// own choice: `AWS_PROFILE`, `AWS_REGION`, the profile's region).
///
/// Loading reads local configuration only; credentials are fetched lazily by the
/// first request, so building stays offline as long as a region is known.
pub async fn sdk_config(
    ctx: &BuildContext,
    profile: Option<&str>,
    region: Option<&str>,
) -> Result<SdkConfig> {
    if profile.is_some_and(|p| p.trim().is_empty()) {
        return Err(Error::invalid_config("profile is empty"));
    }
    let key = format!("aws profile={profile:?} region={region:?}");
    ctx.shared(&key, || load(profile, region)).await
}

async fn load(profile: Option<&str>, region: Option<&str>) -> Result<SdkConfig> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(p) = profile {
        loader = loader.profile_name(p);
    }
    if let Some(r) = region {
        loader = loader.region(Region::new(r.to_owned()));
    }
    if !has_native_roots() {
        loader = without_roots(loader);
    }
    let sdk = loader.load().await;
    if sdk.region().is_none() {
        return Err(Error::invalid_config(
            "no AWS region: set `region` in the plan, AWS_REGION, or a region in the profile",
        ));
    }
    Ok(sdk)
}

/// Whether `endpoint` is usable as an endpoint override (emulators, VPC endpoints,
/// S3-compatible stores).
pub fn check_endpoint(endpoint: Option<&str>) -> Result<()> {
    match endpoint {
        Some(e) if !(e.starts_with("http://") || e.starts_with("https://")) => {
            Err(Error::invalid_config(format!(
                "endpoint `{e}` must start with http:// or https://"
            )))
        }
        _ => Ok(()),
    }
}

/// Minimal hosts (containers, debootstrap roots) may have no CA bundle. The SDK's
/// default client insists on one; without it, plain-HTTP endpoints must still work
/// and HTTPS must fail with a TLS error, not a panic.
fn has_native_roots() -> bool {
    static ROOTS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ROOTS.get_or_init(|| !rustls_native_certs::load_native_certs().certs.is_empty())
}

fn without_roots(loader: aws_config::ConfigLoader) -> aws_config::ConfigLoader {
    use aws_smithy_http_client::tls;
    let ctx = tls::TlsContext::builder()
        .with_trust_store(tls::TrustStore::empty().with_native_roots(false))
        .build()
        .expect("an empty trust store is a valid TLS context");
    loader.http_client(
        aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .tls_context(ctx)
            .build_https(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_chain_per_profile_and_region() {
        let ctx = BuildContext::new();
        let a = sdk_config(&ctx, None, Some("eu-west-1")).await.unwrap();
        let _ = sdk_config(&ctx, None, Some("eu-west-1")).await.unwrap();
        let b = sdk_config(&ctx, None, Some("us-east-1")).await.unwrap();
        assert_eq!(ctx.shared_count(), 2);
        assert_eq!(a.region().unwrap().as_ref(), "eu-west-1");
        assert_eq!(b.region().unwrap().as_ref(), "us-east-1");
        assert!(sdk_config(&ctx, Some(" "), None).await.is_err());
    }

    #[test]
    fn endpoint_needs_a_scheme() {
        assert!(check_endpoint(Some("127.0.0.1:5000")).is_err());
        assert!(check_endpoint(Some("http://127.0.0.1:5000")).is_ok());
        assert!(check_endpoint(None).is_ok());
    }
}
