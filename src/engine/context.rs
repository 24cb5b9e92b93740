//! What every phase of one run shares: the plan, the options, the renderers and the
//! journal. Phases speak only through [`Ctx::emit`]; the helpers below are the
//! events they emit most.

use crate::engine::events::Subscriber;
use crate::engine::events::{Event, JournalEvent, Step, VaultFacts};
use crate::engine::events::{RowError, TargetResult};
use crate::engine::exit::Exit;
use crate::engine::infra::journal::{Journal, Phase};
use crate::engine::options::RunOptions;
use crate::engine::summary::{ms, Summary};
use crate::plan::LoadedPlan;
use std::time::{Duration, Instant};
use vsync_orchestrate_api::{RunId, Target};

pub(crate) struct Ctx<'a> {
    pub loaded: &'a LoadedPlan,
    pub opts: &'a RunOptions,
    /// The display (and its logs): sees every event as it happens.
    pub p: &'a dyn Subscriber,
    /// The JSON renderer's state; read-only for the phases.
    s: Summary,
    journal: Option<Journal>,
    pub run: RunId,
    pub dry_run: bool,
}

impl<'a> Ctx<'a> {
    pub fn new(
        loaded: &'a LoadedPlan,
        opts: &'a RunOptions,
        p: &'a dyn Subscriber,
        command: &str,
        run: RunId,
    ) -> Ctx<'a> {
        let s = Summary {
            run_id: run.to_string(),
            command: format!("{command} {}", loaded.path.display()),
            env: loaded.plan.env.clone(),
            warnings: loaded.warnings.iter().map(|w| w.message.clone()).collect(),
            ..Default::default()
        };
        Ctx {
            loaded,
            opts,
            p,
            s,
            journal: None,
            run,
            dry_run: false,
        }
    }

    /// Every renderer gets every event.
    pub fn emit(&mut self, e: Event) {
        self.p.event(self.run.as_str(), &e);
        if let Some(o) = &self.opts.observer {
            o.0.event(self.run.as_str(), &e);
        }
        self.s.apply(&e);
        if let (Event::Journal(je), Some(j)) = (&e, self.journal.as_mut()) {
            j.apply(je);
        }
    }

    pub fn header(&mut self, line: String) {
        self.emit(Event::Header(line));
    }

    pub fn vault(&mut self, describe: String) {
        self.emit(Event::Vault(describe));
    }

    pub fn phase(&mut self, step: Step, what: &str) {
        self.emit(Event::Phase {
            step,
            what: what.to_owned(),
        });
    }

    /// One result line.
    #[allow(clippy::too_many_arguments)]
    pub fn row(
        &mut self,
        step: Step,
        kind: &str,
        name: &str,
        slot: Option<String>,
        ok: bool,
        detail: impl Into<String>,
        took: Duration,
    ) {
        self.emit(Event::Row(TargetResult {
            phase: step.as_str().into(),
            kind: kind.into(),
            name: name.into(),
            slot,
            ok,
            detail: detail.into(),
            error: None,
            ms: ms(took),
        }));
    }

    /// A failed row about the adapter at `slot`, with why as data.
    pub fn target_failed(
        &mut self,
        step: Step,
        t: &Target,
        slot: String,
        error: impl Into<RowError>,
        detail: impl Into<String>,
        took: Duration,
    ) {
        self.emit(Event::Row(TargetResult {
            phase: step.as_str().into(),
            kind: t.kind.clone(),
            name: t.name.clone(),
            slot: Some(slot),
            ok: false,
            detail: detail.into(),
            error: Some(error.into()),
            ms: ms(took),
        }));
    }

    /// A row about an adapter at plan position `slot` (`store.1`, `restart.2`).
    pub fn target(
        &mut self,
        step: Step,
        t: &Target,
        slot: String,
        ok: bool,
        detail: impl Into<String>,
        took: Duration,
    ) {
        self.row(step, &t.kind, &t.name, Some(slot), ok, detail, took);
    }

    pub fn warn(&mut self, msg: impl Into<String>) {
        self.emit(Event::Warning(msg.into()));
    }

    pub fn note(&mut self, msg: impl Into<String>) {
        self.emit(Event::Note(msg.into()));
    }

    pub fn next_step(&mut self, step: impl Into<String>) {
        self.emit(Event::NextStep(step.into()));
    }

    pub fn facts(&mut self, f: VaultFacts) {
        self.emit(Event::Facts(f));
    }

    pub fn phase_done(&mut self, step: Step, began: Instant) {
        self.emit(Event::Timing {
            step,
            took: began.elapsed(),
        });
    }

    /// `resume` discarded a run and starts a fresh one in the same output.
    pub fn next_run(&mut self, run: RunId) {
        self.s.run_id = run.to_string();
        self.run = run;
        self.journal = None;
    }

    /// Starts the journal of this run (once the lock is held).
    pub fn open_journal(&mut self, j: Journal) {
        self.journal = Some(j);
    }

    pub fn drop_journal(&mut self) {
        self.journal = None;
    }

    /// The journal as it stands (what `resume` will read).
    pub fn journal(&self) -> &Journal {
        self.journal
            .as_ref()
            .expect("the journal exists once the lock is held")
    }

    pub fn record(&mut self, je: JournalEvent) {
        self.emit(Event::Journal(je));
    }

    pub fn reach(&mut self, phase: Phase) {
        self.record(JournalEvent::Phase(phase));
    }

    /// Writes the journal. Before T0 a failure must stop the run (nothing may
    /// happen that `resume` would not know about); after it, use
    /// [`Ctx::checkpoint_or_warn`].
    pub fn checkpoint(&mut self) -> std::io::Result<()> {
        if let Some(j) = self.journal.as_mut() {
            let path = j.save(&self.opts.state_dir)?;
            self.s.journal = Some(path.display().to_string());
        }
        Ok(())
    }

    /// After T0 the vault already says where the run is: a journal that cannot be
    /// written is a warning, not a reason to stop half way.
    pub fn checkpoint_or_warn(&mut self) {
        if let Err(e) = self.checkpoint() {
            let msg = format!(
                "could not write the journal in {}: {e}",
                self.opts.state_dir.display()
            );
            self.warn(msg);
        }
    }

    /// A command that ended before it had anything to do (not due, nothing to
    /// resume): exit 0 with this outcome.
    pub fn nothing_to_do(&mut self, why: impl Into<String>) -> Summary {
        self.s.exit_code = 0;
        self.s.outcome = why.into();
        std::mem::take(&mut self.s)
    }

    /// Ends with a typed failure: its exit code and message.
    pub fn fail(&mut self, f: crate::engine::failure::Failure) -> Summary {
        self.end(f.exit(), f.message())
    }

    /// The summary, with the exit code and outcome; the journal records both.
    pub fn end(&mut self, exit: Exit, why: impl Into<String>) -> Summary {
        self.s.exit_code = exit.code();
        self.s.failure = (exit != Exit::Ok).then(|| self.s.failure_report(exit));
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
        }
        self.checkpoint_or_warn();
        std::mem::take(&mut self.s)
    }
}

/// `store.1`, `restart.2`: an adapter's plan position, 1-based as people count.
pub fn store_slot(i: usize) -> String {
    format!("store.{}", i + 1)
}

pub fn restart_slot(i: usize) -> String {
    format!("restart.{}", i + 1)
}
