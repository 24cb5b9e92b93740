//! What both GCP adapters share: where credentials come from, how a client is
//! built (lazily: building a Google client may ask the metadata server for the
//! universe domain, and `build` must stay offline), endpoints and resource names.

use google_cloud_auth::credentials::Credentials;
use google_cloud_gax::retry_policy::{Aip194Strict, RetryPolicyExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;
use vsync_orchestrate_api::{BuildContext, Error, Finding, Result};

/// Where a GCP adapter gets its credentials (the plan's `credentials` key).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Deserialize,
    serde::Serialize,
    vsync_orchestrate_api::schemars::JsonSchema,
)]
#[schemars(crate = "vsync_orchestrate_api::schemars")]
#[serde(rename_all = "snake_case")]
pub enum CredentialSource {
    /// Application Default Credentials: `GOOGLE_APPLICATION_CREDENTIALS`, the
    /// `gcloud auth application-default login` file, workload identity, or the
    /// metadata server. The only choice for real projects.
    #[default]
    Adc,
    /// No credentials at all: for emulators and test fakes only, so it needs an
    /// `endpoint` (the real APIs refuse anonymous calls).
    Anonymous,
}

/// Credentials resolved on first use and then shared: the store and the restarter
/// of one plan use one ADC token cache (one token fetch, not one per table).
#[derive(Clone)]
pub(crate) struct Auth {
    source: CredentialSource,
    cell: Arc<OnceCell<Credentials>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("source", &self.source)
            .finish()
    }
}

impl Auth {
    pub(crate) fn new(source: CredentialSource) -> Auth {
        Auth {
            source,
            cell: Arc::default(),
        }
    }

    /// One `Auth` per credential source and plan.
    pub(crate) async fn shared(ctx: &BuildContext, source: CredentialSource) -> Result<Auth> {
        let key = format!("gcp-credentials:{source:?}");
        ctx.shared(&key, || async move { Ok(Auth::new(source)) })
            .await
    }

    pub(crate) async fn credentials(&self) -> Result<Credentials> {
        let source = self.source;
        self.cell
            .get_or_try_init(|| async move {
                match source {
                    CredentialSource::Adc => google_cloud_auth::credentials::Builder::default()
                        .build()
                        .map_err(|e| {
                            Error::permission(format!(
                                "Application Default Credentials could not be loaded: {e}"
                            ))
                        }),
                    CredentialSource::Anonymous => {
                        Ok(google_cloud_auth::credentials::anonymous::Builder::new().build())
                    }
                }
            })
            .await
            .cloned()
    }
}

/// The client-side retry loop: a few quick retries of idempotent calls on
/// `UNAVAILABLE` only. Everything else is decided by the engine, which knows
/// whether it is inside the window.
pub(crate) fn retry_policy() -> impl google_cloud_gax::retry_policy::RetryPolicy {
    Aip194Strict
        .with_attempt_limit(3)
        .with_time_limit(Duration::from_secs(20))
}

/// An `endpoint` must be an http(s) URL with a host.
pub(crate) fn check_endpoint(endpoint: Option<&str>) -> Option<String> {
    let e = endpoint?;
    let rest = e
        .strip_prefix("https://")
        .or_else(|| e.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') && !r.contains(char::is_whitespace) => None,
        _ => Some(format!(
            "endpoint {e:?} is not an http:// or https:// URL with a host"
        )),
    }
}

/// The static checks both tables share: `endpoint`, and `anonymous` only with one.
pub(crate) fn check_access(endpoint: Option<&str>, credentials: CredentialSource) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(m) = check_endpoint(endpoint) {
        out.push(Finding::error(Some("endpoint"), m));
    }
    if credentials == CredentialSource::Anonymous && endpoint.is_none() {
        out.push(Finding::error(
            Some("credentials"),
            "credentials = \"anonymous\" is for emulators and test fakes: set `endpoint` to one \
             (Google's APIs refuse anonymous calls); real projects use the default, \
             Application Default Credentials",
        ));
    }
    out
}

/// The Google client libraries log every request and response at DEBUG when this
/// variable is `true`; a Secret Manager response holds the passphrase.
pub(crate) const CLIENT_LOGGING_VAR: &str = "GOOGLE_CLOUD_RUST_LOGGING";

pub(crate) fn client_logging_enabled() -> bool {
    std::env::var(CLIENT_LOGGING_VAR).is_ok_and(|v| v == "true")
}

/// A path segment of a resource name: non-empty, no slash, no blank.
fn segment(s: &str) -> bool {
    !s.is_empty() && !s.contains(['/', ' ', '\t', '\n'])
}

/// `projects/P/secrets/S` or `projects/P/locations/L/secrets/S`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SecretName {
    pub project: String,
    pub location: Option<String>,
    pub secret: String,
}

impl SecretName {
    pub(crate) fn parse(s: &str) -> Option<SecretName> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = parts.iter().all(|p| segment(p));
        match parts.as_slice() {
            ["projects", p, "secrets", s] if ok => Some(SecretName {
                project: (*p).to_owned(),
                location: None,
                secret: (*s).to_owned(),
            }),
            ["projects", p, "locations", l, "secrets", s] if ok => Some(SecretName {
                project: (*p).to_owned(),
                location: Some((*l).to_owned()),
                secret: (*s).to_owned(),
            }),
            _ => None,
        }
    }

    /// The `gcloud secrets …` arguments naming this secret.
    pub(crate) fn gcloud_args(&self) -> String {
        let mut s = format!("{} --project={}", self.secret, self.project);
        if let Some(l) = &self.location {
            s.push_str(&format!(" --location={l}"));
        }
        s
    }
}

/// `projects/P/locations/L/services/S`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceName {
    pub project: String,
    pub location: String,
    pub service: String,
}

impl ServiceName {
    pub(crate) fn parse(s: &str) -> Option<ServiceName> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            ["projects", p, "locations", l, "services", s] if parts.iter().all(|p| segment(p)) => {
                Some(ServiceName {
                    project: (*p).to_owned(),
                    location: (*l).to_owned(),
                    service: (*s).to_owned(),
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names() {
        let s = SecretName::parse("projects/p1/secrets/vsync").unwrap();
        assert_eq!((s.project.as_str(), s.secret.as_str()), ("p1", "vsync"));
        assert_eq!(s.gcloud_args(), "vsync --project=p1");
        let r = SecretName::parse("projects/p1/locations/europe-west1/secrets/v").unwrap();
        assert_eq!(r.location.as_deref(), Some("europe-west1"));
        assert_eq!(r.gcloud_args(), "v --project=p1 --location=europe-west1");
        for bad in [
            "vsync",
            "projects/p1/secrets/",
            "projects/p1/secrets/v/versions/1",
            "projects//secrets/v",
        ] {
            assert!(SecretName::parse(bad).is_none(), "{bad}");
        }
        assert!(ServiceName::parse("projects/p/locations/l/services/s").is_some());
        assert!(ServiceName::parse("projects/p/services/s").is_none());
    }

    #[test]
    fn endpoints_and_anonymous() {
        assert!(check_endpoint(Some("http://127.0.0.1:8080")).is_none());
        assert!(check_endpoint(Some("127.0.0.1:8080")).is_some());
        assert!(check_endpoint(Some("https://")).is_some());
        let f = check_access(None, CredentialSource::Anonymous);
        assert_eq!(f[0].key.as_deref(), Some("credentials"));
        assert!(check_access(Some("http://x"), CredentialSource::Anonymous).is_empty());
    }
}
