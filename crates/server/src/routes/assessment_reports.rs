//! The street assessment and the contract statements as reports people can look at: every list
//! and statement of `routes::assessment` as a CSV or XLSX download (`format=` or `Accept`, the
//! same data under the same access rules as the JSON), the street ranking as a chart
//! (`/api/v1/assessments/streets/chart.svg|.png`: ranking or trend) and the printable monthly
//! street-assessment report (`/api/v1/reports/assessments/{YYYY-MM}.html`).
//!
//! Rows become the neutral `crate::report::Table`; files come out of the shared renderers and
//! the download and image helpers of `routes::reports`. Money stays integer fen: a yuan column
//! (exact, two decimals) and the fen column beside it.

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Json, Path, Problem, Query};
use crate::report::chart::{self, Bar, Chart, ImageFormat, RankingChart, Series, TrendChart};
use crate::report::html::{self, AssessmentMonthReport};
use crate::report::{format_points, Cell, Column, ColumnKind, Table};
use crate::routes::assessment::{self as assess, CollectionOut, DrawOut, FindingOut, RankingOut, SpecialOut, READERS};
use crate::routes::reports::{image_response, local_time, table_download, Download};
use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use citygrid_core::assessment::contract::{DeductionSource, Statement};
use citygrid_core::assessment::{RankRow, StreetClass};
use citygrid_core::codes::{Kind, RegionCode, RegionLevel};
use citygrid_core::settlement;
use jiff::tz::Offset;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(streets_chart_svg))
        .routes(routes!(streets_chart_png))
        .routes(routes!(assessment_report))
}

/// `out` as JSON, or as the CSV or XLSX of `table(&out)` named `{stem}.csv|.xlsx`.
pub(crate) async fn respond<T: Serialize>(
    app: &AppState,
    download: Download,
    out: T,
    table: impl FnOnce(&T) -> Table,
    stem: &str,
) -> ApiResult<Response> {
    match download {
        Download::Json => Ok(Json(out).into_response()),
        as_ => table_download(app, table(&out), stem, as_).await,
    }
}

// ---- plain words -----------------------------------------------------------------------------

fn class_zh(c: StreetClass) -> &'static str {
    match c {
        StreetClass::Urban => "城区街道",
        StreetClass::Fringe => "城乡结合部",
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "是"
    } else {
        "否"
    }
}

/// An instant on the city's clock, `2026-10-05 10:12`.
fn local(off: Offset, t: Timestamp) -> String {
    t.to_zoned(jiff::tz::TimeZone::fixed(off)).strftime("%Y-%m-%d %H:%M").to_string()
}

fn name_of(names: &HashMap<String, String>, code: &str) -> Cell {
    names.get(code).cloned().map(Cell::Text).unwrap_or(Cell::Empty)
}

fn opt_text(s: Option<&str>) -> Cell {
    s.map(|s| Cell::Text(s.to_owned())).unwrap_or(Cell::Empty)
}

fn opt_int(n: Option<i64>) -> Cell {
    n.map(Cell::Int).unwrap_or(Cell::Empty)
}

/// The Chinese name of an event or component class, from the catalogue.
fn class_name(app: &AppState, code: &str) -> Cell {
    app.class(Kind::Event, code)
        .or_else(|| app.class(Kind::Component, code))
        .map(|c| Cell::Text(c.name_zh))
        .unwrap_or(Cell::Empty)
}

/// Service levels and deduction rules of the statements, in Chinese.
fn rule_zh(rule: &str) -> String {
    let known = match rule {
        "coverage" => "网格覆盖率",
        "valid_reports" => "有效上报率",
        "missed_reports" => "漏报率",
        "on_time_verification" => "按时核实率",
        "on_time_check" => "按时核查率",
        "citizen_found" => "市民先发现问题数",
        "on_site_findings" => "实地考核发现问题数",
        "collection_missed" => "漏报扣款 (市民先于监督员发现)",
        "cleaning_missed" => "保洁不到位扣款 (市民发现)",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_owned();
    }
    if let Some(class) = rule.strip_prefix("on_site_finding:") {
        return format!("实地考核发现问题 ({class})");
    }
    if let Some(why) = rule.strip_prefix("reversal:") {
        return format!("扣款冲销 ({why})");
    }
    rule.to_owned()
}

fn source_zh(s: DeductionSource) -> &'static str {
    match s {
        DeductionSource::Ledger => "台账扣款",
        DeductionSource::OnSite => "实地考核",
        DeductionSource::ServiceLevel => "未达服务标准",
    }
}

// ---- the downloads -----------------------------------------------------------------------------

/// The street ranking: ranks, the street, the three parts, the counts behind them, the score
/// and the changes against last month — every figure of the JSON rows.
pub(crate) fn ranking_table(out: &RankingOut) -> Table {
    let status = if out.published { "" } else { " (暂定)" };
    Table {
        title: format!("街道考核排名 {}{status}", out.month),
        columns: vec![
            Column::new("rank", "排名", ColumnKind::Int),
            Column::new("class_rank", "类别排名", ColumnKind::Int),
            Column::new("street_code", "街道编码", ColumnKind::Text),
            Column::new("name", "街道", ColumnKind::Text),
            Column::new("district_code", "区编码", ColumnKind::Text),
            Column::new("class", "类别", ColumnKind::Text),
            Column::new("digital", "数字城管考核", ColumnKind::Points),
            Column::new("special", "专项工作考核", ColumnKind::Points),
            Column::new("on_site", "实地考核", ColumnKind::Points),
            Column::new("special_count", "专项考核次数", ColumnKind::Int),
            Column::new("findings", "实地发现问题数", ColumnKind::Int),
            Column::new("score", "总分", ColumnKind::Points),
            Column::new("rank_delta", "名次变化", ColumnKind::Int),
            Column::new("score_delta", "得分变化", ColumnKind::Points),
        ],
        rows: out
            .rows
            .iter()
            .map(|r| {
                let p = &r.parts;
                vec![
                    i64::from(r.rank).into(),
                    i64::from(r.class_rank).into(),
                    p.street_code.clone().into(),
                    p.name.clone().into(),
                    p.district_code.clone().into(),
                    class_zh(p.class).into(),
                    p.digital.into(),
                    p.special.into(),
                    p.on_site.into(),
                    i64::from(p.special_count).into(),
                    i64::from(p.findings).into(),
                    r.score.into(),
                    opt_int(r.rank_delta),
                    r.score_delta.map(Cell::from).unwrap_or(Cell::Empty),
                ]
            })
            .collect(),
    }
}

/// The special-work assessments of a month, one row per assessment, its items in one cell.
pub(crate) fn special_table(month: &str, rows: &[SpecialOut], names: &HashMap<String, String>, off: Offset) -> Table {
    Table {
        title: format!("专项工作考核 {month}"),
        columns: vec![
            Column::new("id", "编号", ColumnKind::Int),
            Column::new("month", "考核月份", ColumnKind::Text),
            Column::new("street_code", "街道编码", ColumnKind::Text),
            Column::new("street_name", "街道", ColumnKind::Text),
            Column::new("title", "考核事项", ColumnKind::Text),
            Column::new("items", "考核内容", ColumnKind::Text),
            Column::new("points", "分值", ColumnKind::Points),
            Column::new("photos", "照片数", ColumnKind::Int),
            Column::new("note", "备注", ColumnKind::Text),
            Column::new("entered_by", "录入人ID", ColumnKind::Int),
            Column::new("created_at", "录入时间", ColumnKind::Text),
        ],
        rows: rows
            .iter()
            .map(|s| {
                let items: Vec<String> =
                    s.items.iter().map(|i| format!("{} {}", i.item, format_points(i.points))).collect();
                vec![
                    s.id.into(),
                    s.month.clone().into(),
                    s.street_code.clone().into(),
                    name_of(names, &s.street_code),
                    s.title.clone().into(),
                    items.join("; ").into(),
                    s.points.into(),
                    (s.photo_ids.len() as i64).into(),
                    opt_text(s.note.as_deref()),
                    s.entered_by.into(),
                    local(off, s.created_at).into(),
                ]
            })
            .collect(),
    }
}

/// The draws, one row per drawn place (a draw without a place in the reader's scope keeps one
/// row of its own figures).
pub(crate) fn draws_table(
    month: Option<&str>,
    draws: &[DrawOut],
    names: &HashMap<String, String>,
    off: Offset,
) -> Table {
    let mut rows = Vec::new();
    for d in draws {
        let draw: Vec<Cell> = vec![
            d.id.into(),
            d.month.clone().into(),
            d.from.to_string().into(),
            d.to.to_string().into(),
            d.seed_hash.clone().into(),
            yes_no(d.revealed).into(),
            opt_text(d.seed.as_deref()),
        ];
        if d.places.is_empty() {
            rows.push(draw);
            continue;
        }
        for p in &d.places {
            let mut row = draw.clone();
            row.extend([
                i64::from(p.n).into(),
                p.street_code.clone().into(),
                name_of(names, &p.street_code),
                p.grid_code.clone().into(),
                p.assessor.clone().into(),
                p.assessor_id.into(),
                local(off, p.at).into(),
            ]);
            rows.push(row);
        }
    }
    Table {
        title: format!("三随机抽取{}", month.map(|m| format!(" {m}")).unwrap_or_default()),
        columns: vec![
            Column::new("draw_id", "抽取编号", ColumnKind::Int),
            Column::new("month", "考核月份", ColumnKind::Text),
            Column::new("from", "开始日期", ColumnKind::Text),
            Column::new("to", "结束日期", ColumnKind::Text),
            Column::new("seed_hash", "种子哈希(SHA-256)", ColumnKind::Text),
            Column::new("revealed", "种子已公开", ColumnKind::Text),
            Column::new("seed", "种子", ColumnKind::Text),
            Column::new("n", "点位序号", ColumnKind::Int),
            Column::new("street_code", "街道编码", ColumnKind::Text),
            Column::new("street_name", "街道", ColumnKind::Text),
            Column::new("grid_code", "网格编码", ColumnKind::Text),
            Column::new("assessor", "考核员", ColumnKind::Text),
            Column::new("assessor_id", "考核员ID", ColumnKind::Int),
            Column::new("at", "考核时间", ColumnKind::Text),
        ],
        rows,
    }
}

/// On-site findings, one row each.
pub(crate) fn findings_table(
    app: &AppState,
    title: &str,
    rows: &[FindingOut],
    names: &HashMap<String, String>,
    off: Offset,
) -> Table {
    Table {
        title: title.to_owned(),
        columns: vec![
            Column::new("id", "编号", ColumnKind::Int),
            Column::new("draw_id", "抽取编号", ColumnKind::Int),
            Column::new("place_n", "点位序号", ColumnKind::Int),
            Column::new("month", "考核月份", ColumnKind::Text),
            Column::new("street_code", "街道编码", ColumnKind::Text),
            Column::new("street_name", "街道", ColumnKind::Text),
            Column::new("grid_code", "网格编码", ColumnKind::Text),
            Column::new("case_id", "案件ID", ColumnKind::Int),
            Column::new("case_number", "案件编号", ColumnKind::Text),
            Column::new("class_code", "问题类别代码", ColumnKind::Text),
            Column::new("class_name", "问题类别", ColumnKind::Text),
            Column::new("points", "扣分", ColumnKind::Points),
            Column::new("lon", "经度", ColumnKind::Text),
            Column::new("lat", "纬度", ColumnKind::Text),
            Column::new("found_by", "发现人ID", ColumnKind::Int),
            Column::new("found_at", "发现时间", ColumnKind::Text),
            Column::new("description", "问题描述", ColumnKind::Text),
            Column::new("photos", "照片数", ColumnKind::Int),
        ],
        rows: rows
            .iter()
            .map(|f| {
                vec![
                    f.id.into(),
                    f.draw_id.into(),
                    i64::from(f.place_n).into(),
                    f.month.clone().into(),
                    f.street_code.clone().into(),
                    name_of(names, &f.street_code),
                    f.grid_code.clone().into(),
                    f.case_id.into(),
                    f.case_number.clone().into(),
                    f.class_code.clone().into(),
                    class_name(app, &f.class_code),
                    f.points.into(),
                    format!("{:.6}", f.lon).into(),
                    format!("{:.6}", f.lat).into(),
                    f.found_by.into(),
                    local(off, f.found_at).into(),
                    f.description.clone().into(),
                    (f.photo_ids.len() as i64).into(),
                ]
            })
            .collect(),
    }
}

pub(crate) fn collection_table(out: &CollectionOut) -> Table {
    statements_table(
        &format!("信息采集合同月度结算 {}", out.statement.month),
        std::slice::from_ref(&out.statement),
        Some((out.collectors_contracted, out.collectors_active)),
    )
}

/// Contract statements as their lines: the month's fee, (the collectors), every service level
/// with its figures and whether it was met, every deduction with its case, the deductions'
/// total and the net payable. Money as yuan (exact, from fen) with the fen beside it; a
/// deduction is positive, its reversal negative, as in the JSON.
pub(crate) fn statements_table(title: &str, statements: &[Statement], staff: Option<(u32, usize)>) -> Table {
    let contract_zh = |c: &str| match c {
        "collection" => "信息采集".to_owned(),
        "cleaning" => "保洁".to_owned(),
        other => other.to_owned(),
    };
    let mut rows = Vec::new();
    for s in statements {
        let party = if s.contract == "collection" { "信息采集服务单位".to_owned() } else { s.party.clone() };
        let head = |section: &str, item: String, rule: Option<&str>| -> Vec<Cell> {
            vec![
                contract_zh(&s.contract).into(),
                party.clone().into(),
                s.month.clone().into(),
                section.into(),
                item.into(),
                opt_text(rule),
            ]
        };
        // Columns after the head: source, value, numerator, denominator, target, met, case
        // number, case id, owner, reference, yuan, fen.
        let money = |fen: i64| [Cell::Int(fen), Cell::Int(fen)];
        let blank = || vec![Cell::Empty; 10];
        let mut fee = head("合同费用", "月度合同费".into(), None);
        fee.extend(blank());
        fee.extend(money(s.fee_fen));
        rows.push(fee);
        if let Some((contracted, active)) = staff {
            for (item, n) in [("合同约定采集员人数", i64::from(contracted)), ("本月在岗采集员人数", active as i64)]
            {
                let mut r = head("人员", item.into(), None);
                r.push(Cell::Empty);
                r.push(n.to_string().into());
                r.extend(vec![Cell::Empty; 10]);
                rows.push(r);
            }
        }
        for l in &s.levels {
            let mut r = head("服务标准", rule_zh(&l.name), Some(&l.name));
            let value = if l.target.contains('%') {
                crate::report::format_rate(l.value)
            } else {
                format!("{}", l.value.round() as i64)
            };
            r.extend([
                Cell::Empty,
                value.into(),
                l.numerator.into(),
                l.denominator.into(),
                l.target.clone().into(),
                yes_no(l.met).into(),
            ]);
            r.extend(vec![Cell::Empty; 6]);
            rows.push(r);
        }
        for d in &s.deductions {
            let mut r = head("扣款", rule_zh(&d.rule), Some(&d.rule));
            let reference = match (d.entry_id, d.finding_id) {
                (Some(e), _) => format!("台账条目 {e}"),
                (None, Some(f)) => format!("实地发现 {f}"),
                (None, None) => String::new(),
            };
            r.push(source_zh(d.source).into());
            r.extend(vec![Cell::Empty; 5]);
            r.extend([
                opt_text(d.case_number.as_deref()),
                opt_int(d.case_id),
                opt_text(d.owner.as_deref()),
                if reference.is_empty() { Cell::Empty } else { reference.into() },
            ]);
            r.extend(money(d.amount_fen));
            rows.push(r);
        }
        for (item, fen) in [("扣款合计", s.deductions_fen), ("应付金额", s.net_payable_fen)] {
            let mut r = head("合计", item.into(), None);
            r.extend(blank());
            r.extend(money(fen));
            rows.push(r);
        }
    }
    Table {
        title: title.to_owned(),
        columns: vec![
            Column::new("contract", "合同", ColumnKind::Text),
            Column::new("party", "合同方", ColumnKind::Text),
            Column::new("month", "月份", ColumnKind::Text),
            Column::new("section", "类别", ColumnKind::Text),
            Column::new("item", "项目", ColumnKind::Text),
            Column::new("rule", "规则代码", ColumnKind::Text),
            Column::new("source", "扣款来源", ColumnKind::Text),
            Column::new("value", "实际值", ColumnKind::Text),
            Column::new("numerator", "分子", ColumnKind::Int),
            Column::new("denominator", "分母", ColumnKind::Int),
            Column::new("target", "目标", ColumnKind::Text),
            Column::new("met", "是否达标", ColumnKind::Text),
            Column::new("case_number", "案件编号", ColumnKind::Text),
            Column::new("case_id", "案件ID", ColumnKind::Int),
            Column::new("owner", "责任方", ColumnKind::Text),
            Column::new("reference", "凭据", ColumnKind::Text),
            Column::new("amount_yuan", "金额(元)", ColumnKind::Yuan),
            Column::new("amount_fen", "金额(分)", ColumnKind::Int),
        ],
        rows,
    }
}

// ---- whose streets -----------------------------------------------------------------------------

/// The street-code prefix a view is cut to: `district=` when given (it must be a district code
/// inside the reader's scope: 403 `out_of_scope` otherwise), else the reader's own scope (`None`
/// = the whole city); a malformed district is 400, an unknown one 404.
fn view_prefix(app: &AppState, auth: &Auth, district: Option<&str>) -> ApiResult<Option<String>> {
    auth.require(READERS)?;
    let own = assess::region_prefix(auth)?;
    let Some(d) = district.map(str::trim) else { return Ok(own) };
    let code = RegionCode::parse(d)
        .ok()
        .filter(|c| c.level() == RegionLevel::District)
        .ok_or_else(|| ApiError::bad_query("district", "a district code of 6 digits, e.g. 320311"))?;
    if own.as_deref().is_some_and(|p| !code.as_str().starts_with(p)) {
        return Err(ApiError::Forbidden {
            code: "out_of_scope",
            detail: format!("district {code} is outside your region"),
        });
    }
    if !app.map().region_names.contains_key(code.as_str()) {
        return Err(ApiError::NotFound("district"));
    }
    Ok(Some(code.as_str().to_owned()))
}

/// `全市`, or the name of the district (or street) a view is cut to.
fn scope_name(app: &AppState, prefix: Option<&str>) -> String {
    match prefix {
        None => "全市".to_owned(),
        Some(p) => app.map().region_names.get(p).cloned().unwrap_or_else(|| p.to_owned()),
    }
}

fn in_scope(prefix: Option<&str>, street: &str) -> bool {
    prefix.is_none_or(|p| street.starts_with(p))
}

// ---- the chart -----------------------------------------------------------------------------------

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreetChartParams {
    /// `YYYY-MM`: the month ranked, or the last month of the trend.
    pub month: String,
    /// `ranking` (default: a bar per street, best first, coloured by rank fifth) or `trend`
    /// (a line per street over the months up to `month`).
    pub kind: Option<String>,
    /// Only the streets of this district (6 digits), inside the reader's scope.
    pub district: Option<String>,
    /// Trend: how many months, ending with `month` (default 6, 2–24).
    pub months: Option<u32>,
    /// Trend: the streets to draw (comma-separated 9-digit codes, at most 20) instead of the
    /// best (or worst) `limit` of `month`.
    pub ids: Option<String>,
    /// Trend without `ids`: how many streets (default 10, 1–20).
    pub limit: Option<usize>,
    /// Trend without `ids`: the `best` (default) or the `worst` of `month`.
    pub order: Option<String>,
}

/// The street ranking as an SVG chart (reports and the web page).
#[utoipa::path(get, path = "/api/v1/assessments/streets/chart.svg", tag = "assessment", security(("bearer" = [])),
    params(StreetChartParams),
    responses((status = 200, content_type = "image/svg+xml", description = "The chart"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn streets_chart_svg(
    State(app): State<AppState>,
    auth: Auth,
    Query(p): Query<StreetChartParams>,
) -> ApiResult<Response> {
    image_response(streets_chart(&app, &auth, &p).await?, ImageFormat::Svg).await
}

/// The street ranking as a PNG chart (documents, chat; Chinese from the built-in bitmap font).
#[utoipa::path(get, path = "/api/v1/assessments/streets/chart.png", tag = "assessment", security(("bearer" = [])),
    params(StreetChartParams),
    responses((status = 200, content_type = "image/png", description = "The chart"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn streets_chart_png(
    State(app): State<AppState>,
    auth: Auth,
    Query(p): Query<StreetChartParams>,
) -> ApiResult<Response> {
    image_response(streets_chart(&app, &auth, &p).await?, ImageFormat::Png).await
}

const SCORE_AXIS: &str = "总分 (颜色按名次五等分: 绿为前 20%, 红为后 20%)";

async fn streets_chart(app: &AppState, auth: &Auth, p: &StreetChartParams) -> ApiResult<Chart> {
    let prefix = view_prefix(app, auth, p.district.as_deref())?;
    let month = assess::query_month(&p.month)?;
    let kind = p.kind.as_deref().map(str::trim).unwrap_or("ranking");
    if !matches!(kind, "ranking" | "trend") {
        return Err(ApiError::bad_query("kind", "ranking or trend"));
    }
    let cfg = app.store.assessment_config().await?;
    let scope = scope_name(app, prefix.as_deref());
    if kind == "ranking" {
        let (rows, published_at) = assess::ranking(app, &cfg, &month).await?;
        return Ok(Chart::Ranking(ranking_chart(&scope, &month, published_at.is_some(), &rows, prefix.as_deref())));
    }
    let months = p.months.unwrap_or(6);
    if !(2..=24).contains(&months) {
        return Err(ApiError::bad_query("months", "2–24 months"));
    }
    let worst = match p.order.as_deref() {
        None | Some("best") => false,
        Some("worst") => true,
        Some(_) => return Err(ApiError::bad_query("order", "best or worst")),
    };
    let limit = p.limit.unwrap_or(10);
    if !(1..=chart::MAX_SERIES).contains(&limit) {
        return Err(ApiError::bad_query("limit", format!("1–{}", chart::MAX_SERIES)));
    }
    let last: Vec<RankRow> = assess::month_rows(app, &cfg, &month)
        .await?
        .into_iter()
        .filter(|r| in_scope(prefix.as_deref(), &r.parts.street_code))
        .collect();
    let chosen: Vec<(String, String)> = match &p.ids {
        Some(ids) => {
            let ids: Vec<&str> = ids.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
            if ids.is_empty() || ids.len() > chart::MAX_SERIES {
                return Err(ApiError::bad_query("ids", format!("1–{} street codes", chart::MAX_SERIES)));
            }
            let mut out = Vec::new();
            for id in ids {
                if let Some(r) = last.iter().find(|r| r.parts.street_code == id) {
                    out.push((id.to_owned(), r.parts.name.clone()));
                } else if prefix.as_deref().is_some_and(|p| !id.starts_with(p))
                    && RegionCode::parse(id).is_ok_and(|c| c.level() == RegionLevel::Street)
                    && app.map().region_names.contains_key(id)
                {
                    return Err(ApiError::Forbidden {
                        code: "out_of_scope",
                        detail: format!("street {id} is outside your region"),
                    });
                } else {
                    return Err(ApiError::bad_query("ids", format!("{id} is not a street code")));
                }
            }
            out
        }
        None => {
            let mut order: Vec<&RankRow> = last.iter().collect();
            if worst {
                order.reverse();
            }
            order.into_iter().take(limit).map(|r| (r.parts.street_code.clone(), r.parts.name.clone())).collect()
        }
    };
    // The months, oldest first.
    let mut periods = vec![month.clone()];
    while periods.len() < months as usize {
        let before = periods.last().and_then(|m| settlement::previous_month(m));
        match before {
            Some(m) => periods.push(m),
            None => break,
        }
    }
    periods.reverse();
    let mut values: Vec<Vec<Option<f64>>> = vec![Vec::with_capacity(periods.len()); chosen.len()];
    for m in &periods {
        let rows = if *m == month { last.clone() } else { assess::month_rows(app, &cfg, m).await? };
        for (k, (id, _)) in chosen.iter().enumerate() {
            values[k].push(rows.iter().find(|r| &r.parts.street_code == id).map(|r| r.score));
        }
    }
    Ok(Chart::Trend(TrendChart {
        title: format!(
            "{scope}街道考核总分趋势 {} 至 {}",
            periods.first().cloned().unwrap_or_default(),
            periods.last().cloned().unwrap_or_default()
        ),
        y_label: "总分".into(),
        kind: ColumnKind::Points,
        periods,
        series: chosen.into_iter().zip(values).map(|((_, name), values)| Series { name, values }).collect(),
    }))
}

/// Bars of the streets of `prefix` (all when `None`), best first, coloured by the fifth of
/// the city's ranking they are in; a district's streets say their city rank.
fn ranking_chart(scope: &str, month: &str, published: bool, rows: &[RankRow], prefix: Option<&str>) -> RankingChart {
    let status = if published { "" } else { " (暂定)" };
    RankingChart {
        title: format!("{scope}街道考核总分排名 {month}{status}"),
        value_label: SCORE_AXIS.into(),
        kind: ColumnKind::Points,
        bars: rows
            .iter()
            .filter(|r| in_scope(prefix, &r.parts.street_code))
            .map(|r| Bar {
                label: match prefix {
                    None => r.parts.name.clone(),
                    Some(_) => format!("{} (全市第{}名)", r.parts.name, r.rank),
                },
                value: r.score,
                grade: None,
                band: Some(chart::rank_band(r.rank as usize, rows.len())),
            })
            .collect(),
        ascending: false,
    }
}

// ---- the monthly report --------------------------------------------------------------------------

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportParams {
    /// Only the streets of this district (6 digits), inside the reader's scope.
    pub district: Option<String>,
}

/// The monthly street-assessment report (街道长效管理考核月度报告) as one printable HTML page:
/// the ranking with the three parts, the changes against last month, the ranking chart, the
/// special-work assessments and the on-site (three-random) findings of the month, stamped
/// published (正式) or provisional (暂定). The readers of the ranking; a district account gets
/// its district's streets (with their city ranks), `district=` cuts the city to one district.
#[utoipa::path(get, path = "/api/v1/reports/assessments/{month}", tag = "assessment", security(("bearer" = [])),
    params(("month" = String, Path, description = "The month and the format: `2026-11.html`"), ReportParams),
    responses((status = 200, content_type = "text/html", description = "The report"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn assessment_report(
    State(app): State<AppState>,
    auth: Auth,
    Path(month): Path<String>,
    Query(q): Query<ReportParams>,
) -> ApiResult<Response> {
    let prefix = view_prefix(&app, &auth, q.district.as_deref())?;
    let month = month
        .strip_suffix(".html")
        .filter(|m| settlement::valid_month(m))
        .ok_or_else(|| ApiError::invalid("month", "a month and format like 2026-11.html"))?
        .to_owned();
    let off = assess::offset(&app);
    let cfg = app.store.assessment_config().await?;
    let (all, published_at) = assess::ranking(&app, &cfg, &month).await?;
    let scope = scope_name(&app, prefix.as_deref());
    let out = RankingOut {
        month: month.clone(),
        published: published_at.is_some(),
        published_at,
        weights: cfg.weights,
        rows: all.iter().filter(|r| in_scope(prefix.as_deref(), &r.parts.street_code)).cloned().collect(),
    };
    let rows = &out.rows;
    let previous = settlement::previous_month(&month).unwrap_or_default();
    let w = cfg.weights;

    // Overview.
    let fringe = rows.iter().filter(|r| r.parts.class == StreetClass::Fringe).count();
    let mut summary = vec![format!(
        "参加考核街道 {} 个 (城区街道 {} 个, 城乡结合部 {} 个){}.",
        rows.len(),
        rows.len() - fringe,
        fringe,
        if prefix.is_some() { format!(", 排名为全市 {} 个街道中的名次", all.len()) } else { String::new() }
    )];
    if let (Some(best), Some(worst)) = (rows.first(), rows.last()) {
        let avg = rows.iter().map(|r| r.score).sum::<f64>() / rows.len() as f64;
        summary.push(format!(
            "第一名 {} ({} 分), 最后一名 {} ({} 分), 平均 {} 分.",
            best.parts.name,
            format_points(best.score),
            worst.parts.name,
            format_points(worst.score),
            format_points(avg)
        ));
    }
    summary.push(format!(
        "总分 = 数字城管考核 × {}% + 专项工作考核 × {}% + 实地考核 × {}%{}.",
        w.digital,
        w.special,
        w.on_site,
        if out.published { " (发布时的权重与得分)" } else { "" }
    ));

    // Changes against last month.
    let mut moved: Vec<&RankRow> = rows.iter().filter(|r| r.rank_delta.is_some_and(|d| d != 0)).collect();
    moved.sort_by(|a, b| b.rank_delta.cmp(&a.rank_delta).then(a.rank.cmp(&b.rank)));
    let up = rows.iter().filter(|r| r.rank_delta.is_some_and(|d| d > 0)).count();
    let down = rows.iter().filter(|r| r.rank_delta.is_some_and(|d| d < 0)).count();
    let same = rows.iter().filter(|r| r.rank_delta == Some(0)).count();
    let new = rows.iter().filter(|r| r.rank_delta.is_none()).count();
    let mut changes_summary = vec![format!(
        "与上月 ({previous}) 相比: 名次上升 {up} 个, 下降 {down} 个, 不变 {same} 个, 上月未排名 {new} 个."
    )];
    if let (Some(b), Some(l)) = (moved.first().filter(|r| r.rank_delta > Some(0)), moved.last()) {
        let fell = if l.rank_delta < Some(0) {
            format!("; 下降最多: {} (↓{})", l.parts.name, -l.rank_delta.unwrap_or(0))
        } else {
            String::new()
        };
        changes_summary.push(format!("上升最多: {} (↑{}){fell}.", b.parts.name, b.rank_delta.unwrap_or(0)));
    } else if let Some(l) = moved.last() {
        changes_summary.push(format!("下降最多: {} (↓{}).", l.parts.name, -l.rank_delta.unwrap_or(0)));
    }
    let changes = Table {
        title: "名次变化的街道".into(),
        columns: vec![
            Column::new("name", "街道", ColumnKind::Text),
            Column::new("previous_rank", "上月排名", ColumnKind::Int),
            Column::new("rank", "本月排名", ColumnKind::Int),
            Column::new("change", "名次变化", ColumnKind::Text),
            Column::new("previous_score", "上月总分", ColumnKind::Points),
            Column::new("score", "本月总分", ColumnKind::Points),
            Column::new("score_delta", "得分变化", ColumnKind::Points),
        ],
        rows: moved
            .iter()
            .map(|r| {
                let d = r.rank_delta.unwrap_or(0);
                vec![
                    r.parts.name.clone().into(),
                    (i64::from(r.rank) + d).into(),
                    i64::from(r.rank).into(),
                    (if d > 0 { format!("↑{d}") } else { format!("↓{}", -d) }).into(),
                    r.score_delta.map(|s| Cell::from(r.score - s)).unwrap_or(Cell::Empty),
                    r.score.into(),
                    r.score_delta.map(Cell::from).unwrap_or(Cell::Empty),
                ]
            })
            .collect(),
    };

    // Special work.
    let map = app.map();
    let special: Vec<SpecialOut> = app
        .store
        .list_special_assessments(&month, prefix.as_deref())
        .await?
        .into_iter()
        .map(assess::special_out)
        .collect();
    let items: Vec<f64> = special.iter().flat_map(|s| s.items.iter().map(|i| i.points)).collect();
    let special_streets: BTreeMap<&str, usize> = special.iter().fold(BTreeMap::new(), |mut m, s| {
        *m.entry(s.street_code.as_str()).or_default() += 1;
        m
    });
    let special_summary = vec![format!(
        "本月专项工作考核 {} 次, 涉及街道 {} 个; 扣分合计 {}, 加分合计 {}.",
        special.len(),
        special_streets.len(),
        format_points(-items.iter().filter(|p| **p < 0.0).sum::<f64>()),
        format_points(items.iter().filter(|p| **p > 0.0).sum::<f64>()),
    )];
    let special_table = special_table(&month, &special, &map.region_names, off).only(&[
        "street_name",
        "title",
        "items",
        "points",
        "created_at",
    ]);

    // On-site findings and the draws behind them.
    let draws: Vec<DrawOut> = app
        .store
        .list_draws(Some(&month))
        .await?
        .into_iter()
        .map(|d| assess::scoped(assess::draw_out(d), prefix.as_deref()))
        .collect();
    let findings: Vec<FindingOut> = app
        .store
        .list_findings(Some(&month), None)
        .await?
        .into_iter()
        .filter(|f| in_scope(prefix.as_deref(), &f.street_code))
        .map(assess::finding_out)
        .collect();
    let places: usize = draws.iter().map(|d| d.places.len()).sum();
    let revealed = draws.iter().filter(|d| d.revealed).count();
    let mut per_street: BTreeMap<String, usize> = BTreeMap::new();
    for f in &findings {
        *per_street.entry(f.street_code.clone()).or_default() += 1;
    }
    let mut on_site_summary = vec![format!(
        "本月三随机抽取 {} 次 (种子已公开 {} 次), 抽取点位 {} 个; 实地发现问题 {} 个, 涉及街道 {} 个, 扣分合计 {}.",
        draws.len(),
        revealed,
        places,
        findings.len(),
        per_street.len(),
        format_points(findings.iter().map(|f| f.points).sum::<f64>())
    )];
    if let Some((street, n)) = per_street.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))) {
        on_site_summary.push(format!("发现问题最多: {} ({n} 个).", map.region_name(street)));
    }
    let findings_table = findings_table(&app, "实地考核发现问题", &findings, &map.region_names, off).only(&[
        "street_name",
        "grid_code",
        "class_name",
        "points",
        "case_number",
        "found_at",
        "description",
    ]);

    let mut notes = vec![
        "数字城管考核取综合评价中该街道当月的得分, 无评价数据按 100 分计; 专项工作考核为 100 分加减当月各考核项分值 \
         (0–100); 实地考核为 100 分减去当月实地发现问题的扣分 (不低于 0)."
            .to_owned(),
        "总分精确到 0.01 分, 同分者名次并列 (1, 2, 2, 4); 名次变化 = 上月名次 − 本月名次, 正数为上升.".to_owned(),
    ];
    notes.push(match &out.published_at {
        Some(at) => format!("本月结果已于 {} 发布, 数据已冻结.", local(off, *at)),
        None => {
            "本月结果尚未发布, 为暂定数据: 发布前专项考核、实地考核的录入和配置的变更都会改变得分和名次.".to_owned()
        }
    });

    let ranking = ranking_table(&out).only(&[
        "rank",
        "class_rank",
        "name",
        "class",
        "digital",
        "special",
        "on_site",
        "score",
        "rank_delta",
        "score_delta",
    ]);
    let chart = Chart::Ranking(ranking_chart(&scope, &month, out.published, &all, prefix.as_deref()));
    let report = AssessmentMonthReport {
        scope_name: scope,
        month: month.clone(),
        generated_at: local_time(&app),
        published_at: out.published_at.map(|t| local(off, t)),
        summary,
        ranking,
        ranking_svg: None,
        changes_summary,
        changes,
        special_summary,
        special: special_table,
        on_site_summary,
        findings: findings_table,
        notes,
    };
    let page = tokio::task::spawn_blocking(move || -> Result<String, crate::report::ReportError> {
        let svg = if report.ranking.rows.is_empty() { None } else { Some(chart.to_svg()?) };
        Ok(html::render_assessment(&AssessmentMonthReport { ranking_svg: svg, ..report }))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    let file = match &prefix {
        Some(p) => format!("street-assessment-{p}-{month}.html"),
        None => format!("street-assessment-{month}.html"),
    };
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, format!("inline; filename=\"{file}\"")),
            (header::CACHE_CONTROL, "private, no-store".to_owned()),
        ],
        page,
    )
        .into_response())
}
