//! Value encoding: one version byte, then the record in postcard (compact, varint-based).
//! Parts of a record that live in its key (the USCC, a report's year, a listing's natural
//! key, an inspection's task id) are not repeated in the value; the store puts them back
//! on decode.

use serde::{de::DeserializeOwned, Serialize};

use crate::error::{Error, Result};

/// Version of the value encoding. Bump it (and add a decoder for the old one) whenever a
/// stored struct changes shape.
pub const VALUE_VERSION: u8 = 1;

/// Encodes a value.
pub fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    let out = vec![VALUE_VERSION];
    postcard::to_extend(v, out).map_err(|e| Error::Corrupt(format!("encode: {e}")))
}

/// Decodes a value written by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    match bytes.split_first() {
        Some((&VALUE_VERSION, rest)) => {
            postcard::from_bytes(rest).map_err(|e| Error::Corrupt(format!("decode: {e}")))
        }
        Some((v, _)) => Err(Error::Corrupt(format!("unknown value version {v}"))),
        None => Err(Error::Corrupt("empty value".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Date, ListKind, Listing, ListingReason, Uscc};
    use proptest::prelude::*;

    #[test]
    fn round_trip_and_version_check() {
        let l = Listing {
            uscc: Uscc::placeholder(),
            kind: ListKind::AbnormalOperations,
            listed_on: Date::from_days(0),
            reason: ListingReason::Other,
            reason_text: "原因".into(),
            authority: "a".into(),
            report_year: Some(2023),
            removed_on: None,
            removal_reason: String::new(),
            recorded_at_ms: 1_700_000_000_000,
            term_ends_on: None,
        };
        let b = encode(&l).unwrap();
        assert_eq!(b[0], VALUE_VERSION);
        assert_eq!(decode::<Listing>(&b).unwrap(), l);
        let mut bad = b.clone();
        bad[0] = 99;
        assert!(decode::<Listing>(&bad).is_err());
        assert!(decode::<Listing>(&[]).is_err());
    }

    proptest! {
        #[test]
        fn decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = decode::<Listing>(&b);
            let _ = decode::<crate::domain::Enterprise>(&b);
            let _ = decode::<crate::domain::Penalty>(&b);
        }
    }
}
