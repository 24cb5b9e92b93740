//! The AWS credential chain of a plan, loaded once per (profile, region).
//!
//! The S3 vault, every Secrets Manager store and every ECS restarter of one plan
//! call [`sdk_config`] with the same [`BuildContext`], so a profile that signs in
//! through SSO or assumes a role resolves once, not once per table. Endpoints are not
//! part of the key: they are set on each service's client, on top of the shared
//! credentials.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::{error::CredentialsError, ProvideCredentials};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vsync_orchestrate_api::{BuildContext, Error, Result};

pub use aws_config;
pub use aws_credential_types;

/// How long credential discovery may take before the run gives up: the instance
/// metadata service answers in milliseconds where it exists, and off EC2 its
/// address can swallow packets for the SDK's whole retry budget.
pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(3);

/// The shared chain for `profile` and `region` (each `None` = the standard chain's
/// own choice: `AWS_PROFILE`, `AWS_REGION`, the profile's region).
///
/// Loading reads local configuration only; credentials are fetched lazily by the
/// first request, so building stays offline as long as a region is known.
/// [`check_credentials`] fetches them up front, for commands about to use them.
pub async fn sdk_config(
    ctx: &BuildContext,
    profile: Option<&str>,
    region: Option<&str>,
) -> Result<SdkConfig> {
    if profile.is_some_and(|p| p.trim().is_empty()) {
        return Err(Error::invalid_config("profile is empty"));
    }
    let key = format!("aws profile={profile:?} region={region:?}");
    let loaded = Arc::new(Mutex::new(false));
    let fresh = loaded.clone();
    let sdk = ctx
        .shared(&key, || async move {
            let sdk = load(profile, region).await?;
            *fresh.lock().unwrap_or_else(|e| e.into_inner()) = true;
            Ok(sdk)
        })
        .await?;
    if *loaded.lock().unwrap_or_else(|e| e.into_inner()) {
        chains(ctx)
            .await?
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((profile.map(str::to_owned), sdk.clone()));
    }
    Ok(sdk)
}

type Chains = Arc<Mutex<Vec<(Option<String>, SdkConfig)>>>;

/// Every chain this plan loaded, so [`check_credentials`] can try each once.
async fn chains(ctx: &BuildContext) -> Result<Chains> {
    ctx.shared("aws chains", || async { Ok(Chains::default()) })
        .await
}

/// Fetches credentials for every chain loaded since the last call (at most
/// [`DISCOVERY_TIMEOUT`] each), so a machine without them fails before the first
/// request, once, with what was missing, where the chain looked, and the command
/// that fixes it, instead of as a transport error on every call.
pub async fn check_credentials(ctx: &BuildContext) -> Result<()> {
    let all = std::mem::take(&mut *chains(ctx).await?.lock().unwrap_or_else(|e| e.into_inner()));
    for (profile, sdk) in all {
        let Some(provider) = sdk.credentials_provider() else {
            continue;
        };
        let got = tokio::time::timeout(DISCOVERY_TIMEOUT, provider.provide_credentials()).await;
        let err = match got {
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => Some(e),
            Err(_) => None,
        };
        return Err(no_credentials(
            &Setup::read(profile.as_deref()),
            err.as_ref(),
        ));
    }
    Ok(())
}

/// The error to report when a request failed because the chain had no
/// credentials (`err` is anything whose source chain holds the SDK's credentials
/// error): the same words and fix as [`check_credentials`], for commands that
/// call out without checking first. `None` when credentials were not the reason.
pub fn credential_failure(
    profile: Option<&str>,
    err: &(dyn std::error::Error + 'static),
) -> Option<Error> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(c) = e.downcast_ref::<CredentialsError>() {
            return Some(no_credentials(&Setup::read(profile), Some(c)));
        }
        cur = e.source();
    }
    None
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
        return Err(no_region(&Setup::read(profile)));
    }
    Ok(sdk)
}

/// What the standard chain reads on this machine, as far as an error message
/// needs it: which profile, from where, and what the two shared files hold.
struct Setup {
    /// The profile in use and who chose it (`None`: nobody, so `default`).
    profile: Option<(String, &'static str)>,
    config: PathBuf,
    credentials: PathBuf,
    /// Profile name → its keys, from both files.
    profiles: HashMap<String, Vec<String>>,
}

impl Setup {
    fn read(plan_profile: Option<&str>) -> Setup {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let profile = match plan_profile {
            Some(p) => Some((p.to_owned(), "the plan")),
            None => env("AWS_PROFILE").map(|p| (p, "AWS_PROFILE")),
        };
        let home = env("HOME").map(PathBuf::from).unwrap_or_default();
        let config = env("AWS_CONFIG_FILE")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".aws/config"));
        let credentials = env("AWS_SHARED_CREDENTIALS_FILE")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".aws/credentials"));
        let mut profiles = HashMap::new();
        for (path, prefixed) in [(&config, true), (&credentials, false)] {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            sections(&text, prefixed, &mut profiles);
        }
        Setup {
            profile,
            config,
            credentials,
            profiles,
        }
    }

    fn name(&self) -> &str {
        self.profile.as_ref().map_or("default", |(p, _)| p.as_str())
    }

    /// The named profile, when it is in neither file.
    fn missing_profile(&self) -> Option<Error> {
        let (p, from) = self.profile.as_ref()?;
        if self.profiles.contains_key(p) {
            return None;
        }
        let fix = format!("aws configure --profile {p}");
        Some(
            Error::invalid_config(format!(
                "AWS profile `{p}` (from {from}) is in neither {} nor {}; create it with `{fix}`",
                self.config.display(),
                self.credentials.display()
            ))
            .with_next_step(fix),
        )
    }
}

/// Profile sections of a shared config (`[profile x]`, `[default]`) or
/// credentials (`[x]`) file, with their keys.
fn sections(text: &str, prefixed: bool, out: &mut HashMap<String, Vec<String>>) {
    let mut current: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if let Some(h) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let h = h.trim();
            current = if !prefixed || h == "default" {
                Some(h.to_owned())
            } else {
                h.strip_prefix("profile ").map(|p| p.trim().to_owned())
            };
            if let Some(c) = &current {
                out.entry(c.clone()).or_default();
            }
        } else if let (Some(c), Some((k, _))) = (&current, line.split_once('=')) {
            out.entry(c.clone()).or_default().push(k.trim().to_owned());
        }
    }
}

fn no_region(setup: &Setup) -> Error {
    if let Some(e) = setup.missing_profile() {
        return e;
    }
    let fix = "export AWS_REGION=<region>";
    Error::invalid_config(format!(
        "no AWS region: not in the plan, AWS_REGION, AWS_DEFAULT_REGION, or profile `{}` in {}; set `region` in the plan or run `{fix}`",
        setup.name(),
        setup.config.display()
    ))
    .with_next_step(fix)
}

/// `err` is the chain's answer, `None` when it gave none within the timeout.
fn no_credentials(setup: &Setup, err: Option<&CredentialsError>) -> Error {
    if let Some(e) = setup.missing_profile() {
        return e;
    }
    let why = match err {
        None => format!("no answer within {}s", DISCOVERY_TIMEOUT.as_secs()),
        Some(e) => short(e),
    };
    if let Some((p, _)) = &setup.profile {
        let keys = &setup.profiles[p];
        let sso = keys
            .iter()
            .any(|k| k == "sso_session" || k == "sso_start_url");
        let fix = if sso {
            format!("aws sso login --profile {p}")
        } else {
            format!("aws configure --profile {p}")
        };
        let what = if sso {
            "signs in through SSO and has no valid session"
        } else {
            "gave no credentials"
        };
        return Error::permission(format!("AWS profile `{p}` {what} ({why}); run `{fix}`"))
            .with_next_step(fix);
    }
    let imds = if std::env::var("AWS_EC2_METADATA_DISABLED")
        .is_ok_and(|v| v.eq_ignore_ascii_case("true"))
    {
        "is off (AWS_EC2_METADATA_DISABLED=true)".to_owned()
    } else if err.is_none() {
        format!("did not answer within {}s", DISCOVERY_TIMEOUT.as_secs())
    } else {
        "gave none".to_owned()
    };
    let fix = "aws configure";
    Error::permission(format!(
        "no AWS credentials: none in the environment (AWS_ACCESS_KEY_ID, AWS_PROFILE, AWS_WEB_IDENTITY_TOKEN_FILE, AWS_CONTAINER_CREDENTIALS_*), none in {} or {}, and the instance metadata service {imds}; run `{fix}`",
        setup.config.display(),
        setup.credentials.display()
    ))
    .with_next_step(fix)
}

/// The provider's own words, one line, without the `Debug` dump that SDK errors
/// append to their display context.
fn short(e: &CredentialsError) -> String {
    let mut out = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(s) = cur {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = s.source();
    }
    let line = out.lines().next().unwrap_or("").to_owned();
    match line.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
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
        // Two chains, and the list check_credentials reads.
        assert_eq!(ctx.shared_count(), 3);
        assert_eq!(a.region().unwrap().as_ref(), "eu-west-1");
        assert_eq!(b.region().unwrap().as_ref(), "us-east-1");
        assert!(sdk_config(&ctx, Some(" "), None).await.is_err());
    }

    fn setup(profile: Option<&str>, config: &str, credentials: &str) -> Setup {
        let mut profiles = HashMap::new();
        sections(config, true, &mut profiles);
        sections(credentials, false, &mut profiles);
        Setup {
            profile: profile.map(|p| (p.to_owned(), "the plan")),
            config: "/h/.aws/config".into(),
            credentials: "/h/.aws/credentials".into(),
            profiles,
        }
    }

    #[test]
    fn profiles_come_from_both_files() {
        let s = setup(
            None,
            "[default]\nregion = x\n[profile sso]\nsso_session = s\n[sso-session s]\nsso_region = y\n",
            "[keys]\naws_access_key_id = a\n",
        );
        let mut names: Vec<_> = s.profiles.keys().cloned().collect();
        names.sort();
        assert_eq!(names, ["default", "keys", "sso"]);
        assert_eq!(s.profiles["sso"], ["sso_session"]);
    }

    #[test]
    fn a_missing_profile_names_both_files_and_the_command() {
        let e = no_credentials(&setup(Some("nope"), "[default]\n", ""), None);
        assert_eq!(e.kind(), vsync_orchestrate_api::ErrorKind::InvalidConfig);
        assert_eq!(
            e.message(),
            "AWS profile `nope` (from the plan) is in neither /h/.aws/config nor /h/.aws/credentials; create it with `aws configure --profile nope`"
        );
        assert_eq!(e.next_step(), Some("aws configure --profile nope"));
        // A missing profile explains a missing region too.
        assert_eq!(
            no_region(&setup(Some("nope"), "", "")).next_step(),
            Some("aws configure --profile nope")
        );
    }

    #[test]
    fn an_sso_profile_without_a_session_signs_in() {
        let s = setup(Some("prod"), "[profile prod]\nsso_session = acme\n", "");
        let e = no_credentials(&s, Some(&CredentialsError::not_loaded("no token")));
        assert_eq!(e.kind(), vsync_orchestrate_api::ErrorKind::Permission);
        assert_eq!(
            e.message(),
            "AWS profile `prod` signs in through SSO and has no valid session (the credential provider was not enabled: no token); run `aws sso login --profile prod`"
        );
        assert_eq!(e.next_step(), Some("aws sso login --profile prod"));
        let timed_out = no_credentials(&setup(Some("prod"), "[profile prod]\n", ""), None);
        assert_eq!(
            timed_out.message(),
            "AWS profile `prod` gave no credentials (no answer within 3s); run `aws configure --profile prod`"
        );
    }

    #[test]
    fn a_missing_region_says_where_it_looked() {
        let e = no_region(&setup(None, "", ""));
        assert_eq!(e.kind(), vsync_orchestrate_api::ErrorKind::InvalidConfig);
        assert_eq!(
            e.message(),
            "no AWS region: not in the plan, AWS_REGION, AWS_DEFAULT_REGION, or profile `default` in /h/.aws/config; set `region` in the plan or run `export AWS_REGION=<region>`"
        );
        assert_eq!(e.next_step(), Some("export AWS_REGION=<region>"));
    }

    /// How the SDK hands a missing credential to a request: inside its
    /// connector error.
    #[test]
    fn a_request_failure_caused_by_credentials_is_recognised() {
        #[derive(Debug)]
        struct Wrapper(CredentialsError);
        impl std::fmt::Display for Wrapper {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("dispatch failure")
            }
        }
        impl std::error::Error for Wrapper {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let err = Wrapper(CredentialsError::not_loaded("nothing"));
        let e = credential_failure(None, &err).unwrap();
        assert!(e.next_step().is_some());
        let other = std::io::Error::other("connection refused");
        assert!(credential_failure(None, &other).is_none());
    }

    #[test]
    fn endpoint_needs_a_scheme() {
        assert!(check_endpoint(Some("127.0.0.1:5000")).is_err());
        assert!(check_endpoint(Some("http://127.0.0.1:5000")).is_ok());
        assert!(check_endpoint(None).is_ok());
    }
}
