//! The prober every platform shares: boot an "app" every few milliseconds through
//! the platform's delivery path while a rotation runs, and judge the boots against
//! the delivery window the run reported.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One boot: when it started and ended, and whether the passphrase it got opened
/// the vault.
pub struct Boot {
    pub started: Instant,
    pub ended: Instant,
    pub opened: bool,
}

/// Boots in the background until [`Prober::stop`].
pub struct Prober {
    stop: Arc<AtomicBool>,
    boots: Arc<Mutex<Vec<Boot>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Prober {
    /// Starts booting: `boot` gets the passphrase the way a starting process of the
    /// platform does and answers whether it opened the vault.
    pub fn start<F, Fut>(every: Duration, boot: F) -> Prober
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let boots: Arc<Mutex<Vec<Boot>>> = Arc::default();
        let task = {
            let (stop, boots) = (stop.clone(), boots.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let started = Instant::now();
                    let opened = boot().await;
                    boots.lock().unwrap().push(Boot {
                        started,
                        ended: Instant::now(),
                        opened,
                    });
                    tokio::time::sleep(every).await;
                }
            })
        };
        Prober { stop, boots, task }
    }

    pub async fn stop(self) -> Vec<Boot> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap();
        std::mem::take(&mut *self.boots.lock().unwrap())
    }
}

/// Several [`Prober`]s started `stagger` apart, so boots overlap: one boot at a
/// time, a window shorter than a boot shows as one or two failed boots that say
/// nothing about how long it lasted.
pub struct Probers(Vec<Prober>);

impl Probers {
    pub async fn start<F, Fut>(n: usize, every: Duration, stagger: Duration, boot: F) -> Probers
    where
        F: Fn() -> Fut + Clone + Send + 'static,
        Fut: Future<Output = bool> + Send,
    {
        let mut probers = Vec::with_capacity(n);
        for k in 0..n {
            if k > 0 {
                tokio::time::sleep(stagger).await;
            }
            probers.push(Prober::start(every, boot.clone()));
        }
        Probers(probers)
    }

    /// Every boot of every prober, in the order they started.
    pub async fn stop(self) -> Vec<Boot> {
        for p in &self.0 {
            p.stop.store(true, Ordering::SeqCst);
        }
        let mut boots = Vec::new();
        for p in self.0 {
            boots.extend(p.stop().await);
        }
        boots.sort_by_key(|b| b.started);
        boots
    }
}

/// What one rotation's boots showed.
pub struct Judged {
    pub boots: usize,
    pub failed: usize,
    pub longest_boot: Duration,
    /// The shortest window the failed boots prove apps felt (zero when none
    /// failed): from the earliest failed boot's end to the latest one's start.
    pub felt: Duration,
}

/// Fails the test if the failed boots show a longer window than the reported one,
/// or if the last boot to start failed — the rotation must end with apps that
/// boot. A boot fails when it got the old passphrase (before the delivery path
/// switched) and read the new pointer (after T0), both between its start and its
/// end: T0 came before the earliest failed boot ended and the switch after the
/// latest one started, so their distance is a window apps felt, however long a
/// boot takes.
pub fn judge(what: &str, boots: &[Boot], delivery_ms: f64) -> Judged {
    assert!(!boots.is_empty(), "{what}: no boot ran");
    let failed: Vec<&Boot> = boots.iter().filter(|b| !b.opened).collect();
    let longest_boot = boots
        .iter()
        .map(|b| b.ended - b.started)
        .max()
        .unwrap_or_default();
    let first_end = failed.iter().map(|b| b.ended).min();
    let last_start = failed.iter().map(|b| b.started).max();
    let mut felt = Duration::ZERO;
    if let (Some(first_end), Some(last_start)) = (first_end, last_start) {
        felt = last_start.saturating_duration_since(first_end);
        assert!(
            felt <= Duration::from_secs_f64(delivery_ms / 1000.0),
            "{what}: a boot failed that started {felt:?} after another failed boot had ended: apps felt a window of at least {felt:?}, outside the {delivery_ms:.3} ms delivery window (a boot takes up to {longest_boot:?})"
        );
    }
    let last = boots.iter().max_by_key(|b| b.started).unwrap();
    assert!(
        last.opened,
        "{what}: the last boot, after the rotation, still failed"
    );
    Judged {
        boots: boots.len(),
        failed: failed.len(),
        longest_boot,
        felt,
    }
}

/// The line each platform prints per rotation, and the totals the README table
/// is made from.
#[derive(Default)]
pub struct Tally {
    pub rotations: usize,
    pub boots: usize,
    pub failed: usize,
    pub windows_ms: Vec<f64>,
}

impl Tally {
    pub fn add(&mut self, platform: &str, j: &Judged, delivery_ms: f64, store_ms: f64) {
        println!(
            "{platform} rotation {}: {} boots, {} failed; delivery window {delivery_ms:.3} ms (store window {store_ms:.3} ms); a boot takes up to {:?}",
            self.rotations, j.boots, j.failed, j.longest_boot
        );
        self.rotations += 1;
        self.boots += j.boots;
        self.failed += j.failed;
        self.windows_ms.push(delivery_ms);
    }

    pub fn print(&self, platform: &str) {
        let min = self
            .windows_ms
            .iter()
            .cloned()
            .fold(f64::INFINITY, f64::min);
        let max = self.windows_ms.iter().cloned().fold(0.0, f64::max);
        println!(
            "{platform}: {} failed of {} boots over {} rotations; delivery window {min:.3}–{max:.3} ms",
            self.failed, self.boots, self.rotations
        );
    }
}

/// What one rotation by the real binary reported, for judging its boots.
pub struct Rotated {
    pub summary: serde_json::Value,
    /// The JSON summary as printed, for failure messages.
    pub stdout: String,
    /// `delivery_window_ms`: the window the run says apps felt.
    pub delivery_ms: f64,
    /// `window_ms`: T0 → T1.
    pub store_ms: f64,
}

/// Reads a `run --output json` that must have rotated the vault to `gen` and
/// measured its delivery window; fails the test with both outputs otherwise.
pub fn rotated(what: &str, out: &std::process::Output, gen: u64) -> Rotated {
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{what}: {stderr}\n{stdout}");
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["gen_after"].as_u64(), Some(gen), "{what}: {stdout}");
    let delivery_ms = summary["delivery_window_ms"]
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: no delivery window measured: {stdout}"));
    let store_ms = summary["window_ms"].as_f64().expect("the store window");
    Rotated {
        summary,
        stdout,
        delivery_ms,
        store_ms,
    }
}
