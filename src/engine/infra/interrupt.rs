//! SIGINT and SIGTERM: stop at the next safe point, never inside the window.
//!
//! Before T0 a signal stops the run and discards what was staged (exit 17). Between
//! T0 and T1 it is held until every store is activated — a signal must never leave
//! booting apps without a passphrase that opens the vault — and the run stops right
//! after. After T1 the run journals where it is and stops; `resume` finishes. A
//! second signal exits at once (every step is journaled before it is taken), except
//! inside the window, where the run is already about to stop.

use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Notify;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static IN_WINDOW: AtomicBool = AtomicBool::new(false);

fn notify() -> &'static Notify {
    static N: std::sync::OnceLock<Notify> = std::sync::OnceLock::new();
    N.get_or_init(Notify::new)
}

/// Whether a stop was asked for.
pub fn requested() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Asks the run to stop at its next safe point (what the signal handler does; tests
/// call it directly).
pub fn request() {
    INTERRUPTED.store(true, Ordering::SeqCst);
    notify().notify_waiters();
}

/// Forgets a stop request: for tests that deliver several in one process.
#[doc(hidden)]
pub fn reset() {
    INTERRUPTED.store(false, Ordering::SeqCst);
}

/// Resolves once a stop was asked for. Used with `select!` around long waits
/// (rollouts, health checks) so a signal does not wait for a 15-minute rollout.
pub async fn requested_async() {
    loop {
        let n = notify().notified();
        if requested() {
            return;
        }
        n.await;
    }
}

/// Marks the window T0 → T1: signals are held until the guard drops.
pub struct WindowGuard(());

pub fn enter_window() -> WindowGuard {
    IN_WINDOW.store(true, Ordering::SeqCst);
    WindowGuard(())
}

impl Drop for WindowGuard {
    fn drop(&mut self) {
        IN_WINDOW.store(false, Ordering::SeqCst);
    }
}

/// Holds SIGINT and SIGTERM pending from the process's first instruction until
/// [`release`]: a signal that arrives while the runtime starts is then handled like
/// any other (exit 17 at the next safe point) instead of killing the process with
/// nothing journaled. Called by `main` before any thread exists, so every thread
/// inherits the mask; child processes get a clean mask from `std::process`.
pub fn hold_early() {
    // SAFETY: plain libc calls on a local, initialised signal set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Lets the signals [`hold_early`] held reach this thread: into the handler if
/// [`install`] ran, or the default action (the process ends) if not.
pub fn release() {
    // SAFETY: as in `hold_early`.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

/// Installs the SIGINT/SIGTERM handler (the binary calls this once, inside the
/// runtime). The handlers are registered before it returns, so [`release`] right
/// after cannot lose a signal.
pub fn install() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        eprintln!("warning: cannot install signal handlers; a signal ends the run without cleanup");
        return;
    };
    tokio::spawn(async move {
        let mut seen = 0;
        loop {
            let name = tokio::select! {
                _ = int.recv() => "interrupt",
                _ = term.recv() => "terminate",
            };
            seen += 1;
            if seen == 1 {
                eprintln!("\n{name}: stopping at the next safe point (before the pointer swap, staged versions are discarded; after it, activation is finished first and the run journals where it stopped). Signal again to exit at once.");
                request();
            } else if IN_WINDOW.load(Ordering::SeqCst) {
                // The run already stops right after T1; exiting here would leave
                // the window open.
                eprintln!("{name} again: activation is in flight; the run stops the moment every store is switched");
            } else {
                eprintln!("{name} again: exiting now; `vsync-orchestrate resume PLAN` finishes the run from its journal");
                std::process::exit(crate::engine::exit::Exit::Interrupted.code() as i32);
            }
        }
    });
}
