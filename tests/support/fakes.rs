//! In-memory store and restarter for engine tests: they record every call, can be
//! told to fail, and can look at the vault when called (to prove ordering).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use vsync_orchestrate::api::{
    async_trait, Error, Passphrase, Preflight, RestartContext, Restarter, Result, Rollout,
    RolloutOutcome, RunId, SecretStore, Staged, Target,
};
use vsync_orchestrate::vault::Vault;

pub type Log = Arc<Mutex<Vec<String>>>;

pub struct MemStore {
    pub name: String,
    pub log: Log,
    pub current: Mutex<Passphrase>,
    pub staged: Mutex<Option<(String, Passphrase)>>,
    pub fail_stage: AtomicBool,
    /// How many activate calls fail (with a temporary error after the first... no:
    /// with a permission error, which the engine does not retry).
    pub fail_activate: AtomicUsize,
    /// Pointer stamp the vault showed at stage and at activate time.
    pub vault: Option<Vault>,
    pub seen_pointer: Mutex<Vec<(String, String)>>,
    /// Runs inside `stage`, to simulate someone else acting meanwhile.
    pub on_stage: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    /// Runs inside `activate` (between T0 and T1), e.g. to deliver a signal there.
    pub on_activate: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    /// How many activate calls never answer (a stalled request).
    pub stall_activate: AtomicUsize,
    /// A stalled activate applies the switch first: its answer is what is lost.
    pub stall_after_applying: AtomicBool,
    /// What `current` becomes right after the next read: someone else rotating
    /// between two reads of this run's.
    pub next_current: Mutex<Option<Passphrase>>,
    /// Its value reaches new deployments only (as a Vercel variable's does).
    pub on_redeploy: AtomicBool,
    /// What its next preflight answers instead of passing.
    pub preflight_error: Mutex<Option<vsync_orchestrate::api::Error>>,
}

impl MemStore {
    pub fn new(name: &str, current: &str, log: &Log, vault: Option<Vault>) -> Arc<MemStore> {
        Arc::new(MemStore {
            name: name.into(),
            log: log.clone(),
            current: Mutex::new(Passphrase::from(current)),
            staged: Mutex::new(None),
            fail_stage: AtomicBool::new(false),
            fail_activate: AtomicUsize::new(0),
            vault,
            seen_pointer: Mutex::new(vec![]),
            on_stage: Mutex::new(None),
            on_activate: Mutex::new(None),
            stall_activate: AtomicUsize::new(0),
            stall_after_applying: AtomicBool::new(false),
            next_current: Mutex::new(None),
            on_redeploy: AtomicBool::new(false),
            preflight_error: Mutex::new(None),
        })
    }

    fn note(&self, what: &str) {
        self.log
            .lock()
            .unwrap()
            .push(format!("{}:{what}", self.name));
    }

    async fn look(&self, when: &str) {
        if let Some(v) = &self.vault {
            let stamp = v
                .status()
                .await
                .unwrap()
                .map(|s| s.stamp)
                .unwrap_or_default();
            self.seen_pointer.lock().unwrap().push((when.into(), stamp));
        }
    }

    pub fn current(&self) -> Passphrase {
        self.current.lock().unwrap().clone()
    }
}

#[async_trait]
impl SecretStore for MemStore {
    fn capabilities(&self) -> vsync_orchestrate::api::StoreCapabilities {
        let all = vsync_orchestrate::api::StoreCapabilities::ALL;
        if self.on_redeploy.load(Ordering::SeqCst) {
            all.delivered(vsync_orchestrate::api::Delivery::OnRedeploy)
        } else {
            all
        }
    }

    fn describe(&self) -> Target {
        Target::new("memory", self.name.clone())
    }
    async fn preflight(&self) -> Result<Preflight> {
        self.note("preflight");
        if let Some(e) = self.preflight_error.lock().unwrap().take() {
            return Err(e);
        }
        Ok(Preflight {
            detail: "in memory".into(),
            warnings: vec![],
            ..Default::default()
        })
    }
    async fn read_current(&self) -> Result<Option<Passphrase>> {
        self.note("read_current");
        let now = self.current();
        if let Some(next) = self.next_current.lock().unwrap().take() {
            *self.current.lock().unwrap() = next;
        }
        Ok(Some(now))
    }
    async fn stage(&self, new: &Passphrase, run: &RunId) -> Result<Staged> {
        self.note("stage");
        self.look("stage").await;
        if let Some(f) = self.on_stage.lock().unwrap().take() {
            f();
        }
        if self.fail_stage.load(Ordering::SeqCst) {
            return Err(Error::permission("the fake refuses to stage"));
        }
        *self.staged.lock().unwrap() = Some((run.to_string(), new.clone()));
        Ok(Staged {
            target: self.describe(),
            run: run.clone(),
            version: format!("v-{run}"),
            previous: None,
            extra: serde_json::Value::Null,
        })
    }
    async fn read_staged(&self, _staged: &Staged) -> Result<Passphrase> {
        self.staged
            .lock()
            .unwrap()
            .as_ref()
            .map(|(_, p)| p.clone())
            .ok_or_else(|| Error::not_found("nothing staged"))
    }
    async fn activate(&self, _staged: &Staged) -> Result<()> {
        self.note("activate");
        self.look("activate").await;
        if let Some(f) = self.on_activate.lock().unwrap().take() {
            f();
        }
        if self.fail_activate.load(Ordering::SeqCst) > 0 {
            self.fail_activate.fetch_sub(1, Ordering::SeqCst);
            return Err(Error::permission("the fake refuses to activate"));
        }
        if self.stall_activate.load(Ordering::SeqCst) > 0 {
            self.stall_activate.fetch_sub(1, Ordering::SeqCst);
            if self.stall_after_applying.load(Ordering::SeqCst) {
                if let Some((_, p)) = self.staged.lock().unwrap().take() {
                    *self.current.lock().unwrap() = p;
                }
            }
            std::future::pending::<()>().await;
        }
        if let Some((_, p)) = self.staged.lock().unwrap().take() {
            *self.current.lock().unwrap() = p;
        }
        Ok(())
    }
    async fn discard(&self, _staged: &Staged) -> Result<()> {
        self.note("discard");
        *self.staged.lock().unwrap() = None;
        Ok(())
    }
    fn activate_hint(&self, staged: &Staged) -> Option<String> {
        Some(format!("memctl activate {} {}", self.name, staged.version))
    }
}

pub struct MemRestarter {
    pub log: Log,
    pub fail: AtomicBool,
    /// How many rollouts were started, across every instance sharing it.
    pub restarts: Arc<AtomicUsize>,
    /// How long each `wait` takes (a rollout in progress).
    pub takes: Mutex<std::time::Duration>,
    /// What each `restart` saw of the activated stores.
    pub seen: Mutex<Vec<RestartContext>>,
    /// Whether its rollouts are on the passphrase's way into new processes.
    pub delivers: Mutex<vsync_orchestrate::api::Delivers>,
    /// How long `restart` takes before it returns (an ExternalSecret syncing).
    pub restart_takes: Mutex<std::time::Duration>,
}

impl MemRestarter {
    pub fn new(log: &Log) -> Arc<MemRestarter> {
        Self::counting(log, Default::default())
    }

    /// A fresh instance (as after a crash) counting restarts on the same platform.
    pub fn counting(log: &Log, restarts: Arc<AtomicUsize>) -> Arc<MemRestarter> {
        Arc::new(MemRestarter {
            log: log.clone(),
            fail: false.into(),
            restarts,
            takes: Mutex::new(std::time::Duration::ZERO),
            seen: Mutex::new(vec![]),
            delivers: Mutex::new(Default::default()),
            restart_takes: Mutex::new(std::time::Duration::ZERO),
        })
    }
}

#[async_trait]
impl Restarter for MemRestarter {
    fn describe(&self) -> Target {
        Target::new("memory-restart", "apps")
    }
    fn capabilities(&self) -> vsync_orchestrate::api::RestarterCapabilities {
        vsync_orchestrate::api::RestarterCapabilities::default()
            .delivering(*self.delivers.lock().unwrap())
    }
    async fn preflight(&self) -> Result<Preflight> {
        self.log.lock().unwrap().push("restarter:preflight".into());
        Ok(Preflight::default())
    }
    async fn restart(&self, ctx: &RestartContext) -> Result<Rollout> {
        self.log.lock().unwrap().push("restarter:restart".into());
        self.restarts.fetch_add(1, Ordering::SeqCst);
        self.seen.lock().unwrap().push(ctx.clone());
        let takes = *self.restart_takes.lock().unwrap();
        tokio::time::sleep(takes).await;
        Ok(Rollout::new(self.describe(), ctx.run.clone(), "r1")
            .delivering(*self.delivers.lock().unwrap()))
    }
    async fn wait(&self, _r: &Rollout, _deadline: Instant) -> Result<RolloutOutcome> {
        self.log.lock().unwrap().push("restarter:wait".into());
        let takes = *self.takes.lock().unwrap();
        tokio::time::sleep(takes).await;
        Ok(if self.fail.load(Ordering::SeqCst) {
            RolloutOutcome::Failed {
                reason: "the fake rollout failed".into(),
            }
        } else {
            RolloutOutcome::Done {
                detail: "ok".into(),
            }
        })
    }
}
