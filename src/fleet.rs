//! `run plans/*.toml --parallel N`: every environment a team has, in one job.
//!
//! Each plan is an independent run under its own vault's lock (locks live in the
//! vault's bucket, so the same plans can run from several machines at once without
//! stepping on each other); a failing environment never stops the others; the exit
//! code is the most urgent one; one summary line per plan closes the output.

use crate::engine::{self, Exit, RunOptions};
use crate::plan::LoadedPlan;
use crate::report::{Progress, Summary};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// One plan's result: its summary, or why it never ran (an invalid plan).
pub struct Outcome {
    pub plan: std::path::PathBuf,
    pub summary: Summary,
}

/// Runs every plan, `parallel` at a time, each with its own progress prefix.
pub async fn run_all(
    plans: Vec<(LoadedPlan, RunOptions)>,
    parallel: usize,
    on_done: impl Fn(&Outcome) + Send + Sync + 'static,
) -> Vec<Outcome> {
    let gate = Arc::new(Semaphore::new(parallel.max(1)));
    let on_done = Arc::new(on_done);
    let width = plans
        .iter()
        .map(|(l, _)| l.plan.env.len())
        .max()
        .unwrap_or(0);
    let tasks: Vec<_> = plans
        .into_iter()
        .map(|(loaded, opts)| {
            let (gate, on_done) = (gate.clone(), on_done.clone());
            tokio::spawn(async move {
                let _turn = gate.acquire_owned().await.expect("semaphore open");
                let progress = Progress::new().prefixed(format!("[{:<width$}] ", loaded.plan.env));
                let summary = engine::run(&loaded, &opts, &progress, false).await;
                let out = Outcome {
                    plan: loaded.path.clone(),
                    summary,
                };
                on_done(&out);
                out
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        match t.await {
            Ok(o) => out.push(o),
            Err(e) => eprintln!("a run task ended abnormally: {e}"),
        }
    }
    out
}

/// The most urgent exit code of several.
pub fn worst(outcomes: impl IntoIterator<Item = Exit>) -> Exit {
    outcomes.into_iter().fold(Exit::Ok, Exit::most_urgent)
}

/// The closing table, one line per plan.
pub fn table(outcomes: &[Outcome]) -> String {
    let mut rows: Vec<[String; 6]> = vec![[
        "env".into(),
        "exit".into(),
        "gen".into(),
        "window".into(),
        "plan".into(),
        "outcome".into(),
    ]];
    for o in outcomes {
        let s = &o.summary;
        rows.push([
            s.env.clone(),
            s.exit_code.to_string(),
            match (s.gen_before, s.gen_after) {
                (Some(b), Some(a)) => format!("{b} → {a}"),
                (Some(b), None) => b.to_string(),
                _ => "-".into(),
            },
            s.window_ms
                .map(|w| format!("{w:.1} ms"))
                .unwrap_or_else(|| "-".into()),
            o.plan.display().to_string(),
            s.outcome.clone(),
        ]);
    }
    let width = |c: usize| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0);
    let w: Vec<usize> = (0..5).map(width).collect();
    rows.iter()
        .map(|r| {
            format!(
                "  {:<w0$}  {:>w1$}  {:<w2$}  {:>w3$}  {:<w4$}  {}\n",
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                w0 = w[0],
                w1 = w[1],
                w2 = w[2],
                w3 = w[3],
                w4 = w[4]
            )
        })
        .collect()
}

/// A fleet run's metrics carry each plan's path (`report::metrics`).
impl crate::report::metrics::Recorded for Outcome {
    fn summary(&self) -> &Summary {
        &self.summary
    }
    fn plan(&self) -> Option<&std::path::Path> {
        Some(&self.plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_urgent_code_wins() {
        let worst = |codes: &[u8]| {
            worst(
                codes
                    .iter()
                    .map(|c| Exit::from_code(*c).expect("a documented code")),
            )
            .code()
        };
        assert_eq!(worst(&[0, 16, 4, 0]), 16);
        assert_eq!(worst(&[0, 12, 14, 15]), 14);
        assert_eq!(worst(&[0, 0]), 0);
        assert_eq!(worst(&[10, 0]), 10);
        assert_eq!(worst(&[]), 0);
    }
}
