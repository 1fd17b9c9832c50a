//! How fast the vendored sled applies batches (vendor/PATCHES.md 11), alone: a fresh
//! tree loaded as the store's writer loads it — batches of 4,096 writes, each applied
//! with `apply_batch` and flushed — then random point reads of it. Build it with two
//! versions of `vendor/sled` to compare them (BENCHMARKS.md, "Batches applied a leaf
//! at a time"); never run in CI.
//!
//! ```text
//! cargo run --release --example sled_batches -- 1000000 mixed
//! ```
//!
//! `seq`: keys in key order only, as an import's dossiers (`E` and 18 digits, 220-byte
//! values). `mixed`: each of those with a small index key at a random place (`D` and 18
//! digits), as an import's decision numbers. A third argument sets sled's cache in MiB
//! (default 256, the store's); the tree goes to a temporary directory.

use std::time::Instant;

#[cfg(feature = "cli")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// xorshift64: a fixed, dependency-free sequence of "random" positions.
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn key(prefix: u8, n: u64) -> Vec<u8> {
    let mut k = vec![prefix];
    k.extend_from_slice(format!("{n:018}").as_bytes());
    k
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: sled_batches KEYS seq|mixed [CACHE_MIB]";
    let n: u64 = args.first().ok_or(usage)?.parse()?;
    let mixed = match args.get(1).map(String::as_str) {
        Some("seq") => false,
        Some("mixed") => true,
        _ => return Err(usage.into()),
    };
    let cache_mib: u64 = args.get(2).map_or(Ok(256), |c| c.parse())?;
    let dir = tempfile::tempdir()?;
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(cache_mib << 20)
        .open()?;
    let tree = db.open_tree("registry")?;
    let value = [7u8; 220];
    let started = Instant::now();
    let (mut batch, mut in_batch, mut x) = (sled::Batch::default(), 0, 12_345u64);
    for i in 0..n {
        batch.insert(key(b'E', i * 7), &value[..]);
        if mixed {
            batch.insert(key(b'D', next(&mut x) % 1_000_000_000), &b"x"[..]);
        }
        in_batch += 1;
        if in_batch == 4_096 {
            tree.apply_batch(std::mem::take(&mut batch))?;
            db.flush()?;
            in_batch = 0;
        }
    }
    tree.apply_batch(batch)?;
    db.flush()?;
    let secs = started.elapsed().as_secs_f64();
    let written = if mixed { 2 * n } else { n };
    let started = Instant::now();
    let (reads, mut found) = (1_000_000u64.min(n), 0u64);
    let mut x = 99u64;
    for _ in 0..reads {
        if tree.get(key(b'E', next(&mut x) % n * 7))?.is_some() {
            found += 1;
        }
    }
    let read_secs = started.elapsed().as_secs_f64();
    println!(
        "{} {n}: loaded {written} keys in {secs:.2} s ({:.0} k keys/s); {reads} random gets, {:.2} µs each ({found} found)",
        if mixed { "mixed" } else { "seq" },
        written as f64 / secs / 1e3,
        read_secs * 1e6 / reads as f64,
    );
    Ok(())
}
