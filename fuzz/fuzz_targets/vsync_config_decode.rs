//! VSYNC_CONFIG blobs: decode with the libraries' error classes; decode → encode → decode round-trips.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vsync_orchestrate::vault::fuzzing::vsync_config_decode(data);
});
