//! Fault injection for the fail-closed tests: named points in the writer and the batch
//! job that panic on demand. Disarmed (one relaxed atomic load per point) unless the
//! process starts with `CREDIT_RISK_FAULT=<point>[:<n>]` in its environment, which makes
//! the `n`-th hit (default the first) of `<point>` panic. Only the tests set it; a
//! process whose environment an attacker controls is lost anyway.
//!
//! Points: `writer.before_apply` (a job's batch is built, not applied),
//! `writer.after_apply` (the group's batches are applied, not flushed),
//! `writer.after_flush` (the group is durable, not yet answered), `batch.scan` (the
//! scoring job, while it scans).

use std::sync::{
    atomic::{AtomicBool, AtomicU64, Ordering},
    OnceLock,
};

/// The environment variable that arms a point.
pub const ENV: &str = "CREDIT_RISK_FAULT";

struct Armed {
    point: String,
    nth: u64,
    hits: AtomicU64,
}

static ARMED: AtomicBool = AtomicBool::new(false);
static PLAN: OnceLock<Option<Armed>> = OnceLock::new();

/// Reads [`ENV`] once; call at process start (the server does).
pub fn arm_from_env() {
    let plan = PLAN.get_or_init(|| {
        let v = std::env::var(ENV).ok()?;
        let (point, nth) = match v.split_once(':') {
            Some((p, n)) => (p.to_string(), n.parse().unwrap_or(1)),
            None => (v, 1),
        };
        tracing::warn!(%point, nth, "fault injection armed");
        Some(Armed {
            point,
            nth: nth.max(1),
            hits: AtomicU64::new(0),
        })
    });
    ARMED.store(plan.is_some(), Ordering::Release);
}

/// A fault point: panics if armed for `name` and this is the chosen hit.
#[inline]
pub fn point(name: &str) {
    if !ARMED.load(Ordering::Relaxed) {
        return;
    }
    if let Some(Some(a)) = PLAN.get() {
        if a.point == name && a.hits.fetch_add(1, Ordering::AcqRel) + 1 == a.nth {
            panic!("injected fault at {name}");
        }
    }
}
