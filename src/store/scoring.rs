//! Scoring runs in the store: their results, the current-run pointer, incremental
//! re-scores (overrides), registered models and the relation sources of each run.
//!
//! | key | value |
//! |---|---|
//! | `R run(8) 0x00` | [`ScoringRun`] metadata |
//! | `R run 0x01 first_uscc(18)` | a block of up to [`BLOCK_ENTRIES`] packed [`RunEntry`]s, USCC order |
//! | `R run 0x02` | relation sources: sorted (legal-rep key u64, count u32) pairs |
//! | `O run uscc` | [`Override`]: the enterprise re-scored after a write, with its cause |
//! | `M version` | a registered model's TOML |
//! | `S current_run`, `S next_run` | u64 |
//! | `S active_model` | version string |
//!
//! A run's results are ≈ 3,400 block values, not 3.5 M keys: writing them costs less
//! than scoring, and the current run is held in memory (24 bytes per enterprise, and
//! 4.5–9 bytes more of its hash index, [`Entries`]) so a lookup is a probe or two.
//! Readers see the old run or the new one because the current pointer (and the
//! in-memory view) switch in one step after every block is written and flushed.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, RwLock},
};

use serde::{Deserialize, Serialize};

use super::{
    codec, keys,
    spot::{history_of, Attrs, SpotBuilder, SpotIndex, SpotRow, SpotView},
};
use crate::{
    domain::{scoring, Centi, Date, EnterpriseRecords, Model, RiskClass, Uscc},
    error::{Error, Result},
};

/// Run keyspace.
pub const RUNS: u8 = b'R';
/// Override keyspace.
pub const OVERRIDES: u8 = b'O';
/// Model keyspace.
pub const MODELS: u8 = b'M';
/// Entries per result block.
pub const BLOCK_ENTRIES: usize = 1024;
/// Bytes of a packed entry.
pub const ENTRY_LEN: usize = 24;

/// Flag: the enterprise got the relation points.
pub const FLAG_RELATED: u8 = 1;
/// Flag: the enterprise makes others related.
pub const FLAG_SOURCE: u8 = 2;
/// Flag: a hard rule raised its class.
pub const FLAG_HARD_RULE: u8 = 4;
/// Bits 3–5: the general class a specialised model read (0 none, 1–4 A–D).
const GENERAL_SHIFT: u8 = 3;
/// Flag (overrides only): the enterprise left the scope of the run's model after the
/// run; the run no longer rates it.
pub const FLAG_UNRATED: u8 = 64;
/// Flag (entries): the run found nothing in the records that counts — no factor, no
/// hard rule — so its explanation is empty. While the dossier has not changed since (no
/// override) and the rule book is the run's ([`RunView::empty_explanations`]), an
/// explained classification answers from the entry without reading the dossier.
/// Entries of runs from before this flag do not have it (and read the dossier).
pub const FLAG_NO_FACTORS: u8 = 128;

/// The general class a specialised model read, from an entry's or override's flags.
pub fn general_input(flags: u8) -> Option<RiskClass> {
    match (flags >> GENERAL_SHIFT) & 7 {
        0 => None,
        n => RiskClass::from_index(n - 1),
    }
}

/// A run's entries in USCC order, with a hash index over them (位置索引, [`EntryIndex`]).
/// A look-up reads one or two adjacent slots and the entry they name — 0.11–0.14 µs where
/// a binary search of the 84 MB vector took 1.3–1.6 µs, its last dozen probes each a miss
/// to memory (`examples/run_lookup.rs`; BENCHMARKS.md, "Run look-ups by hash"). Immutable
/// once built, like the run.
#[derive(Clone, Debug, Default)]
pub struct Entries {
    all: Vec<RunEntry>,
    index: EntryIndex,
}

impl Entries {
    /// The entries (USCC order, as a run stores them) with their index.
    pub fn new(all: Vec<RunEntry>) -> Entries {
        let index = EntryIndex::of(&all);
        Entries::with_index(all, index)
    }

    /// The entries with the index [`EntryIndex::of`] built of them (say on another
    /// thread while they were written). Panics if it was built of other entries.
    pub fn with_index(all: Vec<RunEntry>, index: EntryIndex) -> Entries {
        assert_eq!(index.len, all.len(), "an index of other entries");
        Entries { all, index }
    }

    /// The position of `u`'s entry.
    pub fn position(&self, u: &Uscc) -> Option<usize> {
        self.index.position(&self.all, u)
    }

    /// `u`'s entry.
    pub fn find(&self, u: &Uscc) -> Option<RunEntry> {
        self.position(u).map(|i| self.all[i])
    }

    /// The entries, given back.
    pub fn into_vec(self) -> Vec<RunEntry> {
        self.all
    }
}

/// The hash index of a run's entries: a table of `u32` slots, each the position of an
/// entry and a few bits of its USCC's hash (open addressing, linear probing; at most 8/9
/// full, 16 MB for 3.5 M enterprises). Built apart from [`Entries`] so that a pass can
/// build it while it writes them.
#[derive(Clone, Debug, Default)]
pub struct EntryIndex {
    /// Entries indexed.
    len: usize,
    /// Empty (look-ups binary-search) when there are no entries, or too many for a
    /// position and an 8-bit tag to share a slot (over 16.7 M).
    slots: Vec<u32>,
    /// Low bits of a slot: the tag (hash bits); the rest: position + 1 (0: empty).
    tag_bits: u32,
}

impl EntryIndex {
    /// The index of `all` (USCC order).
    pub fn of(all: &[RunEntry]) -> EntryIndex {
        debug_assert!(all.windows(2).all(|w| w[0].uscc < w[1].uscc));
        let n = all.len();
        let pos_bits = u64::BITS - (n as u64 + 1).leading_zeros();
        if n == 0 || pos_bits > 24 {
            return EntryIndex {
                len: n,
                ..EntryIndex::default()
            };
        }
        let tag_bits = u32::BITS - pos_bits;
        let mut index = EntryIndex {
            len: n,
            slots: vec![0; (n + n / 8 + 1).next_power_of_two()],
            tag_bits,
        };
        for (i, e) in all.iter().enumerate() {
            let (mut at, tag) = index.home(&e.uscc);
            while index.slots[at] != 0 {
                at = index.next(at);
            }
            index.slots[at] = ((i as u32 + 1) << tag_bits) | tag;
        }
        index
    }

    /// The first slot to probe for `u` (the table's length is a power of two, at least
    /// 2), and its tag: the slot from the hash's high bits, the tag from its low ones.
    fn home(&self, u: &Uscc) -> (usize, u32) {
        use std::hash::Hasher;
        let mut h = rustc_hash::FxHasher::default();
        h.write(u.as_bytes());
        let h = h.finish();
        let len = self.slots.len();
        let at = (h >> (u64::BITS - len.trailing_zeros())) as usize & (len - 1);
        (at, h as u32 & self.tag_mask())
    }

    fn next(&self, at: usize) -> usize {
        (at + 1) & (self.slots.len() - 1)
    }

    fn tag_mask(&self) -> u32 {
        (1 << self.tag_bits) - 1
    }

    /// The position of `u`'s entry in `all`, the entries it was built of.
    fn position(&self, all: &[RunEntry], u: &Uscc) -> Option<usize> {
        if self.slots.is_empty() {
            return all.binary_search_by(|e| e.uscc.cmp(u)).ok();
        }
        let (mut at, tag) = self.home(u);
        loop {
            let slot = self.slots[at];
            if slot == 0 {
                return None;
            }
            if slot & self.tag_mask() == tag {
                let i = (slot >> self.tag_bits) as usize - 1;
                if all[i].uscc == *u {
                    return Some(i);
                }
            }
            at = self.next(at);
        }
    }
}

impl std::ops::Deref for Entries {
    type Target = [RunEntry];
    fn deref(&self) -> &[RunEntry] {
        &self.all
    }
}

/// One enterprise's result in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunEntry {
    pub uscc: Uscc,
    pub class: RiskClass,
    pub flags: u8,
    /// Hundredths of a point (i32: ±21 million points is ample; keeps an entry at 24
    /// bytes in memory, 84 MB for 3.5 M enterprises).
    pub score: i32,
}

impl RunEntry {
    /// From an assessment.
    pub fn new(uscc: Uscc, a: &scoring::Assessment, related: bool) -> RunEntry {
        let mut flags = 0;
        if related {
            flags |= FLAG_RELATED;
        }
        if a.relation_source {
            flags |= FLAG_SOURCE;
        }
        if a.hard_rule.is_some() {
            flags |= FLAG_HARD_RULE;
        }
        if let Some(g) = a.general_input {
            flags |= (g.index() as u8 + 1) << GENERAL_SHIFT;
        }
        if a.factors == 0 && a.hard_rule.is_none() {
            flags |= FLAG_NO_FACTORS;
        }
        RunEntry {
            uscc,
            class: a.class,
            flags,
            score: a.score.clamp(i32::MIN.into(), i32::MAX.into()) as i32,
        }
    }

    /// Whether it got the relation points.
    pub fn related(&self) -> bool {
        self.flags & FLAG_RELATED != 0
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.uscc.as_bytes());
        out.push(self.class.index() as u8);
        out.push(self.flags);
        out.extend_from_slice(&self.score.to_be_bytes());
    }

    fn decode(b: &[u8]) -> Result<RunEntry> {
        let bad = || Error::Corrupt("bad run entry".into());
        if b.len() != ENTRY_LEN {
            return Err(bad());
        }
        Ok(RunEntry {
            uscc: Uscc::from_bytes(&b[..18]).map_err(|_| bad())?,
            class: RiskClass::from_index(b[18]).ok_or_else(bad)?,
            flags: b[19],
            score: i32::from_be_bytes([b[20], b[21], b[22], b[23]]),
        })
    }
}

/// Lifecycle of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunState {
    /// Being computed.
    Running,
    /// Every enterprise scored; may be (or have been) current.
    Complete,
    /// Stopped before completion (crash, error); never current.
    Aborted,
    /// Complete once; its results were deleted by the retention policy (its record stays).
    Retired,
}

/// Counts per class.
pub type ClassCounts = [u64; 4];

/// How a run's classes compare with another run's: `matrix[from][to]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transitions {
    /// The run compared against (the current run when this one was computed).
    pub baseline_run: u64,
    /// Enterprises per (baseline class, this run's class).
    pub matrix: [[u64; 4]; 4],
    /// Enterprises only in this run.
    pub new_enterprises: u64,
    /// A few examples per changed cell.
    pub examples: Vec<TransitionExample>,
}

/// One enterprise whose class changed, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransitionExample {
    pub uscc: Uscc,
    pub from: RiskClass,
    pub to: RiskClass,
    pub from_score: Centi,
    pub to_score: Centi,
    /// Indicators whose points differ: (code, before, after).
    pub moved: Vec<(String, Centi, Centi)>,
}

/// A scoring run (评分批次).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoringRun {
    pub id: u64,
    pub model_version: String,
    pub as_of: Date,
    pub state: RunState,
    /// Scored as a dry run: not made current when complete.
    pub dry_run: bool,
    pub requested_by: String,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    pub enterprises: u64,
    pub classes: ClassCounts,
    /// Per region code.
    pub regions: Vec<(String, ClassCounts)>,
    /// Enterprises that got the relation points.
    pub related: u64,
    pub transitions: Option<Transitions>,
    pub activated_at_ms: Option<i64>,
    pub activated_by: String,
    pub activation_reason: String,
    /// Why it was aborted.
    pub error: String,
}

impl ScoringRun {
    /// A run just begun: running, nothing scored, counted or activated yet.
    pub fn begun(
        id: u64,
        model_version: String,
        as_of: Date,
        dry_run: bool,
        requested_by: String,
        started_at_ms: i64,
    ) -> ScoringRun {
        ScoringRun {
            id,
            model_version,
            as_of,
            state: RunState::Running,
            dry_run,
            requested_by,
            started_at_ms,
            finished_at_ms: None,
            enterprises: 0,
            classes: [0; 4],
            regions: Vec::new(),
            related: 0,
            transitions: None,
            activated_at_ms: None,
            activated_by: String::new(),
            activation_reason: String::new(),
            error: String::new(),
        }
    }
}

/// An enterprise re-scored after a write (增量重评), on top of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    pub class: RiskClass,
    pub score: Centi,
    pub flags: u8,
    pub as_of: Date,
    /// What changed: the RPC and the record.
    pub cause: String,
    pub at_ms: i64,
}

impl Override {
    /// The tombstone of an enterprise that left the scope of the run's model
    /// ([`FLAG_UNRATED`]).
    pub fn unrated(as_of: Date, cause: &str, at_ms: i64) -> Override {
        Override {
            class: RiskClass::A,
            score: 0,
            flags: FLAG_UNRATED,
            as_of,
            cause: cause.to_string(),
            at_ms,
        }
    }
}

/// A complete run, loaded for lookups.
#[derive(Clone, Debug)]
pub struct RunView {
    pub run: ScoringRun,
    pub model: Arc<Model>,
    /// USCC order, with their hash index; shared, not copied, when a dry run becomes
    /// current.
    pub entries: Arc<Entries>,
    /// Legal-rep key → number of source enterprises with it (shared as the entries are).
    pub sources: Arc<HashMap<u64, u32>>,
    /// The spot-check index over the entries.
    pub spot: Arc<SpotIndex>,
    /// Enterprises that may have a re-score override on this run.
    pub rescored: Arc<Rescored>,
    /// Whether the entries' [`FLAG_NO_FACTORS`] may answer for an explanation: the run
    /// was scored under the rule book in force now (computed in this process, or its
    /// stored spot base — written with the results, by the process that scored them —
    /// carries this rule book's fingerprint).
    pub empty_explanations: bool,
}

/// The enterprises that may have a re-score override (`O run uscc`) on a live run: a
/// superset, marked before the override is committed, so a classification whose
/// enterprise is not in it skips the override read (one sled point read of two).
#[derive(Debug, Default)]
pub struct Rescored(RwLock<HashSet<Uscc>>);

impl Rescored {
    /// Notes that `u` may have an override (call before committing it).
    pub fn mark(&self, u: Uscc) {
        if let Ok(mut s) = self.0.write() {
            s.insert(u);
        }
    }

    /// Whether `u` may have an override (true when unsure: a poisoned lock).
    pub fn may_have(&self, u: &Uscc) -> bool {
        self.0.read().map(|s| s.contains(u)).unwrap_or(true)
    }
}

impl RunView {
    /// The selector's view.
    pub fn spot_view(&self) -> SpotView<'_> {
        SpotView {
            entries: &self.entries,
            index: &self.spot,
        }
    }

    /// The entry of `u`.
    pub fn lookup(&self, u: &Uscc) -> Option<RunEntry> {
        self.entries.find(u)
    }

    /// Whether an enterprise with legal-rep key `rep` is related, given whether it is
    /// itself a source.
    pub fn related(&self, rep: Option<u64>, is_source: bool) -> bool {
        related(&self.sources, rep, is_source)
    }
}

/// Whether `rep` is shared with a source other than the enterprise itself.
pub fn related(sources: &HashMap<u64, u32>, rep: Option<u64>, is_source: bool) -> bool {
    match rep.and_then(|r| sources.get(&r)) {
        Some(&n) => n > u32::from(is_source),
        None => false,
    }
}

/// The key the relation indicator groups enterprises by: the first 8 bytes of the
/// hashed legal-representative id.
pub fn rep_key(d: &EnterpriseRecords) -> Option<u64> {
    d.enterprise
        .as_ref()
        .and_then(|e| e.legal_rep_hash)
        .map(|h| u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]))
}

/// A run being computed: writes re-score onto it too.
#[derive(Clone, Debug)]
pub struct Building {
    pub id: u64,
    pub model: Arc<Model>,
    pub as_of: Date,
}

/// One model family's live runs (the general model's, or a specialised one's such as
/// the food model's): each family has its own runs, dry runs and activation.
#[derive(Debug, Default)]
pub struct Family {
    /// The current run.
    pub current: Option<Arc<RunView>>,
    /// A complete dry run that may be activated.
    pub candidate: Option<Arc<RunView>>,
    /// The model new runs of the family use unless told otherwise.
    pub active_model: Option<Arc<Model>>,
}

/// What the writer and readers share about scoring.
#[derive(Debug, Default)]
pub struct ScoringState {
    /// Live runs and the active model, per model family (general first).
    pub families: std::collections::BTreeMap<String, Family>,
    /// The runs being computed: one, or one per family computed in one pass (the first
    /// begun first).
    pub building: Vec<Building>,
    /// Registered models by version.
    pub models: HashMap<String, Arc<Model>>,
}

static NO_FAMILY: Family = Family {
    current: None,
    candidate: None,
    active_model: None,
};

impl ScoringState {
    /// A family's state (empty if it has none yet).
    pub fn family(&self, name: &str) -> &Family {
        self.families.get(name).unwrap_or(&NO_FAMILY)
    }

    /// A family's state, created empty if need be.
    pub fn family_mut(&mut self, name: &str) -> &mut Family {
        self.families.entry(name.to_string()).or_default()
    }

    /// The general family.
    pub fn general(&self) -> &Family {
        self.family(crate::domain::model::GENERAL)
    }

    /// Every live view (current and candidate runs of every family), general first.
    pub fn live(&self) -> impl Iterator<Item = &Arc<RunView>> {
        let general = self.general();
        let others = self
            .families
            .iter()
            .filter(|(n, _)| n.as_str() != crate::domain::model::GENERAL)
            .map(|(_, f)| f);
        std::iter::once(general)
            .chain(others)
            .flat_map(|f| f.current.iter().chain(f.candidate.iter()))
    }
}

/// The meta key of a family's pointer `name` ("current_run", "active_model"): the bare
/// name for the general family (as before families existed), `name/family` otherwise.
pub fn family_counter(name: &str, family: &str) -> String {
    if family == crate::domain::model::GENERAL {
        name.to_string()
    } else {
        format!("{name}/{family}")
    }
}

/// Shared handle.
pub type SharedScoring = Arc<RwLock<ScoringState>>;

/// Reads the state under its lock.
pub fn read(s: &SharedScoring) -> Result<std::sync::RwLockReadGuard<'_, ScoringState>> {
    s.read()
        .map_err(|_| Error::Unavailable("scoring state poisoned".into()))
}

/// Writes the state under its lock.
pub fn write(s: &SharedScoring) -> Result<std::sync::RwLockWriteGuard<'_, ScoringState>> {
    s.write()
        .map_err(|_| Error::Unavailable("scoring state poisoned".into()))
}

// ---- keys ----------------------------------------------------------------------------

/// `R run 0x00`.
pub fn run_key(id: u64) -> Vec<u8> {
    let mut k = vec![RUNS];
    k.extend_from_slice(&id.to_be_bytes());
    k.push(0);
    k
}

/// `R run 0x01`: prefix of the blocks.
pub fn blocks_prefix(id: u64) -> Vec<u8> {
    let mut k = vec![RUNS];
    k.extend_from_slice(&id.to_be_bytes());
    k.push(1);
    k
}

/// `R run 0x02`.
pub fn sources_key(id: u64) -> Vec<u8> {
    let mut k = vec![RUNS];
    k.extend_from_slice(&id.to_be_bytes());
    k.push(2);
    k
}

/// `R run 0x03`: prefix of the run's stored spot base (`R run 0x03 chunk(4)`, then the
/// header at chunk number `u32::MAX`, written last: a base without it is ignored).
pub fn spot_prefix(id: u64) -> Vec<u8> {
    let mut k = vec![RUNS];
    k.extend_from_slice(&id.to_be_bytes());
    k.push(3);
    k
}

fn spot_chunk_key(id: u64, chunk: u32) -> Vec<u8> {
    let mut k = spot_prefix(id);
    k.extend_from_slice(&chunk.to_be_bytes());
    k
}

/// What a stored spot base was built with: the number of positions, its chunks, and the
/// fingerprint of the rules that derived what it holds (listing terms).
#[derive(Serialize, Deserialize, PartialEq, Eq, Debug)]
struct SpotBaseHeader {
    positions: u64,
    chunks: u32,
    rules: String,
}

/// The fingerprint of a rule book as a spot base depends on it: SHA-256 of its rules
/// page (every version, parameter and value).
pub fn rules_fingerprint(rules: &crate::domain::ruleset::RuleBook) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(rules.markdown().as_bytes()))
}

/// The keys and values of a run's spot base: its encoded chunks
/// ([`SpotBuilder::encode_chunks`], [`SpotIndex::encode_chunks`]) of `positions`
/// entries in all (what the dossiers said when scanned; later changes are the run's
/// overrides), header last.
pub fn encode_spot_base(
    id: u64,
    positions: usize,
    chunks: Vec<Vec<u8>>,
    rules_fingerprint: &str,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let header = SpotBaseHeader {
        positions: positions as u64,
        chunks: chunks.len() as u32,
        rules: rules_fingerprint.to_string(),
    };
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = chunks
        .into_iter()
        .enumerate()
        .map(|(i, v)| (spot_chunk_key(id, i as u32), v))
        .collect();
    out.push((spot_chunk_key(id, u32::MAX), codec::encode(&header)?));
    Ok(out)
}

/// A run's stored spot base, if it is complete, holds `positions` entries and was
/// derived under the same rules; `None` otherwise (the caller scans the dossiers).
pub fn load_spot_base(
    tree: &sled::Tree,
    id: u64,
    positions: usize,
    rules_fingerprint: &str,
) -> Result<Option<SpotBuilder>> {
    Ok(load_spot_base_unsized(tree, id, rules_fingerprint)?.filter(|b| b.len() == positions))
}

/// The fingerprint of the rules run `id` was scored under, as its stored spot base
/// records it (written with its results by the process that scored it); `None` when no
/// complete base is stored.
fn spot_base_rules(tree: &sled::Tree, id: u64) -> Result<Option<String>> {
    Ok(match tree.get(spot_chunk_key(id, u32::MAX))? {
        Some(h) => Some(codec::decode::<SpotBaseHeader>(&h)?.rules),
        None => None,
    })
}

/// [`load_spot_base`] before its size is checked against the run's entries (loaded
/// beside it, on another thread).
fn load_spot_base_unsized(
    tree: &sled::Tree,
    id: u64,
    rules_fingerprint: &str,
) -> Result<Option<SpotBuilder>> {
    let Some(h) = tree.get(spot_chunk_key(id, u32::MAX))? else {
        return Ok(None);
    };
    let h: SpotBaseHeader = codec::decode(&h)?;
    if h.rules != rules_fingerprint {
        return Ok(None);
    }
    let mut values = Vec::with_capacity(h.chunks as usize);
    for i in 0..h.chunks {
        match tree.get(spot_chunk_key(id, i))? {
            Some(v) => values.push(v),
            None => return Ok(None),
        }
    }
    let b = SpotBuilder::decode_chunks(values.iter().map(|v| v.as_ref()))?;
    Ok((b.len() as u64 == h.positions).then_some(b))
}

/// `O run`: the overrides of a run.
pub fn overrides_prefix(id: u64) -> Vec<u8> {
    let mut k = vec![OVERRIDES];
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// `O run uscc`.
pub fn override_key(id: u64, u: &Uscc) -> Vec<u8> {
    let mut k = overrides_prefix(id);
    k.extend_from_slice(u.as_bytes());
    k
}

/// `M version`.
pub fn model_key(version: &str) -> Vec<u8> {
    let mut k = vec![MODELS];
    k.extend_from_slice(version.as_bytes());
    k
}

fn u64_value(v: &[u8]) -> Result<u64> {
    <[u8; 8]>::try_from(v)
        .map(u64::from_be_bytes)
        .map_err(|_| Error::Corrupt("bad u64 value".into()))
}

/// Reads a u64 counter.
pub fn get_counter(tree: &sled::Tree, name: &str) -> Result<Option<u64>> {
    tree.get(keys::counter(name))?
        .map(|v| u64_value(&v))
        .transpose()
}

// ---- blocks ----------------------------------------------------------------------------

/// Packs entries (USCC order) into (key, value) blocks.
pub fn encode_blocks(id: u64, entries: &[RunEntry]) -> Vec<(Vec<u8>, Vec<u8>)> {
    entries
        .chunks(BLOCK_ENTRIES)
        .map(|chunk| {
            let mut k = blocks_prefix(id);
            k.extend_from_slice(chunk[0].uscc.as_bytes());
            let mut v = Vec::with_capacity(1 + chunk.len() * ENTRY_LEN);
            v.push(codec::VALUE_VERSION);
            for e in chunk {
                e.encode(&mut v);
            }
            (k, v)
        })
        .collect()
}

fn decode_block(v: &[u8], out: &mut Vec<RunEntry>) -> Result<()> {
    match v.split_first() {
        Some((&codec::VALUE_VERSION, rest)) if rest.len() % ENTRY_LEN == 0 => {
            for c in rest.chunks_exact(ENTRY_LEN) {
                out.push(RunEntry::decode(c)?);
            }
            Ok(())
        }
        _ => Err(Error::Corrupt("bad result block".into())),
    }
}

/// Every entry of a run.
pub fn load_entries(tree: &sled::Tree, id: u64) -> Result<Vec<RunEntry>> {
    // Sized once from the run's record (millions of entries for a city).
    let expected = load_run(tree, id)?.map_or(0, |r| r.enterprises);
    let mut out = Vec::with_capacity(usize::try_from(expected).unwrap_or(0).min(1 << 26));
    for kv in tree.scan_prefix(blocks_prefix(id)) {
        let (_, v) = kv?;
        decode_block(&v, &mut out)?;
    }
    Ok(out)
}

/// The entry of `u` in run `id`, read from its block.
pub fn lookup_entry(tree: &sled::Tree, id: u64, u: &Uscc) -> Result<Option<RunEntry>> {
    let prefix = blocks_prefix(id);
    let mut k = prefix.clone();
    k.extend_from_slice(u.as_bytes());
    let Some(kv) = tree.range(prefix.clone()..=k).next_back() else {
        return Ok(None);
    };
    let (bk, v) = kv?;
    if !bk.starts_with(&prefix) {
        return Ok(None);
    }
    let mut entries = Vec::new();
    decode_block(&v, &mut entries)?;
    Ok(entries
        .binary_search_by(|e| e.uscc.cmp(u))
        .ok()
        .map(|i| entries[i]))
}

/// Encodes relation sources.
pub fn encode_sources(sources: &HashMap<u64, u32>) -> Vec<u8> {
    let mut pairs: Vec<_> = sources.iter().map(|(k, v)| (*k, *v)).collect();
    pairs.sort_unstable();
    let mut out = Vec::with_capacity(1 + pairs.len() * 12);
    out.push(codec::VALUE_VERSION);
    for (k, n) in pairs {
        out.extend_from_slice(&k.to_be_bytes());
        out.extend_from_slice(&n.to_be_bytes());
    }
    out
}

/// Reads a run's relation sources.
pub fn load_sources(tree: &sled::Tree, id: u64) -> Result<HashMap<u64, u32>> {
    let Some(v) = tree.get(sources_key(id))? else {
        return Ok(HashMap::new());
    };
    match v.split_first() {
        Some((&codec::VALUE_VERSION, rest)) if rest.len() % 12 == 0 => Ok(rest
            .chunks_exact(12)
            .map(|c| {
                let mut k = [0u8; 8];
                k.copy_from_slice(&c[..8]);
                let mut n = [0u8; 4];
                n.copy_from_slice(&c[8..]);
                (u64::from_be_bytes(k), u32::from_be_bytes(n))
            })
            .collect()),
        _ => Err(Error::Corrupt("bad relation sources".into())),
    }
}

/// Reads a run's metadata.
pub fn load_run(tree: &sled::Tree, id: u64) -> Result<Option<ScoringRun>> {
    tree.get(run_key(id))?
        .map(|v| codec::decode(&v))
        .transpose()
}

/// Every run, newest first.
pub fn list_runs(tree: &sled::Tree) -> Result<Vec<ScoringRun>> {
    // The `R` keyspace also holds every kept run's result blocks and spot chunks (about
    // 100 MB per run at 3.5 M enterprises): rather than read them all, step from one run
    // to the one before it — the last key below `R id` is the previous run's last key,
    // and names its id — and read only each run's record (one seek per run).
    let mut out = Vec::new();
    let mut below = vec![RUNS + 1];
    while let Some(kv) = tree.range([RUNS].as_slice()..below.as_slice()).next_back() {
        let (k, _) = kv?;
        let Some(id) = k.get(1..9).and_then(|b| <[u8; 8]>::try_from(b).ok()) else {
            // Not a run's key (none is written): pass it.
            below = k.to_vec();
            continue;
        };
        let id = u64::from_be_bytes(id);
        if let Some(v) = tree.get(run_key(id))? {
            out.push(codec::decode(&v)?);
        }
        below = k[..9].to_vec();
    }
    Ok(out)
}

/// Reads a registered model.
pub fn load_model(tree: &sled::Tree, version: &str) -> Result<Option<Model>> {
    match tree.get(model_key(version))? {
        Some(v) => {
            let text = std::str::from_utf8(v.get(1..).unwrap_or_default())
                .map_err(|_| Error::Corrupt(format!("model {version} is not UTF-8")))?;
            Model::parse(text)
                .map(Some)
                .map_err(|e| Error::Corrupt(format!("stored model {version}: {e}")))
        }
        None => Ok(None),
    }
}

/// Value of a model key.
pub fn model_value(m: &Model) -> Vec<u8> {
    let mut v = vec![codec::VALUE_VERSION];
    v.extend_from_slice(m.source.as_bytes());
    v
}

/// A run's parts read back at open, before its view is assembled.
struct Loading {
    run: ScoringRun,
    model: Arc<Model>,
    entries: Entries,
    sources: HashMap<u64, u32>,
    /// The spot base, if it was stored with the run under these rules.
    base: Option<SpotBuilder>,
    /// The run was scored under these rules ([`RunView::empty_explanations`]).
    same_rules: bool,
}

/// Runs `f` on each item, each on a thread of its own, and gives the results in order.
/// Opening a store is dominated by decoding the live runs (millions of entries and
/// spot-base positions each): decoding them side by side uses every core.
fn on_threads<T: Send, R: Send>(
    items: Vec<T>,
    f: impl Fn(T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    std::thread::scope(|s| {
        let f = &f;
        let handles: Vec<_> = items
            .into_iter()
            .map(|item| s.spawn(move || f(item)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|p| {
                    Err(Error::Unavailable(format!(
                        "loading a scoring run panicked: {}",
                        crate::error::panic_message(&*p)
                    )))
                })
            })
            .collect()
    })
}

/// One half of a run's load: its entries (indexed) and relation sources, or its stored
/// spot base.
enum Half {
    /// The entries, relation sources, and whether the run was scored under these rules.
    Entries(Entries, HashMap<u64, u32>, bool),
    Base(Option<SpotBuilder>),
}

/// Loads complete runs as views: each run's entries with its relation sources, and its
/// stored spot base, each on a thread of its own; the spot bases not stored (stores
/// written before bases were stored, or under other rules) built by one scan of the
/// dossiers shared by all of them; then each run's overrides.
pub fn load_views(
    tree: &sled::Tree,
    rules: &crate::domain::ruleset::RuleBook,
    runs: Vec<(ScoringRun, Arc<Model>)>,
) -> Result<Vec<RunView>> {
    let fingerprint = rules_fingerprint(rules);
    let halves: Vec<(u64, bool)> = runs
        .iter()
        .flat_map(|(r, _)| [(r.id, false), (r.id, true)])
        .collect();
    let mut halves = on_threads(halves, |(id, base)| {
        Ok(if base {
            Half::Base(load_spot_base_unsized(tree, id, &fingerprint)?)
        } else {
            let entries = Entries::new(load_entries(tree, id)?);
            let same_rules = spot_base_rules(tree, id)?.is_some_and(|r| r == fingerprint);
            Half::Entries(entries, load_sources(tree, id)?, same_rules)
        })
    })?
    .into_iter();
    let mut loaded = Vec::with_capacity(runs.len());
    for (run, model) in runs {
        let (Some(Half::Entries(entries, sources, same_rules)), Some(Half::Base(base))) =
            (halves.next(), halves.next())
        else {
            return Err(Error::Corrupt("run halves out of order".into()));
        };
        let base = base.filter(|b| b.len() == entries.len());
        loaded.push(Loading {
            run,
            model,
            entries,
            sources,
            base,
            same_rules,
        });
    }
    let empty = EnterpriseRecords::default();
    let mut scanned: Vec<(usize, SpotBuilder, usize)> = loaded
        .iter()
        .enumerate()
        .filter(|(_, l)| l.base.is_none())
        .map(|(i, _)| (i, SpotBuilder::default(), 0usize))
        .collect();
    if !scanned.is_empty() {
        for kv in tree.scan_prefix([keys::RECORDS]) {
            let (k, v) = kv?;
            let Some(u) = keys::decode_enterprise(&k) else {
                continue;
            };
            let mut decoded: Option<EnterpriseRecords> = None;
            for (run, b, i) in scanned.iter_mut() {
                let entries = &loaded[*run].entries;
                while *i < entries.len() && entries[*i].uscc.as_bytes() < u.as_bytes() {
                    b.push(&empty); // classified but gone: no attributes
                    *i += 1;
                }
                if *i < entries.len() && entries[*i].uscc == u {
                    if decoded.is_none() {
                        let mut d = codec::decode_dossier(&v)?;
                        rules.restore(u, &mut d);
                        decoded = Some(d);
                    }
                    b.push(decoded.as_ref().unwrap_or(&empty));
                    *i += 1;
                }
            }
        }
        for (run, b, _) in scanned {
            loaded[run].base = Some(b);
        }
    }
    on_threads(loaded, |l| {
        let Loading {
            run,
            model,
            entries,
            sources,
            base,
            same_rules,
        } = l;
        let mut b = base.unwrap_or_default();
        tracing::debug!(run = run.id, positions = b.len(), "spot index loaded");
        while b.len() < entries.len() {
            b.push(&empty);
        }
        let spot = Arc::new(b.finish(entries.iter().map(|e| e.class)));
        let rescored = Arc::new(Rescored::default());
        for kv in tree.scan_prefix(overrides_prefix(run.id)) {
            let (k, v) = kv?;
            let u = Uscc::from_bytes(&k[9..])?;
            rescored.mark(u);
            let o: Override = codec::decode(&v)?;
            if o.flags & FLAG_UNRATED != 0 {
                spot.remove(u)?;
                continue;
            }
            if let Some(v) = tree.get(keys::enterprise(&u))? {
                let mut d = codec::decode_dossier(&v)?;
                rules.restore(u, &mut d);
                if let Some(row) = spot_row(u, &d, o.class, o.score) {
                    spot.upsert(row)?;
                }
            }
        }
        Ok(RunView {
            run,
            model,
            entries: Arc::new(entries),
            sources: Arc::new(sources),
            spot,
            rescored,
            empty_explanations: same_rules,
        })
    })
}

/// The selector's row of a dossier with its class.
pub fn spot_row(u: Uscc, d: &EnterpriseRecords, class: RiskClass, score: Centi) -> Option<SpotRow> {
    Some(SpotRow {
        uscc: u,
        class,
        score: score.clamp(i32::MIN.into(), i32::MAX.into()) as i32,
        attrs: Attrs::of(d)?,
        history: history_of(d),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uscc_of(n: u32) -> Uscc {
        let body = format!("{n:08}");
        Uscc::assemble(b"91310115", body.as_bytes().try_into().unwrap()).unwrap()
    }

    proptest::proptest! {
        /// A look-up through the hash index finds exactly what a binary search of all
        /// the entries finds: each entry at its position, and no USCC between, below or
        /// above them (an empty run included).
        #[test]
        fn the_hash_index_finds_what_a_binary_search_finds(
            present in proptest::collection::btree_set(0u32..100_000_000, 0..400),
            absent in proptest::collection::vec(0u32..100_000_000, 0..50),
        ) {
            let all: Vec<RunEntry> = present
                .iter()
                .enumerate()
                .map(|(i, &n)| RunEntry {
                    uscc: uscc_of(n),
                    class: RiskClass::from_index((i % 4) as u8).unwrap(),
                    flags: 0,
                    score: i as i32,
                })
                .collect();
            let entries = Entries::new(all.clone());
            proptest::prop_assert_eq!(&*entries, &all[..]);
            for (i, e) in all.iter().enumerate() {
                proptest::prop_assert_eq!(entries.position(&e.uscc), Some(i));
                proptest::prop_assert_eq!(entries.find(&e.uscc), Some(*e));
            }
            for n in absent.into_iter().chain([0, 99_999_999]) {
                let u = uscc_of(n);
                let expected = all.binary_search_by(|e| e.uscc.cmp(&u)).ok();
                proptest::prop_assert_eq!(entries.position(&u), expected);
            }
            proptest::prop_assert_eq!(entries.into_vec(), all);
        }
    }

    fn run(id: u64) -> ScoringRun {
        let as_of = Date::ymd(2026, 10, 1).unwrap();
        ScoringRun {
            state: RunState::Complete,
            ..ScoringRun::begun(id, format!("m{id}"), as_of, false, String::new(), id as i64)
        }
    }

    /// `list_runs` steps from run to run instead of scanning their results: it finds
    /// the same records, newest first, as a scan of the whole `R` keyspace, whatever
    /// else each run has (blocks, sources, spot chunks) and whatever lies around it.
    #[test]
    fn list_runs_finds_every_record_newest_first_without_scanning_results() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("registry").unwrap();
        // Neighbouring keyspaces (Q below R, S above it), and a key of R too short to
        // be a run's.
        tree.insert([RUNS - 1, 0xff], b"x".as_slice()).unwrap();
        tree.insert([RUNS + 1], b"x".as_slice()).unwrap();
        tree.insert([RUNS, 0], b"x".as_slice()).unwrap();
        let mut ids = Vec::new();
        for id in [1u64, 2, 3, 7, 8, 255, 256, 1 << 40] {
            // Run 3 has results but lost its record; run 8 has only its record.
            if id != 3 {
                tree.insert(run_key(id), codec::encode(&run(id)).unwrap())
                    .unwrap();
                ids.push(id);
            }
            if id != 8 {
                for b in 0..3u32 {
                    let mut k = blocks_prefix(id);
                    k.extend_from_slice(&b.to_be_bytes());
                    tree.insert(k, vec![0u8; 64]).unwrap();
                    let mut k = spot_prefix(id);
                    k.extend_from_slice(&b.to_be_bytes());
                    tree.insert(k, vec![1u8; 64]).unwrap();
                }
                tree.insert(sources_key(id), b"s".as_slice()).unwrap();
            }
        }
        let scanned: Vec<ScoringRun> = tree
            .scan_prefix([RUNS])
            .rev()
            .map(|kv| kv.unwrap())
            .filter(|(k, _)| k.len() == 10 && k[9] == 0)
            .map(|(_, v)| codec::decode(&v).unwrap())
            .collect();
        let listed = list_runs(&tree).unwrap();
        assert_eq!(listed, scanned);
        ids.reverse();
        assert_eq!(listed.iter().map(|r| r.id).collect::<Vec<_>>(), ids);
        assert!(list_runs(&db.open_tree("empty").unwrap())
            .unwrap()
            .is_empty());
    }
}
