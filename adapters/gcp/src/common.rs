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
        let auth = ctx
            .shared(&key, || async move { Ok(Auth::new(source)) })
            .await?;
        let used = used(ctx).await?;
        let mut all = used.lock().unwrap_or_else(|e| e.into_inner());
        if !all.iter().any(|a| Arc::ptr_eq(&a.cell, &auth.cell)) {
            all.push(auth.clone());
        }
        Ok(auth)
    }

    pub(crate) async fn credentials(&self) -> Result<Credentials> {
        let source = self.source;
        self.cell
            .get_or_try_init(|| async move {
                match source {
                    CredentialSource::Adc => adc().await,
                    CredentialSource::Anonymous => {
                        Ok(google_cloud_auth::credentials::anonymous::Builder::new().build())
                    }
                }
            })
            .await
            .cloned()
    }
}

type Used = Arc<std::sync::Mutex<Vec<Auth>>>;

/// Every credential source the plan's tables use, so [`check_credentials`] can
/// try each once.
async fn used(ctx: &BuildContext) -> Result<Used> {
    ctx.shared("gcp credentials used", || async { Ok(Used::default()) })
        .await
}

/// Loads the credentials of every GCP table built so far (a token from the
/// metadata server within [`DISCOVERY_TIMEOUT`]), so a machine without them stops
/// before the first call, once, with where ADC looked and the command that fixes
/// it. Building stays offline; `run` and `plan` call this once they are about to
/// call out.
pub async fn check_credentials(ctx: &BuildContext) -> Result<()> {
    let all = std::mem::take(&mut *used(ctx).await?.lock().unwrap_or_else(|e| e.into_inner()));
    for auth in all {
        auth.credentials().await?;
    }
    Ok(())
}

/// How long the metadata server may take to hand out a token before ADC counts
/// as missing: on GCE it answers in milliseconds; elsewhere its name may not
/// resolve, or its address may swallow packets while the client retries.
pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(3);

const ADC_FIX: &str = "gcloud auth application-default login";

/// Application Default Credentials as AIP-4110 orders them: the file
/// `GOOGLE_APPLICATION_CREDENTIALS` names, gcloud's well-known file, then the
/// metadata server. When only the metadata server is left, it must hand out a
/// token now: otherwise the first API call would fail later, after the client's
/// retries, as a "transient" error.
async fn adc() -> Result<Credentials> {
    let env_path = std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS").filter(|p| !p.is_empty());
    let well_known = std::env::var_os("HOME").map(|h| {
        std::path::PathBuf::from(h).join(".config/gcloud/application_default_credentials.json")
    });
    let creds = google_cloud_auth::credentials::Builder::default()
        .build()
        .map_err(|e| match (&env_path, &well_known) {
            (Some(p), _) => {
                let fix = format!("unset GOOGLE_APPLICATION_CREDENTIALS && {ADC_FIX}");
                Error::permission(format!(
                    "Google credentials: GOOGLE_APPLICATION_CREDENTIALS names {}, which could not be loaded ({e}); point it at a valid credentials file or run `{fix}`",
                    p.to_string_lossy()
                ))
                .with_next_step(fix)
            }
            (None, w) => Error::permission(format!(
                "Google credentials: {} could not be loaded ({e}); run `{ADC_FIX}`",
                w.as_ref().map_or_else(
                    || "Application Default Credentials".to_owned(),
                    |w| w.display().to_string()
                )
            ))
            .with_next_step(ADC_FIX),
        })?;
    if env_path.is_some() || well_known.as_ref().is_some_and(|w| w.exists()) {
        return Ok(creds);
    }
    let got = tokio::time::timeout(DISCOVERY_TIMEOUT, creds.headers(http::Extensions::new())).await;
    if matches!(got, Ok(Ok(_))) {
        return Ok(creds);
    }
    let host = std::env::var("GCE_METADATA_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "metadata.google.internal".to_owned());
    let answer = match got {
        Err(_) => format!("gave no token within {}s", DISCOVERY_TIMEOUT.as_secs()),
        _ => "gave no token".to_owned(),
    };
    let file = well_known.map_or_else(
        || "gcloud's credentials file (HOME is not set)".to_owned(),
        |w| w.display().to_string(),
    );
    Err(Error::permission(format!(
        "no Google credentials: GOOGLE_APPLICATION_CREDENTIALS is not set, {file} does not exist, and the metadata server ({host}) {answer}; run `{ADC_FIX}`"
    ))
    .with_next_step(ADC_FIX))
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
