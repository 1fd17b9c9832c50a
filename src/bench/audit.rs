//! `credit-risk bench-audit`: the audit trail's cost — durable RecordPenalty writes with
//! and without it, alternating, in one run (temporary stores; no network).

use std::time::Instant;

use super::{BenchError, CliResult};

/// Options of `credit-risk bench-audit`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Writes per round.
    #[arg(long, default_value_t = 20_000)]
    writes: usize,
    /// Concurrent writers.
    #[arg(long, default_value_t = 16)]
    clients: usize,
}

/// Runs `credit-risk bench-audit`.
pub fn run(a: Args) -> CliResult {
    crate::cli::runtime(0)?.block_on(audit_overhead(a.writes, a.clients.max(1)))
}

/// RecordPenalty through the store's durable write path (no network), `clients`
/// concurrent writers, with and without the audit trail, in the same run; prints JSON.
pub async fn audit_overhead(writes: usize, clients: usize) -> Result<(), BenchError> {
    use credit_risk::{
        domain::{
            Date, Enterprise, EnterpriseStatus, EntityType, IndustryCode, Penalty, PenaltyKind,
            Procedure, RegionCode, Uscc, ViolationDomain,
        },
        store::{op, Actor, Store, StoreOptions},
    };
    let mut results = Vec::new();
    for audit in [true, false, true, false] {
        let tmp = tempfile::tempdir()?;
        let store = Store::open(
            tmp.path(),
            StoreOptions {
                audit,
                ..StoreOptions::default()
            },
        )?;
        // Penalties spread over many enterprises (≈ 10 each), as a feed delivers them.
        let n_ent = (writes / 10).max(1);
        let mut ents = Vec::with_capacity(n_ent);
        let mut items = Vec::new();
        for i in 0..n_ent {
            let mut body = *b"MA000000";
            let mut x = i as u64;
            for c in body[2..].iter_mut().rev() {
                *c = credit_risk::domain::uscc::ALPHABET[(x % 31) as usize];
                x /= 31;
            }
            let u = Uscc::assemble(b"91310115", &body)?;
            ents.push(u);
            items.push((
                i as u64,
                credit_risk::store::ImportItem::Enterprise(Enterprise {
                    uscc: u,
                    name: "基准测试有限公司".into(),
                    entity_type: EntityType::Enterprise,
                    region: RegionCode::parse("r", "310115")?,
                    industry: IndustryCode::parse("", "F", "")?,
                    established_on: Date::parse("d", "2020-01-01")?,
                    status: EnterpriseStatus::Operating,
                    registered_capital_fen: 100_000_000,
                    supervision: vec![],
                    legal_rep_hash: None,
                    recorded_at_ms: 0,
                }),
            ));
            if items.len() == 4096 {
                store.write(op::Import(std::mem::take(&mut items))).await?;
            }
        }
        store.write(op::Import(items)).await?;
        let ents = std::sync::Arc::new(ents);
        let t = Instant::now();
        let per = writes / clients;
        let mut tasks = Vec::new();
        for w in 0..clients {
            let store = store.clone();
            let ents = ents.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..per {
                    let u = ents[(w * per + i) % ents.len()];
                    let p = Penalty {
                        decision_number: format!("沪市监罚〔2026〕{w}-{i}号"),
                        uscc: u,
                        decided_on: Date::parse("d", "2026-03-01").unwrap_or(Date::MIN),
                        authority: "上海市市场监督管理局".into(),
                        domain: ViolationDomain::Advertising,
                        procedure: Procedure::Ordinary,
                        kinds: vec![PenaltyKind::Fine],
                        fine_fen: 100_000,
                        confiscation_fen: 0,
                        heavier: false,
                        restriction_ends_on: None,
                        no_penalty: false,
                        publicity_ended_on: None,
                        recorded_at_ms: 0,
                        published_on: None,
                        lenience: None,
                        first_violation: false,
                    };
                    let actor = Actor {
                        principal: format!("feed-{w}"),
                        role: "feed".into(),
                        rpc: "RecordPenalty".into(),
                        regions: Vec::new(),
                    };
                    if store.write_as(actor, op::RecordPenalty(p)).await.is_err() {
                        return;
                    }
                }
            }));
        }
        for t in tasks {
            t.await?;
        }
        let secs = t.elapsed().as_secs_f64();
        let (events, broken) = store.verify_audit_chain()?;
        store.close(std::time::Duration::from_secs(10))?;
        let rate = (per * clients) as f64 / secs;
        println!(
            "{}",
            serde_json::json!({"record_penalty": {"audit": audit, "writes": per * clients, "clients": clients, "seconds": secs, "per_second": rate, "audit_events": events, "chain_intact": broken.is_none()}})
        );
        results.push((audit, rate));
    }
    let mean = |on: bool| {
        let v: Vec<f64> = results.iter().filter(|r| r.0 == on).map(|r| r.1).collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    println!(
        "{}",
        serde_json::json!({"audit_overhead": {"with_per_second": mean(true), "without_per_second": mean(false), "ratio": mean(true) / mean(false).max(1e-9)}})
    );
    Ok(())
}
