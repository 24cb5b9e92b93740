//! The run's outcome as data: where a failed run stopped and why each adapter
//! failed, as kinds a script routes on (not the words of `outcome`); and the one
//! mapping from the vault's refusals onto exit codes. In-memory fakes
//! (tests/support/fakes.rs) on a directory vault: no service needed.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;
use support::fakes::{MemRestarter, MemStore};
use support::sandbox::{log, Sandbox, Shown, OLD};
use vsync_orchestrate::engine::{self, Exit};
use vsync_orchestrate::vault::Refusal;

#[tokio::test]
async fn a_refused_stage_names_the_phase_the_store_and_the_adapters_kind() {
    let sb = Sandbox::new("").await;
    let log = log();
    let bad = MemStore::new("bad", OLD, &log, None);
    bad.fail_stage.store(true, Ordering::SeqCst);
    let parts = sb.parts(vec![sb.file_store(), bad.clone()], None).await;
    let shown = Shown::new();
    let s = engine::run_with(&sb.loaded, parts, &sb.opts(), &shown.p, false).await;
    assert_eq!(s.exit_code, Exit::StageFailed.code(), "{}", s.outcome);
    let json = serde_json::to_value(&s).unwrap();
    let failure = &json["failure"];
    assert_eq!(failure["exit"], "stage_failed", "{failure}");
    assert_eq!(failure["failed"].as_array().unwrap().len(), 1, "{failure}");
    let failed = &failure["failed"][0];
    assert_eq!(failed["phase"], "stage", "{failure}");
    assert_eq!(failed["slot"], "store.2", "{failure}");
    assert_eq!(failed["target"], "memory bad", "{failure}");
    // MemStore refuses with `Error::permission`: its kind, not its words.
    assert_eq!(failed["error"], "permission", "{failure}");
    let row = json["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["slot"] == "store.2" && t["phase"] == "stage")
        .expect("the stage row of store.2");
    assert_eq!(row["error"], "permission", "{row}");
}

#[tokio::test]
async fn a_failed_rollout_is_a_rollout_failure_after_the_window() {
    let sb = Sandbox::new("").await;
    let log = log();
    let restarter = MemRestarter::new(&log);
    restarter.fail.store(true, Ordering::SeqCst);
    let parts = sb.parts(vec![sb.file_store()], Some(restarter)).await;
    let shown = Shown::new();
    let s = engine::run_with(&sb.loaded, parts, &sb.opts(), &shown.p, false).await;
    assert_eq!(s.exit_code, Exit::RestartFailed.code(), "{}", s.outcome);
    let json = serde_json::to_value(&s).unwrap();
    let failure = &json["failure"];
    assert_eq!(failure["exit"], "restart_failed", "{failure}");
    let failed = &failure["failed"][0];
    assert_eq!(failed["phase"], "restart", "{failure}");
    assert_eq!(failed["error"], "failed", "{failure}");
}

#[tokio::test]
async fn a_successful_run_has_no_failure() {
    let sb = Sandbox::new("").await;
    let parts = sb.parts(vec![sb.file_store()], None).await;
    let shown = Shown::new();
    let s = engine::run_with(&sb.loaded, parts, &sb.opts(), &shown.p, false).await;
    assert_eq!(s.exit_code, 0, "{}", s.outcome);
    let json = serde_json::to_value(&s).unwrap();
    assert!(json["failure"].is_null(), "{}", json["failure"]);
    assert!(json["targets"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t.get("error").is_none()));
}

#[test]
fn the_vaults_refusals_keep_the_upstream_exit_codes() {
    let codes: Vec<u8> = [
        Refusal::BadInput,
        Refusal::Upload,
        Refusal::Pointer,
        Refusal::NotFound,
    ]
    .into_iter()
    .map(|r| Exit::from(r).code())
    .collect();
    assert_eq!(codes, [1, 2, 3, 5]);
}

/// Issue "the window apps feel": a store read at boot delivers at T1, so apps feel
/// the store window; one whose value reaches new deployments only delivers when the
/// restart is done, and the summary's delivery window is the longest.
#[tokio::test]
async fn the_delivery_window_is_what_apps_feel() {
    let sb = Sandbox::new("").await;
    let log = log();
    let deploys = MemStore::new("deploys", OLD, &log, None);
    deploys.on_redeploy.store(true, Ordering::SeqCst);
    let restarter = MemRestarter::new(&log);
    let parts = sb
        .parts(vec![sb.file_store(), deploys.clone()], Some(restarter))
        .await;
    let shown = Shown::new();
    let s = engine::run_with(&sb.loaded, parts, &sb.opts(), &shown.p, false).await;
    assert_eq!(s.exit_code, 0, "{}", s.outcome);
    let json = serde_json::to_value(&s).unwrap();
    let d = json["delivery"].as_array().unwrap();
    assert_eq!(d.len(), 2, "{json}");
    assert_eq!(d[0]["path"], "at_boot");
    assert_eq!(
        d[0]["window_ms"].as_f64(),
        s.window_ms,
        "read at boot: T0 → T1"
    );
    assert_eq!(d[1]["path"], "on_redeploy");
    let redeploy = d[1]["window_ms"].as_f64().expect("measured");
    let t2 = s.t2_ms.expect("the restart reported done");
    assert!(
        redeploy >= s.window_ms.unwrap() && redeploy <= t2 + 50.0,
        "new deployments only: T0 → the restart done ({redeploy} ms; window {:?}, T2 {t2})",
        s.window_ms
    );
    assert_eq!(s.delivery_window_ms, Some(redeploy));
}

/// A restart on the passphrase's way (an ExternalSecret it syncs; a revision that
/// carries a pinned version) ends the window apps feel: the summary measures T0 →
/// restart returned, or T0 → rollout done, and `plan` says so beforehand.
#[tokio::test]
async fn a_restart_that_delivers_ends_the_delivery_window() {
    use vsync_orchestrate::api::Delivers;
    for (delivers, path) in [
        (Delivers::WhenStarted, "synced"),
        (Delivers::WhenDone, "rollout_done"),
    ] {
        let sb = Sandbox::new("").await;
        let log = log();
        let restarter = MemRestarter::new(&log);
        *restarter.delivers.lock().unwrap() = delivers;
        *restarter.restart_takes.lock().unwrap() = Duration::from_millis(150);
        *restarter.takes.lock().unwrap() = Duration::from_millis(300);
        let parts = sb
            .parts(vec![sb.file_store()], Some(restarter.clone()))
            .await;
        let shown = Shown::new();
        let s = engine::run_with(&sb.loaded, parts, &sb.opts(), &shown.p, false).await;
        assert_eq!(s.exit_code, 0, "{}", s.outcome);
        let json = serde_json::to_value(&s).unwrap();
        let d = json["delivery"].as_array().unwrap();
        assert_eq!(d.len(), 2, "{json}");
        assert_eq!(
            (&d[0]["path"], &d[0]["slot"]),
            (&"at_boot".into(), &"store.1".into())
        );
        assert_eq!(
            (&d[1]["path"], &d[1]["slot"]),
            (&path.into(), &"restart.1".into())
        );
        let w = d[1]["window_ms"].as_f64().expect("measured");
        let (lo, hi) = match delivers {
            Delivers::WhenStarted => (150.0, 440.0),
            _ => (450.0, 2000.0),
        };
        assert!(
            w >= lo && w < hi,
            "{path}: {w} ms, expected the restart's own part ({lo}–{hi} ms)"
        );
        assert_eq!(s.delivery_window_ms, Some(w), "the longest path");
        assert!(w > s.window_ms.unwrap());

        let parts = sb.parts(vec![sb.file_store()], Some(restarter)).await;
        let (p, shown) = vsync_orchestrate::report::Progress::capture();
        let dry = engine::run_with(&sb.loaded, parts, &sb.opts(), &p, true).await;
        assert_eq!(dry.exit_code, 0, "{}", dry.outcome);
        let shown = shown.lock().unwrap().clone();
        assert!(shown.contains("delivery  memory-restart apps:"), "{shown}");
    }

    // A delivering rollout that fails leaves the window unknown, and says so.
    let sb = Sandbox::new("").await;
    let log = log();
    let restarter = MemRestarter::new(&log);
    *restarter.delivers.lock().unwrap() = Delivers::WhenDone;
    restarter.fail.store(true, Ordering::SeqCst);
    let parts = sb.parts(vec![sb.file_store()], Some(restarter)).await;
    let shown = Shown::new();
    let s = engine::run_with(&sb.loaded, parts, &sb.opts(), &shown.p, false).await;
    assert_ne!(s.exit_code, 0);
    assert_eq!(s.delivery_window_ms, None, "never delivered");
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("memory-restart apps") && w.contains("did not get there")),
        "{:?}",
        s.warnings
    );
}

#[tokio::test]
async fn a_store_only_new_deployments_read_with_nothing_to_restart_is_named() {
    let sb = Sandbox::new("").await;
    let log = log();
    let deploys = MemStore::new("deploys", OLD, &log, None);
    deploys.on_redeploy.store(true, Ordering::SeqCst);
    let parts = sb.parts(vec![sb.file_store(), deploys.clone()], None).await;
    let shown = Shown::new();
    let s = engine::run_with(&sb.loaded, parts, &sb.opts(), &shown.p, false).await;
    assert_eq!(s.exit_code, 0, "{}", s.outcome);
    assert_eq!(s.delivery_window_ms, None, "never delivered");
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("memory deploys") && w.contains("new deployments only")),
        "{:?}",
        s.warnings
    );

    // The dry run says so before anything is written.
    let parts = sb.parts(vec![sb.file_store(), deploys], None).await;
    let (p, shown) = vsync_orchestrate::report::Progress::capture();
    let dry = engine::run_with(&sb.loaded, parts, &sb.opts(), &p, true).await;
    assert_eq!(dry.exit_code, 0, "{}", dry.outcome);
    let shown = shown.lock().unwrap().clone();
    assert!(
        shown.contains(
            "delivery  memory deploys: reaches new deployments only and the plan restarts nothing"
        ),
        "{shown}"
    );
    assert!(shown.contains("read by processes as they start"), "{shown}");
}

/// An unreachable health URL does not stop preflight (verify waits for it) but is
/// not shown as fine: its row is ✗ with why, and a warning says so.
#[tokio::test]
async fn an_unreachable_health_url_is_not_marked_ok_in_preflight() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/healthz");
    let sb = Sandbox::new(&format!("[verify]\nhealth = [\"{url}\"]\n")).await;
    let parts = sb.parts(vec![sb.file_store()], None).await;
    let shown = Shown::new();
    let s = engine::run_with(&sb.loaded, parts, &sb.opts(), &shown.p, true).await;
    assert_eq!(s.exit_code, 0, "a dry run still passes: {}", s.outcome);
    let row = s
        .targets
        .iter()
        .find(|t| t.phase == "preflight" && t.name == url)
        .expect("the health row");
    assert!(!row.ok, "{row:?}");
    assert!(row.detail.contains("not answering"), "{row:?}");
    assert!(
        s.warnings.iter().any(|w| w.contains("does not answer yet")),
        "{:?}",
        s.warnings
    );
}

/// An adapter's refusal that names the one command fixing it (a login, a kubeconfig)
/// puts that command in the summary's next steps.
#[tokio::test]
async fn an_adapters_fix_reaches_the_next_steps() {
    let sb = Sandbox::new("").await;
    let log = log();
    let bad = MemStore::new("bad", OLD, &log, None);
    *bad.preflight_error.lock().unwrap() = Some(
        vsync_orchestrate::api::Error::invalid_config(
            "kubeconfig: context \"prod\" is not in ~/.kube/config",
        )
        .with_next_step("kubectl config get-contexts"),
    );
    let parts = sb.parts(vec![sb.file_store(), bad.clone()], None).await;
    let shown = Shown::new();
    let s = engine::run_with(&sb.loaded, parts, &sb.opts(), &shown.p, false).await;
    assert_eq!(s.exit_code, Exit::PreflightFailed.code(), "{}", s.outcome);
    assert!(
        s.next_steps
            .iter()
            .any(|n| n == "kubectl config get-contexts"),
        "{:?}",
        s.next_steps
    );
}
