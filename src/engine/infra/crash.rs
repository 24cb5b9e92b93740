//! Crash points for the crash and kill tests: the process ends abruptly right after
//! the journal records a step, the way a kill -9 would.

/// Fault injection for the crash tests: `VSYNC_ORCHESTRATE_CRASH_AT=<point>` ends
/// the process abruptly right after the journal records that point (`staged`,
/// `committing`: bundle uploaded and swap about to be sent, `committed`,
/// `activated`, `restarting`: a rollout started and its wait not finished,
/// `restarted`), the way a kill -9 would.
pub(crate) fn crash_point(point: &str) {
    static WANT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if let Some(want) = WANT.get_or_init(|| std::env::var("VSYNC_ORCHESTRATE_CRASH_AT").ok()) {
        if want == point {
            eprintln!("VSYNC_ORCHESTRATE_CRASH_AT={want}: crashing on purpose");
            std::process::abort();
        }
    }
}
