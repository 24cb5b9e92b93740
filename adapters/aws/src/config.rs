//! The plan tables' static checks, identities and builders: `[[store]] type =
//! "aws_secrets_manager"` and `[[restart]] type = "ecs"`.

use crate::{EcsConfig, EcsRestarter, SecretsManagerConfig, SecretsManagerStore};
use std::sync::Arc;
use std::time::Duration;
use vsync_orchestrate_api::{
    async_trait, BuildContext, Finding, Restarter, RestarterConfig, Result, SecretStore,
    StoreConfig,
};

fn endpoint_finding(endpoint: Option<&str>) -> Option<Finding> {
    crate::common::check_endpoint(endpoint)
        .err()
        .map(|e| Finding::error(Some("endpoint"), e.message().to_owned()))
}

fn positive(key: &str, d: Option<Duration>) -> Option<Finding> {
    d.is_some_and(|d| d.is_zero())
        .then(|| Finding::error(Some(key), format!("{key} must be positive")))
}

/// `region` as the identity names it: an ARN carries its own, otherwise the plan's,
/// otherwise whatever the environment will say.
fn region_of<'a>(id: &'a str, region: Option<&'a str>) -> &'a str {
    id.strip_prefix("arn:")
        .and_then(|rest| rest.split(':').nth(2))
        .filter(|r| !r.is_empty())
        .or(region)
        .unwrap_or("(default region)")
}

fn scope(profile: Option<&str>, region: &str) -> String {
    match profile {
        Some(p) => format!("{p}@{region}"),
        None => region.to_owned(),
    }
}

#[async_trait]
impl StoreConfig for SecretsManagerConfig {
    fn check(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        if self.secret_id.trim().is_empty() {
            out.push(Finding::error(Some("secret_id"), "secret_id is empty"));
        }
        if self.json_key.as_deref().is_some_and(str::is_empty) {
            out.push(Finding::error(Some("json_key"), "json_key is empty"));
        }
        if self.profile.as_deref().is_some_and(|p| p.trim().is_empty()) {
            out.push(Finding::error(Some("profile"), "profile is empty"));
        }
        out.extend(endpoint_finding(self.endpoint.as_deref()));
        out.extend(positive("timeout", self.attempt_timeout));
        out
    }

    /// `aws_secrets_manager:[profile@]region:secret`.
    fn identity(&self) -> String {
        let region = region_of(&self.secret_id, self.region.as_deref());
        format!(
            "aws_secrets_manager:{}:{}",
            scope(self.profile.as_deref(), region),
            self.secret_id
        )
    }

    async fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn SecretStore>> {
        let sdk = vsync_orchestrate_aws_auth::sdk_config(
            ctx,
            self.profile.as_deref(),
            self.region.as_deref(),
        )
        .await?;
        Ok(Arc::new(SecretsManagerStore::from_sdk_config(
            self.clone(),
            &sdk,
        )?))
    }
}

#[async_trait]
impl RestarterConfig for EcsConfig {
    fn check(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        if self.cluster.trim().is_empty() {
            out.push(Finding::error(Some("cluster"), "cluster is empty"));
        }
        if self.services.is_empty() || self.services.iter().any(|s| s.trim().is_empty()) {
            out.push(Finding::error(
                Some("services"),
                "services must name at least one service",
            ));
        }
        if self.profile.as_deref().is_some_and(|p| p.trim().is_empty()) {
            out.push(Finding::error(Some("profile"), "profile is empty"));
        }
        out.extend(endpoint_finding(self.endpoint.as_deref()));
        out.extend(positive("timeout", self.timeout));
        out.extend(positive("poll_interval", Some(self.poll_interval)));
        out
    }

    /// `ecs:[profile@]region:cluster/service,service`.
    fn identity(&self) -> String {
        let region = region_of(&self.cluster, self.region.as_deref());
        format!(
            "ecs:{}:{}/{}",
            scope(self.profile.as_deref(), region),
            self.cluster,
            self.services.join(",")
        )
    }

    /// One per service: two tables restarting the same service would race.
    fn targets(&self) -> Vec<String> {
        let region = region_of(&self.cluster, self.region.as_deref());
        self.services
            .iter()
            .map(|s| {
                format!(
                    "ecs:{}:{}/{s}",
                    scope(self.profile.as_deref(), region),
                    self.cluster
                )
            })
            .collect()
    }

    fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(Duration::from_secs(600))
    }

    async fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn Restarter>> {
        let sdk = vsync_orchestrate_aws_auth::sdk_config(
            ctx,
            self.profile.as_deref(),
            self.region.as_deref(),
        )
        .await?;
        Ok(Arc::new(EcsRestarter::from_sdk_config(self.clone(), &sdk)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sm(id: &str, region: Option<&str>) -> SecretsManagerConfig {
        SecretsManagerConfig {
            secret_id: id.into(),
            region: region.map(str::to_owned),
            endpoint: None,
            profile: None,
            json_key: None,
            attempt_timeout: None,
        }
    }

    #[test]
    fn identities_name_region_and_secret() {
        assert_eq!(
            sm("prod/x", Some("us-east-1")).identity(),
            "aws_secrets_manager:us-east-1:prod/x"
        );
        assert_eq!(
            sm("arn:aws:secretsmanager:eu-west-1:1:secret:x-AbC", None).identity(),
            "aws_secrets_manager:eu-west-1:arn:aws:secretsmanager:eu-west-1:1:secret:x-AbC"
        );
    }

    #[tokio::test]
    async fn one_credential_chain_for_both_adapters() {
        let ctx = BuildContext::new();
        let ecs: EcsConfig = serde_json::from_value(serde_json::json!({
            "cluster": "c", "services": ["a"], "region": "eu-west-1", "poll_interval": "2s"
        }))
        .unwrap();
        assert_eq!(ecs.poll_interval, Duration::from_secs(2));
        sm("s", Some("eu-west-1")).build(&ctx).await.unwrap();
        ecs.build(&ctx).await.unwrap();
        // One chain, and the list check_credentials reads.
        assert_eq!(ctx.shared_count(), 2);
        assert_eq!(ecs.targets(), vec!["ecs:eu-west-1:c/a".to_owned()]);
    }
}
