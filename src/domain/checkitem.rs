//! The check-item catalogue (随机抽查事项清单): what a spot check checks, which department
//! owns it, on which legal basis, whom it applies to, how much of each class a task
//! with it draws by default and how often. A plan names its items; the enterprises an
//! item applies to are its population, and a plan naming items of several departments
//! is a joint task (跨部门联合抽查): one visit per enterprise, each department's own
//! inspectors (SPEC.md §5, issue 19).

use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::{
    codes::IndustryKey, model::Scope, records::check_text, DomainError, EntityType, RiskClass, Uscc,
};

/// A department that owns check items and has its own inspector directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Department {
    /// Short code, the key ("market", "medical_products", …).
    pub code: String,
    /// Its name (上海市市场监督管理局).
    pub name: String,
}

/// One check item (抽查事项).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckItem {
    /// Code, the key (at most 32 characters).
    pub code: String,
    /// Its name as the catalogue publishes it.
    pub name: String,
    /// The owning department's code.
    pub department: String,
    /// The legal basis (依据).
    pub basis: String,
    /// The evidence mark of the basis as DOMAIN.md uses them (V, R or U).
    pub evidence: String,
    /// Entity types it applies to; empty = every type.
    pub entity_types: Vec<EntityType>,
    /// Licences or industries it applies to; empty = every enterprise of its types.
    pub scope: Scope,
    /// Default share of each class's population a task with it draws, by class index.
    pub ratios: [f64; 4],
    /// Checks a year (抽查频次); 0 = as tasks require.
    pub per_year: u32,
}

impl CheckItem {
    /// Whether the item applies to an enterprise of this type, with these licences (a
    /// `SupervisionFlag::mask`) and in this industry.
    pub fn applies(&self, entity_type: EntityType, licences: u8, industry: IndustryKey) -> bool {
        (self.entity_types.is_empty() || self.entity_types.contains(&entity_type))
            && (self.scope.is_empty() || self.scope.admits_key(licences, industry))
    }

    /// Its default share for `class`.
    pub fn ratio(&self, class: RiskClass) -> f64 {
        self.ratios[class.index()]
    }
}

/// The catalogue in force.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckCatalogue {
    /// Its version (in every plan that names items).
    pub version: String,
    /// The department of plans without items and of inspectors stored without one.
    pub default_department: String,
    /// The departments, in catalogue order.
    pub departments: Vec<Department>,
    /// The items, in catalogue order.
    pub items: Vec<CheckItem>,
}

/// The built-in catalogue's text.
pub const BUILTIN: &str = include_str!("check_items_shanghai.toml");

/// Most items one plan may name (a byte mask per enterprise holds 8; the plan keeps up
/// to 8 bytes).
pub const MAX_ITEMS_PER_PLAN: usize = 64;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalogue {
    version: String,
    default_department: String,
    department: Vec<Department>,
    item: Vec<RawItem>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawItem {
    code: String,
    name: String,
    department: String,
    basis: String,
    evidence: String,
    #[serde(default)]
    entity_types: Vec<String>,
    #[serde(default)]
    licences: Vec<String>,
    #[serde(default)]
    industries: Vec<String>,
    ratios: RawRatios,
    per_year: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case)]
struct RawRatios {
    A: f64,
    B: f64,
    C: f64,
    D: f64,
}

/// Entity types by their names in catalogue files (the proto names without prefix).
const ENTITY_TYPES: [(&str, EntityType); 3] = [
    ("ENTERPRISE", EntityType::Enterprise),
    ("INDIVIDUAL_BUSINESS", EntityType::IndividualBusiness),
    ("FARMER_COOPERATIVE", EntityType::FarmerCooperative),
];

impl CheckCatalogue {
    /// The built-in catalogue.
    pub fn builtin() -> CheckCatalogue {
        CheckCatalogue::parse(BUILTIN)
            .unwrap_or_else(|e| unreachable!("the built-in check-item catalogue is valid: {e}"))
    }

    /// Parses and checks a catalogue; the error names the item or department and key
    /// (`item[3].ratios`).
    pub fn parse(text: &str) -> Result<CheckCatalogue, DomainError> {
        let raw: RawCatalogue =
            toml::from_str(text).map_err(|e| DomainError::invalid("check_items", e.to_string()))?;
        check_text("check_items.version", &raw.version, true, 64)?;
        let mut departments: Vec<Department> = Vec::new();
        for (i, d) in raw.department.into_iter().enumerate() {
            let f = |k: &str| format!("department[{i}].{k}");
            check_code(&f("code"), &d.code)?;
            check_text(&f("name"), &d.name, true, 100)?;
            if departments.iter().any(|x| x.code == d.code) {
                return Err(DomainError::invalid(
                    f("code"),
                    format!("{:?} appears twice", d.code),
                ));
            }
            departments.push(d);
        }
        let known = |code: &str| departments.iter().any(|d| d.code == code);
        if !known(&raw.default_department) {
            return Err(DomainError::invalid(
                "default_department",
                format!(
                    "{:?} is not a department of the catalogue",
                    raw.default_department
                ),
            ));
        }
        let mut items: Vec<CheckItem> = Vec::with_capacity(raw.item.len());
        for (i, m) in raw.item.into_iter().enumerate() {
            let f = |k: &str| format!("item[{i}].{k}");
            check_code(&f("code"), &m.code)?;
            if items.iter().any(|x| x.code == m.code) {
                return Err(DomainError::invalid(
                    f("code"),
                    format!("{:?} appears twice", m.code),
                ));
            }
            check_text(&f("name"), &m.name, true, 200)?;
            check_text(&f("basis"), &m.basis, true, 300)?;
            if !["V", "R", "U"].contains(&m.evidence.as_str()) {
                return Err(DomainError::invalid(
                    f("evidence"),
                    format!("{:?} is not V, R or U", m.evidence),
                ));
            }
            if !known(&m.department) {
                return Err(DomainError::invalid(
                    f("department"),
                    format!("{:?} is not a department of the catalogue", m.department),
                ));
            }
            let mut entity_types = Vec::new();
            for (j, t) in m.entity_types.iter().enumerate() {
                let ty = ENTITY_TYPES
                    .iter()
                    .find(|(n, _)| n == t)
                    .map(|(_, ty)| *ty)
                    .ok_or_else(|| {
                        DomainError::invalid(
                            format!("item[{i}].entity_types[{j}]"),
                            format!(
                                "{t:?} is not ENTERPRISE, INDIVIDUAL_BUSINESS or FARMER_COOPERATIVE"
                            ),
                        )
                    })?;
                entity_types.push(ty);
            }
            let scope = Scope::parse(&format!("item[{i}]."), &m.licences, &m.industries)?;
            let r = m.ratios;
            let ratios = [r.A, r.B, r.C, r.D];
            if ratios.iter().any(|x| !(0.0..=1.0).contains(x)) {
                return Err(DomainError::invalid(
                    f("ratios"),
                    format!("{ratios:?}: every share lies in [0, 1]"),
                ));
            }
            // Class-based supervision: the share drawn rises with risk.
            if ratios.windows(2).any(|w| w[1] < w[0]) {
                return Err(DomainError::invalid(
                    f("ratios"),
                    format!("{ratios:?}: shares must not fall from A to D"),
                ));
            }
            items.push(CheckItem {
                code: m.code,
                name: m.name,
                department: m.department,
                basis: m.basis,
                evidence: m.evidence,
                entity_types,
                scope,
                ratios,
                per_year: m.per_year,
            });
        }
        Ok(CheckCatalogue {
            version: raw.version,
            default_department: raw.default_department,
            departments,
            items,
        })
    }

    /// An item by code.
    pub fn item(&self, code: &str) -> Option<&CheckItem> {
        self.items.iter().find(|i| i.code == code)
    }

    /// A department by code.
    pub fn department(&self, code: &str) -> Option<&Department> {
        self.departments.iter().find(|d| d.code == code)
    }

    /// The department codes, for messages.
    pub fn department_codes(&self) -> String {
        let codes: Vec<&str> = self.departments.iter().map(|d| d.code.as_str()).collect();
        codes.join(", ")
    }
}

/// A code: 1 to 32 characters of letters, digits, `-` and `_`.
fn check_code(field: &str, code: &str) -> Result<(), DomainError> {
    if code.is_empty()
        || code.chars().count() > 32
        || !code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(DomainError::invalid(
            field,
            format!("{code:?} is not 1 to 32 letters, digits, '-' or '_'"),
        ));
    }
    Ok(())
}

/// The default share of `class` for a plan naming `items`: the largest among them (a
/// joint task draws what its most demanding item asks for).
pub fn default_ratio(items: &[CheckItem], class: RiskClass) -> Option<f64> {
    items.iter().map(|i| i.ratio(class)).reduce(f64::max)
}

/// Which of `items` apply to an enterprise, as a bit mask (bit i = `items[i]`; at most
/// [`MAX_ITEMS_PER_PLAN`]).
pub fn applicable(
    items: &[CheckItem],
    entity_type: EntityType,
    licences: u8,
    industry: IndustryKey,
) -> u64 {
    items
        .iter()
        .enumerate()
        .filter(|(_, it)| it.applies(entity_type, licences, industry))
        .fold(0, |m, (i, _)| m | (1u64 << i))
}

/// The population of each of `n` items of a plan over its strata: how many enterprises
/// each applies to and the SHA-256 digest of their USCCs ascending (as
/// [`super::sampler::population_digest`]). `strata` are (population, masks) pairs, each
/// population ascending with its masks parallel; the strata are merged in USCC order.
pub fn item_populations(strata: &[(&[Uscc], &[u64])], n: usize) -> Vec<(u64, String)> {
    // Each part of the items merges the strata itself and hashes only its own items:
    // a city-wide plan's items hash on every core.
    let members: usize = strata.iter().map(|(p, _)| p.len()).sum();
    let parts = super::parallel::parts_for(members, 1 << 16).min(n);
    super::parallel::in_parts(n, parts, |items| item_populations_of(strata, items))
        .into_iter()
        .flatten()
        .collect()
}

/// [`item_populations`] of the items in `items` (positions among the plan's).
fn item_populations_of(strata: &[(&[Uscc], &[u64])], items: Range<usize>) -> Vec<(u64, String)> {
    use sha2::{Digest, Sha256};
    let mut hashers: Vec<(u64, Sha256)> = items.clone().map(|_| (0, Sha256::new())).collect();
    let mut heads = vec![0usize; strata.len()];
    loop {
        // The smallest USCC among the strata's heads (disjoint lists: one class each).
        let mut best: Option<(usize, &Uscc)> = None;
        for (s, (pop, _)) in strata.iter().enumerate() {
            if let Some(u) = pop.get(heads[s]) {
                if best.is_none_or(|(_, b)| u.as_bytes() < b.as_bytes()) {
                    best = Some((s, u));
                }
            }
        }
        let Some((s, u)) = best else { break };
        let mask = strata[s].1.get(heads[s]).copied().unwrap_or(0);
        heads[s] += 1;
        for (i, (count, h)) in items.clone().zip(hashers.iter_mut()) {
            if mask & (1 << i) != 0 {
                if *count > 0 {
                    h.update(b"\n");
                }
                h.update(u.as_bytes());
                *count += 1;
            }
        }
    }
    hashers
        .into_iter()
        .map(|(count, h)| (count, hex::encode(h.finalize())))
        .collect()
}

/// The codes of the items of `mask` (bit i = `items[i]`), in plan order.
pub fn codes_of<'a>(items: impl IntoIterator<Item = &'a CheckItem>, mask: u64) -> Vec<String> {
    items
        .into_iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, it)| it.code.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{codes::IndustryCode, SupervisionFlag};

    fn key(s: &str, c: &str) -> IndustryKey {
        IndustryCode::parse("", s, c).unwrap().key()
    }

    #[test]
    fn builtin_catalogue_reads_and_names_its_sources() {
        let c = CheckCatalogue::builtin();
        assert!(c.items.len() >= 10 && c.departments.len() >= 3);
        for i in &c.items {
            assert!(!i.basis.is_empty(), "{} cites its basis", i.code);
            assert!(c.department(&i.department).is_some());
        }
        assert!(c.department(&c.default_department).is_some());
    }

    /// Who an item applies to: entity types AND (licences OR industries); an item naming
    /// neither applies to every enterprise of its types.
    #[test]
    fn applicability_rows() {
        let c = CheckCatalogue::builtin();
        let it = |code: &str| c.item(code).unwrap();
        let food = SupervisionFlag::Food.bit();
        let ent = EntityType::Enterprise;
        let ind = EntityType::IndividualBusiness;
        let rows = [
            ("SC-GS-01", ent, 0, key("F", "5211"), true),
            ("SC-GS-01", ind, 0, key("F", "5211"), false),
            ("SC-SP-01", ind, food, key("H", ""), true),
            ("SC-SP-01", ent, 0, key("H", "6210"), false),
            ("SC-ZL-01", ent, 0, key("C", "1711"), true),
            ("SC-ZL-01", ind, 0, key("C", "1711"), false),
            ("SC-GG-01", ent, 0, key("L", "7251"), true),
            ("SC-GG-01", ent, 0, key("L", "72"), false),
            ("SC-JG-01", ind, 0, key("F", "52"), true),
            ("SC-JG-01", ind, 0, key("F", "51"), false),
        ];
        for (code, ty, lic, ind, want) in rows {
            assert_eq!(
                it(code).applies(ty, lic, ind),
                want,
                "{code} {ty:?} {ind:?}"
            );
        }
        let items = vec![it("SC-GS-01").clone(), it("SC-SP-01").clone()];
        assert_eq!(applicable(&items, ent, food, key("H", "")), 0b11);
        assert_eq!(applicable(&items, ind, 0, key("H", "")), 0);
        assert_eq!(default_ratio(&items, RiskClass::D), Some(1.0));
        assert_eq!(default_ratio(&[], RiskClass::D), None);
    }

    /// An item's population digest is the digest of its USCCs in ascending order,
    /// whichever strata they come from.
    #[test]
    fn item_populations_merge_the_strata() {
        let u = |i: u8| {
            Uscc::assemble(
                b"91310115",
                &[b'M', b'A', b'0', b'0', b'0', b'0', b'0', b'0' + i],
            )
            .unwrap()
        };
        let mut all: Vec<Uscc> = (0..9).map(u).collect();
        all.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        // Two strata interleaved in USCC order; item 0 applies to all, item 1 to the even
        // positions, item 2 to none.
        let (mut s0, mut s1, mut m0, mut m1) = (vec![], vec![], vec![], vec![]);
        for (i, x) in all.iter().enumerate() {
            let m = 1 | if i % 2 == 0 { 2 } else { 0 };
            if i % 3 == 0 {
                s0.push(*x);
                m0.push(m);
            } else {
                s1.push(*x);
                m1.push(m);
            }
        }
        let got = item_populations(&[(&s0, &m0), (&s1, &m1)], 3);
        let digest = |xs: Vec<&Uscc>| {
            super::super::sampler::population_digest(xs.into_iter().map(Uscc::as_str))
        };
        assert_eq!(got[0], (9, digest(all.iter().collect())));
        assert_eq!(got[1], (5, digest(all.iter().step_by(2).collect())));
        assert_eq!(got[2], (0, digest(vec![])));
        // The items hashed in parts, as on a city-wide plan, give the same.
        let strata = [(&s0[..], &m0[..]), (&s1[..], &m1[..])];
        let mut parts = item_populations_of(&strata, 0..1);
        parts.extend(item_populations_of(&strata, 1..3));
        assert_eq!(parts, got);
        let items = CheckCatalogue::builtin().items;
        assert_eq!(
            codes_of(&items, 0b101),
            vec![items[0].code.clone(), items[2].code.clone()]
        );
    }

    /// Bad catalogues are refused naming the key.
    #[test]
    fn bad_catalogues_name_the_key() {
        let base = |item: &str| {
            format!(
                "version = \"v\"\ndefault_department = \"m\"\n[[department]]\ncode = \"m\"\nname = \"M\"\n[[item]]\n{item}"
            )
        };
        let ok = "code = \"X-1\"\nname = \"n\"\ndepartment = \"m\"\nbasis = \"b\"\nevidence = \"R\"\nratios = { A = 0.1, B = 0.2, C = 0.3, D = 0.4 }\nper_year = 1\n";
        assert!(CheckCatalogue::parse(&base(ok)).is_ok());
        let rows = [
            (ok.replace("0.4", "0.25"), "item[0].ratios"),
            (ok.replace("0.4", "1.5"), "item[0].ratios"),
            (
                ok.replace("department = \"m\"", "department = \"z\""),
                "item[0].department",
            ),
            (ok.replace("X-1", "X 1"), "item[0].code"),
            (ok.replace("\"R\"", "\"Q\""), "item[0].evidence"),
            (
                format!("{ok}licences = [\"wine\"]\n"),
                "item[0].licences[0]",
            ),
            (
                format!("{ok}industries = [\"Z9\"]\n"),
                "item[0].industries[0]",
            ),
            (
                format!("{ok}entity_types = [\"SHOP\"]\n"),
                "item[0].entity_types[0]",
            ),
        ];
        for (item, field) in rows {
            let e = CheckCatalogue::parse(&base(&item)).unwrap_err();
            assert_eq!(e.field, field, "{item}: {e}");
        }
        let e = CheckCatalogue::parse(
            &base(ok).replace("default_department = \"m\"", "default_department = \"q\""),
        )
        .unwrap_err();
        assert_eq!(e.field, "default_department");
    }
}
