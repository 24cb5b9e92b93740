//! A plan file from the input (what `validate` reads): size limit, UTF-8, TOML, the model, the static checks; never a panic, and every refusal says where or why.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vsync_orchestrate::plan::fuzzing::plan_load(data);
});
