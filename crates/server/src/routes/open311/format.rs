//! The wire formats of GeoReport v2: one small document model rendered as XML (schemaless, no
//! namespace, UTF-8) or as JSON by the Spark convention (the list root disappears into a
//! top-level array, empty elements are `null`), the Open311 error list, form-encoded
//! parameters as sloppy clients send them, and W3C datetimes with an offset.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::tz::Offset;
use jiff::Timestamp;

/// The format a resource was asked in, by its suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Xml,
    Json,
}

impl Format {
    /// Split `services.json` into (`services`, JSON). No suffix means XML, the format the spec
    /// requires; an unknown suffix is an error answered in XML.
    pub fn split(segment: &str) -> (&str, Result<Format, String>) {
        match segment.rsplit_once('.') {
            Some((name, "xml")) => (name, Ok(Format::Xml)),
            Some((name, "json")) => (name, Ok(Format::Json)),
            Some((name, other)) => (name, Err(format!("format .{other} is not served: use .xml or .json"))),
            None => (segment, Ok(Format::Xml)),
        }
    }
}

/// A value in a document.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Str(String),
    Int(i64),
    Num(f64),
    Bool(bool),
    Obj(Obj),
    /// A list: in XML a wrapper element holding one `item` element per entry, in JSON an array.
    List {
        item: &'static str,
        items: Vec<Value>,
    },
}

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    /// A string, or null when there is none (empty counts as none).
    pub fn opt(s: Option<impl Into<String>>) -> Value {
        match s.map(Into::into) {
            Some(s) if !s.is_empty() => Value::Str(s),
            _ => Value::Null,
        }
    }
}

/// An object with its fields in the order the spec lists them (XML readers see that order).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Obj(pub Vec<(&'static str, Value)>);

impl Obj {
    pub fn new() -> Obj {
        Obj(Vec::new())
    }

    pub fn with(mut self, key: &'static str, value: Value) -> Obj {
        self.0.push((key, value));
        self
    }
}

/// A whole response body.
#[derive(Debug, Clone, PartialEq)]
pub enum Doc {
    /// `<root><item/>…</root>`, JSON `[ … ]`.
    List { root: &'static str, item: &'static str, items: Vec<Obj> },
    /// `<root>…</root>`, JSON `{ … }`.
    Obj { root: &'static str, obj: Obj },
}

/// Drop what XML 1.0 cannot carry at all (control characters other than tab and line breaks):
/// input is checked on the way in, so this only guards data that came in another way.
fn xml_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' => out.push(c),
            // A bare CR would be read back as LF by any XML parser; keep it as a reference.
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
}

fn number(n: f64) -> String {
    if n.is_finite() {
        format!("{n}")
    } else {
        String::new()
    }
}

fn xml_value(name: &str, v: &Value, out: &mut String) {
    match v {
        Value::Null => {
            out.push('<');
            out.push_str(name);
            out.push_str("/>");
        }
        Value::Obj(o) => {
            out.push('<');
            out.push_str(name);
            out.push('>');
            xml_fields(o, out);
            out.push_str("</");
            out.push_str(name);
            out.push('>');
        }
        Value::List { item, items } => {
            out.push('<');
            out.push_str(name);
            out.push('>');
            for i in items {
                xml_value(item, i, out);
            }
            out.push_str("</");
            out.push_str(name);
            out.push('>');
        }
        scalar => {
            let text = match scalar {
                Value::Str(s) => s.clone(),
                Value::Int(i) => i.to_string(),
                Value::Num(n) => number(*n),
                Value::Bool(b) => b.to_string(),
                _ => String::new(),
            };
            out.push('<');
            out.push_str(name);
            out.push('>');
            xml_escape(&text, out);
            out.push_str("</");
            out.push_str(name);
            out.push('>');
        }
    }
}

fn xml_fields(o: &Obj, out: &mut String) {
    for (k, v) in &o.0 {
        xml_value(k, v, out);
    }
}

fn json_value(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Null => J::Null,
        Value::Str(s) => J::String(s.clone()),
        Value::Int(i) => J::from(*i),
        Value::Num(n) => serde_json::Number::from_f64(*n).map(J::Number).unwrap_or(J::Null),
        Value::Bool(b) => J::Bool(*b),
        Value::Obj(o) => json_obj(o),
        Value::List { items, .. } => J::Array(items.iter().map(json_value).collect()),
    }
}

fn json_obj(o: &Obj) -> serde_json::Value {
    serde_json::Value::Object(o.0.iter().map(|(k, v)| ((*k).to_owned(), json_value(v))).collect())
}

impl Doc {
    pub fn xml(&self) -> String {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
        match self {
            Doc::List { root, item, items } => {
                let list = Value::List { item, items: items.iter().cloned().map(Value::Obj).collect() };
                xml_value(root, &list, &mut out);
            }
            Doc::Obj { root, obj } => xml_value(root, &Value::Obj(obj.clone()), &mut out),
        }
        out.push('\n');
        out
    }

    pub fn json(&self) -> String {
        let v = match self {
            Doc::List { items, .. } => serde_json::Value::Array(items.iter().map(json_obj).collect()),
            Doc::Obj { obj, .. } => json_obj(obj),
        };
        v.to_string()
    }

    /// The response with the spec's content types (`; charset=utf-8`), or the bare ones
    /// discovery needs (validators compare the header as a string).
    pub fn respond(&self, status: StatusCode, fmt: Format, bare_type: bool) -> Response {
        let (body, ct) = match (fmt, bare_type) {
            (Format::Xml, false) => (self.xml(), "text/xml; charset=utf-8"),
            (Format::Xml, true) => (self.xml(), "text/xml"),
            (Format::Json, false) => (self.json(), "application/json; charset=utf-8"),
            (Format::Json, true) => (self.json(), "application/json"),
        };
        let mut res = (status, body).into_response();
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        res
    }
}

/// An Open311 error: 404 when the resource does not exist, 403 for api_key problems, 400 for
/// everything else; the body is a list of `{code, description}` in the format asked.
#[derive(Debug, Clone, PartialEq)]
pub struct Open311Error {
    pub status: StatusCode,
    pub description: String,
}

pub type Open311Result<T> = Result<T, Open311Error>;

impl Open311Error {
    pub fn bad(description: impl Into<String>) -> Open311Error {
        Open311Error { status: StatusCode::BAD_REQUEST, description: description.into() }
    }

    pub fn not_found(description: impl Into<String>) -> Open311Error {
        Open311Error { status: StatusCode::NOT_FOUND, description: description.into() }
    }

    pub fn forbidden(description: impl Into<String>) -> Open311Error {
        Open311Error { status: StatusCode::FORBIDDEN, description: description.into() }
    }

    pub fn respond(&self, fmt: Format) -> Response {
        let error = Obj::new()
            .with("code", Value::Int(i64::from(self.status.as_u16())))
            .with("description", Value::str(&self.description));
        Doc::List { root: "errors", item: "error", items: vec![error] }.respond(self.status, fmt, false)
    }
}

impl From<crate::error::ApiError> for Open311Error {
    /// The rest of the API speaks problem documents; an Open311 client gets the same reason in
    /// its own format. Internal errors are logged and not described.
    fn from(e: crate::error::ApiError) -> Open311Error {
        use crate::error::ApiError as E;
        match e {
            E::NotFound(what) => Open311Error::not_found(format!("{what} not found")),
            E::Forbidden { detail, .. } => Open311Error::forbidden(detail),
            E::Unauthorized => Open311Error::forbidden("the bearer token is not valid"),
            E::Invalid { field, detail, .. } => Open311Error::bad(format!("{field}: {detail}")),
            E::Internal(msg) => {
                tracing::error!(error = %msg, "internal error in open311");
                Open311Error {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    description: "internal error; please retry later".into(),
                }
            }
            other => Open311Error::bad(other.to_string()),
        }
    }
}

impl From<citygrid_store::StoreError> for Open311Error {
    fn from(e: citygrid_store::StoreError) -> Open311Error {
        crate::error::ApiError::from(e).into()
    }
}

// ---- parameters ------------------------------------------------------------------------------

/// Parameters of a request: the query string, then (for a POST) the form body, in order.
/// Keys may repeat (`attribute[x][]=a&attribute[x][]=b`, several `media_url`).
#[derive(Debug, Clone, Default)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    /// Parse `application/x-www-form-urlencoded` text (a query string or a body). `+` is a
    /// space; a `%` escape that is not two hex digits is kept as written; the decoded bytes
    /// must be UTF-8.
    pub fn parse(text: &[u8]) -> Open311Result<Params> {
        let mut out = Vec::new();
        for pair in text.split(|b| *b == b'&') {
            if pair.is_empty() {
                continue;
            }
            let (k, v) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &pair[pair.len()..]),
            };
            out.push((decode(k)?, decode(v)?));
        }
        Ok(Params(out))
    }

    pub fn extend(&mut self, other: Params) {
        self.0.extend(other.0);
    }

    /// The first non-empty value of `key`, trimmed: a parameter sent empty is absent (the
    /// spec's optional-argument rule; `jurisdiction_id=` from the python client).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.trim()).find(|v| !v.is_empty())
    }

    /// Every non-empty value of `key`.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.trim()).filter(|v| !v.is_empty()).collect()
    }

    /// `attribute[code]=v` and `attribute[code][]=v`, by code, values in order.
    pub fn attributes(&self) -> Open311Result<std::collections::BTreeMap<String, Vec<String>>> {
        let mut out: std::collections::BTreeMap<String, Vec<String>> = std::collections::BTreeMap::new();
        for (k, v) in &self.0 {
            let Some(rest) = k.strip_prefix("attribute[") else { continue };
            let code = rest.strip_suffix("][]").or_else(|| rest.strip_suffix(']')).filter(|c| !c.contains(['[', ']']));
            let Some(code) = code else {
                return Err(Open311Error::bad(format!(
                    "{k}: write attributes as attribute[code] or attribute[code][]"
                )));
            };
            let entry = out.entry(code.to_owned()).or_default();
            let v = v.trim();
            if !v.is_empty() {
                entry.push(v.to_owned());
            }
        }
        Ok(out)
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn decode(raw: &[u8]) -> Open311Result<String> {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => bytes.push(b' '),
            b'%' if i + 2 < raw.len() => match (hex(raw[i + 1]), hex(raw[i + 2])) {
                (Some(h), Some(l)) => {
                    bytes.push(h * 16 + l);
                    i += 2;
                }
                _ => bytes.push(b'%'),
            },
            b => bytes.push(b),
        }
        i += 1;
    }
    String::from_utf8(bytes).map_err(|_| Open311Error::bad("parameters must be UTF-8 (percent-encoded UTF-8 bytes)"))
}

// ---- datetimes -------------------------------------------------------------------------------

/// The city's offset from UTC (`+08:00` for China).
pub fn offset(minutes: i32) -> Offset {
    Offset::from_seconds(minutes * 60).unwrap_or(Offset::UTC)
}

/// W3C-DTF with the city's offset, to the second: `2026-09-28T09:00:00+08:00`.
pub fn w3c(t: Timestamp, off: Offset) -> String {
    let dt = off.to_datetime(t);
    let secs = off.seconds();
    let sign = if secs < 0 { '-' } else { '+' };
    let (h, m) = (secs.abs() / 3600, secs.abs() % 3600 / 60);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{sign}{h:02}:{m:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// Parse a W3C datetime: with `Z` or an offset, fractions allowed; a `+` offset that arrived
/// as a space (an unencoded `+` in a query string) is read as `+`; a date alone or a time
/// without an offset is read in the city's time.
pub fn parse_w3c(field: &str, raw: &str, off: Offset) -> Open311Result<Timestamp> {
    let text = raw.trim();
    let fixed;
    let text = match text.char_indices().rev().find(|(_, c)| *c == ' ') {
        Some((i, _)) if i > 10 && text[i + 1..].chars().next().is_some_and(|c| c.is_ascii_digit()) => {
            fixed = format!("{}+{}", &text[..i], &text[i + 1..]);
            fixed.as_str()
        }
        _ => text,
    };
    if let Ok(t) = text.parse::<Timestamp>() {
        return Ok(t);
    }
    let civil = text
        .parse::<jiff::civil::DateTime>()
        .or_else(|_| text.parse::<jiff::civil::Date>().map(|d| d.to_datetime(jiff::civil::Time::midnight())));
    match civil {
        Ok(dt) => off.to_timestamp(dt).map_err(|e| Open311Error::bad(format!("{field}: {e}"))),
        Err(_) => Err(Open311Error::bad(format!(
            "{field}: {raw:?} is not a W3C datetime (e.g. 2026-09-28T09:00:00+08:00 or 2026-09-28T01:00:00Z)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample() -> Doc {
        let a = Obj::new().with("code", Value::str("0<1 & \"x\"")).with("n", Value::Num(34.26)).with("e", Value::Null);
        Doc::List { root: "things", item: "thing", items: vec![a] }
    }

    #[test]
    fn xml_and_json() {
        let d = sample();
        assert_eq!(
            d.xml(),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<things><thing><code>0&lt;1 &amp; &quot;x&quot;</code>\
             <n>34.26</n><e/></thing></things>\n"
        );
        assert_eq!(d.json(), r#"[{"code":"0<1 & \"x\"","e":null,"n":34.26}]"#);
        let empty = Doc::List { root: "things", item: "thing", items: vec![] };
        assert!(empty.xml().ends_with("<things></things>\n"));
        assert_eq!(empty.json(), "[]");
    }

    #[test]
    fn control_characters_never_reach_xml() {
        let mut out = String::new();
        xml_escape("a\u{1}b\r\nc", &mut out);
        assert_eq!(out, "ab&#13;\nc");
    }

    #[test]
    fn form_parameters() {
        let p =
            Params::parse(b"a=1&b=&b=x+y&c=%E5%9E%83%E5%9C%BE&d=100%&attribute[k][]=1&attribute[k][]=2&attribute[j]=z")
                .unwrap();
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), Some("x y"));
        assert_eq!(p.get("c"), Some("垃圾"));
        assert_eq!(p.get("d"), Some("100%"));
        assert_eq!(p.get("zzz"), None);
        let attrs = p.attributes().unwrap();
        assert_eq!(attrs["k"], vec!["1", "2"]);
        assert_eq!(attrs["j"], vec!["z"]);
        assert!(Params::parse(b"a=%FF").is_err());
        assert!(Params::parse(b"attribute[x]]=1").unwrap().attributes().is_err());
    }

    #[test]
    fn datetimes() {
        let off = offset(480);
        let t: Timestamp = "2026-09-28T01:00:00Z".parse().unwrap();
        assert_eq!(w3c(t, off), "2026-09-28T09:00:00+08:00");
        assert_eq!(w3c(t, offset(-480)), "2026-09-27T17:00:00-08:00");
        for s in [
            "2026-09-28T01:00:00Z",
            "2026-09-28T09:00:00+08:00",
            "2026-09-28T09:00:00 08:00",
            "2026-09-28T09:00:00",
            "2026-09-28T01:00:00.000Z",
        ] {
            assert_eq!(parse_w3c("start_date", s, off).unwrap(), t, "{s}");
        }
        let midnight: Timestamp = "2026-09-27T16:00:00Z".parse().unwrap();
        assert_eq!(parse_w3c("start_date", "2026-09-28", off).unwrap(), midnight);
        assert!(parse_w3c("start_date", "yesterday", off).is_err());
    }
}
