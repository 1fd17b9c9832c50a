//! Statistics the store keeps beside the records ([`Counter`]s, an index of inspections
//! by date, and which recorded draws selected each enterprise), written by the writer in
//! the batch of the record they count, so a statistic reads a few hundred keys instead
//! of scanning 3.5 million dossiers.
//!
//! | keyspace | key | value |
//! |---|---|---|
//! | `T` counters | `T tag(1) fields…` (see [`counter_key`]) | u64 big-endian |
//! | `I` inspections by date | `I date(4) uscc(18) task_id` | problem found (1), region (6) |
//! | `K` selections | `K uscc(18) task_id 0x00 plan(8)` | class index (1), month of the plan's as-of date (4) |
//! | `k` selections still to index | `k plan(8)` | how many of the plan's selections (in USCC order) have their `K` entry, u64 big-endian |
//! | `G` legal representatives | `G id hash(32) uscc(18)`: the person heading it now, and each named on a serious listing | empty |
//! | `H` commitments awaiting verification | `H due day(4) uscc(18) commitment id` | region (6) |
//!
//! A selection is recorded with its draw and never changed. The draw's batch holds its
//! receipt and a `k` marker, not its `K` entries: a city-wide draw selects hundreds of
//! thousands of enterprises, and one batch of that many keys took sled seconds and
//! gigabytes. The writer writes them afterwards in chunks between jobs ([`PlanSelections`]),
//! each chunk with the marker's new position in one batch, and removes the marker with
//! the last; until then a plan's selections still to index are read from its receipt
//! (held in memory by the writer), so every statistic is the same at every moment. Everything else is a function
//! of an enterprise's dossier and its selections ([`contribution`]): the writer notes
//! an enterprise's contribution when a job first changes its dossier or its selections,
//! and at commit writes the new contribution less the old one — counters by difference,
//! index entries replaced — so a move to another district or a draw recorded after a
//! result moves its counts. The legal-representative index (who heads which
//! enterprise, for the 3-year bar of MeasuresService) is kept the same way: it is a
//! function of the dossier. Plans drawn are counted with their draw. [`rebuild`]
//! recomputes everything from the records (schema migration) and [`verify`] checks the
//! stored state against it.
//!
//! Besides the record counters, `T M month stream` counts the USCCs the match RPCs
//! answered (usage: metered in memory and written every minute and at shutdown by
//! `op::RecordMatches`, so a crash loses at most a minute of it; not derived, not
//! verified).

use std::collections::BTreeMap;

use super::{codec, draws, keys};
use crate::{
    domain::{
        stats::{dossier_counters, Counter, Month, Selection},
        Date, EnterpriseRecords, EntityType, RegionCode, RiskClass, Uscc,
    },
    error::{Error, Result},
};

/// Counter keyspace.
pub const COUNTERS: u8 = b'T';
/// Inspections-by-date keyspace.
pub const INSPECTIONS: u8 = b'I';
/// Selections keyspace (which recorded draws selected an enterprise).
pub const DRAWN: u8 = b'K';
/// Selections-to-index keyspace: drawn plans whose `K` entries are not all written yet.
pub const UNINDEXED: u8 = b'k';
/// Legal-representative keyspace: enterprises by their legal representative's id hash.
pub const LEGAL_REPS: u8 = b'G';
/// Unverified-commitments keyspace: commitments awaiting verification by due day.
pub const DUE_COMMITMENTS: u8 = b'H';
/// The keyspaces of index entries derived from one dossier ([`Contribution::index`]).
const DOSSIER_INDEXES: [u8; 3] = [INSPECTIONS, LEGAL_REPS, DUE_COMMITMENTS];

/// The key of an unverified commitment of `u` due on `due`.
pub fn due_commitment_key(due: Date, u: &Uscc, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(23 + id.len());
    k.push(DUE_COMMITMENTS);
    k.extend_from_slice(&keys::date_bytes(due));
    k.extend_from_slice(u.as_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

/// Unverified commitments due on or before `by` whose region passes `keep`, by due day
/// then USCC: (USCC, commitment id), at most `limit` (and whether more were left).
pub fn due_commitments(
    tree: &sled::Tree,
    by: Date,
    keep: impl Fn(&RegionCode) -> bool,
    limit: usize,
) -> Result<(Vec<(Uscc, String)>, bool)> {
    let mut end = vec![DUE_COMMITMENTS];
    end.extend_from_slice(&keys::date_bytes(by.add_days(1)));
    let mut out = Vec::new();
    for kv in tree.range(vec![DUE_COMMITMENTS]..end) {
        let (k, v) = kv?;
        let bad = || Error::Corrupt(format!("bad commitment index key {k:?}"));
        let region = std::str::from_utf8(&v)
            .ok()
            .and_then(|r| RegionCode::parse("region", r).ok())
            .ok_or_else(bad)?;
        if !keep(&region) {
            continue;
        }
        if out.len() == limit {
            return Ok((out, true));
        }
        let u = k
            .get(5..23)
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|s| Uscc::parse(s).ok())
            .ok_or_else(bad)?;
        let id = k
            .get(23..)
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or_else(bad)?;
        out.push((u, id.to_string()));
    }
    Ok((out, false))
}

/// The key of `u`'s entry under its legal representative's id hash `rep`.
pub fn legal_rep_key(rep: &[u8; 32], u: &Uscc) -> Vec<u8> {
    let mut k = Vec::with_capacity(51);
    k.push(LEGAL_REPS);
    k.extend_from_slice(rep);
    k.extend_from_slice(u.as_bytes());
    k
}

/// The enterprises whose legal representative has id hash `rep`, USCC order.
pub fn enterprises_of_legal_rep(tree: &sled::Tree, rep: &[u8; 32]) -> Result<Vec<Uscc>> {
    let mut prefix = Vec::with_capacity(33);
    prefix.push(LEGAL_REPS);
    prefix.extend_from_slice(rep);
    tree.scan_prefix(&prefix)
        .map(|kv| {
            let k = kv?.0;
            std::str::from_utf8(&k[prefix.len()..])
                .ok()
                .and_then(|s| Uscc::parse(s).ok())
                .ok_or_else(|| Error::Corrupt(format!("bad legal-representative key {k:?}")))
        })
        .collect()
}

const OBLIGED: u8 = b'O';
const FILED: u8 = b'F';
const INSPECTED: u8 = b'I';
const DRAWN_COUNT: u8 = b'D';
const PLANS: u8 = b'L';
const MATCHED: u8 = b'M';

/// The key of a counter: `T tag` then its fields, fixed width, in the order a query
/// ranges over them (year or month first).
pub fn counter_key(c: &Counter) -> Vec<u8> {
    let mut k = Vec::with_capacity(16);
    k.push(COUNTERS);
    match *c {
        Counter::Obliged {
            region,
            entity,
            first_year,
        } => {
            k.push(OBLIGED);
            k.extend_from_slice(&first_year.to_be_bytes());
            k.extend_from_slice(region.as_bytes());
            k.push(entity.code());
        }
        Counter::Filed {
            year,
            region,
            entity,
            on_time,
        } => {
            k.push(FILED);
            k.extend_from_slice(&year.to_be_bytes());
            k.extend_from_slice(region.as_bytes());
            k.push(entity.code());
            k.push(u8::from(on_time));
        }
        Counter::Inspected {
            month,
            region,
            class,
            problem,
        } => {
            k.push(INSPECTED);
            k.extend_from_slice(&month.0.to_be_bytes());
            k.extend_from_slice(region.as_bytes());
            k.push(class.map_or(0, |c| c.index() as u8 + 1));
            k.push(u8::from(problem));
        }
        Counter::Drawn {
            month,
            region,
            class,
        } => {
            k.push(DRAWN_COUNT);
            k.extend_from_slice(&month.0.to_be_bytes());
            k.extend_from_slice(region.as_bytes());
            k.push(class.index() as u8);
        }
        Counter::PlansDrawn { month } => {
            k.push(PLANS);
            k.extend_from_slice(&month.0.to_be_bytes());
        }
        Counter::Matched { month, stream } => {
            k.push(MATCHED);
            k.extend_from_slice(&month.0.to_be_bytes());
            k.push(u8::from(stream));
        }
    }
    k
}

/// Inverse of [`counter_key`].
pub fn decode_counter(k: &[u8]) -> Option<Counter> {
    let region = |b: &[u8]| RegionCode::parse("region", std::str::from_utf8(b).ok()?).ok();
    let u16_at = |i: usize| Some(u16::from_be_bytes(k.get(i..i + 2)?.try_into().ok()?));
    let month_at = |i: usize| Some(Month(u32::from_be_bytes(k.get(i..i + 4)?.try_into().ok()?)));
    if k.first() != Some(&COUNTERS) {
        return None;
    }
    match (k.get(1)?, k.len()) {
        (&OBLIGED, 11) => Some(Counter::Obliged {
            first_year: u16_at(2)?,
            region: region(&k[4..10])?,
            entity: EntityType::from_code(k[10])?,
        }),
        (&FILED, 12) => Some(Counter::Filed {
            year: u16_at(2)?,
            region: region(&k[4..10])?,
            entity: EntityType::from_code(k[10])?,
            on_time: k[11] == 1,
        }),
        (&INSPECTED, 14) => Some(Counter::Inspected {
            month: month_at(2)?,
            region: region(&k[6..12])?,
            class: match k[12] {
                0 => None,
                c => Some(RiskClass::from_index(c - 1)?),
            },
            problem: k[13] == 1,
        }),
        (&DRAWN_COUNT, 13) => Some(Counter::Drawn {
            month: month_at(2)?,
            region: region(&k[6..12])?,
            class: RiskClass::from_index(k[12])?,
        }),
        (&PLANS, 6) => Some(Counter::PlansDrawn {
            month: month_at(2)?,
        }),
        (&MATCHED, 7) => Some(Counter::Matched {
            month: month_at(2)?,
            stream: k[6] == 1,
        }),
        _ => None,
    }
}

/// The prefix of one kind of counter.
fn kind_prefix(tag: u8) -> [u8; 2] {
    [COUNTERS, tag]
}

/// Decodes a counter's value.
pub fn decode_value(v: &[u8]) -> Result<u64> {
    <[u8; 8]>::try_from(v)
        .map(u64::from_be_bytes)
        .map_err(|_| Error::Corrupt("bad statistics counter".into()))
}

/// Every counter of a kind whose key starts with `from` (inclusive) up to `to`
/// (exclusive), both after the kind's tag.
fn counters_in(tree: &sled::Tree, tag: u8, from: &[u8], to: &[u8]) -> Result<Vec<(Counter, u64)>> {
    let p = kind_prefix(tag);
    let lo = [&p[..], from].concat();
    let hi = [&p[..], to].concat();
    let mut out = Vec::new();
    for kv in tree.range(lo..hi) {
        let (k, v) = kv?;
        let c = decode_counter(&k)
            .ok_or_else(|| Error::Corrupt(format!("bad statistics key {k:?}")))?;
        out.push((c, decode_value(&v)?));
    }
    Ok(out)
}

/// Every filing counter ([`Counter::Obliged`] and [`Counter::Filed`] up to report year
/// `last_year`).
pub fn filing(tree: &sled::Tree, last_year: u16) -> Result<Vec<(Counter, u64)>> {
    let end = (last_year.saturating_add(1)).to_be_bytes();
    let mut out = counters_in(tree, OBLIGED, &[], &end)?;
    out.extend(counters_in(tree, FILED, &[], &end)?);
    Ok(out)
}

/// Every spot-check counter ([`Counter::Inspected`], [`Counter::Drawn`],
/// [`Counter::PlansDrawn`], [`Counter::Matched`]) of the months `from..=to`.
pub fn spot_checks(tree: &sled::Tree, from: Month, to: Month) -> Result<Vec<(Counter, u64)>> {
    let (lo, hi) = (from.0.to_be_bytes(), to.0.saturating_add(1).to_be_bytes());
    let mut out = counters_in(tree, INSPECTED, &lo, &hi)?;
    out.extend(counters_in(tree, DRAWN_COUNT, &lo, &hi)?);
    out.extend(counters_in(tree, PLANS, &lo, &hi)?);
    out.extend(counters_in(tree, MATCHED, &lo, &hi)?);
    Ok(out)
}

/// `I date uscc task`.
pub fn inspection_key(on: Date, u: &Uscc, task_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(23 + task_id.len());
    k.push(INSPECTIONS);
    k.extend_from_slice(&keys::date_bytes(on));
    k.extend_from_slice(u.as_bytes());
    k.extend_from_slice(task_id.as_bytes());
    k
}

/// The value of an inspection's index entry.
pub fn inspection_value(problem: bool, region: RegionCode) -> Vec<u8> {
    let mut v = Vec::with_capacity(7);
    v.push(u8::from(problem));
    v.extend_from_slice(region.as_bytes());
    v
}

/// One indexed inspection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatedInspection {
    pub on: Date,
    pub uscc: Uscc,
    pub task_id: String,
    pub problem: bool,
    /// The enterprise's region.
    pub region: RegionCode,
}

/// Inspections dated `from..=to`, in date order.
pub fn inspections_between(
    tree: &sled::Tree,
    from: Date,
    to: Date,
) -> Result<Vec<DatedInspection>> {
    let lo = [&[INSPECTIONS][..], &keys::date_bytes(from)].concat();
    let hi = [&[INSPECTIONS][..], &keys::date_bytes(to.add_days(1))].concat();
    let mut out = Vec::new();
    for kv in tree.range(lo..hi) {
        let (k, v) = kv?;
        let bad = || Error::Corrupt(format!("bad inspection index entry {k:?}"));
        if k.len() < 23 || v.len() != 7 {
            return Err(bad());
        }
        out.push(DatedInspection {
            on: keys::date_from_bytes(k[1..5].try_into().map_err(|_| bad())?),
            uscc: Uscc::from_bytes(&k[5..23]).map_err(|_| bad())?,
            task_id: String::from_utf8(k[23..].to_vec()).map_err(|_| bad())?,
            problem: v[0] == 1,
            region: RegionCode::parse("region", std::str::from_utf8(&v[1..]).map_err(|_| bad())?)
                .map_err(|_| bad())?,
        });
    }
    Ok(out)
}

/// `K uscc`: the prefix of an enterprise's selections.
pub fn selections_prefix(u: &Uscc) -> Vec<u8> {
    let mut k = Vec::with_capacity(19);
    k.push(DRAWN);
    k.extend_from_slice(u.as_bytes());
    k
}

/// `K uscc task 0x00 plan(8)`: one selection of an enterprise by a recorded draw.
pub fn selection_key(u: &Uscc, task_id: &str, plan_id: u64) -> Vec<u8> {
    let mut k = selections_prefix(u);
    k.extend_from_slice(task_id.as_bytes());
    k.push(0);
    k.extend_from_slice(&plan_id.to_be_bytes());
    k
}

/// `k plan(8)`: the marker of a drawn plan whose `K` entries are not all written.
pub fn unindexed_key(plan_id: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(UNINDEXED);
    k.extend_from_slice(&plan_id.to_be_bytes());
    k
}

/// The selections of one drawn plan, in USCC order, of which the first `next` have
/// their `K` entry (the rest are written by the writer after the draw, see the module
/// doc).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanSelections {
    pub plan_id: u64,
    pub task_id: String,
    pub month: Month,
    /// Each enterprise the draw selected once, with its class, sorted by USCC.
    pub entries: Vec<(Uscc, RiskClass)>,
    pub next: usize,
}

impl PlanSelections {
    /// The selections of `plan` (none if it was not drawn), none indexed yet. An
    /// enterprise in two strata keeps the last (its `K` key names the plan, not the
    /// stratum).
    pub fn of(plan: &draws::DrawPlan) -> Option<PlanSelections> {
        let r = plan.receipt.as_ref()?;
        let mut entries: Vec<(Uscc, RiskClass)> = r
            .strata
            .iter()
            .flat_map(|s| s.selected.iter().map(move |(u, _)| (*u, s.class)))
            .collect();
        entries.sort_unstable();
        // Keep the last of equal USCCs (as writing the keys in this order would).
        entries.reverse();
        entries.dedup_by_key(|(u, _)| *u);
        entries.reverse();
        Some(PlanSelections {
            plan_id: plan.id,
            task_id: plan.task_id.clone(),
            month: Month::of(r.as_of),
            entries,
            next: 0,
        })
    }

    /// The selection of `u` by this plan if its `K` entry is not written yet.
    pub fn pending(&self, u: &Uscc) -> Option<Selection> {
        let i = self.entries.binary_search_by(|(x, _)| x.cmp(u)).ok()?;
        (i >= self.next).then(|| Selection {
            task_id: self.task_id.clone(),
            plan_id: self.plan_id,
            class: self.entries[i].1,
            month: self.month,
        })
    }

    /// The `K` entries of the selections from `from` to `to` (positions).
    pub fn entries_between(
        &self,
        from: usize,
        to: usize,
    ) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
        let to = to.min(self.entries.len());
        self.entries[from.min(to)..to].iter().map(|(u, class)| {
            (
                selection_key(u, &self.task_id, self.plan_id),
                selection_value(*class, self.month),
            )
        })
    }

    /// Whether every selection has its `K` entry.
    pub fn indexed(&self) -> bool {
        self.next >= self.entries.len()
    }
}

/// The drawn plans whose selections are not all indexed (their `k` markers), each with
/// its position.
pub fn unindexed(tree: &sled::Tree) -> Result<Vec<PlanSelections>> {
    let mut out = Vec::new();
    for kv in tree.scan_prefix([UNINDEXED]) {
        let (k, v) = kv?;
        let bad = || Error::Corrupt(format!("bad selections-to-index marker {k:?}"));
        let id = u64::from_be_bytes(k.get(1..9).ok_or_else(bad)?.try_into().map_err(|_| bad())?);
        let next = u64::from_be_bytes(v.as_ref().try_into().map_err(|_| bad())?);
        let plan = draws::load_plan(tree, id)?.ok_or_else(|| {
            Error::Corrupt(format!(
                "selections-to-index marker of plan {id}, which is not stored"
            ))
        })?;
        let mut p = PlanSelections::of(&plan).ok_or_else(|| {
            Error::Corrupt(format!(
                "selections-to-index marker of plan {id}, which was not drawn"
            ))
        })?;
        p.next = usize::try_from(next)
            .map_err(|_| bad())?
            .min(p.entries.len());
        out.push(p);
    }
    Ok(out)
}

/// The value of a selection: class index (1), the month of the plan's as-of date (4).
pub fn selection_value(class: RiskClass, month: Month) -> Vec<u8> {
    let mut v = Vec::with_capacity(5);
    v.push(class.index() as u8);
    v.extend_from_slice(&month.0.to_be_bytes());
    v
}

/// Decodes a selection entry.
pub fn decode_selection(k: &[u8], v: &[u8]) -> Result<Selection> {
    let bad = || Error::Corrupt(format!("bad selection entry {k:?}"));
    if k.len() < 28 || k[0] != DRAWN || k[k.len() - 9] != 0 || v.len() != 5 {
        return Err(bad());
    }
    let task = &k[19..k.len() - 9];
    Ok(Selection {
        task_id: String::from_utf8(task.to_vec()).map_err(|_| bad())?,
        plan_id: u64::from_be_bytes(k[k.len() - 8..].try_into().map_err(|_| bad())?),
        class: RiskClass::from_index(v[0]).ok_or_else(bad)?,
        month: Month(u32::from_be_bytes(v[1..5].try_into().map_err(|_| bad())?)),
    })
}

/// The selections of `u` stored in `tree`.
pub fn selections(tree: &sled::Tree, u: &Uscc) -> Result<Vec<Selection>> {
    let mut out = Vec::new();
    for kv in tree.scan_prefix(selections_prefix(u)) {
        let (k, v) = kv?;
        out.push(decode_selection(&k, &v)?);
    }
    Ok(out)
}

/// Every enterprise with at least one selection; `None` if `stop` was set before it
/// finished (checked every 4,096 keys).
pub fn selected_enterprises(
    tree: &sled::Tree,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<Option<std::collections::HashSet<Uscc>>> {
    let mut out = std::collections::HashSet::new();
    for (i, kv) in tree.scan_prefix([DRAWN]).enumerate() {
        if i % 4096 == 0 && stop.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(None);
        }
        let (k, _) = kv?;
        let u = k
            .get(1..19)
            .and_then(|b| Uscc::from_bytes(b).ok())
            .ok_or_else(|| Error::Corrupt(format!("bad selection key {k:?}")))?;
        out.insert(u);
    }
    Ok(Some(out))
}

/// What an enterprise contributes to the statistics: its counters and its index
/// entries (inspections by date, its legal representative, its unverified commitments).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Contribution {
    pub counters: Vec<Counter>,
    pub index: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The contribution of `u` with dossier `d` (none: not registered) and its selections.
pub fn contribution(
    u: &Uscc,
    d: Option<&EnterpriseRecords>,
    selections: &[Selection],
) -> Contribution {
    let Some((d, e)) = d.and_then(|d| Some((d, d.enterprise.as_ref()?))) else {
        return Contribution::default();
    };
    Contribution {
        counters: dossier_counters(d, selections),
        index: d
            .inspections
            .iter()
            .map(|i| {
                (
                    inspection_key(i.inspected_on, u, &i.task_id),
                    inspection_value(i.problems_found, e.region),
                )
            })
            .chain(
                // The person heading it now, and each person it named when put on the
                // serious list (the one Art. 17 bars), once each.
                e.legal_rep_hash
                    .into_iter()
                    .chain(d.listings.iter().filter_map(|l| l.legal_rep_hash))
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .map(|h| (legal_rep_key(&h, u), Vec::new())),
            )
            .chain(
                d.commitments
                    .iter()
                    .filter(|c| c.verification.is_none())
                    .map(|c| {
                        (
                            due_commitment_key(c.due_on, u, &c.commitment_id),
                            e.region.as_bytes().to_vec(),
                        )
                    }),
            )
            .collect(),
    }
}

/// Keys and values, in key order.
type Entries = BTreeMap<Vec<u8>, Vec<u8>>;
/// Counter keys and their values, in key order.
type Counts = BTreeMap<Vec<u8>, u64>;

/// The selections every recorded draw makes (one `K` entry per plan and selected
/// enterprise), and the plans drawn per month, from the stored plans.
fn from_receipts(tree: &sled::Tree) -> Result<(Entries, Counts)> {
    let mut selections = BTreeMap::new();
    let mut plans = BTreeMap::new();
    let next_plan = super::scoring::get_counter(tree, "next_plan")?.unwrap_or(1);
    for id in 1..next_plan {
        let Some(plan) = draws::load_plan(tree, id)? else {
            continue;
        };
        let Some(p) = PlanSelections::of(&plan) else {
            continue;
        };
        *plans
            .entry(counter_key(&Counter::PlansDrawn { month: p.month }))
            .or_insert(0) += 1;
        selections.extend(p.entries_between(0, p.entries.len()));
    }
    Ok((selections, plans))
}

/// Everything derived from the records: counters, dossier index entries (inspections,
/// legal representatives) and selections.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Derived {
    pub counters: Counts,
    pub index: Entries,
    pub selections: Entries,
}

/// Computes the derived state: selections and plan counts from the receipts, then each
/// dossier's contribution given its selections.
pub fn derive(tree: &sled::Tree) -> Result<Derived> {
    let (selections, mut counters) = from_receipts(tree)?;
    let mut index = BTreeMap::new();
    contributions(tree, &selections, &mut counters, |k, v| {
        index.insert(k, v);
        Ok(())
    })?;
    Ok(Derived {
        counters,
        index,
        selections,
    })
}

/// Scans every dossier: adds its counters to `counters` and hands each of its index
/// entries to `entry` (the one scan under [`derive`] and [`rebuild`]).
fn contributions(
    tree: &sled::Tree,
    selections: &Entries,
    counters: &mut Counts,
    mut entry: impl FnMut(Vec<u8>, Vec<u8>) -> Result<()>,
) -> Result<()> {
    for kv in tree.scan_prefix([keys::RECORDS]) {
        let (k, v) = kv?;
        let u = keys::decode_enterprise(&k)
            .ok_or_else(|| Error::Corrupt(format!("bad dossier key {k:?}")))?;
        let d = codec::decode_dossier(&v)?;
        let mine = selections
            .range(selections_prefix(&u)..)
            .take_while(|(k, _)| k.starts_with(&selections_prefix(&u)))
            .map(|(k, v)| decode_selection(k, v))
            .collect::<Result<Vec<_>>>()?;
        let c = contribution(&u, Some(&d), &mine);
        for counter in c.counters {
            *counters.entry(counter_key(&counter)).or_insert(0) += 1;
        }
        for (k, v) in c.index {
            entry(k, v)?;
        }
    }
    Ok(())
}

/// Whether a counter key counts usage (match volume), which no record gives: kept by
/// [`rebuild`], not compared by [`verify`].
fn is_usage(k: &[u8]) -> bool {
    k.starts_with(&kind_prefix(MATCHED))
}

/// The derived state as stored.
fn stored(tree: &sled::Tree) -> Result<Derived> {
    let mut out = Derived::default();
    for kv in tree.scan_prefix([COUNTERS]) {
        let (k, v) = kv?;
        let n = decode_value(&v)?;
        if n > 0 && !is_usage(&k) {
            out.counters.insert(k.to_vec(), n);
        }
    }
    for tag in DOSSIER_INDEXES {
        for kv in tree.scan_prefix([tag]) {
            let (k, v) = kv?;
            out.index.insert(k.to_vec(), v.to_vec());
        }
    }
    for kv in tree.scan_prefix([DRAWN]) {
        let (k, v) = kv?;
        out.selections.insert(k.to_vec(), v.to_vec());
    }
    // Selections still to index count as stored: the writer reads them from the receipt.
    for p in unindexed(tree)? {
        out.selections
            .extend(p.entries_between(p.next, p.entries.len()));
    }
    Ok(out)
}

/// Entries per batch of [`rebuild`]: one batch for a whole city held every key of it
/// in memory at once (a 3.5-million-enterprise migration peaked at 21.8 GB).
const REBUILD_BATCH: usize = 100_000;

/// What [`rebuild`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rebuilt {
    pub counters: usize,
    pub index_entries: usize,
    pub selections: usize,
}

/// Replaces the stored derived state with one recomputed from the records (usage
/// counters are kept), streaming: the old derived keys are removed, then each dossier's
/// index entries are written as the scan reaches it, in batches of 100,000 entries;
/// only the counters (a few thousand) and the selections (one per drawn enterprise) are
/// held in memory. Not atomic: it runs at open before the schema version is raised, so
/// a crash midway leaves the old version and the next open rebuilds again.
pub fn rebuild(tree: &sled::Tree) -> Result<Rebuilt> {
    let mut batch = sled::Batch::default();
    let mut n = 0;
    let step = |batch: &mut sled::Batch, n: &mut usize| -> Result<()> {
        *n += 1;
        if *n == REBUILD_BATCH {
            tree.apply_batch(std::mem::take(batch))?;
            *n = 0;
        }
        Ok(())
    };
    for tag in [
        COUNTERS,
        INSPECTIONS,
        LEGAL_REPS,
        DUE_COMMITMENTS,
        DRAWN,
        UNINDEXED,
    ] {
        for kv in tree.scan_prefix([tag]) {
            let k = kv?.0;
            if !is_usage(&k) {
                batch.remove(k);
                step(&mut batch, &mut n)?;
            }
        }
    }
    tree.apply_batch(std::mem::take(&mut batch))?;
    n = 0;
    let (selections, mut counters) = from_receipts(tree)?;
    for (k, v) in &selections {
        batch.insert(k.as_slice(), v.as_slice());
        step(&mut batch, &mut n)?;
    }
    let mut out = Rebuilt {
        selections: selections.len(),
        ..Rebuilt::default()
    };
    contributions(tree, &selections, &mut counters, |k, v| {
        batch.insert(k, v);
        out.index_entries += 1;
        step(&mut batch, &mut n)
    })?;
    for (k, v) in &counters {
        batch.insert(k.as_slice(), &v.to_be_bytes()[..]);
        step(&mut batch, &mut n)?;
    }
    tree.apply_batch(batch)?;
    out.counters = counters.len();
    Ok(out)
}

/// Checks that the stored statistics equal those recomputed from the records; returns
/// the number of counters, or [`Error::Corrupt`] naming the first difference.
pub fn verify(tree: &sled::Tree) -> Result<usize> {
    let want = derive(tree)?;
    let have = stored(tree)?;
    let differ = |k: &[u8], a: u64, b: u64| {
        Error::Corrupt(format!(
            "statistics counter {}: stored {a}, records say {b}",
            decode_counter(k).map_or_else(|| format!("{k:?}"), |c| c.to_string())
        ))
    };
    for (k, v) in want.counters.iter() {
        let got = have.counters.get(k).copied().unwrap_or(0);
        if got != *v {
            return Err(differ(k, got, *v));
        }
    }
    if let Some((k, v)) = have
        .counters
        .iter()
        .find(|(k, _)| !want.counters.contains_key(*k))
    {
        return Err(differ(k, *v, 0));
    }
    for (what, a, b) in [
        ("dossier indexes", &have.index, &want.index),
        ("selections", &have.selections, &want.selections),
    ] {
        if a != b {
            return Err(Error::Corrupt(format!(
                "statistics {what}: {} entries stored, records give {}",
                a.len(),
                b.len()
            )));
        }
    }
    Ok(want.counters.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn uscc(n: u8) -> Uscc {
        Uscc::assemble(
            b"91310115",
            &[b'1', b'0', b'0', b'0', b'0', b'0', b'0', b'0' + n],
        )
        .unwrap()
    }

    #[test]
    fn a_plans_selections_to_index_are_those_past_its_position() {
        let mut p = PlanSelections {
            plan_id: 7,
            task_id: "SC-1".into(),
            month: Month(202610),
            entries: vec![
                (uscc(1), RiskClass::A),
                (uscc(2), RiskClass::C),
                (uscc(5), RiskClass::D),
            ],
            next: 0,
        };
        assert_eq!(p.pending(&uscc(2)).map(|s| s.class), Some(RiskClass::C));
        assert!(p.pending(&uscc(3)).is_none(), "not selected");
        p.next = 2;
        assert!(p.pending(&uscc(2)).is_none(), "its K entry is written");
        let s = p.pending(&uscc(5)).unwrap();
        assert_eq!(
            (s.task_id.as_str(), s.plan_id, s.month),
            ("SC-1", 7, Month(202610))
        );
        // The K entries of a chunk decode to the selections they stand for.
        let chunk: Vec<_> = p.entries_between(1, 9).collect();
        assert_eq!(chunk.len(), 2);
        let (k, v) = &chunk[1];
        assert_eq!(decode_selection(k, v).unwrap(), s);
        assert!(k.starts_with(&selections_prefix(&uscc(5))));
        assert_eq!(p.entries_between(3, 3).count(), 0);
        assert!(!p.indexed());
        p.next = 3;
        assert!(p.indexed());
        assert_eq!(
            unindexed_key(7),
            [&[UNINDEXED][..], &7u64.to_be_bytes()].concat()
        );
    }

    fn region() -> impl Strategy<Value = RegionCode> {
        (0u32..100).prop_map(|n| RegionCode::parse("r", &format!("3101{n:02}")).unwrap())
    }

    fn counter() -> impl Strategy<Value = Counter> {
        let entity = (1u8..=3).prop_map(|c| EntityType::from_code(c).unwrap());
        let class = (0u8..4).prop_map(|c| RiskClass::from_index(c).unwrap());
        let month = (1950u32..2100, 1u32..=12).prop_map(|(y, m)| Month(y * 100 + m));
        prop_oneof![
            (region(), entity.clone(), 2000u16..2100).prop_map(|(region, entity, first_year)| {
                Counter::Obliged {
                    region,
                    entity,
                    first_year,
                }
            }),
            (2000u16..2100, region(), entity, any::<bool>()).prop_map(
                |(year, region, entity, on_time)| Counter::Filed {
                    year,
                    region,
                    entity,
                    on_time
                }
            ),
            (
                month.clone(),
                region(),
                proptest::option::of(class.clone()),
                any::<bool>()
            )
                .prop_map(|(month, region, class, problem)| Counter::Inspected {
                    month,
                    region,
                    class,
                    problem
                }),
            (month.clone(), region(), class).prop_map(|(month, region, class)| Counter::Drawn {
                month,
                region,
                class
            }),
            month
                .clone()
                .prop_map(|month| Counter::PlansDrawn { month }),
            (month, any::<bool>()).prop_map(|(month, stream)| Counter::Matched { month, stream }),
        ]
    }

    proptest! {
        #[test]
        fn counter_keys_round_trip_and_keep_order(a in counter(), b in counter()) {
            prop_assert_eq!(decode_counter(&counter_key(&a)), Some(a));
            // Within a kind, key order is field order (year or month first).
            if std::mem::discriminant(&a) == std::mem::discriminant(&b) {
                prop_assert_eq!(counter_key(&a).cmp(&counter_key(&b)), a.cmp(&b));
            }
        }

        #[test]
        fn decode_never_panics(k in proptest::collection::vec(any::<u8>(), 0..32)) {
            let _ = decode_counter(&k);
        }
    }
}
