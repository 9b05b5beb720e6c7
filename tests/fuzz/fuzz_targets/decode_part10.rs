#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    radstream_operators::fuzzing::run("decode_part10", data);
});
