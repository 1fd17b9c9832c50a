//! Key encodings of the `registry` tree. Every key starts with a one-byte keyspace tag;
//! all parts are fixed-width or last, and integers are big-endian (dates sign-flipped),
//! so byte order is the natural order.
//!
//! | keyspace | key | value |
//! |---|---|---|
//! | `E` dossiers | `E uscc(18)` | everything about one enterprise (profile, penalties, reports, listings, inspections) |
//! | `P` unique decision numbers | `P decision_number` | uscc |
//! | `X` directory index | `X region(6) section(1) status(1) type(1) uscc` | empty |
//! | `Q` request ids | `Q rpc 0x00 request_id` | fingerprint(32) + outcome |
//! | `S` counters | `S name` | u64 big-endian |
//!
//! One value per enterprise (its dossier) rather than one key per record: an enterprise
//! holds ≈ 4.6 records, and at 3.5 M enterprises every key costs sled space and every
//! scanned key costs time; the nightly rescore reads 3.5 M values instead of 16 M.
//! The directory index is one composite entry per enterprise rather than one index per
//! attribute: a region filter is a prefix scan, and industry, status or entity-type
//! filters skip-scan the few (region, section, status) prefixes without reading any
//! dossier.

use crate::domain::{Date, Enterprise, RegionCode, Uscc};

/// Dossier keyspace.
pub const RECORDS: u8 = b'E';
/// Decision-number uniqueness keyspace.
pub const DECISIONS: u8 = b'P';
/// Directory index (region, section, status, type).
pub const DIRECTORY: u8 = b'X';
/// Length of a directory key.
pub const DIRECTORY_KEY_LEN: usize = 1 + 6 + 1 + 1 + 1 + 18;
/// Idempotency records.
pub const REQUESTS: u8 = b'Q';
/// Counters.
pub const COUNTERS: u8 = b'S';

/// Key of a counter.
pub fn counter(name: &str) -> Vec<u8> {
    let mut k = vec![COUNTERS];
    k.extend_from_slice(name.as_bytes());
    k
}

/// Length of `E uscc`.
pub const ENTERPRISE_KEY_LEN: usize = 19;

/// `E uscc`: the key of an enterprise's dossier.
pub fn enterprise(u: &Uscc) -> [u8; ENTERPRISE_KEY_LEN] {
    let mut k = [0u8; ENTERPRISE_KEY_LEN];
    k[0] = RECORDS;
    k[1..].copy_from_slice(u.as_bytes());
    k
}

/// The USCC of a dossier key.
pub fn decode_enterprise(k: &[u8]) -> Option<Uscc> {
    if k.len() != ENTERPRISE_KEY_LEN || k[0] != RECORDS {
        return None;
    }
    Uscc::from_bytes(&k[1..]).ok()
}

/// Order-preserving encoding of a date.
pub fn date_bytes(d: Date) -> [u8; 4] {
    ((d.days() as u32) ^ 0x8000_0000).to_be_bytes()
}

/// Inverse of [`date_bytes`].
pub fn date_from_bytes(b: [u8; 4]) -> Date {
    Date::from_days((u32::from_be_bytes(b) ^ 0x8000_0000) as i32)
}

/// Key of the decision-number uniqueness entry.
pub fn decision(decision_number: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + decision_number.len());
    k.push(DECISIONS);
    k.extend_from_slice(decision_number.as_bytes());
    k
}

/// Key of an enterprise's directory-index entry.
pub fn directory(e: &Enterprise) -> Vec<u8> {
    let mut k = Vec::with_capacity(DIRECTORY_KEY_LEN);
    k.push(DIRECTORY);
    k.extend_from_slice(e.region.as_bytes());
    k.push(e.industry.section());
    k.push(e.status.code());
    k.push(e.entity_type.code());
    k.extend_from_slice(e.uscc.as_bytes());
    k
}

/// A decoded directory-index key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryEntry {
    pub region: RegionCode,
    pub section: u8,
    pub status: u8,
    pub entity_type: u8,
    pub uscc: Uscc,
}

/// Decodes a directory-index key.
pub fn decode_directory(k: &[u8]) -> Option<DirectoryEntry> {
    if k.len() != DIRECTORY_KEY_LEN || k[0] != DIRECTORY {
        return None;
    }
    Some(DirectoryEntry {
        region: RegionCode::parse("region", std::str::from_utf8(&k[1..7]).ok()?).ok()?,
        section: k[7],
        status: k[8],
        entity_type: k[9],
        uscc: Uscc::from_bytes(&k[10..]).ok()?,
    })
}

/// Key of an idempotency record.
pub fn request(rpc: &str, request_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + rpc.len() + request_id.len());
    k.push(REQUESTS);
    k.extend_from_slice(rpc.as_bytes());
    k.push(0);
    k.extend_from_slice(request_id.as_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn date_encoding_preserves_order(a in -30000i32..80000, b in -30000i32..80000) {
            let (da, db) = (Date::from_days(a), Date::from_days(b));
            prop_assert_eq!(date_bytes(da).cmp(&date_bytes(db)), da.cmp(&db));
            prop_assert_eq!(date_from_bytes(date_bytes(da)), da);
        }


        #[test]
        fn enterprise_keys_round_trip(body in "[0-9A-HJ-NPQRTUWXY]{8}") {
            let b: [u8; 8] = body.as_bytes().try_into().unwrap();
            let u = Uscc::assemble(b"91310115", &b).unwrap();
            prop_assert_eq!(decode_enterprise(&enterprise(&u)), Some(u));
        }

        #[test]
        fn decode_never_panics(k in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_enterprise(&k);
        }
    }
}
