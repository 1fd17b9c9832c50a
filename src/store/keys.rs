//! Key encodings of the `registry` tree. Every key starts with a one-byte keyspace tag;
//! all parts are fixed-width or last, and integers are big-endian (dates sign-flipped),
//! so byte order is the natural order and every enterprise's records form one
//! contiguous range `E + uscc`.
//!
//! | keyspace | key | value |
//! |---|---|---|
//! | `E` records | `E uscc(18) 0x01` | enterprise |
//! | | `E uscc 0x02 decision_number` | penalty |
//! | | `E uscc 0x03` | annual-report history (all years, one value) |
//! | | `E uscc 0x04 list_kind(1) listed_on(4) reason(1)` | listing |
//! | | `E uscc 0x05 task_id` | inspection result |
//! | `P` unique decision numbers | `P decision_number` | uscc |
//! | `X` directory index | `X region(6) section(1) status(1) type(1) uscc` | empty |
//! | `Q` request ids | `Q rpc 0x00 request_id` | fingerprint(32) + outcome |
//!
//! The directory index is one composite entry per enterprise rather than one index per
//! attribute: a region filter is a prefix scan, and industry, status or entity-type
//! filters skip-scan the few (region, section, status) prefixes without reading any
//! record. One entry instead of four keeps the store small at 3.5 M enterprises.
//! Annual reports are one value per enterprise (a short history) for the same reason:
//! they are the most numerous record.

use crate::domain::{Date, Enterprise, ListKind, ListingReason, RegionCode, Uscc};

/// Records keyspace.
pub const RECORDS: u8 = b'E';
/// Decision-number uniqueness keyspace.
pub const DECISIONS: u8 = b'P';
/// Directory index (region, section, status, type).
pub const DIRECTORY: u8 = b'X';
/// Length of a directory key.
pub const DIRECTORY_KEY_LEN: usize = 1 + 6 + 1 + 1 + 1 + 18;
/// Idempotency records.
pub const REQUESTS: u8 = b'Q';

/// Record kinds inside an enterprise's range.
pub mod kind {
    pub const PROFILE: u8 = 0x01;
    pub const PENALTY: u8 = 0x02;
    pub const REPORT: u8 = 0x03;
    pub const LISTING: u8 = 0x04;
    pub const INSPECTION: u8 = 0x05;
}

/// Length of `E uscc`.
pub const ENTERPRISE_PREFIX_LEN: usize = 19;

/// `E uscc`: the prefix of everything known about one enterprise.
pub fn enterprise_prefix(u: &Uscc) -> Vec<u8> {
    let mut k = Vec::with_capacity(40);
    k.push(RECORDS);
    k.extend_from_slice(u.as_bytes());
    k
}

fn record(u: &Uscc, kind: u8, extra: &[u8]) -> Vec<u8> {
    let mut k = enterprise_prefix(u);
    k.push(kind);
    k.extend_from_slice(extra);
    k
}

/// Key of the registration profile.
pub fn profile(u: &Uscc) -> Vec<u8> {
    record(u, kind::PROFILE, &[])
}

/// Key of a penalty.
pub fn penalty(u: &Uscc, decision_number: &str) -> Vec<u8> {
    record(u, kind::PENALTY, decision_number.as_bytes())
}

/// Key of an enterprise's annual-report history.
pub fn reports(u: &Uscc) -> Vec<u8> {
    record(u, kind::REPORT, &[])
}

/// Order-preserving encoding of a date.
pub fn date_bytes(d: Date) -> [u8; 4] {
    ((d.days() as u32) ^ 0x8000_0000).to_be_bytes()
}

/// Inverse of [`date_bytes`].
pub fn date_from_bytes(b: [u8; 4]) -> Date {
    Date::from_days((u32::from_be_bytes(b) ^ 0x8000_0000) as i32)
}

/// Key of a listing.
pub fn listing(u: &Uscc, kind: ListKind, listed_on: Date, reason: ListingReason) -> Vec<u8> {
    let mut extra = [0u8; 6];
    extra[0] = kind.code();
    extra[1..5].copy_from_slice(&date_bytes(listed_on));
    extra[5] = reason.code();
    record(u, kind::LISTING, &extra)
}

/// Key of an inspection result.
pub fn inspection(u: &Uscc, task_id: &str) -> Vec<u8> {
    record(u, kind::INSPECTION, task_id.as_bytes())
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

/// A decoded record key.
#[derive(Debug, PartialEq, Eq)]
pub enum RecordKey<'a> {
    Profile(Uscc),
    Penalty(Uscc, &'a str),
    Reports(Uscc),
    Listing(Uscc, ListKind, Date, ListingReason),
    Inspection(Uscc, &'a str),
}

/// Decodes a key of the records keyspace; `None` if it is not one.
pub fn decode_record(k: &[u8]) -> Option<RecordKey<'_>> {
    if k.len() < ENTERPRISE_PREFIX_LEN + 1 || k[0] != RECORDS {
        return None;
    }
    let u = Uscc::from_bytes(&k[1..ENTERPRISE_PREFIX_LEN]).ok()?;
    let rest = &k[ENTERPRISE_PREFIX_LEN + 1..];
    match k[ENTERPRISE_PREFIX_LEN] {
        kind::PROFILE if rest.is_empty() => Some(RecordKey::Profile(u)),
        kind::PENALTY if !rest.is_empty() => {
            Some(RecordKey::Penalty(u, std::str::from_utf8(rest).ok()?))
        }
        kind::REPORT if rest.is_empty() => Some(RecordKey::Reports(u)),
        kind::LISTING if rest.len() == 6 => Some(RecordKey::Listing(
            u,
            ListKind::from_code(rest[0])?,
            date_from_bytes([rest[1], rest[2], rest[3], rest[4]]),
            ListingReason::from_code(rest[5])?,
        )),
        kind::INSPECTION if !rest.is_empty() => {
            Some(RecordKey::Inspection(u, std::str::from_utf8(rest).ok()?))
        }
        _ => None,
    }
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
        fn record_keys_round_trip(dn in "[^\\x00]{1,40}", task in "[a-zA-Z0-9-]{1,64}", days in -7000i32..40000) {
            let u = Uscc::placeholder();
            let k = penalty(&u, &dn);
            prop_assert_eq!(decode_record(&k), Some(RecordKey::Penalty(u, dn.as_str())));
            let k = inspection(&u, &task);
            prop_assert_eq!(decode_record(&k), Some(RecordKey::Inspection(u, task.as_str())));
            let d = Date::from_days(days);
            let k = listing(&u, ListKind::SeriousIllegal, d, ListingReason::Other);
            prop_assert_eq!(decode_record(&k), Some(RecordKey::Listing(u, ListKind::SeriousIllegal, d, ListingReason::Other)));
            prop_assert!(k.starts_with(&enterprise_prefix(&u)));
        }

        #[test]
        fn decode_never_panics(k in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_record(&k);
        }
    }
}
