//! What the operator sees: progress lines on stderr while the run goes, a summary
//! at the end, and one JSON object on stdout with `--output json`.

pub mod log;
pub mod metrics;
pub mod output;

pub use crate::engine::events::TargetResult;
use crate::engine::events::{Event, Subscriber};
pub use crate::engine::summary::{ms, Summary};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Without a terminal (cron, CI, a journal), how often a slow wait prints that it
/// is still waiting: otherwise a 60 s health wait shows nothing for 60 s.
pub const HEARTBEAT: Duration = Duration::from_secs(10);

/// Progress on stderr: one line per phase and target, with elapsed time, and a
/// live indicator while waiting when stderr is a terminal (a heartbeat line every
/// [`HEARTBEAT`] when it is not). It is the human
/// renderer of the engine's events ([`Progress::render`]) and, beside it, the
/// structured logs ([`log::Logs`]): the engine's [`Subscriber`] for a person.
pub struct Progress {
    start: Instant,
    tty: bool,
    quiet: bool,
    /// Tests read what an operator would have seen.
    captured: Option<Arc<Mutex<String>>>,
    /// `[env] ` when several plans run at once and their lines interleave.
    prefix: String,
    logs: log::Logs,
    heartbeat: Duration,
    /// How many heartbeats the current wait has printed.
    beats: AtomicU64,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

pub fn fmt_ms(d: Duration) -> String {
    let m = d.as_secs_f64() * 1000.0;
    if m < 10.0 {
        format!("{m:.1} ms")
    } else if m < 10_000.0 {
        format!("{m:.0} ms")
    } else {
        format!("{:.1} s", m / 1000.0)
    }
}

impl Progress {
    pub fn new() -> Progress {
        Progress {
            start: Instant::now(),
            tty: std::io::stderr().is_terminal(),
            quiet: false,
            captured: None,
            prefix: String::new(),
            logs: log::Logs::default(),
            heartbeat: HEARTBEAT,
            beats: AtomicU64::new(0),
        }
    }

    /// Writes into a buffer instead of stderr (tests compare it with the summary).
    pub fn capture() -> (Progress, Arc<Mutex<String>>) {
        let buf = Arc::new(Mutex::new(String::new()));
        (
            Progress {
                start: Instant::now(),
                tty: false,
                quiet: false,
                captured: Some(buf.clone()),
                prefix: String::new(),
                logs: log::Logs::default(),
                heartbeat: HEARTBEAT,
                beats: AtomicU64::new(0),
            },
            buf,
        )
    }

    /// Prints nothing (benchmarks print their own tables).
    pub fn quiet() -> Progress {
        Progress {
            start: Instant::now(),
            tty: false,
            quiet: true,
            captured: None,
            prefix: String::new(),
            logs: log::Logs::default(),
            heartbeat: HEARTBEAT,
            beats: AtomicU64::new(0),
        }
    }

    /// Heartbeats on waits without a terminal every `every` instead of [`HEARTBEAT`]
    /// (tests wait a second, not ten).
    pub fn heartbeat_every(mut self, every: Duration) -> Progress {
        self.heartbeat = every.max(Duration::from_millis(1));
        self
    }

    /// Every line starts with `prefix` (the env, when plans run side by side).
    pub fn prefixed(mut self, prefix: impl Into<String>) -> Progress {
        self.prefix = prefix.into();
        // Interleaved lines from several runs: no live redraw.
        self.tty = false;
        self
    }

    fn emit(&self, s: &str) {
        // Quiet, or stderr reserved for JSON log lines (the events are logged).
        if self.quiet || (self.captured.is_none() && log::json_only()) {
            return;
        }
        let owned;
        let s = if self.prefix.is_empty() {
            s
        } else {
            owned = format!("{}{s}", self.prefix);
            &owned
        };
        if let Some(buf) = &self.captured {
            let mut b = buf.lock().unwrap_or_else(|e| e.into_inner());
            b.push_str(s);
            b.push('\n');
            return;
        }
        let mut e = std::io::stderr().lock();
        if self.tty {
            let _ = write!(e, "\r\x1b[K");
        }
        let _ = writeln!(e, "{s}");
    }

    pub fn line(&self, s: impl AsRef<str>) {
        self.emit(s.as_ref());
    }

    pub fn phase(&self, name: &str, what: &str) {
        let t = self.start.elapsed().as_secs_f64();
        self.emit(&format!("[{t:>7.2}s] {name:<9} {what}"));
    }

    pub fn ok(&self, what: &str, detail: &str, took: Duration) {
        self.emit(&format!(
            "            ✓ {what}{}  ({})",
            sep(detail),
            fmt_ms(took)
        ));
    }

    pub fn fail(&self, what: &str, detail: &str, took: Duration) {
        self.emit(&format!(
            "            ✗ {what}{}  ({})",
            sep(detail),
            fmt_ms(took)
        ));
    }

    pub fn warn(&self, s: &str) {
        self.emit(&format!("            ! {s}"));
    }

    /// The human rendering of one engine event.
    pub fn render(&self, e: &Event) {
        match e {
            Event::Header(l) => self.line(l),
            Event::Phase { step, what } => self.phase(step.as_str(), what),
            Event::Row(r) => {
                let took = Duration::from_secs_f64(r.ms / 1000.0);
                if r.ok {
                    self.ok(&r.label(), &r.detail, took);
                } else {
                    self.fail(&r.label(), &r.detail, took);
                }
            }
            Event::Warning(w) => self.warn(w),
            Event::Note(n) => self.line(format!("            {n}")),
            Event::Window(w) => self.line(format!("            window T0 → T1: {}", fmt_ms(*w))),
            _ => {}
        }
    }
}

impl Subscriber for Progress {
    fn event(&self, run: &str, e: &Event) {
        self.logs.event(run, e);
        self.render(e);
    }

    /// A terminal redraws a spinner; anything else gets heartbeat lines. Neither
    /// when quiet or when stderr carries JSON log lines only.
    fn live(&self) -> bool {
        !self.quiet && (self.captured.is_some() || !log::json_only())
    }

    fn tick(&self, label: &str, elapsed: Duration, frame: usize) {
        if !self.tty {
            let due = (elapsed.as_nanos() / self.heartbeat.as_nanos()) as u64;
            if due > self.beats.load(Ordering::Relaxed) {
                self.beats.store(due, Ordering::Relaxed);
                let at = self.heartbeat.saturating_mul(due as u32);
                self.emit(&format!("            {label} ({}s)…", at.as_secs()));
            }
            return;
        }
        let spin = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
        let mut e = std::io::stderr();
        let _ = write!(
            e,
            "\r\x1b[K            {} {label} ({}s)",
            spin[frame % spin.len()],
            elapsed.as_secs()
        );
        let _ = e.flush();
    }

    fn tick_end(&self) {
        self.beats.store(0, Ordering::Relaxed);
        if self.tty {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}

fn sep(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" — {detail}")
    }
}

impl Summary {
    /// The closing block on stderr: the end of a run's progress.
    pub fn print_human(&self) {
        if log::json_only() {
            return;
        }
        self.write_human(&mut std::io::stderr().lock());
    }

    /// The closing block, to `e`: stdout where it is the command's result (`plan`).
    pub fn write_human(&self, e: &mut dyn Write) {
        let _ = writeln!(e);
        let status = if self.exit_code == 0 { "✓" } else { "✗" };
        let _ = writeln!(
            e,
            "{status} {} — exit {}: {}",
            self.command, self.exit_code, self.outcome
        );
        if let (Some(b), Some(a)) = (self.gen_before, self.gen_after) {
            let _ = writeln!(
                e,
                "  vault    {}  gen {b} → {a}  stamp {} → {}",
                self.vault,
                self.old_stamp.as_deref().unwrap_or("?"),
                self.new_stamp.as_deref().unwrap_or("?")
            );
        } else if let Some(b) = self.gen_before {
            let _ = writeln!(
                e,
                "  vault    {}  gen {b}  stamp {}",
                self.vault,
                self.old_stamp.as_deref().unwrap_or("?")
            );
        }
        if let Some(w) = self.window_ms {
            let _ = writeln!(
                e,
                "  window   {w:.1} ms  (pointer swap T0 → every store activated T1)"
            );
        }
        for d in self.delivery.iter().filter(|d| d.window_ms.is_some()) {
            let path = d.path.words();
            let _ = writeln!(
                e,
                "  delivery {}  T0 → a starting app gets it: {} ({path})",
                d.target,
                fmt_ms(Duration::from_secs_f64(d.window_ms.unwrap_or(0.0) / 1000.0))
            );
        }
        if let Some(t2) = self.t2_ms {
            let t2 = fmt_ms(Duration::from_secs_f64(t2 / 1000.0));
            let _ = writeln!(e, "  restart  T2 = T0 + {t2}: every rollout reported done");
        }
        if !self.phases_ms.is_empty() {
            let order = [
                "preflight",
                "stage",
                "rotate",
                "activate",
                "restart",
                "verify",
            ];
            let mut names: Vec<&String> = self.phases_ms.keys().collect();
            names.sort_by_key(|k| order.iter().position(|o| o == k).unwrap_or(order.len()));
            let p: Vec<String> = names
                .iter()
                .map(|k| {
                    format!(
                        "{k} {}",
                        fmt_ms(Duration::from_secs_f64(self.phases_ms[*k] / 1000.0))
                    )
                })
                .collect();
            let _ = writeln!(e, "  phases   {}", p.join(", "));
        }
        for w in &self.warnings {
            let _ = writeln!(e, "  warning  {w}");
        }
        if let Some(row) = &self.manual_audit_row {
            let _ = writeln!(e);
            let _ = writeln!(
                e,
                "Manual audit row — append this line to the audit log yourself:"
            );
            let _ = writeln!(e, "{row}");
        }
        if !self.next_steps.is_empty() {
            let _ = writeln!(e, "  next steps:");
            for s in &self.next_steps {
                let _ = writeln!(e, "    - {s}");
            }
        }
        if let Some(j) = &self.journal {
            let _ = writeln!(e, "  journal  {j}");
        }
    }
}
