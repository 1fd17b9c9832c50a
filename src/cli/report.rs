//! Pictures for people (`credit-risk report`): charts of a scoring run — enterprises per
//! class in each district, the score histogram, annual-report filing rates and this
//! year's problem-found rate per class drawn — as SVG and PNG, and a one-page HTML
//! credit report of one enterprise (profile, class, factors as a bar chart, penalties,
//! listings, annual reports, inspections, repairs, class history).
//!
//! The charts are drawn with plotters; text uses the embedded DejaVu Sans (the `dejavu`
//! crate), so a machine without fonts renders the same PNG. Labels are ASCII: DejaVu has
//! no CJK glyphs, so districts appear by their English names.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    sync::Once,
};

use plotters::{coord::Shift, prelude::*};

use credit_risk::{
    client::{channel, TokenInterceptor},
    domain::{codes::SHANGHAI_DISTRICTS, model::GENERAL},
    proto::{
        self as pb, classification_service_client::ClassificationServiceClient,
        registry_service_client::RegistryServiceClient,
        spot_check_service_client::SpotCheckServiceClient,
        statistics_service_client::StatisticsServiceClient,
    },
};

use super::{runtime, CliError, CliResult};

/// Options of `credit-risk report`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: ReportCommand,
    /// Server address.
    #[arg(
        long,
        global = true,
        env = "CREDIT_RISK_SERVER",
        default_value = "127.0.0.1:50051"
    )]
    server: String,
    /// Print what was written as JSON.
    #[arg(long, global = true)]
    json: bool,
}

/// What `credit-risk report` draws.
#[derive(clap::Subcommand, Debug)]
enum ReportCommand {
    /// Enterprises per class and district, and the score histogram, of the current
    /// run: classes-by-district.{svg,png} and score-histogram.{svg,png} in OUT.
    Run {
        /// Output directory.
        #[arg(long, default_value = "report")]
        out: PathBuf,
        /// Width of a histogram bin, points.
        #[arg(long, default_value_t = 2.0)]
        bin_width: f64,
    },
    /// One enterprise's credit report as an HTML page (profile, class, factor chart,
    /// penalties, listings, reports, inspections, repairs, class history).
    Enterprise {
        /// The USCC.
        uscc: String,
        /// Output file [default: USCC.html].
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Runs `credit-risk report`.
pub fn run(a: Args) -> CliResult {
    let rt = runtime(0)?;
    match a.command {
        ReportCommand::Run { out, bin_width } => {
            let r = rt.block_on(run_report(&a.server, &out, bin_width))?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "run {} ({}, as of {}, {} enterprises):",
                    r.run_id, r.model_version, r.as_of, r.enterprises
                );
                for f in &r.files {
                    println!("  wrote {f}");
                }
            }
        }
        ReportCommand::Enterprise { uscc, out } => {
            let out = out.unwrap_or_else(|| PathBuf::from(format!("{uscc}.html")));
            rt.block_on(enterprise_report(&a.server, &uscc, &out))?;
            if a.json {
                println!("{}", serde_json::json!({ "uscc": uscc, "file": out }));
            } else {
                println!("wrote {}", out.display());
            }
        }
    }
    Ok(())
}

/// Class colours A, B, C, D: green, blue, orange, red.
pub const CLASS_COLOURS: [RGBColor; 4] = [
    RGBColor(46, 125, 50),
    RGBColor(21, 101, 192),
    RGBColor(239, 108, 0),
    RGBColor(198, 40, 40),
];
const CLASS_HEX: [&str; 4] = ["#2e7d32", "#1565c0", "#ef6c00", "#c62828"];
const LETTERS: [&str; 4] = ["A", "B", "C", "D"];
const FONT: &str = "sans-serif";

fn register_fonts() {
    static FONTS: Once = Once::new();
    FONTS.call_once(|| {
        // The bytes are a valid TrueType font shipped in the crate; registration only
        // fails on an invalid font.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
    });
}

/// Enterprises per class in one bar of the district chart.
#[derive(Clone, Debug, PartialEq)]
pub struct DistrictBar {
    pub label: String,
    pub classes: [u64; 4],
}

/// Groups per-region counts into Shanghai's 16 districts (by English name, in code
/// order) and one "other" bar for every other code.
pub fn district_bars(regions: &[(String, [u64; 4])]) -> Vec<DistrictBar> {
    let mut bars: Vec<DistrictBar> = SHANGHAI_DISTRICTS
        .iter()
        .map(|(_, _, en)| DistrictBar {
            label: (*en).to_string(),
            classes: [0; 4],
        })
        .collect();
    let mut other = [0u64; 4];
    for (code, counts) in regions {
        let slot = SHANGHAI_DISTRICTS.iter().position(|(c, _, _)| c == code);
        let target = match slot {
            Some(i) => &mut bars[i].classes,
            None => &mut other,
        };
        for (t, n) in target.iter_mut().zip(counts) {
            *t += n;
        }
    }
    if other.iter().any(|n| *n > 0) {
        bars.push(DistrictBar {
            label: "other".into(),
            classes: other,
        });
    }
    bars.retain(|b| b.classes.iter().any(|n| *n > 0));
    bars
}

/// One bin of the score histogram: `[from, to)` and the count per class.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoreBin {
    pub from: f64,
    pub to: f64,
    pub classes: [u64; 4],
}

/// Bins `(score, class index 0..=3)` pairs into bins of `width` points from 0.
pub fn score_bins(scores: impl IntoIterator<Item = (f64, usize)>, width: f64) -> Vec<ScoreBin> {
    let width = if width > 0.0 { width } else { 1.0 };
    let mut bins: Vec<ScoreBin> = Vec::new();
    for (score, class) in scores {
        let i = (score.max(0.0) / width).floor() as usize;
        while bins.len() <= i {
            let from = bins.len() as f64 * width;
            bins.push(ScoreBin {
                from,
                to: from + width,
                classes: [0; 4],
            });
        }
        if let Some(n) = bins[i].classes.get_mut(class) {
            *n += 1;
        }
    }
    bins
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn legend_box(colour: RGBColor) -> impl Fn((i32, i32)) -> Rectangle<(i32, i32)> {
    move |(x, y)| Rectangle::new([(x, y - 6), (x + 12, y + 6)], colour.filled())
}

/// Draws the stacked bar chart of classes per district.
pub fn draw_districts<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    bars: &[DistrictBar],
) -> Result<(), String> {
    register_fonts();
    root.fill(&WHITE).map_err(err)?;
    // plotters' integer range a..b is the closed [a, b]: n slots are 0..n-1, and a
    // degenerate 0..0 is avoided by drawing at least two slots.
    let n = bars.len().max(2);
    let top = bars
        .iter()
        .map(|b| b.classes.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let top = top + top / 10 + 1;
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d((0..n - 1).into_segmented(), 0u64..top)
        .map_err(err)?;
    let labels: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_label_style((FONT, 14))
        .y_label_style((FONT, 14))
        .y_desc("enterprises")
        .draw()
        .map_err(err)?;
    for (k, colour) in CLASS_COLOURS.iter().enumerate() {
        let rects = bars.iter().enumerate().map(|(i, b)| {
            let below: u64 = b.classes[..k].iter().sum();
            let mut r = Rectangle::new(
                [
                    (SegmentValue::Exact(i), below),
                    (SegmentValue::Exact(i + 1), below + b.classes[k]),
                ],
                colour.filled(),
            );
            r.set_margin(0, 0, 6, 6);
            r
        });
        chart
            .draw_series(rects)
            .map_err(err)?
            .label(format!("class {}", LETTERS[k]))
            .legend(legend_box(*colour));
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// Draws the score histogram (log count scale), each bin stacked by class.
pub fn draw_histogram<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    bins: &[ScoreBin],
) -> Result<(), String> {
    register_fonts();
    root.fill(&WHITE).map_err(err)?;
    let max_score = bins.last().map(|b| b.to).unwrap_or(1.0).max(1.0);
    let top = bins
        .iter()
        .map(|b| b.classes.iter().sum::<u64>())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..max_score, (0.8f64..top * 2.0).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc("score (points)")
        .y_desc("enterprises (log scale)")
        .x_label_style((FONT, 14))
        .y_label_style((FONT, 14))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(err)?;
    // On a log scale a stack is drawn as consecutive segments of the cumulative count.
    for (k, colour) in CLASS_COLOURS.iter().enumerate() {
        let rects = bins.iter().filter(|b| b.classes[k] > 0).map(|b| {
            let below: u64 = b.classes[..k].iter().sum();
            let lo = if below == 0 { 0.8 } else { below as f64 };
            let mut r = Rectangle::new(
                [(b.from, lo), (b.to, (below + b.classes[k]) as f64)],
                colour.filled(),
            );
            r.set_margin(0, 0, 1, 1);
            r
        });
        chart
            .draw_series(rects)
            .map_err(err)?
            .label(format!("class {}", LETTERS[k]))
            .legend(legend_box(*colour));
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// Draws the factors of a classification as horizontal bars (points per indicator).
pub fn draw_factors<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    factors: &[(String, f64)],
) -> Result<(), String> {
    register_fonts();
    root.fill(&WHITE).map_err(err)?;
    // plotters' integer range a..b is the closed [a, b]: n slots are 0..n-1, and a
    // degenerate 0..0 is avoided by drawing at least two slots.
    let n = factors.len().max(2);
    let lo = factors.iter().map(|f| f.1).fold(0.0, f64::min);
    let hi = factors.iter().map(|f| f.1).fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(root)
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(240)
        .build_cartesian_2d(lo * 1.1..hi * 1.1, (0..n - 1).into_segmented())
        .map_err(err)?;
    let labels: Vec<String> = factors.iter().map(|f| f.0.clone()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc("points")
        .label_style((FONT, 14))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(factors.iter().enumerate().map(|(i, (_, p))| {
            let colour = if *p >= 0.0 {
                CLASS_COLOURS[3]
            } else {
                CLASS_COLOURS[0]
            };
            let mut r = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(i)),
                    (*p, SegmentValue::Exact(i + 1)),
                ],
                colour.filled(),
            );
            r.set_margin(3, 3, 0, 0);
            r
        }))
        .map_err(err)?;
    root.present().map_err(err)
}

/// One bar of a percentage chart: its label, value (0 to 100) and colour.
#[derive(Clone, Debug, PartialEq)]
pub struct PercentBar {
    pub label: String,
    pub percent: f64,
    pub colour: RGBColor,
}

/// Draws vertical bars of percentages (filing rates, problem-found rates), each labelled
/// under its bar and with its value above.
pub fn draw_percentages<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    y_desc: &str,
    bars: &[PercentBar],
) -> Result<(), String> {
    register_fonts();
    root.fill(&WHITE).map_err(err)?;
    let n = bars.len().max(2);
    let top = bars
        .iter()
        .map(|b| b.percent)
        .fold(10.0, f64::max)
        .min(100.0)
        * 1.15;
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((0..n - 1).into_segmented(), 0f64..top)
        .map_err(err)?;
    let labels: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .y_desc(y_desc)
        .label_style((FONT, 13))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            let mut r = Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0.0),
                    (SegmentValue::Exact(i + 1), b.percent),
                ],
                b.colour.filled(),
            );
            r.set_margin(0, 0, 6, 6);
            r
        }))
        .map_err(err)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            Text::new(
                format!("{:.1}%", b.percent),
                (SegmentValue::CenterOf(i), b.percent + top * 0.02),
                (FONT, 13).into_font(),
            )
        }))
        .map_err(err)?;
    root.present().map_err(err)
}

/// The filing-rate bars of a filing answer: one per report year and entity type.
pub fn filing_bars(rows: &[pb::FilingRow]) -> Vec<PercentBar> {
    rows.iter()
        .map(|r| {
            let (short, colour) = match pb::EntityType::try_from(r.entity_type) {
                Ok(pb::EntityType::IndividualBusiness) => ("ind.", CLASS_COLOURS[1]),
                Ok(pb::EntityType::FarmerCooperative) => ("coop.", CLASS_COLOURS[2]),
                _ => ("ent.", CLASS_COLOURS[0]),
            };
            PercentBar {
                label: format!("{} {short}", r.report_year),
                percent: 100.0 * r.filing_rate,
                colour,
            }
        })
        .collect()
}

/// The problem-found-rate bars of a spot-check answer: one per class drawn in (and one
/// for results no recorded draw selected, when there are any).
pub fn problem_bars(rows: &[pb::SpotCheckRow]) -> Vec<PercentBar> {
    rows.iter()
        .filter(|r| r.inspected > 0)
        .map(|r| {
            let k = class_index(r.risk_class);
            PercentBar {
                label: match k {
                    Some(k) => format!("class {} ({})", LETTERS[k], r.inspected),
                    None => format!("not drawn ({})", r.inspected),
                },
                percent: 100.0 * r.problem_rate,
                colour: k.map_or(RGBColor(150, 150, 150), |k| CLASS_COLOURS[k]),
            }
        })
        .collect()
}

/// Renders a chart to an SVG string.
pub fn to_svg(
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<(), String>,
) -> Result<String, String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        draw(&root)?;
    }
    Ok(out)
}

/// Renders a chart to a PNG file.
pub fn to_png(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend, Shift>) -> Result<(), String>,
) -> Result<(), String> {
    let root = BitMapBackend::new(path, size).into_drawing_area();
    draw(&root)
}

/// A chart of `report run`, drawable on any backend.
enum Chart<'a> {
    Districts(&'a str, &'a [DistrictBar]),
    Histogram(&'a str, &'a [ScoreBin]),
    Percentages(&'a str, &'a str, &'a [PercentBar]),
}

impl Chart<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        match self {
            Chart::Districts(title, bars) => draw_districts(root, title, bars),
            Chart::Histogram(title, bins) => draw_histogram(root, title, bins),
            Chart::Percentages(title, y, bars) => draw_percentages(root, title, y, bars),
        }
    }
}

/// What `report run` wrote.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RunReport {
    pub run_id: u64,
    pub model_version: String,
    pub as_of: String,
    pub enterprises: u64,
    pub files: Vec<String>,
}

fn write(path: &Path, text: &str) -> Result<(), CliError> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()).into())
}

/// `report run`: the district chart (from the run's per-region counts) and the score
/// histogram (from the current run's candidate pool, every enterprise included) as SVG
/// and PNG in `out`.
pub async fn run_report(addr: &str, out: &Path, bin_width: f64) -> Result<RunReport, CliError> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let ch = channel(addr).await?;
    let mut cls =
        ClassificationServiceClient::with_interceptor(ch.clone(), TokenInterceptor::from_env());
    let mut spot =
        SpotCheckServiceClient::with_interceptor(ch.clone(), TokenInterceptor::from_env());
    let runs = cls
        .list_scoring_runs(pb::ListScoringRunsRequest {})
        .await?
        .into_inner()
        .runs;
    let current = runs
        .into_iter()
        .find(|r| r.current && r.model_family == GENERAL)
        .ok_or("no current scoring run: run `credit-risk score` first")?;
    // The list is a summary; the per-region counts come with the run itself.
    let run = cls
        .get_scoring_run(pb::GetScoringRunRequest {
            run_id: current.run_id,
        })
        .await?
        .into_inner();
    let regions: Vec<(String, [u64; 4])> = run
        .regions
        .iter()
        .map(|r| {
            let c = r.classes.unwrap_or_default();
            (r.region_code.clone(), [c.a, c.b, c.c, c.d])
        })
        .collect();
    let bars = district_bars(&regions);

    let all_classes = vec![
        pb::RiskClass::A as i32,
        pb::RiskClass::B as i32,
        pb::RiskClass::C as i32,
        pb::RiskClass::D as i32,
    ];
    let mut stream = spot
        .query_candidates(pb::QueryCandidatesRequest {
            filter: Some(pb::CandidateFilter {
                classes: all_classes,
                include_exempt: true,
                ..Default::default()
            }),
            as_of: String::new(),
        })
        .await?
        .into_inner();
    let mut scores = Vec::new();
    while let Some(batch) = stream.message().await? {
        for c in batch.candidates {
            let class = usize::try_from(c.risk_class - 1).unwrap_or(0).min(3);
            scores.push((c.score, class));
        }
    }
    let bins = score_bins(scores, bin_width);

    // The statistics: filing rates of the last report years, problem-found rates per
    // class drawn in this year's spot checks.
    let mut stats = StatisticsServiceClient::with_interceptor(ch, TokenInterceptor::from_env());
    let filing = stats
        .get_filing_statistics(pb::GetFilingStatisticsRequest::default())
        .await?
        .into_inner();
    let spot_checks = stats
        .get_spot_check_statistics(pb::GetSpotCheckStatisticsRequest::default())
        .await?
        .into_inner();
    let filing = filing_bars(&filing.rows);
    let problems = problem_bars(&spot_checks.rows);

    let what = format!(
        "run {} ({}, as of {})",
        run.run_id, run.model_version, run.as_of
    );
    let d_title = format!("Enterprises per class and district, {what}");
    let h_title = format!("Score histogram, {what}");
    let f_title = "Annual reports filed, per report year and entity type".to_string();
    let p_title = format!(
        "Spot checks that found problems, per class drawn ({} to {})",
        spot_checks.from_month, spot_checks.to_month
    );
    let mut files = Vec::new();
    for (stem, size, chart) in [
        (
            "classes-by-district",
            (1400, 640),
            Chart::Districts(&d_title, &bars),
        ),
        (
            "score-histogram",
            (1200, 600),
            Chart::Histogram(&h_title, &bins),
        ),
        (
            "filing-rates",
            (1200, 560),
            Chart::Percentages(&f_title, "filed (%)", &filing),
        ),
        (
            "problem-rates",
            (1000, 560),
            Chart::Percentages(&p_title, "found problems (%)", &problems),
        ),
    ] {
        let svg = out.join(format!("{stem}.svg"));
        write(&svg, &to_svg(size, |r| chart.draw(r))?)?;
        let png = out.join(format!("{stem}.png"));
        to_png(&png, size, |r| chart.draw(r)).map_err(|e| format!("{}: {e}", png.display()))?;
        files.push(svg.display().to_string());
        files.push(png.display().to_string());
    }
    Ok(RunReport {
        run_id: run.run_id,
        model_version: run.model_version,
        as_of: run.as_of,
        enterprises: run.enterprises,
        files,
    })
}

/// HTML-escapes text.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn class_index(c: i32) -> Option<usize> {
    usize::try_from(c - 1).ok().filter(|i| *i < 4)
}

fn enum_name<E: TryFrom<i32>>(v: i32, name: impl Fn(E) -> &'static str) -> String {
    E::try_from(v).map(&name).unwrap_or("?").to_string()
}

/// One row of the class history: (run id, as of, model, class index, score).
pub type HistoryRow = (u64, String, String, Option<usize>, f64);

fn table(out: &mut String, title: &str, head: &[&str], rows: Vec<Vec<String>>) {
    let _ = write!(out, "<h2>{}</h2>", esc(title));
    if rows.is_empty() {
        out.push_str("<p class=\"none\">none</p>");
        return;
    }
    out.push_str("<table><tr>");
    for h in head {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr>");
    for r in rows {
        out.push_str("<tr>");
        for c in r {
            let _ = write!(out, "<td>{}</td>", esc(&c));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

/// The HTML credit report of one enterprise.
pub fn enterprise_html(r: &pb::CreditReport, history: &[HistoryRow]) -> Result<String, String> {
    let e = r.enterprise.clone().unwrap_or_default();
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>{} {}</title>\
         <style>body{{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}}\
         table{{border-collapse:collapse;width:100%;margin-bottom:1em}}\
         th,td{{border:1px solid #ccc;padding:4px 8px;text-align:left;font-size:14px}}\
         th{{background:#f3f3f3}}.badge{{display:inline-block;color:#fff;font-size:28px;\
         padding:4px 16px;border-radius:6px;margin-right:12px}}.none{{color:#888}}</style></head><body>",
        esc(&e.name),
        esc(&e.uscc)
    );
    let _ = write!(
        h,
        "<h1>{}</h1><p>USCC {} · region {} · industry {} {} · established {} · status {} · \
         registered capital ¥{:.2} · report as of {}</p>",
        esc(&e.name),
        esc(&e.uscc),
        esc(&e.region_code),
        esc(&e.industry_section),
        esc(&e.industry_code),
        esc(&e.established_on),
        esc(&enum_name(e.status, |s: pb::EnterpriseStatus| s.as_str_name())),
        e.registered_capital_fen as f64 / 100.0,
        esc(&r.as_of)
    );
    match &r.classification {
        Some(c) => {
            let i = class_index(c.risk_class).unwrap_or(0);
            let _ = write!(
                h,
                "<h2>Credit-risk class</h2><p><span class=\"badge\" style=\"background:{}\">{}</span>\
                 score {:.2} · model {} · run {} · as of {}{}{}</p>",
                CLASS_HEX[i],
                LETTERS[i],
                c.score,
                esc(&c.model_version),
                c.run_id,
                esc(&c.as_of),
                if c.hard_rule.is_empty() {
                    String::new()
                } else {
                    format!(" · hard rule {}", esc(&c.hard_rule))
                },
                if c.rescored_cause.is_empty() {
                    String::new()
                } else {
                    format!(" · re-scored {} after {}", esc(&super::instant_utc(c.rescored_at.as_ref())), esc(&c.rescored_cause))
                }
            );
            // The specialised ratings beside the general class (the food-safety rating…).
            for sp in &c.specialised {
                let j = class_index(sp.risk_class).unwrap_or(0);
                let _ = write!(
                    h,
                    "<p>{} rating: <span class=\"badge\" style=\"background:{}\">{}</span> \
                     score {:.2} · model {} · run {} · as of {}</p>",
                    esc(&sp.family),
                    CLASS_HEX[j],
                    LETTERS[j],
                    sp.score,
                    esc(&sp.model_version),
                    sp.run_id,
                    esc(&sp.as_of)
                );
            }
            let factors: Vec<(String, f64)> = c
                .factors
                .iter()
                .map(|f| (f.code.clone(), f.points))
                .collect();
            if !factors.is_empty() {
                let height = 60 + 28 * factors.len() as u32;
                h.push_str(&to_svg((900, height), |root| draw_factors(root, &factors))?);
            }
            table(
                &mut h,
                "Factors",
                &["indicator", "points", "说明", "explanation", "record"],
                c.factors
                    .iter()
                    .map(|f| {
                        vec![
                            f.code.clone(),
                            format!("{:+.2}", f.points),
                            f.description_zh.clone(),
                            f.description_en.clone(),
                            f.record.clone(),
                        ]
                    })
                    .collect(),
            );
        }
        None => h.push_str("<h2>Credit-risk class</h2><p class=\"none\">not classified yet</p>"),
    }
    table(
        &mut h,
        "Penalties",
        &[
            "decision",
            "decided on",
            "authority",
            "domain",
            "fine (¥)",
            "in publicity until",
        ],
        r.penalties
            .iter()
            .map(|p| {
                let publicity = p.publicity.clone().unwrap_or_default();
                vec![
                    p.decision_number.clone(),
                    p.decided_on.clone(),
                    p.authority.clone(),
                    enum_name(p.domain, |d: pb::ViolationDomain| d.as_str_name()),
                    format!("{:.2}", p.fine_fen as f64 / 100.0),
                    if publicity.published {
                        publicity.ends_on
                    } else {
                        "not published".into()
                    },
                ]
            })
            .collect(),
    );
    table(
        &mut h,
        "Listings",
        &["list", "reason", "listed on", "removed on", "open"],
        r.listings
            .iter()
            .map(|l| {
                vec![
                    enum_name(l.kind, |k: pb::ListKind| k.as_str_name()),
                    enum_name(l.reason, |k: pb::ListingReason| k.as_str_name()),
                    l.listed_on.clone(),
                    l.removed_on.clone(),
                    if l.open { "yes" } else { "no" }.into(),
                ]
            })
            .collect(),
    );
    table(
        &mut h,
        "Reward and punishment measures",
        &[
            "measure",
            "kind",
            "binds",
            "because",
            "from",
            "until",
            "basis",
            "applied by",
        ],
        r.measures
            .iter()
            .chain(&r.legal_representative_measures)
            .map(|a| {
                let m = a.measure.clone().unwrap_or_default();
                vec![
                    format!("{} {}", m.code, m.name),
                    enum_name(m.kind, |k: pb::MeasureKind| k.as_str_name()),
                    enum_name(m.subject, |k: pb::MeasureSubject| k.as_str_name()),
                    a.because.clone(),
                    a.since.clone(),
                    a.until.clone(),
                    m.legal_basis,
                    m.applied_by,
                ]
            })
            .collect(),
    );
    table(
        &mut h,
        "Credit commitments",
        &[
            "commitment",
            "kind",
            "made on",
            "due",
            "verified",
            "false commitment",
        ],
        r.commitments
            .iter()
            .map(|c| {
                vec![
                    c.commitment_id.clone(),
                    enum_name(c.kind, |k: pb::CommitmentKind| k.as_str_name()),
                    c.made_on.clone(),
                    c.due_on.clone(),
                    c.verification
                        .as_ref()
                        .map(|v| {
                            format!(
                                "{} on {}",
                                enum_name(v.verdict, |k: pb::CommitmentVerdict| k.as_str_name()),
                                v.verified_on
                            )
                        })
                        .unwrap_or_else(|| "not yet".into()),
                    if c.false_commitment { "yes" } else { "no" }.into(),
                ]
            })
            .collect(),
    );
    table(
        &mut h,
        "Annual reports",
        &["year", "deadline", "filed on", "compliance"],
        r.annual_reports
            .iter()
            .map(|a| {
                vec![
                    a.year.to_string(),
                    a.deadline.clone(),
                    a.filed_on.clone(),
                    a.compliance.clone(),
                ]
            })
            .collect(),
    );
    table(
        &mut h,
        "Inspections",
        &["task", "inspected on", "problems found"],
        r.inspections
            .iter()
            .map(|i| {
                vec![
                    i.task_id.clone(),
                    i.inspected_on.clone(),
                    if i.problems_found { "yes" } else { "no" }.into(),
                ]
            })
            .collect(),
    );
    table(
        &mut h,
        "Quality samplings (质量抽检)",
        &[
            "report",
            "sampled on",
            "category",
            "product",
            "batch",
            "result",
        ],
        r.samplings
            .iter()
            .map(|x| {
                vec![
                    x.sample_id.clone(),
                    x.sampled_on.clone(),
                    enum_name(x.category, |c: pb::SamplingCategory| c.as_str_name()),
                    x.product.clone(),
                    x.batch.clone(),
                    if x.passed { "passed" } else { "FAILED" }.into(),
                ]
            })
            .collect(),
    );
    table(
        &mut h,
        "Complaints and reports (投诉举报)",
        &["month", "complaints", "reports", "found true", "source"],
        r.complaints
            .iter()
            .map(|x| {
                vec![
                    x.month.clone(),
                    x.complaints.to_string(),
                    x.reports.to_string(),
                    x.verified.to_string(),
                    x.source.clone(),
                ]
            })
            .collect(),
    );
    table(
        &mut h,
        "Credit repair",
        &["case", "target", "state", "submitted on", "due"],
        r.repairs
            .iter()
            .map(|c| {
                vec![
                    c.case_id.to_string(),
                    c.target_id.clone(),
                    enum_name(c.state, |s: pb::RepairState| s.as_str_name()),
                    c.submitted_on.clone(),
                    c.due.clone(),
                ]
            })
            .collect(),
    );
    table(
        &mut h,
        "Class history",
        &["run", "as of", "model", "class", "score"],
        history
            .iter()
            .map(|(run, as_of, model, class, score)| {
                vec![
                    run.to_string(),
                    as_of.clone(),
                    model.clone(),
                    class.map(|i| LETTERS[i]).unwrap_or("-").to_string(),
                    format!("{score:.2}"),
                ]
            })
            .collect(),
    );
    h.push_str("</body></html>\n");
    Ok(h)
}

/// `report enterprise`: fetches the credit report and the class in every retained
/// complete run, and writes the HTML page to `out`.
pub async fn enterprise_report(addr: &str, uscc: &str, out: &Path) -> Result<(), CliError> {
    let ch = channel(addr).await?;
    let mut reg = RegistryServiceClient::with_interceptor(ch.clone(), TokenInterceptor::from_env());
    let mut cls = ClassificationServiceClient::with_interceptor(ch, TokenInterceptor::from_env());
    let report = reg
        .get_credit_report(pb::GetCreditReportRequest {
            uscc: uscc.to_string(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let runs = cls
        .list_scoring_runs(pb::ListScoringRunsRequest {})
        .await?
        .into_inner()
        .runs;
    let mut history = Vec::new();
    for run in runs.iter().filter(|r| r.state == "COMPLETE") {
        match cls
            .get_classification(pb::GetClassificationRequest {
                uscc: uscc.to_string(),
                run_id: run.run_id,
                ..Default::default()
            })
            .await
        {
            Ok(c) => {
                let c = c.into_inner();
                history.push((
                    run.run_id,
                    run.as_of.clone(),
                    run.model_version.clone(),
                    class_index(c.risk_class),
                    c.score,
                ));
            }
            Err(s) if s.code() == tonic::Code::NotFound => {}
            Err(s) => return Err(s.into()),
        }
    }
    let html = enterprise_html(&report, &history)?;
    write(out, &html)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn districts_group_by_code_with_other_last() {
        let bars = district_bars(&[
            ("310115".into(), [5, 1, 0, 0]),
            ("310101".into(), [1, 0, 0, 2]),
            ("110101".into(), [0, 1, 0, 0]),
        ]);
        let labels: Vec<&str> = bars.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(labels, ["Huangpu", "Pudong", "other"]);
        assert_eq!(bars[1].classes, [5, 1, 0, 0]);
    }

    #[test]
    fn scores_fall_in_their_bins() {
        let bins = score_bins([(0.0, 0), (1.9, 0), (2.0, 1), (31.0, 3)], 2.0);
        assert_eq!(bins.len(), 16);
        assert_eq!(bins[0].classes, [2, 0, 0, 0]);
        assert_eq!(bins[1].classes, [0, 1, 0, 0]);
        assert_eq!(bins[15].classes, [0, 0, 0, 1]);
        assert_eq!((bins[15].from, bins[15].to), (30.0, 32.0));
    }

    #[test]
    fn charts_render_to_svg_and_png_with_the_embedded_font() {
        let bars = district_bars(&[
            ("310115".into(), [50, 20, 5, 1]),
            ("310104".into(), [30, 9, 2, 0]),
        ]);
        let svg = to_svg((800, 400), |r| draw_districts(r, "Classes", &bars)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("Pudong") && svg.contains("class D"));
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("h.png");
        let bins = score_bins([(0.0, 0), (12.0, 1), (40.0, 3)], 2.0);
        to_png(&png, (600, 300), |r| draw_histogram(r, "Scores", &bins)).unwrap();
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        let factors = vec![
            ("PENALTY_FINE".to_string(), 6.0),
            ("BONUS".to_string(), -2.0),
        ];
        let svg = to_svg((600, 200), |r| draw_factors(r, &factors)).unwrap();
        assert!(svg.contains("PENALTY_FINE"));
        let rows = [
            pb::SpotCheckRow {
                risk_class: pb::RiskClass::D as i32,
                inspected: 8,
                problems_found: 2,
                problem_rate: 0.25,
                ..Default::default()
            },
            pb::SpotCheckRow {
                inspected: 0,
                ..Default::default()
            },
        ];
        let bars = problem_bars(&rows);
        assert_eq!(bars.len(), 1, "a class without results has no bar");
        assert_eq!(
            (bars[0].label.as_str(), bars[0].percent),
            ("class D (8)", 25.0)
        );
        let svg = to_svg((600, 300), |r| draw_percentages(r, "Problems", "%", &bars)).unwrap();
        assert!(svg.contains("class D (8)") && svg.contains("25.0%"));
    }

    #[test]
    fn html_escapes_what_it_shows() {
        let r = pb::CreditReport {
            enterprise: Some(pb::Enterprise {
                name: "<script>x</script> & Co".into(),
                uscc: "91310115MA1K3BTP2B".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let html = enterprise_html(&r, &[]).unwrap();
        assert!(html.contains("&lt;script&gt;x&lt;/script&gt; &amp; Co"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("not classified yet"));
    }
}
