//! Draw plans and receipts (抽取方案与回执): commit, then reveal.
//!
//! | key | value |
//! |---|---|
//! | `D plan(8) 0x00` | [`DrawPlan`] (with its [`DrawReceipt`] once drawn) |
//! | `D plan 0x01 stratum(1) chunk(4)` | the frozen population of a stratum: up to [`POPULATION_CHUNK`] USCCs, ascending, 18 bytes each |
//! | `D plan 0x02 stratum(1) chunk(4)` | the enterprises of the stratum's class and filter an exemption removed: up to [`POPULATION_CHUNK`] of (USCC, 18 bytes; [`Exemption::index`], 1 byte), ascending |
//! | `D plan 0x03 stratum(1) chunk(4)` | plans naming check items: which items apply to each enterprise of the population chunk of the same number, a little-endian bit mask of ⌈items / 8⌉ bytes each (bit i = the plan's item i) |
//! | `D plan 0x04` | a plan committed to a federated joint draw: its [`JointState`] (manifest, revealed seed, recorded outcome) |
//!
//! A plan freezes its population (the USCCs of each stratum after filter and
//! exemptions, in the plan's scoring run) and their digests before any seed exists; the
//! draw reads the frozen lists, so a later write, batch run or configuration change cannot
//! alter what was committed. Receipts are verified against the same lists.

use serde::{Deserialize, Serialize};

use super::{codec, spot::CandidateFilter};
use crate::{
    domain::{
        checkitem::{CheckItem, Department},
        parallel,
        spotcheck::{Exemption, ExemptionRules, Inspector},
        Date, RiskClass, Uscc,
    },
    error::{Error, Result},
};

/// Plan keyspace.
pub const PLANS: u8 = b'D';
/// USCCs per population chunk.
pub const POPULATION_CHUNK: usize = 4096;

/// One stratum as planned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedStratum {
    pub class: RiskClass,
    /// Exactly one of count and ratio.
    pub count: Option<u64>,
    pub ratio: Option<f64>,
    pub population: u64,
    pub k: u64,
    /// SHA-256 hex over the USCCs ascending, joined with "\n".
    pub digest: String,
    /// Enterprises of the class and filter the exemptions removed, per exemption name
    /// (empty for plans made before they were counted).
    pub exempted: Vec<(String, u64)>,
}

/// A stratum as version-1 plans stored it.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct PlannedStratumV1 {
    class: RiskClass,
    count: Option<u64>,
    ratio: Option<f64>,
    population: u64,
    k: u64,
    digest: String,
}

/// One stratum of a receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptStratum {
    pub class: RiskClass,
    pub population: u64,
    pub k: u64,
    pub digest: String,
    /// Selected USCCs with their tickets, in ticket order.
    pub selected: Vec<(Uscc, String)>,
}

/// The receipt of a draw (抽取回执).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrawReceipt {
    pub algorithm: String,
    pub seed: String,
    pub task_id: String,
    pub plan_id: u64,
    pub run_id: u64,
    /// The filter, as JSON (stable, readable).
    pub filter_json: String,
    pub as_of: Date,
    pub strata: Vec<ReceiptStratum>,
    pub drawn_at_ms: i64,
}

/// A check item a plan names, frozen as the catalogue had it, with its population.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedItem {
    pub item: CheckItem,
    /// Enterprises of the plan's strata the item applies to.
    pub population: u64,
    /// SHA-256 hex over their USCCs ascending, joined with "\n".
    pub digest: String,
}

/// A draw plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DrawPlan {
    pub id: u64,
    pub task_id: String,
    pub run_id: u64,
    pub model_version: String,
    pub as_of: Date,
    pub filter: CandidateFilter,
    pub exemptions: ExemptionRules,
    pub strata: Vec<PlannedStratum>,
    pub created_at_ms: i64,
    pub created_by: String,
    pub receipt: Option<DrawReceipt>,
    /// The inspector teams, once assigned: one assignment per department of the plan
    /// (one for a plan without check items); empty before.
    pub assignments: Vec<Assignment>,
    /// The rules version whose exemptions and sampling policy the plan applied (empty
    /// for plans made before rules versions existed).
    pub rules_version: String,
    /// Why the plan departs from the per-class sampling policy, if it does.
    pub override_reason: String,
    /// The check items the plan names (empty: none, every enterprise of the filter);
    /// several departments' items make it a joint task.
    pub check_items: Vec<PlannedItem>,
    /// The catalogue version the items were taken from (empty without items).
    pub check_items_version: String,
    /// The departments of its items, frozen, in the order they first appear (several:
    /// a joint task); empty without items.
    pub departments: Vec<Department>,
    /// Once drawn, for a plan with items: which items apply to each selected enterprise,
    /// per receipt stratum, parallel to its `selected`.
    pub selected_masks: Vec<Vec<u64>>,
}

impl DrawPlan {
    /// Bytes of one enterprise's item mask (0 without items).
    pub fn mask_width(&self) -> usize {
        self.check_items.len().div_ceil(8)
    }
}

/// A plan as value version 2 stored it (before check items and departments).
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct DrawPlanV2 {
    id: u64,
    task_id: String,
    run_id: u64,
    model_version: String,
    as_of: Date,
    filter: CandidateFilter,
    exemptions: ExemptionRules,
    strata: Vec<PlannedStratum>,
    created_at_ms: i64,
    created_by: String,
    receipt: Option<DrawReceipt>,
    assignment: Option<AssignmentV1>,
    rules_version: String,
    override_reason: String,
}

/// An assignment as plans before departments stored it (the whole directory's pool).
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct AssignmentV1 {
    team_size: u32,
    conflicts: Vec<(String, Uscc)>,
    pool: Vec<crate::domain::spotcheck::PoolMember>,
    pool_digest: String,
    teams: Vec<crate::domain::spotcheck::Team>,
    assigned_at_ms: i64,
}

impl From<AssignmentV1> for Assignment {
    fn from(a: AssignmentV1) -> Self {
        Assignment {
            department: String::new(),
            team_size: a.team_size,
            conflicts: a.conflicts,
            pool: a.pool,
            pool_digest: a.pool_digest,
            teams: a.teams,
            assigned_at_ms: a.assigned_at_ms,
        }
    }
}

/// A plan as stored before rules versions (value version 1).
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct DrawPlanV1 {
    id: u64,
    task_id: String,
    run_id: u64,
    model_version: String,
    as_of: Date,
    filter: CandidateFilter,
    exemptions: ExemptionRulesV1,
    strata: Vec<PlannedStratumV1>,
    created_at_ms: i64,
    created_by: String,
    receipt: Option<DrawReceipt>,
    assignment: Option<AssignmentV1>,
}

/// The exemption rules as version-1 plans stored them (before class-based exclusions).
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct ExemptionRulesV1 {
    suspended: bool,
    clean_two_years: bool,
    max_checks_per_year: u32,
}

/// Value version of stored plans: 2 adds the rules version and the override reason, 3
/// the check items and one assignment per department.
const PLAN_VERSION: u8 = 3;

/// Encodes a plan (value version 3).
pub fn encode_plan(p: &DrawPlan) -> Result<Vec<u8>> {
    postcard::to_extend(p, vec![PLAN_VERSION])
        .map_err(|e| Error::Corrupt(format!("encode plan: {e}")))
}

/// Decodes a stored plan of either value version.
pub fn decode_plan(bytes: &[u8]) -> Result<DrawPlan> {
    match bytes.split_first() {
        Some((&PLAN_VERSION, rest)) => {
            postcard::from_bytes(rest).map_err(|e| Error::Corrupt(format!("decode plan: {e}")))
        }
        Some((&2, rest)) => {
            let v: DrawPlanV2 = postcard::from_bytes(rest)
                .map_err(|e| Error::Corrupt(format!("decode plan: {e}")))?;
            Ok(DrawPlan {
                id: v.id,
                task_id: v.task_id,
                run_id: v.run_id,
                model_version: v.model_version,
                as_of: v.as_of,
                filter: v.filter,
                exemptions: v.exemptions,
                strata: v.strata,
                created_at_ms: v.created_at_ms,
                created_by: v.created_by,
                receipt: v.receipt,
                assignments: v.assignment.into_iter().map(Into::into).collect(),
                rules_version: v.rules_version,
                override_reason: v.override_reason,
                check_items: Vec::new(),
                check_items_version: String::new(),
                departments: Vec::new(),
                selected_masks: Vec::new(),
            })
        }
        Some((&codec::VALUE_VERSION, _)) => {
            let v: DrawPlanV1 = codec::decode(bytes)?;
            Ok(DrawPlan {
                id: v.id,
                task_id: v.task_id,
                run_id: v.run_id,
                model_version: v.model_version,
                as_of: v.as_of,
                filter: v.filter,
                exemptions: ExemptionRules {
                    suspended: v.exemptions.suspended,
                    clean_two_years: v.exemptions.clean_two_years,
                    max_checks_per_year: v.exemptions.max_checks_per_year,
                    never_exempt_classes: Vec::new(),
                    never_exempt_listed: false,
                },
                strata: v
                    .strata
                    .into_iter()
                    .map(|s| PlannedStratum {
                        class: s.class,
                        count: s.count,
                        ratio: s.ratio,
                        population: s.population,
                        k: s.k,
                        digest: s.digest,
                        exempted: Vec::new(),
                    })
                    .collect(),
                created_at_ms: v.created_at_ms,
                created_by: v.created_by,
                receipt: v.receipt,
                assignments: v.assignment.into_iter().map(Into::into).collect(),
                rules_version: String::new(),
                override_reason: String::new(),
                check_items: Vec::new(),
                check_items_version: String::new(),
                departments: Vec::new(),
                selected_masks: Vec::new(),
            })
        }
        Some((v, _)) => Err(Error::Corrupt(format!("unknown plan value version {v}"))),
        None => Err(Error::Corrupt("empty plan value".into())),
    }
}

/// The second random: inspector teams for the selected enterprises (检查人员随机匹配),
/// of one department.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// The department whose directory the teams come from (empty for plans assigned
    /// before departments: the whole directory).
    pub department: String,
    pub team_size: u32,
    /// Declared conflicts: (inspector id, USCC).
    pub conflicts: Vec<(String, Uscc)>,
    /// The department's active inspectors at assignment time (id, home region), sorted by
    /// id.
    pub pool: Vec<crate::domain::spotcheck::PoolMember>,
    /// SHA-256 hex over "id region" lines of the pool.
    pub pool_digest: String,
    /// One team per selected enterprise an item of the department applies to (every
    /// selected enterprise without items), in receipt order.
    pub teams: Vec<crate::domain::spotcheck::Team>,
    pub assigned_at_ms: i64,
}

/// Inspector keyspace: `N id` → inspector.
pub const INSPECTORS: u8 = b'N';

/// `N id`.
pub fn inspector_key(id: &str) -> Vec<u8> {
    let mut k = vec![INSPECTORS];
    k.extend_from_slice(id.as_bytes());
    k
}

/// Value version of stored inspectors: 2 adds the department.
const INSPECTOR_VERSION: u8 = 2;

/// An inspector as value version 1 stored it (before departments).
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct InspectorV1 {
    id: String,
    name: String,
    certificate_number: String,
    home_region: crate::domain::RegionCode,
    fields: Vec<String>,
    active: bool,
    recorded_at_ms: i64,
}

/// Encodes an inspector (value version 2).
pub fn encode_inspector(i: &Inspector) -> Result<Vec<u8>> {
    postcard::to_extend(i, vec![INSPECTOR_VERSION])
        .map_err(|e| Error::Corrupt(format!("encode inspector: {e}")))
}

/// Decodes a stored inspector of either value version; one stored before departments
/// belongs to `default_department`.
pub fn decode_inspector(bytes: &[u8], default_department: &str) -> Result<Inspector> {
    let bad = |e: postcard::Error| Error::Corrupt(format!("decode inspector: {e}"));
    match bytes.split_first() {
        Some((&INSPECTOR_VERSION, rest)) => postcard::from_bytes(rest).map_err(bad),
        Some((&codec::VALUE_VERSION, rest)) => {
            let v: InspectorV1 = postcard::from_bytes(rest).map_err(bad)?;
            Ok(Inspector {
                id: v.id,
                name: v.name,
                certificate_number: v.certificate_number,
                home_region: v.home_region,
                fields: v.fields,
                active: v.active,
                recorded_at_ms: v.recorded_at_ms,
                department: default_department.to_string(),
            })
        }
        Some((v, _)) => Err(Error::Corrupt(format!(
            "unknown inspector value version {v}"
        ))),
        None => Err(Error::Corrupt("empty inspector value".into())),
    }
}

/// One inspector.
pub fn load_inspector(
    tree: &sled::Tree,
    id: &str,
    default_department: &str,
) -> Result<Option<Inspector>> {
    tree.get(inspector_key(id))?
        .map(|v| decode_inspector(&v, default_department))
        .transpose()
}

/// Every inspector, by id.
pub fn list_inspectors(tree: &sled::Tree, default_department: &str) -> Result<Vec<Inspector>> {
    let mut out = Vec::new();
    for kv in tree.scan_prefix([INSPECTORS]) {
        let (_, v) = kv?;
        out.push(decode_inspector(&v, default_department)?);
    }
    Ok(out)
}

/// `D plan 0x00`.
pub fn plan_key(id: u64) -> Vec<u8> {
    let mut k = vec![PLANS];
    k.extend_from_slice(&id.to_be_bytes());
    k.push(0);
    k
}

/// Which list of a stratum: its frozen population, or whom the exemptions removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StratumList {
    /// `D plan 0x01 stratum`: the USCCs drawn from.
    Population = 1,
    /// `D plan 0x02 stratum`: the USCCs exempted, each with its exemption.
    Exempted = 2,
    /// `D plan 0x03 stratum`: the check items applying to each USCC of the population.
    Items = 3,
}

/// `D plan list stratum`.
pub fn stratum_prefix(id: u64, list: StratumList, stratum: u8) -> Vec<u8> {
    let mut k = vec![PLANS];
    k.extend_from_slice(&id.to_be_bytes());
    k.push(list as u8);
    k.push(stratum);
    k
}

/// The chunks of a stratum's list, one at a time: each entry is a USCC and, in the
/// exempted list, its exemption's index.
fn encode_chunks<'a, T>(
    id: u64,
    list: StratumList,
    stratum: u8,
    entries: &'a [T],
    put: impl Fn(&mut Vec<u8>, &T) + 'a,
) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + 'a {
    entries
        .chunks(POPULATION_CHUNK)
        .enumerate()
        .map(move |(i, chunk)| {
            let mut k = stratum_prefix(id, list, stratum);
            k.extend_from_slice(&(i as u32).to_be_bytes());
            let mut v = Vec::with_capacity(1 + chunk.len() * 19);
            v.push(codec::VALUE_VERSION);
            for e in chunk {
                put(&mut v, e);
            }
            (k, v)
        })
}

/// The chunks of a stratum's population.
pub fn encode_population(
    id: u64,
    stratum: u8,
    usccs: &[Uscc],
) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
    encode_chunks(id, StratumList::Population, stratum, usccs, |v, u| {
        v.extend_from_slice(u.as_bytes())
    })
}

/// The chunks of a stratum's exempted enterprises.
pub fn encode_exempted(
    id: u64,
    stratum: u8,
    exempted: &[(Uscc, Exemption)],
) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
    encode_chunks(id, StratumList::Exempted, stratum, exempted, |v, (u, e)| {
        v.extend_from_slice(u.as_bytes());
        v.push(e.index() as u8);
    })
}

/// The chunks of a stratum's item masks (`width` bytes each, parallel to the
/// population's chunks).
pub fn encode_masks(
    id: u64,
    stratum: u8,
    masks: &[u64],
    width: usize,
) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
    encode_chunks(id, StratumList::Items, stratum, masks, move |v, m| {
        v.extend_from_slice(&m.to_le_bytes()[..width])
    })
}

/// Reads a stratum's item masks (`width` bytes each).
pub fn load_masks(tree: &sled::Tree, id: u64, stratum: u8, width: usize) -> Result<Vec<u64>> {
    if width == 0 {
        return Ok(Vec::new());
    }
    let prefix = stratum_prefix(id, StratumList::Items, stratum);
    load_chunks(tree, prefix, width, |c| {
        let mut b = [0u8; 8];
        b[..c.len()].copy_from_slice(c);
        Ok(u64::from_le_bytes(b))
    })
}

/// Reads a stratum's list, decoding each entry of `width` bytes with `entry`.
fn load_chunks<T: Send>(
    tree: &sled::Tree,
    prefix: Vec<u8>,
    width: usize,
    entry: impl Fn(&[u8]) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let mut chunks = Vec::new();
    let mut n = 0;
    for kv in tree.scan_prefix(prefix) {
        let (_, v) = kv?;
        match v.split_first() {
            Some((&codec::VALUE_VERSION, rest)) if rest.len() % width == 0 => {
                n += rest.len() / width;
                chunks.push(v);
            }
            _ => return Err(Error::Corrupt("bad population chunk".into())),
        }
    }
    // A city-wide population (millions of validated USCCs) is decoded on every core.
    let parts = parallel::parts_for(n, 1 << 16).min(chunks.len());
    let decoded = parallel::in_parts(chunks.len(), parts, |range| {
        let mut out = Vec::new();
        for v in &chunks[range] {
            for c in v[1..].chunks_exact(width) {
                out.push(entry(c)?);
            }
        }
        Ok::<_, Error>(out)
    });
    let mut out = Vec::with_capacity(n);
    for part in decoded {
        out.extend(part?);
    }
    Ok(out)
}

/// Reads a stratum's frozen population.
pub fn load_population(tree: &sled::Tree, id: u64, stratum: u8) -> Result<Vec<Uscc>> {
    let prefix = stratum_prefix(id, StratumList::Population, stratum);
    load_chunks(tree, prefix, 18, |c| Ok(Uscc::from_bytes(c)?))
}

/// Reads whom the exemptions removed from a stratum, in USCC order (empty for plans made
/// before they were recorded).
pub fn load_exempted(tree: &sled::Tree, id: u64, stratum: u8) -> Result<Vec<(Uscc, Exemption)>> {
    let prefix = stratum_prefix(id, StratumList::Exempted, stratum);
    load_chunks(tree, prefix, 19, |c| {
        let e = Exemption::ALL
            .get(c[18] as usize)
            .copied()
            .ok_or_else(|| Error::Corrupt(format!("unknown exemption index {}", c[18])))?;
        Ok((Uscc::from_bytes(&c[..18])?, e))
    })
}

/// What a plan committed to a federated joint draw holds beside the plan
/// ([`crate::domain::joint`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JointState {
    /// The manifest the plan is committed to.
    pub manifest: crate::domain::joint::Manifest,
    /// Its digest (SHA-256 of its canonical text).
    pub digest: String,
    /// The seed, once revealed (DrawJointSample).
    pub seed: Option<String>,
    /// The merge result, once recorded (CompleteJointDraw); the plan's receipt then holds
    /// this instance's share.
    pub outcome: Option<crate::domain::joint::Outcome>,
}

/// Value version of a stored [`JointState`].
const JOINT_VERSION: u8 = 1;

/// `D plan 0x04`.
pub fn joint_key(id: u64) -> Vec<u8> {
    let mut k = vec![PLANS];
    k.extend_from_slice(&id.to_be_bytes());
    k.push(4);
    k
}

/// Encodes a plan's joint state (value version 1).
pub fn encode_joint(j: &JointState) -> Result<Vec<u8>> {
    postcard::to_extend(j, vec![JOINT_VERSION])
        .map_err(|e| Error::Corrupt(format!("encode joint draw: {e}")))
}

/// Decodes a plan's joint state.
pub fn decode_joint(bytes: &[u8]) -> Result<JointState> {
    match bytes.split_first() {
        Some((&JOINT_VERSION, rest)) => postcard::from_bytes(rest)
            .map_err(|e| Error::Corrupt(format!("decode joint draw: {e}"))),
        Some((v, _)) => Err(Error::Corrupt(format!(
            "unknown joint draw value version {v}"
        ))),
        None => Err(Error::Corrupt("empty joint draw value".into())),
    }
}

/// Reads a plan's joint state (`None`: not committed to a joint draw).
pub fn load_joint(tree: &sled::Tree, id: u64) -> Result<Option<JointState>> {
    tree.get(joint_key(id))?
        .map(|v| decode_joint(&v))
        .transpose()
}

/// Reads a plan.
pub fn load_plan(tree: &sled::Tree, id: u64) -> Result<Option<DrawPlan>> {
    tree.get(plan_key(id))?.map(|v| decode_plan(&v)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plans stored before rules versions (value version 1) still read, with an empty
    /// rules version; new plans round-trip with theirs.
    #[test]
    fn plans_of_both_value_versions_decode() {
        let v1 = DrawPlanV1 {
            id: 7,
            task_id: "T".into(),
            run_id: 3,
            model_version: "m".into(),
            as_of: Date::parse("d", "2026-01-05").unwrap(),
            filter: CandidateFilter::default(),
            exemptions: ExemptionRulesV1 {
                suspended: true,
                clean_two_years: false,
                max_checks_per_year: 2,
            },
            strata: vec![],
            created_at_ms: 1,
            created_by: "local".into(),
            receipt: None,
            assignment: Some(AssignmentV1 {
                team_size: 2,
                conflicts: vec![],
                pool: vec![],
                pool_digest: "d".into(),
                teams: vec![],
                assigned_at_ms: 5,
            }),
        };
        let old = decode_plan(&codec::encode(&v1).unwrap()).unwrap();
        assert_eq!(old.assignments.len(), 1);
        assert_eq!(old.assignments[0].department, "");
        assert_eq!(old.assignments[0].pool_digest, "d");
        assert_eq!((old.id, old.task_id.as_str(), old.run_id), (7, "T", 3));
        assert_eq!(old.rules_version, "");
        assert!(!old.exemptions.clean_two_years && old.exemptions.never_exempt_classes.is_empty());
        let new = DrawPlan {
            rules_version: "shanghai-2022-07-01".into(),
            override_reason: "campaign".into(),
            ..old
        };
        assert_eq!(decode_plan(&encode_plan(&new).unwrap()).unwrap(), new);
        assert!(decode_plan(&[9, 1, 2]).is_err());
        // Value version 2 (before check items and departments): one whole-directory
        // assignment, no items.
        let v2 = DrawPlanV2 {
            id: 8,
            task_id: "T2".into(),
            run_id: 3,
            model_version: "m".into(),
            as_of: new.as_of,
            filter: CandidateFilter::default(),
            exemptions: ExemptionRules::default(),
            strata: vec![],
            created_at_ms: 1,
            created_by: "local".into(),
            receipt: None,
            assignment: None,
            rules_version: "r".into(),
            override_reason: String::new(),
        };
        let old2 = decode_plan(&postcard::to_extend(&v2, vec![2]).unwrap()).unwrap();
        assert_eq!((old2.id, old2.rules_version.as_str()), (8, "r"));
        assert!(old2.assignments.is_empty() && old2.check_items.is_empty());
    }

    /// Inspectors stored before departments read as the default department's; new ones
    /// round-trip with theirs.
    #[test]
    fn inspectors_of_both_value_versions_decode() {
        let region = crate::domain::RegionCode::parse("r", "310115").unwrap();
        let v1 = InspectorV1 {
            id: "I-1".into(),
            name: "n".into(),
            certificate_number: "c".into(),
            home_region: region,
            fields: vec!["food".into()],
            active: true,
            recorded_at_ms: 3,
        };
        let old = decode_inspector(&codec::encode(&v1).unwrap(), "market").unwrap();
        assert_eq!(
            (old.id.as_str(), old.department.as_str()),
            ("I-1", "market")
        );
        let new = Inspector {
            department: "fire".into(),
            ..old
        };
        assert_eq!(
            decode_inspector(&encode_inspector(&new).unwrap(), "market").unwrap(),
            new
        );
        assert!(decode_inspector(&[7], "market").is_err());
    }
}
