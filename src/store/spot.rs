//! The spot-check index of a scoring run (抽查对象库): per enterprise of the run, the
//! attributes the selector filters on (region, industry section, status, entity type)
//! and its spot checks (for exemptions), next to the run's class; plus per-class position
//! lists. Held in memory beside the run (≈ 9 bytes per enterprise and 4 per class list
//! entry); built by the batch job from the dossiers it scans anyway and stored beside
//! the run ([`SpotBuilder::encode_chunks`]), read back at open (one dossier scan only
//! for a run stored without it, or under other rules). Enterprises changed since the run live in an overlay the writer keeps
//! current after each commit, so answers reflect today's records and the run's classes.

use std::{collections::HashMap, sync::RwLock};

use serde::{Deserialize, Serialize};

use crate::{
    domain::{
        checkitem::{self, CheckItem},
        codes::IndustryKey,
        spotcheck::{Exemption, ExemptionRules, SpotHistory},
        Date, EnterpriseRecords, EnterpriseStatus, EntityType, RegionCode, RiskClass,
        SupervisionFlag, Uscc,
    },
    error::{Error, Result},
};

/// Histories by entry position, ascending, each position once (only enterprises that
/// have any; an empty history stands for none). A scan produces them in position order,
/// so they are appended, merged by a reversal and found by binary search: unlike a hash
/// map (tried until 2026-12), no rehashing while a city-wide scan grows it, no table
/// pages touched at random, no re-insertion when the scan's halves meet.
#[derive(Clone, Debug, Default, PartialEq)]
struct Histories(Vec<(u32, SpotHistory)>);

impl Histories {
    /// The history of position `pos`, if any.
    fn get(&self, pos: u32) -> Option<&SpotHistory> {
        self.slot(pos).ok().map(|i| &self.0[i].1)
    }

    /// Where `pos` is (`Ok`) or would go (`Err`).
    fn slot(&self, pos: u32) -> std::result::Result<usize, usize> {
        self.0.binary_search_by_key(&pos, |(p, _)| *p)
    }

    /// Appends `h` at `pos`, after every position held.
    fn push(&mut self, pos: u32, h: SpotHistory) {
        debug_assert!(self.0.last().is_none_or(|(p, _)| *p < pos));
        self.0.push((pos, h));
    }
}

/// Reads the histories of ascending positions: each look-up searches only past the last
/// one found (what a candidate query, walking a pool in position order, needs).
struct HistoryCursor<'a>(&'a [(u32, SpotHistory)]);

impl<'a> HistoryCursor<'a> {
    /// The history of `pos`, which must not be below any position asked before.
    fn at(&mut self, pos: u32) -> Option<&'a SpotHistory> {
        // Galloping: the positions asked are close together in a city-wide scan, so
        // the next history is usually a step or two away, not a binary search away.
        let mut end = 1;
        while end < self.0.len() && self.0[end - 1].0 < pos {
            end *= 2;
        }
        let end = end.min(self.0.len());
        let skip = self.0[..end].partition_point(|(p, _)| *p < pos);
        self.0 = &self.0[skip..];
        match self.0.first() {
            Some((p, h)) if *p == pos => Some(h),
            _ => None,
        }
    }
}

/// The filter attributes of one enterprise (12 bytes): what the candidate filters and
/// the check items' applicability read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attrs {
    pub region: RegionCode,
    /// Its industry (section and code).
    pub industry: IndustryKey,
    pub status: EnterpriseStatus,
    pub entity_type: EntityType,
    /// Its licences (key-supervision categories) as a `SupervisionFlag::mask`.
    pub licences: u8,
}

impl Attrs {
    /// From a dossier.
    pub fn of(d: &EnterpriseRecords) -> Option<Attrs> {
        d.enterprise.as_ref().map(|e| Attrs {
            region: e.region,
            industry: e.industry.key(),
            status: e.status,
            entity_type: e.entity_type,
            licences: SupervisionFlag::mask(&e.supervision),
        })
    }

    /// Which of `items` apply to it, as a bit mask (bit i = `items[i]`).
    pub fn items(&self, items: &[CheckItem]) -> u64 {
        checkitem::applicable(items, self.entity_type, self.licences, self.industry)
    }
}

/// What the exemptions read of a dossier (spot checks, barring listings).
pub fn history_of(d: &EnterpriseRecords) -> SpotHistory {
    SpotHistory::of(d)
}

/// One enterprise as the selector sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct SpotRow {
    pub uscc: Uscc,
    pub class: RiskClass,
    pub score: i32,
    pub attrs: Attrs,
    pub history: SpotHistory,
}

/// What a candidate query asks for; an empty list means "any".
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CandidateFilter {
    /// Region codes; a code ending in zeros (e.g. 310000) also matches the codes under it.
    pub regions: Vec<RegionCode>,
    /// GB/T 4754 section letters.
    pub sections: Vec<u8>,
    pub entity_types: Vec<EntityType>,
    pub classes: Vec<RiskClass>,
    pub statuses: Vec<EnterpriseStatus>,
    /// Return exempt enterprises too (marked with their exemption).
    pub include_exempt: bool,
}

fn region_matches(want: &RegionCode, got: &RegionCode) -> bool {
    want.covers(got)
}

impl CandidateFilter {
    /// Whether a row passes the filter (exemptions aside).
    pub fn admits(&self, class: RiskClass, a: &Attrs) -> bool {
        (self.classes.is_empty() || self.classes.contains(&class))
            && (self.regions.is_empty()
                || self.regions.iter().any(|r| region_matches(r, &a.region)))
            && (self.sections.is_empty() || self.sections.contains(&a.industry.section))
            && (self.entity_types.is_empty() || self.entity_types.contains(&a.entity_type))
            && (self.statuses.is_empty() || self.statuses.contains(&a.status))
    }
}

/// Candidates split by class (what a plan freezes), with whom the exemptions removed.
#[derive(Debug, Default)]
pub struct ByClass {
    /// The USCCs of each class, in USCC order.
    pub usccs: [Vec<Uscc>; 4],
    /// With check items: which apply to each USCC of `usccs` (parallel); empty without.
    pub masks: [Vec<u64>; 4],
    /// Per class: the enterprises an exemption removed, with it, in USCC order.
    pub exempted: [Vec<(Uscc, Exemption)>; 4],
}

/// A candidate: a row and its exemption at the query's as-of date.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub uscc: Uscc,
    pub class: RiskClass,
    pub score: i32,
    pub attrs: Attrs,
    pub exemption: Option<Exemption>,
}

/// The index of one run.
#[derive(Debug, Default)]
pub struct SpotIndex {
    /// Parallel to the run's entries; `None` for an enterprise without a profile.
    attrs: Vec<Option<Attrs>>,
    /// Spot checks and barring listings by entry position (only enterprises that have
    /// any).
    history: Histories,
    /// Entry positions per class, ascending (= USCC order).
    by_class: [Vec<u32>; 4],
    /// Enterprises changed since the run (re-scored onto it), by USCC; `None` for one
    /// that left the run's scope (a specialised model no longer rates it).
    overlay: RwLock<HashMap<Uscc, Option<SpotRow>>>,
}

/// Positions per stored chunk of a run's spot base.
pub const BASE_CHUNK: usize = 65_536;
/// Value version of a stored spot base chunk.
const BASE_VERSION: u8 = 1;

/// One stored chunk of a spot base (as written).
#[derive(Serialize)]
struct BaseChunkRef<'a> {
    attrs: &'a [Option<Attrs>],
    history: &'a [(u32, &'a SpotHistory)],
}

/// One stored chunk of a spot base (as read).
#[derive(Deserialize)]
struct BaseChunk {
    attrs: Vec<Option<Attrs>>,
    history: Vec<(u32, SpotHistory)>,
}

/// A spot base as stored beside its run, [`BASE_CHUNK`] positions per value (each with
/// the histories of its positions, ascending), so a restart reads it back instead of
/// scanning every dossier.
fn encode_base(attrs: &[Option<Attrs>], history: &[(u32, &SpotHistory)]) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut h = history;
    for (i, attrs) in attrs.chunks(BASE_CHUNK).enumerate() {
        let end = ((i + 1) * BASE_CHUNK) as u64;
        let split = h.partition_point(|(p, _)| u64::from(*p) < end);
        let chunk = BaseChunkRef {
            attrs,
            history: &h[..split],
        };
        h = &h[split..];
        out.push(
            postcard::to_extend(&chunk, vec![BASE_VERSION])
                .map_err(|e| Error::Corrupt(format!("encode spot base: {e}")))?,
        );
    }
    Ok(out)
}

/// `held` (ascending by position) with `late` (positions not in `held`) merged in,
/// ascending, empty histories left out.
fn merge_late<H: std::borrow::Borrow<SpotHistory>>(
    held: impl IntoIterator<Item = (u32, H)>,
    mut late: Vec<(u32, H)>,
) -> Vec<(u32, H)> {
    late.sort_unstable_by_key(|(p, _)| *p);
    let held = held.into_iter();
    let mut out = Vec::with_capacity(held.size_hint().0 + late.len());
    let mut late = late.into_iter().peekable();
    for (p, h) in held {
        while let Some(l) = late.next_if(|(q, _)| *q < p) {
            out.push(l);
        }
        out.push((p, h));
    }
    out.extend(late);
    out.retain(|(_, h)| !h.borrow().is_empty());
    out
}

/// Builds an index while entries are produced in USCC order.
#[derive(Default)]
pub struct SpotBuilder {
    attrs: Vec<Option<Attrs>>,
    history: Histories,
    /// Histories that `set` gave to positions without one (a dossier that gained its
    /// first check or listing while the pass ran): kept aside rather than inserted into
    /// the middle of `history`, merged in when the builder is encoded or finished.
    late: rustc_hash::FxHashMap<u32, SpotHistory>,
}

impl SpotBuilder {
    /// A builder with room for `n` enterprises (and as many histories: room a scan does
    /// not fill costs address space, not memory).
    pub fn with_capacity(n: usize) -> SpotBuilder {
        SpotBuilder {
            attrs: Vec::with_capacity(n),
            history: Histories(Vec::with_capacity(n)),
            late: Default::default(),
        }
    }

    /// Adds the next enterprise (position = number added so far).
    pub fn push(&mut self, d: &EnterpriseRecords) {
        let pos = self.attrs.len() as u32;
        self.attrs.push(Attrs::of(d));
        let h = history_of(d);
        if !h.is_empty() {
            self.history.push(pos, h);
        }
    }

    /// Appends another builder's enterprises given in descending USCC order.
    pub fn append_reversed(&mut self, other: SpotBuilder) {
        debug_assert!(self.late.is_empty() && other.late.is_empty());
        let base = self.attrs.len() as u32;
        let n = other.attrs.len() as u32;
        self.attrs.extend(other.attrs.into_iter().rev());
        // Descending positions reversed and renumbered: ascending after ours.
        self.history.0.extend(
            other
                .history
                .0
                .into_iter()
                .rev()
                .map(|(p, c)| (base + (n - 1 - p), c)),
        );
    }

    /// The attributes and history held for position `pos` (`None` past the end).
    pub fn at(&self, pos: usize) -> Option<(Option<Attrs>, SpotHistory)> {
        let a = *self.attrs.get(pos)?;
        let pos = pos as u32;
        let h = self.late.get(&pos).or_else(|| self.history.get(pos));
        Some((a, h.cloned().unwrap_or_default()))
    }

    /// Number of enterprises added.
    pub fn len(&self) -> usize {
        self.attrs.len()
    }

    /// Whether none were added.
    pub fn is_empty(&self) -> bool {
        self.attrs.is_empty()
    }

    /// Replaces the attributes and history of position `pos` (a re-read dossier).
    pub fn set(&mut self, pos: usize, d: &EnterpriseRecords) {
        if let Some(a) = self.attrs.get_mut(pos) {
            *a = Attrs::of(d);
        }
        let h = history_of(d);
        let pos = pos as u32;
        match self.history.slot(pos) {
            Ok(i) => self.history.0[i].1 = h,
            Err(_) if h.is_empty() => {
                self.late.remove(&pos);
            }
            Err(_) => {
                self.late.insert(pos, h);
            }
        }
    }

    /// The histories with the late ones merged in, ascending, empty ones left out.
    fn merged_history(&self) -> Vec<(u32, &SpotHistory)> {
        merge_late(
            self.history.0.iter().map(|(p, h)| (*p, h)),
            self.late.iter().map(|(p, h)| (*p, h)).collect(),
        )
    }

    /// The builder as stored beside its run: [`BASE_CHUNK`] positions per value, each
    /// with the histories of its positions, ascending.
    pub fn encode_chunks(&self) -> Result<Vec<Vec<u8>>> {
        encode_base(&self.attrs, &self.merged_history())
    }

    /// A builder from its stored chunks, in order.
    pub fn decode_chunks<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Result<SpotBuilder> {
        let mut decoded = Vec::new();
        for v in chunks {
            let chunk: BaseChunk = match v.split_first() {
                Some((&BASE_VERSION, rest)) => postcard::from_bytes(rest)
                    .map_err(|e| Error::Corrupt(format!("decode spot base: {e}")))?,
                Some((v, _)) => {
                    return Err(Error::Corrupt(format!(
                        "unknown spot base value version {v}"
                    )))
                }
                None => return Err(Error::Corrupt("empty spot base value".into())),
            };
            decoded.push(chunk);
        }
        // Sized once: a city's base is millions of positions.
        let mut b = SpotBuilder {
            attrs: Vec::with_capacity(decoded.iter().map(|c| c.attrs.len()).sum()),
            history: Histories(Vec::with_capacity(
                decoded.iter().map(|c| c.history.len()).sum(),
            )),
            late: Default::default(),
        };
        for chunk in decoded {
            b.attrs.extend(chunk.attrs);
            b.history.0.extend(chunk.history);
        }
        // Written ascending, each position once, within the attributes: anything else
        // is damage, not an index to search.
        let n = b.attrs.len();
        let ascending = b.history.0.windows(2).all(|w| w[0].0 < w[1].0);
        if !ascending || b.history.0.last().is_some_and(|(p, _)| *p as usize >= n) {
            return Err(Error::Corrupt(
                "spot base: history positions out of order or range".into(),
            ));
        }
        Ok(b)
    }

    /// The index, given the classes of the entries (same order).
    pub fn finish(self, classes: impl Iterator<Item = RiskClass>) -> SpotIndex {
        let history = match self.late.is_empty() {
            true => self.history,
            // Moved, not copied: a city has a million histories.
            false => Histories(merge_late(self.history.0, self.late.into_iter().collect())),
        };
        let mut by_class: [Vec<u32>; 4] = Default::default();
        for (i, c) in classes.enumerate() {
            by_class[c.index()].push(i as u32);
        }
        SpotIndex {
            attrs: self.attrs,
            history,
            by_class,
            overlay: RwLock::new(HashMap::new()),
        }
    }
}

impl SpotIndex {
    /// Number of positions (the run's entries).
    pub fn len(&self) -> usize {
        self.attrs.len()
    }

    /// Whether it has no positions.
    pub fn is_empty(&self) -> bool {
        self.attrs.is_empty()
    }

    /// The index as stored beside its run: what [`SpotBuilder::encode_chunks`] of the
    /// builder it was finished from gives (the overlay is the run's overrides).
    pub fn encode_chunks(&self) -> Result<Vec<Vec<u8>>> {
        let history: Vec<(u32, &SpotHistory)> = self
            .history
            .0
            .iter()
            .filter(|(_, h)| !h.is_empty())
            .map(|(p, h)| (*p, h))
            .collect();
        encode_base(&self.attrs, &history)
    }

    /// The region of the enterprise at entry position `pos`, if it has a profile.
    pub fn region_at(&self, pos: usize) -> Option<crate::domain::RegionCode> {
        self.attrs
            .get(pos)
            .and_then(|a| a.as_ref())
            .map(|a| a.region)
    }

    /// Records a re-scored enterprise (the writer, after its commit).
    pub fn upsert(&self, row: SpotRow) -> Result<()> {
        self.overlay
            .write()
            .map_err(|_| Error::Unavailable("spot overlay poisoned".into()))?
            .insert(row.uscc, Some(row));
        Ok(())
    }

    /// Drops an enterprise that left the run's scope (the writer, after its commit).
    pub fn remove(&self, u: Uscc) -> Result<()> {
        self.overlay
            .write()
            .map_err(|_| Error::Unavailable("spot overlay poisoned".into()))?
            .insert(u, None);
        Ok(())
    }
}

/// The selector's view of one run: its entries and index.
pub struct SpotView<'a> {
    pub entries: &'a super::scoring::Entries,
    pub index: &'a SpotIndex,
}

impl SpotView<'_> {
    /// One enterprise, if classified in the run.
    pub fn row(&self, u: &Uscc) -> Result<Option<SpotRow>> {
        self.read_row(u, |attrs, history| (*attrs, history.clone()))
            .map(|found| {
                found.map(|(uscc, class, score, (attrs, history))| SpotRow {
                    uscc,
                    class,
                    score,
                    attrs,
                    history,
                })
            })
    }

    /// The current region of an enterprise of the run that has no result of `task`
    /// (`None` if it has no row or may have one), read in place: what a draw's
    /// statistics need, without copying the row.
    pub fn region_without_task(&self, u: &Uscc, task: &str) -> Result<Option<RegionCode>> {
        Ok(self
            .read_row(u, |attrs, history| {
                (!history.may_have_task(task)).then_some(attrs.region)
            })?
            .and_then(|(_, _, _, region)| region))
    }

    /// Reads the row of `u` in place (the overlay first, then the run's entry):
    /// (uscc, class, score, what `read` takes of its attributes and history).
    fn read_row<T>(
        &self,
        u: &Uscc,
        read: impl FnOnce(&Attrs, &SpotHistory) -> T,
    ) -> Result<Option<(Uscc, RiskClass, i32, T)>> {
        let overlay = self
            .index
            .overlay
            .read()
            .map_err(|_| Error::Unavailable("spot overlay poisoned".into()))?;
        if let Some(r) = overlay.get(u) {
            return Ok(r
                .as_ref()
                .map(|r| (r.uscc, r.class, r.score, read(&r.attrs, &r.history))));
        }
        let Some(i) = self.entries.position(u) else {
            return Ok(None);
        };
        let e = self.entries[i];
        let Some(attrs) = self.index.attrs.get(i).copied().flatten() else {
            return Ok(None);
        };
        let none = SpotHistory::default();
        let history = self.index.history.get(i as u32).unwrap_or(&none);
        Ok(Some((e.uscc, e.class, e.score, read(&attrs, history))))
    }

    /// Every enterprise passing `f` at `as_of`, in USCC order, exempt ones only if asked.
    pub fn candidates(
        &self,
        f: &CandidateFilter,
        rules: &ExemptionRules,
        as_of: Date,
    ) -> Result<Vec<Candidate>> {
        let mut out = Vec::new();
        let from_overlay = self.each_candidate(
            f,
            rules,
            as_of,
            &mut out,
            |out, n| out.reserve_exact(n),
            |out, c| out.push(c),
        )?;
        if from_overlay {
            out.sort_unstable_by_key(|e| e.uscc);
        }
        Ok(out)
    }

    /// The USCCs of [`Self::candidates`] split by class, each list in USCC order: what a
    /// draw plan freezes, without a `Candidate` per enterprise (≈ 120 MB less at 3 M);
    /// and, per class, whom the exemptions removed. With check `items`, only the
    /// enterprises one of them applies to, each with its item mask (`ByClass::masks`).
    pub fn candidate_usccs_by_class(
        &self,
        f: &CandidateFilter,
        rules: &ExemptionRules,
        as_of: Date,
        items: &[CheckItem],
    ) -> Result<ByClass> {
        let mut out = ByClass::default();
        let all = CandidateFilter {
            include_exempt: true,
            ..f.clone()
        };
        let with_items = !items.is_empty();
        let from_overlay = self.each_candidate(
            &all,
            rules,
            as_of,
            &mut out,
            |_, _| {},
            |out, c| {
                let mask = if with_items { c.attrs.items(items) } else { 0 };
                if with_items && mask == 0 {
                    return;
                }
                let k = c.class.index();
                match c.exemption {
                    Some(e) if !f.include_exempt => out.exempted[k].push((c.uscc, e)),
                    _ => {
                        out.usccs[k].push(c.uscc);
                        if with_items {
                            out.masks[k].push(mask);
                        }
                    }
                }
            },
        )?;
        if from_overlay {
            for k in 0..4 {
                if with_items {
                    let mut pairs: Vec<(Uscc, u64)> = std::mem::take(&mut out.usccs[k])
                        .into_iter()
                        .zip(std::mem::take(&mut out.masks[k]))
                        .collect();
                    pairs.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                    (out.usccs[k], out.masks[k]) = pairs.into_iter().unzip();
                } else {
                    out.usccs[k].sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
                }
                out.exempted[k].sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            }
        }
        Ok(out)
    }

    /// Feeds every candidate to `emit`: first the run's entries in USCC order (after
    /// `reserve` with their number), then the re-scored ones from the overlay, unordered.
    /// Returns whether any came from the overlay (then the caller sorts).
    fn each_candidate<S>(
        &self,
        f: &CandidateFilter,
        rules: &ExemptionRules,
        as_of: Date,
        state: &mut S,
        reserve: impl FnOnce(&mut S, usize),
        mut emit: impl FnMut(&mut S, Candidate),
    ) -> Result<bool> {
        let overlay = self
            .index
            .overlay
            .read()
            .map_err(|_| Error::Unavailable("spot overlay poisoned".into()))?;
        let classes: Vec<RiskClass> = if f.classes.is_empty() {
            RiskClass::ALL.to_vec()
        } else {
            f.classes.clone()
        };
        let mut positions: Vec<u32> = Vec::new();
        for c in &classes {
            for &p in &self.index.by_class[c.index()] {
                let Some(a) = self.index.attrs[p as usize] else {
                    continue;
                };
                if f.admits(*c, &a) {
                    positions.push(p);
                }
            }
        }
        positions.sort_unstable();
        reserve(state, positions.len());
        let none = SpotHistory::default();
        let mut histories = HistoryCursor(&self.index.history.0);
        for p in positions {
            let e = self.entries[p as usize];
            if overlay.contains_key(&e.uscc) {
                continue;
            }
            let Some(a) = self.index.attrs[p as usize] else {
                continue;
            };
            let history = histories.at(p).unwrap_or(&none);
            let exemption = rules.exemption(a.status, e.class, history, as_of);
            if exemption.is_some() && !f.include_exempt {
                continue;
            }
            emit(
                state,
                Candidate {
                    uscc: e.uscc,
                    class: e.class,
                    score: e.score,
                    attrs: a,
                    exemption,
                },
            );
        }
        let mut from_overlay = false;
        for r in overlay.values().flatten() {
            if !f.admits(r.class, &r.attrs) {
                continue;
            }
            let exemption = rules.exemption(r.attrs.status, r.class, &r.history, as_of);
            if exemption.is_some() && !f.include_exempt {
                continue;
            }
            from_overlay = true;
            emit(
                state,
                Candidate {
                    uscc: r.uscc,
                    class: r.class,
                    score: r.score,
                    attrs: r.attrs,
                    exemption,
                },
            );
        }
        Ok(from_overlay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cursor finds each position's history, or none, for any increasing positions.
    #[test]
    fn the_history_cursor_finds_each_position() {
        let h = |n: usize| SpotHistory {
            tasks: vec![n as u64],
            ..SpotHistory::default()
        };
        let held: Vec<(u32, SpotHistory)> = [2u32, 3, 5, 40, 41, 1000, 1001, 5000]
            .into_iter()
            .map(|p| (p, h(p as usize)))
            .collect();
        for step in [1u32, 2, 3, 7, 39, 999, 6000] {
            let mut c = HistoryCursor(&held);
            for pos in (0..6000).step_by(step as usize) {
                let want = held.iter().find(|(p, _)| *p == pos).map(|(_, x)| x);
                assert_eq!(c.at(pos), want, "position {pos}, step {step}");
            }
        }
    }

    /// A stored base reads back as written, across chunk boundaries.
    #[test]
    fn the_spot_base_round_trips_in_chunks() {
        let mut d = crate::domain::fixtures::dossier("2020-01-02");
        let mut b = SpotBuilder::default();
        let empty = EnterpriseRecords::default();
        for i in 0..(BASE_CHUNK + 7) {
            if i % 5000 == 3 {
                d.listings.push(crate::domain::fixtures::listing(
                    crate::domain::ListKind::SeriousIllegal,
                    crate::domain::fixtures::day("2025-03-01").add_days(i as i32 / 5000),
                ));
                b.push(&d);
            } else if i % 3 == 0 {
                b.push(&empty);
            } else {
                b.push(&d);
            }
        }
        let chunks = b.encode_chunks().unwrap();
        assert_eq!(chunks.len(), 2);
        let back = SpotBuilder::decode_chunks(chunks.iter().map(Vec::as_slice)).unwrap();
        assert_eq!(back.attrs, b.attrs);
        assert_eq!(back.history, b.history);
        assert!(!b.history.0.is_empty());
        assert!(SpotBuilder::decode_chunks([&[9u8, 0][..]]).is_err());
    }

    /// A dossier without history, and the same one listed (a history).
    fn plain_and_listed() -> (EnterpriseRecords, EnterpriseRecords) {
        let plain = crate::domain::fixtures::dossier("2020-01-02");
        let mut listed = plain.clone();
        listed.listings.push(crate::domain::fixtures::listing(
            crate::domain::ListKind::SeriousIllegal,
            crate::domain::fixtures::day("2025-03-01"),
        ));
        (plain, listed)
    }

    /// Two scan halves (the second in descending order) merge into what one forward
    /// scan builds; `set` replaces, adds and removes a history.
    #[test]
    fn scan_halves_merge_into_one_forward_scan() {
        let (plain, listed) = plain_and_listed();
        let dossiers: Vec<&EnterpriseRecords> = (0..40)
            .map(|i| if i % 3 == 1 { &listed } else { &plain })
            .collect();
        let mut forward = SpotBuilder::default();
        dossiers.iter().for_each(|d| forward.push(d));
        let (mut first, mut second) = (SpotBuilder::default(), SpotBuilder::default());
        dossiers[..17].iter().for_each(|d| first.push(d));
        dossiers[17..].iter().rev().for_each(|d| second.push(d));
        first.append_reversed(second);
        assert_eq!(first.attrs, forward.attrs);
        assert_eq!(first.history, forward.history);
        assert_eq!(forward.history.0.len(), 13);
        let has = |b: &SpotBuilder, p: usize| !b.at(p).unwrap().1.is_empty();
        assert!(has(&forward, 1) && !has(&forward, 2));

        forward.set(2, &listed);
        forward.set(1, &plain);
        forward.set(5, &listed);
        forward.set(5, &plain);
        assert!(has(&forward, 2) && !has(&forward, 1) && !has(&forward, 5));
        let merged: Vec<u32> = forward.merged_history().iter().map(|(p, _)| *p).collect();
        assert_eq!(merged.len(), 13);
        assert!(merged.windows(2).all(|w| w[0] < w[1]) && merged.contains(&2));
        // The index finished from it reads the same, by look-up and by a pool walk.
        let built = forward.encode_chunks().unwrap();
        let back = SpotBuilder::decode_chunks(built.iter().map(Vec::as_slice)).unwrap();
        let index = forward.finish(std::iter::repeat_n(RiskClass::A, 40));
        // Stored from the index (after the run is current) as from the builder.
        assert_eq!(index.encode_chunks().unwrap(), built);
        for p in 0..40u32 {
            let want = back.history.get(p).filter(|h| !h.is_empty());
            assert_eq!(index.history.get(p).filter(|h| !h.is_empty()), want, "{p}");
        }
        let mut cursor = HistoryCursor(&index.history.0);
        assert!(cursor.at(2).is_some() && cursor.at(3).is_none() && cursor.at(4).is_some());
    }

    /// A stored base whose histories are out of order is damage, refused.
    #[test]
    fn a_spot_base_out_of_order_is_refused() {
        let (_, listed) = plain_and_listed();
        let mut b = SpotBuilder::default();
        (0..4).for_each(|_| b.push(&listed));
        b.history.0.swap(1, 2);
        let chunks = b.encode_chunks().unwrap();
        // (encode_chunks writes what it holds; only a damaged store holds this.)
        let err = SpotBuilder::decode_chunks(chunks.iter().map(Vec::as_slice));
        assert!(matches!(err, Err(Error::Corrupt(_))), "{:?}", err.err());
    }

    #[test]
    fn region_prefixes() {
        let r = |s: &str| RegionCode::parse("r", s).unwrap();
        assert!(region_matches(&r("310115"), &r("310115")));
        assert!(!region_matches(&r("310115"), &r("310104")));
        assert!(region_matches(&r("310000"), &r("310104")));
        assert!(region_matches(&r("310100"), &r("310104")));
        assert!(!region_matches(&r("320000"), &r("310104")));
    }
}
