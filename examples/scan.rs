use std::time::Instant;
fn main() {
    let dir = std::env::args().nth(1).unwrap();
    let db = sled::Config::new()
        .path(&dir)
        .cache_capacity(512 << 20)
        .open()
        .unwrap();
    let t = db.open_tree("registry").unwrap();
    for pass in 0..2 {
        let s = Instant::now();
        let (mut n, mut b) = (0u64, 0u64);
        for kv in t.scan_prefix([b'E']) {
            let (k, v) = kv.unwrap();
            n += 1;
            b += (k.len() + v.len()) as u64;
        }
        println!("pass {pass} fwd: {n} keys {b} bytes {:?}", s.elapsed());
    }
    let s = Instant::now();
    let mut n = 0u64;
    for kv in t.scan_prefix([b'E']).rev().take(2_000_000) {
        kv.unwrap();
        n += 1;
    }
    println!("rev 2M: {n} {:?}", s.elapsed());
    let st = std::fs::read_to_string("/proc/self/status").unwrap();
    for l in st.lines().filter(|l| l.starts_with("VmHWM")) {
        println!("{l}");
    }
}
