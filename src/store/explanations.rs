//! Explained classifications kept in memory, per live run (`[store]
//! explanation_cache_bytes`; 0 keeps none).
//!
//! An explanation — the factors with their points and records, the hard rule that
//! holds, whether the factors give the run's score — is a function of the enterprise's
//! dossier, the run's model and as-of date, the flags the run found, and the rule book
//! this process runs. [`Store::classify`](super::Store::classify) recomputes it from the
//! dossier (a sled read, its decoding, `explain`); this cache answers a repeated
//! question without them.
//!
//! **When an entry may answer** (the invariant, ARCHITECTURE.md): only for an
//! enterprise that has *no re-score override at all* on a *live* run (one with a view:
//! the current run of each family, a pending dry run). Every write re-scores each
//! enterprise it changes onto every live run and commits the override in the same
//! batch as the dossier; overrides are replaced, never removed, while the run lives
//! (`store::writer::runs`). So "no override" means the dossier is the one the run
//! scored, and an entry stored under `(run, uscc)` can never be read after a write to
//! that enterprise: the override read first sends the reader to the dossier. A reader
//! that raced a write (it saw no override, then read the newer dossier) may store an
//! entry of the newer dossier; it is never read, for the same reason. A run that stops
//! being live is never asked again (its entries age out); ids are not reused. The rule
//! book and the models are fixed for the life of the process, and the cache with it.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use crate::domain::{model::HardRule, scoring::Explained, Uscc};

/// One enterprise's explanation under one run.
#[derive(Clone, Debug)]
pub struct Explanation {
    /// The hard rule that set the class, if any.
    pub hard_rule: Option<HardRule>,
    /// The factors' points give the run's score and class.
    pub factors_reproduce_score: bool,
    /// The contributing factors (shared with the cache: a hit copies no text).
    pub factors: Arc<[Explained]>,
}

impl Explanation {
    /// No factor, no hard rule: what the run's entry says of an enterprise in whose
    /// records it found nothing that counts (`scoring::FLAG_NO_FACTORS`). One shared
    /// empty slice, so answering it allocates nothing.
    pub fn empty() -> Explanation {
        static NONE: std::sync::LazyLock<Arc<[Explained]>> =
            std::sync::LazyLock::new(|| Arc::from([]));
        Explanation {
            hard_rule: None,
            factors_reproduce_score: true,
            factors: Arc::clone(&NONE),
        }
    }
}

/// What an entry costs, roughly, in bytes: the key, the shared slice and its header,
/// each factor and its record id's text, and the cache's own slot.
#[derive(Clone, Copy, Debug, Default)]
struct Weight;

impl quick_cache::Weighter<(u64, Uscc), Explanation> for Weight {
    fn weight(&self, _: &(u64, Uscc), e: &Explanation) -> u64 {
        let factors: usize = e
            .factors
            .iter()
            .map(|f| std::mem::size_of::<Explained>() + f.record.len())
            .sum();
        (ENTRY_OVERHEAD + factors) as u64
    }
}

/// Bytes of one entry besides its factors (key, value, slice header, slot).
const ENTRY_OVERHEAD: usize = 96;

/// The explanations of enterprises on live runs, bounded in bytes.
pub struct ExplanationCache {
    cache: Option<quick_cache::sync::Cache<(u64, Uscc), Explanation, Weight>>,
    /// Answers given from the cache / computed from a dossier (only where the cache
    /// could answer: an enterprise unchanged since its live run).
    hits: AtomicU64,
    misses: AtomicU64,
}

/// The cache's figures (the metrics read them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub entries: u64,
    pub bytes: u64,
    pub hits: u64,
    pub misses: u64,
}

impl ExplanationCache {
    /// A cache of at most `bytes` (estimated); 0: none.
    pub fn new(bytes: u64) -> Self {
        let cache = (bytes > 0).then(|| {
            let items = usize::try_from(bytes / 256).unwrap_or(usize::MAX).max(16);
            quick_cache::sync::Cache::with_weighter(items, bytes, Weight)
        });
        ExplanationCache {
            cache,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The explanation of `u` under live run `run`, if kept. Call only where the
    /// invariant above holds.
    pub fn get(&self, run: u64, u: &Uscc) -> Option<Explanation> {
        let hit = self.cache.as_ref()?.get(&(run, *u));
        let counter = if hit.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        hit
    }

    /// Keeps the explanation of `u` under live run `run`, computed from the dossier the
    /// run scored.
    pub fn insert(&self, run: u64, u: Uscc, e: Explanation) {
        if let Some(c) = &self.cache {
            c.insert((run, u), e);
        }
    }

    /// Entries, their estimated bytes, hits and misses so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            entries: self.cache.as_ref().map_or(0, |c| c.len() as u64),
            bytes: self.cache.as_ref().map_or(0, |c| c.weight()),
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::Indicator;

    fn explanation(record: &str) -> Explanation {
        Explanation {
            hard_rule: None,
            factors_reproduce_score: true,
            factors: vec![Explained {
                indicator: Indicator::PenaltyFine,
                points: 1500,
                record: record.into(),
            }]
            .into(),
        }
    }

    fn uscc(i: u32) -> Uscc {
        let body: [u8; 8] = format!("{i:08}").into_bytes().try_into().expect("8 digits");
        Uscc::assemble(b"91310115", &body).expect("uscc")
    }

    #[test]
    fn keeps_per_run_and_counts_hits_and_misses() {
        let c = ExplanationCache::new(1 << 20);
        assert!(c.get(1, &uscc(1)).is_none());
        c.insert(1, uscc(1), explanation("P-1"));
        let hit = c.get(1, &uscc(1)).expect("kept");
        assert_eq!(hit.factors[0].record, "P-1");
        // Another run, another enterprise: not this entry.
        assert!(c.get(2, &uscc(1)).is_none());
        assert!(c.get(1, &uscc(2)).is_none());
        let s = c.stats();
        assert_eq!((s.entries, s.hits, s.misses), (1, 1, 3));
        assert!(s.bytes >= (ENTRY_OVERHEAD + 3) as u64, "{s:?}");
    }

    #[test]
    fn stays_within_its_bytes() {
        let bytes = 64 * 1024;
        let c = ExplanationCache::new(bytes);
        for i in 0..10_000 {
            c.insert(7, uscc(i), explanation(&format!("P-{i:020}")));
        }
        let s = c.stats();
        assert!(s.bytes <= bytes, "{s:?}");
        assert!(s.entries > 100 && s.entries < 10_000, "{s:?}");
    }

    #[test]
    fn the_empty_explanation_is_one_shared_slice() {
        let (a, b) = (Explanation::empty(), Explanation::empty());
        assert!(a.factors.is_empty() && a.hard_rule.is_none() && a.factors_reproduce_score);
        assert!(Arc::ptr_eq(&a.factors, &b.factors));
    }

    #[test]
    fn none_kept_at_zero_bytes() {
        let c = ExplanationCache::new(0);
        c.insert(1, uscc(1), explanation("P-1"));
        assert!(c.get(1, &uscc(1)).is_none());
        assert_eq!(c.stats(), CacheStats::default());
    }
}
