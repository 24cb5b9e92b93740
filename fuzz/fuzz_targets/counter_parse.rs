//! Counter cells (latest.manifest, latest.meta): strict parse; to_json → parse round-trips.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vsync_orchestrate::vault::fuzzing::counter_parse(data);
});
