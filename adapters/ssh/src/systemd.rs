//! The `systemd` restarter: `systemctl restart` of units on hosts (over SSH or
//! here), confirmed by new InvocationIDs and a settle period.

use crate::config::{RestartMode, SystemdConfig};
use crate::fanout::combine_errors;
use crate::shell::{self, sudo_refused, with_sudo, RemoteShell};
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vsync_orchestrate_api::{
    Error, Preflight, RestartContext, Restarter, Result, Rollout, RolloutOutcome, Target,
};

/// The plan's `type` tag.
pub const KIND: &str = "systemd";

/// The restart marker: the rollout's plan (units, InvocationIDs before, batches),
/// written on every host before the first unit is restarted, so a `restart` with
/// the same run id from a fresh process (after a crash between starting the rollout
/// and journaling it) finds the rollout instead of restarting the units again.
///
/// It lives under the login user's state directory, never a shared one like `/tmp`
/// where another user could plant a marker and make a restart look done. Runs as
/// the login user (no sudo): `$1` is the key, `$2` `read` or `write` (the plan on
/// stdin). Markers older than a week are removed when a new one is written.
const MARKER: &str = r#"set -eu
h=${HOME:-$(getent passwd "$(id -u)" 2>/dev/null | cut -d: -f6)}
[ -n "${XDG_STATE_HOME:-}$h" ] || { echo "HOME is not set: no place for the restart marker" >&2; exit 1; }
d="${XDG_STATE_HOME:-$h/.local/state}/vsync-orchestrate/systemd"; k=$1
case "$2" in
read)
  [ -f "$d/$k.json" ] || exit 3
  exec cat -- "$d/$k.json" ;;
write)
  mkdir -p -m 700 -- "$d"
  t=$(mktemp -- "$d/.$k.XXXXXX")
  trap 'rm -f -- "$t"' EXIT
  cat >"$t"
  mv -f -- "$t" "$d/$k.json"
  trap - EXIT
  find "$d" -name '*.json' -mtime +7 -exec rm -f -- {} + 2>/dev/null || true ;;
esac
"#;

/// Restarts systemd units on one or more hosts and waits until each is
/// `active (running)` with a new InvocationID and unchanged NRestarts for the
/// settle period. A unit that fails or enters `auto-restart` is a failure, reported
/// with its last journal lines.
///
/// Globs (`myapp@*.service`) are expanded per host with
/// `systemctl list-units --all --plain --no-legend --type=service GLOB`: only units
/// systemd has loaded match, and a glob matching nothing is an error.
pub struct SystemdRestarter {
    units: Vec<String>,
    mode: RestartMode,
    settle: Duration,
    poll: Duration,
    journal_lines: String,
    sudo: bool,
    hosts: Vec<Arc<dyn RemoteShell>>,
    started: tokio::sync::Mutex<HashMap<String, Rollout>>,
}

/// One unit on one host, as journaled in [`Rollout::extra`].
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UnitRecord {
    host: String,
    unit: String,
    /// InvocationID before the restart ("" when the unit was not running).
    before: String,
    batch: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Plan {
    units: Vec<UnitRecord>,
    batches: usize,
    pause_ms: u64,
    settle_ms: u64,
}

#[derive(Debug, Clone, Default)]
struct UnitState {
    load: String,
    active: String,
    sub: String,
    nrestarts: u64,
    invocation: String,
}

impl UnitState {
    fn show(&self) -> String {
        format!("{} ({})", self.active, self.sub)
    }
}

enum Verdict {
    Settled,
    Failed(String),
    Pending(String),
}

impl SystemdRestarter {
    /// Validates `cfg` and prepares (does not open) the connections.
    pub fn new(cfg: SystemdConfig) -> Result<Self> {
        if cfg.units.is_empty() {
            return Err(Error::invalid_config("no units given"));
        }
        for u in &cfg.units {
            if !valid_unit(u) {
                return Err(Error::invalid_config(format!("invalid unit name {u:?}")));
            }
        }
        if let RestartMode::Rolling { batch_size: 0, .. } = cfg.mode {
            return Err(Error::invalid_config(
                "rolling restart needs a batch size of at least 1",
            ));
        }
        let hosts = shell::shells(&cfg.transport, &cfg.ssh)?;
        Ok(SystemdRestarter {
            units: cfg.units,
            mode: cfg.mode,
            settle: cfg.settle,
            poll: cfg.poll_interval.max(Duration::from_millis(50)),
            journal_lines: cfg.journal_lines.max(1).to_string(),
            sudo: cfg.sudo,
            hosts,
            started: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    /// The hosts, as named in messages.
    pub fn hosts(&self) -> Vec<String> {
        self.hosts.iter().map(|h| h.label().to_string()).collect()
    }

    /// Closes the master connections (they are also closed on drop).
    pub async fn close(&self) {
        join_all(self.hosts.iter().map(|h| h.close())).await;
    }

    fn host(&self, label: &str) -> Result<&dyn RemoteShell> {
        self.hosts
            .iter()
            .find(|h| h.label() == label)
            .map(|h| h.as_ref())
            .ok_or_else(|| {
                Error::invalid_config(format!("host {label} of this rollout is not in the plan"))
            })
    }

    /// The unit names on `h`: explicit names as given, globs expanded.
    async fn expand(&self, h: &dyn RemoteShell) -> Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for pattern in &self.units {
            if !pattern.contains(['*', '?', '[']) {
                if !out.contains(pattern) {
                    out.push(pattern.clone());
                }
                continue;
            }
            let o = h
                .exec(
                    &[
                        "systemctl",
                        "list-units",
                        "--all",
                        "--plain",
                        "--no-legend",
                        "--type=service",
                        pattern,
                    ],
                    None,
                )
                .await?;
            if !o.success() {
                return Err(Error::failed(format!(
                    "systemctl list-units {pattern} on {}: {}",
                    h.label(),
                    o.stderr_line()
                )));
            }
            let text = o.stdout_text();
            let mut found = 0;
            for line in text.lines() {
                let name = line
                    .split_whitespace()
                    .find(|t| !matches!(*t, "●" | "*" | "×"));
                if let Some(name) = name {
                    found += 1;
                    if !out.iter().any(|u| u == name) {
                        out.push(name.to_string());
                    }
                }
            }
            if found == 0 {
                return Err(Error::not_found(format!(
                    "{pattern} matches no loaded unit on {} (globs only match units systemd has loaded)",
                    h.label()
                )));
            }
        }
        Ok(out)
    }

    async fn show(&self, h: &dyn RemoteShell, units: &[String]) -> Result<Vec<UnitState>> {
        let mut argv = vec![
            "systemctl",
            "show",
            "--property=Id,LoadState,ActiveState,SubState,NRestarts,InvocationID",
        ];
        argv.extend(units.iter().map(String::as_str));
        let o = h.exec(&argv, None).await?;
        if !o.success() {
            return Err(Error::failed(format!(
                "systemctl show on {}: {}",
                h.label(),
                o.stderr_line()
            )));
        }
        let text = o.stdout_text();
        let mut states = Vec::new();
        let mut cur: Option<UnitState> = None;
        for line in text.lines() {
            if line.trim().is_empty() {
                if let Some(s) = cur.take() {
                    states.push(s);
                }
                continue;
            }
            let s = cur.get_or_insert_with(UnitState::default);
            if let Some((k, v)) = line.split_once('=') {
                match k {
                    "LoadState" => s.load = v.to_string(),
                    "ActiveState" => s.active = v.to_string(),
                    "SubState" => s.sub = v.to_string(),
                    "NRestarts" => s.nrestarts = v.parse().unwrap_or(0),
                    "InvocationID" => s.invocation = v.to_string(),
                    _ => {}
                }
            }
        }
        if let Some(s) = cur.take() {
            states.push(s);
        }
        if states.len() != units.len() {
            return Err(Error::failed(format!(
                "systemctl show on {} described {} units, asked for {}",
                h.label(),
                states.len(),
                units.len()
            )));
        }
        Ok(states)
    }

    async fn restart_unit(&self, h: &dyn RemoteShell, unit: &str) -> Result<()> {
        let o = h
            .exec(&with_sudo(self.sudo, &["systemctl", "restart", unit]), None)
            .await?;
        if !o.success() {
            if sudo_refused(&o.stderr) {
                return Err(Error::permission(format!(
                    "sudo -n refused `systemctl restart {unit}` on {}: {}",
                    h.label(),
                    o.stderr_line()
                )));
            }
            if o.stderr.contains("Access denied")
                || o.stderr.contains("Interactive authentication required")
            {
                return Err(Error::permission(format!(
                    "systemctl restart {unit} on {}: {} (set sudo = true?)",
                    h.label(),
                    o.stderr_line()
                )));
            }
            // The job failed (the unit did not start): `wait` reports it with the
            // unit's journal.
        }
        Ok(())
    }

    async fn journal(&self, h: &dyn RemoteShell, unit: &str) -> String {
        let argv = with_sudo(
            self.sudo,
            &[
                "journalctl",
                "-u",
                unit,
                "-n",
                &self.journal_lines,
                "--no-pager",
                "--quiet",
            ],
        );
        match h.exec(&argv, None).await {
            Ok(o) if o.success() => {
                let t = o.stdout_text();
                let lines: Vec<&str> = t.lines().filter(|l| !l.trim().is_empty()).collect();
                if lines.is_empty() {
                    "(journal has no lines for this unit)".into()
                } else {
                    lines.join("\n    ")
                }
            }
            Ok(o) => format!("(journalctl failed: {})", o.stderr_line()),
            Err(e) => format!("(journalctl failed: {})", e.message()),
        }
    }

    /// Restart the units of `batch` whose InvocationID is still the one recorded
    /// before (so a resumed wait never restarts a unit twice).
    async fn restart_batch(&self, plan: &Plan, batch: usize, only_unrestarted: bool) -> Result<()> {
        let mut per_host: BTreeMap<&str, Vec<&UnitRecord>> = BTreeMap::new();
        for u in plan.units.iter().filter(|u| u.batch == batch) {
            per_host.entry(u.host.as_str()).or_default().push(u);
        }
        let futs = per_host.into_iter().map(|(label, units)| async move {
            let h = self.host(label)?;
            let todo: Vec<&UnitRecord> = if only_unrestarted {
                let names: Vec<String> = units.iter().map(|u| u.unit.clone()).collect();
                let states = self.show(h, &names).await?;
                units
                    .into_iter()
                    .zip(states)
                    .filter(|(u, s)| s.invocation.is_empty() || s.invocation == u.before)
                    .map(|(u, _)| u)
                    .collect()
            } else {
                units
            };
            let results = join_all(todo.iter().map(|u| self.restart_unit(h, &u.unit))).await;
            results.into_iter().collect::<Result<Vec<()>>>().map(|_| ())
        });
        let labels: Vec<String> = self.hosts();
        let results = join_all(futs).await;
        let errs: Vec<(String, Error)> = results
            .into_iter()
            .filter_map(|r| r.err())
            .map(|e| {
                let l = labels
                    .iter()
                    .find(|l| e.message().contains(l.as_str()))
                    .cloned()
                    .unwrap_or_default();
                (l, e)
            })
            .collect();
        if !errs.is_empty() {
            let n = self.hosts.len().saturating_sub(errs.len());
            return Err(combine_errors("systemctl restart", errs, n));
        }
        Ok(())
    }

    /// Polls the units of one batch until each has settled or failed, or the deadline.
    async fn settle_batch(
        &self,
        units: &[&UnitRecord],
        deadline: Instant,
    ) -> Result<Vec<(usize, Verdict)>> {
        struct Track {
            first: Option<(String, u64, Instant)>,
            verdict: Option<Verdict>,
            last: String,
        }
        let mut track: Vec<Track> = units
            .iter()
            .map(|_| Track {
                first: None,
                verdict: None,
                last: "not checked".into(),
            })
            .collect();
        loop {
            let mut per_host: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
            for (i, u) in units.iter().enumerate() {
                if track[i].verdict.is_none() {
                    per_host.entry(u.host.as_str()).or_default().push(i);
                }
            }
            if per_host.is_empty() {
                break;
            }
            let polled = join_all(per_host.into_iter().map(|(label, idx)| async move {
                let h = self.host(label)?;
                let names: Vec<String> = idx.iter().map(|i| units[*i].unit.clone()).collect();
                let states = self.show(h, &names).await?;
                Ok::<_, Error>(idx.into_iter().zip(states).collect::<Vec<_>>())
            }))
            .await;
            let now = Instant::now();
            for r in polled {
                // A failed poll (network blip) is retried on the next round.
                let Ok(pairs) = r else { continue };
                for (i, s) in pairs {
                    let u = units[i];
                    let t = &mut track[i];
                    t.last = s.show();
                    let new_id = !s.invocation.is_empty() && s.invocation != u.before;
                    if s.active == "failed" || s.sub.starts_with("auto-restart") {
                        t.verdict = Some(Verdict::Failed(format!(
                            "{} (NRestarts={})",
                            s.show(),
                            s.nrestarts
                        )));
                    } else if let Some((id, nr, since)) = &t.first {
                        if &s.invocation != id || s.nrestarts > *nr {
                            t.verdict = Some(Verdict::Failed(format!(
                                "restarted again while settling: {} (NRestarts {} -> {})",
                                s.show(),
                                nr,
                                s.nrestarts
                            )));
                        } else if s.active != "active" || s.sub != "running" {
                            t.verdict = Some(Verdict::Failed(format!(
                                "left the running state: {}",
                                s.show()
                            )));
                        } else if now.duration_since(*since) >= self.settle {
                            t.verdict = Some(Verdict::Settled);
                        }
                    } else if new_id && s.active == "active" && s.sub == "running" {
                        t.first = Some((s.invocation.clone(), s.nrestarts, now));
                        if self.settle.is_zero() {
                            t.verdict = Some(Verdict::Settled);
                        }
                    } else if !new_id {
                        t.last = format!("{}, not restarted yet (same InvocationID)", s.show());
                    }
                }
            }
            if track.iter().all(|t| t.verdict.is_some()) || Instant::now() >= deadline {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(self.poll.min(left)).await;
        }
        Ok(track
            .into_iter()
            .enumerate()
            .map(|(i, t)| (i, t.verdict.unwrap_or(Verdict::Pending(t.last))))
            .collect())
    }

    /// The marker's name for `run` on this restarter: a digest of the run id, the
    /// unit patterns, the hosts and the mode, so two `[[restart]]` tables of one run
    /// on one host never share a marker.
    fn marker_key(&self, run: &str) -> String {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for part in [
            run.to_owned(),
            self.units.join("\n"),
            self.hosts().join("\n"),
            format!("{:?}", self.mode),
        ] {
            h.update(part.as_bytes());
            h.update([0u8]);
        }
        hex::encode(&h.finalize()[..16])
    }

    /// The plan of a rollout an earlier `restart` of this run started, from the first
    /// host that holds its marker. `None` when no host has one.
    async fn find_marker(&self, key: &str) -> Result<Option<Plan>> {
        let results = join_all(self.hosts.iter().map(|h| async move {
            let o = h
                .exec(
                    &["/bin/sh", "-c", MARKER, "vsync-orchestrate", key, "read"],
                    None,
                )
                .await?;
            match o.code {
                Some(0) => Ok(serde_json::from_slice::<Plan>(&o.stdout).ok()),
                Some(3) => Ok(None),
                _ => Err(Error::failed(format!(
                    "reading the restart marker on {}: {}",
                    h.label(),
                    o.stderr_line()
                ))),
            }
        }))
        .await;
        let labels = self.hosts();
        let mut errs = Vec::new();
        for (label, r) in labels.iter().zip(results) {
            match r {
                // Only a plan for exactly these hosts: anything else is not ours.
                Ok(Some(plan)) if plan.units.iter().all(|u| labels.contains(&u.host)) => {
                    return Ok(Some(plan))
                }
                Ok(_) => {}
                Err(e) => errs.push((label.clone(), e)),
            }
        }
        if errs.is_empty() {
            Ok(None)
        } else {
            // A host that cannot say whether it holds a marker cannot prove the
            // rollout has not started.
            let n = self.hosts.len() - errs.len();
            Err(combine_errors("reading the restart marker", errs, n))
        }
    }

    async fn write_marker(&self, key: &str, plan: &Plan) -> Result<()> {
        let json = serde_json::to_vec(plan)
            .map_err(|e| Error::failed("recording the rollout").with_source(e))?;
        let json = &json[..];
        let results = join_all(self.hosts.iter().map(|h| async move {
            let o = h
                .exec(
                    &["/bin/sh", "-c", MARKER, "vsync-orchestrate", key, "write"],
                    Some(json),
                )
                .await?;
            if o.success() {
                Ok(())
            } else {
                Err(Error::failed(format!(
                    "writing the restart marker on {}: {}",
                    h.label(),
                    o.stderr_line()
                )))
            }
        }))
        .await;
        let errs: Vec<(String, Error)> = self
            .hosts()
            .into_iter()
            .zip(results)
            .filter_map(|(l, r)| r.err().map(|e| (l, e)))
            .collect();
        if errs.is_empty() {
            Ok(())
        } else {
            let n = self.hosts.len() - errs.len();
            Err(combine_errors("writing the restart marker", errs, n))
        }
    }

    async fn make_plan(&self) -> Result<Plan> {
        let results = join_all(self.hosts.iter().map(|h| async move {
            let units = self.expand(h.as_ref()).await?;
            let states = self.show(h.as_ref(), &units).await?;
            Ok::<_, Error>((h.label().to_string(), units, states))
        }))
        .await;
        let mut units = Vec::new();
        let mut errs = Vec::new();
        for (h, r) in self.hosts.iter().zip(results) {
            match r {
                Ok((label, names, states)) => {
                    for (unit, s) in names.into_iter().zip(states) {
                        units.push(UnitRecord {
                            host: label.clone(),
                            unit,
                            before: s.invocation,
                            batch: 0,
                        });
                    }
                }
                Err(e) => errs.push((h.label().to_string(), e)),
            }
        }
        if !errs.is_empty() {
            let n = self.hosts.len() - errs.len();
            return Err(combine_errors("listing units", errs, n));
        }
        let (batches, pause) = match self.mode {
            RestartMode::Parallel => (1, Duration::ZERO),
            RestartMode::Rolling { batch_size, pause } => {
                for (i, u) in units.iter_mut().enumerate() {
                    u.batch = i / batch_size;
                }
                (units.len().div_ceil(batch_size).max(1), pause)
            }
        };
        Ok(Plan {
            units,
            batches,
            pause_ms: pause.as_millis() as u64,
            settle_ms: self.settle.as_millis() as u64,
        })
    }
}

#[async_trait::async_trait]
impl Restarter for SystemdRestarter {
    /// A restart systemd already began cannot be called back: no `cancel`.
    fn capabilities(&self) -> vsync_orchestrate_api::RestarterCapabilities {
        vsync_orchestrate_api::RestarterCapabilities::default()
    }

    fn describe(&self) -> Target {
        Target::new(
            KIND,
            format!("{} on {}", self.units.join(", "), self.hosts().join(", ")),
        )
    }

    async fn preflight(&self) -> Result<Preflight> {
        let connected = join_all(self.hosts.iter().map(|h| h.connect())).await;
        let failed: Vec<_> = self
            .hosts
            .iter()
            .zip(connected)
            .filter_map(|(h, r)| r.err().map(|e| (h.label().to_string(), e)))
            .collect();
        if !failed.is_empty() {
            let n = self.hosts.len() - failed.len();
            return Err(combine_errors("connecting", failed, n));
        }
        let results = join_all(self.hosts.iter().map(|h| async move {
            let h = h.as_ref();
            let units = self.expand(h).await?;
            let states = self.show(h, &units).await?;
            let mut warnings = Vec::new();
            for (u, s) in units.iter().zip(&states) {
                match s.load.as_str() {
                    "loaded" => {}
                    "not-found" => {
                        return Err(Error::not_found(format!(
                            "unit {u} not found on {}",
                            h.label()
                        )))
                    }
                    "masked" => {
                        return Err(Error::unsupported(format!(
                            "unit {u} is masked on {}",
                            h.label()
                        )))
                    }
                    other => {
                        return Err(Error::invalid_config(format!(
                            "unit {u} on {} is {other}",
                            h.label()
                        )));
                    }
                }
                if s.active != "active" {
                    warnings.push(format!(
                        "{u} on {} is {} (restart will start it)",
                        h.label(),
                        s.show()
                    ));
                }
                if self.sudo {
                    let o = h
                        .exec(&["sudo", "-n", "-l", "systemctl", "restart", u], None)
                        .await?;
                    if !o.success() {
                        return Err(Error::permission(format!(
                            "sudo -n does not allow `systemctl restart {u}` on {}: {}",
                            h.label(),
                            o.stderr_line()
                        )));
                    }
                }
            }
            Ok::<_, Error>((units, warnings))
        }))
        .await;
        let mut warnings = Vec::new();
        let mut lines = Vec::new();
        let mut errs = Vec::new();
        let mut total = 0;
        for (h, r) in self.hosts.iter().zip(results) {
            match r {
                Ok((units, w)) => {
                    total += units.len();
                    lines.push(format!("{}: {}", h.label(), units.join(" ")));
                    warnings.extend(w);
                }
                Err(e) => errs.push((h.label().to_string(), e)),
            }
        }
        if !errs.is_empty() {
            let n = self.hosts.len() - errs.len();
            return Err(combine_errors("preflight", errs, n));
        }
        Ok(Preflight {
            detail: format!("{total} units ({})", lines.join("; ")),
            warnings,
            ..Default::default()
        })
    }

    /// Idempotent per run id across processes: the marker written before the first
    /// restart tells a fresh instance which rollout this run started; it then only
    /// restarts the units of the first batch that still run their old invocation.
    async fn restart(&self, ctx: &RestartContext) -> Result<Rollout> {
        let run = &ctx.run;
        let mut started = self.started.lock().await;
        if let Some(r) = started.get(run.as_str()) {
            return Ok(r.clone());
        }
        let key = self.marker_key(run.as_str());
        let plan = match self.find_marker(&key).await? {
            Some(plan) => {
                self.restart_batch(&plan, 0, true).await?;
                plan
            }
            None => {
                let plan = self.make_plan().await?;
                self.write_marker(&key, &plan).await?;
                self.restart_batch(&plan, 0, false).await?;
                plan
            }
        };
        let rollout = Rollout {
            target: self.describe(),
            run: run.clone(),
            id: format!("{run}/{}-units", plan.units.len()),
            extra: serde_json::to_value(&plan)
                .map_err(|e| Error::failed("recording the rollout").with_source(e))?,
            // The units read the file the store switched when they start.
            delivers: Default::default(),
        };
        started.insert(run.as_str().to_string(), rollout.clone());
        Ok(rollout)
    }

    async fn wait(&self, rollout: &Rollout, deadline: Instant) -> Result<RolloutOutcome> {
        let plan: Plan = serde_json::from_value(rollout.extra.clone()).map_err(|e| {
            Error::invalid_config("this rollout was not started by the systemd restarter")
                .with_source(e)
        })?;
        let pause = Duration::from_millis(plan.pause_ms);
        let mut settled = 0;
        for batch in 0..plan.batches {
            if batch > 0 && !pause.is_zero() {
                tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now())))
                    .await;
            }
            // Batch 0 was restarted by `restart`; this only catches a unit whose
            // restart never happened (a resumed run).
            self.restart_batch(&plan, batch, true).await?;
            let units: Vec<&UnitRecord> = plan.units.iter().filter(|u| u.batch == batch).collect();
            let verdicts = self.settle_batch(&units, deadline).await?;
            let mut failed = Vec::new();
            let mut pending = Vec::new();
            for (i, v) in verdicts {
                let u = units[i];
                match v {
                    Verdict::Settled => settled += 1,
                    Verdict::Failed(why) => failed.push((u, why)),
                    Verdict::Pending(state) => {
                        pending.push(format!("{} on {}: {state}", u.unit, u.host))
                    }
                }
            }
            if !failed.is_empty() {
                let mut parts = Vec::new();
                for (u, why) in failed {
                    let journal = match self.host(&u.host) {
                        Ok(h) => self.journal(h, &u.unit).await,
                        Err(e) => e.message().to_string(),
                    };
                    parts.push(format!(
                        "{} on {} failed: {why}; last journal lines:\n    {journal}",
                        u.unit, u.host
                    ));
                }
                let untouched = plan.units.iter().filter(|u| u.batch > batch).count();
                let mut reason = parts.join("\n");
                if untouched > 0 {
                    reason.push_str(&format!("\n{untouched} later units were not restarted"));
                }
                return Ok(RolloutOutcome::Failed { reason });
            }
            if !pending.is_empty() {
                return Ok(RolloutOutcome::TimedOut {
                    detail: format!(
                        "{} units settled; still waiting for {}",
                        settled,
                        pending.join("; ")
                    ),
                });
            }
        }
        let hosts: std::collections::BTreeSet<&str> =
            plan.units.iter().map(|u| u.host.as_str()).collect();
        Ok(RolloutOutcome::Done {
            detail: format!(
                "{settled} units on {} host{} restarted: active (running) with new InvocationIDs, stable for {}s",
                hosts.len(),
                if hosts.len() == 1 { "" } else { "s" },
                plan.settle_ms as f64 / 1000.0
            ),
        })
    }
}

fn valid_unit(u: &str) -> bool {
    !u.is_empty()
        && !u.starts_with('-')
        && u.len() <= 256
        && u.chars()
            .all(|c| c.is_ascii_alphanumeric() || ":-_.\\@*?[]".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Transport;
    use vsync_orchestrate_api::ErrorKind;

    #[test]
    fn unit_names_are_validated() {
        assert!(valid_unit("myapp@*.service"));
        assert!(valid_unit("demo@a.service"));
        assert!(!valid_unit("--all"));
        assert!(!valid_unit("a b.service"));
        assert!(!valid_unit("x;rm.service"));
        let cfg = SystemdConfig::new(Transport::Local, vec![]);
        assert_eq!(
            SystemdRestarter::new(cfg).err().unwrap().kind(),
            ErrorKind::InvalidConfig
        );
        let mut cfg = SystemdConfig::new(Transport::Local, vec!["a.service".into()]);
        cfg.mode = RestartMode::Rolling {
            batch_size: 0,
            pause: Duration::ZERO,
        };
        assert!(SystemdRestarter::new(cfg).is_err());
    }
}
