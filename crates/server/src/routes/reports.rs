//! Reports people can look at, over HTTP: evaluations as CSV and XLSX downloads (asked for on
//! `GET /api/v1/evaluations` with `format=` or `Accept`), evaluation charts as SVG and PNG
//! (`/api/v1/evaluations/chart.svg|.png`: ranking, trend, heat map by grid), and the monthly
//! district report (`/api/v1/reports/districts/{code}/{YYYY-MM}.html`).
//!
//! The figures come from `routes::evaluation` with its access rules (who may see which
//! regions, departments and posts); this module turns rows into the neutral shapes of
//! `crate::report` and back out as files. Rendering runs on the blocking pool: a PNG heat map
//! of a whole city is tens of milliseconds of CPU.

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Path, Problem, Query};
use crate::report::chart::{self, Bar, Chart, HeatCell, HeatMap, ImageFormat, RankingChart, Series, TrendChart};
use crate::report::html::{self, DistrictMonthReport, Headline};
use crate::report::{Cell, Column, ColumnKind, Table};
use crate::routes::evaluation::{self, EvalQuery, EvaluationRow, MetricOut};
use crate::state::{AppState, MapIndexes};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use citygrid_core::codes::{RegionCode, RegionLevel};
use citygrid_core::evaluation::{MetricKind, SubjectKind};
use citygrid_core::org::Role;
use citygrid_geo::grid::GridIndex;
use geo::MultiPolygon;
use jiff::civil::Date;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(chart_svg)).routes(routes!(chart_png)).routes(routes!(district_report))
}

pub const CSV: &str = "text/csv; charset=utf-8";
pub const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

// ---- names people read ---------------------------------------------------------------------

/// Chinese labels of the metrics, in the order columns and figures are shown: the scored
/// rates and bands first, then the counts, then the averages.
const METRIC_LABELS: &[(&str, &str)] = &[
    ("closure_rate", "结案率"),
    ("on_time_closure_rate", "按期结案率"),
    ("on_time_disposal_rate", "按期处置率"),
    ("rework_rate", "返工率"),
    ("wrong_dispatch_rate", "误派率"),
    ("citizen_report_rate", "监督举报率"),
    ("filed_band", "立案数(档次)"),
    ("valid_report_rate", "有效上报率"),
    ("missed_report_rate", "漏报率"),
    ("on_time_verification_rate", "按时核实率"),
    ("on_time_check_rate", "按时核查率"),
    ("accepted_band", "受理数(档次)"),
    ("on_time_acceptance_rate", "按时受理率"),
    ("on_time_filing_rate", "按时立案率"),
    ("accurate_filing_rate", "准确立案率"),
    ("on_time_closing_rate", "按时结案率"),
    ("dispatched_band", "派遣数(档次)"),
    ("on_time_dispatch_rate", "按时派遣率"),
    ("accurate_dispatch_rate", "准确派遣率"),
    ("reported", "上报数"),
    ("verified", "核实数"),
    ("accepted", "受理数"),
    ("filed", "立案数"),
    ("voided", "作废数"),
    ("dispatched", "派遣数"),
    ("to_dispose", "应处置数"),
    ("disposed", "处置数"),
    ("overdue_disposed", "超期处置数"),
    ("returned", "回退数"),
    ("reworked", "返工数"),
    ("checked", "核查数"),
    ("due_to_close", "应结案数"),
    ("overdue_open", "超期未结案数"),
    ("closed", "结案数"),
    ("overdue_closed", "超期结案数"),
    ("extended", "延期数"),
    ("suspended", "挂账数"),
    ("avg_accept_minutes", "平均受理时长(分钟)"),
    ("avg_dispose_minutes", "平均处置时长(分钟)"),
];

/// The Chinese label of a metric (its API name when it has none).
pub fn metric_label(name: &str) -> String {
    METRIC_LABELS.iter().find(|(n, _)| *n == name).map(|(_, l)| (*l).to_owned()).unwrap_or_else(|| name.to_owned())
}

fn metric_rank(name: &str) -> usize {
    METRIC_LABELS.iter().position(|(n, _)| *n == name).unwrap_or(METRIC_LABELS.len())
}

fn subject_label(subject: SubjectKind, level: Option<RegionLevel>) -> &'static str {
    match (subject, level.unwrap_or(RegionLevel::Street)) {
        (SubjectKind::Region, RegionLevel::Grid) => "网格",
        (SubjectKind::Region, RegionLevel::Community) => "社区",
        (SubjectKind::Region, RegionLevel::Street) => "街道",
        (SubjectKind::Region, _) => "区",
        (SubjectKind::Department, _) => "专业部门",
        (SubjectKind::Collector, _) => "监督员",
        (SubjectKind::Acceptor, _) => "受理员",
        (SubjectKind::Leader, _) => "值班长",
        (SubjectKind::Dispatcher, _) => "派遣员",
    }
}

fn column_kind(kind: MetricKind) -> ColumnKind {
    match kind {
        MetricKind::Rate => ColumnKind::Rate,
        MetricKind::Count | MetricKind::Band => ColumnKind::Int,
        MetricKind::Minutes => ColumnKind::Score,
    }
}

fn period_text(q: &EvalQuery) -> String {
    if q.from == q.to {
        q.from.to_string()
    } else {
        format!("{} 至 {}", q.from, q.to)
    }
}

// ---- evaluation rows as a table ------------------------------------------------------------

/// The metric names of `rows` in display order.
fn metric_names(rows: &[EvaluationRow]) -> Vec<(String, MetricKind)> {
    let mut names: Vec<(String, MetricKind)> = Vec::new();
    for r in rows {
        for (name, m) in r.metrics.iter() {
            if !names.iter().any(|(n, _)| n == name) {
                names.push((name.to_owned(), m.kind));
            }
        }
    }
    names.sort_by(|a, b| metric_rank(&a.0).cmp(&metric_rank(&b.0)).then_with(|| a.0.cmp(&b.0)));
    names
}

/// Every evaluation row with all its metrics: rank, code, name, (region class), each metric —
/// a rate with its numerator and denominator beside it —, score and grade.
pub fn evaluation_table(q: &EvalQuery, rows: &[EvaluationRow]) -> Table {
    let names = metric_names(rows);
    let mut columns = vec![
        Column::new("rank", "排名", ColumnKind::Int),
        Column::new("subject_id", "编码", ColumnKind::Text),
        Column::new("name", "名称", ColumnKind::Text),
    ];
    let regions = q.subject == SubjectKind::Region;
    if regions {
        columns.push(Column::new("region_class", "区域类别", ColumnKind::Text));
    }
    for (name, kind) in &names {
        let label = metric_label(name);
        columns.push(Column::new(name.clone(), label.clone(), column_kind(*kind)));
        if *kind == MetricKind::Rate {
            columns.push(Column::new(format!("{name}.numerator"), format!("{label}·分子"), ColumnKind::Int));
            columns.push(Column::new(format!("{name}.denominator"), format!("{label}·分母"), ColumnKind::Int));
        }
    }
    columns.push(Column::new("score", "得分", ColumnKind::Score));
    columns.push(Column::new("grade", "等级", ColumnKind::Text));
    let rows = rows
        .iter()
        .map(|r| {
            let mut cells: Vec<Cell> = vec![(r.rank as i64).into(), r.subject_id.clone().into(), r.name.clone().into()];
            if regions {
                cells.push(r.region_class.clone().map(Cell::Text).unwrap_or(Cell::Empty));
            }
            for (name, kind) in &names {
                let m = r.metrics.get(name);
                cells.push(m.map(metric_cell).unwrap_or(Cell::Empty));
                if *kind == MetricKind::Rate {
                    cells.push(m.map(|m| Cell::Int(m.numerator)).unwrap_or(Cell::Empty));
                    cells.push(m.map(|m| Cell::Int(m.denominator)).unwrap_or(Cell::Empty));
                }
            }
            cells.push(r.score.into());
            cells.push(r.grade.clone().into());
            cells
        })
        .collect();
    Table { title: format!("{}评价 {}", subject_label(q.subject, q.level), period_text(q)), columns, rows }
}

fn metric_cell(m: &MetricOut) -> Cell {
    match m.kind {
        MetricKind::Count | MetricKind::Band => Cell::Int(m.value.round() as i64),
        _ => m.value.into(),
    }
}

/// What a client asked `GET /api/v1/evaluations` for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Download {
    Json,
    Csv,
    Xlsx,
}

/// `format=json|csv|xlsx` wins; without it an `Accept` naming CSV or XLSX picks that; JSON
/// otherwise (browsers and API clients that send `*/*` get JSON, as before).
pub fn download_format(format: Option<&str>, headers: &HeaderMap) -> ApiResult<Download> {
    match format.map(str::trim) {
        Some("json") => Ok(Download::Json),
        Some("csv") => Ok(Download::Csv),
        Some("xlsx") => Ok(Download::Xlsx),
        Some(_) => Err(ApiError::bad_query("format", "json, csv or xlsx")),
        None => {
            let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
            let wants = |mime: &str| accept.split(',').any(|part| part.split(';').next().map(str::trim) == Some(mime));
            Ok(if wants("text/csv") {
                Download::Csv
            } else if wants(XLSX) {
                Download::Xlsx
            } else {
                Download::Json
            })
        }
    }
}

/// The rows as a CSV or XLSX attachment, named after subject, level and period.
pub async fn evaluation_download(
    app: &AppState,
    q: &EvalQuery,
    rows: &[EvaluationRow],
    as_: Download,
) -> ApiResult<Response> {
    let table = evaluation_table(q, rows);
    let level = match q.subject {
        SubjectKind::Region => format!("-{}", q.level.unwrap_or(RegionLevel::Street).as_str()),
        _ => String::new(),
    };
    table_download(app, table, &format!("evaluation-{}{level}-{}-{}", q.subject.as_str(), q.from, q.to), as_).await
}

/// Any view's `table` as a CSV or XLSX attachment named `{stem}.csv|.xlsx`: the one way every
/// evaluation, assessment and contract view is downloaded. The workbook is written on the
/// blocking pool, with the (application) clock's time as its creation time.
pub async fn table_download(app: &AppState, table: Table, stem: &str, as_: Download) -> ApiResult<Response> {
    let (bytes, content_type, ext) = match as_ {
        Download::Csv => (crate::report::csv::to_csv(&table), CSV, "csv"),
        Download::Xlsx => {
            let now = app.now();
            let bytes = tokio::task::spawn_blocking(move || crate::report::xlsx::to_xlsx(&table, now))
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))??;
            (bytes, XLSX, "xlsx")
        }
        Download::Json => return Err(ApiError::Internal("JSON is not a download".into())),
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{stem}.{ext}\"")),
            (header::CACHE_CONTROL, "private, no-store".to_owned()),
        ],
        bytes,
    )
        .into_response())
}

// ---- charts --------------------------------------------------------------------------------

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ChartParams {
    /// `ranking` (bars, best first), `trend` (a line per subject over days, weeks or months) or
    /// `heatmap` (regions on the map; grids by default).
    pub kind: String,
    /// As for `/api/v1/evaluations`: `region` (default), `department`, `collector`, … .
    pub subject: Option<String>,
    /// Regions: `grid`, `community`, `street`, `district`. Default `street`, for heat maps `grid`.
    pub level: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// Instead of from/to: `2026-11-05`, `2026-W45`, `2026-11`, `2026-Q4`, `2026`.
    pub period: Option<String>,
    /// Regions: only those under this region code.
    pub parent: Option<String>,
    /// `score` (default) or a metric name, e.g. `closure_rate`.
    pub metric: Option<String>,
    /// Ranking: bars (default 20, at most 200); trend: lines (default 8, at most 20).
    pub limit: Option<usize>,
    /// `best` (default) or `worst` first; for the trend, which subjects are drawn.
    pub order: Option<String>,
    /// Trend: `day`, `week` or `month` (default by the period's length).
    pub bucket: Option<String>,
    /// Trend: the subjects to draw (comma-separated ids) instead of the best or worst `limit`.
    pub ids: Option<String>,
    /// Heat map: outline this many worst regions (default 10; 0 for none).
    pub worst: Option<usize>,
}

/// An evaluation chart as SVG (the web page and reports; Chinese text in the viewer's fonts).
#[utoipa::path(get, path = "/api/v1/evaluations/chart.svg", tag = "evaluation", security(("bearer" = [])), params(ChartParams),
    responses((status = 200, content_type = "image/svg+xml", description = "The chart"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn chart_svg(State(app): State<AppState>, auth: Auth, Query(p): Query<ChartParams>) -> ApiResult<Response> {
    chart_response(&app, &auth, &p, ImageFormat::Svg).await
}

/// An evaluation chart as PNG (documents, chat; Chinese text from a built-in bitmap font).
#[utoipa::path(get, path = "/api/v1/evaluations/chart.png", tag = "evaluation", security(("bearer" = [])), params(ChartParams),
    responses((status = 200, content_type = "image/png", description = "The chart"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn chart_png(State(app): State<AppState>, auth: Auth, Query(p): Query<ChartParams>) -> ApiResult<Response> {
    chart_response(&app, &auth, &p, ImageFormat::Png).await
}

async fn chart_response(app: &AppState, auth: &Auth, p: &ChartParams, format: ImageFormat) -> ApiResult<Response> {
    image_response(build_chart(app, auth, p).await?, format).await
}

/// A chart as the answer of a chart endpoint: drawn on the blocking pool, not cached.
pub async fn image_response(chart: Chart, format: ImageFormat) -> ApiResult<Response> {
    let bytes = render(chart, format).await?;
    Ok(([(header::CONTENT_TYPE, format.content_type()), (header::CACHE_CONTROL, "private, no-store")], bytes)
        .into_response())
}

async fn render(chart: Chart, format: ImageFormat) -> ApiResult<Vec<u8>> {
    Ok(tokio::task::spawn_blocking(move || chart.render(format))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??)
}

/// Which value of a row a chart shows.
#[derive(Debug, Clone)]
struct Measure {
    /// `score` or a metric name.
    name: String,
    label: String,
    kind: ColumnKind,
    lower_is_better: bool,
}

impl Measure {
    fn of(subject: SubjectKind, metric: Option<&str>) -> ApiResult<Measure> {
        let name = metric.unwrap_or("score").trim();
        if name == "score" {
            return Ok(Measure {
                name: "score".into(),
                label: "得分".into(),
                kind: ColumnKind::Score,
                lower_is_better: false,
            });
        }
        let known =
            citygrid_core::evaluation::metrics(subject, &Default::default(), &Default::default(), &Default::default());
        let m = known
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| ApiError::bad_query("metric", format!("score or a {} metric", subject.as_str())))?;
        Ok(Measure {
            name: m.name.to_owned(),
            label: metric_label(m.name),
            kind: column_kind(m.kind),
            lower_is_better: m.lower_is_better,
        })
    }

    fn value(&self, r: &EvaluationRow) -> Option<f64> {
        if self.name == "score" {
            Some(r.score)
        } else {
            r.metrics.get(&self.name).map(|m| m.value)
        }
    }

    /// Rows best first (or worst first), ties by id.
    fn sort(&self, rows: &mut [EvaluationRow], worst_first: bool) {
        let high_first = self.lower_is_better == worst_first;
        rows.sort_by(|a, b| {
            let (va, vb) = (self.value(a).unwrap_or(f64::NAN), self.value(b).unwrap_or(f64::NAN));
            let by = if high_first { vb.total_cmp(&va) } else { va.total_cmp(&vb) };
            by.then_with(|| a.subject_id.cmp(&b.subject_id))
        });
    }
}

fn worst_first(order: Option<&str>) -> ApiResult<bool> {
    match order {
        None | Some("best") => Ok(false),
        Some("worst") => Ok(true),
        Some(_) => Err(ApiError::bad_query("order", "best or worst")),
    }
}

async fn build_chart(app: &AppState, auth: &Auth, p: &ChartParams) -> ApiResult<Chart> {
    let subject = p.subject.as_deref().unwrap_or("region");
    let kind = p.kind.trim();
    let level = match (kind, p.level.as_deref()) {
        ("heatmap", None) => Some("grid"),
        (_, l) => l,
    };
    if kind == "heatmap" && subject != "region" {
        return Err(ApiError::bad_query("subject", "heat maps are of regions"));
    }
    if !matches!(kind, "ranking" | "trend" | "heatmap") {
        return Err(ApiError::bad_query("kind", "ranking, trend or heatmap"));
    }
    let q = evaluation::request_query(
        app,
        auth,
        subject,
        level,
        p.parent.as_deref(),
        (p.period.as_deref(), p.from.as_deref(), p.to.as_deref()),
    )
    .await?;
    let measure = Measure::of(q.subject, p.metric.as_deref())?;
    let worst = worst_first(p.order.as_deref())?;
    let who = subject_label(q.subject, q.level);
    match kind {
        "ranking" => {
            let limit = p.limit.unwrap_or(20);
            if !(1..=chart::MAX_BARS).contains(&limit) {
                return Err(ApiError::bad_query("limit", format!("1–{}", chart::MAX_BARS)));
            }
            let mut rows = evaluation::evaluate_for(app, auth, &q).await?;
            // Subjects with nothing counted have nothing to rank (every rate "nothing failed"):
            // when any subject was active, the bars are the active ones.
            if rows.iter().any(|r| r.active) {
                rows.retain(|r| r.active);
            }
            measure.sort(&mut rows, worst);
            rows.truncate(limit);
            Ok(Chart::Ranking(ranking_chart(
                &format!("{who}{}排名 {}", measure.label, period_text(&q)),
                &measure,
                &rows,
                worst,
            )))
        }
        "trend" => trend_chart(app, auth, &q, p, &measure, worst).await.map(Chart::Trend),
        _ => {
            let rows = evaluation::evaluate_for(app, auth, &q).await?;
            let worst_n = p.worst.unwrap_or(10);
            Ok(Chart::HeatMap(heat_map(
                app,
                &format!("{who}{}分布 {}", measure.label, period_text(&q)),
                &measure,
                &rows,
                q.level.unwrap_or(RegionLevel::Grid),
                worst_n,
            )))
        }
    }
}

/// Bars of `rows`, already in the order to show.
fn ranking_chart(title: &str, measure: &Measure, rows: &[EvaluationRow], worst: bool) -> RankingChart {
    RankingChart {
        title: title.to_owned(),
        value_label: measure.label.clone(),
        kind: measure.kind,
        bars: rows
            .iter()
            .filter_map(|r| {
                Some(Bar {
                    label: r.name.clone(),
                    value: measure.value(r)?,
                    grade: (measure.name == "score").then(|| r.grade.clone()),
                    band: None,
                })
            })
            .collect(),
        // The chart sorts by value: highest first unless the lowest are the ones to show first.
        ascending: measure.lower_is_better != worst,
    }
}

/// Days, weeks (Monday–Sunday, cut at the period's ends) or months of `from..=to`.
pub fn buckets(from: Date, to: Date, bucket: &str) -> Option<Vec<(Date, Date, String)>> {
    let mut out = Vec::new();
    let mut start = from;
    while start <= to {
        let end = match bucket {
            "day" => start,
            "week" => {
                let to_sunday = 6 - i64::from(start.weekday().to_monday_zero_offset());
                start.checked_add(jiff::Span::new().days(to_sunday)).ok()?
            }
            "month" => start.last_of_month(),
            _ => return None,
        }
        .min(to);
        let label = match bucket {
            "day" => start.strftime("%m-%d").to_string(),
            "week" => start.strftime("%m-%d起").to_string(),
            _ => start.strftime("%Y-%m").to_string(),
        };
        out.push((start, end, label));
        start = end.tomorrow().ok()?;
    }
    Some(out)
}

/// At most this many points on a trend line.
const MAX_BUCKETS: usize = 62;

async fn trend_chart(
    app: &AppState,
    auth: &Auth,
    q: &EvalQuery,
    p: &ChartParams,
    measure: &Measure,
    worst: bool,
) -> ApiResult<TrendChart> {
    let days = (q.to - q.from).get_days() + 1;
    let bucket = p.bucket.as_deref().unwrap_or(if days <= 31 {
        "day"
    } else if days <= 182 {
        "week"
    } else {
        "month"
    });
    let periods = buckets(q.from, q.to, bucket).ok_or_else(|| ApiError::bad_query("bucket", "day, week or month"))?;
    if periods.len() > MAX_BUCKETS {
        return Err(ApiError::bad_query("bucket", format!("at most {MAX_BUCKETS} points: choose a longer bucket")));
    }
    let limit = p.limit.unwrap_or(8);
    if !(1..=chart::MAX_SERIES).contains(&limit) {
        return Err(ApiError::bad_query("limit", format!("1–{}", chart::MAX_SERIES)));
    }
    let mut whole = evaluation::evaluate_for(app, auth, q).await?;
    let chosen: Vec<(String, String)> = match &p.ids {
        Some(ids) => {
            let ids: Vec<&str> = ids.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
            if ids.is_empty() || ids.len() > chart::MAX_SERIES {
                return Err(ApiError::bad_query("ids", format!("1–{} subject ids", chart::MAX_SERIES)));
            }
            ids.into_iter()
                .map(|id| {
                    whole
                        .iter()
                        .find(|r| r.subject_id == id)
                        .map(|r| (r.subject_id.clone(), r.name.clone()))
                        .ok_or_else(|| {
                            ApiError::bad_query("ids", format!("{id} is not among the subjects you may see"))
                        })
                })
                .collect::<ApiResult<_>>()?
        }
        None => {
            measure.sort(&mut whole, worst);
            whole.iter().take(limit).map(|r| (r.subject_id.clone(), r.name.clone())).collect()
        }
    };
    let mut values: Vec<Vec<Option<f64>>> = vec![Vec::with_capacity(periods.len()); chosen.len()];
    for (from, to, _) in &periods {
        let rows = evaluation::evaluate_for(app, auth, &EvalQuery { from: *from, to: *to, ..q.clone() }).await?;
        for (k, (id, _)) in chosen.iter().enumerate() {
            values[k].push(rows.iter().find(|r| &r.subject_id == id).and_then(|r| measure.value(r)));
        }
    }
    Ok(TrendChart {
        title: format!("{}{}趋势 {}", subject_label(q.subject, q.level), measure.label, period_text(q)),
        y_label: measure.label.clone(),
        kind: measure.kind,
        periods: periods.into_iter().map(|(_, _, l)| l).collect(),
        series: chosen.into_iter().zip(values).map(|((_, name), values)| Series { name, values }).collect(),
    })
}

/// The polygon of a region: its own from the map, or else its grids' polygons as the parts of
/// one (the grid index is sorted by code, so a region's grids are one run of it).
fn region_polygon(grids: &GridIndex, map: &MapIndexes, code: &str, level: RegionLevel) -> Option<MultiPolygon<f64>> {
    if level == RegionLevel::Grid {
        let code = RegionCode::parse(code).ok()?;
        return grids.get(&code).map(|g| g.polygon.clone());
    }
    if let Some(r) = map.regions.iter().find(|r| r.code.as_str() == code) {
        return Some(r.polygon.clone());
    }
    let all = grids.grids();
    let first = all.partition_point(|g| g.code.as_str() < code);
    let parts: Vec<_> = all[first..]
        .iter()
        .take_while(|g| g.code.as_str().starts_with(code))
        .flat_map(|g| g.polygon.0.iter().cloned())
        .collect();
    (!parts.is_empty()).then_some(MultiPolygon(parts))
}

fn heat_map(
    app: &AppState,
    title: &str,
    measure: &Measure,
    rows: &[EvaluationRow],
    level: RegionLevel,
    worst: usize,
) -> HeatMap {
    let mut ordered: Vec<EvaluationRow> = rows.to_vec();
    measure.sort(&mut ordered, true);
    // The worst `worst`, but only those strictly worse than the first one left out: where many
    // regions tie (most grids of a quiet month score alike), outlining some of them would
    // single out grids for their code, not their figures.
    let boundary = ordered.get(worst).and_then(|r| measure.value(r));
    let worse = |v: Option<f64>| match (v, boundary) {
        (Some(v), Some(b)) => {
            if measure.lower_is_better {
                v > b
            } else {
                v < b
            }
        }
        (Some(_), None) => true,
        (None, _) => false,
    };
    let worst_ids: Vec<&str> =
        ordered.iter().take(worst).filter(|r| worse(measure.value(r))).map(|r| r.subject_id.as_str()).collect();
    let (grids, map) = (app.grids(), app.map());
    let cells = rows
        .iter()
        .filter_map(|r| {
            let polygon = region_polygon(&grids, &map, &r.subject_id, level)?;
            Some(HeatCell {
                code: r.subject_id.clone(),
                // A grid by its sequence number inside the community; other regions by name.
                label: if level == RegionLevel::Grid {
                    r.subject_id.get(12..).unwrap_or(&r.subject_id).to_owned()
                } else {
                    r.name.clone()
                },
                polygon,
                value: measure.value(r),
                highlight: worst_ids.contains(&r.subject_id.as_str()),
            })
        })
        .collect();
    HeatMap {
        title: title.to_owned(),
        legend_label: measure.label.clone(),
        kind: measure.kind,
        cells,
        higher_is_better: !measure.lower_is_better,
        // Scores and rates on their whole scale, so colours mean the same every month.
        range: match measure.kind {
            ColumnKind::Score if measure.name == "score" => Some((0.0, 100.0)),
            ColumnKind::Rate => Some((0.0, 1.0)),
            _ => None,
        },
    }
}

// ---- the monthly district report -----------------------------------------------------------

/// The monthly report of one district (区级月度评价报告) as a printable HTML page: its score,
/// grade and rank among the districts, its figures, the weekly trend of it and its streets,
/// the rankings of its streets and communities, the heat map of its grids and the ten worst.
/// Who may read it: as for the evaluations of its regions (a district account its own
/// district; citizens, department clerks and collectors not at all).
#[utoipa::path(get, path = "/api/v1/reports/districts/{code}/{month}", tag = "evaluation", security(("bearer" = [])),
    params(("code" = String, Path, description = "District code, 6 digits, e.g. 320311"),
        ("month" = String, Path, description = "The month and the format: `2026-11.html`")),
    responses((status = 200, content_type = "text/html", description = "The report"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn district_report(
    State(app): State<AppState>,
    auth: Auth,
    Path((code, month)): Path<(String, String)>,
) -> ApiResult<Response> {
    if matches!(auth.user.role, Role::Citizen | Role::Handler | Role::Collector) {
        return Err(ApiError::forbidden(format!("role {} does not read district reports", auth.user.role.as_str())));
    }
    let district = RegionCode::parse(&code)
        .ok()
        .filter(|c| c.level() == RegionLevel::District)
        .ok_or_else(|| ApiError::invalid("code", "a district code of 6 digits, e.g. 320311"))?;
    let month = month
        .strip_suffix(".html")
        .filter(|m| {
            m.len() == 7 && m.as_bytes()[4] == b'-' && m.bytes().enumerate().all(|(i, b)| i == 4 || b.is_ascii_digit())
        })
        .ok_or_else(|| ApiError::invalid("month", "a month and format like 2026-11.html"))?;
    let (from, to) = evaluation::parse_period(month).ok_or_else(|| ApiError::invalid("month", "no such month"))?;
    let map = app.map();
    let district_name = map.region_names.get(district.as_str()).cloned().ok_or(ApiError::NotFound("district"))?;
    // The access rules of the evaluations: the district must be within the reader's scope.
    let streets_q = evaluation::request_query(
        &app,
        &auth,
        "region",
        Some("street"),
        Some(district.as_str()),
        (None, Some(&from.to_string()), Some(&to.to_string())),
    )
    .await?;
    let at = |level: RegionLevel| EvalQuery { level: Some(level), ..streets_q.clone() };
    let streets = evaluation::evaluate_for(&app, &auth, &streets_q).await?;
    let communities = evaluation::evaluate_for(&app, &auth, &at(RegionLevel::Community)).await?;
    let grids = evaluation::evaluate_for(&app, &auth, &at(RegionLevel::Grid)).await?;
    let own = evaluation::evaluate_for(&app, &auth, &at(RegionLevel::District)).await?;
    let own = own.into_iter().find(|r| r.subject_id == district.as_str());
    // The rank among all districts is shown, their figures are not.
    let all = evaluation::evaluate(&app, &EvalQuery { parent: None, ..at(RegionLevel::District) }).await?;
    let headline = own.as_ref().map(|r| Headline {
        score: r.score,
        grade: r.grade.clone(),
        rank: all.iter().find(|a| a.subject_id == r.subject_id).map(|a| (a.rank, all.len())),
    });

    // The weekly trend of the district and its streets.
    let weeks = buckets(from, to, "week").unwrap_or_default();
    let mut district_line = Vec::new();
    let mut street_lines: Vec<Vec<Option<f64>>> = vec![Vec::new(); streets.len()];
    for (f, t, _) in &weeks {
        let week = EvalQuery { from: *f, to: *t, ..streets_q.clone() };
        let rows = evaluation::evaluate_for(&app, &auth, &week).await?;
        for (k, s) in streets.iter().enumerate() {
            street_lines[k].push(rows.iter().find(|r| r.subject_id == s.subject_id).map(|r| r.score));
        }
        let d =
            evaluation::evaluate_for(&app, &auth, &EvalQuery { level: Some(RegionLevel::District), ..week }).await?;
        district_line.push(d.iter().find(|r| r.subject_id == district.as_str()).map(|r| r.score));
    }
    let mut series = vec![Series { name: format!("{district_name}(全区)"), values: district_line }];
    series.extend(streets.iter().zip(street_lines).map(|(s, values)| Series { name: s.name.clone(), values }));
    let score =
        Measure { name: "score".into(), label: "得分".into(), kind: ColumnKind::Score, lower_is_better: false };
    let month_zh = format!("{}年{}月", from.year(), from.month());
    let trend = Chart::Trend(TrendChart {
        title: format!("{district_name} {month_zh} 每周得分"),
        y_label: "得分".into(),
        kind: ColumnKind::Score,
        periods: weeks.into_iter().map(|(_, _, l)| l).collect(),
        series,
    });
    let streets_chart =
        Chart::Ranking(ranking_chart(&format!("{district_name} {month_zh} 街道得分排名"), &score, &streets, false));
    let heat = Chart::HeatMap(heat_map(
        &app,
        &format!("{district_name} {month_zh} 网格得分"),
        &score,
        &grids,
        RegionLevel::Grid,
        10,
    ));
    let mut worst_grids = grids.clone();
    score.sort(&mut worst_grids, true);
    worst_grids.truncate(10);

    let cfg = evaluation::config(&app).await?;
    let mut notes = vec![
        format!(
            "统计期 {from} 至 {to}, 按案件发生的本地日期计 (UTC{}).",
            offset_text(app.calendar().utc_offset_minutes())
        ),
        "比率的分母为零时按 100% 计 (无应办事项不扣分); 返工率、误派率越低越好.".to_owned(),
    ];
    if let Some(w) = cfg.weights.get(&SubjectKind::Region) {
        let parts: Vec<String> = w.iter().map(|(m, p)| format!("{} {p}%", metric_label(m))).collect();
        notes.push(format!("区域得分权重: {}.", parts.join(", ")));
    }
    let grades: Vec<String> = cfg.grades.iter().map(|g| format!("{} ≥ {}", g.grade, g.min_score)).collect();
    notes.push(format!("等级: {}.", grades.join(", ")));

    let key = ["filed", "closure_rate", "on_time_closure_rate", "rework_rate", "citizen_report_rate"];
    let report = DistrictMonthReport {
        district_code: district.as_str().to_owned(),
        district_name: district_name.clone(),
        month: month.to_owned(),
        from: from.to_string(),
        to: to.to_string(),
        generated_at: local_time(&app),
        headline,
        figures: figures_table(own.as_ref()),
        streets: key_table("街道排名", &streets, &key),
        communities: key_table("社区排名", &communities, &key),
        worst_grids: key_table("得分最低的十个网格", &worst_grids, &key),
        trend_svg: None,
        streets_svg: None,
        heatmap_svg: None,
        notes,
    };
    let page = tokio::task::spawn_blocking(move || -> Result<String, crate::report::ReportError> {
        let report = DistrictMonthReport {
            trend_svg: Some(trend.to_svg()?),
            streets_svg: Some(streets_chart.to_svg()?),
            heatmap_svg: Some(heat.to_svg()?),
            ..report
        };
        Ok(html::render(&report))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, format!("inline; filename=\"district-{}-{month}.html\"", district.as_str())),
            (header::CACHE_CONTROL, "private, no-store".to_owned()),
        ],
        page,
    )
        .into_response())
}

/// The district's own figures: every metric with its numerator, denominator and weight.
fn figures_table(row: Option<&EvaluationRow>) -> Table {
    let mut rows = Vec::new();
    if let Some(r) = row {
        let mut metrics: Vec<(&str, &MetricOut)> = r.metrics.iter().collect();
        metrics.sort_by(|a, b| metric_rank(a.0).cmp(&metric_rank(b.0)).then_with(|| a.0.cmp(b.0)));
        for (name, m) in metrics {
            let value = match m.kind {
                MetricKind::Rate => crate::report::format_rate(m.value),
                MetricKind::Count | MetricKind::Band => format!("{}", m.value.round() as i64),
                MetricKind::Minutes => crate::report::format_score(m.value),
            };
            let (numerator, denominator) = match m.kind {
                MetricKind::Count => (Cell::Empty, Cell::Empty),
                _ => (Cell::Int(m.numerator), Cell::Int(m.denominator)),
            };
            rows.push(vec![
                metric_label(name).into(),
                value.into(),
                numerator,
                denominator,
                m.weight.map(|w| Cell::Text(format!("{w}%"))).unwrap_or(Cell::Empty),
            ]);
        }
    }
    Table {
        title: "主要指标".into(),
        columns: vec![
            Column::new("metric", "指标", ColumnKind::Text),
            Column::new("value", "数值", ColumnKind::Text),
            Column::new("numerator", "分子", ColumnKind::Int),
            Column::new("denominator", "分母", ColumnKind::Int),
            Column::new("weight", "权重", ColumnKind::Text),
        ],
        rows,
    }
}

/// Rank, code, name, the key metrics, score and grade.
fn key_table(title: &str, rows: &[EvaluationRow], key: &[&str]) -> Table {
    let mut columns = vec![
        Column::new("rank", "排名", ColumnKind::Int),
        Column::new("subject_id", "编码", ColumnKind::Text),
        Column::new("name", "名称", ColumnKind::Text),
    ];
    let kinds: Vec<MetricKind> = key
        .iter()
        .map(|k| rows.iter().find_map(|r| r.metrics.get(k)).map(|m| m.kind).unwrap_or(MetricKind::Rate))
        .collect();
    for (k, kind) in key.iter().zip(&kinds) {
        columns.push(Column::new(*k, metric_label(k), column_kind(*kind)));
    }
    columns.push(Column::new("score", "得分", ColumnKind::Score));
    columns.push(Column::new("grade", "等级", ColumnKind::Text));
    Table {
        title: title.to_owned(),
        columns,
        rows: rows
            .iter()
            .map(|r| {
                let mut cells: Vec<Cell> =
                    vec![(r.rank as i64).into(), r.subject_id.clone().into(), r.name.clone().into()];
                cells.extend(key.iter().map(|k| r.metrics.get(k).map(metric_cell).unwrap_or(Cell::Empty)));
                cells.push(r.score.into());
                cells.push(r.grade.clone().into());
                cells
            })
            .collect(),
    }
}

pub fn offset_text(minutes: i32) -> String {
    let sign = if minutes < 0 { '-' } else { '+' };
    let m = minutes.unsigned_abs();
    if m.is_multiple_of(60) {
        format!("{sign}{}", m / 60)
    } else {
        format!("{sign}{}:{:02}", m / 60, m % 60)
    }
}

/// Now on the city's clock, e.g. `2026-12-01 08:30 (UTC+8)`.
pub fn local_time(app: &AppState) -> String {
    let minutes = app.calendar().utc_offset_minutes();
    let offset = jiff::tz::Offset::from_seconds(minutes * 60).unwrap_or(jiff::tz::Offset::UTC);
    let local = app.now().to_zoned(jiff::tz::TimeZone::fixed(offset));
    format!("{} (UTC{})", local.strftime("%Y-%m-%d %H:%M"), offset_text(minutes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        s.parse().unwrap()
    }

    #[test]
    fn weeks_are_cut_at_the_period_ends() {
        // November 2026 starts on a Sunday.
        let w = buckets(d("2026-11-01"), d("2026-11-30"), "week").unwrap();
        let spans: Vec<(String, String)> = w.iter().map(|(a, b, _)| (a.to_string(), b.to_string())).collect();
        assert_eq!(spans[0], ("2026-11-01".into(), "2026-11-01".into()));
        assert_eq!(spans[1], ("2026-11-02".into(), "2026-11-08".into()));
        assert_eq!(spans.last().unwrap(), &("2026-11-30".to_owned(), "2026-11-30".to_owned()));
        assert_eq!(w.len(), 6);
        assert_eq!(w[1].2, "11-02起");
        assert_eq!(buckets(d("2026-11-01"), d("2026-11-03"), "day").unwrap().len(), 3);
        let months = buckets(d("2026-10-15"), d("2027-01-02"), "month").unwrap();
        assert_eq!(
            months.iter().map(|m| m.2.as_str()).collect::<Vec<_>>(),
            ["2026-10", "2026-11", "2026-12", "2027-01"]
        );
        assert_eq!(months[0].0, d("2026-10-15"));
        assert_eq!(months[3].1, d("2027-01-02"));
        assert!(buckets(d("2026-11-01"), d("2026-11-30"), "hour").is_none());
    }

    #[test]
    fn accept_picks_the_download_and_format_wins() {
        let mut h = HeaderMap::new();
        assert_eq!(download_format(None, &h).unwrap(), Download::Json);
        h.insert(header::ACCEPT, "text/csv;q=0.9, application/json;q=0.5".parse().unwrap());
        assert_eq!(download_format(None, &h).unwrap(), Download::Csv);
        h.insert(header::ACCEPT, XLSX.parse().unwrap());
        assert_eq!(download_format(None, &h).unwrap(), Download::Xlsx);
        assert_eq!(download_format(Some("json"), &h).unwrap(), Download::Json);
        h.insert(header::ACCEPT, "*/*".parse().unwrap());
        assert_eq!(download_format(None, &h).unwrap(), Download::Json);
        assert!(download_format(Some("pdf"), &h).is_err());
    }

    #[test]
    fn every_labelled_metric_exists_and_every_metric_has_a_label() {
        use citygrid_core::evaluation::metrics;
        let mut all = Vec::new();
        for k in SubjectKind::ALL {
            all.extend(
                metrics(k, &Default::default(), &Default::default(), &Default::default()).into_iter().map(|m| m.name),
            );
        }
        for name in &all {
            assert_ne!(metric_label(name), *name, "{name} has no Chinese label");
        }
        for (name, _) in METRIC_LABELS {
            assert!(all.iter().any(|n| n == name), "{name} is labelled but no metric");
        }
    }

    #[test]
    fn offsets_read_as_utc_plus() {
        assert_eq!(offset_text(480), "+8");
        assert_eq!(offset_text(-330), "-5:30");
    }
}
