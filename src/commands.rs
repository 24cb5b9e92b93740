//! One function per subcommand: load, call the engine, print, return the exit code.

use crate::cli::{Cli, Command, Output};
use crate::engine::journal::{Journal, Phase};
use crate::engine::{self, build, lock::Lock, Exit, RunOptions};
use crate::plan::{self, LoadedPlan};
use crate::report::output::Out;
use crate::report::{Progress, Summary};
use futures_util::future::join_all;
use std::path::Path;

/// SIGINT and SIGTERM stop the run at its next safe point (see `engine::interrupt`).
pub fn install_interrupt_handler() {
    engine::interrupt::install();
}

/// Takes the values of `{ env = … }` passphrase sources out of the environment
/// before any thread or child process exists. `main` calls it first thing.
pub fn capture_secret_env(cli: &Cli) {
    let plans: Vec<&std::path::PathBuf> = match &cli.command {
        Command::Run { plans, .. } => plans.iter().collect(),
        Command::Plan { plan } | Command::Resume { plan } => vec![plan],
        _ => return,
    };
    for p in plans {
        if let Ok(loaded) = plan::load(p) {
            engine::secrets::capture_env(&loaded.plan);
        }
    }
}

/// A summary's closing block and JSON. `is_result`: the block is the command's
/// result (`plan`) and goes to stdout; a run's block ends its progress on stderr.
fn emit(out: &Out, summary: &Summary, is_result: bool) -> Exit {
    crate::report::log::outcome(summary);
    if is_result {
        summary.write_human(&mut out.result_writer());
    } else {
        summary.print_human();
    }
    out.object(serde_json::to_value(summary).expect("summary serialises"));
    summary.exit()
}

fn load(out: &Out, path: &Path) -> Result<LoadedPlan, Exit> {
    match plan::load(path) {
        Ok(l) => {
            for w in &l.warnings {
                warn_line(w);
            }
            Ok(l)
        }
        Err(e) => {
            out.error(&e);
            let problems: Vec<String> = e.problems.iter().map(|p| p.to_string()).collect();
            out.object(serde_json::json!({ "outcome": "plan invalid", "problems": problems }));
            Err(Exit::PlanInvalid)
        }
    }
}

fn options(cli: &Cli, loaded: &LoadedPlan) -> RunOptions {
    let dir = cli
        .state_dir
        .clone()
        .or_else(|| loaded.plan.state_dir.clone())
        .unwrap_or_else(journal_dir_default);
    let mut o = RunOptions::new(dir);
    o.yes = cli.yes;
    o
}

fn journal_dir_default() -> std::path::PathBuf {
    engine::journal::default_state_dir()
}

/// The process's exit code: the outcome of the command, mapped once. The hidden
/// `demo-app` is an app, not a command of the tool, and keeps the codes apps use.
pub async fn dispatch(cli: &Cli) -> u8 {
    if let Command::DemoApp { port } = &cli.command {
        return crate::demo::app::run(*port).await;
    }
    // Commands whose result is a report honour `--output json`; the others print
    // an artifact (a completion script, the schema, a man page, a path).
    let reports = matches!(
        cli.command,
        Command::Run { .. }
            | Command::Plan { .. }
            | Command::Validate { .. }
            | Command::Resume { .. }
            | Command::Status { .. }
            | Command::Audit { .. }
            | Command::Demo { .. }
    );
    let out = Out::new(reports && cli.output == Output::Json);
    let exit = command(cli, &out).await;
    out.finish(exit);
    exit.code()
}

async fn command(cli: &Cli, out: &Out) -> Exit {
    let progress = Progress::new();
    match &cli.command {
        Command::Run {
            plans,
            parallel,
            force,
            clean_stale,
        } => run(cli, out, plans, *parallel, *force, *clean_stale, &progress).await,
        Command::Plan { plan } => {
            let Ok(loaded) = load(out, plan) else {
                return Exit::PlanInvalid;
            };
            let mut opts = options(cli, &loaded);
            opts.force = true;
            let s = engine::run(&loaded, &opts, &progress, true).await;
            emit(out, &s, true)
        }
        Command::Validate { plans } => validate(out, plans),
        Command::Resume { plan } => {
            let Ok(loaded) = load(out, plan) else {
                return Exit::PlanInvalid;
            };
            let mut opts = options(cli, &loaded);
            let notifier = crate::notify::Notifier::attach(&loaded, &mut opts);
            let s = engine::resume(&loaded, &opts, &progress).await;
            let code = emit(out, &s, false);
            if let Some(n) = notifier {
                n.finish(&s).await;
            }
            code
        }
        Command::Status { plan } => {
            let Ok(loaded) = load(out, plan) else {
                return Exit::PlanInvalid;
            };
            status(cli, out, &loaded).await
        }
        Command::Audit { plan, limit } => {
            let Ok(loaded) = load(out, plan) else {
                return Exit::PlanInvalid;
            };
            audit(out, &loaded, *limit).await
        }
        Command::Demo { dir, apps } => {
            match crate::demo::run(dir.clone(), *apps, cli.yes, &progress).await {
                Ok(s) => emit(out, &s, false),
                Err(e) => {
                    out.error(e);
                    Exit::BadInput
                }
            }
        }
        Command::DemoSetup {
            dir,
            apps,
            iterations,
        } => match crate::demo::setup(dir, *apps, *iterations, &progress).await {
            Ok(plan) => {
                println!("{}", plan.display());
                Exit::Ok
            }
            Err(e) => {
                eprintln!("{e}");
                crate::demo::stop_apps(dir, *apps);
                Exit::BadInput
            }
        },
        // `dispatch` runs it, with the app's own exit codes.
        Command::DemoApp { .. } => Exit::Ok,
        Command::Completions { shell } => {
            match crate::cli::completions::write(*shell, &mut std::io::stdout()) {
                Ok(()) => Exit::Ok,
                Err(e) => {
                    eprintln!("writing the completions: {e}");
                    Exit::BadInput
                }
            }
        }
        Command::Schema => {
            println!("{}", plan::schema::pretty());
            Exit::Ok
        }
        Command::Man { dir } => match dir {
            None => match crate::cli::manual::write_main(&mut std::io::stdout()) {
                Ok(()) => Exit::Ok,
                Err(e) => {
                    eprintln!("writing the man page: {e}");
                    Exit::BadInput
                }
            },
            Some(dir) => match crate::cli::manual::write_to(dir) {
                Ok(paths) => {
                    for p in paths {
                        println!("{}", p.display());
                    }
                    Exit::Ok
                }
                Err(e) => {
                    eprintln!("writing the man pages to {}: {e}", dir.display());
                    Exit::BadInput
                }
            },
        },
        Command::DemoCtl { action, dir, app } => {
            if action == "stop" {
                crate::demo::ctl::stop(dir, *app);
                return Exit::Ok;
            }
            match tokio::task::spawn_blocking({
                let (dir, app) = (dir.clone(), *app);
                move || crate::demo::ctl::restart(&dir, app)
            })
            .await
            .expect("restart task")
            {
                Ok(()) => Exit::Ok,
                Err(e) => {
                    eprintln!("{e}");
                    Exit::BadInput
                }
            }
        }
    }
}

/// `run PLAN…`: one plan as before; several side by side (see `fleet`).
async fn run(
    cli: &Cli,
    out: &Out,
    plans: &[std::path::PathBuf],
    parallel: u16,
    force: bool,
    clean_stale: bool,
    progress: &Progress,
) -> Exit {
    let mut ready = Vec::new();
    let mut invalid = Vec::new();
    for p in plans {
        match load(out, p) {
            Ok(loaded) => {
                let mut opts = options(cli, &loaded);
                opts.force = force;
                opts.clean_stale = clean_stale;
                ready.push((loaded, opts));
            }
            Err(code) => invalid.push((p.clone(), code)),
        }
    }
    if plans.len() == 1 {
        let Some((loaded, mut opts)) = ready.pop() else {
            return Exit::PlanInvalid;
        };
        let notifier = crate::notify::Notifier::attach(&loaded, &mut opts);
        opts.confirm = confirmation(cli);
        let s = engine::run(&loaded, &opts, progress, false).await;
        let code = emit(out, &s, false);
        if let Some(n) = notifier {
            n.finish(&s).await;
        }
        write_metrics(cli, &[(loaded.path.as_path(), &s)]);
        return code;
    }
    let mut notifiers = std::collections::HashMap::new();
    for (l, opts) in ready.iter_mut() {
        if let Some(n) = crate::notify::Notifier::attach(l, opts) {
            notifiers.insert(l.path.clone(), n);
        }
    }
    let outcomes = crate::fleet::run_all(ready, parallel as usize, |o| {
        crate::report::log::outcome(&o.summary);
        o.summary.print_human();
    })
    .await;
    join_all(outcomes.iter().filter_map(|o| {
        notifiers
            .get(&o.plan)
            .map(|n| async move { n.finish(&o.summary).await })
    }))
    .await;
    let summaries: Vec<Summary> = outcomes.iter().map(|o| o.summary.clone()).collect();
    write_metrics(cli, &outcomes);
    out.object(serde_json::json!({
        "outcome": format!("{} plan(s): {} ran, {} invalid", plans.len(), outcomes.len(), invalid.len()),
        "runs": summaries,
        "invalid": invalid.iter().map(|(p, _)| p).collect::<Vec<_>>(),
    }));
    if crate::report::log::json_only() {
        return crate::fleet::worst(
            outcomes
                .iter()
                .map(|o| o.summary.exit())
                .chain(invalid.iter().map(|(_, c)| *c)),
        );
    }
    eprintln!();
    eprintln!(
        "{} plan(s): {} ran, {} invalid",
        plans.len(),
        outcomes.len(),
        invalid.len()
    );
    eprint!("{}", crate::fleet::table(&outcomes));
    for (p, _) in &invalid {
        eprintln!("  invalid plan, not run: {}", p.display());
    }
    crate::fleet::worst(
        outcomes
            .iter()
            .map(|o| o.summary.exit())
            .chain(invalid.iter().map(|(_, c)| *c)),
    )
}

fn write_metrics<R: crate::report::metrics::Recorded>(cli: &Cli, runs: &[R]) {
    if let Some(path) = &cli.metrics_file {
        if let Err(e) = crate::report::metrics::write(path, runs) {
            warn_line(format!(
                "warning: writing metrics to {}: {e}",
                path.display()
            ));
        }
    }
}

fn validate(out: &Out, plans: &[std::path::PathBuf]) -> Exit {
    let mut worst = Exit::Ok;
    let mut results = Vec::new();
    for path in plans {
        match plan::load(path) {
            Ok(l) => {
                for w in &l.warnings {
                    out.result(w);
                }
                out.result(format!(
                    "{}: ok ({} store(s), {} restarter(s){})",
                    path.display(),
                    l.plan.stores.len(),
                    l.plan.restarts.len(),
                    if l.warnings.is_empty() {
                        String::new()
                    } else {
                        format!(", {} warning(s)", l.warnings.len())
                    }
                ));
                results.push(serde_json::json!({ "plan": path, "ok": true, "warnings": l.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>() }));
            }
            Err(e) => {
                // The problems are validate's result, not an error of the tool.
                out.result(&e);
                worst = Exit::PlanInvalid;
                results.push(serde_json::json!({ "plan": path, "ok": false, "problems": e.problems.iter().map(|w| w.to_string()).collect::<Vec<_>>() }));
            }
        }
    }
    out.object(serde_json::json!({ "plans": results }));
    worst
}

async fn status(cli: &Cli, out: &Out, loaded: &LoadedPlan) -> Exit {
    // The status table is the command's result: stdout (see `report::output`).
    macro_rules! say {
        ($($t:tt)*) => { out.result(format!($($t)*)) };
    }
    let vault = match build::vault(&loaded.plan).await {
        Ok(v) => v,
        Err(e) => {
            let exit = unbuildable_exit(&e);
            out.error(e);
            return exit;
        }
    };
    let st = match vault.status().await {
        Ok(Some(s)) => s,
        Ok(None) => {
            out.error(format!(
                "vault not found: no pointer at {}",
                vault.describe()
            ));
            return Exit::VaultNotFound;
        }
        Err(e) => {
            out.error(format!("{}: {e}", vault.describe()));
            return Exit::BadInput;
        }
    };
    let lock = match Lock::peek(&vault).await {
        Ok(l) => l,
        Err(e) => {
            out.error(format!("warning: reading the lock failed: {e}"));
            None
        }
    };
    let mut stores = Vec::new();
    for spec in &loaded.plan.stores {
        let line = match build::store(spec).await {
            Ok(s) => match s.preflight().await {
                Ok(p) => (s.describe().to_string(), true, p.detail),
                Err(e) => (s.describe().to_string(), false, e.chain()),
            },
            Err(e) => (spec.type_name().to_owned(), false, e.0),
        };
        stores.push(line);
    }
    let opts = options(cli, loaded);
    let last = Journal::latest(&opts.state_dir, &vault.describe());
    say!("vault     {}", vault.describe());
    say!("layout    {}", st.layout.name());
    say!("pointer   stamp {}", st.stamp);
    let cells: Vec<String> = st
        .cells
        .iter()
        .map(|(c, g)| format!("{c}={}", g.map(|g| g.to_string()).unwrap_or("-".into())))
        .collect();
    let pointer_gen = st
        .pointer_meta
        .get("gen")
        .and_then(|g| g.parse::<u64>().ok());
    say!(
        "gen       {}  ({}){}",
        st.gen,
        if cells.is_empty() {
            "no counter cell".into()
        } else {
            cells.join(", ")
        },
        match pointer_gen {
            Some(pg) if pg > st.gen => format!(
                "; the pointer says gen {pg}: a swap landed and its run has not written the counters"
            ),
            _ if cells.is_empty() => "; never rotated".into(),
            _ => String::new(),
        }
    );
    let age = rotation_age(&st);
    let overdue = match (&loaded.plan.schedule, age) {
        (Some(sched), Some(age)) => crate::plan::parse_duration(&sched.min_age)
            .ok()
            .map(|min| age >= min),
        // Never rotated (by a tool that records it) and on a schedule: due now.
        (Some(_), None) => Some(true),
        (None, _) => None,
    };
    say!(
        "rotated   {}{}",
        match (&st.rotated_at, age) {
            (Some(at), Some(age)) => format!(
                "{at} ({} ago)",
                humantime::format_duration(std::time::Duration::from_secs(age.as_secs()))
            ),
            (Some(at), None) => at.clone(),
            (None, _) => "never (by a tool that records it)".into(),
        },
        match (overdue, &loaded.plan.schedule) {
            (Some(true), Some(s)) => format!("; DUE: schedule.min_age is {}", s.min_age),
            (Some(false), Some(s)) => format!("; not due yet (schedule.min_age {})", s.min_age),
            _ => String::new(),
        }
    );
    match &lock {
        Some(l) => say!(
            "lock      held by run {} of {} since {}",
            l.run_id,
            l.owner,
            l.created_at
        ),
        None => say!("lock      free"),
    }
    for (t, ok, d) in &stores {
        say!("store     {} {t} — {d}", if *ok { "✓" } else { "✗" });
    }
    // Which generations have a sealed break-glass copy: this machine's journals
    // and the objects under the vault prefix.
    // A copy whose run stopped before T0 opens a passphrase that was never live:
    // it is named as such (the run withdraws it; a tombstone marks the key).
    let mut escrowed: std::collections::BTreeMap<u64, Vec<String>> = Default::default();
    let aborted: std::collections::BTreeSet<String> = Journal::all(&opts.state_dir)
        .into_iter()
        .filter(|(_, j)| j.vault == vault.describe() && j.phase == Phase::Aborted)
        .map(|(_, j)| j.run_id.to_string())
        .collect();
    for (_, j) in Journal::all(&opts.state_dir) {
        if let (true, Some(e)) = (j.vault == vault.describe(), &j.escrow) {
            if e.local.exists() {
                let never = if j.phase == Phase::Aborted {
                    " (run stopped before T0: never live)"
                } else {
                    ""
                };
                escrowed
                    .entry(e.generation)
                    .or_default()
                    .push(format!("{}{never}", e.local.display()));
            }
        }
    }
    if let Ok(keys) = vault
        .storage
        .list(&vault.key(".vsync-orchestrate/escrow/"))
        .await
    {
        for k in keys {
            let gen = k
                .rsplit('/')
                .next()
                .and_then(|n| n.strip_prefix("gen-"))
                .and_then(|n| n.split('-').next())
                .and_then(|g| g.parse::<u64>().ok());
            if let Some(g) = gen {
                let tomb = matches!(vault.storage.get(&k).await, Ok(Some(o)) if crate::engine::escrow::is_tombstone(&o.body));
                let run = k
                    .rsplit('/')
                    .next()
                    .and_then(|n| n.strip_suffix(".age"))
                    .and_then(|n| n.splitn(3, '-').nth(2))
                    .unwrap_or("");
                escrowed.entry(g).or_default().push(if tomb {
                    format!("{k} (tombstone: its run stopped before T0, never live)")
                } else if aborted.contains(run) {
                    format!("{k} (run stopped before T0: never live; the next run replaces it with a tombstone)")
                } else {
                    k
                });
            }
        }
    }
    for (g, copies) in &escrowed {
        say!("escrow    gen {g}: {}", copies.join(", "));
    }
    if let Some(j) = &last {
        say!(
            "last run  {} — {:?}{}",
            j.run_id,
            j.phase,
            j.exit_code
                .map(|c| format!(", exit {c}"))
                .unwrap_or_default()
        );
    }
    let unfinished = unfinished_run(&opts.state_dir, &vault, &st, lock.as_ref(), &loaded.path);
    if let Some(u) = &unfinished {
        say!("{}", u.headline);
        say!("next      {}", u.next);
    }
    out.object(serde_json::json!({
                "vault": vault.describe(),
                "status": st,
                "lock": lock,
                "stores": stores.iter().map(|(t, ok, d)| serde_json::json!({"target": t, "ok": ok, "detail": d})).collect::<Vec<_>>(),
                "last_run": last.map(|j| serde_json::json!({"run_id": j.run_id, "phase": j.phase, "exit_code": j.exit_code})),
                "rotation_age_seconds": age.map(|a| a.as_secs()),
                "escrow": escrowed.iter().map(|(g, c)| serde_json::json!({"generation": g, "copies": c})).collect::<Vec<_>>(),
                "overdue": overdue,
                "unfinished": unfinished.as_ref().map(|u| serde_json::json!({
                    "run_id": u.run_id,
                    "exit": u.exit.code(),
                    "headline": u.headline,
                    "next_steps": [u.next],
                })),
    }));
    if let Some(u) = unfinished {
        return u.exit;
    }
    if stores.iter().all(|(_, ok, _)| *ok) {
        Exit::Ok
    } else {
        Exit::PreflightFailed
    }
}

/// A run that stopped half way, as `status` reports it.
struct Unfinished {
    run_id: String,
    headline: String,
    next: String,
    /// 14 while the pointer swap may have been sent and not every store was
    /// activated (the window may be open); 17 otherwise (`resume` finishes).
    exit: Exit,
}

/// What this machine's journals and the vault together say about a run that did
/// not finish. The vault alone cannot say it: a run killed past T0 leaves the
/// pointer on the new bundle while the counters still show the old generation and
/// every store still serves the old passphrase.
fn unfinished_run(
    state_dir: &std::path::Path,
    vault: &crate::vault::Vault,
    st: &crate::vault::VaultStatus,
    lock: Option<&crate::engine::lock::LockBody>,
    plan: &std::path::Path,
) -> Option<Unfinished> {
    let resume = format!("vsync-orchestrate resume {}", plan.display());
    let pointer_gen = st
        .pointer_meta
        .get("gen")
        .and_then(|g| g.parse::<u64>().ok());
    if let Some((_, j)) = Journal::find_unfinished(state_dir, &vault.describe()) {
        let new_stamp = j.prepared.as_ref().map(|p| p.new_stamp.to_string());
        let on_new = new_stamp.as_deref() == Some(st.stamp.as_str());
        if j.phase >= Phase::Activated {
            return Some(Unfinished {
                run_id: j.run_id.to_string(),
                headline: format!(
                    "stopped   run {} stopped at phase {:?}, after every store was activated (the window is closed)",
                    j.run_id, j.phase
                ),
                next: format!("`{resume}` finishes it (bookkeeping, restart, verify)"),
                exit: Exit::Interrupted,
            });
        }
        if j.phase >= Phase::Committing {
            let where_ = if on_new {
                "the pointer names its new bundle, which only the staged passphrase opens"
                    .to_owned()
            } else {
                format!(
                    "the pointer names {}, but a swap of that run may still land",
                    st.stamp
                )
            };
            return Some(Unfinished {
                run_id: j.run_id.to_string(),
                headline: format!(
                    "URGENT    WINDOW MAY BE OPEN: run {} stopped at phase {:?} after its pointer swap was sent; {where_}",
                    j.run_id, j.phase
                ),
                next: format!("`{resume}` finishes it (activate, restart, verify)"),
                exit: Exit::WindowOpen,
            });
        }
        return Some(Unfinished {
            run_id: j.run_id.to_string(),
            headline: format!(
                "stopped   run {} stopped at phase {:?}, before T0; apps are unaffected, its staged versions wait",
                j.run_id, j.phase
            ),
            next: format!("`{resume}` undoes what it staged and rotates again"),
            exit: Exit::Interrupted,
        });
    }
    // No journal here (the run was on another machine): the pointer's own
    // generation ahead of the counters means a swap landed and was never finished.
    match (pointer_gen, lock) {
        (Some(pg), Some(l)) if pg > st.gen => Some(Unfinished {
            run_id: l.run_id.clone(),
            headline: format!(
                "URGENT    WINDOW MAY BE OPEN: the pointer says gen {pg} but the counters say gen {}, and run {} of {} holds the lock",
                st.gen, l.run_id, l.owner
            ),
            next: format!("on the machine that ran {}, `{resume}`", l.run_id),
            exit: Exit::WindowOpen,
        }),
        _ => None,
    }
}

/// How long ago the vault was last rotated, by its counter cell or pointer meta.
fn rotation_age(st: &crate::vault::VaultStatus) -> Option<std::time::Duration> {
    let at = st
        .rotated_at
        .as_deref()
        .or(st.pointer_meta.get("rotated-at").map(String::as_str))?;
    let t = humantime::parse_rfc3339(at).ok()?;
    std::time::SystemTime::now().duration_since(t).ok()
}

async fn audit(out: &Out, loaded: &LoadedPlan, limit: usize) -> Exit {
    let Some(key) = build::audit_key(&loaded.plan) else {
        out.error("audit is disabled in this plan (vault.audit = false)");
        return Exit::BadInput;
    };
    let vault = match build::vault(&loaded.plan).await {
        Ok(v) => v,
        Err(e) => {
            let exit = unbuildable_exit(&e);
            out.error(e);
            return exit;
        }
    };
    let text = match vault.storage.get(&key).await {
        Ok(Some(o)) => String::from_utf8_lossy(&o.body).into_owned(),
        Ok(None) => {
            warn_line(format!("no audit log at {key}"));
            String::new()
        }
        Err(e) => {
            out.error(e);
            return Exit::BadInput;
        }
    };
    let rows = crate::vault::audit::parse(&text);
    let start = rows.len().saturating_sub(limit);
    let rows = &rows[start..];
    let as_maps: Vec<serde_json::Map<String, serde_json::Value>> = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect()
        })
        .collect();
    for r in &as_maps {
        let g = |k: &str| r.get(k).and_then(|v| v.as_str()).unwrap_or("");
        out.result(format!(
            "{}  {:<6} {:<15}  {}@{}  {}",
            g("ts"),
            g("action"),
            g("version_ts"),
            g("os_user"),
            g("hostname"),
            g("meta")
        ));
    }
    out.object(serde_json::json!({ "key": key, "rows": as_maps }));
    Exit::Ok
}

/// A warning on stderr: a plain line, or a WARN event when stderr is JSON only.
fn warn_line(w: impl std::fmt::Display) {
    if crate::report::log::json_only() {
        tracing::warn!(target: "vsync_orchestrate::commands", "{w}");
    } else {
        eprintln!("{w}");
    }
}

/// The question before `run`'s first write, when a person is at a terminal and
/// `--yes` was not given. Anything but `yes` stops the run.
fn confirmation(cli: &Cli) -> Option<engine::Confirm> {
    use std::io::{BufRead, IsTerminal, Write};
    if cli.yes || !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return None;
    }
    Some(engine::Confirm(std::sync::Arc::new(|what: &str| {
        let mut e = std::io::stderr().lock();
        let _ = write!(
            e,
            "\n{what}.\nOnly 'yes' continues (--yes skips this question): "
        );
        let _ = e.flush();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer).is_ok() && answer.trim() == "yes"
    })))
}

/// A vault that cannot be built: the machine's setup (credentials, a service) is
/// exit 12 as in `run`; a plan that cannot work is exit 1.
fn unbuildable_exit(e: &build::BuildError) -> Exit {
    if e.is_unavailable() {
        Exit::PreflightFailed
    } else {
        Exit::BadInput
    }
}
