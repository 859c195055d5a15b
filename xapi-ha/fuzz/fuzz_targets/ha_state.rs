#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    xapi_ha_fuzz::checks::check_ha_state(data);
});
