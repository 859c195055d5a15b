#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    xapi_ha_fuzz::wire_checks::check_xmlrpc_response(data);
});
