use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use vsync_orchestrate_api::{
    async_trait, Error, Preflight, RestartContext, Restarter, RestarterCapabilities, Result,
    Rollout, RolloutOutcome, RunId, Target,
};

pub use crate::config::CommandTarget as CommandTargetSpec;

/// The plan's `type` tag.
pub const KIND: &str = "command";

/// Restarts by running a command per target (a script, `docker restart`, a
/// supervisor's CLI). The passphrase is never given to it: not in argv, not in
/// the environment, not on stdin.
#[derive(Debug, Clone)]
pub struct CommandRestarter {
    targets: Vec<CommandTargetSpec>,
    parallel: bool,
    timeout: Duration,
}

impl CommandRestarter {
    pub fn new(targets: Vec<CommandTargetSpec>, parallel: bool, timeout: Duration) -> Self {
        CommandRestarter {
            targets,
            parallel,
            timeout,
        }
    }

    async fn run_one(
        &self,
        t: &CommandTargetSpec,
        run: &RunId,
        deadline: Instant,
    ) -> std::result::Result<(), Miss> {
        let left = deadline.saturating_duration_since(Instant::now());
        let budget = self.timeout.min(left);
        let fail = |m: String| Miss::Failed(m);
        let mut cmd = tokio::process::Command::new(&t.argv[0]);
        vsync_orchestrate_api::child_env::scrub_tokio(&mut cmd);
        let mut child = cmd
            .args(&t.argv[1..])
            .env("VSYNC_ORCHESTRATE_RUN_ID", run.as_str())
            .env("VSYNC_ORCHESTRATE_TARGET", &t.name)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail(format!("{}: cannot start {:?}: {e}", t.name, t.argv[0])))?;
        let mut stderr = child.stderr.take().expect("piped");
        let mut err_text = Vec::new();
        let res = tokio::time::timeout(budget, async {
            let _ = stderr.read_to_end(&mut err_text).await;
            child.wait().await
        })
        .await;
        let tail = || {
            let s = String::from_utf8_lossy(&err_text);
            let lines: Vec<&str> = s.lines().rev().take(5).collect();
            lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
        };
        match res {
            Err(_) => {
                let _ = child.kill().await;
                let m = format!(
                    "{}: timed out after {}",
                    t.name,
                    humantime::format_duration(budget)
                );
                // The rollout's deadline is not the command failing: it may still
                // have been about to succeed, and `resume` can wait again.
                Err(if left <= self.timeout {
                    Miss::Deadline(m)
                } else {
                    Miss::Failed(m)
                })
            }
            Ok(Err(e)) => Err(fail(format!("{}: {e}", t.name))),
            Ok(Ok(st)) if st.success() => Ok(()),
            Ok(Ok(st)) => Err(fail(format!("{}: exited with {st}: {}", t.name, tail()))),
        }
    }
}

/// Why one target did not finish.
enum Miss {
    /// It failed, or took longer than its own `timeout`.
    Failed(String),
    /// The rollout's deadline came first.
    Deadline(String),
}

fn resolvable(cmd: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let exec = |p: &std::path::Path| {
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if cmd.contains('/') {
        return exec(std::path::Path::new(cmd));
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| exec(&d.join(cmd))))
        .unwrap_or(false)
}

#[async_trait]
impl Restarter for CommandRestarter {
    fn describe(&self) -> Target {
        Target::new(
            KIND,
            self.targets
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        )
    }

    /// A command cannot be stopped half-way in any meaningful sense: no `cancel`.
    fn capabilities(&self) -> RestarterCapabilities {
        RestarterCapabilities::default()
    }

    async fn preflight(&self) -> Result<Preflight> {
        for t in &self.targets {
            if !resolvable(&t.argv[0]) {
                return Err(Error::invalid_config(format!(
                    "target {}: {:?} is not an executable file or a command on PATH",
                    t.name, t.argv[0]
                )));
            }
        }
        Ok(Preflight {
            detail: format!(
                "{} target(s), {}",
                self.targets.len(),
                if self.parallel {
                    "in parallel"
                } else {
                    "in order"
                }
            ),
            warnings: vec![],
            ..Default::default()
        })
    }

    async fn restart(&self, ctx: &RestartContext) -> Result<Rollout> {
        let run = &ctx.run;
        Ok(Rollout {
            target: self.describe(),
            run: run.clone(),
            id: run.to_string(),
            extra: serde_json::Value::Null,
            delivers: Default::default(),
        })
    }

    async fn wait(&self, rollout: &Rollout, deadline: Instant) -> Result<RolloutOutcome> {
        let failures: Vec<Miss> = if self.parallel {
            let runs = self
                .targets
                .iter()
                .map(|t| self.run_one(t, &rollout.run, deadline));
            futures_util::future::join_all(runs)
                .await
                .into_iter()
                .filter_map(|r| r.err())
                .collect()
        } else {
            let mut f = Vec::new();
            for t in &self.targets {
                if let Err(e) = self.run_one(t, &rollout.run, deadline).await {
                    f.push(e);
                    break; // rolling: stop at the first failure, like a rollout would
                }
            }
            f
        };
        let timed_out = failures.iter().any(|m| matches!(m, Miss::Deadline(_)));
        let text = failures
            .into_iter()
            .map(|m| match m {
                Miss::Failed(s) | Miss::Deadline(s) => s,
            })
            .collect::<Vec<_>>()
            .join("; ");
        Ok(if text.is_empty() {
            RolloutOutcome::Done {
                detail: format!("{} target(s) restarted", self.targets.len()),
            }
        } else if timed_out {
            RolloutOutcome::TimedOut { detail: text }
        } else {
            RolloutOutcome::Failed { reason: text }
        })
    }
}
