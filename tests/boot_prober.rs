//! The boot prober: while a rotation runs, an "app" boots every millisecond the way
//! vsync's runtime libraries boot (read the passphrase from where the platform puts
//! it, then read the vault's pointer and bundle and decrypt), and every boot that
//! fails with a wrong passphrase is counted. It prints the failed boots per rotation
//! beside the measured delivery window, and fails if a boot failed outside it: the
//! window the summary reports must be the window apps feel.
//!
//! Here the delivery path is a file read at boot (the `file` store on a directory
//! vault, as the demo and VPS apps boot), in-process with the engine; no service.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::sandbox::{Sandbox, Shown};
use vsync_orchestrate::api::Passphrase;
use vsync_orchestrate::engine;

/// One boot: when it started and ended, and whether the passphrase opened the vault.
struct Boot {
    started: Instant,
    ended: Instant,
    opened: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_boot_fails_outside_the_delivery_window() {
    let rotations = 5;
    let mut failed_total = 0;
    let mut boots_total = 0;
    for i in 0..rotations {
        let sb = Sandbox::new("").await;
        let file = sb.dir.path().join("passphrase");
        let vault = sb.vault.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let boots: Arc<Mutex<Vec<Boot>>> = Arc::default();
        let prober = {
            let (stop, boots) = (stop.clone(), boots.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let started = Instant::now();
                    let opened = match std::fs::read_to_string(&file) {
                        Ok(p) => vault.open(&Passphrase::from(p.trim())).await.is_ok(),
                        Err(_) => false,
                    };
                    boots.lock().unwrap().push(Boot {
                        started,
                        ended: Instant::now(),
                        opened,
                    });
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let parts = sb.parts(vec![sb.file_store()], None).await;
        let shown = Shown::new();
        let s = engine::run_with(&sb.loaded, parts, &sb.opts(), &shown.p, false).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        stop.store(true, Ordering::SeqCst);
        prober.await.unwrap();
        assert_eq!(s.exit_code, 0, "{}", s.outcome);
        let delivery = s.delivery_window_ms.expect("measured");
        let boots = boots.lock().unwrap();
        let failed: Vec<&Boot> = boots.iter().filter(|b| !b.opened).collect();
        // A boot that failed spans part of the window: from the first failed boot's
        // start to the last one's end cannot be longer than the window plus one
        // boot on each side (a boot that read the file before T1 and the pointer
        // after T0).
        let longest_boot = boots
            .iter()
            .map(|b| b.ended - b.started)
            .max()
            .unwrap_or_default();
        if let (Some(first), Some(last)) = (failed.first(), failed.last()) {
            let span = last.ended - first.started;
            assert!(
                span <= Duration::from_secs_f64(delivery / 1000.0) + 2 * longest_boot,
                "rotation {i}: boots failed over {span:?}, outside the {delivery} ms delivery window (a boot takes up to {longest_boot:?})"
            );
        }
        assert!(
            boots.iter().any(|b| b.opened && b.started > boots[0].ended),
            "rotation {i}: no boot succeeded after the rotation"
        );
        println!(
            "rotation {i}: {} boots, {} failed; delivery window {delivery:.3} ms (store window {:.3} ms); a boot takes up to {longest_boot:?}",
            boots.len(),
            failed.len(),
            s.window_ms.unwrap_or(0.0)
        );
        failed_total += failed.len();
        boots_total += boots.len();
    }
    println!(
        "file store, read at boot: {failed_total} failed of {boots_total} boots over {rotations} rotations"
    );
}
