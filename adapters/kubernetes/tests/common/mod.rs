//! Shared by the test files: a fake cluster, a kubeconfig naming it, a restarter.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use vsync_orchestrate_api::{RestartContext, Restarter, RunId, SecretStore};
use vsync_orchestrate_kubernetes::{
    KubernetesConfig, KubernetesRestarter, KubernetesSecretConfig, KubernetesSecretStore,
};
#[allow(unused_imports)]
pub use vsync_orchestrate_kubernetes_fake::{kubeconfig, FakeCluster, Res, Rule, Script};

pub const NS: &str = "shop";

/// A fake cluster with a kubeconfig file whose context `ctx` points at it.
pub struct Env {
    pub fake: FakeCluster,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    pub context: String,
}

impl Env {
    pub async fn new(context: &str) -> Env {
        let fake = FakeCluster::start().await;
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            kubeconfig_text(&[(context, &fake.url())], context),
        )
        .unwrap();
        Env {
            fake,
            dir,
            kubeconfig,
            context: context.to_owned(),
        }
    }

    /// A table for this cluster's namespace `shop`, fast polls for tests.
    pub fn config(&self) -> KubernetesConfig {
        let mut c = KubernetesConfig::new(NS);
        c.kubeconfig = Some(self.kubeconfig.clone());
        c.context = Some(self.context.clone());
        c.poll_interval = Duration::from_millis(50);
        c.resync = Duration::from_secs(2);
        c
    }

    pub fn restarter(&self, c: KubernetesConfig) -> Arc<dyn Restarter> {
        Arc::new(KubernetesRestarter::new(c).unwrap())
    }

    /// A `kubernetes_secret` table for `secret` in this cluster's namespace.
    pub fn secret_config(&self, secret: &str) -> KubernetesSecretConfig {
        let mut c = KubernetesSecretConfig::new(NS, secret);
        c.kubeconfig = Some(self.kubeconfig.clone());
        c.context = Some(self.context.clone());
        c
    }

    pub fn secret_store(&self, c: KubernetesSecretConfig) -> Arc<dyn SecretStore> {
        Arc::new(KubernetesSecretStore::new(c).unwrap())
    }

    pub fn deployments(&self, names: &[&str]) -> Arc<dyn Restarter> {
        let mut c = self.config();
        c.deployments = names.iter().map(|s| s.to_string()).collect();
        self.restarter(c)
    }
}

pub fn kubeconfig_text(contexts: &[(&str, &str)], current: &str) -> String {
    kubeconfig(contexts, NS, current)
}

pub fn run(id: &str) -> RestartContext {
    RestartContext::new(RunId(format!("{id}-{}", std::process::id())))
}

pub fn soon() -> std::time::Instant {
    std::time::Instant::now() + Duration::from_secs(20)
}
