//! `--metrics-file` through the binary: two plans of one env (two `prod` vaults)
//! keep a series each, told apart by the vault they rotate.

mod support;

use std::collections::BTreeMap;
use support::demo::{bin, Demo};

/// Every sample of `name` in the textfile: its labels and value, as a real
/// Prometheus parser reads them.
fn samples(body: &str, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    let parsed = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap();
    parsed
        .samples
        .into_iter()
        .filter(|s| s.metric == name)
        .map(|s| {
            let v = match s.value {
                prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            };
            let labels = ["env", "plan", "vault"]
                .iter()
                .filter_map(|k| s.labels.get(k).map(|v| (k.to_string(), v.to_owned())))
                .collect();
            (labels, v)
        })
        .collect()
}

fn as_prod(demo: &Demo) {
    let text = std::fs::read_to_string(&demo.plan)
        .unwrap()
        .replace("env = \"demo\"", "env = \"prod\"");
    std::fs::write(&demo.plan, text).unwrap();
}

#[test]
fn two_plans_of_one_env_write_two_series() {
    let (a, b) = (Demo::setup(1), Demo::setup(1));
    as_prod(&a);
    as_prod(&b);
    let file = a.root.join("vsync.prom");
    let vault = |d: &Demo| format!("dir:{}/vault/demo/demo/", d.root.display());

    // Both plans in one invocation, side by side.
    let out = bin()
        .args(["run", "--yes", "--metrics-file"])
        .arg(&file)
        .arg(&a.plan)
        .arg(&b.plan)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = std::fs::read_to_string(&file).unwrap();
    for name in [
        "vsync_orchestrate_last_run_timestamp_seconds",
        "vsync_orchestrate_last_success_timestamp_seconds",
        "vsync_orchestrate_last_exit_code",
        "vsync_orchestrate_generation",
        "vsync_orchestrate_window_seconds",
        "vsync_orchestrate_delivery_window_seconds",
    ] {
        let s = samples(&body, name);
        assert_eq!(s.len(), 2, "{name}: {body}");
        assert!(s.iter().all(|(l, _)| l["env"] == "prod"), "{body}");
        let mut vaults: Vec<&str> = s.iter().map(|(l, _)| l["vault"].as_str()).collect();
        vaults.sort();
        let mut want = [vault(&a), vault(&b)];
        want.sort();
        assert_eq!(vaults, want, "{name}: {body}");
        let mut plans: Vec<&str> = s.iter().map(|(l, _)| l["plan"].as_str()).collect();
        plans.sort();
        let mut want = [a.plan.display().to_string(), b.plan.display().to_string()];
        want.sort();
        assert_eq!(plans, want, "{name}: {body}");
    }

    // Then one plan alone, failing at preflight (its passphrase file is gone): its
    // own series changes, the other plan's stays as it was.
    std::fs::remove_file(b.root.join("passphrase")).unwrap();
    let out = bin()
        .args(["run", "--yes", "--metrics-file"])
        .arg(&file)
        .arg(&b.plan)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let body = std::fs::read_to_string(&file).unwrap();
    let code = |d: &Demo| {
        samples(&body, "vsync_orchestrate_last_exit_code")
            .into_iter()
            .find(|(l, _)| l["vault"] == vault(d))
            .map(|(_, v)| v)
    };
    assert_eq!(code(&a), Some(0.0), "{body}");
    assert_eq!(
        code(&b).map(|v| v as i32),
        out.status.code(),
        "the failed plan's own series: {body}"
    );
    assert_eq!(
        samples(&body, "vsync_orchestrate_generation").len(),
        2,
        "{body}"
    );
}
