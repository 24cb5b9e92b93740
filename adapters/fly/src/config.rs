//! The plan table's static checks, identity and builder: `[[restart]] type = "fly"`.

use crate::{FlyConfig, FlyRestarter};
use std::sync::Arc;
use std::time::Duration;
use vsync_orchestrate_api::{
    async_trait, BuildContext, Finding, Restarter, RestarterConfig, Result,
};

pub(crate) fn findings(c: &FlyConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    let app_ok = !c.app.is_empty()
        && c.app
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-');
    if !app_ok {
        out.push(Finding::error(
            Some("app"),
            format!(
                "app {:?} is not a Fly app name (lower-case letters, digits, -)",
                c.app
            ),
        ));
    }
    if c.token_env.is_empty()
        || !c
            .token_env
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
    {
        out.push(Finding::error(
            Some("token_env"),
            format!(
                "token_env {:?} must name an environment variable (the token itself never goes in a plan)",
                c.token_env
            ),
        ));
    }
    if let Some(b) = &c.api_base {
        let ok = (b.starts_with("https://") || b.starts_with("http://"))
            && b.split("://").nth(1).is_some_and(|r| !r.is_empty());
        if !ok {
            out.push(Finding::error(
                Some("api_base"),
                format!("api_base {b:?} is not an http:// or https:// URL"),
            ));
        }
    }
    if c.batch_size == 0 {
        out.push(Finding::error(
            Some("batch_size"),
            "batch_size must be at least 1",
        ));
    }
    for (key, d) in [
        ("timeout", c.timeout),
        ("poll_interval", Some(c.poll_interval)),
        ("lease_ttl", Some(c.lease_ttl)),
        ("check_grace", Some(c.check_grace)),
    ] {
        if d.is_some_and(|d| d.is_zero()) {
            out.push(Finding::error(Some(key), format!("{key} must be positive")));
        }
    }
    if c.lease_ttl < c.check_grace {
        out.push(Finding::warning(
            Some("lease_ttl"),
            "lease_ttl is shorter than check_grace: a lease may expire while a machine's checks are still being waited for",
        ));
    }
    out
}

#[async_trait]
impl RestarterConfig for FlyConfig {
    fn check(&self) -> Vec<Finding> {
        findings(self)
    }

    /// `fly:<app>`, or `fly:<app>:<group>,…` for some process groups only.
    fn identity(&self) -> String {
        if self.process_groups.is_empty() {
            format!("fly:{}", self.app)
        } else {
            format!("fly:{}:{}", self.app, self.process_groups.join(","))
        }
    }

    /// Two tables restarting the same app would race; two disjoint process groups
    /// of one app would not.
    fn targets(&self) -> Vec<String> {
        if self.process_groups.is_empty() {
            vec![format!("fly:{}", self.app)]
        } else {
            self.process_groups
                .iter()
                .map(|g| format!("fly:{}:{g}", self.app))
                .collect()
        }
    }

    fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(FlyConfig::DEFAULT_TIMEOUT)
    }

    async fn build(&self, _ctx: &BuildContext) -> Result<Arc<dyn Restarter>> {
        Ok(Arc::new(FlyRestarter::new(self.clone())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_table_defaults_checks_and_builds_offline_without_a_token() {
        let c: FlyConfig = serde_json::from_value(serde_json::json!({
            "app": "shop-web", "token_env": "VSYNC_TEST_NO_SUCH_FLY_TOKEN", "batch_size": 2
        }))
        .unwrap();
        assert!(c.check().is_empty(), "{:?}", c.check());
        assert_eq!(c.timeout(), Duration::from_secs(900));
        assert_eq!(c.lease_ttl, Duration::from_secs(300));
        assert_eq!(c.identity(), "fly:shop-web");
        c.build(&BuildContext::new()).await.unwrap();
        let mut bad = FlyConfig::new("Shop_Web");
        bad.batch_size = 0;
        bad.token_env = "FlyV1 fm2_x".into();
        let keys: Vec<_> = bad
            .check()
            .into_iter()
            .map(|f| f.key.unwrap_or_default())
            .collect();
        assert_eq!(keys, ["app", "token_env", "batch_size"]);
        assert!(
            serde_json::from_value::<FlyConfig>(serde_json::json!({"app": "a", "token": "x"}))
                .is_err()
        );
    }
}
