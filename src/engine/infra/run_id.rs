//! Run ids: sortable by time, unique enough that two runs started in the same
//! second never share one (journals and locks are named by them).

use std::time::SystemTime;
use vsync_orchestrate_api::RunId;

/// A new run id: `20261207T104500Z-a1b2c3`.
pub fn new_run_id() -> RunId {
    let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let compact: String = now.chars().filter(|c| *c != '-' && *c != ':').collect();
    let mut r = [0u8; 3];
    getrandom::fill(&mut r).expect("OS random source");
    RunId(format!("{}-{}", compact, hex::encode(r)))
}
