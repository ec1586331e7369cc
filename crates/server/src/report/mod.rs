//! Reports people can look at (报表与图表): one neutral [`Table`] rendered as CSV ([`csv`]) and
//! XLSX ([`xlsx`]); charts — trend lines, rankings, heat maps by grid — rendered as SVG and PNG
//! ([`chart`]); and the printable monthly district report ([`html`]).
//!
//! Nothing here knows about evaluations, the store or HTTP: the routes turn their rows into
//! these plain structures, so every view (evaluation, assessment, contract statements) shares
//! one set of renderers and one set of number formats.

pub mod chart;
pub mod csv;
pub mod html;
mod pixel_font;
pub mod xlsx;

/// How a column's values are shown. The value itself stays a number in XLSX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// Free text (names, codes, grades).
    Text,
    /// A whole number (counts).
    Int,
    /// A fraction 0–1 shown as a percentage with two decimals (`0.875` → `87.50%`).
    Rate,
    /// A score 0–100 with one decimal (`87.5`).
    Score,
    /// Points or a score to the hundredth (`87.46`, `-2.50`): the street assessment ranks to
    /// the hundredth, so its figures are shown that way.
    Points,
    /// Money: the cell holds integer **fen**, shown as yuan with two decimals (`5775.00`),
    /// converted exactly (`citygrid_core::reward::yuan`); XLSX stores the yuan as a number.
    Yuan,
}

/// One column: a stable machine key, the Chinese label people read, and how to show values.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub key: String,
    pub label_zh: String,
    pub kind: ColumnKind,
}

impl Column {
    pub fn new(key: impl Into<String>, label_zh: impl Into<String>, kind: ColumnKind) -> Column {
        Column { key: key.into(), label_zh: label_zh.into(), kind }
    }
}

/// One value of a row. A rate with a zero denominator, or anything unknown, is `Empty`.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Int(i64),
    /// A rate (fraction) or a score, as the column's kind says.
    Num(f64),
    Empty,
}

impl From<&str> for Cell {
    fn from(s: &str) -> Cell {
        Cell::Text(s.to_owned())
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Cell {
        Cell::Text(s)
    }
}

impl From<i64> for Cell {
    fn from(n: i64) -> Cell {
        Cell::Int(n)
    }
}

impl From<f64> for Cell {
    fn from(v: f64) -> Cell {
        if v.is_finite() {
            Cell::Num(v)
        } else {
            Cell::Empty
        }
    }
}

/// A titled table: the one shape every evaluation and assessment view is exported in.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub title: String,
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    /// The cell of `row` in column `col`, `Empty` for a short row.
    pub fn cell(&self, row: usize, col: usize) -> &Cell {
        self.rows.get(row).and_then(|r| r.get(col)).unwrap_or(&Cell::Empty)
    }

    /// The same table with only the columns of `keys`, in that order (unknown keys skipped):
    /// a narrower view of a download for a printed page.
    pub fn only(&self, keys: &[&str]) -> Table {
        let picked: Vec<usize> = keys.iter().filter_map(|k| self.columns.iter().position(|c| c.key == *k)).collect();
        Table {
            title: self.title.clone(),
            columns: picked.iter().map(|&c| self.columns[c].clone()).collect(),
            rows: (0..self.rows.len()).map(|r| picked.iter().map(|&c| self.cell(r, c).clone()).collect()).collect(),
        }
    }
}

/// A cell as text, formatted by its column's kind: what CSV and HTML show. Fixed decimals
/// (rates `87.50%`, scores `87.5`) so that the same figures always give the same bytes.
pub fn format_cell(cell: &Cell, kind: ColumnKind) -> String {
    match (cell, kind) {
        (Cell::Empty, _) => String::new(),
        (Cell::Text(s), _) => s.clone(),
        (Cell::Int(n), ColumnKind::Rate) => format_rate(*n as f64),
        (Cell::Int(n), ColumnKind::Score) => format_score(*n as f64),
        (Cell::Int(n), ColumnKind::Points) => format_points(*n as f64),
        (Cell::Int(fen), ColumnKind::Yuan) => citygrid_core::reward::yuan(*fen),
        (Cell::Int(n), _) => n.to_string(),
        (Cell::Num(v), ColumnKind::Rate) => format_rate(*v),
        (Cell::Num(v), ColumnKind::Int) => format!("{}", v.round() as i64),
        (Cell::Num(v), ColumnKind::Points) => format_points(*v),
        (Cell::Num(v), ColumnKind::Yuan) if v.is_finite() => citygrid_core::reward::yuan(v.round() as i64),
        (Cell::Num(_), ColumnKind::Yuan) => String::new(),
        (Cell::Num(v), ColumnKind::Score | ColumnKind::Text) => format_score(*v),
    }
}

/// `0.875` → `87.50%`.
pub fn format_rate(v: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    // Round half away from zero first (the same figure always prints the same), then add 0.0:
    // it turns the negative zero a tiny negative rounds to into a plain zero.
    let percent = (v * 10_000.0).round() / 100.0 + 0.0;
    format!("{percent:.2}%")
}

/// `87.46` → `87.5`.
pub fn format_score(v: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    let rounded = (v * 10.0).round() / 10.0 + 0.0;
    format!("{rounded:.1}")
}

/// `87.456` → `87.46`, `-2.5` → `-2.50`.
pub fn format_points(v: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    let rounded = (v * 100.0).round() / 100.0 + 0.0;
    format!("{rounded:.2}")
}

/// Errors of the renderers. They come from drawing or writing into memory, so any of them is
/// a bug or an absurd input (a chart too large to draw), reported as a 500 by the routes.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("chart: {0}")]
    Chart(String),
    #[error("xlsx: {0}")]
    Xlsx(String),
    #[error("png: {0}")]
    Png(String),
}

impl From<ReportError> for crate::error::ApiError {
    fn from(e: ReportError) -> Self {
        crate::error::ApiError::Internal(e.to_string())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The small table the renderers' tests share: text, counts, rates, scores, an empty
    /// rate, a name with a comma and quotes, and one that looks like a formula.
    pub fn sample() -> Table {
        Table {
            title: "街道评价 2026年11月".into(),
            columns: vec![
                Column::new("subject_id", "编码", ColumnKind::Text),
                Column::new("name", "名称", ColumnKind::Text),
                Column::new("filed", "立案数", ColumnKind::Int),
                Column::new("closure_rate", "结案率", ColumnKind::Rate),
                Column::new("score", "得分", ColumnKind::Score),
                Column::new("grade", "等级", ColumnKind::Text),
            ],
            rows: vec![
                vec!["320302001".into(), "丰财街道".into(), 12.into(), 0.875.into(), 87.46.into(), "B".into()],
                vec!["320302002".into(), "牌楼, \"东\"街道".into(), 0.into(), Cell::Empty, 100.0.into(), "A".into()],
                vec!["320302003".into(), "=1+2".into(), 3.into(), (1.0 / 3.0).into(), 33.333.into(), "E".into()],
            ],
        }
    }

    #[test]
    fn only_keeps_the_named_columns_in_order() {
        let t = sample().only(&["grade", "name", "nope"]);
        assert_eq!(t.columns.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(), ["grade", "name"]);
        assert_eq!(t.rows[0], vec![Cell::from("B"), Cell::from("丰财街道")]);
        assert_eq!(t.rows.len(), 3);
    }

    #[test]
    fn cells_format_by_column_kind() {
        assert_eq!(format_cell(&Cell::Num(0.875), ColumnKind::Rate), "87.50%");
        assert_eq!(format_cell(&Cell::Num(1.0 / 3.0), ColumnKind::Rate), "33.33%");
        assert_eq!(format_cell(&Cell::Num(2.0 / 3.0), ColumnKind::Rate), "66.67%");
        assert_eq!(format_cell(&Cell::Num(-0.000_001), ColumnKind::Rate), "0.00%");
        assert_eq!(format_cell(&Cell::Num(0.123_45), ColumnKind::Rate), "12.35%");
        assert_eq!(format_cell(&Cell::Num(87.25), ColumnKind::Score), "87.3");
        assert_eq!(format_cell(&Cell::Num(87.46), ColumnKind::Score), "87.5");
        assert_eq!(format_cell(&Cell::Num(100.0), ColumnKind::Score), "100.0");
        assert_eq!(format_cell(&Cell::Int(12), ColumnKind::Int), "12");
        assert_eq!(format_cell(&Cell::Empty, ColumnKind::Rate), "");
        assert_eq!(format_cell(&Cell::Num(87.456), ColumnKind::Points), "87.46");
        assert_eq!(format_cell(&Cell::Num(-2.5), ColumnKind::Points), "-2.50");
        assert_eq!(format_cell(&Cell::Num(-0.001), ColumnKind::Points), "0.00");
        assert_eq!(format_cell(&Cell::Int(57_750_000), ColumnKind::Yuan), "577500.00");
        assert_eq!(format_cell(&Cell::Int(-5), ColumnKind::Yuan), "-0.05");
        assert_eq!(format_cell(&Cell::Int(i64::MAX), ColumnKind::Yuan), "92233720368547758.07", "exact, no float");
        assert_eq!(Cell::from(f64::NAN), Cell::Empty);
    }
}
