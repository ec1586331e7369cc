//! A [`Table`] as CSV for Excel and WPS users: UTF-8 with a byte-order mark (without it Excel
//! on a Chinese Windows reads the file as GBK and shows mojibake), a header row of Chinese
//! labels, CRLF line ends and RFC 4180 quoting. Rates are written as `87.50%`, which Excel
//! reads back as the number 0.875; scores with one decimal. The same table always gives the
//! same bytes.
//!
//! Text that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR at the start)
//! gets a leading `'`: names come from users, and a CSV opened in Excel must not compute
//! anything (CSV injection). Numbers are never touched.

use super::{format_cell, Cell, Table};

/// The UTF-8 byte-order mark.
pub const BOM: &str = "\u{feff}";

/// `table` as CSV bytes (header of `label_zh`, then the rows).
pub fn to_csv(table: &Table) -> Vec<u8> {
    let mut out = String::from(BOM);
    let header: Vec<String> = table.columns.iter().map(|c| field(&c.label_zh)).collect();
    out.push_str(&header.join(","));
    out.push_str("\r\n");
    for (r, _) in table.rows.iter().enumerate() {
        let line: Vec<String> = table
            .columns
            .iter()
            .enumerate()
            .map(|(c, col)| {
                let cell = table.cell(r, c);
                let text = format_cell(cell, col.kind);
                match cell {
                    Cell::Text(_) => field(&defuse(text)),
                    _ => field(&text),
                }
            })
            .collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out.into_bytes()
}

/// Quote a field when it holds a separator, a quote or a line break (quotes doubled).
fn field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Keep a spreadsheet from reading text as a formula.
fn defuse(s: String) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample;

    #[test]
    fn csv_bytes_are_exact() {
        let bytes = to_csv(&sample());
        let expected = "\u{feff}编码,名称,立案数,结案率,得分,等级\r\n\
                        320302001,丰财街道,12,87.50%,87.5,B\r\n\
                        320302002,\"牌楼, \"\"东\"\"街道\",0,,100.0,A\r\n\
                        320302003,'=1+2,3,33.33%,33.3,E\r\n";
        assert_eq!(String::from_utf8(bytes.clone()).unwrap(), expected);
        assert_eq!(&bytes[..3], &[0xEF, 0xBB, 0xBF], "UTF-8 BOM first");
        assert_eq!(to_csv(&sample()), bytes, "stable bytes");
    }

    #[test]
    fn empty_table_is_just_the_header() {
        let mut t = sample();
        t.rows.clear();
        assert_eq!(String::from_utf8(to_csv(&t)).unwrap(), "\u{feff}编码,名称,立案数,结案率,得分,等级\r\n");
    }

    #[test]
    fn line_breaks_in_text_are_quoted() {
        let mut t = sample();
        t.rows = vec![vec!["a\nb".into(), "-5".into(), (-5).into(), Cell::Num(-0.5), Cell::Empty, Cell::Empty]];
        let text = String::from_utf8(to_csv(&t)).unwrap();
        // Text "-5" is defused, the number -5 is not.
        assert!(text.ends_with("\"a\nb\",'-5,-5,-50.00%,,\r\n"), "{text}");
    }
}
