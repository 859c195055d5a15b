#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sr_heartbeat_fuzz::checks::check_sr_label(data);
});
