//! Charts for reports (plotters): a trend line (one series per subject over periods), a
//! ranking (horizontal bars, sorted, coloured by grade) and a heat map by grid (the grids'
//! polygons coloured by a value, with a legend), each rendered as SVG or PNG from the same
//! drawing code.
//!
//! SVG text names a font list (`Noto Sans CJK SC`, `Microsoft YaHei`, …) and lets the viewer's
//! fonts draw it; PNG text is drawn from the bitmap font in [`super::pixel_font`], so a PNG
//! made on a server without fonts shows Chinese. Layout measures text the same way for both
//! (a Chinese character one em, a Latin one half), so labels line up in either format.

use super::pixel_font::{text_width, PixelFontBackend};
use super::{format_rate, format_score, ColumnKind, ReportError};
use geo::{BoundingRect, Centroid, MultiPolygon};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// The fonts an SVG asks for, Chinese first: Linux (Noto/Source Han), Windows (YaHei), macOS
/// (PingFang), then whatever sans-serif the viewer has.
pub const FONT_STACK: &str = "Noto Sans CJK SC, Source Han Sans SC, Microsoft YaHei, PingFang SC, sans-serif";

/// plotters writes an SVG font size of `size / 1.24`: 20 gives 16 px text, the size of the
/// PNG font; titles are twice that in PNG and 24 px in SVG.
const TEXT: f64 = 20.0;
const TITLE: f64 = 30.0;
/// Pixel height of a line of text.
const LINE: i32 = 16;

/// How a chart is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Svg,
    Png,
}

impl ImageFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            ImageFormat::Svg => "image/svg+xml",
            ImageFormat::Png => "image/png",
        }
    }
    pub fn extension(self) -> &'static str {
        match self {
            ImageFormat::Svg => "svg",
            ImageFormat::Png => "png",
        }
    }
}

/// A line per subject over periods (days, weeks or months). A `None` value leaves a gap.
#[derive(Debug, Clone, PartialEq)]
pub struct TrendChart {
    pub title: String,
    /// What the y axis shows (e.g. `得分`).
    pub y_label: String,
    pub kind: ColumnKind,
    /// Period labels, e.g. `2026-11-02` or `2026-11`.
    pub periods: Vec<String>,
    pub series: Vec<Series>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    /// One value per period.
    pub values: Vec<Option<f64>>,
}

/// Subjects ranked by a value, one bar each.
#[derive(Debug, Clone, PartialEq)]
pub struct RankingChart {
    pub title: String,
    /// What the bars measure (e.g. `得分`).
    pub value_label: String,
    pub kind: ColumnKind,
    pub bars: Vec<Bar>,
    /// Lowest first (a "worst" list) instead of highest first.
    pub ascending: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    /// A–E: colours the bar and is written after its value.
    pub grade: Option<String>,
    /// Without a grade: a rank band, 0 (the worst fifth, red) to 4 (the best fifth, green),
    /// colouring the bar on the same ramp. Bars with neither are blue.
    pub band: Option<u8>,
}

/// The band (0 worst … 4 best) of a rank among `n`: the fifth of the field the middle of the
/// rank's place falls in, so the first is always in the best band and the last in the worst;
/// ties share a band as they share a rank.
pub fn rank_band(rank: usize, n: usize) -> u8 {
    if n == 0 || rank == 0 {
        return 0;
    }
    // 0 for the first fifth … 4 for the last: ⌊(rank − ½) × 5 / n⌋ in integers.
    let from_top = ((2 * rank.min(n) - 1) * 5) / (2 * n);
    4 - from_top.min(4) as u8
}

/// Grids (or any regions) coloured by a value.
#[derive(Debug, Clone, PartialEq)]
pub struct HeatMap {
    pub title: String,
    /// What the colours mean (e.g. `得分`).
    pub legend_label: String,
    pub kind: ColumnKind,
    pub cells: Vec<HeatCell>,
    /// Green for high values (scores, rates of success) or for low ones (counts of problems).
    pub higher_is_better: bool,
    /// The value range of the colour scale; the data's own range when `None`.
    pub range: Option<(f64, f64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeatCell {
    pub code: String,
    /// Written on the cell when there are few cells and it fits.
    pub label: String,
    /// WGS-84 longitude/latitude.
    pub polygon: MultiPolygon<f64>,
    /// `None`: no data (grey).
    pub value: Option<f64>,
    /// Outlined in black (the worst grids).
    pub highlight: bool,
}

/// Any of the charts.
#[derive(Debug, Clone, PartialEq)]
pub enum Chart {
    Trend(TrendChart),
    Ranking(RankingChart),
    HeatMap(HeatMap),
}

/// At most this many bars, series and labelled cells: beyond, a chart is unreadable (and a
/// ranking of 20,000 grids would be 600,000 pixels tall). What is left out is said on the chart.
pub const MAX_BARS: usize = 200;
pub const MAX_SERIES: usize = 20;
const MAX_CELL_LABELS: usize = 60;
const MAX_OUTLINED: usize = 2000;

const WIDTH: u32 = 900;
const BAR_ROW: i32 = 28;

impl Chart {
    /// Pixel size of the image.
    pub fn size(&self) -> (u32, u32) {
        match self {
            Chart::Trend(_) => (WIDTH, 520),
            Chart::Ranking(r) => {
                let n = r.bars.len().clamp(1, MAX_BARS) as u32;
                (WIDTH, 60 + n * BAR_ROW as u32 + 70)
            }
            Chart::HeatMap(_) => (WIDTH, 720),
        }
    }

    /// The chart as SVG text.
    pub fn to_svg(&self) -> Result<String, ReportError> {
        let mut out = String::new();
        {
            let root = SVGBackend::with_string(&mut out, self.size()).into_drawing_area();
            self.draw(&root).map_err(|e| ReportError::Chart(e.to_string()))?;
            root.present().map_err(|e| ReportError::Chart(e.to_string()))?;
        }
        Ok(out)
    }

    /// The chart as PNG bytes (8-bit RGB).
    pub fn to_png(&self) -> Result<Vec<u8>, ReportError> {
        let (w, h) = self.size();
        let mut rgb = vec![255u8; w as usize * h as usize * 3];
        {
            let backend = PixelFontBackend { inner: BitMapBackend::with_buffer(&mut rgb, (w, h)) };
            let root = backend.into_drawing_area();
            self.draw(&root).map_err(|e| ReportError::Chart(e.to_string()))?;
            root.present().map_err(|e| ReportError::Chart(e.to_string()))?;
        }
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, w, h);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| ReportError::Png(e.to_string()))?;
        writer.write_image_data(&rgb).map_err(|e| ReportError::Png(e.to_string()))?;
        writer.finish().map_err(|e| ReportError::Png(e.to_string()))?;
        Ok(out)
    }

    pub fn render(&self, format: ImageFormat) -> Result<Vec<u8>, ReportError> {
        match format {
            ImageFormat::Svg => self.to_svg().map(String::into_bytes),
            ImageFormat::Png => self.to_png(),
        }
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        match self {
            Chart::Trend(t) => draw_trend(root, t),
            Chart::Ranking(r) => draw_ranking(root, r),
            Chart::HeatMap(m) => draw_heatmap(root, m),
        }
    }
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

// ---- shared pieces -------------------------------------------------------------------------

const INK: RGBColor = RGBColor(0x22, 0x22, 0x22);
const MUTED: RGBColor = RGBColor(0x66, 0x66, 0x66);
const RULE: RGBColor = RGBColor(0xDD, 0xDD, 0xDD);
const NO_DATA: RGBColor = RGBColor(0xCC, 0xCC, 0xCC);
const NO_GRADE: RGBColor = RGBColor(0x45, 0x75, 0xB4);

/// Tableau 10: distinct colours for the trend's series.
const SERIES: [RGBColor; 10] = [
    RGBColor(0x4E, 0x79, 0xA7),
    RGBColor(0xF2, 0x8E, 0x2B),
    RGBColor(0xE1, 0x57, 0x59),
    RGBColor(0x76, 0xB7, 0xB2),
    RGBColor(0x59, 0xA1, 0x4F),
    RGBColor(0xED, 0xC9, 0x48),
    RGBColor(0xB0, 0x7A, 0xA1),
    RGBColor(0xFF, 0x9D, 0xA7),
    RGBColor(0x9C, 0x75, 0x5F),
    RGBColor(0xBA, 0xB0, 0xAC),
];

/// Red → yellow → green (ColorBrewer RdYlGn), for grades and the heat map.
const RAMP: [RGBColor; 5] = [
    RGBColor(0xD7, 0x30, 0x27),
    RGBColor(0xFC, 0x8D, 0x59),
    RGBColor(0xFE, 0xE0, 0x8B),
    RGBColor(0x91, 0xCF, 0x60),
    RGBColor(0x1A, 0x98, 0x50),
];

/// The colour of a grade: A green … E red.
pub fn grade_color(grade: Option<&str>) -> RGBColor {
    match grade {
        Some("A") => RAMP[4],
        Some("B") => RAMP[3],
        Some("C") => RAMP[2],
        Some("D") => RAMP[1],
        Some("E") => RAMP[0],
        _ => NO_GRADE,
    }
}

/// The ramp at `t` in 0–1 (0 red, 1 green), interpolated.
fn ramp(t: f64) -> RGBColor {
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    let x = t * (RAMP.len() - 1) as f64;
    let i = (x.floor() as usize).min(RAMP.len() - 2);
    let f = x - i as f64;
    let (a, b) = (RAMP[i], RAMP[i + 1]);
    let mix = |p: u8, q: u8| (f64::from(p) + (f64::from(q) - f64::from(p)) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

fn font(size: f64, color: &RGBColor, h: HPos, v: VPos) -> TextStyle<'static> {
    (FONT_STACK, size).into_font().color(color).pos(Pos::new(h, v))
}

/// Width of text in pixels as both formats lay it out.
fn width(text: &str, size: f64) -> i32 {
    if size >= 24.0 {
        text_width(text) * 2
    } else {
        text_width(text)
    }
}

/// `text` cut to `max` pixels, with an ellipsis when cut.
fn fit(text: &str, size: f64, max: i32) -> String {
    if width(text, size) <= max {
        return text.to_owned();
    }
    let mut out = String::new();
    for c in text.chars() {
        let mut next = out.clone();
        next.push(c);
        if width(&next, size) + width("…", size) > max {
            break;
        }
        out = next;
    }
    out.push('…');
    out
}

fn value_text(kind: ColumnKind, v: f64) -> String {
    match kind {
        ColumnKind::Rate => format_rate(v),
        ColumnKind::Int => format!("{}", v.round() as i64),
        ColumnKind::Points => super::format_points(v),
        ColumnKind::Yuan => citygrid_core::reward::yuan(v.round() as i64),
        ColumnKind::Score | ColumnKind::Text => format_score(v),
    }
}

/// The natural range of a kind of value: scores 0–100, rates 0–1, counts from 0 to the data.
fn natural_range(kind: ColumnKind, values: impl Iterator<Item = f64>) -> (f64, f64) {
    match kind {
        ColumnKind::Score | ColumnKind::Points => (0.0, 100.0),
        ColumnKind::Rate => (0.0, 1.0),
        ColumnKind::Int | ColumnKind::Yuan | ColumnKind::Text => {
            let max = values.filter(|v| v.is_finite()).fold(0.0_f64, f64::max);
            (0.0, if max <= 0.0 { 1.0 } else { max * 1.1 })
        }
    }
}

fn title<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, text: &str) -> DrawResult<DB> {
    let w = root.dim_in_pixel().0 as i32;
    root.draw(&Text::new(fit(text, TITLE, w - 40), (w / 2, 14), font(TITLE, &INK, HPos::Center, VPos::Top)))
}

fn note<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, text: &str) -> DrawResult<DB> {
    let (w, h) = root.dim_in_pixel();
    root.draw(&Text::new(text.to_owned(), (w as i32 - 10, h as i32 - 6), font(TEXT, &MUTED, HPos::Right, VPos::Bottom)))
}

// ---- trend ---------------------------------------------------------------------------------

fn draw_trend<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, t: &TrendChart) -> DrawResult<DB> {
    title(root, &t.title)?;
    let (w, _) = root.dim_in_pixel();
    let legend_w = 200;
    let body = root.margin(56, 10, 10, 10);
    let (plot, legend) = body.split_horizontally(w as i32 - 20 - legend_w);
    let n = t.periods.len().max(1) as i32;
    let (y0, y1) = natural_range(t.kind, t.series.iter().flat_map(|s| s.values.iter().flatten().copied()));
    let mut chart = ChartBuilder::on(&plot)
        .margin_right(16)
        .x_label_area_size(44)
        .y_label_area_size(76)
        .build_cartesian_2d(-1..n, y0..y1)?;
    let periods = &t.periods;
    let every = periods.len().div_ceil(12).max(1);
    let kind = t.kind;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(RULE)
        .x_labels(periods.len() + 2)
        .x_label_formatter(&|i| {
            usize::try_from(*i)
                .ok()
                .filter(|i| i % every == 0)
                .and_then(|i| periods.get(i))
                .cloned()
                .unwrap_or_default()
        })
        .y_labels(6)
        .y_label_formatter(&|v| value_text(kind, *v))
        .y_desc(t.y_label.clone())
        .label_style(font(TEXT, &INK, HPos::Center, VPos::Top))
        .axis_desc_style(font(TEXT, &INK, HPos::Center, VPos::Top))
        .draw()?;
    for (k, s) in t.series.iter().take(MAX_SERIES).enumerate() {
        let color = SERIES[k % SERIES.len()];
        // A gap (no value) ends one line and starts the next.
        let mut run: Vec<(i32, f64)> = Vec::new();
        let mut runs = Vec::new();
        for (i, v) in s.values.iter().enumerate().take(periods.len()) {
            match v {
                Some(v) if v.is_finite() => run.push((i as i32, *v)),
                _ => runs.push(std::mem::take(&mut run)),
            }
        }
        runs.push(run);
        for run in runs.into_iter().filter(|r| !r.is_empty()) {
            chart.draw_series(LineSeries::new(run.clone(), color.stroke_width(2)))?;
            chart.draw_series(run.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
        }
    }
    // The legend, one line per series.
    for (k, s) in t.series.iter().take(MAX_SERIES).enumerate() {
        let color = SERIES[k % SERIES.len()];
        let y = 10 + k as i32 * 22;
        legend.draw(&Rectangle::new([(4, y + 3), (22, y + 13)], color.filled()))?;
        legend.draw(&Text::new(fit(&s.name, TEXT, legend_w - 36), (30, y), font(TEXT, &INK, HPos::Left, VPos::Top)))?;
    }
    if t.series.len() > MAX_SERIES {
        note(
            root,
            &format!(
                "另有 {} 条曲线未画出 ({} more series not drawn)",
                t.series.len() - MAX_SERIES,
                t.series.len() - MAX_SERIES
            ),
        )?;
    }
    Ok(())
}

// ---- ranking -------------------------------------------------------------------------------

/// The bars in rank order: by value (highest first unless `ascending`); ties keep the order
/// they were given in (the caller's tie-break, e.g. by code), as the sort is stable.
pub fn ranked(r: &RankingChart) -> Vec<&Bar> {
    let mut bars: Vec<&Bar> = r.bars.iter().collect();
    bars.sort_by(|a, b| if r.ascending { a.value.total_cmp(&b.value) } else { b.value.total_cmp(&a.value) });
    bars
}

fn draw_ranking<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &RankingChart) -> DrawResult<DB> {
    title(root, &r.title)?;
    let (w, _) = root.dim_in_pixel();
    let bars = ranked(r);
    let shown = &bars[..bars.len().min(MAX_BARS)];
    let label_w = shown
        .iter()
        .enumerate()
        .map(|(i, b)| width(&format!("{}. {}", i + 1, b.label), TEXT))
        .max()
        .unwrap_or(0)
        .clamp(80, 300);
    let (x0, x1) = (20 + label_w + 10, w as i32 - 90);
    let top = 60;
    let (v0, v1) = natural_range(r.kind, r.bars.iter().map(|b| b.value));
    let x_of = |v: f64| x0 + (((v - v0) / (v1 - v0)).clamp(0.0, 1.0) * f64::from(x1 - x0)).round() as i32;
    let bottom = top + shown.len().max(1) as i32 * BAR_ROW;
    // Value axis: five steps with light rules, labels below.
    for k in 0..=5 {
        let v = v0 + (v1 - v0) * f64::from(k) / 5.0;
        let x = x_of(v);
        root.draw(&PathElement::new(vec![(x, top - 4), (x, bottom)], RULE.stroke_width(1)))?;
        root.draw(&Text::new(value_text(r.kind, v), (x, bottom + 6), font(TEXT, &MUTED, HPos::Center, VPos::Top)))?;
    }
    root.draw(&Text::new(
        r.value_label.clone(),
        ((x0 + x1) / 2, bottom + 30),
        font(TEXT, &INK, HPos::Center, VPos::Top),
    ))?;
    for (i, b) in shown.iter().enumerate() {
        let y = top + i as i32 * BAR_ROW;
        let color = match (&b.grade, b.band) {
            (None, Some(band)) => RAMP[usize::from(band.min(4))],
            (g, _) => grade_color(g.as_deref()),
        };
        root.draw(&Rectangle::new([(x0, y + 4), (x_of(b.value).max(x0 + 1), y + BAR_ROW - 4)], color.filled()))?;
        root.draw(&Text::new(
            fit(&format!("{}. {}", i + 1, b.label), TEXT, label_w),
            (x0 - 8, y + BAR_ROW / 2),
            font(TEXT, &INK, HPos::Right, VPos::Center),
        ))?;
        let value = match &b.grade {
            Some(g) => format!("{} {g}", value_text(r.kind, b.value)),
            None => value_text(r.kind, b.value),
        };
        root.draw(&Text::new(value, (x_of(b.value) + 6, y + BAR_ROW / 2), font(TEXT, &INK, HPos::Left, VPos::Center)))?;
    }
    root.draw(&PathElement::new(vec![(x0, top - 4), (x0, bottom)], INK.stroke_width(1)))?;
    if bars.len() > MAX_BARS {
        note(root, &format!("仅列前 {MAX_BARS} 名, 共 {} (first {MAX_BARS} of {})", bars.len(), bars.len()))?;
    }
    Ok(())
}

// ---- heat map ------------------------------------------------------------------------------

fn draw_heatmap<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, m: &HeatMap) -> DrawResult<DB> {
    title(root, &m.title)?;
    let (w, h) = root.dim_in_pixel();
    let legend_w = 180;
    let area = (20, 60, w as i32 - legend_w - 20, h as i32 - 20); // x0, y0, x1, y1
    let values = m.cells.iter().filter_map(|c| c.value).filter(|v| v.is_finite());
    let (lo, hi) = match m.range {
        Some(r) => r,
        None => values
            .fold(None, |acc: Option<(f64, f64)>, v| match acc {
                None => Some((v, v)),
                Some((a, b)) => Some((a.min(v), b.max(v))),
            })
            .unwrap_or((0.0, 1.0)),
    };
    let (lo, hi) = if hi > lo { (lo, hi) } else { (lo - 1.0, lo + 1.0) };
    let color_of = |v: Option<f64>| match v {
        Some(v) if v.is_finite() => {
            let t = (v - lo) / (hi - lo);
            ramp(if m.higher_is_better { t } else { 1.0 - t })
        }
        _ => NO_DATA,
    };

    // Project longitude/latitude onto the drawing area: equirectangular, longitude shrunk by
    // cos(latitude) so that a square kilometre stays square, north up, aspect kept.
    let bounds = m.cells.iter().filter_map(|c| c.polygon.bounding_rect()).fold(None, |acc: Option<geo::Rect>, r| {
        Some(match acc {
            None => r,
            Some(a) => geo::Rect::new(
                geo::coord! { x: a.min().x.min(r.min().x), y: a.min().y.min(r.min().y) },
                geo::coord! { x: a.max().x.max(r.max().x), y: a.max().y.max(r.max().y) },
            ),
        })
    });
    if let Some(b) = bounds {
        let k = ((b.min().y + b.max().y) / 2.0).to_radians().cos();
        let (dx, dy) = (((b.max().x - b.min().x) * k).max(1e-9), (b.max().y - b.min().y).max(1e-9));
        let (aw, ah) = (f64::from(area.2 - area.0), f64::from(area.3 - area.1));
        let s = (aw / dx).min(ah / dy);
        let (ox, oy) = (f64::from(area.0) + (aw - dx * s) / 2.0, f64::from(area.1) + (ah - dy * s) / 2.0);
        let project = |c: geo::Coord<f64>| -> (i32, i32) {
            ((ox + (c.x - b.min().x) * k * s).round() as i32, (oy + (b.max().y - c.y) * s).round() as i32)
        };
        let ring = |r: &geo::LineString<f64>| -> Vec<(i32, i32)> {
            let mut pts: Vec<(i32, i32)> = r.0.iter().map(|c| project(*c)).collect();
            pts.dedup();
            pts
        };
        // Thin white borders between cells, except on a map so dense (a whole city's grids)
        // that they would cover the colours and double the size of the SVG.
        let outline = m.cells.len() <= MAX_OUTLINED;
        // Highlighted cells last, so their outline is on top.
        let mut order: Vec<&HeatCell> = m.cells.iter().collect();
        order.sort_by_key(|c| c.highlight);
        for cell in &order {
            let fill = color_of(cell.value);
            for poly in &cell.polygon.0 {
                let pts = ring(poly.exterior());
                if pts.len() < 3 {
                    continue;
                }
                root.draw(&Polygon::new(pts.clone(), fill.filled()))?;
                if cell.highlight {
                    root.draw(&PathElement::new(pts, BLACK.stroke_width(3)))?;
                } else if outline {
                    root.draw(&PathElement::new(pts, WHITE.stroke_width(1)))?;
                }
            }
        }
        if m.cells.len() <= MAX_CELL_LABELS {
            for cell in &m.cells {
                let (Some(c), Some(r)) = (cell.polygon.centroid(), cell.polygon.bounding_rect()) else { continue };
                let (p, room) = (project(c.0), (r.max().x - r.min().x) * k * s);
                if !cell.label.is_empty() && f64::from(width(&cell.label, TEXT)) <= room {
                    root.draw(&Text::new(cell.label.clone(), p, font(TEXT, &INK, HPos::Center, VPos::Center)))?;
                }
            }
        }
    }

    // Legend: the colour scale from high (top) to low, then "no data" and the outline.
    let lx = w as i32 - legend_w;
    root.draw(&Text::new(
        fit(&m.legend_label, TEXT, legend_w - 10),
        (lx, 70),
        font(TEXT, &INK, HPos::Left, VPos::Top),
    ))?;
    let (bar_top, bar_h, steps) = (100, 240, 24);
    for i in 0..steps {
        let t = 1.0 - (f64::from(i) + 0.5) / f64::from(steps);
        let v = lo + (hi - lo) * t;
        let y = bar_top + i * bar_h / steps;
        root.draw(&Rectangle::new([(lx, y), (lx + 24, y + bar_h / steps)], color_of(Some(v)).filled()))?;
    }
    for (t, anchor) in [(1.0, VPos::Top), (0.5, VPos::Center), (0.0, VPos::Bottom)] {
        let y = bar_top + ((1.0 - t) * f64::from(bar_h)).round() as i32;
        root.draw(&Text::new(
            value_text(m.kind, lo + (hi - lo) * t),
            (lx + 32, y),
            font(TEXT, &INK, HPos::Left, anchor),
        ))?;
    }
    let y = bar_top + bar_h + 24;
    root.draw(&Rectangle::new([(lx, y), (lx + 24, y + LINE)], NO_DATA.filled()))?;
    root.draw(&Text::new("无数据", (lx + 32, y), font(TEXT, &INK, HPos::Left, VPos::Top)))?;
    if m.cells.iter().any(|c| c.highlight) {
        let y = y + 28;
        root.draw(&Rectangle::new([(lx, y), (lx + 24, y + LINE)], BLACK.stroke_width(3)))?;
        root.draw(&Text::new("最差网格", (lx + 32, y), font(TEXT, &INK, HPos::Left, VPos::Top)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::polygon;

    fn trend() -> TrendChart {
        TrendChart {
            title: "街道得分趋势 2026年11月".into(),
            y_label: "得分".into(),
            kind: ColumnKind::Score,
            periods: (1..=4).map(|w| format!("W{w}")).collect(),
            series: vec![
                Series { name: "丰财街道".into(), values: vec![Some(80.0), Some(85.0), None, Some(90.0)] },
                Series { name: "牌楼街道".into(), values: vec![Some(60.0), Some(62.5), Some(70.0), Some(71.0)] },
            ],
        }
    }

    fn ranking() -> RankingChart {
        RankingChart {
            title: "街道排名".into(),
            value_label: "得分".into(),
            kind: ColumnKind::Score,
            bars: vec![
                Bar { label: "牌楼街道".into(), value: 55.0, grade: Some("D".into()), band: None },
                Bar { label: "丰财街道".into(), value: 92.5, grade: Some("A".into()), band: None },
                Bar { label: "黄楼街道".into(), value: 77.0, grade: Some("B".into()), band: None },
            ],
            ascending: false,
        }
    }

    fn square(x: f64, y: f64) -> MultiPolygon<f64> {
        let d = 0.01;
        MultiPolygon(vec![
            polygon![(x: x, y: y), (x: x + d, y: y), (x: x + d, y: y + d), (x: x, y: y + d), (x: x, y: y)],
        ])
    }

    fn heatmap() -> HeatMap {
        HeatMap {
            title: "网格得分热力图".into(),
            legend_label: "得分".into(),
            kind: ColumnKind::Score,
            cells: vec![
                HeatCell {
                    code: "320302001001001".into(),
                    label: "001".into(),
                    polygon: square(117.18, 34.26),
                    value: Some(95.0),
                    highlight: false,
                },
                HeatCell {
                    code: "320302001001002".into(),
                    label: "002".into(),
                    polygon: square(117.19, 34.26),
                    value: Some(40.0),
                    highlight: true,
                },
                HeatCell {
                    code: "320302001001003".into(),
                    label: "003".into(),
                    polygon: square(117.18, 34.27),
                    value: None,
                    highlight: false,
                },
            ],
            higher_is_better: true,
            range: Some((0.0, 100.0)),
        }
    }

    /// The fill colours of the SVG's polygons, in drawing order.
    fn polygon_fills(svg: &str) -> Vec<String> {
        svg.lines()
            .filter(|l| l.starts_with("<polygon"))
            .filter_map(|l| l.split("fill=\"").nth(1).and_then(|r| r.split('"').next()).map(str::to_owned))
            .collect()
    }

    fn hex(c: RGBColor) -> String {
        format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
    }

    #[test]
    fn trend_svg_has_series_names_periods_and_lines() {
        let svg = Chart::Trend(trend()).to_svg().unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        for label in ["街道得分趋势 2026年11月", "丰财街道", "牌楼街道", "W1", "W4", "得分", "100.0"]
        {
            assert!(svg.contains(label), "{label} missing");
        }
        assert!(svg.contains("font-family=\"Noto Sans CJK SC"), "CJK font list");
        // The gap splits the first series: three lines in all (2 + 1), plus the mesh.
        let lines = svg.matches("stroke=\"#4E79A7\"").count();
        assert_eq!(lines, 2, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 3 + 4, "one point per value");
    }

    #[test]
    fn ranking_is_sorted_and_coloured_by_grade() {
        let r = ranking();
        let order: Vec<&str> = ranked(&r).iter().map(|b| b.label.as_str()).collect();
        assert_eq!(order, ["丰财街道", "黄楼街道", "牌楼街道"]);
        let svg = Chart::Ranking(r.clone()).to_svg().unwrap();
        let (first, second, third) = (svg.find("1. 丰财街道"), svg.find("2. 黄楼街道"), svg.find("3. 牌楼街道"));
        assert!(first.is_some() && second.is_some() && third.is_some(), "{svg}");
        assert!(svg.contains("92.5 A") && svg.contains("55.0 D"));
        let green = hex(grade_color(Some("A")));
        let red_ish = hex(grade_color(Some("D")));
        let rects: Vec<&str> = svg.lines().filter(|l| l.starts_with("<rect")).collect();
        assert!(rects.iter().any(|l| l.contains(&green)), "an A bar is green");
        assert!(rects.iter().any(|l| l.contains(&red_ish)), "a D bar is orange");
        let worst_first = RankingChart { ascending: true, ..r.clone() };
        assert_eq!(ranked(&worst_first)[0].label, "牌楼街道");
        // Ties stay in the given order.
        let mut tied = r;
        tied.bars.iter_mut().for_each(|b| b.value = 50.0);
        let order: Vec<&str> = ranked(&tied).iter().map(|b| b.label.as_str()).collect();
        assert_eq!(order, ["牌楼街道", "丰财街道", "黄楼街道"]);
    }

    #[test]
    fn rank_bands_are_fifths_and_colour_ungraded_bars() {
        // 51 streets: ranks 1–10 the best fifth, 42–51 the worst.
        assert_eq!(rank_band(1, 51), 4);
        assert_eq!(rank_band(10, 51), 4);
        assert_eq!(rank_band(11, 51), 3);
        assert_eq!(rank_band(41, 51), 1);
        assert_eq!(rank_band(42, 51), 0);
        assert_eq!(rank_band(51, 51), 0);
        let bands: Vec<u8> = (1..=51).map(|r| rank_band(r, 51)).collect();
        assert!(bands.windows(2).all(|w| w[0] >= w[1]), "never better for a worse rank");
        assert_eq!((0..5).map(|b| bands.iter().filter(|x| **x == b).count()).sum::<usize>(), 51);
        assert_eq!((rank_band(1, 4), rank_band(2, 4), rank_band(4, 4)), (4, 3, 0));
        assert_eq!(rank_band(1, 1), 2, "a field of one is the middle");
        let r = RankingChart {
            kind: ColumnKind::Points,
            bars: vec![
                Bar { label: "丰财街道".into(), value: 92.456, grade: None, band: Some(4) },
                Bar { label: "牌楼街道".into(), value: 55.0, grade: None, band: Some(0) },
            ],
            ..ranking()
        };
        let svg = Chart::Ranking(r).to_svg().unwrap();
        let rects: Vec<&str> = svg.lines().filter(|l| l.starts_with("<rect")).collect();
        assert!(rects.iter().any(|l| l.contains(&hex(RAMP[4]))), "the best band is green");
        assert!(rects.iter().any(|l| l.contains(&hex(RAMP[0]))), "the worst band is red");
        assert!(
            svg.contains("92.46") && svg.contains("55.00") && !svg.contains("92.46 "),
            "points to the hundredth, no grade"
        );
    }

    #[test]
    fn ranking_caps_bars_and_says_so() {
        let mut r = ranking();
        r.bars = (0..MAX_BARS + 5)
            .map(|i| Bar { label: format!("G{i:03}"), value: i as f64 / 3.0, grade: None, band: None })
            .collect();
        let chart = Chart::Ranking(r);
        assert_eq!(chart.size().1, 60 + MAX_BARS as u32 * BAR_ROW as u32 + 70);
        let svg = chart.to_svg().unwrap();
        assert!(svg.contains(&format!("共 {}", MAX_BARS + 5)));
        assert!(svg.contains("200. G005") && !svg.contains("201. "), "only the first {MAX_BARS}");
    }

    #[test]
    fn heatmap_svg_has_one_polygon_per_cell_coloured_by_value() {
        let m = heatmap();
        let svg = Chart::HeatMap(m.clone()).to_svg().unwrap();
        let fills = polygon_fills(&svg);
        // Drawing order: not highlighted first (95 green-ish, no data grey), then the worst (40).
        assert_eq!(fills, vec![hex(ramp(0.95)), hex(NO_DATA), hex(ramp(0.40))], "{svg}");
        for label in ["网格得分热力图", "001", "002", "003", "无数据", "最差网格", "100.0", "0.0"] {
            assert!(svg.contains(label), "{label} missing");
        }
        // A black 3-px outline marks the highlighted grid.
        assert!(svg.contains("stroke=\"#000000\" stroke-width=\"3\""), "{svg}");
        // Lower is better flips the scale: 95 becomes red.
        let flipped = Chart::HeatMap(HeatMap { higher_is_better: false, ..m }).to_svg().unwrap();
        assert_eq!(polygon_fills(&flipped)[0], hex(ramp(0.05)));
    }

    #[test]
    fn dense_heatmaps_drop_the_cell_borders() {
        let white = |svg: &str| svg.lines().filter(|l| l.starts_with("<polyline") && l.contains("#FFFFFF")).count();
        let svg = Chart::HeatMap(heatmap()).to_svg().unwrap();
        assert_eq!(white(&svg), 2, "the two cells not outlined in black");
        let mut dense = heatmap();
        dense.cells = (0..MAX_OUTLINED + 1)
            .map(|i| HeatCell {
                code: format!("{i}"),
                label: String::new(),
                polygon: square(117.0 + (i % 50) as f64 * 0.01, 34.0 + (i / 50) as f64 * 0.01),
                value: Some(i as f64 / 30.0),
                highlight: false,
            })
            .collect();
        let svg = Chart::HeatMap(dense).to_svg().unwrap();
        assert_eq!(svg.matches("<polygon").count(), MAX_OUTLINED + 1);
        assert_eq!(white(&svg), 0);
    }

    #[test]
    fn heatmap_keeps_the_map_square_and_north_up() {
        let svg = Chart::HeatMap(heatmap()).to_svg().unwrap();
        // Cell 001 (south-west) is below cell 003 (north-west), and both are about square.
        let points = |fill: &str| -> Vec<(i32, i32)> {
            let line = svg.lines().find(|l| l.starts_with("<polygon") && l.contains(fill)).unwrap();
            let pts = line.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
            pts.split_whitespace()
                .map(|p| {
                    let (x, y) = p.split_once(',').unwrap();
                    (x.parse().unwrap(), y.parse().unwrap())
                })
                .collect()
        };
        let sw = points(&hex(ramp(0.95)));
        let nw = points(&hex(NO_DATA));
        let xs = |p: &[(i32, i32)]| (p.iter().map(|q| q.0).min().unwrap(), p.iter().map(|q| q.0).max().unwrap());
        let ys = |p: &[(i32, i32)]| (p.iter().map(|q| q.1).min().unwrap(), p.iter().map(|q| q.1).max().unwrap());
        assert!(ys(&nw).1 <= ys(&sw).0, "north is up: {nw:?} above {sw:?}");
        let (w, h) = (f64::from(xs(&sw).1 - xs(&sw).0), f64::from(ys(&sw).1 - ys(&sw).0));
        // 0.01° of longitude is cos(34.26°) ≈ 0.83 of 0.01° of latitude on the ground.
        assert!((w / h - 34.265f64.to_radians().cos()).abs() < 0.02, "{w} x {h}");
    }

    #[test]
    fn png_decodes_with_the_chart_size_and_draws_text() {
        for chart in [Chart::Trend(trend()), Chart::Ranking(ranking()), Chart::HeatMap(heatmap())] {
            let bytes = chart.to_png().unwrap();
            let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
            let mut reader = decoder.read_info().unwrap();
            let mut buf = vec![0; reader.output_buffer_size().unwrap()];
            let info = reader.next_frame(&mut buf).unwrap();
            assert_eq!((info.width, info.height), chart.size());
            assert_eq!(info.color_type, png::ColorType::Rgb);
            let px = &buf[..info.buffer_size()];
            // The title band holds dark text pixels (Unifont glyphs), the corners stay white.
            let dark = (0..60 * info.width as usize).filter(|i| px[i * 3] < 100 && px[i * 3 + 1] < 100).count();
            assert!(dark > 200, "title drawn: {dark} dark pixels");
            assert_eq!(&px[..3], &[255, 255, 255]);
        }
    }
}
