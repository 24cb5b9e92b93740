//! The rolling restart itself.

use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use vsync_orchestrate_api::wait::{wait_before, wait_until, Step, Waited};
use vsync_orchestrate_api::{
    async_trait, Error, ErrorKind, Preflight, RestartContext, Restarter, RestarterCapabilities,
    Result, Rollout, RolloutOutcome, Target,
};
use vsync_orchestrate_http::{
    send_retrying_refused, BearerToken, Client, Method, Response, RetryRefused,
};

pub(crate) const KIND: &str = "fly";

/// The Machines API.
pub const DEFAULT_API_BASE: &str = "https://api.machines.dev";
/// Where the token is read from unless the plan names another variable.
pub const DEFAULT_TOKEN_ENV: &str = "FLY_API_TOKEN";
/// The machine metadata key that carries the run id once a machine was restarted.
pub const RUN_METADATA: &str = "vsync_orchestrate_run";

/// Process groups that are not the app's serving machines.
const NOT_SERVING: &[&str] = &[
    "fly_app_release_command",
    "fly_app_console",
    "fly_app_test_machine_command",
];

/// The plan's `[[restart]] type = "fly"` table.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Deserialize,
    serde::Serialize,
    vsync_orchestrate_api::schemars::JsonSchema,
)]
#[schemars(crate = "vsync_orchestrate_api::schemars")]
#[serde(deny_unknown_fields)]
pub struct FlyConfig {
    /// The Fly app.
    pub app: String,
    /// The environment variable holding the API token (default `FLY_API_TOKEN`).
    #[serde(default = "FlyConfig::default_token_env")]
    pub token_env: String,
    /// Another API base (a test fake, or `http://_api.internal:4280` inside 6PN).
    #[serde(default)]
    pub api_base: Option<String>,
    /// Restart only these process groups (default: every serving group).
    #[serde(default)]
    pub process_groups: Vec<String>,
    /// Machines restarted at the same time (default 1).
    #[serde(default = "FlyConfig::default_batch")]
    pub batch_size: usize,
    /// Also restart stopped and suspended machines (default: started ones only;
    /// the others read the new passphrase when they next start).
    #[serde(default)]
    pub include_stopped: bool,
    /// How long the whole rolling restart may take (default 15 minutes).
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Duration>,
    /// How often a machine's state and checks are read (default 2 s).
    #[serde(default = "FlyConfig::default_poll", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub poll_interval: Duration,
    /// The lease on each machine (default 5 minutes): longer than one machine's
    /// restart and checks.
    #[serde(default = "FlyConfig::default_lease", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub lease_ttl: Duration,
    /// How long a check may stay critical after the machine started before the
    /// machine counts as failed (default 60 s).
    #[serde(default = "FlyConfig::default_grace", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub check_grace: Duration,
}

impl FlyConfig {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(900);

    fn default_token_env() -> String {
        DEFAULT_TOKEN_ENV.to_owned()
    }
    fn default_batch() -> usize {
        1
    }
    fn default_poll() -> Duration {
        Duration::from_secs(2)
    }
    fn default_lease() -> Duration {
        Duration::from_secs(300)
    }
    fn default_grace() -> Duration {
        Duration::from_secs(60)
    }

    pub fn new(app: impl Into<String>) -> Self {
        FlyConfig {
            app: app.into(),
            token_env: Self::default_token_env(),
            api_base: None,
            process_groups: Vec::new(),
            batch_size: 1,
            include_stopped: false,
            timeout: None,
            poll_interval: Self::default_poll(),
            lease_ttl: Self::default_lease(),
            check_grace: Self::default_grace(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
struct MachineConfig {
    #[serde(default)]
    metadata: Option<HashMap<String, Value>>,
}

/// See [`Machine::checks`].
const COMPAT_CHECK_PREFIX: &str = "bg_deployments_compat";

#[derive(Debug, Clone, Deserialize)]
struct Check {
    #[serde(default)]
    name: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    output: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Event {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    timestamp: i64,
}

#[derive(Debug, Clone, Deserialize)]
struct Machine {
    id: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    region: String,
    #[serde(default)]
    config: Option<MachineConfig>,
    #[serde(default)]
    checks: Option<Vec<Check>>,
    #[serde(default)]
    events: Option<Vec<Event>>,
}

impl Machine {
    fn meta(&self, key: &str) -> Option<&str> {
        self.config.as_ref()?.metadata.as_ref()?.get(key)?.as_str()
    }

    fn group(&self) -> &str {
        self.meta("fly_process_group").unwrap_or("app")
    }

    fn label(&self) -> String {
        if self.region.is_empty() {
            format!("machine {}", self.id)
        } else {
            format!("machine {} ({})", self.id, self.region)
        }
    }

    /// The checks that judge the machine, as fly-go judges them: without the
    /// `bg_deployments_compat*` checks flaps still adds to its answers for old
    /// flyctl blue-green deploys, which are not the app's health (superfly/fly-go
    /// `machine_types.go`, `Machine.RemoveCompatChecks`, called on every machine
    /// `flaps.Client.Get` and `List` return, and by `AllHealthChecks`).
    fn checks(&self) -> Vec<&Check> {
        self.checks
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .filter(|c| !c.name.starts_with(COMPAT_CHECK_PREFIX))
            .collect()
    }

    /// The newest start or restart event's time.
    fn last_start(&self) -> i64 {
        self.events
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .filter(|e| matches!(e.kind.as_str(), "start" | "restart"))
            .map(|e| e.timestamp)
            .max()
            .unwrap_or(0)
    }

    fn last_exit(&self) -> Option<String> {
        self.events
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .filter(|e| e.kind == "exit")
            .max_by_key(|e| e.timestamp)
            .map(|e| format!("last event: exit ({})", e.status))
    }
}

#[derive(Deserialize)]
struct LeaseAnswer {
    #[serde(default)]
    data: Option<LeaseData>,
}

#[derive(Deserialize)]
struct LeaseData {
    nonce: String,
}

/// How a machine ended.
enum MachineEnd {
    Done(String),
    Failed(String),
    TimedOut(String),
}

/// What the engine and a drop guard share: the API and the leases held.
struct Inner {
    cfg: FlyConfig,
    base: String,
    client: OnceLock<Client>,
    /// machine id → nonce of the leases this instance holds now.
    leases: Mutex<BTreeMap<String, String>>,
}

/// Releases a lease when dropped without [`LeaseGuard::release`] (a wait whose
/// future was dropped): on the runtime, in the background.
struct LeaseGuard {
    inner: Arc<Inner>,
    machine: String,
    nonce: String,
    released: bool,
}

impl LeaseGuard {
    async fn release(mut self) -> Option<Error> {
        self.released = true;
        self.inner.release(&self.machine, &self.nonce).await.err()
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let (inner, machine, nonce) =
            (self.inner.clone(), self.machine.clone(), self.nonce.clone());
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            h.spawn(async move {
                let _ = inner.release(&machine, &nonce).await;
            });
        }
    }
}

/// A Fly.io app's Machines, restarted in rolling batches.
pub struct FlyRestarter {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FlyRestarter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlyRestarter")
            .field("cfg", &self.inner.cfg)
            .finish_non_exhaustive()
    }
}

fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// How often a refused request (429, or 503 with `Retry-After`) is sent again,
/// and the longest wait honoured here: three more sends, a minute at most.
const REFUSED: RetryRefused = RetryRefused {
    retries: 3,
    longest_wait: Duration::from_secs(60),
};

impl Inner {
    fn client(&self) -> Result<&Client> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        let env = &self.cfg.token_env;
        let raw = std::env::var(env).map_err(|_| {
            Error::permission(format!(
                "no Fly.io token: set {env} (`fly tokens create deploy -a {}`)",
                self.cfg.app
            ))
        })?;
        // `fly tokens create` gives `FlyV1 fm2_…`, sent as it is; older personal
        // tokens go as a bearer token.
        let token = if raw.trim_start().starts_with("FlyV1 ") {
            BearerToken::with_scheme(raw.trim_start())
        } else {
            BearerToken::new(raw)
        }
        .map_err(|e| e.context(format!("the token in {env}")))?;
        let client = Client::builder()
            .request_id_headers(&["fly-request-id", "x-request-id"])
            .bearer(token)
            .build()?;
        Ok(self.client.get_or_init(|| client))
    }

    fn machine_path(&self, id: &str, rest: &str) -> String {
        format!("/v1/apps/{}/machines/{}{rest}", seg(&self.cfg.app), seg(id))
    }

    /// One request, any answer; a 429 (or 503 with `Retry-After`) was refused,
    /// not processed, and is sent again after the wait asked for, never past the
    /// deadline.
    #[allow(clippy::too_many_arguments)]
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        nonce: Option<&str>,
        what: &str,
        deadline: Option<Instant>,
        timeout: Option<Duration>,
    ) -> Result<Response> {
        let client = self.client()?;
        let url = format!("{}{path}", self.base);
        send_retrying_refused(REFUSED, || {
            let mut req = client
                .request(method.clone(), &url)
                .what(what.to_owned())
                .query(query);
            if let Some(b) = body {
                req = req.json(b);
            }
            if let Some(n) = nonce {
                req = req.header("fly-machine-lease-nonce", n);
            }
            if let Some(d) = deadline {
                req = req.deadline(d);
            }
            if let Some(t) = timeout {
                req = req.timeout(t);
            }
            req
        })
        .await
    }

    async fn list(&self) -> Result<Vec<Machine>> {
        self.call(
            Method::GET,
            &format!("/v1/apps/{}/machines", seg(&self.cfg.app)),
            &[],
            None,
            None,
            "listing the app's machines",
            None,
            None,
        )
        .await?
        .error_for_status()?
        .json()
    }

    async fn machine(&self, id: &str, deadline: Instant) -> Result<Machine> {
        self.call(
            Method::GET,
            &self.machine_path(id, ""),
            &[],
            None,
            None,
            &format!("reading machine {id}"),
            Some(deadline),
            None,
        )
        .await?
        .error_for_status()?
        .json()
    }

    async fn release(&self, machine: &str, nonce: &str) -> Result<()> {
        let resp = self
            .call(
                Method::DELETE,
                &self.machine_path(machine, "/lease"),
                &[],
                None,
                Some(nonce),
                &format!("releasing the lease on machine {machine}"),
                None,
                Some(Duration::from_secs(15)),
            )
            .await;
        self.leases.lock().expect("poisoned").remove(machine);
        let resp = resp?;
        // Gone already (expired, or the machine was destroyed): released.
        if matches!(resp.status(), 404 | 410) {
            return Ok(());
        }
        resp.error_for_status().map(|_| ())
    }

    /// Acquires the machine's lease, waiting out one someone else holds.
    async fn lease(
        self: &Arc<Self>,
        m: &Machine,
        run: &str,
        deadline: Instant,
    ) -> Result<std::result::Result<LeaseGuard, MachineEnd>> {
        let ttl = self.cfg.lease_ttl.as_secs().max(1).to_string();
        let mut held_since: Option<Instant> = None;
        loop {
            let attempt = self
                .call(
                    Method::POST,
                    &self.machine_path(&m.id, "/lease"),
                    &[("ttl", ttl.as_str())],
                    Some(&json!({ "ttl": self.cfg.lease_ttl.as_secs().max(1), "description": format!("vsync-orchestrate run {run}") })),
                    None,
                    &format!("acquiring the lease on {}", m.label()),
                    Some(deadline),
                    None,
                )
                .await
                .and_then(|r| {
                    if r.status() == 409 {
                        Ok(None)
                    } else {
                        r.error_for_status()?.json::<LeaseAnswer>().map(Some)
                    }
                });
            let pause = match attempt {
                Ok(Some(LeaseAnswer {
                    data: Some(LeaseData { nonce }),
                })) => {
                    self.leases
                        .lock()
                        .expect("poisoned")
                        .insert(m.id.clone(), nonce.clone());
                    return Ok(Ok(LeaseGuard {
                        inner: self.clone(),
                        machine: m.id.clone(),
                        nonce,
                        released: false,
                    }));
                }
                Ok(Some(_)) => {
                    return Err(Error::failed(format!(
                        "acquiring the lease on {}: the answer holds no nonce",
                        m.label()
                    )))
                }
                // Held by someone else (a deploy, another operator): a temporary
                // conflict.
                Ok(None) => {
                    held_since.get_or_insert_with(Instant::now);
                    self.cfg.poll_interval
                }
                Err(e) if e.is_temporary() => e.wait_hint().unwrap_or(self.cfg.poll_interval),
                Err(e) => return Err(e),
            };
            let now = Instant::now();
            if now + pause >= deadline {
                let why = match held_since {
                    Some(t) => format!(
                        "{}: its lease has been held by another operation (a deploy?) for {}s",
                        m.label(),
                        t.elapsed().as_secs()
                    ),
                    None => format!("{}: the lease could not be acquired", m.label()),
                };
                return Ok(Err(MachineEnd::TimedOut(why)));
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// One machine, start to finish; the lease is released on every path.
    async fn one(self: &Arc<Self>, id: &str, run: &str, deadline: Instant) -> Result<MachineEnd> {
        let m = self.machine(id, deadline).await?;
        if m.state == "destroyed" || m.state == "destroying" {
            return Ok(MachineEnd::Done(format!(
                "{} was destroyed meanwhile",
                m.label()
            )));
        }
        // This run restarted it already (another process): only wait for it.
        if m.meta(RUN_METADATA) == Some(run) {
            return self.healthy(&m, 0, deadline).await;
        }
        let guard = match self.lease(&m, run, deadline).await? {
            Ok(g) => g,
            Err(end) => return Ok(end),
        };
        let result = self.restart_leased(&m, run, &guard.nonce, deadline).await;
        let release = guard.release().await;
        match (result, release) {
            (Ok(MachineEnd::Done(d)), Some(e)) => Ok(MachineEnd::Done(format!(
                "{d} (the lease was not released: {}; it expires by itself)",
                e.message()
            ))),
            (r, _) => r,
        }
    }

    async fn restart_leased(
        &self,
        m: &Machine,
        run: &str,
        nonce: &str,
        deadline: Instant,
    ) -> Result<MachineEnd> {
        let before = m.last_start();
        self.call(
            Method::POST,
            &self.machine_path(&m.id, "/restart"),
            &[("force_stop", "false")],
            None,
            Some(nonce),
            &format!("restarting {}", m.label()),
            Some(deadline),
            None,
        )
        .await?
        .error_for_status()?;
        // The marker: a resumed run waits for this machine instead of restarting
        // it again. Failing to write it costs at most one extra restart later.
        let _ = self
            .call(
                Method::POST,
                &self.machine_path(&m.id, &format!("/metadata/{RUN_METADATA}")),
                &[],
                Some(&json!({ "value": run })),
                Some(nonce),
                &format!("marking {}", m.label()),
                Some(deadline),
                None,
            )
            .await
            .and_then(|r| r.error_for_status());
        // `started`, through the API's own wait (it answers 408 when its timeout
        // passes first; the server caps it at 60 s).
        let waited = wait_before(deadline, self.cfg.poll_interval, (), |()| async move {
            let left = deadline.saturating_duration_since(Instant::now());
            let secs = left.as_secs().clamp(1, 60);
            let resp = self
                .call(
                    Method::GET,
                    &self.machine_path(&m.id, "/wait"),
                    &[("state", "started"), ("timeout", &secs.to_string())],
                    None,
                    None,
                    &format!("waiting for {} to start", m.label()),
                    Some(deadline),
                    Some(Duration::from_secs(secs + 10)),
                )
                .await;
            match resp {
                Ok(r) if r.is_success() => Step::Ready(Ok(())),
                Ok(r) if r.status() == 408 => Step::Pending(()),
                Ok(r) => {
                    let e = r.to_error();
                    if !e.is_temporary() && e.kind() != ErrorKind::InvalidConfig {
                        return Step::Ready(Err(e));
                    }
                    // 400: the machine is in a state `wait` does not accept
                    // (stopped, failed): the health loop says which.
                    if e.kind() == ErrorKind::InvalidConfig {
                        return Step::Ready(Ok(()));
                    }
                    Step::Pending(())
                }
                Err(e) if e.is_temporary() => Step::Pending(()),
                Err(e) => Step::Ready(Err(e)),
            }
        })
        .await;
        match waited {
            Waited::Done(r) => r?,
            Waited::TimedOut(()) => {
                return Ok(MachineEnd::TimedOut(format!(
                    "{} did not reach `started`",
                    m.label()
                )))
            }
        }
        self.healthy(m, before, deadline).await
    }

    /// Waits until the machine runs a newer start than `before` and every check
    /// passes; fails on a machine that stopped, or a check still critical after
    /// the grace period.
    async fn healthy(&self, m0: &Machine, before: i64, deadline: Instant) -> Result<MachineEnd> {
        // When the machine was first seen running its new start, and what the
        // last poll saw.
        let seen: (Option<Instant>, String) = (None, format!("{}: not read yet", m0.label()));
        let waited = wait_until(
            deadline,
            self.cfg.poll_interval,
            seen,
            |(mut started_at, mut last)| async move {
                match self.machine(&m0.id, deadline).await {
                    Ok(m) => {
                        let label = m.label();
                        match m.state.as_str() {
                            "stopped" | "failed" | "destroyed" | "destroying" | "suspended" => {
                                let exit =
                                    m.last_exit().map(|e| format!("; {e}")).unwrap_or_default();
                                return Step::Ready(Ok(MachineEnd::Failed(format!(
                                    "{label} is {} after the restart{exit}",
                                    m.state
                                ))));
                            }
                            "started" if m.last_start() > before || m.events.is_none() => {
                                let since = *started_at.get_or_insert_with(Instant::now);
                                let checks = m.checks();
                                let bad: Vec<&Check> = checks
                                    .iter()
                                    .copied()
                                    .filter(|c| c.status != "passing")
                                    .collect();
                                if bad.is_empty() {
                                    return Step::Ready(Ok(MachineEnd::Done(
                                        if checks.is_empty() {
                                            format!("{label} started (it has no checks)")
                                        } else {
                                            format!(
                                                "{label} started, {} check(s) passing",
                                                checks.len()
                                            )
                                        },
                                    )));
                                }
                                let critical: Vec<&&Check> =
                                    bad.iter().filter(|c| c.status == "critical").collect();
                                let describe = |c: &Check| {
                                    let out = c
                                        .output
                                        .as_deref()
                                        .map(|o| o.trim())
                                        .filter(|o| !o.is_empty())
                                        .map(|o| {
                                            let o: String = o.chars().take(300).collect();
                                            format!(": {o}")
                                        })
                                        .unwrap_or_default();
                                    format!("check {} is {}{out}", c.name, c.status)
                                };
                                if !critical.is_empty() && since.elapsed() >= self.cfg.check_grace {
                                    return Step::Ready(Ok(MachineEnd::Failed(format!(
                                        "{label}: {}",
                                        critical
                                            .iter()
                                            .map(|c| describe(c))
                                            .collect::<Vec<_>>()
                                            .join("; ")
                                    ))));
                                }
                                last = format!(
                                    "{label} started; {}",
                                    bad.iter()
                                        .map(|c| describe(c))
                                        .collect::<Vec<_>>()
                                        .join("; ")
                                );
                            }
                            s => last = format!("{label} is {s}"),
                        }
                    }
                    // A blip while polling is not a failed machine.
                    Err(e) if e.is_temporary() => last = format!("{last} (last poll: {e})"),
                    Err(e) => return Step::Ready(Err(e)),
                }
                Step::Pending((started_at, last))
            },
        )
        .await;
        match waited {
            Waited::Done(end) => end,
            Waited::TimedOut((_, last)) => Ok(MachineEnd::TimedOut(last)),
        }
    }

    /// The machines a rolling restart covers, and what it leaves out (for the report).
    fn select(&self, machines: Vec<Machine>) -> (Vec<Machine>, Vec<String>) {
        let mut chosen = Vec::new();
        let mut left_out = Vec::new();
        for m in machines {
            let group = m.group().to_owned();
            if NOT_SERVING.contains(&group.as_str()) {
                continue;
            }
            if !self.cfg.process_groups.is_empty() && !self.cfg.process_groups.contains(&group) {
                continue;
            }
            match m.state.as_str() {
                "started" => chosen.push(m),
                "stopped" | "suspended" if self.cfg.include_stopped => chosen.push(m),
                "destroyed" | "destroying" => {}
                s => left_out.push(format!("{} ({s})", m.id)),
            }
        }
        (chosen, left_out)
    }
}

impl FlyRestarter {
    pub fn new(cfg: FlyConfig) -> Result<Self> {
        if let Some(f) = crate::config::findings(&cfg)
            .into_iter()
            .find(|f| f.severity == vsync_orchestrate_api::Severity::Error)
        {
            return Err(Error::invalid_config(format!("fly: {}", f.message)));
        }
        let base = cfg
            .api_base
            .as_deref()
            .unwrap_or(DEFAULT_API_BASE)
            .trim_end_matches('/')
            .to_owned();
        // A credential: no child process (a restart command, a hook) inherits it.
        vsync_orchestrate_api::child_env::register(&cfg.token_env);
        Ok(FlyRestarter {
            inner: Arc::new(Inner {
                cfg,
                base,
                client: OnceLock::new(),
                leases: Mutex::default(),
            }),
        })
    }

    fn ctx(&self, e: Error) -> Error {
        e.context(format!("fly app {}", self.inner.cfg.app))
    }
}

#[async_trait]
impl Restarter for FlyRestarter {
    fn describe(&self) -> Target {
        let c = &self.inner.cfg;
        let name = if c.process_groups.is_empty() {
            c.app.clone()
        } else {
            format!("{} [{}]", c.app, c.process_groups.join(","))
        };
        Target::new(KIND, name)
    }

    /// `cancel` releases the leases this instance holds.
    fn capabilities(&self) -> RestarterCapabilities {
        RestarterCapabilities::with_cancel()
    }

    async fn preflight(&self) -> Result<Preflight> {
        let all = self.inner.list().await.map_err(|e| self.ctx(e))?;
        let total = all.len();
        let (chosen, left_out) = self.inner.select(all);
        let mut warnings = Vec::new();
        if chosen.is_empty() {
            warnings.push(format!(
                "no started machine to restart{}: stopped machines read the new passphrase \
                 when they next start",
                if self.inner.cfg.process_groups.is_empty() {
                    String::new()
                } else {
                    format!(" in {}", self.inner.cfg.process_groups.join(", "))
                }
            ));
        }
        if !left_out.is_empty() {
            warnings.push(format!(
                "not restarted (not started): {}; set include_stopped = true to restart them too",
                left_out.join(", ")
            ));
        }
        let unchecked: Vec<&str> = chosen
            .iter()
            .filter(|m| m.checks().is_empty())
            .map(|m| m.id.as_str())
            .collect();
        if !unchecked.is_empty() {
            warnings.push(format!(
                "machines without checks ({}): only `started` is waited for; add [checks] to \
                 fly.toml so a machine that cannot open the vault stops the rollout",
                unchecked.join(", ")
            ));
        }
        Ok(Preflight {
            detail: format!(
                "{} of {total} machine(s) to restart, {} at a time: {}",
                chosen.len(),
                self.inner.cfg.batch_size,
                chosen
                    .iter()
                    .map(|m| format!("{} ({}, {})", m.id, m.region, m.group()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            warnings,
            ..Default::default()
        })
    }

    /// Decides which machines the rolling restart covers; starts nothing (the
    /// restart happens machine by machine in `wait`, each marked with the run id).
    async fn restart(&self, ctx: &RestartContext) -> Result<Rollout> {
        let all = self.inner.list().await.map_err(|e| self.ctx(e))?;
        let run = ctx.run.as_str();
        let (chosen, _) = self.inner.select(all.clone());
        // Machines this run already restarted (another process) stay in, whatever
        // their state now.
        let mut ids: Vec<String> = chosen.into_iter().map(|m| m.id).collect();
        for m in &all {
            if m.meta(RUN_METADATA) == Some(run) && !ids.contains(&m.id) {
                ids.push(m.id.clone());
            }
        }
        Ok(Rollout {
            target: self.describe(),
            run: ctx.run.clone(),
            id: format!("{}@{run}", self.inner.cfg.app),
            extra: json!({ "machines": ids, "batch_size": self.inner.cfg.batch_size }),
            delivers: Default::default(),
        })
    }

    async fn wait(&self, rollout: &Rollout, deadline: Instant) -> Result<RolloutOutcome> {
        let ids: Vec<String> = rollout
            .extra
            .get("machines")
            .cloned()
            .and_then(|v| serde_json::from_value(v).ok())
            .ok_or_else(|| Error::invalid_config("the fly rollout record names no machine list"))?;
        if ids.is_empty() {
            return Ok(RolloutOutcome::Done {
                detail: "no started machine to restart".into(),
            });
        }
        let batch = self.inner.cfg.batch_size.max(1);
        let run = rollout.run.as_str();
        let mut done = Vec::new();
        for group in ids.chunks(batch) {
            // Polled together inside this future: dropping the wait drops them,
            // and their lease guards release what they hold.
            let ends = futures_util::future::join_all(
                group.iter().map(|id| self.inner.one(id, run, deadline)),
            )
            .await;
            let mut timed_out = Vec::new();
            for (id, end) in group.iter().zip(ends) {
                match end {
                    Ok(MachineEnd::Done(d)) => done.push(d),
                    Ok(MachineEnd::Failed(reason)) => {
                        return Ok(RolloutOutcome::Failed {
                            reason: format!(
                                "{reason} — rolling restart stopped there ({} of {} machine(s) \
                                 restarted before)",
                                done.len(),
                                ids.len()
                            ),
                        })
                    }
                    Ok(MachineEnd::TimedOut(d)) => timed_out.push(d),
                    Err(e) if e.is_temporary() => {
                        timed_out.push(format!("machine {id}: {}", e.message()))
                    }
                    Err(e) => return Err(self.ctx(e)),
                }
            }
            if !timed_out.is_empty() {
                return Ok(RolloutOutcome::TimedOut {
                    detail: format!(
                        "{} ({} of {} machine(s) restarted)",
                        timed_out.join("; "),
                        done.len(),
                        ids.len()
                    ),
                });
            }
        }
        Ok(RolloutOutcome::Done {
            detail: format!("{} machine(s) restarted: {}", done.len(), done.join("; ")),
        })
    }

    async fn cancel(&self, _rollout: &Rollout) -> Result<()> {
        let held: Vec<(String, String)> = self
            .inner
            .leases
            .lock()
            .expect("poisoned")
            .iter()
            .map(|(m, n)| (m.clone(), n.clone()))
            .collect();
        let mut first_error = None;
        for (m, n) in held {
            if let Err(e) = self.inner.release(&m, &n).await {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(self.ctx(e)),
            None => Ok(()),
        }
    }
}
