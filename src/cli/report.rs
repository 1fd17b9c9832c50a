//! Pictures for people (`credit-risk report`): charts of a scoring run — enterprises per
//! class in each district, the score histogram with the model's cut points, annual-report
//! filing rates and this year's problem-found rate per class drawn — as SVG and PNG, and
//! a one-page HTML credit report of one enterprise (profile, class, factors as a bar
//! chart, penalties, listings, objections, annual reports, inspections, repairs, class
//! history). Chinese by default, English with `--lang en` (words in `report_text`).
//!
//! The charts are drawn with plotters; text uses the embedded Noto Sans CJK SC subset
//! (`assets/fonts`, SIL OFL 1.1), so a machine without Chinese fonts renders the same PNG.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    sync::Once,
};

use plotters::{
    coord::Shift,
    prelude::*,
    style::text_anchor::{HPos, Pos, VPos},
};

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

use super::{
    report_text::{class_label, district, grouped, instant, label, money, Lang, LETTERS},
    runtime, CliError, CliResult,
};

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
    /// Language of the charts and the page.
    #[arg(long, global = true, value_enum, default_value_t = Lang::Zh)]
    lang: Lang,
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
            let r = rt.block_on(run_report(&a.server, &out, bin_width, a.lang))?;
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
            rt.block_on(enterprise_report(&a.server, &uscc, &out, a.lang))?;
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
const FONT: &str = "sans-serif";

/// Noto Sans CJK SC Regular, subset to GB2312 (assets/fonts/README.md; SIL OFL 1.1).
static CJK_FONT: &[u8] = include_bytes!("../../assets/fonts/NotoSansCJKsc-Regular-gb2312.otf");

fn register_fonts() {
    static FONTS: Once = Once::new();
    FONTS.call_once(|| {
        // The bytes are a valid OpenType font shipped in the crate (a unit test draws
        // with it); registration only fails on an invalid font.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, CJK_FONT);
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, CJK_FONT);
    });
}

/// Enterprises per class in one bar of the district chart.
#[derive(Clone, Debug, PartialEq)]
pub struct DistrictBar {
    pub label: String,
    pub classes: [u64; 4],
}

/// Groups per-region counts into Shanghai's 16 districts (by name, in code order) and
/// one "other" bar for every other code.
pub fn district_bars(lang: Lang, regions: &[(String, [u64; 4])]) -> Vec<DistrictBar> {
    let mut bars: Vec<DistrictBar> = SHANGHAI_DISTRICTS
        .iter()
        .map(|(code, _, _)| DistrictBar {
            label: district(lang, code),
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
            label: lang.pick("其他", "other").into(),
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

/// Draws the stacked bar chart of classes per district, each bar's C+D share above it.
pub fn draw_districts<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    lang: Lang,
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
    let top = top + top / 8 + 1;
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(90)
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
        .y_label_formatter(&|v| grouped(*v))
        .x_label_style((FONT, 14))
        .y_label_style((FONT, 14))
        .y_desc(lang.pick("企业数（户）", "enterprises"))
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
            .label(class_label(lang, k))
            .legend(legend_box(*colour));
    }
    // The share of the classes that are checked most (C and D) of each district.
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            let total: u64 = b.classes.iter().sum();
            let share = 100.0 * (b.classes[2] + b.classes[3]) as f64 / total.max(1) as f64;
            Text::new(
                format!("C+D {share:.1}%"),
                (SegmentValue::CenterOf(i), total + top / 60),
                TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom)),
            )
        }))
        .map_err(err)?;
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

/// Draws the score histogram on a linear count axis, each bin stacked by class, with
/// the model's cut points (`cuts`: the lowest score of B, C and D) as labelled lines and
/// each class's share of the run in the legend.
pub fn draw_histogram<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    lang: Lang,
    title: &str,
    bins: &[ScoreBin],
    cuts: &[f64; 3],
) -> Result<(), String> {
    register_fonts();
    root.fill(&WHITE).map_err(err)?;
    let max_score = bins
        .last()
        .map(|b| b.to)
        .unwrap_or(1.0)
        .max(cuts[2] * 1.1)
        .max(1.0);
    let top = bins
        .iter()
        .map(|b| b.classes.iter().sum::<u64>())
        .max()
        .unwrap_or(1)
        .max(1);
    let top = top + top / 8 + 1;
    let mut totals = [0u64; 4];
    for b in bins {
        for (t, n) in totals.iter_mut().zip(b.classes) {
            *t += n;
        }
    }
    let all = totals.iter().sum::<u64>().max(1) as f64;
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(90)
        .build_cartesian_2d(0f64..max_score, 0u64..top)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc(lang.pick(
            "评分（分，越高风险越高）",
            "score (points; higher is riskier)",
        ))
        .y_desc(lang.pick("企业数（户）", "enterprises"))
        .x_label_style((FONT, 14))
        .y_label_style((FONT, 14))
        .y_label_formatter(&|v| grouped(*v))
        .draw()
        .map_err(err)?;
    for (k, colour) in CLASS_COLOURS.iter().enumerate() {
        let rects = bins.iter().filter(|b| b.classes[k] > 0).map(|b| {
            let below: u64 = b.classes[..k].iter().sum();
            let mut r = Rectangle::new(
                [(b.from, below), (b.to, below + b.classes[k])],
                colour.filled(),
            );
            r.set_margin(0, 0, 1, 1);
            r
        });
        chart
            .draw_series(rects)
            .map_err(err)?
            .label(format!(
                "{} {:.1}%",
                class_label(lang, k),
                100.0 * totals[k] as f64 / all
            ))
            .legend(legend_box(*colour));
    }
    for (i, cut) in cuts.iter().enumerate() {
        chart
            .draw_series(std::iter::once(PathElement::new(
                [(*cut, 0), (*cut, top)],
                ShapeStyle::from(&BLACK).stroke_width(1),
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!("{} ≥ {cut}", LETTERS[i + 1]),
                (*cut + max_score / 150.0, top - top / 30),
                (FONT, 13).into_font(),
            )))
            .map_err(err)?;
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

/// Draws the factors of a classification as horizontal bars (points per record), the
/// first factor at the top, as the factor table lists them.
pub fn draw_factors<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    lang: Lang,
    factors: &[(String, f64)],
) -> Result<(), String> {
    register_fonts();
    root.fill(&WHITE).map_err(err)?;
    // plotters' integer range a..b is the closed [a, b]: n slots are 0..n-1, and a
    // degenerate 0..0 is avoided by drawing at least two slots. Slot 0 is at the
    // bottom, so factor i is drawn in slot n-1-i.
    let n = factors.len().max(2);
    let slot = |i: usize| n - 1 - i;
    let lo = factors.iter().map(|f| f.1).fold(0.0, f64::min);
    let hi = factors.iter().map(|f| f.1).fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(root)
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(330)
        .build_cartesian_2d(lo * 1.1..hi * 1.1, (0..n - 1).into_segmented())
        .map_err(err)?;
    let labels: Vec<String> = factors.iter().map(|f| f.0.clone()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(s) if *s < n => {
                labels.get(n - 1 - *s).cloned().unwrap_or_default()
            }
            _ => String::new(),
        })
        .x_desc(lang.pick("分值", "points"))
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
                    (0.0, SegmentValue::Exact(slot(i))),
                    (*p, SegmentValue::Exact(slot(i) + 1)),
                ],
                colour.filled(),
            );
            r.set_margin(3, 3, 0, 0);
            r
        }))
        .map_err(err)?;
    root.present().map_err(err)
}

/// One bar of a percentage chart: its label, value (0 to 100; NaN: no data, drawn as an
/// empty slot marked "—") and colour.
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
        .filter(|p| !p.is_nan())
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
        .draw_series(
            bars.iter()
                .enumerate()
                .filter(|(_, b)| !b.percent.is_nan())
                .map(|(i, b)| {
                    let mut r = Rectangle::new(
                        [
                            (SegmentValue::Exact(i), 0.0),
                            (SegmentValue::Exact(i + 1), b.percent),
                        ],
                        b.colour.filled(),
                    );
                    r.set_margin(0, 0, 6, 6);
                    r
                }),
        )
        .map_err(err)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            let (text, at) = if b.percent.is_nan() {
                ("—".to_string(), 0.0)
            } else {
                (format!("{:.1}%", b.percent), b.percent)
            };
            Text::new(
                text,
                (SegmentValue::CenterOf(i), at + top * 0.02),
                (FONT, 13).into_font(),
            )
        }))
        .map_err(err)?;
    root.present().map_err(err)
}

/// The filing-rate bars of a filing answer: one per report year and entity type.
pub fn filing_bars(lang: Lang, rows: &[pb::FilingRow]) -> Vec<PercentBar> {
    rows.iter()
        .map(|r| {
            let (short, colour) = match pb::EntityType::try_from(r.entity_type) {
                Ok(pb::EntityType::IndividualBusiness) => {
                    (lang.pick("个体", "ind."), CLASS_COLOURS[1])
                }
                Ok(pb::EntityType::FarmerCooperative) => {
                    (lang.pick("农专社", "coop."), CLASS_COLOURS[2])
                }
                _ => (lang.pick("企业", "ent."), CLASS_COLOURS[0]),
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
///
/// Every class has its slot, so a class without results reads as "—" rather than
/// being missing (or a lone bar filling half the chart).
pub fn problem_bars(lang: Lang, rows: &[pb::SpotCheckRow]) -> Vec<PercentBar> {
    let bar = |k: Option<usize>, inspected: u64, rate: f64| {
        let n = grouped(inspected);
        PercentBar {
            label: match (k, lang) {
                (Some(k), Lang::Zh) => format!("{}（{n}户）", class_label(lang, k)),
                (Some(k), Lang::En) => format!("{} ({n})", class_label(lang, k)),
                (None, Lang::Zh) => format!("未经抽取（{n}户）"),
                (None, Lang::En) => format!("not drawn ({n})"),
            },
            percent: if inspected > 0 {
                100.0 * rate
            } else {
                f64::NAN
            },
            colour: k.map_or(RGBColor(150, 150, 150), |k| CLASS_COLOURS[k]),
        }
    };
    let mut bars: Vec<PercentBar> = (0..4)
        .map(|k| {
            let row = rows
                .iter()
                .find(|r| class_index(r.risk_class) == Some(k) && r.inspected > 0);
            bar(
                Some(k),
                row.map_or(0, |r| r.inspected),
                row.map_or(0.0, |r| r.problem_rate),
            )
        })
        .collect();
    bars.extend(
        rows.iter()
            .filter(|r| class_index(r.risk_class).is_none() && r.inspected > 0)
            .map(|r| bar(None, r.inspected, r.problem_rate)),
    );
    bars
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
    Districts(Lang, &'a str, &'a [DistrictBar]),
    Histogram(Lang, &'a str, &'a [ScoreBin], [f64; 3]),
    Percentages(&'a str, &'a str, &'a [PercentBar]),
}

impl Chart<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        match self {
            Chart::Districts(lang, title, bars) => draw_districts(root, *lang, title, bars),
            Chart::Histogram(lang, title, bins, cuts) => {
                draw_histogram(root, *lang, title, bins, cuts)
            }
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
pub async fn run_report(
    addr: &str,
    out: &Path,
    bin_width: f64,
    lang: Lang,
) -> Result<RunReport, CliError> {
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
    let bars = district_bars(lang, &regions);
    let model = cls
        .get_model(pb::GetModelRequest {
            version: run.model_version.clone(),
        })
        .await?
        .into_inner();
    let cuts = [model.cut_point_b, model.cut_point_c, model.cut_point_d];

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
    let filing = filing_bars(lang, &filing.rows);
    let problems = problem_bars(lang, &spot_checks.rows);

    let (d_title, h_title, f_title, p_title) = match lang {
        Lang::Zh => {
            let what = format!(
                "第{}批次评分，模型 {}，截至 {}",
                run.run_id, run.model_version, run.as_of
            );
            (
                format!("各区企业信用风险分类（{what}）"),
                format!("信用风险评分分布（{what}）"),
                "年度报告按期公示率（按报告年度与主体类型）".to_string(),
                format!(
                    "抽查发现问题的比例（按抽取时的分类，{} 至 {}）",
                    spot_checks.from_month, spot_checks.to_month
                ),
            )
        }
        Lang::En => {
            let what = format!(
                "run {} ({}, as of {})",
                run.run_id, run.model_version, run.as_of
            );
            (
                format!("Enterprises per class and district, {what}"),
                format!("Score histogram, {what}"),
                "Annual reports filed, per report year and entity type".to_string(),
                format!(
                    "Spot checks that found problems, per class drawn ({} to {})",
                    spot_checks.from_month, spot_checks.to_month
                ),
            )
        }
    };
    let mut files = Vec::new();
    for (stem, size, chart) in [
        (
            "classes-by-district",
            (1400, 640),
            Chart::Districts(lang, &d_title, &bars),
        ),
        (
            "score-histogram",
            (1200, 600),
            Chart::Histogram(lang, &h_title, &bins, cuts),
        ),
        (
            "filing-rates",
            (1200, 560),
            Chart::Percentages(&f_title, lang.pick("公示率（%）", "filed (%)"), &filing),
        ),
        (
            "problem-rates",
            (1000, 560),
            Chart::Percentages(
                &p_title,
                lang.pick("发现问题（%）", "found problems (%)"),
                &problems,
            ),
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

/// The label of a proto enum value (by its proto name) in `lang`.
fn enum_label<E: TryFrom<i32>>(lang: Lang, v: i32, name: impl Fn(E) -> &'static str) -> String {
    E::try_from(v)
        .map(|e| label(lang, name(e)))
        .unwrap_or_else(|_| "?".into())
}

/// One row of the class history: (run id, as of, model, class index, score).
pub type HistoryRow = (u64, String, String, Option<usize>, f64);

fn table(out: &mut String, lang: Lang, title: &str, head: &[&str], rows: Vec<Vec<String>>) {
    let _ = write!(out, "<h2>{}</h2>", esc(title));
    if rows.is_empty() {
        let _ = write!(out, "<p class=\"none\">{}</p>", lang.pick("无", "none"));
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

/// The record a factor or objection names, short and readable: a decision number, "2021
/// 年度报告", a list and its day…
pub fn record_label(lang: Lang, record: &str) -> String {
    let (kind, rest) = record.split_once('/').unwrap_or((record, ""));
    match (kind, lang) {
        ("penalty", _) => rest.to_string(),
        ("annual_report", Lang::Zh) => format!("{rest}年度报告"),
        ("annual_report", Lang::En) => format!("annual report {rest}"),
        ("listing", _) => {
            let mut parts = rest.split('/');
            let list = parts.next().unwrap_or_default();
            let day = parts.next().unwrap_or_default();
            format!("{} {day}", label(lang, &format!("LIST_KIND_{list}")))
        }
        ("inspection", _) => format!("{} {rest}", lang.pick("检查", "inspection")),
        ("repair_case", _) => format!("{} {rest}", lang.pick("信用修复", "repair case")),
        ("commitment", _) => format!("{} {rest}", lang.pick("承诺", "commitment")),
        ("sampling", _) => format!("{} {rest}", lang.pick("抽检", "sampling")),
        ("enterprise", _) => lang.pick("登记信息", "registration").to_string(),
        ("relation", _) => lang
            .pick("法定代表人关联", "legal representative")
            .to_string(),
        _ => record.to_string(),
    }
}

/// At most `n` characters, "…" for the rest.
fn clip(s: &str, n: usize) -> String {
    if n == 0 {
        return String::new();
    }
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(n - 1).collect();
        out.push('…');
        out
    }
}

/// The state of a record under objection, for the record's own row: "有异议，处理中".
fn dispute(lang: Lang, r: &pb::CreditReport, record: &str) -> String {
    let open = r.disputed_records.iter().any(|d| d == record);
    let last = r.objections.iter().rev().find(|o| o.record == record);
    match (open, last) {
        (true, _) => lang.pick("有异议，处理中", "disputed, open").to_string(),
        (false, Some(o)) => format!(
            "{}{}",
            lang.pick("异议已处理：", "objection: "),
            label(lang, &o.state)
        ),
        (false, None) => String::new(),
    }
}

/// The HTML credit report of one enterprise, in `lang`.
pub fn enterprise_html(
    r: &pb::CreditReport,
    history: &[HistoryRow],
    lang: Lang,
) -> Result<String, String> {
    let e = r.enterprise.clone().unwrap_or_default();
    let z = |zh: &'static str, en: &'static str| lang.pick(zh, en);
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"{}\"><head><meta charset=\"utf-8\"><title>{} {} {}</title>\
         <style>body{{font-family:\"Noto Sans CJK SC\",\"PingFang SC\",\"Microsoft YaHei\",sans-serif;\
         max-width:1000px;margin:2em auto;color:#222}}\
         table{{border-collapse:collapse;width:100%;margin-bottom:1em}}\
         th,td{{border:1px solid #ccc;padding:4px 8px;text-align:left;font-size:14px}}\
         th{{background:#f3f3f3}}.badge{{display:inline-block;color:#fff;font-size:28px;\
         padding:4px 16px;border-radius:6px;margin-right:12px}}.none{{color:#888}}\
         .disputed{{color:#c62828}}</style></head><body>",
        z("zh-CN", "en"),
        esc(&e.name),
        esc(&e.uscc),
        z("企业信用报告", "credit report")
    );
    let _ = write!(
        h,
        "<h1>{}</h1><p>{} {} · {} {} · {} {} {} · {} {} · {} {} · {} {} · {} {}</p>",
        esc(&e.name),
        z("统一社会信用代码", "USCC"),
        esc(&e.uscc),
        z("所在区", "district"),
        esc(&district(lang, &e.region_code)),
        z("行业", "industry"),
        esc(&e.industry_section),
        esc(&e.industry_code),
        z("成立日期", "established"),
        esc(&e.established_on),
        z("登记状态", "status"),
        esc(&enum_label(lang, e.status, |s: pb::EnterpriseStatus| {
            s.as_str_name()
        })),
        z("注册资本", "registered capital"),
        esc(&money(lang, e.registered_capital_fen)),
        z("报告日期", "report as of"),
        esc(&r.as_of)
    );
    let class_title = z("信用风险分类", "Credit-risk class");
    match &r.classification {
        Some(c) => {
            let i = class_index(c.risk_class).unwrap_or(0);
            let _ = write!(
                h,
                "<h2>{}</h2><p><span class=\"badge\" style=\"background:{}\">{}</span>\
                 {} {:.2} · {} {} · {} {} · {} {}{}{}</p>",
                class_title,
                CLASS_HEX[i],
                esc(&class_label(lang, i)),
                z("评分", "score"),
                c.score,
                z("模型", "model"),
                esc(&c.model_version),
                z("评分批次", "run"),
                c.run_id,
                z("评分基准日", "as of"),
                esc(&c.as_of),
                if c.hard_rule.is_empty() {
                    String::new()
                } else {
                    format!(
                        " · {} {}",
                        z("直接判定规则", "hard rule"),
                        esc(&c.hard_rule)
                    )
                },
                if c.rescored_cause.is_empty() {
                    String::new()
                } else {
                    format!(
                        " · {} {}（{}）",
                        z("已于以下时间重新评分", "re-scored"),
                        esc(&instant(c.rescored_at.as_ref())),
                        esc(&c.rescored_cause)
                    )
                }
            );
            // The specialised ratings beside the general class (the food-safety rating…).
            for sp in &c.specialised {
                let j = class_index(sp.risk_class).unwrap_or(0);
                let _ = write!(
                    h,
                    "<p>{} {}: <span class=\"badge\" style=\"background:{}\">{}</span> \
                     {} {:.2} · {} {} · {} {} · {} {}</p>",
                    esc(&sp.family),
                    z("专业分类", "rating"),
                    CLASS_HEX[j],
                    esc(&class_label(lang, j)),
                    z("评分", "score"),
                    sp.score,
                    z("模型", "model"),
                    esc(&sp.model_version),
                    z("评分批次", "run"),
                    sp.run_id,
                    z("评分基准日", "as of"),
                    esc(&sp.as_of)
                );
            }
            let factors: Vec<(String, f64)> = c
                .factors
                .iter()
                .map(|f| {
                    let what = lang.pick(&f.description_zh, &f.description_en);
                    (
                        clip(&format!("{what} · {}", record_label(lang, &f.record)), 26),
                        f.points,
                    )
                })
                .collect();
            if !factors.is_empty() {
                let height = 60 + 28 * factors.len().max(2) as u32;
                h.push_str(&to_svg((1000, height), |root| {
                    draw_factors(root, lang, &factors)
                })?);
            }
            table(
                &mut h,
                lang,
                z("评分因素", "Factors"),
                &[
                    z("因素", "factor"),
                    z("分值", "points"),
                    z("记录", "record"),
                    z("指标代码", "indicator"),
                ],
                c.factors
                    .iter()
                    .map(|f| {
                        vec![
                            lang.pick(&f.description_zh, &f.description_en).to_string(),
                            format!("{:+.2}", f.points),
                            record_label(lang, &f.record),
                            f.code.clone(),
                        ]
                    })
                    .collect(),
            );
        }
        None => {
            let _ = write!(
                h,
                "<h2>{class_title}</h2><p class=\"none\">{}</p>",
                z("尚未分类", "not classified yet")
            );
        }
    }
    table(
        &mut h,
        lang,
        z("行政处罚", "Penalties"),
        &[
            z("决定书文号", "decision"),
            z("决定日期", "decided on"),
            z("处罚机关", "authority"),
            z("领域", "domain"),
            z("罚没金额", "fine"),
            z("公示期至", "in publicity until"),
            z("异议", "objection"),
        ],
        r.penalties
            .iter()
            .map(|p| {
                let publicity = p.publicity.clone().unwrap_or_default();
                vec![
                    p.decision_number.clone(),
                    p.decided_on.clone(),
                    p.authority.clone(),
                    enum_label(lang, p.domain, |d: pb::ViolationDomain| d.as_str_name()),
                    money(lang, p.fine_fen),
                    if publicity.published {
                        publicity.ends_on
                    } else {
                        z("未公示", "not published").into()
                    },
                    dispute(lang, r, &format!("penalty/{}", p.decision_number)),
                ]
            })
            .collect(),
    );
    table(
        &mut h,
        lang,
        z("列入名录（名单）", "Listings"),
        &[
            z("名录", "list"),
            z("原因", "reason"),
            z("列入日期", "listed on"),
            z("移出日期", "removed on"),
            z("仍在列", "open"),
            z("异议", "objection"),
        ],
        r.listings
            .iter()
            .map(|l| {
                vec![
                    enum_label(lang, l.kind, |k: pb::ListKind| k.as_str_name()),
                    enum_label(lang, l.reason, |k: pb::ListingReason| k.as_str_name()),
                    l.listed_on.clone(),
                    l.removed_on.clone(),
                    lang.yes_no(l.open).into(),
                    dispute(lang, r, &format!("listing/{}", l.listing_id)),
                ]
            })
            .collect(),
    );
    table(
        &mut h,
        lang,
        z("异议", "Objections"),
        &[
            z("编号", "objection"),
            z("异议记录", "record"),
            z("理由", "reason"),
            z("状态", "state"),
            z("提出日期", "filed on"),
            z("处理期限", "decide by"),
            z("处理结果", "resolution"),
        ],
        r.objections
            .iter()
            .map(|o| {
                vec![
                    o.objection_id.to_string(),
                    record_label(lang, &o.record),
                    o.reason.clone(),
                    label(lang, &o.state),
                    o.filed_on.clone(),
                    o.decide_due.clone(),
                    o.resolution.clone(),
                ]
            })
            .collect(),
    );
    if !r.disputed_records.is_empty() {
        let _ = write!(
            h,
            "<p class=\"disputed\">{}{}</p>",
            z(
                "有异议、正在处理的记录：",
                "Records under an open objection: "
            ),
            esc(&r
                .disputed_records
                .iter()
                .map(|d| record_label(lang, d))
                .collect::<Vec<_>>()
                .join(z("；", "; ")))
        );
    }
    table(
        &mut h,
        lang,
        z("奖惩措施", "Reward and punishment measures"),
        &[
            z("措施", "measure"),
            z("类别", "kind"),
            z("对象", "binds"),
            z("原因", "because"),
            z("起始", "from"),
            z("截止", "until"),
            z("依据", "basis"),
            z("实施部门", "applied by"),
        ],
        r.measures
            .iter()
            .chain(&r.legal_representative_measures)
            .map(|a| {
                let m = a.measure.clone().unwrap_or_default();
                // The API's `because` is English; in Chinese the trigger is named from
                // the record (or, for a class, the class in force).
                let because = match (lang, a.record_id.is_empty(), &r.classification) {
                    (Lang::En, _, _) => a.because.clone(),
                    (Lang::Zh, false, _) => record_label(lang, &a.record_id),
                    (Lang::Zh, true, Some(c)) => {
                        format!(
                            "{}（第{}批次评分）",
                            class_label(lang, class_index(c.risk_class).unwrap_or(0)),
                            c.run_id
                        )
                    }
                    (Lang::Zh, true, None) => a.because.clone(),
                };
                vec![
                    format!("{} {}", m.code, m.name),
                    enum_label(lang, m.kind, |k: pb::MeasureKind| k.as_str_name()),
                    enum_label(lang, m.subject, |k: pb::MeasureSubject| k.as_str_name()),
                    because,
                    a.since.clone(),
                    a.until.clone(),
                    m.legal_basis,
                    label(lang, &m.applied_by),
                ]
            })
            .collect(),
    );
    table(
        &mut h,
        lang,
        z("信用承诺", "Credit commitments"),
        &[
            z("承诺", "commitment"),
            z("类别", "kind"),
            z("作出日期", "made on"),
            z("履行期限", "due"),
            z("核查", "verified"),
            z("虚假承诺", "false commitment"),
        ],
        r.commitments
            .iter()
            .map(|c| {
                vec![
                    c.commitment_id.clone(),
                    enum_label(lang, c.kind, |k: pb::CommitmentKind| k.as_str_name()),
                    c.made_on.clone(),
                    c.due_on.clone(),
                    c.verification
                        .as_ref()
                        .map(|v| {
                            format!(
                                "{} {} {}",
                                v.verified_on,
                                z("核查：", "verified:"),
                                enum_label(lang, v.verdict, |k: pb::CommitmentVerdict| {
                                    k.as_str_name()
                                })
                            )
                        })
                        .unwrap_or_else(|| z("尚未核查", "not yet").into()),
                    lang.yes_no(c.false_commitment).into(),
                ]
            })
            .collect(),
    );
    table(
        &mut h,
        lang,
        z("年度报告", "Annual reports"),
        &[
            z("年度", "year"),
            z("截止日期", "deadline"),
            z("公示日期", "filed on"),
            z("公示情况", "compliance"),
        ],
        r.annual_reports
            .iter()
            .map(|a| {
                vec![
                    a.year.to_string(),
                    a.deadline.clone(),
                    a.filed_on.clone(),
                    label(lang, &a.compliance),
                ]
            })
            .collect(),
    );
    table(
        &mut h,
        lang,
        z("抽查检查", "Inspections"),
        &[
            z("任务", "task"),
            z("检查日期", "inspected on"),
            z("发现问题", "problems found"),
            z("有问题的检查事项", "items with problems"),
        ],
        r.inspections
            .iter()
            .map(|i| {
                vec![
                    i.task_id.clone(),
                    i.inspected_on.clone(),
                    lang.yes_no(i.problems_found).into(),
                    i.problem_items.join(z("、", ", ")),
                ]
            })
            .collect(),
    );
    table(
        &mut h,
        lang,
        z("质量抽检", "Quality samplings"),
        &[
            z("报告编号", "report"),
            z("抽样日期", "sampled on"),
            z("类别", "category"),
            z("产品", "product"),
            z("批次", "batch"),
            z("结果", "result"),
        ],
        r.samplings
            .iter()
            .map(|x| {
                vec![
                    x.sample_id.clone(),
                    x.sampled_on.clone(),
                    enum_label(lang, x.category, |c: pb::SamplingCategory| c.as_str_name()),
                    x.product.clone(),
                    x.batch.clone(),
                    if x.passed {
                        z("合格", "passed")
                    } else {
                        z("不合格", "FAILED")
                    }
                    .into(),
                ]
            })
            .collect(),
    );
    table(
        &mut h,
        lang,
        z("投诉举报", "Complaints and reports"),
        &[
            z("月份", "month"),
            z("投诉", "complaints"),
            z("举报", "reports"),
            z("查证属实", "found true"),
            z("来源", "source"),
        ],
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
        lang,
        z("信用修复", "Credit repair"),
        &[
            z("案件", "case"),
            z("修复对象", "target"),
            z("状态", "state"),
            z("申请日期", "submitted on"),
            z("办理期限", "due"),
        ],
        r.repairs
            .iter()
            .map(|c| {
                vec![
                    c.case_id.to_string(),
                    record_label(lang, &c.target_id),
                    enum_label(lang, c.state, |s: pb::RepairState| s.as_str_name()),
                    c.submitted_on.clone(),
                    c.due.clone(),
                ]
            })
            .collect(),
    );
    table(
        &mut h,
        lang,
        z("分类历史", "Class history"),
        &[
            z("评分批次", "run"),
            z("评分基准日", "as of"),
            z("模型", "model"),
            z("分类", "class"),
            z("评分", "score"),
        ],
        history
            .iter()
            .map(|(run, as_of, model, class, score)| {
                vec![
                    run.to_string(),
                    as_of.clone(),
                    model.clone(),
                    class.map(|i| class_label(lang, i)).unwrap_or("-".into()),
                    format!("{score:.2}"),
                ]
            })
            .collect(),
    );
    h.push_str("</body></html>\n");
    Ok(h)
}

/// `report enterprise`: fetches the credit report and the class in every retained
/// complete run, and writes the HTML page to `out` in `lang`.
pub async fn enterprise_report(
    addr: &str,
    uscc: &str,
    out: &Path,
    lang: Lang,
) -> Result<(), CliError> {
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
    let html = enterprise_html(&report, &history, lang)?;
    write(out, &html)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn districts_group_by_code_with_other_last() {
        let regions = [
            ("310115".into(), [5, 1, 0, 0]),
            ("310101".into(), [1, 0, 0, 2]),
            ("110101".into(), [0, 1, 0, 0]),
        ];
        let bars = district_bars(Lang::Zh, &regions);
        let labels: Vec<&str> = bars.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(labels, ["黄浦区", "浦东新区", "其他"]);
        assert_eq!(bars[1].classes, [5, 1, 0, 0]);
        let labels: Vec<String> = district_bars(Lang::En, &regions)
            .into_iter()
            .map(|b| b.label)
            .collect();
        assert_eq!(labels, ["Huangpu", "Pudong", "other"]);
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
    fn the_embedded_font_draws_chinese() {
        register_fonts();
        // A glyph for each character a chart writes, not the empty box of a missing one.
        let font = ab_glyph_font();
        for c in "浦东新区闵行区崇明区低风险一般较高企业数评分≥沪市监罚〔〕号".chars()
        {
            assert_ne!(ab_glyph::Font::glyph_id(&font, c).0, 0, "no glyph for {c}");
        }
    }

    /// The `y` of the SVG text element that shows `label`.
    fn label_y(svg: &str, label: &str) -> f64 {
        let at = svg.find(label).expect("label drawn");
        let tag = &svg[svg[..at].rfind("<text").expect("in a text element")..at];
        let y = &tag[tag.find(" y=\"").expect("with a y") + 4..];
        y[..y.find('"').expect("quoted")].parse().expect("a number")
    }

    fn ab_glyph_font() -> ab_glyph::FontRef<'static> {
        ab_glyph::FontRef::try_from_slice(CJK_FONT).expect("the embedded font parses")
    }

    #[test]
    fn charts_render_to_svg_and_png_with_the_embedded_font() {
        let bars = district_bars(
            Lang::Zh,
            &[
                ("310115".into(), [50, 20, 5, 1]),
                ("310104".into(), [30, 9, 2, 0]),
            ],
        );
        let svg = to_svg((800, 400), |r| draw_districts(r, Lang::Zh, "分类", &bars)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("浦东新区"), "{svg}");
        assert!(svg.contains("D类（高风险）") && svg.contains("C+D 7.9%"));
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("h.png");
        let bins = score_bins([(0.0, 0), (12.0, 1), (40.0, 3)], 2.0);
        let cuts = [10.0, 25.0, 35.0];
        to_png(&png, (600, 300), |r| {
            draw_histogram(r, Lang::Zh, "评分分布", &bins, &cuts)
        })
        .unwrap();
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        let svg = to_svg((600, 300), |r| {
            draw_histogram(r, Lang::En, "Scores", &bins, &cuts)
        })
        .unwrap();
        assert!(
            svg.contains("B ≥ 10") && svg.contains("D ≥ 35"),
            "cut points"
        );
        assert!(svg.contains("A (low risk) 33.3%"), "shares in the legend");
        let factors = vec![
            ("罚款或没收 · 沪市监罚〔2025〕1号".to_string(), 6.0),
            ("BONUS".to_string(), -2.0),
        ];
        let svg = to_svg((600, 200), |r| draw_factors(r, Lang::Zh, &factors)).unwrap();
        assert!(svg.contains("沪市监罚〔2025〕1号"));
        // The first factor is drawn at the top, as the table lists them.
        assert!(
            label_y(&svg, "沪市监罚") < label_y(&svg, "BONUS"),
            "the table's order, top down"
        );
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
        let bars = problem_bars(Lang::En, &rows);
        assert_eq!(bars.len(), 4, "every class has its slot");
        assert_eq!(
            (bars[3].label.as_str(), bars[3].percent),
            ("D (high risk) (8)", 25.0)
        );
        assert!(
            bars[0].percent.is_nan(),
            "a class without results has no bar"
        );
        assert_eq!(bars[0].label, "A (low risk) (0)");
        assert_eq!(
            problem_bars(Lang::Zh, &rows)[3].label,
            "D类（高风险）（8户）"
        );
        let svg = to_svg((600, 300), |r| draw_percentages(r, "Problems", "%", &bars)).unwrap();
        assert!(svg.contains("D (high risk) (8)") && svg.contains("25.0%"));
        assert!(
            svg.contains("—") && !svg.contains("NaN"),
            "no data reads as —"
        );
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
        let html = enterprise_html(&r, &[], Lang::En).unwrap();
        assert!(html.contains("&lt;script&gt;x&lt;/script&gt; &amp; Co"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("not classified yet"));
        assert!(enterprise_html(&r, &[], Lang::Zh)
            .unwrap()
            .contains("尚未分类"));
    }

    #[test]
    fn the_page_reads_in_chinese_with_objections_and_disputed_records() {
        let penalty = pb::Penalty {
            decision_number: "沪市监罚〔2026〕1号".into(),
            decided_on: "2026-03-01".into(),
            fine_fen: 100_000_000,
            domain: pb::ViolationDomain::Food as i32,
            ..Default::default()
        };
        let r = pb::CreditReport {
            as_of: "2026-12-03".into(),
            enterprise: Some(pb::Enterprise {
                name: "上海某某食品有限公司".into(),
                uscc: "91310115MA1K3BTP2B".into(),
                region_code: "310115".into(),
                status: pb::EnterpriseStatus::Operating as i32,
                registered_capital_fen: 500_000_000,
                ..Default::default()
            }),
            classification: Some(pb::Classification {
                risk_class: pb::RiskClass::C as i32,
                score: 31.5,
                rescored_at: Some(prost_types::Timestamp {
                    seconds: 1_796_306_706,
                    nanos: 0,
                }),
                rescored_cause: "RecordPenalty penalty/沪市监罚〔2026〕1号".into(),
                factors: vec![pb::Factor {
                    code: "PENALTY_FINE".into(),
                    description_zh: "罚款或没收".into(),
                    description_en: "fine or confiscation".into(),
                    points: 7.9,
                    record: "penalty/沪市监罚〔2026〕1号".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            penalties: vec![penalty],
            listings: vec![pb::Listing {
                kind: pb::ListKind::AbnormalOperations as i32,
                reason: pb::ListingReason::AnnualReportNotFiled as i32,
                listed_on: "2025-07-15".into(),
                listing_id: "ABNORMAL_OPERATIONS/2025-07-15/ANNUAL_REPORT_NOT_FILED".into(),
                open: true,
                ..Default::default()
            }],
            objections: vec![pb::Objection {
                objection_id: 4,
                record: "penalty/沪市监罚〔2026〕1号".into(),
                reason: "金额有误".into(),
                state: "OPEN".into(),
                filed_on: "2026-11-20".into(),
                ..Default::default()
            }],
            disputed_records: vec!["penalty/沪市监罚〔2026〕1号".into()],
            measures: vec![pb::AppliedMeasure {
                measure: Some(pb::Measure {
                    code: "P-C-01".into(),
                    applied_by: "market regulation".into(),
                    ..Default::default()
                }),
                because: "class C in scoring run 3".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let html = enterprise_html(&r, &[], Lang::Zh).unwrap();
        for want in [
            "<h2>行政处罚</h2>",
            "浦东新区",
            "存续（在营）",
            "5,000,000.00 元",
            "1,000,000.00 元",
            "C类（较高风险）",
            "2026-12-03 22:05:06 (UTC+8)",
            "经营异常名录",
            "未按期公示年度报告",
            "<h2>异议</h2>",
            "金额有误",
            "处理中",
            "有异议，处理中",
            "罚款或没收 · 沪市监罚〔2026〕1号",
            "食品",
            "市场监管部门",
            "C类（较高风险）（第0批次评分）",
        ] {
            assert!(html.contains(want), "missing {want}");
        }
        for raw in [
            "ENTERPRISE_STATUS_",
            "LIST_KIND_",
            "LISTING_REASON_",
            "¥",
            "market regulation",
            "scoring run",
        ] {
            assert!(!html.contains(raw), "raw {raw} shown");
        }
        let en = enterprise_html(&r, &[], Lang::En).unwrap();
        for want in [
            "<h2>Penalties</h2>",
            "Pudong",
            "¥1,000,000.00",
            "C (elevated risk)",
            "disputed, open",
            "abnormal operations list",
        ] {
            assert!(en.contains(want), "missing {want}");
        }
    }
}
