//! vendor/PATCHES.md 14: a burst of batches frees the leaves it replaced as it goes.
//! Its own test binary, for its allocator: it counts the heap's live bytes, and nothing
//! else runs in this process.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator as it came.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// xorshift64: scattered positions, the same every run.
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// 120 batches of 2,048 writes each at scattered places among 200,000 keys (as the
/// writer indexes a draw's selections, back to back): each write replaces a leaf, whose
/// old copy sled frees through crossbeam's epoch. Unpatched, those frees ran a few bags
/// at a time as threads happened to pin, and the burst left hundreds of MB of replaced
/// leaves waiting; patched, each batch has what it left collected (on sled's
/// `sled-reclaim` thread, beside the next batch), so what the heap holds over the burst
/// is the tree, sled's 4 MiB page cache and a batch or two of replaced leaves: a few
/// tens of MB.
#[test]
fn a_burst_of_batches_frees_the_leaves_it_replaced() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(4 << 20)
        .flush_every_ms(None)
        .open()
        .expect("open");
    let tree = db.open_tree("t").expect("tree");
    let value = [7u8; 64];
    let base = LIVE.load(Ordering::Relaxed);
    let mut peak = 0usize;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..120 {
        let mut batch = sled::Batch::default();
        for _ in 0..2048 {
            let k = (next(&mut x) % 200_000).to_be_bytes();
            batch.insert(&k[..], &value[..]);
        }
        tree.apply_batch(batch).expect("batch");
        peak = peak.max(LIVE.load(Ordering::Relaxed).saturating_sub(base));
    }
    let mib = |b: usize| b as f64 / (1 << 20) as f64;
    eprintln!("heap over the burst: peak {:.1} MiB", mib(peak));
    assert!(
        peak < 64 << 20,
        "the burst held {:.1} MiB at its peak: replaced leaves are not being freed",
        mib(peak)
    );
}
