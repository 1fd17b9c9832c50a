#![no_main]
//! Any input: the USCC parser never panics, and what it accepts round-trips.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(u) = credit_risk::domain::Uscc::parse(s) {
            let again = credit_risk::domain::Uscc::parse(&u.to_string()).expect("round trip");
            assert_eq!(again, u);
        }
    }
});
