//! The runbook as code: preflight → stage → rotate → activate → restart → verify.
//!
//! The engine never names a cloud: it drives `SecretStore`s and `Restarter`s, the
//! vault, a journal and a lock. What it optimises is the window between the
//! pointer swap (T0) and the last store's activation (T1): everything slow (key
//! derivation, uploads, connection set-up) happens before T0, and activation is
//! one concurrent round of already-warm requests.

pub mod build;
#[cfg(feature = "aws")]
mod build_aws;
pub mod exit;
pub mod health;
pub mod journal;
pub mod lock;
pub mod secrets;

use crate::plan::LoadedPlan;
use crate::report::{fmt_ms, ms, Progress, Summary, TargetResult};
use crate::vault::{audit, AuditOutcome, AuditSpec, Inspection, RotateError, Stamp, Vault};
pub use exit::Exit;
use futures_util::future::join_all;
use journal::{Journal, Phase};
use lock::Lock;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use vsync_orchestrate_api::{Passphrase, Restarter, RunId, SecretStore, Staged};

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Never prompt; fail where a prompt would be needed.
    pub yes: bool,
    pub state_dir: PathBuf,
    /// Ignore `[schedule] min_age`.
    pub force: bool,
    pub lock_ttl: Duration,
    /// Remove staged versions abandoned by an earlier run before preflight.
    pub clean_stale: bool,
}

impl RunOptions {
    pub fn new(state_dir: PathBuf) -> Self {
        RunOptions {
            yes: false,
            state_dir,
            force: false,
            lock_ttl: Duration::from_secs(3600),
            clean_stale: false,
        }
    }
}

/// Fault injection for the crash tests: `VSYNC_ORCHESTRATE_CRASH_AT=<phase>` ends
/// the process abruptly right after the journal records that phase (e.g.
/// `committing`: bundle uploaded, pointer not yet swapped), the way a kill -9 would.
fn crash_point(phase: Phase) {
    static WANT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if let Some(want) = WANT.get_or_init(|| std::env::var("VSYNC_ORCHESTRATE_CRASH_AT").ok()) {
        let name = serde_json::to_value(phase)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned));
        if name.as_deref() == Some(want.as_str()) {
            eprintln!("VSYNC_ORCHESTRATE_CRASH_AT={want}: crashing on purpose");
            std::process::abort();
        }
    }
}

/// Set by the signal handler; checked at every step boundary before T0.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub fn new_run_id() -> RunId {
    let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let compact: String = now.chars().filter(|c| *c != '-' && *c != ':').collect();
    let mut r = [0u8; 3];
    getrandom::fill(&mut r).expect("OS random source");
    RunId(format!(
        "{}-{}",
        compact,
        r.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

struct Ctx<'a> {
    dry_run: bool,
    loaded: &'a LoadedPlan,
    opts: &'a RunOptions,
    p: &'a Progress,
    s: Summary,
    journal: Option<Journal>,
}

impl Ctx<'_> {
    fn target(
        &mut self,
        phase: &str,
        t: &vsync_orchestrate_api::Target,
        ok: bool,
        detail: String,
        took: Duration,
    ) {
        if ok {
            self.p.ok(&t.to_string(), &detail, took);
        } else {
            self.p.fail(&t.to_string(), &detail, took);
        }
        self.s.targets.push(TargetResult {
            phase: phase.into(),
            kind: t.kind.clone(),
            name: t.name.clone(),
            ok,
            detail,
            ms: ms(took),
        });
    }

    fn end(&mut self, exit: Exit, why: impl Into<String>) -> Summary {
        self.s.exit_code = exit.code();
        let why = why.into();
        self.s.outcome = if why.is_empty() {
            exit.meaning().to_owned()
        } else {
            why
        };
        if let Some(j) = self.journal.as_mut() {
            j.exit_code = Some(exit.code());
            j.timings_ms = self.s.phases_ms.clone();
            if let Some(w) = self.s.window_ms {
                j.timings_ms.insert("window".into(), w);
            }
            if let Ok(path) = j.save(&self.opts.state_dir) {
                self.s.journal = Some(path.display().to_string());
            }
        }
        std::mem::take(&mut self.s)
    }

    fn save(&mut self) {
        if let Some(j) = self.journal.as_mut() {
            if let Err(e) = j.save(&self.opts.state_dir) {
                self.p.warn(&format!("could not write the journal: {e}"));
            }
            crash_point(j.phase);
        }
    }

    fn phase_done(&mut self, name: &str, began: Instant) {
        self.s.phases_ms.insert(name.into(), ms(began.elapsed()));
    }
}

/// Everything preflight established, handed to the writing phases.
struct Ready {
    vault: Vault,
    stores: Vec<Arc<dyn SecretStore>>,
    restarters: Vec<(Arc<dyn Restarter>, Duration)>,
    inspection: Inspection,
    new: Passphrase,
}

fn base_summary(loaded: &LoadedPlan, command: &str, run: &RunId) -> Summary {
    Summary {
        run_id: run.to_string(),
        command: format!("{command} {}", loaded.path.display()),
        env: loaded.plan.env.clone(),
        warnings: loaded.warnings.iter().map(|w| w.message.clone()).collect(),
        ..Default::default()
    }
}

/// The summary of a command whose plan could not be turned into working parts.
fn unbuildable(
    loaded: &LoadedPlan,
    opts: &RunOptions,
    p: &Progress,
    command: &str,
    e: build::BuildError,
) -> Summary {
    let s = base_summary(loaded, command, &new_run_id());
    let mut cx = Ctx {
        loaded,
        opts,
        p,
        s,
        journal: None,
        dry_run: false,
    };
    cx.end(Exit::BadInput, e.0)
}

/// `run`: the whole rotation. `dry_run` stops after preflight and lists the writes.
pub async fn run(loaded: &LoadedPlan, opts: &RunOptions, p: &Progress, dry_run: bool) -> Summary {
    match build::parts(loaded).await {
        Ok(parts) => run_with(loaded, parts, opts, p, dry_run).await,
        Err(e) => unbuildable(loaded, opts, p, if dry_run { "plan" } else { "run" }, e),
    }
}

/// `run` with parts built elsewhere: tests inject in-memory stores and restarters.
pub async fn run_with(
    loaded: &LoadedPlan,
    parts: build::Parts,
    opts: &RunOptions,
    p: &Progress,
    dry_run: bool,
) -> Summary {
    let run_id = new_run_id();
    let command = if dry_run { "plan" } else { "run" };
    let s = base_summary(loaded, command, &run_id);
    let mut cx = Ctx {
        loaded,
        opts,
        p,
        s,
        journal: None,
        dry_run: false,
    };
    cx.dry_run = dry_run;
    p.line(format!(
        "vsync-orchestrate {command} {} — env {}, run {run_id}",
        loaded.path.display(),
        loaded.plan.env
    ));
    let ready = match preflight(&mut cx, parts).await {
        Ok(Some(r)) => r,
        Ok(None) => return std::mem::take(&mut cx.s),
        Err((exit, why)) => return cx.end(exit, why),
    };
    if dry_run {
        planned_writes(&mut cx, &ready);
        return cx.end(Exit::Ok, "dry run: preflight passed; nothing was written");
    }
    execute(&mut cx, ready, &run_id).await
}

type Fail = (Exit, String);

async fn preflight(cx: &mut Ctx<'_>, parts: build::Parts) -> Result<Option<Ready>, Fail> {
    let began = Instant::now();
    let plan = &cx.loaded.plan;
    cx.p.phase("preflight", "read-only checks");
    let vault = parts.vault;
    cx.s.vault = vault.describe();

    if let (Some(sched), false) = (&plan.schedule, cx.opts.force) {
        let min_age =
            crate::plan::parse_duration(&sched.min_age).map_err(|e| (Exit::PlanInvalid, e))?;
        if let Ok(Some(st)) = vault.status().await {
            // Only a recorded rotation counts: a push does not change the passphrase,
            // so a vault never rotated is always due.
            let last = st
                .rotated_at
                .as_deref()
                .or(st.pointer_meta.get("rotated-at").map(String::as_str))
                .and_then(|r| humantime::parse_rfc3339(r).ok());
            if let Some(age) = last.and_then(|t| SystemTime::now().duration_since(t).ok()) {
                if age < min_age {
                    cx.s.gen_before = Some(st.gen);
                    cx.s.old_stamp = Some(st.stamp.clone());
                    let why = format!(
                        "not due: last rotation {} ago, schedule.min_age is {} (use --force to rotate anyway)",
                        humantime::format_duration(Duration::from_secs(age.as_secs())),
                        sched.min_age
                    );
                    cx.p.line(format!("            {why}"));
                    cx.s.exit_code = 0;
                    cx.s.outcome = why;
                    return Ok(None);
                }
            }
        }
    }

    if let Some(held) = Lock::peek(&vault).await {
        return Err((
            Exit::LockHeld,
            format!(
                "the vault is locked by run {} of {} (created {})",
                held.run_id, held.owner, held.created_at
            ),
        ));
    }

    if cx.opts.clean_stale {
        for s in &parts.stores {
            let t = Instant::now();
            match s.clean_stale().await {
                Ok(Some(what)) => cx.p.ok(&s.describe().to_string(), &what, t.elapsed()),
                Ok(None) => {}
                Err(e) => {
                    return Err((
                        Exit::PreflightFailed,
                        format!("{}: clean-up failed: {}", s.describe(), e.chain()),
                    ))
                }
            }
        }
    }

    // Every adapter's own read-only checks, concurrently: this also opens and warms
    // the connections activation will use.
    let store_checks = join_all(parts.stores.iter().map(|s| async move {
        let t = Instant::now();
        (s.describe(), s.preflight().await, t.elapsed())
    }));
    let restart_checks = join_all(parts.restarters.iter().map(|(r, _)| async move {
        let t = Instant::now();
        (r.describe(), r.preflight().await, t.elapsed())
    }));
    let (store_res, restart_res) = tokio::join!(store_checks, restart_checks);
    let mut failed = Vec::new();
    for (target, res, took) in store_res.into_iter().chain(restart_res) {
        match res {
            Ok(pf) => {
                cx.target("preflight", &target, true, pf.detail, took);
                for w in pf.warnings {
                    cx.p.warn(&w);
                    cx.s.warnings.push(format!("{target}: {w}"));
                }
            }
            Err(e) => {
                cx.target("preflight", &target, false, e.chain(), took);
                failed.push(format!("{target}: {}", e.chain()));
            }
        }
    }
    if !failed.is_empty() {
        return Err((
            Exit::PreflightFailed,
            format!("preflight failed: {}", failed.join("; ")),
        ));
    }

    let mut stdin = secrets::Stdin::default();
    let mut inputs = secrets::Inputs {
        yes: cx.opts.yes,
        stdin: &mut stdin,
    };
    // Each store's current value, read once and concurrently: the old passphrase
    // may come from it, and every readable store must agree.
    let currents = join_all(
        parts
            .stores
            .iter()
            .map(|s| async move { (s.describe(), s.read_current().await) }),
    )
    .await;
    let old = secrets::old(&plan.passphrase.old, &currents, &mut inputs)
        .map_err(|e| (Exit::BadInput, e.0))?;
    // Every store that can read its value back must hold the passphrase the vault
    // opens with; otherwise some app already boots with something else.
    for (target, current) in &currents {
        if let Ok(Some(cur)) = current {
            if !cur.same_as(&old) {
                return Err((
                    Exit::PreflightFailed,
                    format!("{target} holds a different passphrase than the old one this plan uses; fix the store (or the plan's passphrase.old) first"),
                ));
            }
        }
    }
    drop(currents);
    // A dry run does not ask anyone to type a new passphrase it will not use.
    let prompt =
        matches!(&plan.passphrase.new, crate::plan::NewSource::Keyword(k) if k == "prompt");
    let new = if cx.dry_run && prompt {
        secrets::generate(32)
    } else {
        secrets::new(&plan.passphrase.new, &mut inputs).map_err(|e| (Exit::BadInput, e.0))?
    };
    if new.same_as(&old) {
        return Err((
            Exit::BadInput,
            "the new passphrase equals the old one".into(),
        ));
    }
    if new.len() < 20 {
        cx.s.warnings.push(
            "the new passphrase is shorter than 20 characters; the vsync CLI refuses such keys"
                .into(),
        );
    }

    let t = Instant::now();
    let accept_unsealed = plan.vault.accept_unsealed;
    let inspection = match vault.inspect(&old, accept_unsealed).await {
        Ok(i) => i,
        Err(e) => {
            cx.p.fail(
                &format!("vault {}", vault.describe()),
                &e.to_string(),
                t.elapsed(),
            );
            return Err((Exit::from_rotate_code(e.exit_code()), e.to_string()));
        }
    };
    cx.p.ok(
        &format!("vault {}", vault.describe()),
        &format!(
            "{} layout, stamp {}, gen {}; the old passphrase decrypts the live bundle",
            inspection.layout.name(),
            inspection.stamp,
            inspection.gen
        ),
        t.elapsed(),
    );
    cx.s.layout = Some(inspection.layout.name().into());
    cx.s.gen_before = Some(inspection.gen);
    cx.s.old_stamp = Some(inspection.stamp.to_string());

    if !plan.verify.health.is_empty() {
        let http = health::Http::new();
        let probes = join_all(plan.verify.health.iter().map(|u| {
            let http = http.clone();
            async move {
                let t = Instant::now();
                let r = http.get(u, Duration::from_secs(5)).await;
                (u.clone(), r, t.elapsed())
            }
        }))
        .await;
        for (url, r, took) in probes {
            let target = vsync_orchestrate_api::Target::new("health", url.clone());
            match r {
                Ok((status, body)) => {
                    let a = health::classify(status, &body);
                    let ok = matches!(a, health::Answer::Fresh { .. });
                    if !ok {
                        cx.s.warnings
                            .push(format!("{url} answers {a} before the rotation"));
                    }
                    cx.target("preflight", &target, true, a.to_string(), took);
                }
                Err(e) => {
                    cx.s.warnings
                        .push(format!("{url} does not answer yet: {e}"));
                    cx.target(
                        "preflight",
                        &target,
                        true,
                        format!("not answering ({e}); verify will wait for it"),
                        took,
                    );
                }
            }
        }
    }
    cx.phase_done("preflight", began);
    Ok(Some(Ready {
        vault,
        stores: parts.stores,
        restarters: parts.restarters,
        inspection,
        new,
    }))
}

fn planned_writes(cx: &mut Ctx<'_>, r: &Ready) {
    let i = &r.inspection;
    let next = Stamp::next_after(&i.stamp);
    let mut w = vec![format!(
        "lock: create {} (If-None-Match: *)",
        Lock::key(&r.vault)
    )];
    for s in &r.stores {
        w.push(format!(
            "stage: {} ← new passphrase as a staged version",
            s.describe()
        ));
    }
    w.push(format!(
        "rotate: create {} (If-None-Match: *), re-sealed and encrypted under the new passphrase",
        r.vault.key(&i.layout.bundle_name(&next))
    ));
    w.push(format!(
        "rotate: swap {} to {next} (If-Match: {}) with x-amz-meta-gen={} — T0",
        r.vault.key(i.layout.pointer_name()),
        i.pointer_etag,
        i.gen + 1
    ));
    for s in &r.stores {
        w.push(format!("activate: {} staged → current — T1", s.describe()));
    }
    for cell in crate::vault::layout::COUNTER_CELLS {
        w.push(format!(
            "counter: {} ← {{\"gen\":{},\"prev_gen\":{},…}} (conditional)",
            r.vault.key(cell),
            i.gen + 1,
            i.gen
        ));
    }
    if let Some(k) = build::audit_key(&cx.loaded.plan) {
        w.push(format!("audit: append a rotate row to {k} (If-Match)"));
    }
    for (rs, _) in &r.restarters {
        w.push(format!("restart: {}", rs.describe()));
    }
    w.push(format!("lock: delete {}", Lock::key(&r.vault)));
    cx.p.phase("plan", "the writes `run` would make, in order:");
    for (n, line) in w.iter().enumerate() {
        cx.p.line(format!("            {:>2}. {line}", n + 1));
    }
    cx.s.planned_writes = w;
}

async fn discard_all(cx: &mut Ctx<'_>, stores: &[Arc<dyn SecretStore>], staged: &[Staged]) {
    let results = join_all(staged.iter().filter_map(|st| {
        stores
            .iter()
            .find(|s| s.describe() == st.target)
            .map(|s| async move { (s.describe(), s.discard(st).await) })
    }))
    .await;
    for (t, r) in results {
        match r {
            Ok(()) => {
                cx.p.ok(&t.to_string(), "staged version discarded", Duration::ZERO)
            }
            Err(e) => {
                cx.p.fail(
                    &t.to_string(),
                    &format!("discard failed: {}", e.chain()),
                    Duration::ZERO,
                );
                cx.s.next_steps.push(format!(
                    "remove the staged version from {t} by hand ({})",
                    e.chain()
                ));
            }
        }
    }
}

async fn execute(cx: &mut Ctx<'_>, r: Ready, run: &RunId) -> Summary {
    let lock = match Lock::acquire(&r.vault, run, cx.opts.lock_ttl, None).await {
        Ok(l) => l,
        Err(e @ lock::LockError::Held { .. }) => return cx.end(Exit::LockHeld, e.to_string()),
        Err(e) => return cx.end(Exit::PreflightFailed, e.to_string()),
    };
    cx.journal = Some(Journal {
        run_id: run.clone(),
        plan: cx
            .loaded
            .path
            .canonicalize()
            .unwrap_or_else(|_| cx.loaded.path.clone()),
        env: cx.loaded.plan.env.clone(),
        vault: r.vault.describe(),
        started_at: crate::vault::stamp::iso_millis(SystemTime::now()),
        updated_at: String::new(),
        phase: Phase::Staging,
        staged: vec![],
        prepared: None,
        rotated_at: None,
        activated: vec![],
        rollouts: vec![],
        timings_ms: Default::default(),
        exit_code: None,
        notes: vec![],
    });
    cx.save();
    crash_point(Phase::Preflight); // reads the fault-injection setting once, off the critical path

    // Stage.
    let began = Instant::now();
    cx.p.phase(
        "stage",
        &format!(
            "new passphrase to {} store(s), not yet visible to apps",
            r.stores.len()
        ),
    );
    let results = join_all(r.stores.iter().map(|s| {
        let new = &r.new;
        async move {
            let t = Instant::now();
            (s.describe(), s.stage(new, run).await, t.elapsed())
        }
    }))
    .await;
    let mut staged = Vec::new();
    let mut failed = Vec::new();
    for (t, res, took) in results {
        match res {
            Ok(st) => {
                cx.target("stage", &t, true, format!("staged as {}", st.version), took);
                staged.push(st);
            }
            Err(e) => {
                cx.target("stage", &t, false, e.chain(), took);
                failed.push(format!("{t}: {}", e.chain()));
            }
        }
    }
    cx.journal.as_mut().unwrap().staged = staged.clone();
    cx.journal.as_mut().unwrap().phase = Phase::Staged;
    cx.save();
    cx.phase_done("stage", began);
    let interrupted = INTERRUPTED.load(Ordering::SeqCst);
    if !failed.is_empty() || interrupted {
        discard_all(cx, &r.stores, &staged).await;
        cx.journal.as_mut().unwrap().phase = Phase::Aborted;
        let _ = lock.release(&r.vault).await;
        return if interrupted {
            cx.end(
                Exit::Interrupted,
                "interrupted before the vault was touched; staged versions discarded",
            )
        } else {
            cx.end(
                Exit::StageFailed,
                format!(
                    "stage failed ({}); staged versions discarded, vault untouched",
                    failed.join("; ")
                ),
            )
        };
    }

    // Rotate: everything slow happens before the swap.
    let began = Instant::now();
    cx.p.phase(
        "rotate",
        "re-encrypt under the new passphrase, upload, swap the pointer",
    );
    let t = Instant::now();
    let prepared = match r.vault.prepare(&r.inspection, &r.new).await {
        Ok(pr) => pr,
        Err(e) => return abort_before_t0(cx, &r, &staged, lock, e).await,
    };
    cx.p.ok(
        "bundle",
        &format!("{} uploaded (If-None-Match: *)", prepared.bundle_key),
        t.elapsed(),
    );
    {
        let j = cx.journal.as_mut().unwrap();
        j.prepared = Some(prepared.clone());
        j.phase = Phase::Committing;
    }
    cx.save();
    if INTERRUPTED.load(Ordering::SeqCst) {
        discard_all(cx, &r.stores, &staged).await;
        cx.journal.as_mut().unwrap().phase = Phase::Aborted;
        let _ = lock.release(&r.vault).await;
        return cx.end(
            Exit::Interrupted,
            "interrupted before the pointer swap; staged versions discarded, vault untouched",
        );
    }
    let t = Instant::now();
    let committed = match r.vault.commit(&prepared).await {
        Ok(c) => c,
        Err(e) => {
            // A failed answer can hide a write that happened: look before undoing.
            if matches!(e, RotateError::PointerFailed(_))
                && r.vault
                    .pointer_is(prepared.layout, &prepared.new_stamp)
                    .await
                    .unwrap_or(false)
            {
                crate::vault::Committed {
                    t0: Instant::now(),
                    rotated_at: crate::vault::stamp::iso_millis(SystemTime::now()),
                }
            } else {
                return abort_before_t0(cx, &r, &staged, lock, e).await;
            }
        }
    };
    // ---- T0: apps that boot now need the new passphrase. Activate at once. ----
    crash_point(Phase::Committed);
    let activation = activate_all(&r.stores, &staged).await;
    let t1 = Instant::now();
    let window = t1.duration_since(committed.t0);
    cx.p.ok(
        "pointer",
        &format!(
            "{} → {} (If-Match) — T0",
            prepared.old_stamp, prepared.new_stamp
        ),
        committed.t0.duration_since(t),
    );
    cx.s.new_stamp = Some(prepared.new_stamp.to_string());
    cx.s.gen_after = Some(prepared.gen_before + 1);
    cx.phase_done("rotate", began);
    let window_open = report_activation(
        cx,
        activation,
        Ok(window),
        &r.stores,
        &staged,
        &committed.rotated_at,
        run,
    )
    .await
    .is_err();
    if window_open {
        // Keep the lock: nobody else may rotate while the window is open.
        drop(lock);
        return cx.end(Exit::WindowOpen, cx.s.outcome.clone());
    }
    tidy_all(cx, &r.stores, &staged).await;
    finish_and_restart(
        cx,
        &r.vault,
        &r.restarters,
        prepared.gen_before,
        &prepared.new_stamp,
        &committed.rotated_at,
        run,
        &[],
        lock,
        Some(committed.t0),
    )
    .await
}

async fn abort_before_t0(
    cx: &mut Ctx<'_>,
    r: &Ready,
    staged: &[Staged],
    lock: Lock,
    e: RotateError,
) -> Summary {
    cx.p.fail("rotate", &e.to_string(), Duration::ZERO);
    discard_all(cx, &r.stores, staged).await;
    cx.journal.as_mut().unwrap().phase = Phase::Aborted;
    let _ = lock.release(&r.vault).await;
    let exit = Exit::from_rotate_code(e.exit_code());
    cx.end(exit, format!("{e}; staged versions discarded"))
}

/// Post-window housekeeping on every store, concurrently; failures are warnings.
async fn tidy_all(cx: &mut Ctx<'_>, stores: &[Arc<dyn SecretStore>], staged: &[Staged]) {
    let results = join_all(staged.iter().filter_map(|st| {
        stores
            .iter()
            .find(|s| s.describe() == st.target)
            .map(|s| async move { (s.describe(), s.tidy(st).await) })
    }))
    .await;
    for (t, r) in results {
        if let Err(e) = r {
            cx.p.warn(&format!(
                "{t}: tidying after activation failed: {}",
                e.chain()
            ));
            cx.s.warnings.push(format!(
                "{t}: tidying after activation failed: {}",
                e.chain()
            ));
        }
    }
}

type Activation = Vec<(
    vsync_orchestrate_api::Target,
    Result<(), vsync_orchestrate_api::Error>,
    Duration,
)>;

/// One concurrent round over already-open connections; stores that answer with a
/// temporary error get two quick retries.
async fn activate_all(stores: &[Arc<dyn SecretStore>], staged: &[Staged]) -> Activation {
    join_all(staged.iter().filter_map(|st| {
        stores
            .iter()
            .find(|s| s.describe() == st.target)
            .map(|s| async move {
                let t = Instant::now();
                let mut res = s.activate(st).await;
                for backoff in [50, 250] {
                    match &res {
                        Err(e) if e.kind().is_retryable() => {
                            tokio::time::sleep(Duration::from_millis(backoff)).await;
                            res = s.activate(st).await;
                        }
                        _ => break,
                    }
                }
                (s.describe(), res, t.elapsed())
            })
    }))
    .await
}

/// Reports activation; on failure sets the window-open outcome with the exact
/// manual steps. Returns Err(()) when the window is still open.
async fn report_activation(
    cx: &mut Ctx<'_>,
    activation: Activation,
    // T0 → T1, or the activation time alone when resuming (no window to speak of).
    window: Result<Duration, Duration>,
    stores: &[Arc<dyn SecretStore>],
    staged: &[Staged],
    rotated_at: &str,
    run: &RunId,
) -> Result<(), ()> {
    cx.p.phase(
        "activate",
        &format!("{} store(s): staged → current", activation.len()),
    );
    let mut open = Vec::new();
    let mut activated = Vec::new();
    for (t, res, took) in activation {
        match res {
            Ok(()) => {
                cx.target("activate", &t, true, String::new(), took);
                activated.push(t.to_string());
            }
            Err(e) => {
                cx.target("activate", &t, false, e.chain(), took);
                let hint = staged.iter().find(|s| s.target == t).and_then(|st| {
                    stores
                        .iter()
                        .find(|s| s.describe() == t)
                        .and_then(|s| s.activate_hint(st))
                });
                open.push((t, e, hint));
            }
        }
    }
    {
        let j = cx.journal.as_mut().unwrap();
        j.rotated_at = Some(rotated_at.to_owned());
        j.activated = activated;
        j.phase = if open.is_empty() {
            Phase::Activated
        } else {
            Phase::Committed
        };
    }
    cx.save();
    if open.is_empty() {
        match window {
            Ok(w) => {
                cx.s.window_ms = Some(ms(w));
                cx.p.line(format!("            window T0 → T1: {}", fmt_ms(w)));
                cx.s.phases_ms.insert("activate".into(), ms(w));
            }
            Err(took) => {
                cx.s.phases_ms.insert("activate".into(), ms(took));
            }
        }
        return Ok(());
    }
    cx.s.exit_code = Exit::WindowOpen.code();
    let names: Vec<String> = open.iter().map(|(t, _, _)| t.to_string()).collect();
    cx.s.outcome = format!(
        "WINDOW OPEN: the vault needs the new passphrase but {} still serve(s) the old one; apps that boot now fail with WrongPassphraseError",
        names.join(", ")
    );
    cx.s.next_steps.push(format!(
        "close the window now: `vsync-orchestrate resume {}` (activates what run {run} staged), or by hand:",
        cx.loaded.path.display()
    ));
    for (t, e, hint) in open {
        cx.s.next_steps.push(match hint {
            Some(h) => format!("{t} ({}): {h}", e.kind()),
            None => format!(
                "{t} ({}): make its staged version current in the platform's console",
                e.kind()
            ),
        });
    }
    Err(())
}

#[allow(clippy::too_many_arguments)]
async fn finish_and_restart(
    cx: &mut Ctx<'_>,
    vault: &Vault,
    restarters: &[(Arc<dyn Restarter>, Duration)],
    gen_before: u64,
    new_stamp: &Stamp,
    rotated_at: &str,
    run: &RunId,
    journaled: &[vsync_orchestrate_api::Rollout],
    lock: Lock,
    t0: Option<Instant>,
) -> Summary {
    let plan = &cx.loaded.plan;
    let mut exit = Exit::Ok;
    let audit_spec = build::audit_key(plan).map(|key| {
        let mut user_meta: Vec<(String, String)> = plan
            .passphrase
            .meta
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(n) = &plan.passphrase.note {
            user_meta.insert(0, ("note".into(), n.clone()));
        }
        user_meta.push(("run_id".into(), run.to_string()));
        AuditSpec {
            key,
            user_meta,
            origin: audit::Origin::of_this_machine(),
        }
    });
    let t = Instant::now();
    let finished = vault
        .finish(gen_before, new_stamp, rotated_at, audit_spec.as_ref())
        .await;
    let detail = format!(
        "gen {gen_before} → {} in latest.manifest and latest.meta; audit {}",
        finished.gen_after,
        match &finished.audit {
            AuditOutcome::Written => "row appended".to_owned(),
            AuditOutcome::AlreadyPresent => "row already present".to_owned(),
            AuditOutcome::Disabled => "disabled by the plan".to_owned(),
            AuditOutcome::Failed { error, .. } => format!("FAILED: {error}"),
        }
    );
    let ok = finished.exit_code() == 0;
    if ok {
        cx.p.ok("bookkeeping", &detail, t.elapsed());
    } else {
        cx.p.fail("bookkeeping", &detail, t.elapsed());
        exit = Exit::AuditFailed;
        for c in &finished.counter_errors {
            cx.s.warnings.push(format!("counter cell not written: {c}"));
            cx.s.next_steps
                .push(format!("write the counter cell by hand: {c}"));
        }
        if let AuditOutcome::Failed { key, row, .. } = &finished.audit {
            cx.s.manual_audit_row = Some(row.clone());
            cx.s.next_steps.push(format!(
                "append the manual audit row (printed above) to {key}"
            ));
        }
    }

    // Restart.
    let began = Instant::now();
    if !restarters.is_empty() {
        cx.p.phase(
            "restart",
            &format!("{} restarter(s), concurrently", restarters.len()),
        );
        let futs = restarters.iter().map(|(r, timeout)| async move {
            let t = Instant::now();
            let target = r.describe();
            let rollout = match journaled.iter().find(|ro| ro.target == target) {
                Some(ro) => ro.clone(),
                None => match r.restart(run).await {
                    Ok(ro) => ro,
                    Err(e) => return (target, None, Err(e.chain()), t.elapsed()),
                },
            };
            let outcome = r.wait(&rollout, Instant::now() + *timeout).await;
            let res = match outcome {
                Ok(vsync_orchestrate_api::RolloutOutcome::Done { detail }) => Ok(detail),
                Ok(vsync_orchestrate_api::RolloutOutcome::Failed { reason }) => Err(reason),
                Ok(vsync_orchestrate_api::RolloutOutcome::TimedOut { detail }) => {
                    Err(format!("timed out: {detail}"))
                }
                Err(e) => Err(e.chain()),
            };
            (target, Some(rollout), res, t.elapsed())
        });
        let results = cx.p.waiting("waiting for rollouts", join_all(futs)).await;
        let mut failed = false;
        for (t, rollout, res, took) in results {
            if let (Some(ro), Some(j)) = (rollout, cx.journal.as_mut()) {
                if !j.rollouts.iter().any(|x| x.target == ro.target) {
                    j.rollouts.push(ro);
                }
            }
            match res {
                Ok(d) => cx.target("restart", &t, true, d, took),
                Err(e) => {
                    failed = true;
                    cx.s.next_steps.push(format!("restart {t} by hand: {e}"));
                    cx.target("restart", &t, false, e, took);
                }
            }
        }
        if failed {
            exit = Exit::RestartFailed;
        }
        if let Some(j) = cx.journal.as_mut() {
            j.phase = Phase::Restarted;
        }
        cx.save();
        cx.phase_done("restart", began);
        cx.s.t2_ms = t0.map(|t| ms(t.elapsed()));
    }

    // Verify.
    let began = Instant::now();
    let want = gen_before + 1;
    cx.p.phase("verify", &format!("vault and apps on gen {want}"));
    let t = Instant::now();
    let mut verify_failed = false;
    match vault.status().await {
        Ok(Some(st)) if st.gen == want && st.stamp == new_stamp.as_str() => {
            let cells: Vec<String> = st
                .cells
                .iter()
                .map(|(c, g)| format!("{c}={}", g.unwrap_or(0)))
                .collect();
            cx.p.ok(
                "vault",
                &format!("pointer {}, {}", st.stamp, cells.join(" ")),
                t.elapsed(),
            );
        }
        Ok(Some(st)) if st.stamp != new_stamp.as_str() => {
            verify_failed = true;
            cx.p.fail(
                "vault",
                &format!(
                    "the pointer now names {} (someone rotated after us?)",
                    st.stamp
                ),
                t.elapsed(),
            );
        }
        Ok(other) => {
            if exit != Exit::AuditFailed {
                verify_failed = true;
            }
            cx.p.fail(
                "vault",
                &format!(
                    "counter shows gen {:?}, expected {want}",
                    other.map(|s| s.gen)
                ),
                t.elapsed(),
            );
        }
        Err(e) => {
            verify_failed = true;
            cx.p.fail("vault", &e.to_string(), t.elapsed());
        }
    }
    let v = &plan.verify;
    if !v.health.is_empty() {
        let deadline = Instant::now() + build_duration(&v.timeout, Duration::from_secs(120));
        let samples = v.samples.unwrap_or(3);
        let interval = build_duration(&v.interval, Duration::from_millis(500));
        let http = health::Http::new();
        let futs = v
            .health
            .iter()
            .map(|u| health::wait_fresh(&http, u, want, samples, interval, deadline));
        let results =
            cx.p.waiting(
                "waiting for health URLs to report the new generation",
                join_all(futs),
            )
            .await;
        for r in &results {
            let target = vsync_orchestrate_api::Target::new("health", r.url.clone());
            let detail = match &r.last {
                health::Answer::Fresh { gen } if r.ok => {
                    format!("fresh gen={gen}, {} samples in a row", r.samples)
                }
                health::Answer::WrongPassphrase => {
                    "WrongPassphraseError: this app cannot open the vault".into()
                }
                other => format!("straggler: last answer {other}"),
            };
            if !r.ok {
                verify_failed = true;
                cx.s.next_steps
                    .push(format!("{}: {detail}; restart that instance", r.url));
            }
            cx.target("verify", &target, r.ok, detail, t.elapsed());
        }
        cx.s.health = results;
    }
    cx.phase_done("verify", began);
    if verify_failed && exit == Exit::Ok {
        exit = Exit::VerifyFailed;
    }
    if let Some(j) = cx.journal.as_mut() {
        j.phase = Phase::Done;
    }
    if let Err(e) = lock.release(vault).await {
        cx.s.warnings.push(format!(
            "releasing the lock failed (it expires by itself): {e}"
        ));
    }
    if exit == Exit::Ok {
        cx.s.next_steps.push("update VSYNC_PASSPHRASE wherever else it is deployed by hand, and every vsync CLI user's keychain value (re-export/import a share)".into());
    }
    cx.end(exit, String::new())
}

fn build_duration(v: &Option<String>, d: Duration) -> Duration {
    v.as_deref()
        .and_then(|s| crate::plan::parse_duration(s).ok())
        .unwrap_or(d)
}

/// `resume`: finish the newest unfinished run on this plan's vault.
pub async fn resume(loaded: &LoadedPlan, opts: &RunOptions, p: &Progress) -> Summary {
    match build::parts(loaded).await {
        Ok(parts) => resume_with(loaded, parts, opts, p).await,
        Err(e) => unbuildable(loaded, opts, p, "resume", e),
    }
}

/// `resume` with parts built elsewhere (tests).
pub async fn resume_with(
    loaded: &LoadedPlan,
    parts: build::Parts,
    opts: &RunOptions,
    p: &Progress,
) -> Summary {
    let s = base_summary(loaded, "resume", &new_run_id());
    let mut cx = Ctx {
        loaded,
        opts,
        p,
        s,
        journal: None,
        dry_run: false,
    };
    cx.s.vault = parts.vault.describe();
    let Some((_, journal)) = Journal::find_unfinished(&opts.state_dir, &parts.vault.describe())
    else {
        p.line(format!("nothing to resume for {}", parts.vault.describe()));
        cx.s.outcome = "nothing to resume: no unfinished run for this vault".into();
        return cx.s;
    };
    let run = journal.run_id.clone();
    cx.s.run_id = run.to_string();
    p.line(format!(
        "vsync-orchestrate resume — run {run} stopped at phase {:?}",
        journal.phase
    ));
    let t0_passed = match (&journal.prepared, journal.phase) {
        (Some(pr), Phase::Committing) => parts
            .vault
            .pointer_is(pr.layout, &pr.new_stamp)
            .await
            .unwrap_or(false),
        (Some(_), ph) => ph >= Phase::Committed,
        (None, _) => false,
    };
    cx.journal = Some(journal.clone());
    if !t0_passed {
        p.phase(
            "resume",
            "the vault was never swapped: discarding what was staged, then starting over",
        );
        discard_all(&mut cx, &parts.stores, &journal.staged).await;
        // A crash mid-stage can leave versions the journal never recorded.
        for s in &parts.stores {
            match s.clean_stale().await {
                Ok(Some(what)) => cx.p.ok(&s.describe().to_string(), &what, Duration::ZERO),
                Ok(None) => {}
                Err(e) => cx.p.warn(&format!("{}: {}", s.describe(), e.chain())),
            }
        }
        if let Some(j) = cx.journal.as_mut() {
            j.phase = Phase::Aborted;
            j.notes.push("resumed: discarded before T0".into());
        }
        cx.save();
        // Take over the crashed run's lock (free, expired or its own) and let it go,
        // so the fresh run below can take it; another live run's lock stays.
        if let Ok(lock) =
            Lock::acquire(&parts.vault, &run, Duration::from_secs(60), Some(&run)).await
        {
            let _ = lock.release(&parts.vault).await;
        }
        return self::run_with(loaded, parts, opts, p, false).await;
    }
    let prepared = journal
        .prepared
        .clone()
        .expect("t0 passed implies prepared");
    let lock = match Lock::acquire(&parts.vault, &run, opts.lock_ttl, Some(&run)).await {
        Ok(l) => l,
        Err(e) => return cx.end(Exit::LockHeld, e.to_string()),
    };
    cx.s.gen_before = Some(prepared.gen_before);
    cx.s.gen_after = Some(prepared.gen_before + 1);
    cx.s.old_stamp = Some(prepared.old_stamp.to_string());
    cx.s.new_stamp = Some(prepared.new_stamp.to_string());
    cx.s.layout = Some(prepared.layout.name().into());
    // The invariant: the passphrase that opens the live bundle is retrievable from
    // a store. Prove it before activating anything.
    p.phase(
        "resume",
        "the vault was swapped (T0 passed): activating what was staged",
    );
    let mut proven = false;
    for st in &journal.staged {
        if let Some(s) = parts.stores.iter().find(|s| s.describe() == st.target) {
            if let Ok(pass) = s.read_staged(st).await {
                if parts.vault.open(&pass).await.is_ok() {
                    proven = true;
                    p.ok(
                        &st.target.to_string(),
                        "its staged passphrase opens the live bundle",
                        Duration::ZERO,
                    );
                    break;
                }
            }
        }
    }
    if !proven {
        p.warn("no store's staged value could be read back and checked against the bundle (write-only stores?); activating anyway");
    }
    let t = Instant::now();
    let activation = activate_all(&parts.stores, &journal.staged).await;
    let rotated_at = journal
        .rotated_at
        .clone()
        .unwrap_or_else(|| crate::vault::stamp::iso_millis(SystemTime::now()));
    if report_activation(
        &mut cx,
        activation,
        Err(t.elapsed()),
        &parts.stores,
        &journal.staged,
        &rotated_at,
        &run,
    )
    .await
    .is_err()
    {
        drop(lock);
        return cx.end(Exit::WindowOpen, cx.s.outcome.clone());
    }
    tidy_all(&mut cx, &parts.stores, &journal.staged).await;
    finish_and_restart(
        &mut cx,
        &parts.vault,
        &parts.restarters,
        prepared.gen_before,
        &prepared.new_stamp,
        &rotated_at,
        &run,
        &journal.rollouts,
        lock,
        None,
    )
    .await
}
