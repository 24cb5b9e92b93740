//! The plan tables' static checks, identities and builders: `[[store]] type =
//! "gcp_secret_manager"` and `[[restart]] type = "cloud_run"`.

use crate::common::{check_access, Auth, SecretName, ServiceName};
use crate::secret_manager::alias_problem;
use crate::{CloudRunConfig, CloudRunRestarter, SecretManagerConfig, SecretManagerStore};
use std::sync::Arc;
use std::time::Duration;
use vsync_orchestrate_api::{
    async_trait, BuildContext, Finding, Restarter, RestarterConfig, Result, SecretStore,
    StoreConfig,
};

fn positive(key: &str, d: Option<Duration>) -> Option<Finding> {
    d.is_some_and(|d| d.is_zero())
        .then(|| Finding::error(Some(key), format!("{key} must be positive")))
}

#[async_trait]
impl StoreConfig for SecretManagerConfig {
    fn check(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        if SecretName::parse(&self.secret).is_none() {
            out.push(Finding::error(
                Some("secret"),
                format!(
                    "secret {:?} is not a full resource name: write \
                     \"projects/<project>/secrets/<name>\" (or \
                     \"projects/<project>/locations/<location>/secrets/<name>\")",
                    self.secret
                ),
            ));
        }
        if let Some(p) = alias_problem(&self.alias) {
            out.push(Finding::error(Some("alias"), p));
        }
        out.extend(check_access(self.endpoint.as_deref(), self.credentials));
        out.extend(positive("timeout", self.attempt_timeout));
        out
    }

    /// `gcp_secret_manager:projects/P/secrets/S`.
    fn identity(&self) -> String {
        format!("gcp_secret_manager:{}", self.secret.trim_end_matches('/'))
    }

    async fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn SecretStore>> {
        let auth = Auth::shared(ctx, self.credentials).await?;
        Ok(Arc::new(SecretManagerStore::with_auth(self.clone(), auth)?))
    }
}

#[async_trait]
impl RestarterConfig for CloudRunConfig {
    fn check(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        if self.services.is_empty() {
            out.push(Finding::error(
                Some("services"),
                "services must name at least one service",
            ));
        }
        for s in &self.services {
            if ServiceName::parse(s).is_none() {
                out.push(Finding::error(
                    Some("services"),
                    format!(
                        "{s:?} is not a full service name: write \
                         \"projects/<project>/locations/<region>/services/<name>\""
                    ),
                ));
            }
        }
        out.extend(check_access(self.endpoint.as_deref(), self.credentials));
        out.extend(positive("timeout", self.timeout));
        out.extend(positive("poll_interval", Some(self.poll_interval)));
        out
    }

    /// `cloud_run:projects/P/locations/L/services/A,B`.
    fn identity(&self) -> String {
        format!("cloud_run:{}", self.services.join(","))
    }

    /// One per service: two tables restarting one service would race.
    fn targets(&self) -> Vec<String> {
        self.services
            .iter()
            .map(|s| format!("cloud_run:{s}"))
            .collect()
    }

    fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(CloudRunConfig::DEFAULT_TIMEOUT)
    }

    async fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn Restarter>> {
        let auth = Auth::shared(ctx, self.credentials).await?;
        Ok(Arc::new(CloudRunRestarter::with_auth(self.clone(), auth)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CredentialSource;

    #[tokio::test]
    async fn both_tables_build_offline_and_share_one_credential_source() {
        let ctx = BuildContext::new();
        let store: SecretManagerConfig = serde_json::from_value(serde_json::json!({
            "secret": "projects/p/secrets/vsync", "timeout": "5s"
        }))
        .unwrap();
        assert_eq!(store.alias, "current");
        assert_eq!(store.credentials, CredentialSource::Adc);
        let run: CloudRunConfig = serde_json::from_value(serde_json::json!({
            "services": ["projects/p/locations/l/services/a", "projects/p/locations/l/services/b"],
            "poll_interval": "2s"
        }))
        .unwrap();
        assert!(store.check().is_empty() && run.check().is_empty());
        store.build(&ctx).await.unwrap();
        run.build(&ctx).await.unwrap();
        // One credential source, and the list check_credentials reads.
        assert_eq!(ctx.shared_count(), 2);
        assert_eq!(
            store.identity(),
            "gcp_secret_manager:projects/p/secrets/vsync"
        );
        assert_eq!(run.targets().len(), 2);
        assert_eq!(run.timeout(), Duration::from_secs(600));
    }

    #[test]
    fn findings_name_their_key() {
        let mut store = SecretManagerConfig::new("my-secret");
        store.alias = "latest".into();
        store.credentials = CredentialSource::Anonymous;
        let keys: Vec<_> = store
            .check()
            .into_iter()
            .map(|f| f.key.unwrap_or_default())
            .collect();
        assert_eq!(keys, ["secret", "alias", "credentials"]);
        let mut run = CloudRunConfig::new(["api"]);
        run.endpoint = Some("localhost:1".into());
        let keys: Vec<_> = run
            .check()
            .into_iter()
            .map(|f| f.key.unwrap_or_default())
            .collect();
        assert_eq!(keys, ["services", "endpoint"]);
        assert!(serde_json::from_value::<SecretManagerConfig>(
            serde_json::json!({"secret": "projects/p/secrets/s", "secret_id": "x"})
        )
        .is_err());
    }
}
