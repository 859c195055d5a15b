#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    xapi_ha_fuzz::wire_checks::check_jsonrpc_request(data);
});
