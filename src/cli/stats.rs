//! `credit-risk stats`: the StatisticsService from the command line — annual-report
//! filing, spot checks, and whether the model's classes predict what inspectors find.

use credit_risk::{
    client::{channel, TokenInterceptor},
    proto::{self as pb, statistics_service_client::StatisticsServiceClient},
};
use serde_json::json;

use super::{class_letter, runtime, CliResult};

/// Options of `credit-risk stats`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    what: What,
    /// Server address.
    #[arg(
        long,
        env = "CREDIT_RISK_SERVER",
        default_value = "127.0.0.1:50051",
        global = true
    )]
    server: String,
    /// JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(clap::Subcommand, Debug)]
enum What {
    /// Annual-report filing rate per report year and entity type.
    ///
    /// Example: credit-risk stats filing --from-year 2022 --by-region
    Filing {
        /// First report year [default: three before --to-year].
        #[arg(long, default_value_t = 0)]
        from_year: u32,
        /// Last report year [default: last year].
        #[arg(long, default_value_t = 0)]
        to_year: u32,
        /// Only regions whose code starts with this (e.g. 310115).
        #[arg(long, default_value = "")]
        region: String,
        /// A row per region.
        #[arg(long)]
        by_region: bool,
    },
    /// Spot checks per class: drawn, inspected, problems found.
    ///
    /// Example: credit-risk stats spot --from 2026-01 --to 2026-06 --by-month
    Spot {
        /// First month, YYYY-MM [default: January of --to].
        #[arg(long, default_value = "")]
        from: String,
        /// Last month, YYYY-MM [default: this month].
        #[arg(long, default_value = "")]
        to: String,
        /// Only regions whose code starts with this.
        #[arg(long, default_value = "")]
        region: String,
        /// A row per region.
        #[arg(long)]
        by_region: bool,
        /// A row per month.
        #[arg(long)]
        by_month: bool,
    },
    /// Credit-repair cases and objections per month: outcomes, lateness, days to decide.
    ///
    /// Example: credit-risk stats repair --from 2026-01 --by-month
    Repair {
        /// First month, YYYY-MM [default: January of --to].
        #[arg(long, default_value = "")]
        from: String,
        /// Last month, YYYY-MM [default: this month].
        #[arg(long, default_value = "")]
        to: String,
        /// Only regions whose code starts with this.
        #[arg(long, default_value = "")]
        region: String,
        /// A row per month.
        #[arg(long)]
        by_month: bool,
    },
    /// Problem-found rate and lift per class, and the AUC, of a run against the spot
    /// checks after it (optionally beside a second run, e.g. a dry run).
    ///
    /// Example: credit-risk stats model --compare 7
    Model {
        /// The run [default: the current run].
        #[arg(long, default_value_t = 0)]
        run: u64,
        /// A second run evaluated over the same results.
        #[arg(long, default_value_t = 0)]
        compare: u64,
        /// Last inspection date counted, YYYY-MM-DD [default: today].
        #[arg(long, default_value = "")]
        to: String,
        /// Only regions whose code starts with this.
        #[arg(long, default_value = "")]
        region: String,
    },
}

/// Runs `credit-risk stats`.
pub fn run(a: Args) -> CliResult {
    runtime(0)?.block_on(async move {
        let mut c = StatisticsServiceClient::with_interceptor(
            channel(&a.server).await?,
            TokenInterceptor::from_env(),
        );
        match a.what {
            What::Filing {
                from_year,
                to_year,
                region,
                by_region,
            } => {
                let r = c
                    .get_filing_statistics(pb::GetFilingStatisticsRequest {
                        from_year,
                        to_year,
                        region_prefix: region,
                        by_region,
                    })
                    .await?
                    .into_inner();
                print_filing(&r, a.json);
            }
            What::Spot {
                from,
                to,
                region,
                by_region,
                by_month,
            } => {
                let r = c
                    .get_spot_check_statistics(pb::GetSpotCheckStatisticsRequest {
                        from_month: from,
                        to_month: to,
                        region_prefix: region,
                        by_region,
                        by_month,
                    })
                    .await?
                    .into_inner();
                print_spot(&r, a.json);
            }
            What::Repair {
                from,
                to,
                region,
                by_month,
            } => {
                let r = c
                    .get_repair_statistics(pb::GetRepairStatisticsRequest {
                        from_month: from,
                        to_month: to,
                        region_prefix: region,
                        by_month,
                    })
                    .await?
                    .into_inner();
                print_repair(&r, a.json);
            }
            What::Model {
                run,
                compare,
                to,
                region,
            } => {
                let r = c
                    .get_model_performance(pb::GetModelPerformanceRequest {
                        run_id: run,
                        compare_run_id: compare,
                        inspected_to: to,
                        region_prefix: region,
                    })
                    .await?
                    .into_inner();
                print_model(&r, a.json);
            }
        }
        Ok(())
    })
}

fn entity(t: i32) -> &'static str {
    match pb::EntityType::try_from(t) {
        Ok(pb::EntityType::Enterprise) => "enterprise",
        Ok(pb::EntityType::IndividualBusiness) => "individual",
        Ok(pb::EntityType::FarmerCooperative) => "cooperative",
        _ => "?",
    }
}

fn or_all(s: &str) -> &str {
    if s.is_empty() {
        "all"
    } else {
        s
    }
}

fn print_filing(r: &pb::FilingStatistics, as_json: bool) {
    if as_json {
        let rows: Vec<_> = r
            .rows
            .iter()
            .map(|x| {
                json!({"report_year": x.report_year, "region_code": x.region_code,
                    "entity_type": entity(x.entity_type), "obliged": x.obliged, "filed": x.filed,
                    "filed_on_time": x.filed_on_time, "filing_rate": x.filing_rate,
                    "on_time_rate": x.on_time_rate, "deadline": x.deadline,
                    "deadline_passed": x.deadline_passed})
            })
            .collect();
        println!("{}", json!({"as_of": r.as_of, "rows": rows}));
        return;
    }
    println!("Annual-report filing as of {}", r.as_of);
    println!(
        "{:<6} {:<8} {:<12} {:>10} {:>10} {:>8} {:>8}",
        "year", "region", "type", "obliged", "filed", "rate", "on time"
    );
    for x in &r.rows {
        println!(
            "{:<6} {:<8} {:<12} {:>10} {:>10} {:>7.1}% {:>7.1}%{}",
            x.report_year,
            or_all(&x.region_code),
            entity(x.entity_type),
            x.obliged,
            x.filed,
            100.0 * x.filing_rate,
            100.0 * x.on_time_rate,
            if x.deadline_passed {
                ""
            } else {
                "  (window open)"
            }
        );
    }
}

fn print_spot(r: &pb::SpotCheckStatistics, as_json: bool) {
    if as_json {
        let rows: Vec<_> = r
            .rows
            .iter()
            .map(|x| {
                json!({"month": x.month, "region_code": x.region_code,
                    "risk_class": class_or_none(x.risk_class), "drawn": x.drawn,
                    "inspected": x.inspected, "problems_found": x.problems_found,
                    "problem_rate": x.problem_rate})
            })
            .collect();
        let plans: Vec<_> = r
            .plans
            .iter()
            .map(|p| json!({"month": p.month, "plans": p.plans}))
            .collect();
        let matches: Vec<_> = r
            .matches
            .iter()
            .map(|m| json!({"month": m.month, "batch_match": m.batch_match, "match_stream": m.match_stream}))
            .collect();
        println!(
            "{}",
            json!({"from_month": r.from_month, "to_month": r.to_month, "drawn": r.drawn,
                "inspected": r.inspected, "problems_found": r.problems_found,
                "rows": rows, "plans": plans, "matches": matches})
        );
        return;
    }
    println!(
        "Spot checks {} to {}: {} plans drawn, {} enterprises drawn, {} results, {} found problems",
        r.from_month,
        r.to_month,
        r.plans.iter().map(|p| p.plans).sum::<u64>(),
        r.drawn,
        r.inspected,
        r.problems_found
    );
    let matched: u64 = r
        .matches
        .iter()
        .map(|m| m.batch_match + m.match_stream)
        .sum();
    println!("Classes matched (BatchMatch + MatchClassifications): {matched} USCCs");
    println!(
        "{:<8} {:<8} {:<6} {:>9} {:>10} {:>9} {:>8}",
        "month", "region", "class", "drawn", "inspected", "problems", "rate"
    );
    for x in &r.rows {
        println!(
            "{:<8} {:<8} {:<6} {:>9} {:>10} {:>9} {:>7.1}%",
            or_all(&x.month),
            or_all(&x.region_code),
            class_or_none(x.risk_class),
            x.drawn,
            x.inspected,
            x.problems_found,
            100.0 * x.problem_rate
        );
    }
}

fn print_repair(r: &pb::RepairStatistics, as_json: bool) {
    if as_json {
        let repairs: Vec<_> = r
            .repairs
            .iter()
            .map(|x| {
                json!({"month": x.month, "submitted": x.submitted, "open": x.open,
                    "not_accepted": x.not_accepted, "approved": x.approved, "denied": x.denied,
                    "revoked": x.revoked, "decided_late": x.decided_late,
                    "mean_days_to_decision": x.mean_days_to_decision,
                    "max_days_to_decision": x.max_days_to_decision})
            })
            .collect();
        let objections: Vec<_> = r
            .objections
            .iter()
            .map(|x| {
                json!({"month": x.month, "filed": x.filed, "open": x.open, "upheld": x.upheld,
                    "corrected": x.corrected, "resolved_late": x.resolved_late,
                    "mean_days_to_resolution": x.mean_days_to_resolution,
                    "max_days_to_resolution": x.max_days_to_resolution})
            })
            .collect();
        println!(
            "{}",
            json!({"from_month": r.from_month, "to_month": r.to_month,
                "repairs": repairs, "objections": objections})
        );
        return;
    }
    println!("Credit repair {} to {}", r.from_month, r.to_month);
    println!(
        "{:<8} {:>9} {:>6} {:>8} {:>8} {:>7} {:>8} {:>6} {:>9} {:>5}",
        "month",
        "submitted",
        "open",
        "refused",
        "approved",
        "denied",
        "revoked",
        "late",
        "mean days",
        "max"
    );
    for x in &r.repairs {
        println!(
            "{:<8} {:>9} {:>6} {:>8} {:>8} {:>7} {:>8} {:>6} {:>9.1} {:>5}",
            or_all(&x.month),
            x.submitted,
            x.open,
            x.not_accepted,
            x.approved,
            x.denied,
            x.revoked,
            x.decided_late,
            x.mean_days_to_decision,
            x.max_days_to_decision
        );
    }
    println!("\nObjections {} to {}", r.from_month, r.to_month);
    println!(
        "{:<8} {:>6} {:>6} {:>7} {:>9} {:>6} {:>9} {:>5}",
        "month", "filed", "open", "upheld", "corrected", "late", "mean days", "max"
    );
    for x in &r.objections {
        println!(
            "{:<8} {:>6} {:>6} {:>7} {:>9} {:>6} {:>9.1} {:>5}",
            or_all(&x.month),
            x.filed,
            x.open,
            x.upheld,
            x.corrected,
            x.resolved_late,
            x.mean_days_to_resolution,
            x.max_days_to_resolution
        );
    }
}

/// The class drawn in, or "none" for results no recorded draw selected.
fn class_or_none(c: i32) -> &'static str {
    if c == 0 {
        "none"
    } else {
        class_letter(c)
    }
}

fn performance_json(p: &pb::ModelPerformance) -> serde_json::Value {
    let classes: Vec<_> = p
        .classes
        .iter()
        .map(|c| {
            json!({"risk_class": class_letter(c.risk_class), "inspected": c.inspected,
                "problems_found": c.problems_found, "problem_rate": c.problem_rate, "lift": c.lift})
        })
        .collect();
    json!({"run_id": p.run_id, "model_version": p.model_version, "as_of": p.as_of,
        "inspected": p.inspected, "problems_found": p.problems_found,
        "problem_rate": p.problem_rate, "auc": p.auc_defined.then_some(p.auc),
        "not_in_run": p.not_in_run, "classes": classes})
}

fn print_model(r: &pb::ModelPerformanceResponse, as_json: bool) {
    let runs: Vec<&pb::ModelPerformance> = r.run.iter().chain(r.compare.iter()).collect();
    if as_json {
        println!(
            "{}",
            json!({"inspected_from": r.inspected_from, "inspected_to": r.inspected_to,
                "run": r.run.as_ref().map(performance_json),
                "compare": r.compare.as_ref().map(performance_json)})
        );
        return;
    }
    if r.inspected_from > r.inspected_to {
        println!(
            "No spot-check results yet: a run counts those inspected after its as-of date, from {} (evaluate an older run, e.g. a dry run: credit-risk score --as-of <a year ago> --dry-run)",
            r.inspected_from
        );
        return;
    }
    println!(
        "Spot-check results inspected {} to {}",
        r.inspected_from, r.inspected_to
    );
    for p in runs {
        println!(
            "\nrun {} (model {}, as of {}): {} results, {} found problems ({:.1}%), AUC {}{}",
            p.run_id,
            p.model_version,
            p.as_of,
            p.inspected,
            p.problems_found,
            100.0 * p.problem_rate,
            if p.auc_defined {
                format!("{:.3}", p.auc)
            } else {
                "undefined (needs both outcomes)".into()
            },
            if p.not_in_run > 0 {
                format!(
                    "; {} results of enterprises the run did not score",
                    p.not_in_run
                )
            } else {
                String::new()
            }
        );
        println!(
            "  {:<6} {:>10} {:>9} {:>8} {:>6}",
            "class", "inspected", "problems", "rate", "lift"
        );
        for c in &p.classes {
            println!(
                "  {:<6} {:>10} {:>9} {:>7.1}% {:>6.2}",
                class_letter(c.risk_class),
                c.inspected,
                c.problems_found,
                100.0 * c.problem_rate,
                c.lift
            );
        }
    }
}
