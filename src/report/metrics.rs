//! `--metrics-file`: a Prometheus textfile for node-exporter's textfile collector,
//! so monitoring notices a cron rotation that failed, or one that stopped running.
//!
//! One file can serve every plan: each series is labelled by `env`, `plan` and
//! `vault`, because two plans may share an env (two `prod` vaults) and each must
//! keep its own series. The series this invocation ran are replaced, the others
//! kept, and the file is replaced atomically (the collector must never read half
//! of it).

use crate::engine::summary::Summary;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// One run to record: its summary and, where the caller knows it, the plan file it
/// ran (`Summary` alone carries the env and the vault, not the plan).
pub trait Recorded {
    fn summary(&self) -> &Summary;
    fn plan(&self) -> Option<&Path> {
        None
    }
}

impl Recorded for Summary {
    fn summary(&self) -> &Summary {
        self
    }
}

impl Recorded for (&Path, &Summary) {
    fn summary(&self) -> &Summary {
        self.1
    }
    fn plan(&self) -> Option<&Path> {
        Some(self.0)
    }
}

impl Recorded for (PathBuf, Summary) {
    fn summary(&self) -> &Summary {
        &self.1
    }
    fn plan(&self) -> Option<&Path> {
        Some(&self.0)
    }
}

const METRICS: [(&str, &str); 6] = [
    (
        "vsync_orchestrate_last_run_timestamp_seconds",
        "Unix time the last run of this environment ended.",
    ),
    (
        "vsync_orchestrate_last_success_timestamp_seconds",
        "Unix time of the last run that exited 0 (rotated, or not due).",
    ),
    (
        "vsync_orchestrate_last_exit_code",
        "Exit code of the last run (see `vsync-orchestrate --help`).",
    ),
    (
        "vsync_orchestrate_generation",
        "The vault's generation after the last run.",
    ),
    (
        "vsync_orchestrate_window_seconds",
        "T0 to T1 of the last rotation: how long booting apps could get the wrong passphrase.",
    ),
    (
        "vsync_orchestrate_delivery_window_seconds",
        "T0 to the moment a starting app could get the new passphrase by every path: stores, ExternalSecret syncs, rollouts that carry it (the window apps feel).",
    ),
];

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The values of one run, by metric name; `None` keeps what the file had.
fn values_of(s: &Summary, now: f64) -> [(&'static str, Option<String>); 6] {
    [
        (METRICS[0].0, Some(format!("{now:.3}"))),
        (
            METRICS[1].0,
            (s.exit_code == 0).then(|| format!("{now:.3}")),
        ),
        (METRICS[2].0, Some(s.exit_code.to_string())),
        (
            METRICS[3].0,
            s.gen_after.or(s.gen_before).map(|g| g.to_string()),
        ),
        (
            METRICS[4].0,
            s.window_ms.map(|w| format!("{:.6}", w / 1000.0)),
        ),
        (
            METRICS[5].0,
            s.delivery_window_ms.map(|w| format!("{:.6}", w / 1000.0)),
        ),
    ]
}

/// The label set of a run's series. The plan is named by its absolute path, so
/// `plans/prod.toml` and `./plans/prod.toml` are one series.
fn labels(run: &dyn Recorded) -> String {
    let s = run.summary();
    let mut l = format!("env=\"{}\"", escape(&s.env));
    if let Some(plan) = run.plan() {
        let plan = std::path::absolute(plan).unwrap_or_else(|_| plan.to_owned());
        l.push_str(&format!(
            ",plan=\"{}\"",
            escape(&plan.display().to_string())
        ));
    }
    l.push_str(&format!(",vault=\"{}\"", escape(&s.vault)));
    format!("{{{l}}}")
}

/// Writes (or updates) the textfile with the runs of this invocation.
pub fn write<R: Recorded>(path: &Path, runs: &[R]) -> std::io::Result<()> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    // (name, labels) -> value, from the existing file.
    let mut values: BTreeMap<(String, String), String> = BTreeMap::new();
    if let Ok(text) = std::fs::read_to_string(path) {
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            if let (Some(brace), Some(space)) = (line.find('{'), line.rfind(' ')) {
                if brace < space {
                    values.insert(
                        (line[..brace].to_owned(), line[brace..space].to_owned()),
                        line[space + 1..].to_owned(),
                    );
                }
            }
        }
    }
    for run in runs {
        let s = run.summary();
        let label = labels(run);
        // The env-only series an older version wrote for this env is this run's,
        // now under more labels: left, it would read as a second, stale plan.
        let legacy = format!("{{env=\"{}\"}}", escape(&s.env));
        values.retain(|(_, l), _| *l != legacy);
        for (name, value) in values_of(s, now) {
            if let Some(v) = value {
                values.insert((name.to_owned(), label.clone()), v);
            }
        }
    }
    let mut text = String::new();
    for (name, help) in METRICS {
        text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for ((n, label), v) in &values {
            if n == name {
                text.push_str(&format!("{n}{label} {v}\n"));
            }
        }
    }
    crate::vault::storage::write_atomic_file(path, text.as_bytes())?;
    // A collector runs as another user; the file holds no secret.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(env: &str, vault: &str, exit_code: u8, gen: u64) -> Summary {
        Summary {
            env: env.into(),
            vault: vault.into(),
            exit_code,
            gen_after: Some(gen),
            ..Summary::default()
        }
    }

    /// Two plans of one env write a series each, told apart by plan and vault; an
    /// older env-only series of that env goes, another env's stays.
    #[test]
    fn plans_sharing_an_env_keep_a_series_each() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("m.prom");
        std::fs::write(
            &file,
            "vsync_orchestrate_generation{env=\"prod\"} 7\nvsync_orchestrate_generation{env=\"stage\"} 4\n",
        )
        .unwrap();
        let a = summary("prod", "s3://a/app/", 0, 3);
        let b = summary("prod", "s3://b/app/", 15, 9);
        write(
            &file,
            &[
                (Path::new("/etc/vsync/a.toml"), &a),
                (Path::new("/etc/vsync/b.toml"), &b),
            ],
        )
        .unwrap();
        let body = std::fs::read_to_string(&file).unwrap();
        let gens: Vec<&str> = body
            .lines()
            .filter(|l| l.starts_with("vsync_orchestrate_generation{"))
            .collect();
        assert_eq!(
            gens,
            [
                "vsync_orchestrate_generation{env=\"prod\",plan=\"/etc/vsync/a.toml\",vault=\"s3://a/app/\"} 3",
                "vsync_orchestrate_generation{env=\"prod\",plan=\"/etc/vsync/b.toml\",vault=\"s3://b/app/\"} 9",
                "vsync_orchestrate_generation{env=\"stage\"} 4",
            ],
            "{body}"
        );
        // A later run of one plan replaces its own series only.
        write(
            &file,
            &[(
                Path::new("/etc/vsync/b.toml"),
                &summary("prod", "s3://b/app/", 0, 10),
            )],
        )
        .unwrap();
        let body = std::fs::read_to_string(&file).unwrap();
        assert!(
            body.contains("plan=\"/etc/vsync/a.toml\",vault=\"s3://a/app/\"} 3\n"),
            "{body}"
        );
        assert!(
            body.contains("plan=\"/etc/vsync/b.toml\",vault=\"s3://b/app/\"} 10\n"),
            "{body}"
        );
        assert!(!body.contains("} 9\n"), "{body}");
    }

    /// Without a plan (a caller that has only the summary) the series still carry
    /// the vault; label values are escaped.
    #[test]
    fn labels_escape_and_go_without_a_plan() {
        let s = summary("a\"b", "dir:/x\\y/", 0, 1);
        assert_eq!(labels(&s), "{env=\"a\\\"b\",vault=\"dir:/x\\\\y/\"}");
    }
}
