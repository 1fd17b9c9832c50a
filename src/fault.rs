//! Fault injection for the fail-closed tests: named points in the writer and the batch
//! job that panic (or hold) on demand. Disarmed (one relaxed atomic load per point) unless
//! the process starts with `CREDIT_RISK_FAULT=<point>[:<n>][:hold]` in its environment,
//! which makes the `n`-th hit (default the first) of `<point>` panic — or, with `hold`,
//! block that thread for ever (a job held mid-way, to be killed there on any machine
//! speed). Only the tests set it; a process whose environment an attacker controls is
//! lost anyway.
//!
//! Points: `writer.before_apply` (a job's batch is built, not applied),
//! `writer.after_apply` (the group's batches are applied, not flushed),
//! `writer.after_flush` (the group is durable, not yet answered), `writer.index_step`
//! (a chunk of a draw's selections to index is built, not applied), `batch.scan` (the
//! scoring job, while it scans), `batch.spot_base` (the job's runs are current and its
//! stream has ended; their spot bases are not yet stored).

use std::sync::{
    atomic::{AtomicBool, AtomicU64, Ordering},
    OnceLock,
};

/// The environment variable that arms a point.
pub const ENV: &str = "CREDIT_RISK_FAULT";

struct Armed {
    point: String,
    nth: u64,
    hold: bool,
    hits: AtomicU64,
}

static ARMED: AtomicBool = AtomicBool::new(false);
static PLAN: OnceLock<Option<Armed>> = OnceLock::new();

/// Reads [`ENV`] once; call at process start (the server does).
pub fn arm_from_env() {
    let plan = PLAN.get_or_init(|| {
        let v = std::env::var(ENV).ok()?;
        let (v, hold) = match v.strip_suffix(":hold") {
            Some(rest) => (rest.to_string(), true),
            None => (v, false),
        };
        let (point, nth) = match v.split_once(':') {
            Some((p, n)) => (p.to_string(), n.parse().unwrap_or(1)),
            None => (v, 1),
        };
        tracing::warn!(%point, nth, hold, "fault injection armed");
        Some(Armed {
            point,
            nth: nth.max(1),
            hold,
            hits: AtomicU64::new(0),
        })
    });
    ARMED.store(plan.is_some(), Ordering::Release);
}

/// A fault point: panics (or holds) if armed for `name` and this is the chosen hit.
#[inline]
pub fn point(name: &str) {
    if !ARMED.load(Ordering::Relaxed) {
        return;
    }
    if let Some(Some(a)) = PLAN.get() {
        if a.point == name && a.hits.fetch_add(1, Ordering::AcqRel) + 1 == a.nth {
            if a.hold {
                tracing::warn!(point = name, "held at an injected fault point");
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(3600));
                }
            }
            panic!("injected fault at {name}");
        }
    }
}
