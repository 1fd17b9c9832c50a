//! The verifiable draw (可验证抽取), algorithm `consistent-sampler-v1`: Rivest's
//! consistent sampling without replacement exactly as the Python package
//! `consistent-sampler` 1.0.10 computes it, so anyone can re-check a draw with
//! `consistent_sampler.sampler(population, seed=S, take=k, output="id")`.
//!
//! - Ticket of an id: `h` = lower-case hex SHA-256 of the seed string; `x` = SHA-256 of
//!   `h + id` as a 256-bit integer, written in decimal, zero-padded to at least 64
//!   digits, digits reversed; the ticket is `"0." + reversed`. Tickets compare as
//!   strings (the package's tuples compare by ticket, then id).
//! - A sample of `k` = the `k` smallest tickets, in ticket order.

use std::cmp::Ordering;

use super::parallel::{in_parts, parts_for};

use sha2::{Digest, Sha256};

/// Name of the algorithm, as written in receipts.
pub const ALGORITHM: &str = "consistent-sampler-v1";

/// The sampler seed of a draw: `seed + ":" + task_id` (strings, never numbers).
pub fn draw_seed(seed: &str, task_id: &str) -> String {
    format!("{seed}:{task_id}")
}

/// The sampler seed of one enterprise's inspector team: `S + ":" + uscc`.
pub fn team_seed(draw_seed: &str, uscc: &str) -> String {
    format!("{draw_seed}:{uscc}")
}

/// Decimal digits of a 256-bit big-endian integer, most significant first, zero-padded
/// to at least 64 digits.
fn decimal(x: [u8; 32]) -> Vec<u8> {
    let mut limbs = [0u64; 4]; // most significant first
    for (i, l) in limbs.iter_mut().enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(&x[i * 8..i * 8 + 8]);
        *l = u64::from_be_bytes(b);
    }
    const CHUNK: u64 = 10_000_000_000_000_000_000; // 10^19
    let mut chunks = [0u64; 5]; // least significant first; 2^256 < 10^95
    let mut n = 0;
    while limbs.iter().any(|&l| l != 0) {
        let mut rem: u128 = 0;
        for l in limbs.iter_mut() {
            let cur = (rem << 64) | u128::from(*l);
            *l = (cur / u128::from(CHUNK)) as u64;
            rem = cur % u128::from(CHUNK);
        }
        chunks[n] = rem as u64;
        n += 1;
    }
    // Least significant digit first, then reversed once.
    let mut out = Vec::with_capacity(80);
    for (i, &c) in chunks[..n].iter().enumerate() {
        let mut c = c;
        let last = i + 1 == n;
        let mut written = 0;
        while (last && c > 0) || (!last && written < 19) {
            out.push(b'0' + (c % 10) as u8);
            c /= 10;
            written += 1;
        }
    }
    if out.is_empty() {
        out.push(b'0');
    }
    while out.len() < 64 {
        out.push(b'0');
    }
    out.reverse();
    out
}

/// A ticket: the digits after `"0."`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(Vec<u8>);

impl Ticket {
    /// The ticket as the package writes it: `"0.ddd…"`.
    pub fn as_string(&self) -> String {
        let mut s = String::with_capacity(2 + self.0.len());
        s.push_str("0.");
        s.extend(self.0.iter().map(|&d| char::from(d)));
        s
    }

    /// A ticket as written (`"0."` and 64 to 78 decimal digits); `None` otherwise.
    pub fn parse(s: &str) -> Option<Ticket> {
        let digits = s.strip_prefix("0.")?;
        (64..=78).contains(&digits.len()).then_some(())?;
        digits
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| Ticket(digits.as_bytes().to_vec()))
    }
}

/// Tickets for one seed.
#[derive(Clone, Debug)]
pub struct Sampler {
    /// SHA-256 with the seed's hash (64 hex characters: exactly one block) already
    /// absorbed, cloned for each id.
    prefix: Sha256,
}

impl Sampler {
    /// A sampler for the seed string `seed`.
    pub fn new(seed: &str) -> Sampler {
        let seed_hash = hex::encode(Sha256::digest(seed.as_bytes()));
        let mut prefix = Sha256::new();
        prefix.update(seed_hash.as_bytes());
        Sampler { prefix }
    }

    /// The (first) ticket of `id`.
    pub fn ticket(&self, id: &str) -> Ticket {
        ticket_of(self.hash(id))
    }

    /// `x` of `id`: SHA-256 of the seed's hash and the id.
    fn hash(&self, id: &str) -> [u8; 32] {
        let mut h = self.prefix.clone();
        h.update(id.as_bytes());
        h.finalize().into()
    }

    /// The `k` smallest tickets among `ids`, in ticket order (ties, which SHA-256 makes
    /// practically impossible, by id as the package does).
    pub fn sample<'a, I>(&self, ids: I, k: usize) -> Vec<(Ticket, &'a str)>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let ids: Vec<&'a str> = ids.into_iter().collect();
        self.sample_at(&ids, k)
            .into_iter()
            .map(|(t, at)| (t, ids[at]))
            .collect()
    }

    /// [`Sampler::sample`] of a slice, each selected id given by its position in `ids`.
    ///
    /// Each id is ranked by its ticket's first 19 digits (`ticket_prefix`: one 256-bit
    /// remainder, not the whole 78-digit decimal); whole tickets are written for the `k`
    /// kept and compared only when two prefixes tie. A large slice is ranked in parts on
    /// as many threads as the machine has cores, and the parts' smallest merged: the
    /// same sample, whatever the parts.
    pub fn sample_at<T: AsRef<str> + Sync>(&self, ids: &[T], k: usize) -> Vec<(Ticket, usize)> {
        self.sample_in_parts(ids, k, parts_for(ids.len(), PART_MIN))
    }

    /// [`Sampler::sample_at`] with the ids ranked in `parts` parts.
    fn sample_in_parts<T: AsRef<str> + Sync>(
        &self,
        ids: &[T],
        k: usize,
        parts: usize,
    ) -> Vec<(Ticket, usize)> {
        if k == 0 || ids.is_empty() {
            return Vec::new();
        }
        let whole = |at: usize| {
            let id = ids[at].as_ref();
            (ticket_of(self.hash(id)), id)
        };
        let cmp = |a: &Ranked, b: &Ranked| rank_order(a, b, whole);
        let ranked = in_parts(ids.len(), parts, |range| {
            let mut top = Smallest::new(k);
            for at in range {
                let prefix = ticket_prefix(&self.hash(ids[at].as_ref()));
                top.offer(Ranked { prefix, at }, &cmp);
            }
            top.into_vec(&cmp)
        });
        let mut top = Smallest::new(k);
        for r in ranked.into_iter().flatten() {
            top.offer(r, &cmp);
        }
        let mut kept = top.into_vec(&cmp);
        kept.sort_unstable_by(cmp);
        let parts = parts.min(parts_for(kept.len(), PART_MIN)).max(1);
        in_parts(kept.len(), parts, |range| {
            kept[range]
                .iter()
                .map(|r| (whole(r.at).0, r.at))
                .collect::<Vec<_>>()
        })
        .into_iter()
        .flatten()
        .collect()
    }
}

/// Ids from which a part is ranked on a thread of its own.
const PART_MIN: usize = 1 << 15;

/// Ticket order of two ranked ids: by prefix, then by whole ticket and id (`whole` of
/// a position), as the package orders its (ticket, id) tuples.
fn rank_order<'a>(a: &Ranked, b: &Ranked, whole: impl Fn(usize) -> (Ticket, &'a str)) -> Ordering {
    a.prefix
        .cmp(&b.prefix)
        .then_with(|| whole(a.at).cmp(&whole(b.at)))
}

/// The `k` smallest of the ids offered, in O(offered + k log k): offered ids are
/// buffered and, once the buffer holds `2k`, cut to its `k` smallest; the largest of
/// those bounds what can still enter (only a prefix at most as large).
struct Smallest {
    k: usize,
    kept: Vec<Ranked>,
    /// The largest prefix among the `k` kept after the last cut.
    bound: Option<u64>,
}

impl Smallest {
    fn new(k: usize) -> Smallest {
        Smallest {
            k,
            kept: Vec::new(),
            bound: None,
        }
    }

    fn offer(&mut self, r: Ranked, cmp: &impl Fn(&Ranked, &Ranked) -> Ordering) {
        if self.bound.is_some_and(|b| r.prefix > b) {
            return;
        }
        self.kept.push(r);
        if self.kept.len() >= self.k.saturating_mul(2).max(1024) {
            self.cut(cmp);
        }
    }

    fn cut(&mut self, cmp: &impl Fn(&Ranked, &Ranked) -> Ordering) {
        if self.kept.len() > self.k {
            self.kept.select_nth_unstable_by(self.k, cmp);
            self.kept.truncate(self.k);
            self.bound = self.kept.iter().map(|r| r.prefix).max();
        }
    }

    fn into_vec(mut self, cmp: &impl Fn(&Ranked, &Ranked) -> Ordering) -> Vec<Ranked> {
        self.cut(cmp);
        self.kept
    }
}

/// The first 19 digits of the ticket of `x`, read as one number: the 19 least
/// significant decimal digits of `x`, reversed. Every ticket has at least 64 digits, so
/// two tickets whose prefixes differ compare as their prefixes do.
fn ticket_prefix(x: &[u8; 32]) -> u64 {
    const TEN_19: u128 = 10_000_000_000_000_000_000;
    let mut rem: u128 = 0;
    for limb in x.chunks_exact(8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(limb);
        rem = ((rem << 64) | u128::from(u64::from_be_bytes(b))) % TEN_19;
    }
    let mut r = rem as u64;
    let mut prefix = 0u64;
    for _ in 0..19 {
        prefix = prefix * 10 + r % 10;
        r /= 10;
    }
    prefix
}

/// An id ranked for the sample: its ticket's prefix and its position among the ids
/// (by which the whole ticket and the id are found on a tie).
#[derive(Clone, Copy, Debug)]
struct Ranked {
    prefix: u64,
    at: usize,
}

/// The ticket of `x`: its decimal digits (at least 64), reversed.
fn ticket_of(x: [u8; 32]) -> Ticket {
    let mut digits = decimal(x);
    digits.reverse();
    Ticket(digits)
}

/// Sample size of a stratum: a count, or `ceil(ratio × population)`, capped at the
/// population.
pub fn stratum_size(population: usize, count: Option<u64>, ratio: Option<f64>) -> usize {
    let k = match (count, ratio) {
        (Some(c), _) => usize::try_from(c).unwrap_or(usize::MAX),
        (None, Some(r)) => {
            // ceil with a guard against binary fractions like 0.1 × 30 = 3.0000000000000004
            let x = r * population as f64;
            let rounded = x.round();
            if (x - rounded).abs() < 1e-9 {
                rounded as usize
            } else {
                x.ceil() as usize
            }
        }
        (None, None) => 0,
    };
    k.min(population)
}

/// Population digest: SHA-256 hex over the ids sorted ascending, joined with "\n".
pub fn population_digest<'a>(sorted_ids: impl IntoIterator<Item = &'a str>) -> String {
    let mut h = Sha256::new();
    for (i, id) in sorted_ids.into_iter().enumerate() {
        if i > 0 {
            h.update(b"\n");
        }
        h.update(id.as_bytes());
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spec_test_vectors() {
        let s = Sampler::new("01382438112797316654");
        assert_eq!(
            s.ticket("AB-130").as_string(),
            "0.26299714122838008416507544297546663599715395525154425586041245287750224561854"
        );
        let s = Sampler::new("314159");
        let got: Vec<&str> = s
            .sample(["ab-1", "ab-2", "cd-1", "ef-3"], 4)
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        assert_eq!(got, ["cd-1", "ef-3", "ab-1", "ab-2"]);
        // The package's own doctests.
        assert_eq!(
            Sampler::new("xy()134!g2n").ticket("cat").as_string(),
            "0.24866413894129579898796850445568128508290132707747976039848637531569373309555"
        );
        assert!(s.ticket("cd-1").as_string().starts_with("0.317685817"));
        assert!(s.ticket("ab-1").as_string().starts_with("0.9098039269"));
    }

    #[test]
    fn decimal_pads_to_64_digits() {
        let mut x = [0u8; 32];
        x[31] = 7;
        let d = decimal(x);
        assert_eq!(d.len(), 64);
        assert_eq!(d.last(), Some(&b'7'));
        assert_eq!(decimal([0xff; 32]).len(), 78);
        assert_eq!(
            String::from_utf8(decimal([0xff; 32])).unwrap(),
            "115792089237316195423570985008687907853269984665640564039457584007913129639935"
        );
    }

    /// A k beyond the ids (a joint draw's k is over the union) takes them all and
    /// reserves nothing for the rest.
    #[test]
    fn a_k_beyond_the_ids_takes_them_all() {
        let s = Sampler::new("314159");
        assert_eq!(s.sample(["ab-1", "ab-2"], usize::MAX).len(), 2);
    }

    #[test]
    fn sizes() {
        assert_eq!(stratum_size(30, None, Some(0.1)), 3);
        assert_eq!(stratum_size(31, None, Some(0.1)), 4);
        assert_eq!(stratum_size(10, Some(20), None), 10);
        assert_eq!(stratum_size(0, None, Some(1.0)), 0);
        assert_eq!(stratum_size(7, None, Some(1.0)), 7);
    }

    /// Digit by digit, the slow way: the reference for [`decimal`].
    fn decimal_slowly(x: [u8; 32]) -> Vec<u8> {
        let mut n = x.to_vec();
        let mut digits = Vec::new();
        while n.iter().any(|&b| b != 0) {
            let mut rem = 0u32;
            for b in n.iter_mut() {
                let cur = (rem << 8) | u32::from(*b);
                *b = (cur / 10) as u8;
                rem = cur % 10;
            }
            digits.push(b'0' + rem as u8);
        }
        while digits.len() < 64 {
            digits.push(b'0');
        }
        digits.reverse();
        digits
    }

    /// The sample the slow way (every whole ticket, sorted): the reference for
    /// [`Sampler::sample`].
    fn sample_slowly<'a>(s: &Sampler, ids: &[&'a str], k: usize) -> Vec<(Ticket, &'a str)> {
        let mut all: Vec<(Ticket, &str)> = ids.iter().map(|id| (s.ticket(id), *id)).collect();
        all.sort();
        all.truncate(k);
        all
    }

    /// Two tickets with the same first 19 digits are ordered by the rest, then by id.
    #[test]
    fn tied_prefixes_compare_whole_tickets_then_ids() {
        let mut small = [0u8; 32];
        small[31] = 5; // ticket 5000…0
        let mut big = small;
        // + 10^19: the same 19 last digits, a larger 20th.
        let ten_19: u64 = 10_000_000_000_000_000_000;
        let (lo, carry) = 5u64.overflowing_add(ten_19);
        big[24..32].copy_from_slice(&lo.to_be_bytes());
        assert!(!carry);
        // Positions 0, 1, 2: (x, id) of three ranked ids.
        let xs = [(small, "b"), (big, "a"), (small, "a")];
        let whole = |at: usize| (ticket_of(xs[at].0), xs[at].1);
        let ranked = |at: usize| Ranked {
            prefix: ticket_prefix(&xs[at].0),
            at,
        };
        let (a, b, same) = (ranked(0), ranked(1), ranked(2));
        assert_eq!(a.prefix, b.prefix);
        assert_eq!(a.prefix, 5_000_000_000_000_000_000);
        assert_eq!(
            rank_order(&a, &b, whole),
            Ordering::Less,
            "ticket 50…0 before 50…01"
        );
        assert_eq!(
            rank_order(&same, &a, whole),
            Ordering::Less,
            "equal tickets: by id"
        );
    }

    /// The parts a large slice is ranked in, and the cuts of a buffer of small k, do
    /// not change the sample.
    #[test]
    fn parts_and_cuts_give_the_same_sample() {
        let ids: Vec<String> = (0..20_000).map(|i| format!("9131011{i:011}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let s = Sampler::new("parts");
        for k in [1, 7, 600, 5_000, 19_999, 20_000, 30_000] {
            let want: Vec<(Ticket, &str)> = sample_slowly(&s, &refs, k);
            for parts in [1, 2, 3, 8] {
                let got: Vec<(Ticket, &str)> = s
                    .sample_in_parts(&refs, k, parts)
                    .into_iter()
                    .map(|(t, at)| (t, refs[at]))
                    .collect();
                assert_eq!(got, want, "k {k}, {parts} parts");
            }
        }
    }

    proptest! {
        #[test]
        fn prefix_is_the_tickets_first_19_digits(x in proptest::array::uniform32(any::<u8>()), top in 0usize..32) {
            let mut y = x;
            y[..top].iter_mut().for_each(|b| *b = 0);
            for v in [x, y] {
                let t = ticket_of(v);
                let first: u64 = String::from_utf8(t.0[..19].to_vec()).unwrap().parse().unwrap();
                prop_assert_eq!(ticket_prefix(&v), first);
            }
        }

        #[test]
        fn sample_agrees_with_the_slow_way(n in 0usize..2500, k in 0usize..320, seed in "[a-z0-9:]{1,16}") {
            let ids: Vec<String> = (0..n).map(|i| format!("9131011{i:011}")).collect();
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let s = Sampler::new(&seed);
            prop_assert_eq!(s.sample(refs.iter().copied(), k), sample_slowly(&s, &refs, k));
        }

        #[test]
        fn decimal_agrees_with_the_slow_way(x in proptest::array::uniform32(any::<u8>()), top in 0usize..32) {
            // Also small numbers: the leading `top` bytes zeroed.
            let mut y = x;
            y[..top].iter_mut().for_each(|b| *b = 0);
            prop_assert_eq!(decimal(x), decimal_slowly(x));
            prop_assert_eq!(decimal(y), decimal_slowly(y));
        }

        #[test]
        fn same_seed_same_sample_and_removals_keep_relative_order(
            n in 1usize..60, k in 0usize..20, seed in "[a-z0-9]{1,12}", drop_every in 2usize..5,
        ) {
            let ids: Vec<String> = (0..n).map(|i| format!("9131011{i:011}")).collect();
            let s = Sampler::new(&seed);
            let a = s.sample(ids.iter().map(String::as_str), k);
            let b = s.sample(ids.iter().rev().map(String::as_str), k);
            prop_assert_eq!(&a, &b, "input order does not matter");
            prop_assert_eq!(a.len(), k.min(n));
            // Removing ids (an exemption, a filter) never reorders the others.
            let all = s.sample(ids.iter().map(String::as_str), n);
            let kept: Vec<&str> = ids.iter().enumerate().filter(|(i, _)| i % drop_every != 0).map(|(_, x)| x.as_str()).collect();
            let sub = s.sample(kept.iter().copied(), kept.len());
            let expect: Vec<&str> = all.iter().map(|(_, id)| *id).filter(|id| kept.contains(id)).collect();
            let got: Vec<&str> = sub.iter().map(|(_, id)| *id).collect();
            prop_assert_eq!(got, expect);
        }
    }
}
