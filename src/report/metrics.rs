//! `--metrics-file`: a Prometheus textfile for node-exporter's textfile collector,
//! so monitoring notices a cron rotation that failed, or one that stopped running.
//!
//! One file can serve every environment: the series of the envs this invocation
//! ran are replaced, the others kept, and the file is replaced atomically (the
//! collector must never read half of it).

use crate::engine::summary::Summary;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

const METRICS: [(&str, &str); 5] = [
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
];

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The values of one run, by metric name; `None` keeps what the file had.
fn values_of(s: &Summary, now: f64) -> [(&'static str, Option<String>); 5] {
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
    ]
}

/// Writes (or updates) the textfile with the runs of this invocation.
pub fn write(path: &Path, runs: &[Summary]) -> std::io::Result<()> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    // name -> label -> value, from the existing file.
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
    for s in runs {
        let label = format!("{{env=\"{}\"}}", escape(&s.env));
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
