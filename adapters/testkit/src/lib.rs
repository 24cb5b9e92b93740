//! Dev-only kit for adapter tests. Never a dependency of a production crate.
//!
//! * [`store`] and [`restarter`]: the contract every adapter is held to, as named
//!   checks (one test each through [`store_suite!`] and [`restarter_suite!`]),
//!   gated on the capabilities the adapter declares.
//! * [`harness`]: the `main` ([`main!`]) of a `harness = false` test file running a
//!   suite, where a check or test whose service is missing shows as `ignored` with
//!   the reason rather than `ok`.
//! * [`service`]: a test that needs a real service fails under `CI=true` when the
//!   service is missing, and is ignored (under [`harness`]) or says loudly that it
//!   skipped elsewhere.
//! * [`fake_http`]: a scriptable HTTP server with fault injection, on which the
//!   platform fakes are built.

pub mod fake_http;
pub mod harness;
pub mod restarter;
pub mod service;
pub mod store;

/// Where an adapter broke the contract.
#[derive(Debug)]
pub struct Violation(pub String);

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Violation {}

pub type Outcome = Result<(), Violation>;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err($crate::Violation(format!($($msg)+)));
        }
    };
}
pub(crate) use ensure;

/// A step that must succeed; its error becomes the violation.
pub(crate) fn step<T>(what: &str, r: vsync_orchestrate_api::Result<T>) -> Result<T, Violation> {
    r.map_err(|e| Violation(format!("{what} failed: {}", e.chain())))
}

/// A name unique to this process and call, for run ids and platform objects.
pub fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{tag}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
