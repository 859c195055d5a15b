#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    xapi_vm_fuzz::checks::check_stamp_block(data);
});
