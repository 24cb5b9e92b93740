//! The plan tables' static checks, identities and builders: `[[store]] type =
//! "vercel"` and `[[restart]] type = "vercel"`.

use crate::api::check_common;
use crate::{VercelRedeploy, VercelRedeployConfig, VercelStore, VercelStoreConfig, VercelTarget};
use std::sync::Arc;
use std::time::Duration;
use vsync_orchestrate_api::{
    async_trait, BuildContext, Finding, Restarter, RestarterConfig, Result, SecretStore,
    StoreConfig,
};

/// Vercel's rule for variable names.
fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn positive(key: &str, d: Option<Duration>) -> Option<Finding> {
    d.is_some_and(|d| d.is_zero())
        .then(|| Finding::error(Some(key), format!("{key} must be positive")))
}

pub(crate) fn store_findings(c: &VercelStoreConfig) -> Vec<Finding> {
    let mut out = check_common(
        &c.project,
        c.team_id.as_deref(),
        &c.token_env,
        c.api_base.as_deref(),
    );
    if !valid_key(&c.key) {
        out.push(Finding::error(
            Some("key"),
            format!(
                "key {:?} is not a variable name (letters, digits, _)",
                c.key
            ),
        ));
    }
    let staged = c.staged_key();
    if !valid_key(&staged) || staged == c.key {
        out.push(Finding::error(
            Some("staged_key"),
            format!(
                "staged_key {staged:?} must be a variable name other than key (default {}_NEXT)",
                c.key
            ),
        ));
    }
    if c.git_branch.is_some() && c.target != VercelTarget::Preview {
        out.push(Finding::error(
            Some("git_branch"),
            "git_branch applies to preview variables only: set target = \"preview\"",
        ));
    }
    if c.sensitive && c.target == VercelTarget::Development {
        out.push(Finding::error(
            Some("sensitive"),
            "development variables cannot be sensitive on Vercel: set sensitive = false",
        ));
    }
    out.extend(positive("timeout", c.timeout));
    out
}

pub(crate) fn redeploy_findings(c: &VercelRedeployConfig) -> Vec<Finding> {
    let mut out = check_common(
        &c.project,
        c.team_id.as_deref(),
        &c.token_env,
        c.api_base.as_deref(),
    );
    out.extend(positive("timeout", c.timeout));
    out.extend(positive("poll_interval", Some(c.poll_interval)));
    out
}

fn team(t: &Option<String>) -> &str {
    t.as_deref().unwrap_or("personal")
}

#[async_trait]
impl StoreConfig for VercelStoreConfig {
    fn check(&self) -> Vec<Finding> {
        store_findings(self)
    }

    /// `vercel:<team>/<project>:<key>@<target>[#branch]`.
    fn identity(&self) -> String {
        let mut s = format!(
            "vercel:{}/{}:{}@{}",
            team(&self.team_id),
            self.project,
            self.key,
            self.target.as_str()
        );
        if let Some(b) = &self.git_branch {
            s.push_str(&format!("#{b}"));
        }
        s
    }

    async fn build(&self, _ctx: &BuildContext) -> Result<Arc<dyn SecretStore>> {
        Ok(Arc::new(VercelStore::new(self.clone())?))
    }
}

#[async_trait]
impl RestarterConfig for VercelRedeployConfig {
    fn check(&self) -> Vec<Finding> {
        redeploy_findings(self)
    }

    /// `vercel:<team>/<project>`.
    fn identity(&self) -> String {
        format!("vercel:{}/{}", team(&self.team_id), self.project)
    }

    fn timeout(&self) -> Duration {
        self.timeout
            .unwrap_or(VercelRedeployConfig::DEFAULT_TIMEOUT)
    }

    async fn build(&self, _ctx: &BuildContext) -> Result<Arc<dyn Restarter>> {
        Ok(Arc::new(VercelRedeploy::new(self.clone())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tables_default_check_and_build_offline_without_a_token() {
        std::env::remove_var("VSYNC_TEST_NO_SUCH_TOKEN");
        let store: VercelStoreConfig = serde_json::from_value(serde_json::json!({
            "project": "shop", "team_id": "team_abc", "token_env": "VSYNC_TEST_NO_SUCH_TOKEN"
        }))
        .unwrap();
        assert_eq!(store.key, "VSYNC_PASSPHRASE");
        assert_eq!(store.staged_key(), "VSYNC_PASSPHRASE_NEXT");
        assert_eq!(store.target, VercelTarget::Production);
        assert!(store.sensitive);
        assert!(store.check().is_empty(), "{:?}", store.check());
        assert_eq!(
            store.identity(),
            "vercel:team_abc/shop:VSYNC_PASSPHRASE@production"
        );
        let ctx = BuildContext::new();
        store.build(&ctx).await.unwrap();
        let r: VercelRedeployConfig =
            serde_json::from_value(serde_json::json!({"project": "shop", "poll_interval": "2s"}))
                .unwrap();
        assert!(r.check().is_empty());
        assert_eq!(r.timeout(), Duration::from_secs(900));
        assert_eq!(r.identity(), "vercel:personal/shop");
        r.build(&ctx).await.unwrap();
    }

    #[test]
    fn findings_name_their_key_and_unknown_keys_are_refused() {
        let mut c = VercelStoreConfig::new("shop");
        c.key = "1BAD".into();
        c.git_branch = Some("main".into());
        c.target = VercelTarget::Development;
        c.token_env = "vercel_abcdef".into();
        let keys: Vec<_> = c
            .check()
            .into_iter()
            .map(|f| f.key.unwrap_or_default())
            .collect();
        assert_eq!(
            keys,
            ["token_env", "key", "staged_key", "git_branch", "sensitive"]
        );
        assert!(serde_json::from_value::<VercelStoreConfig>(
            serde_json::json!({"project": "shop", "token": "x"})
        )
        .is_err());
    }
}
