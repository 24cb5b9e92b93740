//! Structured logs: the fourth renderer of the engine's events (after the progress
//! display, the summary and the journal), for cron jobs and log shippers.
//!
//! Off by default except warnings: the progress display is what a person reads.
//! `-v`/`-vv`/`-vvv` raise this tool's own crates to info/debug/trace and leave
//! third-party crates at warn; `RUST_LOG` replaces the whole filter. A passphrase
//! never reaches a log line: events carry targets, details and timings, and the
//! details are the same text the display prints (tested at TRACE).

use crate::engine::events::{Event, JournalEvent};
use crate::engine::summary::{ms, Summary};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use tracing_subscriber::EnvFilter;

/// `--log-format json`: stderr carries JSON lines only, so the human progress
/// display, the closing block and plain warnings step aside (they are all in the
/// logs as events).
static JSON_ONLY: AtomicBool = AtomicBool::new(false);

/// Whether stderr is reserved for JSON log lines.
pub fn json_only() -> bool {
    JSON_ONLY.load(Ordering::Relaxed)
}

/// Logs an event under the target of the engine phase it belongs to
/// (`vsync_orchestrate::engine::stage`, …), so `RUST_LOG=vsync_orchestrate::engine=debug`
/// or `…::engine::restart=trace` selects what it names. A target must be a
/// literal, hence one arm per phase.
macro_rules! by_phase {
    ($phase:expr, $level:ident, $($args:tt)*) => {
        match $phase {
            "preflight" => tracing::$level!(target: "vsync_orchestrate::engine::preflight", $($args)*),
            "plan" => tracing::$level!(target: "vsync_orchestrate::engine::plan", $($args)*),
            "stage" => tracing::$level!(target: "vsync_orchestrate::engine::stage", $($args)*),
            "rotate" => tracing::$level!(target: "vsync_orchestrate::engine::rotate", $($args)*),
            "activate" => tracing::$level!(target: "vsync_orchestrate::engine::activate", $($args)*),
            "restart" => tracing::$level!(target: "vsync_orchestrate::engine::restart", $($args)*),
            "verify" => tracing::$level!(target: "vsync_orchestrate::engine::verify", $($args)*),
            "resume" => tracing::$level!(target: "vsync_orchestrate::engine::resume", $($args)*),
            _ => tracing::$level!(target: "vsync_orchestrate::engine", $($args)*),
        }
    };
}

/// `--log-format`: how log lines are written.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The logs of one display: each run's events in a span of its current phase.
#[derive(Default)]
pub struct Logs {
    span: Mutex<Option<(&'static str, tracing::Span)>>,
}

impl Logs {
    /// Logs one engine event, in the span of the phase it belongs to.
    pub fn event(&self, run: &str, e: &Event) {
        let mut span = self.span.lock().unwrap_or_else(|p| p.into_inner());
        if let Event::Phase { step, .. } = e {
            *span = Some((step.as_str(), phase_span(run, step.as_str())));
        }
        let (phase, span) = span.get_or_insert_with(|| ("start", phase_span(run, "start")));
        event(run, phase, span, e);
    }
}

/// How a command ended, once: INFO when it succeeded, ERROR with the phase, the
/// exit code and each failed target's slot otherwise — what a log shipper alerts on.
pub fn outcome(s: &Summary) {
    let phase = s
        .failure
        .as_ref()
        .and_then(|f| f.phase)
        .map(|p| p.as_str())
        .unwrap_or("");
    if s.exit_code == 0 {
        by_phase!(phase, info, run = %s.run_id, exit_code = s.exit_code, "{}", s.outcome);
        return;
    }
    let failed: Vec<String> = s
        .failure
        .iter()
        .flat_map(|f| &f.failed)
        .map(|t| t.slot.clone().unwrap_or_else(|| t.target.clone()))
        .collect();
    by_phase!(
        phase,
        error,
        run = %s.run_id,
        phase,
        exit_code = s.exit_code,
        targets = %failed.join(","),
        "{}",
        s.outcome
    );
}

/// A directive's target matches every target that starts with it, so this one
/// names the root crate and every `vsync_orchestrate_*` adapter crate.
const OWN_CRATES: [&str; 1] = ["vsync_orchestrate"];

/// The filter `-v` counts ask for.
pub fn filter(verbose: u8) -> EnvFilter {
    if let Ok(f) = EnvFilter::try_from_default_env() {
        return f;
    }
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let mut directives = vec!["warn".to_owned()];
    if verbose == 0 {
        // The credential chain warns about every provider it tried, with the SDK's
        // debug dump; the tool's own error says what was missing and how to fix it.
        directives.push("aws_config=error".to_owned());
    }
    directives.extend(OWN_CRATES.iter().map(|c| format!("{c}={level}")));
    EnvFilter::new(directives.join(","))
}

/// Installs the subscriber (once, at start).
pub fn init(verbose: u8, format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(verbose))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    JSON_ONLY.store(format == LogFormat::Json, Ordering::Relaxed);
    let _ = match format {
        LogFormat::Text => builder.with_target(true).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// The span events of one phase are logged in.
pub fn phase_span(run: &str, phase: &str) -> tracing::Span {
    tracing::info_span!("phase", run = %run, phase)
}

/// Logs one engine event.
pub fn event(run: &str, phase: &str, span: &tracing::Span, e: &Event) {
    let _in = span.enter();
    match e {
        Event::Header(line) => by_phase!(phase, info, run = %run, "{line}"),
        Event::Vault(v) => by_phase!(phase, debug, run = %run, vault = %v, "vault"),
        Event::Phase { step, what } => {
            by_phase!(phase, info, run = %run, phase = step.as_str(), "{what}")
        }
        Event::Row(r) => {
            let t = tracing::info_span!(
                "target",
                kind = %r.kind,
                object = %r.name,
                slot = r.slot.as_deref().unwrap_or("")
            );
            let _t = t.enter();
            let error = r.error.and_then(|e| serde_json::to_value(e).ok());
            let error = error.as_ref().and_then(|v| v.as_str()).unwrap_or("");
            if r.ok {
                by_phase!(r.phase.as_str(), info, run = %run, phase = %r.phase, ok = true, ms = r.ms, "{}", r.detail);
            } else {
                by_phase!(r.phase.as_str(), error, run = %run, phase = %r.phase, ok = false, error, ms = r.ms, "{}", r.detail);
            }
        }
        Event::Warning(w) => by_phase!(phase, warn, run = %run, "{w}"),
        Event::Note(n) => by_phase!(phase, info, run = %run, "{n}"),
        Event::NextStep(n) => by_phase!(phase, info, run = %run, next_step = true, "{n}"),
        Event::Timing { step, took } => {
            by_phase!(step.as_str(), debug, run = %run, phase = step.as_str(), ms = ms(*took), "phase finished")
        }
        Event::Window(w) => {
            by_phase!(phase, info, run = %run, window_ms = ms(*w), "window T0 → T1 closed")
        }
        Event::T2(t) => {
            by_phase!(phase, info, run = %run, t2_ms = ms(*t), "every rollout done")
        }
        Event::Delivery(d) => {
            for w in d {
                by_phase!(phase, info, run = %run, slot = %w.slot, target = %w.target, path = w.path.words(), window_ms = w.window_ms, "delivery window");
            }
        }
        Event::Facts(f) => by_phase!(phase, debug,
            run = %run,
            gen_before = f.gen_before,
            gen_after = f.gen_after,
            old_stamp = f.old_stamp.as_deref(),
            new_stamp = f.new_stamp.as_deref(),
            "vault facts"
        ),
        Event::Health(h) => {
            for u in h {
                by_phase!(phase, info, run = %run, url = %u.url, ok = u.ok, samples = u.samples, "health");
            }
        }
        Event::PlannedWrites(w) => {
            by_phase!(phase, debug, run = %run, writes = w.len(), "planned writes")
        }
        Event::AuditRow(_) => by_phase!(phase, debug, run = %run, "audit row appended"),
        Event::ManualAuditRow(_) => {
            by_phase!(phase, warn, run = %run, "the audit row must be appended by hand")
        }
        Event::Journal(j) => match j {
            JournalEvent::Phase(p) => {
                by_phase!(phase, debug, run = %run, journal_phase = %format!("{p:?}").to_lowercase(), "journal")
            }
            JournalEvent::Staged(s) => {
                by_phase!(phase, debug, run = %run, staged = s.len(), "journal: staged")
            }
            JournalEvent::Prepared(p) => {
                by_phase!(phase, debug, run = %run, bundle = %p.bundle_key, "journal: bundle uploaded")
            }
            JournalEvent::RotatedAt(r) => {
                by_phase!(phase, debug, run = %run, rotated_at = %r, "journal")
            }
            JournalEvent::Activated(slot) => {
                by_phase!(phase, debug, run = %run, slot, "journal: activated")
            }
            JournalEvent::RolloutStarted(r) => {
                by_phase!(phase, debug, run = %run, slot = r.slot, rollout = %r.rollout.id, "journal: rollout started")
            }
            JournalEvent::RolloutFinished { slot, ok } => {
                by_phase!(phase, debug, run = %run, slot, ok, "journal: rollout finished")
            }
            JournalEvent::Note(n) => by_phase!(phase, debug, run = %run, "journal: {n}"),
            JournalEvent::Escrow(r) => {
                by_phase!(phase, info, run = %run, generation = r.generation, local = %r.local.display(), "escrow written")
            }
        },
    }
}
