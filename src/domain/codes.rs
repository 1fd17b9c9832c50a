//! Region codes (GB/T 2260) and industry codes (GB/T 4754-2017).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::DomainError;

/// Province-level prefixes of GB/T 2260 (first two digits).
const PROVINCES: [u8; 34] = [
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52,
    53, 54, 61, 62, 63, 64, 65, 71, 81, 82,
];

/// Shanghai's current districts: (code, Chinese name, English name).
pub const SHANGHAI_DISTRICTS: [(&str, &str, &str); 16] = [
    ("310101", "黄浦", "Huangpu"),
    ("310104", "徐汇", "Xuhui"),
    ("310105", "长宁", "Changning"),
    ("310106", "静安", "Jing'an"),
    ("310107", "普陀", "Putuo"),
    ("310109", "虹口", "Hongkou"),
    ("310110", "杨浦", "Yangpu"),
    ("310112", "闵行", "Minhang"),
    ("310113", "宝山", "Baoshan"),
    ("310114", "嘉定", "Jiading"),
    ("310115", "浦东", "Pudong"),
    ("310116", "金山", "Jinshan"),
    ("310117", "松江", "Songjiang"),
    ("310118", "青浦", "Qingpu"),
    ("310120", "奉贤", "Fengxian"),
    ("310151", "崇明", "Chongming"),
];

/// A 6-digit administrative region code (行政区划代码), e.g. 310115 for Pudong.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RegionCode([u8; 6]);

impl RegionCode {
    /// Parses a 6-digit code whose first two digits are a province.
    pub fn parse(field: &str, s: &str) -> Result<Self, DomainError> {
        let s = s.trim();
        let b = s.as_bytes();
        if b.len() != 6 || !b.iter().all(u8::is_ascii_digit) {
            return Err(DomainError::invalid(
                field,
                format!("{s:?} is not a 6-digit region code"),
            ));
        }
        let province = (b[0] - b'0') * 10 + (b[1] - b'0');
        if !PROVINCES.contains(&province) {
            return Err(DomainError::invalid(
                field,
                format!("{s}: {province} is not a province code"),
            ));
        }
        let mut out = [0u8; 6];
        out.copy_from_slice(b);
        Ok(RegionCode(out))
    }

    /// The code's digits (the index key).
    pub fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    /// The prefix this code stands for as a *filter* (GB/T 2260 levels): a province code
    /// (`310000`) covers every code starting `31`, a prefecture code (`310100`) every code
    /// starting `3101`, a county code (`310115`) only itself.
    pub fn coverage(&self) -> &str {
        let s = self.as_str();
        let significant = s.bytes().rposition(|c| c != b'0').map_or(0, |i| i + 1);
        let len = if significant <= 2 {
            2
        } else if significant <= 4 {
            4
        } else {
            6
        };
        &s[..len]
    }

    /// Whether this code, as a filter, covers `other`.
    pub fn covers(&self, other: &RegionCode) -> bool {
        other.as_str().starts_with(self.coverage())
    }

    /// The filter codes that together cover exactly the codes starting with `prefix`
    /// (2 to 6 digits): `31` → `310000`; `3101` → `310100`; `310` → `310100` … `310900`;
    /// `31011` → `310110` … `310119`; `310115` → itself. A code that would stand for a
    /// wider level (`310000` for `310`, `310100` for `31010`) is left out, so the codes
    /// never cover anything outside the prefix (they may miss a code such as `310100`
    /// itself under `31010`, which GB/T 2260 does not give to any county).
    pub fn covering(prefix: &str) -> Result<Vec<RegionCode>, DomainError> {
        let field = "token.regions";
        if !(2..=6).contains(&prefix.len()) || !prefix.bytes().all(|c| c.is_ascii_digit()) {
            return Err(DomainError::invalid(
                field,
                format!("{prefix:?} is not a 2- to 6-digit region prefix"),
            ));
        }
        let mut out = Vec::new();
        let mut push = |code: String| -> Result<(), DomainError> {
            let r = RegionCode::parse(field, &code)?;
            // Keep only codes whose coverage lies inside the prefix.
            if r.coverage().starts_with(prefix) {
                out.push(r);
            }
            Ok(())
        };
        match prefix.len() {
            2 | 4 | 6 => push(format!("{prefix:0<6}"))?,
            3 => {
                for d in 0..=9 {
                    push(format!("{prefix}{d}00"))?;
                }
            }
            _ => {
                for d in 0..=9 {
                    push(format!("{prefix}{d}"))?;
                }
            }
        }
        Ok(out)
    }

    /// English name if it is a Shanghai district.
    pub fn district_name(&self) -> Option<&'static str> {
        SHANGHAI_DISTRICTS
            .iter()
            .find(|(c, _, _)| c.as_bytes() == self.0)
            .map(|(_, _, en)| *en)
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RegionCode({})", self.as_str())
    }
}

/// Division ranges (inclusive) of each GB/T 4754-2017 section A..=T.
pub const SECTIONS: [(u8, u8, u8); 20] = [
    (b'A', 1, 5),
    (b'B', 6, 12),
    (b'C', 13, 43),
    (b'D', 44, 46),
    (b'E', 47, 50),
    (b'F', 51, 52),
    (b'G', 53, 60),
    (b'H', 61, 62),
    (b'I', 63, 65),
    (b'J', 66, 69),
    (b'K', 70, 70),
    (b'L', 71, 72),
    (b'M', 73, 75),
    (b'N', 76, 79),
    (b'O', 80, 82),
    (b'P', 83, 83),
    (b'Q', 84, 85),
    (b'R', 86, 90),
    (b'S', 91, 96),
    (b'T', 97, 97),
];

/// A GB/T 4754 industry: section letter plus an optional 2-4 digit code in it.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IndustryCode {
    section: u8,
    /// Division, group or class digits ("", "17", "171", "1711").
    code: String,
}

impl IndustryCode {
    /// Parses a section letter and an optional code; `field` is the prefix of the message
    /// (errors name `field.industry_section` or `field.industry_code`).
    pub fn parse(prefix: &str, section: &str, code: &str) -> Result<Self, DomainError> {
        let sf = format!("{prefix}industry_section");
        let cf = format!("{prefix}industry_code");
        let section = section.trim().to_ascii_uppercase();
        let (sec, lo, hi) = match section.as_bytes() {
            [c] => SECTIONS
                .iter()
                .find(|(s, _, _)| s == c)
                .copied()
                .ok_or_else(|| {
                    DomainError::invalid(&sf, format!("{section:?} is not a section A..T"))
                })?,
            _ => {
                return Err(DomainError::invalid(
                    &sf,
                    format!("{section:?} is not a section letter A..T"),
                ))
            }
        };
        let code = code.trim();
        if !code.is_empty() {
            if !(2..=4).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_digit()) {
                return Err(DomainError::invalid(
                    &cf,
                    format!("{code:?} is not a 2-4 digit GB/T 4754 code"),
                ));
            }
            let division: u8 = code[..2].parse().unwrap_or(0);
            if !(lo..=hi).contains(&division) {
                return Err(DomainError::invalid(
                    &cf,
                    format!(
                        "division {division:02} is not in section {} ({lo:02}-{hi:02})",
                        sec as char
                    ),
                ));
            }
        }
        Ok(IndustryCode {
            section: sec,
            code: code.to_string(),
        })
    }

    /// Section letter (the index key).
    pub fn section(&self) -> u8 {
        self.section
    }

    /// Section letter as text.
    pub fn section_str(&self) -> String {
        (self.section as char).to_string()
    }

    /// Code below the section, possibly empty.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The code packed for the selector's in-memory index.
    pub fn key(&self) -> IndustryKey {
        IndustryKey {
            section: self.section,
            digits: self.code.parse().unwrap_or(0),
            len: self.code.len() as u8,
        }
    }
}

/// An industry packed in four bytes: section letter, the digits below it as a number and
/// their count (so "01" and "1" differ), for the selector's index of every enterprise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IndustryKey {
    /// Section letter.
    pub section: u8,
    digits: u16,
    len: u8,
}

impl IndustryKey {
    /// Whether this industry lies under `p` (its section, and its code starting with
    /// `p`'s digits): the prefix match of [`IndustryCode`]s.
    pub fn under(&self, p: &IndustryKey) -> bool {
        self.section == p.section
            && self.len >= p.len
            && self.digits / 10u16.pow(u32::from(self.len - p.len)) == p.digits
    }
}

impl fmt::Debug for IndustryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IndustryCode({}{})", self.section as char, self.code)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        /// The codes covering a prefix never admit a code outside it.
        #[test]
        fn covering_a_prefix_never_leaks(prefix in "31[0-9]{0,4}", code in "31[0-9]{4}") {
            let filters = RegionCode::covering(&prefix).unwrap();
            let code = RegionCode::parse("c", &code).unwrap();
            if filters.iter().any(|f| f.covers(&code)) {
                prop_assert!(code.as_str().starts_with(&prefix), "{prefix} admits {code:?}");
            }
        }
    }

    /// Every Shanghai district is admitted under every prefix of its code.
    #[test]
    fn covering_admits_every_district_under_its_prefixes() {
        for (d, _, _) in SHANGHAI_DISTRICTS {
            let code = RegionCode::parse("c", d).unwrap();
            for n in 2..=6 {
                let filters = RegionCode::covering(&d[..n]).unwrap();
                assert!(
                    filters.iter().any(|f| f.covers(&code)),
                    "{} under {}",
                    d,
                    &d[..n]
                );
            }
        }
    }

    #[test]
    fn coverage_follows_the_levels() {
        let c = |s: &str| RegionCode::parse("c", s).unwrap();
        assert_eq!(c("310000").coverage(), "31");
        assert_eq!(c("310100").coverage(), "3101");
        assert_eq!(c("310115").coverage(), "310115");
        // The probe's case: a 5-digit prefix is not widened to the prefecture.
        let f = RegionCode::covering("31010").unwrap();
        assert!(!f.iter().any(|r| r.covers(&c("310115"))));
        assert!(f.iter().any(|r| r.covers(&c("310104"))));
    }

    use super::*;

    #[test]
    fn region_codes() {
        assert!(RegionCode::parse("r", "310115").is_ok());
        assert!(
            RegionCode::parse("r", "310230").is_ok(),
            "historical codes stay valid"
        );
        assert_eq!(RegionCode::parse("r", "990101").unwrap_err().field, "r");
        assert!(RegionCode::parse("r", "31011").is_err());
        assert!(RegionCode::parse("r", "31011x").is_err());
        assert_eq!(
            RegionCode::parse("r", "310115").unwrap().district_name(),
            Some("Pudong")
        );
    }

    #[test]
    fn industry_codes() {
        assert!(IndustryCode::parse("", "C", "1711").is_ok());
        assert!(IndustryCode::parse("", "f", "").is_ok());
        assert_eq!(
            IndustryCode::parse("e.", "C", "5111").unwrap_err().field,
            "e.industry_code"
        );
        assert_eq!(
            IndustryCode::parse("e.", "Z", "").unwrap_err().field,
            "e.industry_section"
        );
        assert!(IndustryCode::parse("", "A", "1").is_err());
        assert!(IndustryCode::parse("", "T", "97").is_ok());
    }

    /// The packed key matches prefixes exactly as the codes do ("01" is not "1").
    #[test]
    fn industry_keys_match_prefixes() {
        let k = |s: &str, c: &str| IndustryCode::parse("", s, c).unwrap().key();
        let rows = [
            (("C", "1711"), ("C", ""), true),
            (("C", "1711"), ("C", "17"), true),
            (("C", "1711"), ("C", "171"), true),
            (("C", "1711"), ("C", "1711"), true),
            (("C", "1711"), ("C", "172"), false),
            (("C", "17"), ("C", "1711"), false),
            (("C", ""), ("C", "17"), false),
            (("A", "0111"), ("A", "01"), true),
            (("A", "0111"), ("A", "02"), false),
            (("L", "7251"), ("L", "725"), true),
            (("F", "5211"), ("C", ""), false),
        ];
        for ((s, c), (ps, pc), want) in rows {
            assert_eq!(k(s, c).under(&k(ps, pc)), want, "{s}{c} under {ps}{pc}");
        }
    }
}
