#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    xha_fuzz::checks::check_server_line(data);
});
