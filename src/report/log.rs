//! Structured logs: the fourth renderer of the engine's events (after the progress
//! display, the summary and the journal), for cron jobs and log shippers.
//!
//! Off by default except warnings: the progress display is what a person reads.
//! `-v`/`-vv`/`-vvv` raise this tool's own crates to info/debug/trace and leave
//! third-party crates at warn; `RUST_LOG` replaces the whole filter. A passphrase
//! never reaches a log line: events carry targets, details and timings, and the
//! details are the same text the display prints (tested at TRACE).

use crate::engine::events::{Event, JournalEvent};
use std::sync::Mutex;
use tracing_subscriber::EnvFilter;

/// `--log-format`: how log lines are written.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The logs of one display: each run's events in a span of its current phase.
#[derive(Default)]
pub struct Logs {
    span: Mutex<Option<tracing::Span>>,
}

impl Logs {
    /// Logs one engine event, in the span of the phase it belongs to.
    pub fn event(&self, run: &str, e: &Event) {
        let mut span = self.span.lock().unwrap_or_else(|p| p.into_inner());
        if let Event::Phase { step, .. } = e {
            *span = Some(phase_span(run, step.as_str()));
        }
        let span = span.get_or_insert_with(|| phase_span(run, "start"));
        event(run, span, e);
    }
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
    directives.extend(OWN_CRATES.iter().map(|c| format!("{c}={level}")));
    EnvFilter::new(directives.join(","))
}

/// Installs the subscriber (once, at start).
pub fn init(verbose: u8, format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(verbose))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
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
pub fn event(run: &str, span: &tracing::Span, e: &Event) {
    let _in = span.enter();
    match e {
        Event::Header(line) => tracing::info!(run = %run, "{line}"),
        Event::Vault(v) => tracing::debug!(run = %run, vault = %v, "vault"),
        Event::Phase { step, what } => tracing::info!(run = %run, phase = step.as_str(), "{what}"),
        Event::Row(r) => {
            let t = tracing::info_span!(
                "target",
                kind = %r.kind,
                object = %r.name,
                slot = r.slot.as_deref().unwrap_or("")
            );
            let _t = t.enter();
            if r.ok {
                tracing::info!(run = %run, phase = %r.phase, ok = true, ms = r.ms, "{}", r.detail);
            } else {
                tracing::warn!(run = %run, phase = %r.phase, ok = false, ms = r.ms, "{}", r.detail);
            }
        }
        Event::Warning(w) => tracing::warn!(run = %run, "{w}"),
        Event::Note(n) => tracing::info!(run = %run, "{n}"),
        Event::NextStep(n) => tracing::info!(run = %run, next_step = true, "{n}"),
        Event::Timing { step, took } => {
            tracing::debug!(run = %run, phase = step.as_str(), ms = took.as_secs_f64() * 1000.0, "phase finished")
        }
        Event::Window(w) => {
            tracing::info!(run = %run, window_ms = w.as_secs_f64() * 1000.0, "window T0 → T1 closed")
        }
        Event::T2(t) => {
            tracing::info!(run = %run, t2_ms = t.as_secs_f64() * 1000.0, "every rollout done")
        }
        Event::Facts(f) => tracing::debug!(
            run = %run,
            gen_before = ?f.gen_before,
            gen_after = ?f.gen_after,
            old_stamp = ?f.old_stamp,
            new_stamp = ?f.new_stamp,
            "vault facts"
        ),
        Event::Health(h) => {
            for u in h {
                tracing::info!(run = %run, url = %u.url, ok = u.ok, samples = u.samples, "health");
            }
        }
        Event::PlannedWrites(w) => tracing::debug!(run = %run, writes = w.len(), "planned writes"),
        Event::AuditRow(_) => tracing::debug!(run = %run, "audit row appended"),
        Event::ManualAuditRow(_) => {
            tracing::warn!(run = %run, "the audit row must be appended by hand")
        }
        Event::Journal(j) => match j {
            JournalEvent::Phase(p) => tracing::debug!(run = %run, journal_phase = ?p, "journal"),
            JournalEvent::Staged(s) => {
                tracing::debug!(run = %run, staged = s.len(), "journal: staged")
            }
            JournalEvent::Prepared(p) => {
                tracing::debug!(run = %run, bundle = %p.bundle_key, "journal: bundle uploaded")
            }
            JournalEvent::RotatedAt(r) => tracing::debug!(run = %run, rotated_at = %r, "journal"),
            JournalEvent::Activated(slot) => {
                tracing::debug!(run = %run, slot, "journal: activated")
            }
            JournalEvent::RolloutStarted(r) => {
                tracing::debug!(run = %run, slot = r.slot, rollout = %r.rollout.id, "journal: rollout started")
            }
            JournalEvent::RolloutFinished { slot, ok } => {
                tracing::debug!(run = %run, slot, ok, "journal: rollout finished")
            }
            JournalEvent::Note(n) => tracing::debug!(run = %run, "journal: {n}"),
            JournalEvent::Escrow(r) => {
                tracing::info!(run = %run, generation = r.generation, local = %r.local.display(), "escrow written")
            }
        },
    }
}
