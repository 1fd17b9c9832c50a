//! `Uscc`: the Unified Social Credit Code (统一社会信用代码, GB 32100-2015), validated.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::DomainError;

/// The 31 symbols of a USCC, in value order 0..=30 (no I, O, S, V, Z).
pub const ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
/// Weights of positions 1..=17 for the check character (3^(i-1) mod 31).
const WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];
/// The code behind [`Uscc::placeholder`] (a valid one: tested).
const PLACEHOLDER: &[u8; 18] = b"91310000631696382C";
/// Weights of the 8-character organisation-code body (GB 11714).
const ORG_WEIGHTS: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];

/// A valid 18-character Unified Social Credit Code, stored as its ASCII bytes.
///
/// Byte order equals string order, so a `Uscc` is its own order-preserving key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Uscc([u8; 18]);

/// Byte (= string) order, compared as two big-endian integers rather than byte by byte:
/// the binary searches over a run's millions of entries (the selector's hot path) do
/// without a `memcmp` call per probe.
impl Ord for Uscc {
    #[inline]
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.order_key().cmp(&other.order_key())
    }
}

impl PartialOrd for Uscc {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Value 0..=30 of a USCC symbol, or `None` if it is not one.
pub fn symbol_value(c: u8) -> Option<u32> {
    match SYMBOL_VALUES[usize::from(c)] {
        NOT_A_SYMBOL => None,
        v => Some(u32::from(v)),
    }
}

/// Marks a byte of [`SYMBOL_VALUES`] that is not a symbol.
const NOT_A_SYMBOL: u8 = u8::MAX;

/// Each byte's value in [`ALPHABET`] (its position), or [`NOT_A_SYMBOL`]: a table
/// rather than a chain of ranges, as every stored key read (a rescore reads 3.5 M) is
/// validated through it.
const SYMBOL_VALUES: [u8; 256] = {
    let mut t = [NOT_A_SYMBOL; 256];
    let mut i = 0;
    while i < ALPHABET.len() {
        t[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// The check character (position 18) for the first 17 symbols.
pub fn check_char(first17: &[u8]) -> Option<u8> {
    if first17.len() != 17 {
        return None;
    }
    let mut sum = 0u32;
    for (c, w) in first17.iter().zip(WEIGHTS) {
        sum += symbol_value(*c)? * w;
    }
    Some(ALPHABET[((31 - sum % 31) % 31) as usize])
}

/// The GB 11714 organisation-code check character for an 8-character body.
pub fn org_check_char(body: &[u8]) -> Option<u8> {
    if body.len() != 8 {
        return None;
    }
    let mut sum = 0u32;
    for (c, w) in body.iter().zip(ORG_WEIGHTS) {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            _ => return None,
        };
        sum += v * w;
    }
    Some(match 11 - sum % 11 {
        10 => b'X',
        11 => b'0',
        r => b'0' + r as u8,
    })
}

/// Trims, drops spaces and hyphens, maps full-width ASCII to half-width and upper-cases.
pub fn normalise(raw: &str) -> String {
    // Fast path: already upper-case ASCII letters and digits (the usual case for feeds).
    if raw
        .bytes()
        .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
    {
        return raw.to_owned();
    }
    raw.chars()
        .filter_map(|c| {
            let c = match c {
                '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
                '\u{3000}' => ' ',
                c => c,
            };
            match c {
                ' ' | '-' | '\t' | '\n' | '\r' => None,
                c => Some(c.to_ascii_uppercase()),
            }
        })
        .collect()
}

impl Uscc {
    /// Parses and validates a USCC after normalisation.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let s = normalise(raw);
        let bad = |reason: String| DomainError::invalid("uscc", reason);
        if s.is_empty() {
            return Err(bad("is required".into()));
        }
        if s.len() != 18 || !s.is_ascii() {
            return Err(bad(format!(
                "must be 18 characters, got {}",
                s.chars().count()
            )));
        }
        Self::validated(s.as_bytes())
    }

    /// Validates 18 bytes already in canonical form (upper-case ASCII): symbols, region
    /// digits and both check characters.
    fn validated(b: &[u8]) -> Result<Self, DomainError> {
        let bad = |reason: String| DomainError::invalid("uscc", reason);
        if b.len() != 18 {
            return Err(bad(format!("must be 18 characters, got {}", b.len())));
        }
        if let Some(pos) = b.iter().position(|c| symbol_value(*c).is_none()) {
            return Err(bad(format!(
                "character {} at position {} is not allowed (I, O, S, V, Z and punctuation never occur)",
                b[pos] as char,
                pos + 1
            )));
        }
        if !b[2..8].iter().all(u8::is_ascii_digit) {
            return Err(bad("positions 3-8 must be a 6-digit region code".into()));
        }
        let org = org_check_char(&b[8..16]).ok_or_else(|| bad("bad organisation code".into()))?;
        if org != b[16] {
            return Err(bad(format!(
                "organisation-code check character (position 17) is {}, expected {}",
                b[16] as char, org as char
            )));
        }
        let check = check_char(&b[..17]).ok_or_else(|| bad("bad characters".into()))?;
        if check != b[17] {
            return Err(bad(format!(
                "check character (position 18) is {}, expected {}",
                b[17] as char, check as char
            )));
        }
        let mut out = [0u8; 18];
        out.copy_from_slice(b);
        Ok(Uscc(out))
    }

    /// A valid code used only while decoding, before the store puts back the code it
    /// keeps in the key: every stored record is decoded with it, so it is a constant
    /// (validated by a test) rather than parsed per record — parsing it took about 3 %
    /// of a batch rescore's CPU.
    #[inline]
    pub const fn placeholder() -> Uscc {
        Uscc(*PLACEHOLDER)
    }

    /// Builds a USCC from its raw 18 bytes as stored, re-validating them.
    pub fn from_bytes(b: &[u8]) -> Result<Self, DomainError> {
        // Stored bytes are canonical: validated as they are, without normalising (or
        // allocating); anything else goes the way of input.
        if b.len() == 18
            && b.iter()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        {
            return Self::validated(b);
        }
        let s = std::str::from_utf8(b).map_err(|_| DomainError::invalid("uscc", "not UTF-8"))?;
        Self::parse(s)
    }

    /// Builds a valid USCC from its first 8 characters (authority, category, region) and
    /// the 8-character organisation-code body, computing both check characters.
    pub fn assemble(prefix8: &[u8; 8], org_body: &[u8; 8]) -> Result<Self, DomainError> {
        let mut out = [0u8; 18];
        out[..8].copy_from_slice(prefix8);
        out[8..16].copy_from_slice(org_body);
        out[16] = org_check_char(org_body)
            .ok_or_else(|| DomainError::invalid("uscc", "bad organisation-code body"))?;
        out[17] =
            check_char(&out[..17]).ok_or_else(|| DomainError::invalid("uscc", "bad characters"))?;
        let s = std::str::from_utf8(&out).map_err(|_| DomainError::invalid("uscc", "not ASCII"))?;
        Self::parse(s)
    }

    /// The code as a string slice.
    pub fn as_str(&self) -> &str {
        // Construction only admits ASCII symbols.
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    /// The raw 18 bytes (the store key).
    /// The code as (first 16 bytes, last 2), big-endian: ordered as the bytes are.
    #[inline]
    fn order_key(&self) -> (u128, u16) {
        let mut head = [0u8; 16];
        head.copy_from_slice(&self.0[..16]);
        (
            u128::from_be_bytes(head),
            u16::from_be_bytes([self.0[16], self.0[17]]),
        )
    }

    pub fn as_bytes(&self) -> &[u8; 18] {
        &self.0
    }

    /// Registration authority (position 1), `b'9'` for market regulation.
    pub fn authority(&self) -> u8 {
        self.0[0]
    }

    /// Entity category (position 2).
    pub fn category(&self) -> u8 {
        self.0[1]
    }
}

impl fmt::Display for Uscc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Uscc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uscc({})", self.as_str())
    }
}

impl AsRef<str> for Uscc {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_decoding_placeholder_is_a_valid_code() {
        let parsed = Uscc::parse(std::str::from_utf8(PLACEHOLDER).unwrap()).unwrap();
        assert_eq!(Uscc::placeholder(), parsed);
        assert_eq!(
            Uscc::from_bytes(Uscc::placeholder().as_str().as_bytes()),
            Ok(parsed)
        );
    }

    /// GB 32100-2015 Table 1: the 31 symbols and their values, I, O, S, V, Z excluded.
    #[test]
    fn symbol_values_are_the_standard_alphabet() {
        for c in 0..=u8::MAX {
            let want = ALPHABET.iter().position(|a| *a == c).map(|v| v as u32);
            assert_eq!(symbol_value(c), want, "{c}");
        }
        assert_eq!(symbol_value(b'Y'), Some(30));
        assert_eq!(symbol_value(b'I'), None);
    }

    #[test]
    fn accepts_real_codes() {
        for c in [
            "91310000631696382C",
            "91310115MA1K3BTP2B",
            "913101145852519045",
            "91110000600037341L",
            "121200004013590816",
            "91310000797046224D",
            "91310112087994932F",
            "9131012056010553X5",
        ] {
            assert_eq!(
                Uscc::parse(c).map(|u| u.to_string()).ok(),
                Some(c.to_string()),
                "{c}"
            );
        }
    }

    #[test]
    fn normalises_before_validating() {
        let u = Uscc::parse(" ９１３１０１１５ma1k3btp2b ").expect("full-width and lower case");
        assert_eq!(u.as_str(), "91310115MA1K3BTP2B");
        assert!(Uscc::parse("91310115-MA1K3BTP-2B").is_ok());
    }

    #[test]
    fn rejects_bad_codes_naming_the_reason() {
        let e = Uscc::parse("91110000600037341N").unwrap_err().to_string();
        assert!(e.contains("position 18"), "{e}");
        let e = Uscc::parse("9111000060003IOZSV").unwrap_err().to_string();
        assert!(e.contains("not allowed"), "{e}");
        assert!(Uscc::parse("").is_err());
        assert!(Uscc::parse("9131000063169638").is_err());
        // Organisation-code check broken, USCC check recomputed so only the org check fails.
        let mut b = *b"91310115MA1K3BTP3?";
        b[17] = check_char(&b[..17]).unwrap();
        let e = Uscc::parse(std::str::from_utf8(&b).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("position 17"), "{e}");
    }

    fn arb_uscc() -> impl Strategy<Value = Uscc> {
        let sym = proptest::sample::select(ALPHABET.to_vec());
        let org = proptest::sample::select(b"0123456789ABCDEFGHJKLMNPQRTUWXY".to_vec());
        (
            proptest::sample::select(b"9".to_vec()),
            proptest::sample::select(b"123".to_vec()),
            proptest::collection::vec(0u8..10, 6),
            proptest::collection::vec(org, 8),
            sym,
        )
            .prop_filter_map(
                "org check must be a USCC symbol",
                |(a, c, region, body, _)| {
                    let mut p = [0u8; 8];
                    p[0] = a;
                    p[1] = c;
                    for (i, d) in region.iter().enumerate() {
                        p[2 + i] = b'0' + d;
                    }
                    let mut ob = [0u8; 8];
                    ob.copy_from_slice(&body);
                    Uscc::assemble(&p, &ob).ok()
                },
            )
    }

    proptest! {
        #[test]
        fn valid_codes_round_trip(u in arb_uscc()) {
            let again = Uscc::parse(u.as_str()).unwrap();
            prop_assert_eq!(again, u);
            prop_assert_eq!(Uscc::from_bytes(u.as_bytes()).unwrap(), u);
        }

        #[test]
        fn any_single_character_change_is_rejected(u in arb_uscc(), pos in 0usize..18, sym in 0usize..31) {
            let mut b = *u.as_bytes();
            prop_assume!(b[pos] != ALPHABET[sym]);
            b[pos] = ALPHABET[sym];
            let s = std::str::from_utf8(&b).unwrap();
            prop_assert!(Uscc::parse(s).is_err(), "{} accepted after changing position {}", s, pos + 1);
        }

        #[test]
        fn codes_order_as_their_bytes(a in arb_uscc(), b in arb_uscc()) {
            prop_assert_eq!(a.cmp(&b), a.as_bytes().cmp(b.as_bytes()));
            prop_assert_eq!(a.cmp(&a), std::cmp::Ordering::Equal);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,30}") {
            let _ = Uscc::parse(&s);
        }
    }
}
