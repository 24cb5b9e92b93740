//! RQEM0001 seals: unseal, re-seal to the same bytes; seal → unseal round-trips.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vsync_orchestrate::vault::fuzzing::rqem0001_unseal(data);
});
