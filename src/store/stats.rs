//! Statistics the store keeps beside the records ([`Counter`]s, an index of inspections
//! by date, and which class a draw selected each enterprise in), written by the writer
//! in the batch of the record they count, so a statistic reads a few hundred keys
//! instead of scanning 3.5 million dossiers.
//!
//! | keyspace | key | value |
//! |---|---|---|
//! | `T` counters | `T tag(1) fields…` (see [`counter_key`]) | u64 big-endian |
//!
//! Besides the record counters, `T M month stream` counts the USCCs the match RPCs
//! answered (usage: metered in memory and written every minute and at shutdown by
//! `op::RecordMatches`, so a crash loses at most a minute of it).
//! | `J` inspections by date | `J date(4) uscc(18) task_id` | problem found (1), region (6) |
//! | `K` drawn enterprises | `K task_id 0x00 uscc(18)` | class index (1), plan id (8) |
//!
//! Counters derived from a dossier (the filing counters) are kept by difference: the
//! writer subtracts what the dossier contributed before a job and adds what it
//! contributes after. Inspections are never changed once recorded and a plan is drawn
//! once, so their counters only grow; an inspection counts in the class of the first
//! recorded draw of its task that selected the enterprise (moved there when that draw
//! is recorded after the result), and its region is the enterprise's when recorded. [`rebuild`] recomputes everything from the
//! records (schema migration) and [`verify`] checks that the stored state equals it.

use std::collections::BTreeMap;

use super::{codec, draws, keys};
use crate::{
    domain::{
        stats::{filing_counters, Counter, Month},
        Date, EntityType, RegionCode, RiskClass, Uscc,
    },
    error::{Error, Result},
};

/// Counter keyspace.
pub const COUNTERS: u8 = b'T';
/// Inspections-by-date keyspace.
pub const INSPECTIONS: u8 = b'J';
/// Drawn-enterprises keyspace.
pub const DRAWN: u8 = b'K';

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

/// `J date uscc task`.
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
    /// The enterprise's region when the result was recorded.
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

/// `K task 0x00 uscc`.
pub fn drawn_key(task_id: &str, u: &Uscc) -> Vec<u8> {
    let mut k = Vec::with_capacity(20 + task_id.len());
    k.push(DRAWN);
    k.extend_from_slice(task_id.as_bytes());
    k.push(0);
    k.extend_from_slice(u.as_bytes());
    k
}

/// The value of a drawn-enterprise entry.
pub fn drawn_value(class: RiskClass, plan_id: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(9);
    v.push(class.index() as u8);
    v.extend_from_slice(&plan_id.to_be_bytes());
    v
}

/// The class of a drawn-enterprise entry's value.
pub fn drawn_class(v: &[u8]) -> Result<RiskClass> {
    v.first()
        .and_then(|c| RiskClass::from_index(*c))
        .filter(|_| v.len() == 9)
        .ok_or_else(|| Error::Corrupt("bad drawn-enterprise entry".into()))
}

/// Everything [`rebuild`] writes, computed from the records: counters, inspection index
/// entries and drawn-enterprise entries.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Derived {
    pub counters: BTreeMap<Vec<u8>, u64>,
    pub index: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// Computes the derived state from the records: drawn plans first (which class each
/// task selected whom in, the first draw of a task winning), then every dossier.
pub fn derive(tree: &sled::Tree) -> Result<Derived> {
    let mut out = Derived::default();
    let add = |counters: &mut BTreeMap<Vec<u8>, u64>, c: Counter| {
        *counters.entry(counter_key(&c)).or_insert(0) += 1;
    };
    let mut drawn: Vec<(Date, Uscc, RiskClass)> = Vec::new();
    let next_plan = super::scoring::get_counter(tree, "next_plan")?.unwrap_or(1);
    for id in 1..next_plan {
        let Some(plan) = draws::load_plan(tree, id)? else {
            continue;
        };
        let Some(r) = plan.receipt else { continue };
        let on = r.as_of;
        add(
            &mut out.counters,
            Counter::PlansDrawn {
                month: Month::of(on),
            },
        );
        for s in &r.strata {
            for (u, _) in &s.selected {
                drawn.push((on, *u, s.class));
                out.index
                    .entry(drawn_key(&plan.task_id, u))
                    .or_insert_with(|| drawn_value(s.class, plan.id));
            }
        }
    }
    for kv in tree.scan_prefix([keys::RECORDS]) {
        let (k, v) = kv?;
        let u = keys::decode_enterprise(&k)
            .ok_or_else(|| Error::Corrupt(format!("bad dossier key {k:?}")))?;
        let d = codec::decode_dossier(&v)?;
        for c in filing_counters(&d) {
            add(&mut out.counters, c);
        }
        let Some(e) = d.enterprise.as_ref() else {
            continue;
        };
        for i in &d.inspections {
            let class = out
                .index
                .get(&drawn_key(&i.task_id, &u))
                .map(|v| drawn_class(v))
                .transpose()?;
            add(
                &mut out.counters,
                Counter::Inspected {
                    month: Month::of(i.inspected_on),
                    region: e.region,
                    class,
                    problem: i.problems_found,
                },
            );
            out.index.insert(
                inspection_key(i.inspected_on, &u, &i.task_id),
                inspection_value(i.problems_found, e.region),
            );
        }
    }
    for (on, u, class) in drawn {
        if let Some(region) = region_of(tree, &u)? {
            add(
                &mut out.counters,
                Counter::Drawn {
                    month: Month::of(on),
                    region,
                    class,
                },
            );
        }
    }
    Ok(out)
}

/// The region of a registered enterprise, read from its dossier.
pub fn region_of(tree: &sled::Tree, u: &Uscc) -> Result<Option<RegionCode>> {
    Ok(match tree.get(keys::enterprise(u))? {
        Some(v) => codec::decode_dossier(&v)?.enterprise.map(|e| e.region),
        None => None,
    })
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
    for tag in [INSPECTIONS, DRAWN] {
        for kv in tree.scan_prefix([tag]) {
            let (k, v) = kv?;
            out.index.insert(k.to_vec(), v.to_vec());
        }
    }
    Ok(out)
}

/// Replaces the stored derived state with one recomputed from the records (one batch).
pub fn rebuild(tree: &sled::Tree) -> Result<Derived> {
    let derived = derive(tree)?;
    let mut batch = sled::Batch::default();
    for tag in [COUNTERS, INSPECTIONS, DRAWN] {
        for kv in tree.scan_prefix([tag]) {
            let k = kv?.0;
            if !is_usage(&k) {
                batch.remove(k);
            }
        }
    }
    for (k, v) in &derived.counters {
        batch.insert(k.as_slice(), &v.to_be_bytes()[..]);
    }
    for (k, v) in &derived.index {
        batch.insert(k.as_slice(), v.as_slice());
    }
    tree.apply_batch(batch)?;
    Ok(derived)
}

/// Checks that the stored statistics equal those recomputed from the records; returns
/// the number of counters, or [`Error::Corrupt`] naming the first difference.
pub fn verify(tree: &sled::Tree) -> Result<usize> {
    let want = derive(tree)?;
    let have = stored(tree)?;
    let differ = |what: &str, k: &[u8], a: String, b: String| {
        Error::Corrupt(format!(
            "statistics {what} {}: stored {a}, records say {b}",
            decode_counter(k).map_or_else(|| format!("{k:?}"), |c| c.to_string())
        ))
    };
    for (k, v) in want.counters.iter() {
        let got = have.counters.get(k).copied().unwrap_or(0);
        if got != *v {
            return Err(differ("counter", k, got.to_string(), v.to_string()));
        }
    }
    if let Some((k, v)) = have
        .counters
        .iter()
        .find(|(k, _)| !want.counters.contains_key(*k))
    {
        return Err(differ("counter", k, v.to_string(), "0".into()));
    }
    if want.index != have.index {
        return Err(Error::Corrupt(format!(
            "statistics index: {} entries stored, records give {}",
            have.index.len(),
            want.index.len()
        )));
    }
    Ok(want.counters.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
