#![no_main]
//! Any bytes: decoding keys and values of the store never panics.
use credit_risk::store::{codec, keys, scoring::ScoringRun};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = keys::decode_enterprise(data);
    let _ = keys::decode_directory(data);
    let _ = codec::decode_dossier(data);
    let _ = codec::decode::<ScoringRun>(data);
    let _ = codec::decode::<credit_risk::store::audit::AuditEvent>(data);
});
