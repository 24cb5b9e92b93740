//! audit.csv: lenient and strict reads; a row written from the input reads back field for field; an accepted append keeps every existing byte.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vsync_orchestrate::vault::fuzzing::audit_parse(data);
});
