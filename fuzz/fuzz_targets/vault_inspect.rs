//! A whole vault cut from the input (pointers, counters, bundles): the read path of plan and run, open and status; answers only, and no write.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vsync_orchestrate::vault::fuzzing::vault_inspect(data);
});
