//! RQE1 envelopes: parse and decrypt with a fixed key; errors of the class the header dictates, never a panic; encrypt → decrypt round-trips.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vsync_orchestrate::vault::fuzzing::rqe1_decrypt(data);
});
