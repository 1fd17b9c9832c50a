//! What one look-up in a run held in memory costs (`GetClassification`, BatchMatch, the
//! match stream, the selector): a binary search of all the entries against the hash
//! index of `store::scoring::Entries`, over a run of N enterprises, the USCCs asked in
//! random order, alternated in rounds; and what building the index costs. Never run in
//! CI.
//!
//! ```text
//! cargo run --release --example run_lookup -- 3500000
//! ```

use std::time::Instant;

use credit_risk::{
    domain::{RiskClass, Uscc},
    store::{scoring::Entries, RunEntry},
};

/// xorshift64: a fixed, dependency-free sequence of "random" numbers.
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn uscc(n: u64) -> Uscc {
    let body = format!("{:08}", n % 100_000_000);
    let prefix = format!("913101{:02}", 10 + (n / 100_000_000) % 20);
    let (p, b): (&[u8; 8], &[u8; 8]) = (
        prefix.as_bytes().try_into().expect("8 bytes"),
        body.as_bytes().try_into().expect("8 bytes"),
    );
    Uscc::assemble(p, b).expect("a valid USCC")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = std::env::args()
        .nth(1)
        .map_or(Ok(3_500_000), |a| a.parse())?;
    let mut x = 42u64;
    let mut codes: Vec<u64> = (0..n).map(|_| next(&mut x) % 2_000_000_000).collect();
    codes.sort_unstable();
    codes.dedup();
    let all: Vec<RunEntry> = codes
        .iter()
        .map(|&c| RunEntry {
            uscc: uscc(c),
            class: RiskClass::A,
            flags: 0,
            score: 0,
        })
        .collect();
    let t = Instant::now();
    let entries = Entries::new(all.clone());
    println!("index built in {:.3} s", t.elapsed().as_secs_f64());
    let asked: Vec<Uscc> = (0..2_000_000)
        .map(|_| all[(next(&mut x) % all.len() as u64) as usize].uscc)
        .collect();
    println!("{} entries, {} look-ups per round", all.len(), asked.len());
    for round in 1..=3 {
        let t = Instant::now();
        let mut found = 0usize;
        for u in &asked {
            found += all.binary_search_by(|e| e.uscc.cmp(u)).is_ok() as usize;
        }
        let plain = t.elapsed().as_nanos() as f64 / asked.len() as f64;
        let t = Instant::now();
        for u in &asked {
            found += entries.find(u).is_some() as usize;
        }
        let hashed = t.elapsed().as_nanos() as f64 / asked.len() as f64;
        assert_eq!(found, 2 * asked.len());
        println!("round {round}: binary search {plain:.0} ns, hash index {hashed:.0} ns");
    }
    Ok(())
}
