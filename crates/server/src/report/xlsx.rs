//! A [`Table`] as an Excel workbook (rust_xlsxwriter): one sheet named after the table, a
//! styled and frozen header row with a filter, column widths fitted to the content (a Chinese
//! character counts twice), and numbers stored as numbers — counts `0`, rates `0.00%` (the
//! cell holds 0.875), scores `0.0` — so people can sort, sum and chart them. Text is always
//! written as a string, never as a formula.

use super::{Cell, ColumnKind, ReportError, Table};
use rust_xlsxwriter::{Color, DocProperties, ExcelDateTime, Format, FormatAlign, FormatBorder, Workbook};

/// `table` as XLSX bytes. `created` is written as the document's creation time (UTC), so the
/// same table and time give the same bytes.
pub fn to_xlsx(table: &Table, created: jiff::Timestamp) -> Result<Vec<u8>, ReportError> {
    let err = |e: rust_xlsxwriter::XlsxError| ReportError::Xlsx(e.to_string());
    let mut book = Workbook::new();
    let utc = created.to_zoned(jiff::tz::TimeZone::UTC).datetime();
    let when = ExcelDateTime::from_ymd(utc.year() as u16, utc.month() as u8, utc.day() as u8)
        .and_then(|d| d.and_hms(utc.hour() as u16, utc.minute() as u8, utc.second()))
        .map_err(err)?;
    book.set_properties(&DocProperties::new().set_title(&table.title).set_creation_datetime(&when));

    let header = Format::new()
        .set_bold()
        .set_background_color(Color::RGB(0xDCE6F1))
        .set_border(FormatBorder::Thin)
        .set_align(FormatAlign::Center)
        .set_align(FormatAlign::VerticalCenter)
        .set_text_wrap();
    let formats: Vec<Format> = table
        .columns
        .iter()
        .map(|c| match c.kind {
            ColumnKind::Text => Format::new(),
            ColumnKind::Int => Format::new().set_num_format("0"),
            ColumnKind::Rate => Format::new().set_num_format("0.00%"),
            ColumnKind::Score => Format::new().set_num_format("0.0"),
            ColumnKind::Points | ColumnKind::Yuan => Format::new().set_num_format("0.00"),
        })
        .collect();

    let kinds: Vec<ColumnKind> = table.columns.iter().map(|c| c.kind).collect();
    let sheet = book.add_worksheet();
    sheet.set_name(sheet_name(&table.title)).map_err(err)?;
    for (c, col) in table.columns.iter().enumerate() {
        let c = col_num(c)?;
        sheet.write_string_with_format(0, c, &col.label_zh, &header).map_err(err)?;
    }
    for (r, row) in table.rows.iter().enumerate() {
        let r = u32::try_from(r + 1).map_err(|_| ReportError::Xlsx("too many rows".into()))?;
        for (c, fmt) in formats.iter().enumerate().take(row.len()) {
            let cell = &row[c];
            let c = col_num(c)?;
            match cell {
                Cell::Empty => {}
                Cell::Text(s) => {
                    sheet.write_string_with_format(r, c, s, fmt).map_err(err)?;
                }
                Cell::Int(fen) if kinds[usize::from(c)] == ColumnKind::Yuan => {
                    // The nearest double to the exact yuan: shown with two decimals it is
                    // exact for any amount below 2^53 fen (90 trillion yuan).
                    sheet.write_number_with_format(r, c, *fen as f64 / 100.0, fmt).map_err(err)?;
                }
                Cell::Int(n) => {
                    sheet.write_number_with_format(r, c, *n as f64, fmt).map_err(err)?;
                }
                Cell::Num(v) if v.is_finite() && kinds[usize::from(c)] == ColumnKind::Yuan => {
                    sheet.write_number_with_format(r, c, v.round() / 100.0, fmt).map_err(err)?;
                }
                Cell::Num(v) if v.is_finite() => {
                    sheet.write_number_with_format(r, c, *v, fmt).map_err(err)?;
                }
                Cell::Num(_) => {}
            }
        }
    }
    for (c, col) in table.columns.iter().enumerate() {
        let widest = (0..table.rows.len())
            .map(|r| display_width(&super::format_cell(table.cell(r, c), col.kind)))
            .chain(std::iter::once(display_width(&col.label_zh)))
            .max()
            .unwrap_or(0);
        sheet.set_column_width(col_num(c)?, (widest + 2).clamp(8, 60) as f64).map_err(err)?;
    }
    sheet.set_freeze_panes(1, 0).map_err(err)?;
    if !table.columns.is_empty() {
        let last_row = u32::try_from(table.rows.len()).map_err(|_| ReportError::Xlsx("too many rows".into()))?;
        sheet.autofilter(0, 0, last_row, col_num(table.columns.len() - 1)?).map_err(err)?;
    }
    book.save_to_buffer().map_err(err)
}

fn col_num(c: usize) -> Result<u16, ReportError> {
    u16::try_from(c).map_err(|_| ReportError::Xlsx("too many columns".into()))
}

/// Width in Excel's character units: CJK and other wide characters take two.
fn display_width(s: &str) -> usize {
    s.chars().map(|c| if (c as u32) >= 0x1100 { 2 } else { 1 }).sum()
}

/// Excel's rules for a sheet name: at most 31 characters, none of `[]:*?/\`, not starting or
/// ending with `'`, not empty.
fn sheet_name(title: &str) -> String {
    let cleaned: String = title
        .chars()
        .map(|c| if matches!(c, '[' | ']' | ':' | '*' | '?' | '/' | '\\') { '_' } else { c })
        .take(31)
        .collect();
    let trimmed = cleaned.trim_matches('\'').trim();
    if trimmed.is_empty() {
        "Sheet1".to_owned()
    } else {
        trimmed.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample;
    use std::io::Read;

    fn part(bytes: &[u8], name: &str) -> String {
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip archive");
        let mut text = String::new();
        zip.by_name(name).expect(name).read_to_string(&mut text).unwrap();
        text
    }

    /// The value of cell `r` (which must be a number: no `t=` attribute) and the number format
    /// of its style (`cellXfs` → `numFmtId` → format code).
    fn number_format(sheet: &str, styles: &str, r: &str) -> (String, String) {
        let cell = sheet.split(&format!(r#"<c r="{r}""#)).nth(1).expect(r).split("</c>").next().unwrap();
        assert!(!cell.contains("t="), "{r} is a number: {cell}");
        let style: usize = cell.split(r#"s=""#).nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
        let value = cell.split("<v>").nth(1).unwrap().split("</v>").next().unwrap().to_owned();
        let xfs = styles.split("<cellXfs").nth(1).unwrap().split("</cellXfs>").next().unwrap();
        let xf = xfs.split("<xf ").nth(style + 1).expect("style index");
        let id = xf.split(r#"numFmtId=""#).nth(1).unwrap().split('"').next().unwrap();
        // Excel's built-in formats have no <numFmt> entry.
        let code = match id {
            "1" => "0".to_owned(),
            "10" => "0.00%".to_owned(),
            _ => styles
                .split(&format!(r#"<numFmt numFmtId="{id}" formatCode=""#))
                .nth(1)
                .expect("a custom format")
                .split('"')
                .next()
                .unwrap()
                .to_owned(),
        };
        (value, code)
    }

    fn created() -> jiff::Timestamp {
        "2026-12-01T00:30:00Z".parse().unwrap()
    }

    #[test]
    fn workbook_reads_back_with_numbers_formats_and_frozen_header() {
        let bytes = to_xlsx(&sample(), created()).unwrap();
        let workbook = part(&bytes, "xl/workbook.xml");
        assert!(workbook.contains(r#"<sheet name="街道评价 2026年11月""#), "{workbook}");
        let strings = part(&bytes, "xl/sharedStrings.xml");
        for s in ["编码", "结案率", "丰财街道", "牌楼, \"东\"街道", "=1+2"] {
            assert!(strings.contains(s), "{s} missing in {strings}");
        }
        let sheet = part(&bytes, "xl/worksheets/sheet1.xml");
        // Frozen first row, the filter over the header, widths set.
        assert!(
            sheet.contains(r#"<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>"#),
            "{sheet}"
        );
        assert!(sheet.contains(r#"<autoFilter ref="A1:F4"/>"#), "{sheet}");
        assert!(sheet.contains("<cols>"), "{sheet}");
        // Numbers stay numbers: the count 12, the rate 0.875 (not "87.50%"), the score 87.46.
        let styles = part(&bytes, "xl/styles.xml");
        assert_eq!(number_format(&sheet, &styles, "C2"), ("12".into(), "0".into()));
        assert_eq!(number_format(&sheet, &styles, "D2"), ("0.875".into(), "0.00%".into()));
        assert_eq!(number_format(&sheet, &styles, "E2"), ("87.46".into(), "0.0".into()));
        // The empty rate is left blank; the formula-looking name is a shared string.
        assert!(!sheet.contains(r#"r="D3""#), "{sheet}");
        assert!(!sheet.contains("<f>"), "no formulas: {sheet}");
        assert!(styles.contains("<b/>") && styles.contains(r#"rgb="FFDCE6F1""#), "bold, shaded header: {styles}");
        let core = part(&bytes, "docProps/core.xml");
        assert!(core.contains("2026-12-01T00:30:00Z"), "{core}");
        assert!(core.contains("<dc:title>街道评价 2026年11月</dc:title>"), "{core}");
    }

    #[test]
    fn money_is_yuan_from_fen_and_points_have_two_decimals() {
        use crate::report::Column;
        let t = Table {
            title: "结算".into(),
            columns: vec![
                Column::new("amount_yuan", "金额(元)", ColumnKind::Yuan),
                Column::new("amount_fen", "金额(分)", ColumnKind::Int),
                Column::new("score", "总分", ColumnKind::Points),
            ],
            rows: vec![vec![Cell::Int(57_170_500), Cell::Int(57_170_500), Cell::Num(87.46)]],
        };
        let bytes = to_xlsx(&t, created()).unwrap();
        let (sheet, styles) = (part(&bytes, "xl/worksheets/sheet1.xml"), part(&bytes, "xl/styles.xml"));
        assert_eq!(number_format(&sheet, &styles, "A2"), ("571705".into(), "0.00".into()));
        assert_eq!(number_format(&sheet, &styles, "B2"), ("57170500".into(), "0".into()));
        assert_eq!(number_format(&sheet, &styles, "C2"), ("87.46".into(), "0.00".into()));
        let csv = String::from_utf8(crate::report::csv::to_csv(&t)).unwrap();
        assert!(csv.ends_with("金额(元),金额(分),总分\r\n571705.00,57170500,87.46\r\n"), "{csv}");
    }

    #[test]
    fn same_table_same_bytes() {
        assert_eq!(to_xlsx(&sample(), created()).unwrap(), to_xlsx(&sample(), created()).unwrap());
    }

    #[test]
    fn sheet_names_follow_excel_rules() {
        assert_eq!(sheet_name("a/b:c"), "a_b_c");
        assert_eq!(sheet_name("'x'"), "x");
        assert_eq!(sheet_name(""), "Sheet1");
        assert_eq!(sheet_name(&"网".repeat(40)).chars().count(), 31);
    }
}
