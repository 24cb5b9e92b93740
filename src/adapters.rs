//! The one root file that names adapters: one line each, with the cargo feature
//! that builds it. Everything else (the plan's `[[store]]` / `[[restart]]` tables,
//! `validate`, building the parts) goes through the enums generated here and the
//! `StoreConfig` / `RestarterConfig` traits, so adding an adapter is a new crate,
//! a line below and a feature in `Cargo.toml`.

use std::sync::Arc;
use std::time::Duration;
use vsync_orchestrate_api::{
    BuildContext, Restarter, RestarterConfig, Result, SecretStore, StoreConfig,
};

/// Generates `StoreSpec` / `RestartSpec` (a `type`-tagged enum over the adapters'
/// own config types, one variant per built adapter), the tables of all known type
/// names with their features, and the accessors.
macro_rules! registry {
    (
        stores { $($sv:ident = $st:literal, $sf:literal, $sc:ty;)* }
        restarters { $($rv:ident = $rt:literal, $rf:literal, $rc:ty;)* }
    ) => {
        /// A `[[store]]` table: the adapter's own config, picked by `type`.
        #[derive(Debug, Clone, serde::Deserialize, serde::Serialize, vsync_orchestrate_api::schemars::JsonSchema)]
        #[schemars(crate = "vsync_orchestrate_api::schemars")]
        #[serde(tag = "type")]
        pub enum StoreSpec {
            $(#[cfg(feature = $sf)] #[serde(rename = $st)] $sv($sc),)*
        }

        /// A `[[restart]]` table.
        #[derive(Debug, Clone, serde::Deserialize, serde::Serialize, vsync_orchestrate_api::schemars::JsonSchema)]
        #[schemars(crate = "vsync_orchestrate_api::schemars")]
        #[serde(tag = "type")]
        pub enum RestartSpec {
            $(#[cfg(feature = $rf)] #[serde(rename = $rt)] $rv($rc),)*
        }

        /// Every store type and the feature that builds it.
        pub const STORES: &[(&str, &str)] = &[$(($st, $sf)),*];
        /// Every restarter type and the feature that builds it.
        pub const RESTARTERS: &[(&str, &str)] = &[$(($rt, $rf)),*];
        const STORES_BUILT: &[&str] = &[$(#[cfg(feature = $sf)] $st),*];
        const RESTARTERS_BUILT: &[&str] = &[$(#[cfg(feature = $rf)] $rt),*];

        impl StoreSpec {
            pub fn type_name(&self) -> &'static str {
                match *self {
                    $(#[cfg(feature = $sf)] StoreSpec::$sv(_) => $st,)*
                }
            }

            pub fn config(&self) -> &dyn StoreConfig {
                match *self {
                    $(#[cfg(feature = $sf)] StoreSpec::$sv(ref c) => c,)*
                }
            }
        }

        impl RestartSpec {
            pub fn type_name(&self) -> &'static str {
                match *self {
                    $(#[cfg(feature = $rf)] RestartSpec::$rv(_) => $rt,)*
                }
            }

            pub fn config(&self) -> &dyn RestarterConfig {
                match *self {
                    $(#[cfg(feature = $rf)] RestartSpec::$rv(ref c) => c,)*
                }
            }
        }
    };
}

registry! {
    stores {
        File = "file", "local", vsync_orchestrate_local::FileStoreConfig;
        AwsSecretsManager = "aws_secrets_manager", "aws", vsync_orchestrate_aws::SecretsManagerConfig;
        VpsFile = "vps_file", "ssh", vsync_orchestrate_ssh::VpsFileTable;
        GcpSecretManager = "gcp_secret_manager", "gcp", vsync_orchestrate_gcp::SecretManagerConfig;
        Vercel = "vercel", "vercel", vsync_orchestrate_vercel::VercelStoreConfig;
        KubernetesSecret = "kubernetes_secret", "kubernetes", vsync_orchestrate_kubernetes::KubernetesSecretConfig;
    }
    restarters {
        Command = "command", "local", vsync_orchestrate_local::CommandRestarterConfig;
        Ecs = "ecs", "aws", vsync_orchestrate_aws::EcsConfig;
        Systemd = "systemd", "ssh", vsync_orchestrate_ssh::SystemdTable;
        CloudRun = "cloud_run", "gcp", vsync_orchestrate_gcp::CloudRunConfig;
        Kubernetes = "kubernetes", "kubernetes", vsync_orchestrate_kubernetes::KubernetesConfig;
        VercelRedeploy = "vercel", "vercel", vsync_orchestrate_vercel::VercelRedeployConfig;
        Fly = "fly", "fly", vsync_orchestrate_fly::FlyConfig;
    }
}

/// Every adapter this source tree knows, built or not: `(type, kind, feature)`.
pub fn known() -> impl Iterator<Item = (&'static str, &'static str, &'static str)> {
    STORES
        .iter()
        .map(|(t, f)| (*t, "store", *f))
        .chain(RESTARTERS.iter().map(|(t, f)| (*t, "restarter", *f)))
}

/// Why `type = "…"` cannot be used in this build, if the tree knows it: the
/// feature to enable.
pub fn not_built(type_name: &str) -> Option<String> {
    let built = STORES_BUILT.contains(&type_name) || RESTARTERS_BUILT.contains(&type_name);
    if built {
        return None;
    }
    known().find(|(t, _, _)| *t == type_name).map(|(t, _, f)| {
        format!(
            "`type = \"{t}\"` needs a build with the `{f}` feature (cargo build --features {f})"
        )
    })
}

impl StoreSpec {
    pub async fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn SecretStore>> {
        self.config().build(ctx).await
    }
}

impl RestartSpec {
    pub async fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn Restarter>> {
        self.config().build(ctx).await
    }

    /// The deadline the engine gives this restarter's rollout.
    pub fn timeout(&self) -> Duration {
        self.config().timeout()
    }
}
