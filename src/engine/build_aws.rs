//! Plan tables → AWS adapters.

use super::build::BuildError;
use crate::plan;
use std::sync::Arc;
use std::time::Duration;
use vsync_orchestrate_api::{Restarter, SecretStore};

pub async fn store(a: &plan::AwsSecretsManager) -> Result<Arc<dyn SecretStore>, BuildError> {
    let cfg = vsync_orchestrate_aws::SecretsManagerConfig {
        secret_id: a.secret_id.clone(),
        region: a.region.clone(),
        endpoint: a.endpoint.clone(),
        profile: a.profile.clone(),
        json_key: a.json_key.clone(),
        attempt_timeout: a
            .timeout
            .as_deref()
            .and_then(|t| plan::parse_duration(t).ok()),
    };
    let s = vsync_orchestrate_aws::SecretsManagerStore::new(cfg)
        .await
        .map_err(|e| BuildError(format!("aws_secrets_manager {}: {e}", a.secret_id)))?;
    Ok(Arc::new(s))
}

pub async fn ecs(e: &plan::Ecs) -> Result<Arc<dyn Restarter>, BuildError> {
    let cfg = vsync_orchestrate_aws::EcsConfig {
        cluster: e.cluster.clone(),
        services: e.services.clone(),
        region: e.region.clone(),
        endpoint: e.endpoint.clone(),
        profile: e.profile.clone(),
        poll_interval: std::env::var("VSYNC_ORCHESTRATE_ECS_POLL_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis)
            .unwrap_or(Duration::from_secs(10)),
    };
    let r = vsync_orchestrate_aws::EcsRestarter::new(cfg)
        .await
        .map_err(|err| BuildError(format!("ecs {}: {err}", e.cluster)))?;
    Ok(Arc::new(r))
}
