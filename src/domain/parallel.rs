//! Work split over the machine's cores (scoped threads, no pool): the draw's sampler and
//! the plan's population digests, which would otherwise leave a core idle for seconds
//! at city scale.

use std::ops::Range;

/// How many parts `n` items are split in: one per core, each at least `min` items.
pub fn parts_for(n: usize, min: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    cores.min(n / min.max(1)).max(1)
}

/// `f` of `0..n` in `parts` consecutive ranges, all but the first on scoped threads (on
/// this one if a thread cannot be started); the results in order.
pub fn in_parts<R: Send>(n: usize, parts: usize, f: impl Fn(Range<usize>) -> R + Sync) -> Vec<R> {
    if parts <= 1 || n < 2 {
        return vec![f(0..n)];
    }
    let step = n.div_ceil(parts);
    let ranges: Vec<Range<usize>> = (0..n).step_by(step).map(|a| a..(a + step).min(n)).collect();
    std::thread::scope(|s| {
        let f = &f;
        let others: Vec<_> = ranges[1..]
            .iter()
            .map(|r| {
                let mine = r.clone();
                std::thread::Builder::new()
                    .name("parts".into())
                    .spawn_scoped(s, move || f(mine))
                    .map_err(|_| r.clone())
            })
            .collect();
        let mut out = vec![f(ranges[0].clone())];
        for other in others {
            out.push(match other {
                Ok(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
                Err(r) => f(r),
            });
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parts_cover_every_item_once_in_order() {
        for n in [0usize, 1, 2, 5, 100, 101] {
            for parts in [0usize, 1, 2, 3, 7, 200] {
                let got: Vec<usize> = in_parts(n, parts, |r| r.collect::<Vec<_>>())
                    .into_iter()
                    .flatten()
                    .collect();
                assert_eq!(got, (0..n).collect::<Vec<_>>(), "n {n}, {parts} parts");
            }
        }
        assert_eq!(parts_for(10, 100), 1);
        assert!(parts_for(1 << 30, 1) >= 1);
    }
}
