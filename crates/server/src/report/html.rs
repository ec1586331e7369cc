//! The monthly district report (区级月度评价报告) as one printable HTML page: A4 print styles,
//! Chinese first (English in small type beside each heading), the district's score, the
//! figures table, the trend, the rankings of its streets and communities, the heat map of its
//! grids, the ten worst grids and the time it was generated. Charts are inline SVG, so the
//! file stands alone: save it, mail it, or print it to PDF from any browser.
//!
//! The monthly street-assessment report (街道长效管理考核月度报告, [`AssessmentMonthReport`]) is
//! laid out the same way: its ranking with the three parts, the changes against last month, the
//! ranking chart, the special-work and on-site summaries, and a published or provisional stamp.
//!
//! The renderers take plain data; every text from the data is escaped.

use super::{format_cell, ColumnKind, Table};
use std::fmt::Write;

/// Everything the report shows, already computed.
#[derive(Debug, Clone, PartialEq)]
pub struct DistrictMonthReport {
    pub district_code: String,
    pub district_name: String,
    /// `YYYY-MM`.
    pub month: String,
    /// First and last day of the period, `YYYY-MM-DD`.
    pub from: String,
    pub to: String,
    /// When it was made, as people read it (e.g. `2026-12-01 08:30 (UTC+8)`).
    pub generated_at: String,
    /// The district's own score and grade, and its rank among the city's districts.
    pub headline: Option<Headline>,
    /// The district's figures: metric, value, numerator, denominator.
    pub figures: Table,
    pub streets: Table,
    pub communities: Table,
    /// The ten worst grids.
    pub worst_grids: Table,
    /// Inline SVG charts (from [`super::chart::Chart::to_svg`]); a missing one leaves its
    /// section without a chart.
    pub trend_svg: Option<String>,
    pub streets_svg: Option<String>,
    pub heatmap_svg: Option<String>,
    /// Sentences for the notes at the end (how figures are computed, weights in force, …).
    pub notes: Vec<String>,
}

/// The monthly street-assessment report, already computed.
#[derive(Debug, Clone, PartialEq)]
pub struct AssessmentMonthReport {
    /// Whose streets: `全市` or a district's name.
    pub scope_name: String,
    /// `YYYY-MM`.
    pub month: String,
    pub generated_at: String,
    /// When the month was published, as people read it; `None`: provisional (暂定), the
    /// figures may still change until it is published.
    pub published_at: Option<String>,
    /// Sentences of the overview (streets ranked, weights, best and worst).
    pub summary: Vec<String>,
    /// Every street: ranks, the three parts, score, changes.
    pub ranking: Table,
    /// The ranking as an inline SVG chart.
    pub ranking_svg: Option<String>,
    pub changes_summary: Vec<String>,
    /// The streets whose rank changed against last month.
    pub changes: Table,
    pub special_summary: Vec<String>,
    /// The month's special-work assessments.
    pub special: Table,
    pub on_site_summary: Vec<String>,
    /// The month's on-site findings.
    pub findings: Table,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Headline {
    pub score: f64,
    pub grade: String,
    /// (rank, out of) among the districts.
    pub rank: Option<(usize, usize)>,
}

/// Escape text for HTML content and attribute values.
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

const STYLE: &str = r#"
@page { size: A4; margin: 16mm 14mm 18mm 14mm; }
* { box-sizing: border-box; }
body { font-family: "Noto Sans CJK SC", "Source Han Sans SC", "Microsoft YaHei", "PingFang SC", sans-serif;
  color: #222; font-size: 10.5pt; line-height: 1.5; max-width: 190mm; margin: 0 auto; padding: 12px; }
h1 { font-size: 18pt; text-align: center; margin: 0 0 2mm; }
h2 { font-size: 13pt; border-bottom: 2px solid #4575b4; padding-bottom: 1mm; margin: 7mm 0 3mm; break-after: avoid; }
.en { color: #777; font-weight: normal; font-size: 0.75em; margin-left: 0.5em; }
.meta { text-align: center; color: #555; margin: 0 0 4mm; }
.headline { display: flex; gap: 8mm; justify-content: center; align-items: baseline; margin: 3mm 0; }
.headline .score { font-size: 26pt; font-weight: bold; }
.grade { display: inline-block; min-width: 1.6em; text-align: center; border-radius: 3px; font-weight: bold; }
.grade-A { background: #1a9850; color: #fff; } .grade-B { background: #91cf60; }
.grade-C { background: #fee08b; } .grade-D { background: #fc8d59; } .grade-E { background: #d73027; color: #fff; }
table { border-collapse: collapse; width: 100%; font-size: 9pt; margin: 2mm 0 4mm; }
caption { text-align: left; font-weight: bold; margin-bottom: 1mm; }
th, td { border: 1px solid #999; padding: 1.2mm 2mm; }
th { background: #dce6f1; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
thead { display: table-header-group; }
tr, figure { break-inside: avoid; }
figure { margin: 2mm 0 4mm; }
figure svg { width: 100%; height: auto; }
figcaption { color: #555; font-size: 9pt; text-align: center; }
.empty { color: #777; }
.stamp { display: inline-block; border: 3px solid; border-radius: 4px; padding: 1mm 4mm; font-weight: bold;
  font-size: 13pt; transform: rotate(-3deg); }
.stamp-published { color: #1a9850; } .stamp-provisional { color: #d73027; }
.center { text-align: center; }
footer { margin-top: 8mm; color: #555; font-size: 9pt; border-top: 1px solid #ccc; padding-top: 2mm; }
@media print { .noprint { display: none; } body { max-width: none; padding: 0; } }
"#;

/// The report as a complete HTML document.
pub fn render(r: &DistrictMonthReport) -> String {
    let mut h = String::new();
    let name = esc(&r.district_name);
    let month_zh = month_zh(&r.month);
    head(&mut h, &format!("{name} {month_zh} 数字城管月度评价报告"));
    let _ = write!(
        h,
        "<header>\n<h1>{name} {month_zh} 数字城管月度评价报告</h1>\n\
         <p class=\"meta\">Monthly urban management evaluation · {} · 区划代码 {} · 统计期 {} 至 {}</p>\n</header>\n",
        esc(&r.month),
        esc(&r.district_code),
        esc(&r.from),
        esc(&r.to)
    );

    section(&mut h, "summary", "一、总体情况", "Overview");
    match &r.headline {
        Some(hl) => {
            let _ = write!(
                h,
                "<div class=\"headline\"><span>综合得分 <span class=\"score\">{}</span></span>\
                 <span>等级 {}</span>",
                esc(&super::format_score(hl.score)),
                grade(&hl.grade)
            );
            if let Some((rank, of)) = hl.rank {
                let _ = write!(h, "<span>全市第 {rank} 名 / 共 {of} 个区</span>");
            }
            h.push_str("</div>\n");
        }
        None => h.push_str("<p class=\"empty\">本月无评价数据。</p>\n"),
    }
    table(&mut h, &r.figures);
    chart(&mut h, r.trend_svg.as_deref(), "得分趋势 (Score trend)");

    section(&mut h, "streets", "二、街道排名", "Streets ranked");
    chart(&mut h, r.streets_svg.as_deref(), "街道得分排名 (Streets by score)");
    table(&mut h, &r.streets);

    section(&mut h, "communities", "三、社区排名", "Communities ranked");
    table(&mut h, &r.communities);

    section(&mut h, "heatmap", "四、网格分布", "Grids on the map");
    chart(&mut h, r.heatmap_svg.as_deref(), "网格得分热力图, 黑框为最差网格 (Grid scores; the worst outlined)");

    section(&mut h, "worst-grids", "五、得分最低的十个网格", "The ten worst grids");
    table(&mut h, &r.worst_grids);

    section(&mut h, "notes", "六、说明", "Notes");
    list(&mut h, &r.notes);
    foot(&mut h, &r.generated_at);
    h
}

/// The street-assessment report as a complete HTML document.
pub fn render_assessment(r: &AssessmentMonthReport) -> String {
    let mut h = String::new();
    let name = esc(&r.scope_name);
    let month_zh = month_zh(&r.month);
    head(&mut h, &format!("{name} {month_zh} 街道长效管理考核月度报告"));
    let _ = write!(
        h,
        "<header>\n<h1>{name} {month_zh} 街道长效管理考核月度报告</h1>\n\
         <p class=\"meta\">Monthly street office assessment · {}</p>\n",
        esc(&r.month)
    );
    match &r.published_at {
        Some(at) => {
            let _ = writeln!(
                h,
                "<p class=\"center\"><span class=\"stamp stamp-published\">已发布 · 正式结果 (Published {})</span></p>",
                esc(at)
            );
        }
        None => h.push_str(
            "<p class=\"center\"><span class=\"stamp stamp-provisional\">暂定 · 未发布, 数据可能变化 \
             (Provisional: not published, figures may change)</span></p>\n",
        ),
    }
    h.push_str("</header>\n");

    section(&mut h, "summary", "一、总体情况", "Overview");
    paragraphs(&mut h, &r.summary);

    section(&mut h, "ranking", "二、考核排名", "Streets ranked");
    chart(&mut h, r.ranking_svg.as_deref(), "街道考核总分排名, 颜色按名次五等分 (Scores; colour by rank fifth)");
    table(&mut h, &r.ranking);

    section(&mut h, "changes", "三、与上月比较", "Changes against last month");
    paragraphs(&mut h, &r.changes_summary);
    table(&mut h, &r.changes);

    section(&mut h, "special", "四、专项工作考核", "Special-work assessments");
    paragraphs(&mut h, &r.special_summary);
    table(&mut h, &r.special);

    section(&mut h, "on-site", "五、实地考核 (三随机)", "On-site assessments");
    paragraphs(&mut h, &r.on_site_summary);
    table(&mut h, &r.findings);

    section(&mut h, "notes", "六、说明", "Notes");
    list(&mut h, &r.notes);
    foot(&mut h, &r.generated_at);
    h
}

fn head(h: &mut String, title: &str) {
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
    );
    h.push_str("<p class=\"noprint\"><button onclick=\"window.print()\">打印 / 保存为 PDF (Print)</button></p>\n");
}

fn foot(h: &mut String, generated_at: &str) {
    let _ = write!(
        h,
        "<footer>生成时间 (Generated): <time>{}</time> · citygrid 数字城管</footer>\n</body>\n</html>\n",
        esc(generated_at)
    );
}

fn paragraphs(h: &mut String, lines: &[String]) {
    for l in lines {
        let _ = writeln!(h, "<p>{}</p>", esc(l));
    }
}

fn list(h: &mut String, items: &[String]) {
    if items.is_empty() {
        h.push_str("<p class=\"empty\">无。</p>\n");
    } else {
        h.push_str("<ul>\n");
        for n in items {
            let _ = writeln!(h, "<li>{}</li>", esc(n));
        }
        h.push_str("</ul>\n");
    }
}

fn section(h: &mut String, id: &str, zh: &str, en: &str) {
    let _ = writeln!(h, "<h2 id=\"{id}\">{zh}<span class=\"en\">{en}</span></h2>");
}

fn grade(g: &str) -> String {
    let class = if matches!(g, "A" | "B" | "C" | "D" | "E") { format!(" grade-{g}") } else { String::new() };
    format!("<span class=\"grade{class}\">{}</span>", esc(g))
}

fn table(h: &mut String, t: &Table) {
    if t.rows.is_empty() {
        let _ = writeln!(h, "<p class=\"empty\">{}: 无数据 (no data)</p>", esc(&t.title));
        return;
    }
    let _ = write!(h, "<table>\n<caption>{}</caption>\n<thead><tr>", esc(&t.title));
    for c in &t.columns {
        let _ = write!(h, "<th>{}</th>", esc(&c.label_zh));
    }
    h.push_str("</tr></thead>\n<tbody>\n");
    for r in 0..t.rows.len() {
        h.push_str("<tr>");
        for (c, col) in t.columns.iter().enumerate() {
            let text = format_cell(t.cell(r, c), col.kind);
            match col.kind {
                ColumnKind::Text if col.key == "grade" && !text.is_empty() => {
                    let _ = write!(h, "<td>{}</td>", grade(&text));
                }
                ColumnKind::Text => {
                    let _ = write!(h, "<td>{}</td>", esc(&text));
                }
                _ => {
                    let shown = if text.is_empty() { "—".to_owned() } else { esc(&text) };
                    let _ = write!(h, "<td class=\"num\">{shown}</td>");
                }
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody>\n</table>\n");
}

/// An inline SVG chart. Only an `<svg>` document made by our chart renderer is inlined;
/// anything else is left out rather than pasted into the page.
fn chart(h: &mut String, svg: Option<&str>, caption: &str) {
    let Some(svg) = svg else { return };
    let svg = svg.trim_start();
    if !svg.starts_with("<svg") || svg.contains("<script") {
        return;
    }
    let _ = write!(h, "<figure>\n{svg}\n<figcaption>{}</figcaption>\n</figure>\n", esc(caption));
}

/// `2026-11` → `2026年11月` (anything else as given).
fn month_zh(month: &str) -> String {
    match month.split_once('-') {
        Some((y, m)) if y.len() == 4 && m.len() == 2 && m.chars().all(|c| c.is_ascii_digit()) => {
            format!("{}年{}月", esc(y), m.trim_start_matches('0'))
        }
        _ => esc(month),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::chart::{Bar, Chart, RankingChart};
    use crate::report::tests::sample;
    use crate::report::{Cell, Column};

    fn report() -> DistrictMonthReport {
        let mut grids = sample();
        grids.title = "得分最低的网格".into();
        grids.rows[0][1] = Cell::Text("<script>alert('x')</script>".into());
        let streets_svg = Chart::Ranking(RankingChart {
            title: "街道排名".into(),
            value_label: "得分".into(),
            kind: ColumnKind::Score,
            bars: vec![Bar { label: "丰财街道".into(), value: 87.5, grade: Some("B".into()), band: None }],
            ascending: false,
        })
        .to_svg()
        .unwrap();
        DistrictMonthReport {
            district_code: "320302".into(),
            district_name: "鼓楼区".into(),
            month: "2026-11".into(),
            from: "2026-11-01".into(),
            to: "2026-11-30".into(),
            generated_at: "2026-12-01 08:30 (UTC+8)".into(),
            headline: Some(Headline { score: 86.04, grade: "B".into(), rank: Some((2, 7)) }),
            figures: Table {
                title: "主要指标".into(),
                columns: vec![
                    Column::new("metric", "指标", ColumnKind::Text),
                    Column::new("value", "数值", ColumnKind::Rate),
                ],
                rows: vec![vec!["结案率".into(), 0.9.into()]],
            },
            streets: sample(),
            communities: Table { rows: vec![], ..sample() },
            worst_grids: grids,
            trend_svg: None,
            streets_svg: Some(streets_svg),
            heatmap_svg: Some("<div onload=x>not a chart</div>".into()),
            notes: vec!["权重: 结案率 40% & 按期结案率 40%".into()],
        }
    }

    #[test]
    fn report_has_every_section_in_order() {
        let html = render(&report());
        assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"zh-CN\">"));
        assert!(html.contains("<title>鼓楼区 2026年11月 数字城管月度评价报告</title>"));
        let order = [
            "id=\"summary\"",
            "id=\"streets\"",
            "id=\"communities\"",
            "id=\"heatmap\"",
            "id=\"worst-grids\"",
            "id=\"notes\"",
            "<footer>",
        ];
        let at: Vec<usize> = order.iter().map(|s| html.find(s).unwrap_or_else(|| panic!("{s} missing"))).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "sections in order: {at:?}");
        assert!(html.contains("<span class=\"score\">86.0</span>"));
        assert!(html.contains("<span class=\"grade grade-B\">B</span>"));
        assert!(html.contains("全市第 2 名 / 共 7 个区"));
        assert!(html.contains("<td class=\"num\">90.00%</td>"), "figures formatted");
        assert!(html.contains("<time>2026-12-01 08:30 (UTC+8)</time>"));
        assert!(
            html.contains("<p class=\"empty\">街道评价 2026年11月: 无数据 (no data)</p>"),
            "an empty table says so"
        );
        assert!(html.contains("@page { size: A4;") && html.contains("@media print"));
        assert!(html.contains("<td class=\"num\">—</td>"), "an empty rate is a dash");
    }

    #[test]
    fn charts_are_inline_svg_and_only_svg() {
        let html = render(&report());
        assert_eq!(html.matches("<figure>").count(), 1, "the ranking only: no trend, and the bad heat map is dropped");
        assert!(html.contains("<figure>\n<svg"));
        assert!(html.contains("1. 丰财街道"));
        assert!(!html.contains("onload"), "a non-SVG chart is never pasted in");
    }

    #[test]
    fn text_is_escaped() {
        let html = render(&report());
        assert!(!html.contains("<script>"), "the name is not markup");
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        assert!(html.contains("结案率 40% &amp; 按期结案率 40%"));
        assert!(html.contains("牌楼, &quot;东&quot;街道"));
        let mut r = report();
        r.district_name = "<b>区".into();
        assert!(render(&r).contains("<h1>&lt;b&gt;区 2026年11月"));
    }

    fn assessment() -> AssessmentMonthReport {
        AssessmentMonthReport {
            scope_name: "<i>全市".into(),
            month: "2026-09".into(),
            generated_at: "2026-10-02 09:00 (UTC+8)".into(),
            published_at: None,
            summary: vec!["共 51 个街道参加考核.".into()],
            ranking: sample(),
            ranking_svg: report().streets_svg,
            changes_summary: vec!["名次上升 1 个街道.".into()],
            changes: Table { rows: vec![], ..sample() },
            special_summary: vec![],
            special: sample(),
            on_site_summary: vec!["抽取 1 次 & 发现问题 0 个.".into()],
            findings: Table { title: "实地考核发现问题".into(), rows: vec![], ..sample() },
            notes: vec![],
        }
    }

    #[test]
    fn assessment_report_has_its_sections_and_stamp() {
        let html = render_assessment(&assessment());
        assert!(html.contains("<title>&lt;i&gt;全市 2026年9月 街道长效管理考核月度报告</title>"));
        let order =
            ["id=\"summary\"", "id=\"ranking\"", "id=\"changes\"", "id=\"special\"", "id=\"on-site\"", "id=\"notes\""];
        let at: Vec<usize> = order.iter().map(|s| html.find(s).unwrap_or_else(|| panic!("{s} missing"))).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "sections in order: {at:?}");
        assert!(html.contains("stamp-provisional") && !html.contains("stamp stamp-published"));
        assert_eq!(html.matches("<figure>\n<svg").count(), 1, "the ranking chart inline");
        assert!(html.contains("<p>抽取 1 次 &amp; 发现问题 0 个.</p>"), "summaries escaped");
        assert!(html.contains("实地考核发现问题: 无数据 (no data)"));
        let published =
            render_assessment(&AssessmentMonthReport { published_at: Some("2026-10-02 09:00".into()), ..assessment() });
        assert!(published.contains("stamp stamp-published") && !published.contains("stamp stamp-provisional"));
        assert!(published.contains("Published 2026-10-02 09:00"));
    }

    #[test]
    fn months_read_in_chinese() {
        assert_eq!(month_zh("2026-11"), "2026年11月");
        assert_eq!(month_zh("2026-03"), "2026年3月");
        assert_eq!(month_zh("x<"), "x&lt;");
    }
}
