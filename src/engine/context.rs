//! What every phase of one run shares: the plan, the options, the progress display,
//! the summary being built and the journal. Every row the operator sees is written
//! through [`Ctx::row`], which also records it in the summary, so the human output
//! and `--output json` cannot disagree.

use super::journal::Journal;
use super::{Exit, RunOptions};
use crate::plan::LoadedPlan;
use crate::report::{ms, Progress, Summary, TargetResult};
use std::time::{Duration, Instant};
use vsync_orchestrate_api::{RunId, Target};

/// The phases of the runbook, as the operator reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Preflight,
    Plan,
    Stage,
    Rotate,
    Activate,
    Restart,
    Verify,
    Resume,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Preflight => "preflight",
            Step::Plan => "plan",
            Step::Stage => "stage",
            Step::Rotate => "rotate",
            Step::Activate => "activate",
            Step::Restart => "restart",
            Step::Verify => "verify",
            Step::Resume => "resume",
        }
    }
}

pub(crate) struct Ctx<'a> {
    pub loaded: &'a LoadedPlan,
    pub opts: &'a RunOptions,
    pub p: &'a Progress,
    pub s: Summary,
    pub journal: Option<Journal>,
    pub run: RunId,
    pub dry_run: bool,
}

impl<'a> Ctx<'a> {
    pub fn new(
        loaded: &'a LoadedPlan,
        opts: &'a RunOptions,
        p: &'a Progress,
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

    pub fn phase(&self, step: Step, what: &str) {
        self.p.phase(step.as_str(), what);
    }

    /// One result line: printed, and kept for the JSON summary.
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
        let detail = detail.into();
        let label = if name.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind} {name}")
        };
        if ok {
            self.p.ok(&label, &detail, took);
        } else {
            self.p.fail(&label, &detail, took);
        }
        self.s.targets.push(TargetResult {
            phase: step.as_str().into(),
            kind: kind.into(),
            name: name.into(),
            slot,
            ok,
            detail,
            ms: ms(took),
        });
    }

    /// A row about an adapter at plan position `slot` (`store.1`, `restart.2`).
    #[allow(clippy::too_many_arguments)]
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
        let msg = msg.into();
        self.p.warn(&msg);
        self.s.warnings.push(msg);
    }

    pub fn next_step(&mut self, step: impl Into<String>) {
        self.s.next_steps.push(step.into());
    }

    pub fn phase_done(&mut self, step: Step, began: Instant) {
        self.s
            .phases_ms
            .insert(step.as_str().into(), ms(began.elapsed()));
    }

    pub fn journal(&mut self) -> &mut Journal {
        self.journal
            .as_mut()
            .expect("the journal exists once the lock is held")
    }

    /// Writes the journal. Before T0 a failure must stop the run (nothing may
    /// happen that `resume` would not know about); after it, the caller warns.
    pub fn save(&mut self) -> std::io::Result<()> {
        if let Some(j) = self.journal.as_mut() {
            let path = j.save(&self.opts.state_dir)?;
            self.s.journal = Some(path.display().to_string());
        }
        Ok(())
    }

    /// [`Ctx::save`] after T0: the vault already says where the run is, so a failed
    /// write is a warning, not a reason to stop half way.
    pub fn save_or_warn(&mut self) {
        if let Err(e) = self.save() {
            self.warn(format!(
                "could not write the journal in {}: {e}",
                self.opts.state_dir.display()
            ));
        }
    }

    /// The summary, with the exit code and outcome; the journal records both.
    pub fn end(&mut self, exit: Exit, why: impl Into<String>) -> Summary {
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
        }
        self.save_or_warn();
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
