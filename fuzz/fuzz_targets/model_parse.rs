#![no_main]
//! Any text: the model parser refuses or accepts, never panics; an accepted model
//! classifies any score.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(m) = credit_risk::domain::Model::parse(s) {
            for score in [i64::MIN / 2, -1, 0, 1, 1_000, i64::MAX / 2] {
                let _ = m.class_of(score);
            }
        }
    }
});
