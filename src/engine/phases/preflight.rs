//! Preflight: everything that can be checked without writing. It proves the old
//! passphrase opens the live bundle, opens and warms every connection activation
//! will use, and derives nothing slow later than it must.

use crate::engine::build;
use crate::engine::context::{restart_slot, store_slot, Ctx};
use crate::engine::events::{Event, Step, VaultFacts};
use crate::engine::failure::{Failure, InputProblem, PlanProblem, PreflightProblem, Raced};
use crate::engine::health;
use crate::engine::infra::lock::{Lock, LockError};
use crate::engine::secrets;
use crate::vault::crypto::Key;
use crate::vault::{Inspection, Stamp, Vault};
use futures_util::future::join_all;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use vsync_orchestrate_api::{Passphrase, Restarter, SecretStore};

/// Everything preflight established, handed to the writing phases.
pub(crate) struct Ready {
    pub vault: Vault,
    pub stores: Vec<Arc<dyn SecretStore>>,
    pub restarters: Vec<(Arc<dyn Restarter>, Duration)>,
    pub inspection: Inspection,
    pub new: Passphrase,
    /// The new key, derived on the blocking pool while preflight talks to the
    /// network: the rotate phase only waits for what is left of it.
    pub new_key: Option<tokio::task::JoinHandle<Key>>,
}

/// What preflight concluded.
pub(crate) enum Preflighted {
    Ready(Box<Ready>),
    /// `[schedule] min_age` says the vault is not due; why.
    NotDue(String),
}

pub(crate) async fn run(cx: &mut Ctx<'_>, parts: build::Parts) -> Result<Preflighted, Failure> {
    let began = Instant::now();
    let plan = &cx.loaded.plan;
    cx.phase(Step::Preflight, "read-only checks");
    for name in secrets::env_names(plan) {
        vsync_orchestrate_api::child_env::register(&name);
    }
    let vault = parts.vault;
    cx.vault(vault.describe());

    if let (Some(sched), false) = (&plan.schedule, cx.opts.force) {
        let min_age = sched.min_age.clone();
        if let Some(why) = not_due(cx, &vault, &min_age).await? {
            return Ok(Preflighted::NotDue(why));
        }
    }

    let finished = crate::engine::infra::journal::Journal::finished_runs(
        &cx.opts.state_dir,
        &vault.describe(),
    );
    match Lock::peek(&vault).await {
        Ok(Some(held)) if finished.contains(&held.run_id) => {
            cx.warn(format!(
                "the vault's lock was left by run {}, which finished (its release failed); this run takes it over",
                held.run_id
            ));
        }
        Ok(Some(held)) => {
            return Err(Failure::Lock(LockError::Held {
                until: held.until(),
                owner: held.owner,
                run_id: held.run_id,
            }))
        }
        Ok(None) => {}
        Err(e @ LockError::Unparsable { .. }) => {
            if let Some(r) = e.remedy() {
                cx.next_step(r);
            }
            return Err(Failure::Lock(e));
        }
        Err(e) => return Err(Failure::Preflight(PreflightProblem::LockUnreadable(e))),
    }

    check_state_dir(&cx.opts.state_dir)
        .map_err(|e| Failure::Preflight(PreflightProblem::StateDir(e.to_string())))?;

    let mut stdin = secrets::Stdin::default();
    let mut inputs = secrets::Inputs {
        yes: cx.opts.yes,
        stdin: &mut stdin,
    };

    // A new passphrase that needs nobody at a terminal is known now: its key (one
    // PBKDF2, tens of milliseconds of CPU) is derived while the checks below wait
    // on the network, instead of after them. A dry run never needs the key.
    let early_new = match &cx.loaded.plan.passphrase.new {
        source @ (crate::plan::NewSource::Generate { .. }
        | crate::plan::NewSource::File { .. }
        | crate::plan::NewSource::Env { .. }) => {
            Some(secrets::new(source, &mut inputs).map_err(|e| Failure::Input(e.into()))?)
        }
        _ => None,
    };
    let mut new_key = match &early_new {
        Some(n) if !cx.dry_run => Some(vault.derive_task(n)),
        _ => None,
    };

    // With --clean-stale a store's preflight would refuse the stale version it is
    // about to lose; first prove the vault does not need it: the old passphrase
    // (what the stores serve as current) must open the live bundle.
    let mut checked: Option<(Passphrase, Inspection)> = None;
    if cx.opts.clean_stale {
        let old = old_passphrase(cx, &parts.stores, &[], &mut inputs).await?;
        let path = cx.loaded.path.display().to_string();
        let inspection = inspect(cx, &vault, &old).await.map_err(|f| {
            f.and(format!(
                "--clean-stale removed nothing: a staged version may be the only key to the live bundle. Run `vsync-orchestrate resume {path}` to finish the run that staged it"
            ))
        })?;
        for (slot, s) in parts.stores.iter().enumerate() {
            let t = Instant::now();
            match s.clean_stale().await {
                Ok(Some(what)) => cx.target(
                    Step::Preflight,
                    &s.describe(),
                    store_slot(slot),
                    true,
                    format!("{what} (the current passphrase opens the live bundle, so it was not needed)"),
                    t.elapsed(),
                ),
                Ok(None) => {}
                Err(e) => {
                    return Err(Failure::Preflight(PreflightProblem::CleanUp {
                        target: s.describe(),
                        source: e,
                    }))
                }
            }
        }
        checked = Some((old, inspection));
    }

    // Every adapter's own read-only checks, concurrently: this also opens and warms
    // the connections activation will use.
    let store_checks = join_all(parts.stores.iter().enumerate().map(|(i, s)| async move {
        let t = Instant::now();
        (
            store_slot(i),
            s.describe(),
            s.preflight().await,
            t.elapsed(),
        )
    }));
    let restart_checks = join_all(parts.restarters.iter().enumerate().map(
        |(i, (r, _))| async move {
            let t = Instant::now();
            (
                restart_slot(i),
                r.describe(),
                r.preflight().await,
                t.elapsed(),
            )
        },
    ));
    let (store_res, restart_res) = tokio::join!(store_checks, restart_checks);
    let mut failed = Vec::new();
    // What each store's preflight read as its current value, so it is read once.
    let known: Vec<Option<Passphrase>> = store_res
        .iter()
        .map(|(_, _, r, _)| r.as_ref().ok().and_then(|pf| pf.current.clone()))
        .collect();
    for (slot, target, res, took) in store_res.into_iter().chain(restart_res) {
        match res {
            Ok(pf) => {
                cx.target(Step::Preflight, &target, slot, true, pf.detail, took);
                for w in pf.warnings {
                    cx.warn(format!("{target}: {w}"));
                }
            }
            Err(e) => {
                cx.target_failed(Step::Preflight, &target, slot, e.kind(), e.chain(), took);
                // The adapter's one command that fixes it (a login, a kubeconfig).
                if let Some(fix) = e.next_step() {
                    cx.next_step(fix.to_owned());
                }
                failed.push((target, e));
            }
        }
    }
    if !failed.is_empty() {
        return Err(Failure::Preflight(PreflightProblem::Adapters(failed)));
    }

    let (old, inspection) = match checked {
        Some(c) => c,
        None => {
            let old = old_passphrase(cx, &parts.stores, &known, &mut inputs).await?;
            let inspection = match inspect(cx, &vault, &old).await {
                Ok(i) => i,
                Err(f) => return Err(lost_race(cx, &vault, &parts.stores, &old, f).await),
            };
            (old, inspection)
        }
    };

    // A dry run does not ask anyone to type a new passphrase it will not use.
    let plan = &cx.loaded.plan;
    let prompt =
        matches!(&plan.passphrase.new, crate::plan::NewSource::Keyword(k) if k == "prompt");
    let new = match early_new {
        Some(n) => n,
        None if cx.dry_run && prompt => secrets::generate(32),
        None => {
            secrets::new(&plan.passphrase.new, &mut inputs).map_err(|e| Failure::Input(e.into()))?
        }
    };
    if new_key.is_none() && !cx.dry_run {
        new_key = Some(vault.derive_task(&new));
    }
    if new.same_as(&old) {
        return Err(Failure::Input(InputProblem::SamePassphrase));
    }
    if new.len() < 20 {
        cx.warn(
            "the new passphrase is shorter than 20 characters; the vsync CLI refuses such keys",
        );
    }
    drop(old);

    probe_health(cx).await;
    cx.phase_done(Step::Preflight, began);
    Ok(Preflighted::Ready(Box::new(Ready {
        vault,
        stores: parts.stores,
        restarters: parts.restarters,
        inspection,
        new,
        new_key,
    })))
}

/// The journal goes to the state directory before the first write, so a `plan`
/// that passes must mean `run` can write it: the directory, or the nearest part of
/// its path that exists, must be a writable directory. Checked without creating
/// anything.
fn check_state_dir(dir: &std::path::Path) -> Result<(), StateDirError> {
    let mut at = dir;
    let existing = loop {
        match std::fs::metadata(at) {
            Ok(m) => break (at, m),
            Err(_) => match at.parent() {
                Some(p) if !p.as_os_str().is_empty() => at = p,
                _ => return Ok(()),
            },
        }
    };
    let (path, meta) = existing;
    if !meta.is_dir() {
        return Err(StateDirError::NotADirectory {
            dir: dir.to_owned(),
            at: path.to_owned(),
        });
    }
    let c = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()))
        .map_err(|_| StateDirError::NulByte {
            dir: dir.to_owned(),
        })?;
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
        return Err(StateDirError::NotWritable {
            dir: dir.to_owned(),
            at: path.to_owned(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Why the journal could not be written where the plan says: `at` is the part of
/// `dir`'s path that exists.
#[derive(Debug, thiserror::Error)]
enum StateDirError {
    #[error("the state directory {} cannot be created: {} is not a directory; {STATE_DIR_FIX}", .dir.display(), .at.display())]
    NotADirectory {
        dir: std::path::PathBuf,
        at: std::path::PathBuf,
    },
    #[error("the state directory {} has a NUL byte", .dir.display())]
    NulByte { dir: std::path::PathBuf },
    #[error("the state directory {} is not writable ({}: {source}); {STATE_DIR_FIX}", .dir.display(), .at.display())]
    NotWritable {
        dir: std::path::PathBuf,
        at: std::path::PathBuf,
        source: std::io::Error,
    },
}

const STATE_DIR_FIX: &str =
    "set state_dir in the plan, or --state-dir, to a directory this user can write";

/// Whether `[schedule] min_age` says the vault is not due; fills the summary if so.
async fn not_due(
    cx: &mut Ctx<'_>,
    vault: &Vault,
    min_age: &str,
) -> Result<Option<String>, Failure> {
    let min = crate::plan::parse_duration(min_age)
        .map_err(|e| Failure::Plan(PlanProblem::MinAge(e.to_string())))?;
    let Ok(Some(st)) = vault.status().await else {
        return Ok(None);
    };
    // Only a recorded rotation counts: a push does not change the passphrase, so a
    // vault never rotated is always due.
    let last = st
        .rotated_at
        .as_deref()
        .or(st.pointer_meta.get("rotated-at").map(String::as_str))
        .and_then(|r| humantime::parse_rfc3339(r).ok());
    let Some(age) = last.and_then(|t| SystemTime::now().duration_since(t).ok()) else {
        return Ok(None);
    };
    if age >= min {
        return Ok(None);
    }
    cx.facts(VaultFacts {
        gen_before: Some(st.gen),
        old_stamp: Some(st.stamp.clone()),
        ..Default::default()
    });
    let why = format!(
        "not due: last rotation {} ago, schedule.min_age is {min_age} (use --force to rotate anyway)",
        humantime::format_duration(Duration::from_secs(age.as_secs())),
    );
    cx.note(why.clone());
    Ok(Some(why))
}

/// The old passphrase, from the plan's source; every store that can read its value
/// back must hold exactly it, or some app already boots with something else.
async fn old_passphrase(
    cx: &mut Ctx<'_>,
    stores: &[Arc<dyn SecretStore>],
    known: &[Option<Passphrase>],
    inputs: &mut secrets::Inputs<'_>,
) -> Result<Passphrase, Failure> {
    // Each store's current value, read once: taken from its preflight where that
    // read it, otherwise read now, concurrently.
    let currents = join_all(stores.iter().enumerate().map(|(i, s)| async move {
        match known.get(i).cloned().flatten() {
            Some(v) => (s.describe(), Ok(Some(v))),
            None => (s.describe(), s.read_current().await),
        }
    }))
    .await;
    if let Some(i) = currents.iter().position(|(_, r)| r.is_err()) {
        if let Some((target, Err(source))) = currents.into_iter().nth(i) {
            return Err(Failure::Preflight(PreflightProblem::ReadCurrent {
                target,
                source,
            }));
        }
        unreachable!("position found an error");
    }
    let old = secrets::old(&cx.loaded.plan.passphrase.old, &currents, inputs)
        .map_err(|e| Failure::Input(e.into()))?;
    for (target, current) in &currents {
        if let Ok(Some(cur)) = current {
            if !cur.same_as(&old) {
                return Err(Failure::Preflight(PreflightProblem::OldMismatch(
                    target.clone(),
                )));
            }
        }
    }
    Ok(old)
}

/// Reads the vault and proves the old passphrase opens its live bundle.
async fn inspect(cx: &mut Ctx<'_>, vault: &Vault, old: &Passphrase) -> Result<Inspection, Failure> {
    let t = Instant::now();
    let accept_unsealed = cx.loaded.plan.vault.accept_unsealed;
    let label = vault.describe();
    // A read that failed is not a fact about the vault: try again before saying
    // S3UnreachableError (the SDK already retried each request).
    let mut result = vault.inspect(old, accept_unsealed).await;
    for wait in [1000, 3000] {
        if !matches!(result, Err(crate::vault::RotateError::Read(_))) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(wait)).await;
        result = vault.inspect(old, accept_unsealed).await;
    }
    match result {
        Ok(i) => {
            cx.row(
                Step::Preflight,
                "vault",
                &label,
                None,
                true,
                format!(
                    "{} layout, stamp {}, gen {}; the old passphrase decrypts the live bundle",
                    i.layout.name(),
                    i.stamp,
                    i.gen
                ),
                t.elapsed(),
            );
            cx.facts(VaultFacts {
                layout: Some(i.layout.name().into()),
                gen_before: Some(i.gen),
                old_stamp: Some(i.stamp.to_string()),
                ..Default::default()
            });
            Ok(i)
        }
        Err(e) => {
            cx.row(
                Step::Preflight,
                "vault",
                &label,
                None,
                false,
                e.to_string(),
                t.elapsed(),
            );
            Err(Failure::Vault(e))
        }
    }
}

/// The stores were read before the pointer: a run that rotated in between makes
/// the old passphrase fail on the new bundle, which is a lost race, not a wrong
/// passphrase or a tampered bundle. Before saying the latter, look again: a lock
/// held by another run, or a store that now serves another value, says the former.
async fn lost_race(
    cx: &Ctx<'_>,
    vault: &Vault,
    stores: &[Arc<dyn SecretStore>],
    old: &Passphrase,
    failure: Failure,
) -> Failure {
    if !matches!(
        failure,
        Failure::Vault(crate::vault::RotateError::OldPassphrase { .. })
    ) {
        return failure;
    }
    if let Ok(Some(held)) = Lock::peek(vault).await {
        return Failure::Raced(Raced::LockHolder {
            run: held.run_id.to_string(),
            owner: held.owner.to_string(),
            until: held.until().to_string(),
        });
    }
    let now = join_all(
        stores
            .iter()
            .map(|s| async move { (s.describe(), s.read_current().await) }),
    )
    .await;
    if let Some((t, _)) = now
        .iter()
        .find(|(_, r)| matches!(r, Ok(Some(v)) if !v.same_as(old)))
    {
        return Failure::Raced(Raced::StoreChanged(t.clone()));
    }
    // A run of this machine's that stopped past its swap: its staged passphrase
    // may be the key the bundle needs.
    if let Some((_, j)) = crate::engine::infra::journal::Journal::find_unfinished(
        &cx.opts.state_dir,
        &vault.describe(),
    ) {
        return failure.and(format!(
            "run {} stopped at phase {:?} and its staged passphrase may be what the vault needs now; `vsync-orchestrate resume {}` finishes it",
            j.run_id,
            j.phase,
            cx.loaded.path.display()
        ));
    }
    failure
}

/// Health URLs before the rotation: not answering is a warning (verify waits).
async fn probe_health(cx: &mut Ctx<'_>) {
    let urls = cx.loaded.plan.verify.health.clone();
    if urls.is_empty() {
        return;
    }
    let http = health::Http::new();
    let probes = join_all(urls.iter().map(|u| {
        let http = http.clone();
        async move {
            let t = Instant::now();
            let r = http.get(u, Duration::from_secs(5)).await;
            (u.clone(), r, t.elapsed())
        }
    }))
    .await;
    // Marked ✓ only when the app answers fresh: an unreachable or stale URL is not
    // a reason to stop (verify waits for it) but is not shown as fine either.
    for (url, r, took) in probes {
        let (fresh, detail) = match r {
            Ok((status, body)) => {
                let a = health::classify(status, &body);
                let fresh = matches!(a, health::Answer::Fresh { .. });
                if !fresh {
                    cx.warn(format!("{url} answers {a} before the rotation"));
                }
                (fresh, a.to_string())
            }
            Err(e) => {
                cx.warn(format!("{url} does not answer yet: {e}"));
                (
                    false,
                    format!("not answering ({e}); verify will wait for it"),
                )
            }
        };
        cx.row(Step::Preflight, "health", &url, None, fresh, detail, took);
    }
}

/// The writes `run` would make, in order (the dry run's output).
pub(crate) fn planned_writes(cx: &mut Ctx<'_>, r: &Ready) {
    let i = &r.inspection;
    // Inspection refused a stamp with no successor, so there is one.
    let next = Stamp::next_after(&i.stamp).unwrap_or_else(|| i.stamp.clone());
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
        i.next_gen
    ));
    for s in &r.stores {
        w.push(format!("activate: {} staged → current — T1", s.describe()));
    }
    for cell in crate::vault::layout::COUNTER_CELLS {
        w.push(format!(
            "counter: {} ← {{\"gen\":{},\"prev_gen\":{},…}} (conditional)",
            r.vault.key(cell),
            i.next_gen,
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
    cx.phase(Step::Plan, "the writes `run` would make, in order:");
    for (n, line) in w.iter().enumerate() {
        cx.note(format!("{:>2}. {line}", n + 1));
    }
    cx.emit(Event::PlannedWrites(w));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_dir_under_a_file_is_not_a_directory() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("plain");
        std::fs::write(&file, b"").unwrap();
        let e = check_state_dir(&file.join("state")).unwrap_err();
        match &e {
            StateDirError::NotADirectory { dir, at } => {
                assert_eq!(dir, &file.join("state"));
                assert_eq!(at, &file);
            }
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().ends_with(STATE_DIR_FIX), "{e}");
        // Nothing was created, and a path that does not exist yet under a
        // writable directory passes.
        check_state_dir(&d.path().join("a/b/c")).unwrap();
        assert!(!d.path().join("a").exists());
    }
}
