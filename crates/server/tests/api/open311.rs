//! Open311 GeoReport v2 at `/open311/v2/`, tested from the spec text (see `OPEN311.md`): every
//! endpoint in XML and JSON, every error (400/403/404 as an Open311 error list in the format
//! asked), lists of 0, 1 and n requests, the quirks of real clients, the privacy of reporters,
//! `Idempotency-Key`, citizen bearer tokens, batch tokens, and FixMyStreet's updates extension
//! delivering each update exactly once.

use crate::helpers::{garbage, long_tokens, spawn_app, spawn_app_with, tiny_jpeg, Backend, Resp, TestApp};
use axum::http::Method;
use serde_json::{json, Value};

const KEY: &str = "demo-open311-key";
const OUTSIDE: (f64, f64) = (117.30, 34.26);

// ---- a minimal XML reader (our output has no attributes, comments or CDATA) ------------------

#[derive(Debug, Clone, PartialEq)]
struct El {
    name: String,
    children: Vec<El>,
    text: String,
}

impl El {
    /// The one child of this name.
    #[track_caller]
    fn child(&self, name: &str) -> &El {
        let found: Vec<&El> = self.children.iter().filter(|c| c.name == name).collect();
        assert_eq!(found.len(), 1, "<{}> should have one <{name}>: {self:?}", self.name);
        found[0]
    }

    fn all(&self, name: &str) -> Vec<&El> {
        self.children.iter().filter(|c| c.name == name).collect()
    }

    /// Text of the one child of this name.
    #[track_caller]
    fn get(&self, name: &str) -> &str {
        &self.child(name).text
    }
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let end = rest[i..].find(';').expect("entity end") + i;
        let entity = &rest[i + 1..end];
        match entity {
            "lt" => out.push('<'),
            "gt" => out.push('>'),
            "amp" => out.push('&'),
            "quot" => out.push('"'),
            "apos" => out.push('\''),
            e => {
                let n = e.strip_prefix('#').expect("numeric entity").parse::<u32>().expect("decimal entity");
                out.push(char::from_u32(n).expect("char"));
            }
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn parse_element(s: &str) -> (El, &str) {
    let s = s.strip_prefix('<').unwrap_or_else(|| panic!("element expected at {s:.40}"));
    let end = s.find(['>', '/', ' ']).expect("tag end");
    let name = s[..end].to_owned();
    assert!(!name.is_empty() && !name.contains(':'), "plain element names, no namespace: {name}");
    let s = &s[end..];
    if let Some(rest) = s.strip_prefix("/>") {
        return (El { name, children: vec![], text: String::new() }, rest);
    }
    let mut s = s.strip_prefix('>').unwrap_or_else(|| panic!("no attributes expected on <{name}>: {s:.40}"));
    let mut el = El { name, children: vec![], text: String::new() };
    loop {
        if let Some(rest) = s.strip_prefix("</") {
            let close = rest.find('>').expect("close tag end");
            assert_eq!(&rest[..close], el.name, "matching close tag");
            return (el, &rest[close + 1..]);
        }
        if s.starts_with('<') {
            let (child, rest) = parse_element(s);
            el.children.push(child);
            s = rest;
        } else {
            let next = s.find('<').expect("text end");
            el.text.push_str(&unescape(&s[..next]));
            s = &s[next..];
        }
    }
}

/// Parse a whole document: the declaration the spec asks for, then one root element.
#[track_caller]
fn parse_xml(body: &str) -> El {
    let rest = body
        .strip_prefix("<?xml version=\"1.0\" encoding=\"utf-8\"?>")
        .unwrap_or_else(|| panic!("XML declaration: {body:.80}"))
        .trim_start();
    let (root, rest) = parse_element(rest);
    assert!(rest.trim().is_empty(), "one root element");
    root
}

// ---- requests --------------------------------------------------------------------------------

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

async fn get(app: &TestApp, uri: &str) -> Resp {
    app.request(Method::GET, uri, None, &[], Vec::new()).await
}

async fn post_form(app: &TestApp, uri: &str, body: &str, headers: &[(&str, &str)]) -> Resp {
    let mut all = vec![("content-type", "application/x-www-form-urlencoded; charset=utf-8")];
    all.extend_from_slice(headers);
    app.request(Method::POST, uri, None, &all, body.as_bytes().to_vec()).await
}

fn text(r: &Resp) -> String {
    String::from_utf8(r.body.clone()).expect("UTF-8 body")
}

/// A 2xx XML answer, parsed.
#[track_caller]
fn xml(r: &Resp, status: u16) -> El {
    assert_eq!(r.status.as_u16(), status, "status; body: {}", text(r));
    assert_eq!(r.header("content-type"), Some("text/xml; charset=utf-8"));
    parse_xml(&text(r))
}

/// A 2xx JSON answer.
#[track_caller]
fn json_ok(r: &Resp, status: u16) -> Value {
    assert_eq!(r.status.as_u16(), status, "status; body: {}", text(r));
    assert_eq!(r.header("content-type"), Some("application/json; charset=utf-8"));
    r.json()
}

/// An Open311 error: the status, and a list of `{code, description}` in the format asked.
#[track_caller]
fn open311_error(r: &Resp, status: u16) -> String {
    let body = text(r);
    assert_eq!(r.status.as_u16(), status, "status; body: {body}");
    match r.header("content-type") {
        Some("application/json; charset=utf-8") => {
            let v = r.json();
            let list = v.as_array().unwrap_or_else(|| panic!("errors are a JSON array: {body}"));
            assert_eq!(list.len(), 1, "{body}");
            assert_eq!(list[0]["code"], status, "{body}");
            let d = list[0]["description"].as_str().expect("description").to_owned();
            assert!(!d.is_empty());
            d
        }
        Some("text/xml; charset=utf-8") => {
            let root = parse_xml(&body);
            assert_eq!(root.name, "errors");
            let errors = root.all("error");
            assert_eq!(errors.len(), 1, "{body}");
            assert_eq!(errors[0].get("code"), status.to_string());
            let d = errors[0].get("description").to_owned();
            assert!(!d.is_empty());
            d
        }
        other => panic!("unexpected content type {other:?}: {body}"),
    }
}

/// The form of a report of exposed garbage at the demo point, with contact data.
fn garbage_form(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut f: Vec<(String, String)> = [
        ("service_code", "06010"),
        ("lat", "34.26"),
        ("long", "117.18"),
        ("description", "路口有一堆暴露垃圾，已经两天了"),
        ("first_name", "Zhang"),
        ("last_name", "Sanfeng"),
        ("email", "zhang.sanfeng@example.com"),
        ("phone", "13812345678"),
        ("device_id", "device-7f3a9c"),
        ("account_id", "acct-4242"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    for (k, v) in extra {
        f.retain(|(x, _)| x != k);
        f.push(((*k).to_owned(), (*v).to_owned()));
    }
    f
}

fn encode(f: &[(String, String)]) -> String {
    let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    form(&pairs)
}

/// POST a report with the api_key in the query (as the python client does); the new id.
async fn report(app: &TestApp, extra: &[(&str, &str)]) -> String {
    let r =
        post_form(app, &format!("/open311/v2/requests.json?api_key={KEY}"), &encode(&garbage_form(extra)), &[]).await;
    let v = json_ok(&r, 201);
    v[0]["service_request_id"].as_str().expect("service_request_id is a string").to_owned()
}

/// Contact data given at POST must never appear in a public read.
#[track_caller]
fn assert_private(body: &str) {
    for secret in ["Zhang", "Sanfeng", "zhang.sanfeng@example.com", "13812345678", "device-7f3a9c", "acct-4242"] {
        assert!(!body.contains(secret), "public read shows {secret:?}: {body}");
    }
}

// ---- discovery and services ------------------------------------------------------------------

async fn discovery(backend: Backend) {
    let app = spawn_app(backend).await;
    let r = get(&app, "/open311/v2/discovery.json").await;
    assert_eq!(r.status.as_u16(), 200);
    // Bare content types: the SeeClickFix validator compares them as strings.
    assert_eq!(r.header("content-type"), Some("application/json"));
    let d = r.json();
    assert!(d["changeset"].as_str().is_some_and(|c| c.parse::<jiff::Timestamp>().is_ok()), "{d}");
    assert!(!d["contact"].as_str().unwrap().is_empty());
    assert!(!d["key_service"].as_str().unwrap().is_empty());
    let ep = &d["endpoints"][0];
    assert_eq!(ep["specification"], "http://wiki.open311.org/GeoReport_v2");
    assert_eq!(ep["type"], "production");
    assert!(ep["url"].as_str().unwrap().ends_with("/open311/v2"));
    assert_eq!(ep["formats"], json!(["text/xml", "application/json"]));

    let r = get(&app, "/open311/v2/discovery.xml").await;
    assert_eq!(r.header("content-type"), Some("text/xml"));
    let root = parse_xml(&text(&r));
    assert_eq!(root.name, "discovery");
    for f in ["changeset", "contact", "key_service"] {
        assert!(!root.get(f).is_empty(), "{f}");
    }
    let ep = root.child("endpoints").child("endpoint");
    assert_eq!(ep.get("specification"), "http://wiki.open311.org/GeoReport_v2");
    let formats: Vec<&str> = ep.child("formats").all("format").iter().map(|f| f.text.as_str()).collect();
    assert_eq!(formats, ["text/xml", "application/json"]);
}

async fn services_and_definitions(backend: Backend) {
    let app = spawn_app(backend).await;
    let active = app.store.list_services().await.unwrap().into_iter().filter(|s| s.active).count();
    assert!(active > 1);

    let list = json_ok(&get(&app, "/open311/v2/services.json").await, 200);
    let list = list.as_array().expect("array at top level");
    assert_eq!(list.len(), active);
    let garbage = list.iter().find(|s| s["service_code"] == "06010").expect("06010 is a service");
    assert_eq!(garbage["service_name"], "暴露垃圾");
    assert_eq!(garbage["metadata"], false);
    assert_eq!(garbage["type"], "realtime");
    assert_eq!(garbage["group"], "市容环境");
    assert!(garbage["keywords"].as_str().unwrap().contains("垃圾"));
    assert!(list.iter().all(|s| s["service_code"].is_string()), "codes are strings");
    let cover = list.iter().find(|s| s["service_code"] == "01001").unwrap();
    assert_eq!(cover["metadata"], true);
    let bulky = list.iter().find(|s| s["service_code"] == "06036").unwrap();
    assert_eq!(bulky["type"], "batch");

    let root = xml(&get(&app, "/open311/v2/services.xml").await, 200);
    assert_eq!(root.name, "services");
    let services = root.all("service");
    assert_eq!(services.len(), active);
    let g = services.iter().find(|s| s.get("service_code") == "06010").unwrap();
    assert_eq!(g.get("metadata"), "false");
    assert_eq!(g.get("service_name"), "暴露垃圾");

    // A definition, in both formats and by the old python client's singular path.
    for uri in ["/open311/v2/services/01001.json", "/open311/v2/service/01001.json?jurisdiction_id="] {
        let d = json_ok(&get(&app, uri).await, 200);
        assert_eq!(d["service_code"], "01001", "{uri}");
        let attrs = d["attributes"].as_array().expect("attributes array");
        assert_eq!(attrs.len(), 1);
        let a = &attrs[0];
        assert_eq!(a["code"], "condition");
        assert_eq!(a["variable"], true);
        assert_eq!(a["required"], true);
        assert_eq!(a["datatype"], "singlevaluelist");
        assert_eq!(a["order"], 1);
        assert_eq!(a["values"][0], json!({"key": "missing", "name": "丢失"}));
    }
    let d = xml(&get(&app, "/open311/v2/services/01001.xml").await, 200);
    assert_eq!(d.name, "service_definition");
    assert_eq!(d.get("service_code"), "01001");
    let attr = d.child("attributes").child("attribute");
    assert_eq!(attr.get("datatype"), "singlevaluelist");
    assert_eq!(attr.get("required"), "true");
    assert_eq!(attr.child("values").all("value").len(), 3);
    // A service without attributes still has a definition, with none.
    let d = json_ok(&get(&app, "/open311/v2/services/06010.json").await, 200);
    assert_eq!(d["attributes"], json!([]));

    // Unknown codes are 404, in the format asked.
    assert!(open311_error(&get(&app, "/open311/v2/services/99999.json").await, 404).contains("99999"));
    open311_error(&get(&app, "/open311/v2/services/99999.xml").await, 404);
    open311_error(&get(&app, "/open311/v2/service/nope.xml").await, 404);
}

async fn jurisdiction_and_paths(backend: Backend) {
    let app = spawn_app(backend).await;
    // Empty = absent; ours (any case) is fine; another city's is 404.
    for q in ["", "?jurisdiction_id=", "?jurisdiction_id=xuzhou.gov.cn", "?jurisdiction_id=XUZHOU.gov.cn"] {
        json_ok(&get(&app, &format!("/open311/v2/services.json{q}")).await, 200);
    }
    for uri in [
        "/open311/v2/services.json?jurisdiction_id=sfgov.org",
        "/open311/v2/services/06010.json?jurisdiction_id=sfgov.org",
        "/open311/v2/requests.json?jurisdiction_id=sfgov.org",
        "/open311/v2/requests/1.json?jurisdiction_id=sfgov.org",
        "/open311/v2/tokens/abc.json?jurisdiction_id=sfgov.org",
        "/open311/v2/servicerequestupdates.json?jurisdiction_id=sfgov.org",
    ] {
        assert!(open311_error(&get(&app, uri).await, 404).contains("sfgov.org"), "{uri}");
    }
    let r = post_form(
        &app,
        &format!("/open311/v2/requests.xml?api_key={KEY}&jurisdiction_id=sfgov.org"),
        &encode(&garbage_form(&[])),
        &[],
    )
    .await;
    open311_error(&r, 404);
    // Unknown resources are 404 and unknown formats 400, as Open311 errors.
    open311_error(&get(&app, "/open311/v2/nothing.json").await, 404);
    open311_error(&get(&app, "/open311/v2/nothing.xml").await, 404);
    open311_error(&get(&app, "/open311/v2/requests/1/extra.json").await, 404);
    assert!(open311_error(&get(&app, "/open311/v2/services.csv").await, 400).contains(".csv"));
    // No suffix: XML, the format the spec requires.
    assert_eq!(xml(&get(&app, "/open311/v2/services").await, 200).name, "services");
    // Methods a resource does not serve are 400 in the Open311 format.
    let r = post_form(&app, "/open311/v2/services.json", "", &[]).await;
    open311_error(&r, 400);
    let r = app.request(Method::DELETE, "/open311/v2/requests/1.json", None, &[], vec![]).await;
    open311_error(&r, 400);
}

// ---- POST and read back ----------------------------------------------------------------------

async fn post_and_read_back(backend: Backend) {
    let app = spawn_app(backend).await;
    let cases = app.count("cases").await;
    // api_key in the query, answer in XML.
    let body = encode(&garbage_form(&[("media_url", "https://img.example.com/p/1.jpg")]));
    let r = post_form(&app, &format!("/open311/v2/requests.xml?jurisdiction_id=&api_key={KEY}"), &body, &[]).await;
    let root = xml(&r, 201);
    assert_eq!(root.name, "service_requests");
    let one = root.child("request");
    let id = one.get("service_request_id").to_owned();
    assert!(id.parse::<i64>().is_ok());
    assert!(!one.get("service_notice").is_empty());
    assert_eq!(one.get("account_id"), "acct-4242", "account_id is echoed to the poster");
    // api_key in the form body, answer in JSON: an array of one.
    let body = encode(&garbage_form(&[("api_key", KEY), ("jurisdiction_id", "xuzhou.gov.cn")]));
    let v = json_ok(&post_form(&app, "/open311/v2/requests.json", &body, &[]).await, 201);
    assert_eq!(v.as_array().unwrap().len(), 1);
    let id2 = v[0]["service_request_id"].as_str().expect("string id").to_owned();
    assert_ne!(id, id2);
    assert!(v[0].get("token").is_none(), "realtime: an id, not a token");
    assert_eq!(app.count("cases").await, cases + 2);
    assert_eq!(app.count("open311_requests").await, 2);

    // The case: a citizen report, verifying, filed by the client's own user, anonymous.
    let case = app.store.get_case(id.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(case.source.as_str(), "citizen");
    assert_eq!(case.state.as_str(), "verifying");
    assert_eq!(case.class_code.as_str(), "06010");
    assert_eq!(case.grid_code.as_str(), "320311002002001");
    let client_user = app.store.user_by_name("open311-demo").await.unwrap().unwrap().0;
    assert_eq!(case.reporter_id, Some(client_user.id));

    // Read back one: JSON array of one, XML list of one.
    let r = get(&app, &format!("/open311/v2/requests/{id}.json")).await;
    assert_private(&text(&r));
    let v = json_ok(&r, 200);
    let list = v.as_array().expect("a list even for one");
    assert_eq!(list.len(), 1);
    let req = &list[0];
    assert_eq!(req["service_request_id"], id.as_str());
    assert_eq!(req["status"], "open");
    assert_eq!(req["service_code"], "06010");
    assert_eq!(req["service_name"], "暴露垃圾");
    assert_eq!(req["description"], "路口有一堆暴露垃圾，已经两天了", "UTF-8 round trip");
    assert_eq!(req["lat"], 34.26);
    assert_eq!(req["long"], 117.18);
    assert_eq!(req["media_url"], "https://img.example.com/p/1.jpg");
    assert_eq!(req["zipcode"], Value::Null);
    assert_eq!(req["status_notes"], Value::Null);
    assert_eq!(req["agency_responsible"], Value::Null, "not dispatched yet");
    let requested = req["requested_datetime"].as_str().unwrap();
    assert_eq!(requested, "2026-09-28T09:00:00+08:00", "the city's offset");
    assert!(req["updated_datetime"].as_str().unwrap().ends_with("+08:00"));
    for f in ["first_name", "last_name", "email", "phone", "device_id", "account_id"] {
        assert!(req.get(f).is_none(), "{f} is never public");
    }
    let r = get(&app, &format!("/open311/v2/requests/{id}.xml?jurisdiction_id=")).await;
    assert_private(&text(&r));
    let root = xml(&r, 200);
    assert_eq!(root.name, "service_requests");
    let one = root.child("request");
    assert_eq!(one.get("service_request_id"), id);
    assert_eq!(one.get("description"), "路口有一堆暴露垃圾，已经两天了");
    assert_eq!(one.get("status"), "open");
    assert_eq!(one.get("lat"), "34.26");
    assert_eq!(one.get("long"), "117.18");
    assert_eq!(one.get("zipcode"), "");
    // Unknown and impossible ids are 404.
    open311_error(&get(&app, "/open311/v2/requests/987654.json").await, 404);
    open311_error(&get(&app, "/open311/v2/requests/abc.xml").await, 404);
    // The whole list never shows contact data either.
    let r = get(&app, "/open311/v2/requests.xml").await;
    assert_private(&text(&r));
    let r = get(&app, "/open311/v2/requests.json").await;
    assert_private(&text(&r));
}

async fn lists_of_zero_one_and_many(backend: Backend) {
    let app = spawn_app(backend).await;
    // Zero.
    let root = xml(&get(&app, "/open311/v2/requests.xml").await, 200);
    assert_eq!(root.name, "service_requests");
    assert!(root.children.is_empty());
    assert_eq!(json_ok(&get(&app, "/open311/v2/requests.json").await, 200), json!([]));
    // One.
    let a = report(&app, &[]).await;
    let root = xml(&get(&app, "/open311/v2/requests.xml").await, 200);
    assert_eq!(root.all("request").len(), 1);
    assert_eq!(json_ok(&get(&app, "/open311/v2/requests.json").await, 200).as_array().unwrap().len(), 1);
    // Many, newest first; a staff report of a citizen category is in the public feed too.
    app.set_time("2026-09-28 10:00");
    let b = report(&app, &[("service_code", "06012"), ("description", "道路不洁")]).await;
    app.set_time("2026-09-28 11:00");
    let collector = app.sign_in("collector").await;
    let staff = app.report(&collector, &garbage()).await;
    let c = staff["id"].as_i64().unwrap().to_string();
    // A staff report of a class that is no citizen category is not.
    let mut other = garbage();
    other["class_code"] = json!("06001");
    let r = app.post_json(&collector, "/api/v1/cases", &other).await;
    if r.status.as_u16() == 201 {
        let hidden = r.json()["id"].as_i64().unwrap().to_string();
        open311_error(&get(&app, &format!("/open311/v2/requests/{hidden}.json")).await, 404);
    }
    let all = json_ok(&get(&app, "/open311/v2/requests.json").await, 200);
    let ids: Vec<&str> = all.as_array().unwrap().iter().map(|r| r["service_request_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [c.as_str(), b.as_str(), a.as_str()]);
    let root = xml(&get(&app, "/open311/v2/requests.xml").await, 200);
    assert_eq!(root.all("request").len(), 3);

    let ids_of = |v: &Value| -> Vec<String> {
        v.as_array().unwrap().iter().map(|r| r["service_request_id"].as_str().unwrap().to_owned()).collect()
    };
    let q = |s: &str| format!("/open311/v2/requests.json?{s}");
    // service_code, comma lists.
    assert_eq!(ids_of(&json_ok(&get(&app, &q("service_code=06012")).await, 200)), [b.as_str()]);
    assert_eq!(ids_of(&json_ok(&get(&app, &q("service_code=06012,06010")).await, 200)).len(), 3);
    // service_request_id overrides the other filters.
    let v = json_ok(&get(&app, &q(&format!("service_request_id={a},{b}&service_code=01001&status=closed"))).await, 200);
    assert_eq!(ids_of(&v), [b.as_str(), a.as_str()]);
    assert_eq!(json_ok(&get(&app, &q("service_request_id=x")).await, 200), json!([]));
    // status.
    assert_eq!(ids_of(&json_ok(&get(&app, &q("status=open")).await, 200)).len(), 3);
    assert_eq!(json_ok(&get(&app, &q("status=closed")).await, 200), json!([]));
    assert_eq!(ids_of(&json_ok(&get(&app, &q("status=open,closed")).await, 200)).len(), 3);
    // Dates with offsets (a `+` sent unencoded arrives as a space), Z, half-hour steps.
    let v =
        json_ok(&get(&app, &q("start_date=2026-09-28T09:30:00+08:00&end_date=2026-09-28T10:30:00%2B08:00")).await, 200);
    assert_eq!(ids_of(&v), [b.as_str()]);
    let v = json_ok(&get(&app, &q("start_date=2026-09-28T01:30:00Z&end_date=2026-09-28T02:30:00Z")).await, 200);
    assert_eq!(ids_of(&v), [b.as_str()]);
    let v = json_ok(&get(&app, &q("start_date=2026-09-28T09:00:00%2B08:00")).await, 200);
    assert_eq!(ids_of(&v).len(), 3, "start_date alone: up to now");
    assert_eq!(json_ok(&get(&app, &q("end_date=2026-09-27T00:00:00Z")).await, 200), json!([]));
    // Pages (an extension).
    assert_eq!(ids_of(&json_ok(&get(&app, &q("page_size=2")).await, 200)), [c.as_str(), b.as_str()]);
    assert_eq!(ids_of(&json_ok(&get(&app, &q("page_size=2&page=2")).await, 200)), [a.as_str()]);
    // Bad filters are 400 with a reason.
    for bad in [
        "status=pending",
        "start_date=yesterday",
        "start_date=2026-01-01T00:00:00Z&end_date=2026-09-28T00:00:00Z",
        "start_date=2026-09-28T00:00:00Z&end_date=2026-09-27T00:00:00Z",
        "page=0",
        "page_size=5000",
    ] {
        open311_error(&get(&app, &q(bad)).await, 400);
        open311_error(&get(&app, &format!("/open311/v2/requests.xml?{bad}")).await, 400);
    }
}

// ---- refusals: clear, and nothing written ----------------------------------------------------

async fn refused_posts_write_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let counts = app.counts().await;
    let uri = format!("/open311/v2/requests.json?api_key={KEY}");
    let with = |extra: &[(&str, &str)]| encode(&garbage_form(extra));
    let without = |key: &str| {
        let f: Vec<(String, String)> = garbage_form(&[]).into_iter().filter(|(k, _)| k != key).collect();
        encode(&f)
    };
    let long = "长".repeat(4001);
    let outside = (OUTSIDE.1.to_string(), OUTSIDE.0.to_string());
    let cases: Vec<(&str, String, String, u16, &str)> = vec![
        ("no api_key", "/open311/v2/requests.json".into(), with(&[]), 403, "api_key"),
        ("forged api_key", "/open311/v2/requests.json?api_key=forged".into(), with(&[]), 403, "api_key"),
        (
            "forged api_key in the body",
            "/open311/v2/requests.xml".into(),
            with(&[("api_key", "demo-open311-kez")]),
            403,
            "api_key",
        ),
        ("no service_code", uri.clone(), without("service_code"), 400, "service_code"),
        ("unknown service_code", uri.clone(), with(&[("service_code", "99999")]), 404, "99999"),
        ("outside the city", uri.clone(), with(&[("lat", &outside.0), ("long", &outside.1)]), 400, "outside"),
        (
            "no location",
            uri.clone(),
            encode(&garbage_form(&[]).into_iter().filter(|(k, _)| k != "lat" && k != "long").collect::<Vec<_>>()),
            400,
            "location",
        ),
        ("lat without long", uri.clone(), without("long"), 400, "lat and long"),
        ("lat not a number", uri.clone(), with(&[("lat", "north")]), 400, "lat"),
        ("description over 4000", uri.clone(), with(&[("description", &long)]), 400, "4000"),
        ("control characters", uri.clone(), with(&[("description", "a\u{1}b")]), 400, "description"),
        ("media_url not http", uri.clone(), with(&[("media_url", "file:///etc/passwd")]), 400, "media_url"),
        ("media_url javascript", uri.clone(), with(&[("media_url", "javascript:alert(1)")]), 400, "media_url"),
        ("required attribute missing", uri.clone(), with(&[("service_code", "01001")]), 400, "attribute[condition]"),
        (
            "attribute value unknown",
            uri.clone(),
            with(&[("service_code", "01001"), ("attribute[condition]", "gone")]),
            400,
            "attribute[condition]",
        ),
        ("attribute unknown", uri.clone(), with(&[("attribute[colour]", "red")]), 400, "attribute[colour]"),
        ("bad email", uri.clone(), with(&[("email", "not an email")]), 400, "email"),
        (
            "address_string unknown",
            uri.clone(),
            encode(&[("service_code".into(), "06010".into()), ("address_string".into(), "火星大道99号".into())]),
            400,
            "address_string",
        ),
        (
            "address_id unknown",
            uri.clone(),
            encode(&[("service_code".into(), "06010".into()), ("address_id".into(), "nope".into())]),
            400,
            "address_id",
        ),
    ];
    for (what, uri, body, status, needle) in &cases {
        let r = post_form(&app, uri, body, &[]).await;
        let d = open311_error(&r, *status);
        assert!(d.contains(needle), "{what}: {d}");
    }
    // Wrong body types.
    let r = app
        .request(
            Method::POST,
            &uri,
            None,
            &[("content-type", "application/json")],
            b"{\"service_code\":\"06010\"}".to_vec(),
        )
        .await;
    open311_error(&r, 400);
    let r = app
        .request(Method::POST, &uri, None, &[("content-type", "multipart/form-data; boundary=x")], b"--x--".to_vec())
        .await;
    assert!(open311_error(&r, 400).contains("media_url"));
    let r = post_form(&app, &uri, "service_code=06010&description=%FF%FE&lat=34.26&long=117.18", &[]).await;
    assert!(open311_error(&r, 400).contains("UTF-8"));
    // A bearer token that is not a citizen's live token is refused too.
    let r = post_form(&app, &uri, &with(&[]), &[("authorization", "Bearer not-a-token")]).await;
    open311_error(&r, 403);
    let acceptor = app.sign_in("acceptor").await;
    let r = post_form(&app, &uri, &with(&[]), &[("authorization", &format!("Bearer {acceptor}"))]).await;
    open311_error(&r, 403);
    let mut after = app.counts().await;
    // Signing in wrote a token; nothing else changed.
    after.retain(|(t, _)| t != "tokens");
    let before: Vec<_> = counts.into_iter().filter(|(t, _)| t != "tokens").collect();
    assert_eq!(after, before, "a refused request writes nothing");
}

// ---- quirks, attributes and addresses --------------------------------------------------------

async fn attributes_and_addresses(backend: Backend) {
    let app = spawn_app(backend).await;
    // A category with a multivaluelist question, added for this test.
    let mut svc = app.store.get_service("06011").await.unwrap().unwrap();
    svc.attributes = vec![citygrid_core::citizen::Attribute {
        variable: true,
        code: "kinds".into(),
        datatype: citygrid_core::citizen::Datatype::Multivaluelist,
        required: true,
        datatype_description: Some("可多选".into()),
        order: 1,
        description: "垃圾种类".into(),
        values: vec![
            citygrid_core::citizen::AttributeValue { key: "construction".into(), name: "建筑垃圾".into() },
            citygrid_core::citizen::AttributeValue { key: "household".into(), name: "生活垃圾".into() },
        ],
    }];
    app.store.put_services(&[svc]).await.unwrap();
    let d = json_ok(&get(&app, "/open311/v2/services/06011.json").await, 200);
    assert_eq!(d["attributes"][0]["datatype"], "multivaluelist");
    let list = json_ok(&get(&app, "/open311/v2/services.json").await, 200);
    assert_eq!(list.as_array().unwrap().iter().find(|s| s["service_code"] == "06011").unwrap()["metadata"], true);

    let id = report(&app, &[("service_code", "06011"), ("attribute[kinds][]", "construction")]).await;
    assert!(!id.is_empty());
    // Two values of a multivaluelist.
    let mut f = garbage_form(&[("service_code", "06011")]);
    f.push(("attribute[kinds][]".into(), "construction".into()));
    f.push(("attribute[kinds][]".into(), "household".into()));
    let r = post_form(&app, &format!("/open311/v2/requests.json?api_key={KEY}"), &encode(&f), &[]).await;
    let v = json_ok(&r, 201);
    let case_id: i64 = v[0]["service_request_id"].as_str().unwrap().parse().unwrap();
    let row = app.store.open311_request(case_id).await.unwrap().unwrap();
    let data: Value = serde_json::from_str(&row.data).unwrap();
    assert_eq!(data["attributes"]["kinds"], json!(["construction", "household"]));
    assert_eq!(data["contact"]["phone"], "13812345678", "contact data is kept privately");
    // The single-value one refuses two values.
    let mut f = garbage_form(&[("service_code", "01001")]);
    f.push(("attribute[condition]".into(), "missing".into()));
    f.push(("attribute[condition]".into(), "broken".into()));
    let r = post_form(&app, &format!("/open311/v2/requests.json?api_key={KEY}"), &encode(&f), &[]).await;
    assert!(open311_error(&r, 400).contains("one value"));
    report(&app, &[("service_code", "01001"), ("attribute[condition]", "missing")]).await;

    // address_string (geocoded) and address_id, once the city has addresses.
    let admin = app.sign_in("admin").await;
    let csv = "code,kind,name,aliases,district,road,number,lon,lat\n\
               320311-R-0001,road,淮海西路,淮海路,320311,,,117.1800,34.2600\n\
               320311-D-000001,door,淮海西路18号,,320311,淮海西路,18号,117.1801,34.2601\n";
    let r = app
        .request(
            Method::POST,
            "/api/v1/map/layers/addresses/import",
            Some(&admin),
            &[("content-type", "text/csv")],
            csv.as_bytes().to_vec(),
        )
        .await;
    r.ok(200);
    let body = encode(&[
        ("service_code".into(), "06010".into()),
        ("address_string".into(), "徐州市泉山区淮海西路18号".into()),
        ("description".into(), "门口垃圾".into()),
    ]);
    let v = json_ok(&post_form(&app, &format!("/open311/v2/requests.json?api_key={KEY}"), &body, &[]).await, 201);
    let id = v[0]["service_request_id"].as_str().unwrap().to_owned();
    let read = json_ok(&get(&app, &format!("/open311/v2/requests/{id}.json")).await, 200);
    assert_eq!(read[0]["address"], "徐州市泉山区淮海西路18号");
    assert!((read[0]["lat"].as_f64().unwrap() - 34.2601).abs() < 1e-9);
    let body = encode(&[("service_code".into(), "06010".into()), ("address_id".into(), "320311-D-000001".into())]);
    let root = xml(&post_form(&app, &format!("/open311/v2/requests.xml?api_key={KEY}"), &body, &[]).await, 201);
    let id = root.child("request").get("service_request_id").to_owned();
    let read = json_ok(&get(&app, &format!("/open311/v2/requests/{id}.json")).await, 200);
    assert_eq!(read[0]["address"], "淮海西路18号");
    assert_eq!(read[0]["address_id"], "320311-D-000001");
}

async fn demo_point_in_xml_with_the_python_client_quirks(backend: Backend) {
    let app = spawn_app(backend).await;
    // As the python `open311` client sends it: api_key and an empty jurisdiction_id in the
    // query, the report in the body, XML answers.
    let body = form(&[
        ("service_code", "06010"),
        ("lat", "34.26"),
        ("long", "117.18"),
        ("description", "暴露垃圾 <b>&amp;</b>"),
    ]);
    let r = post_form(&app, &format!("/open311/v2/requests.xml?jurisdiction_id=&api_key={KEY}"), &body, &[]).await;
    let id = xml(&r, 201).child("request").get("service_request_id").to_owned();
    let root = xml(&get(&app, &format!("/open311/v2/requests/{id}.xml?jurisdiction_id=")).await, 200);
    assert_eq!(root.child("request").get("description"), "暴露垃圾 <b>&amp;</b>", "escaped and read back as sent");
    let list = xml(&get(&app, "/open311/v2/services.xml?jurisdiction_id=").await, 200);
    assert!(list.all("service").iter().any(|s| s.get("service_code") == "06010"));
}

// ---- idempotency, citizens, tokens -----------------------------------------------------------

async fn idempotency_key_makes_retries_safe(backend: Backend) {
    let app = spawn_app(backend).await;
    let uri = format!("/open311/v2/requests.json?api_key={KEY}");
    let body = encode(&garbage_form(&[]));
    let key = [("idempotency-key", "retry-7f3a")];
    let first = json_ok(&post_form(&app, &uri, &body, &key).await, 201);
    let cases = app.count("cases").await;
    let again = post_form(&app, &uri, &body, &key).await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(json_ok(&again, 201)[0]["service_request_id"], first[0]["service_request_id"]);
    assert_eq!(app.count("cases").await, cases, "a retry creates nothing");
    assert_eq!(app.count("open311_requests").await, 1);
    // The same key with another request is refused; another key is another report.
    let other = encode(&garbage_form(&[("description", "另一处垃圾")]));
    open311_error(&post_form(&app, &uri, &other, &key).await, 400);
    json_ok(&post_form(&app, &uri, &other, &[("idempotency-key", "retry-8e4b")]).await, 201);
    assert_eq!(app.count("cases").await, cases + 1);
}

async fn citizen_bearer_token_files_as_the_citizen(backend: Backend) {
    let app = spawn_app(backend).await;
    let citizen = app.sign_in("citizen").await;
    let me = app.store.user_by_name("citizen").await.unwrap().unwrap().0;
    let uri = format!("/open311/v2/requests.json?api_key={KEY}");
    let v = json_ok(
        &post_form(&app, &uri, &encode(&garbage_form(&[])), &[("authorization", &format!("Bearer {citizen}"))]).await,
        201,
    );
    let id: i64 = v[0]["service_request_id"].as_str().unwrap().parse().unwrap();
    let case = app.store.get_case(id).await.unwrap().unwrap();
    assert_eq!(case.reporter_id, Some(me.id), "filed as the signed-in citizen");
    // The citizen sees it among their own reports through the staff API as well.
    let own = app.get(&citizen, &format!("/api/v1/cases/{id}")).await.ok(200);
    assert_eq!(own["id"], id);
    // Without the token the same client files anonymously, as its own user.
    let id2: i64 = report(&app, &[]).await.parse().unwrap();
    let anon = app.store.get_case(id2).await.unwrap().unwrap();
    assert_ne!(anon.reporter_id, Some(me.id));
    let row = app.store.open311_request(id2).await.unwrap().unwrap();
    let data: Value = serde_json::from_str(&row.data).unwrap();
    assert_eq!(data["anonymous"], true);
}

async fn batch_service_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = encode(&garbage_form(&[("service_code", "06036")]));
    let v = json_ok(&post_form(&app, &format!("/open311/v2/requests.json?api_key={KEY}"), &body, &[]).await, 201);
    assert!(v[0].get("service_request_id").is_none(), "batch: a token, not an id");
    let token = v[0]["token"].as_str().expect("token").to_owned();
    let t = json_ok(&get(&app, &format!("/open311/v2/tokens/{token}.json")).await, 200);
    assert_eq!(t.as_array().unwrap().len(), 1);
    assert_eq!(t[0]["token"], token.as_str());
    let id = t[0]["service_request_id"].as_str().unwrap().to_owned();
    let root = xml(&get(&app, &format!("/open311/v2/tokens/{token}.xml?jurisdiction_id=")).await, 200);
    assert_eq!(root.name, "service_requests");
    assert_eq!(root.child("request").get("service_request_id"), id);
    let read = json_ok(&get(&app, &format!("/open311/v2/requests/{id}.json")).await, 200);
    assert_eq!(read[0]["service_code"], "06036");
    open311_error(&get(&app, "/open311/v2/tokens/not-a-token.json").await, 404);
    open311_error(&get(&app, "/open311/v2/tokens/not-a-token.xml").await, 404);
}

// ---- honest end states and FixMyStreet updates -----------------------------------------------

async fn end_states_are_honest(backend: Backend) {
    let app = spawn_app(backend).await;
    let acceptor = app.sign_in("acceptor").await;
    let a: i64 = report(&app, &[]).await.parse().unwrap();
    let b: i64 = report(&app, &[]).await.parse().unwrap();
    let c: i64 = report(&app, &[]).await.parse().unwrap();
    app.step(&acceptor, a, "reject", json!({"note": "属小区物业管理范围", "reason": "not_city_responsibility"})).await;
    app.step(&acceptor, b, "void", json!({"note": "重复", "duplicate_of": c})).await;
    app.step(&acceptor, c, "reject", json!({"note": "现场未发现", "reason": "not_found"})).await;
    let v = json_ok(&get(&app, "/open311/v2/requests.json?status=closed").await, 200);
    let by_id = |id: i64| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|r| r["service_request_id"].as_str().and_then(|s| s.parse::<i64>().ok()) == Some(id))
            .unwrap()
            .clone()
    };
    assert_eq!(by_id(a)["status"], "closed");
    assert_eq!(by_id(a)["status_notes"], "非城管职责：属小区物业管理范围");
    assert_eq!(by_id(b)["status_notes"], format!("重复举报：与请求 {c} 为同一问题"));
    assert_eq!(by_id(c)["status_notes"], "现场核实不属实：现场未发现");
    assert_eq!(json_ok(&get(&app, "/open311/v2/requests.json?status=open").await, 200), json!([]));
    let root = xml(&get(&app, &format!("/open311/v2/requests/{a}.xml")).await, 200);
    assert_eq!(root.child("request").get("status_notes"), "非城管职责：属小区物业管理范围");
}

async fn updates_are_delivered_exactly_once(backend: Backend) {
    let app = spawn_app_with(backend, long_tokens()).await;
    let collector = app.sign_in("collector").await;
    let acceptor = app.sign_in("acceptor").await;
    let leader = app.sign_in("leader").await;
    let dispatcher = app.sign_in("dispatcher").await;
    let handler = app.sign_in("handler").await;
    let hw = app.department("HW").await;
    let after = app.photo_id(&handler, &tiny_jpeg(None)).await;
    app.set_time("2026-09-28 09:00");
    let id: i64 = report(&app, &[]).await.parse().unwrap();
    let steps: [(&str, &str, &str, Value); 7] = [
        ("2026-09-28 09:10", "verify", collector.as_str(), json!({"confirmed": true})),
        ("2026-09-28 09:20", "accept", acceptor.as_str(), Value::Null),
        ("2026-09-28 09:30", "file", leader.as_str(), json!({})),
        ("2026-09-28 09:40", "dispatch", dispatcher.as_str(), json!({"department_id": hw})),
        ("2026-09-28 10:40", "dispose", handler.as_str(), json!({"note": "已清运", "photo_ids": [after]})),
        ("2026-09-28 11:00", "check", collector.as_str(), json!({"passed": true})),
        ("2026-09-28 11:10", "close", leader.as_str(), Value::Null),
    ];
    for (at, action, token, body) in steps {
        app.set_time(at);
        app.step(token, id, action, body).await;
    }
    // Dispatched: the agency is named.
    let read = json_ok(&get(&app, &format!("/open311/v2/requests/{id}.json")).await, 200);
    assert_eq!(read[0]["status"], "closed");
    assert_eq!(read[0]["agency_responsible"], "市环境卫生管理处");
    assert!(read[0]["expected_datetime"].as_str().unwrap().ends_with("+08:00"));
    app.set_time("2026-09-28 12:00");
    // Two consecutive polls whose windows meet at 09:40 (the dispatch itself): half-open, so
    // the dispatch is in the second poll only.
    let poll =
        |s: &str, e: &str| format!("/open311/v2/servicerequestupdates.json?start_date={}&end_date={}", enc(s), enc(e));
    let first = json_ok(&get(&app, &poll("2026-09-28T09:00:00+08:00", "2026-09-28T09:40:00+08:00")).await, 200);
    let second = json_ok(&get(&app, &poll("2026-09-28T01:40:00Z", "2026-09-28T12:00:00+08:00")).await, 200);
    let statuses = |v: &Value| -> Vec<(String, String)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|u| (u["update_id"].as_str().unwrap().to_owned(), u["status"].as_str().unwrap().to_owned()))
            .collect()
    };
    let (s1, s2) = (statuses(&first), statuses(&second));
    // The public status changes: investigating → open (verify) → action scheduled (file) →
    // in progress (dispatch) → fixed (close). Accept, dispose and check change nothing public.
    assert_eq!(s1, [(format!("{id}-2"), "OPEN".to_owned()), (format!("{id}-4"), "ACTION_SCHEDULED".to_owned())]);
    assert_eq!(s2, [(format!("{id}-5"), "IN_PROGRESS".to_owned()), (format!("{id}-8"), "FIXED".to_owned())]);
    let fixed = &second[1];
    assert_eq!(fixed["service_request_id"], id.to_string());
    assert_eq!(fixed["updated_datetime"], "2026-09-28T11:10:00+08:00");
    assert!(fixed["media_url"].as_str().unwrap().ends_with(&format!("/api/v1/photos/{after}")), "the after-photo");
    assert!(!fixed["description"].as_str().unwrap().is_empty());
    // The same in XML, and stable ids on a repeated poll.
    let root = xml(
        &get(&app, &poll("2026-09-28T09:00:00+08:00", "2026-09-28T12:00:00+08:00").replace(".json", ".xml")).await,
        200,
    );
    assert_eq!(root.name, "service_requests_updates");
    let ids: Vec<&str> = root.all("request_update").iter().map(|u| u.get("update_id")).collect();
    assert_eq!(ids, [format!("{id}-2"), format!("{id}-4"), format!("{id}-5"), format!("{id}-8")]);
    // A poll after the last change is empty; bad windows are 400.
    assert_eq!(
        json_ok(&get(&app, &poll("2026-09-28T11:10:01+08:00", "2026-09-28T12:00:00+08:00")).await, 200),
        json!([])
    );
    open311_error(&get(&app, &poll("2026-09-28T12:00:00+08:00", "2026-09-28T09:00:00+08:00")).await, 400);
    // FixMyStreet sends its api_key on GET too: accepted and ignored.
    json_ok(
        &get(&app, &format!("{}&api_key={KEY}", poll("2026-09-28T09:00:00+08:00", "2026-09-28T12:00:00+08:00"))).await,
        200,
    );
    // Without dates: the last 24 hours.
    assert_eq!(json_ok(&get(&app, "/open311/v2/servicerequestupdates.json").await, 200).as_array().unwrap().len(), 4);
}

async fn clients_post_updates(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = report(&app, &[]).await;
    let uri = format!("/open311/v2/servicerequestupdates.xml?api_key={KEY}");
    let body = form(&[
        ("service_request_id", &id),
        ("update_id", "fms-991"),
        ("status", "OPEN"),
        ("description", "垃圾还在，越来越多了"),
        ("updated_datetime", "2026-09-28T09:05:00+08:00"),
        ("first_name", "Zhang"),
        ("email", "zhang.sanfeng@example.com"),
    ]);
    let root = xml(&post_form(&app, &uri, &body, &[]).await, 201);
    assert_eq!(root.name, "service_requests_updates");
    let update_id = root.child("request_update").get("update_id").to_owned();
    assert!(!update_id.is_empty());
    assert_eq!(app.count("open311_updates").await, 1);
    // A retry with the client's own update_id gets the same answer and writes nothing.
    let again = xml(&post_form(&app, &uri, &body, &[]).await, 200);
    assert_eq!(again.child("request_update").get("update_id"), update_id);
    assert_eq!(app.count("open311_updates").await, 1);
    // JSON: an array of one.
    let body2 = form(&[("service_request_id", &id), ("description", "补充：在路口东侧"), ("api_key", KEY)]);
    let v = json_ok(&post_form(&app, "/open311/v2/servicerequestupdates.json", &body2, &[]).await, 201);
    assert!(v[0]["update_id"].is_string());
    assert_eq!(app.count("open311_updates").await, 2);
    // Refusals write nothing.
    open311_error(&post_form(&app, "/open311/v2/servicerequestupdates.json?api_key=forged", &body2, &[]).await, 403);
    open311_error(
        &post_form(
            &app,
            "/open311/v2/servicerequestupdates.json",
            &form(&[("service_request_id", &id), ("description", "x")]),
            &[],
        )
        .await,
        403,
    );
    let unknown = form(&[("service_request_id", "987654"), ("description", "x"), ("api_key", KEY)]);
    open311_error(&post_form(&app, "/open311/v2/servicerequestupdates.json", &unknown, &[]).await, 404);
    let missing = form(&[("description", "x"), ("api_key", KEY)]);
    open311_error(&post_form(&app, "/open311/v2/servicerequestupdates.json", &missing, &[]).await, 400);
    let empty = form(&[("service_request_id", &id), ("api_key", KEY)]);
    open311_error(&post_form(&app, "/open311/v2/servicerequestupdates.json", &empty, &[]).await, 400);
    assert_eq!(app.count("open311_updates").await, 2);
    // A posted comment is for the staff: the public feed does not show it or its poster.
    let feed = get(&app, "/open311/v2/servicerequestupdates.xml").await;
    assert!(!text(&feed).contains("越来越多"));
    assert_private(&text(&get(&app, &format!("/open311/v2/requests/{id}.json")).await));
}

async fn administrators_issue_keys(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.sign_in("admin").await;
    let r = app.post_json(&admin, "/api/v1/open311/clients", &json!({"name": "fixmystreet"})).await;
    let c = r.ok(201);
    let key = c["api_key"].as_str().expect("the key, once").to_owned();
    assert_eq!(c["username"], "open311-fixmystreet");
    let body = encode(&garbage_form(&[("api_key", &key)]));
    let v = json_ok(&post_form(&app, "/open311/v2/requests.json", &body, &[]).await, 201);
    let id: i64 = v[0]["service_request_id"].as_str().unwrap().parse().unwrap();
    let case = app.store.get_case(id).await.unwrap().unwrap();
    assert_eq!(case.reporter_id, c["user_id"].as_i64());
    // Only the hash is stored.
    let counts_before = app.counts().await;
    app.post_json(&admin, "/api/v1/open311/clients", &json!({"name": "fixmystreet"}))
        .await
        .problem(409, "conflict", None);
    app.post_json(&admin, "/api/v1/open311/clients", &json!({"name": "bad name!"})).await.problem(
        422,
        "invalid_field",
        Some("name"),
    );
    let collector = app.sign_in("collector").await;
    app.post_json(&collector, "/api/v1/open311/clients", &json!({"name": "x"})).await.problem(
        403,
        "forbidden_role",
        None,
    );
    let mut after = app.counts().await;
    after.retain(|(t, _)| t != "tokens");
    let before: Vec<_> = counts_before.into_iter().filter(|(t, _)| t != "tokens").collect();
    assert_eq!(after, before);
    let r = app
        .request(Method::POST, "/api/v1/open311/clients", None, &[("content-type", "application/json")], b"{}".to_vec())
        .await;
    r.problem(401, "unauthorized", None);
}

backend_tests!(
    discovery,
    services_and_definitions,
    jurisdiction_and_paths,
    post_and_read_back,
    lists_of_zero_one_and_many,
    refused_posts_write_nothing,
    attributes_and_addresses,
    demo_point_in_xml_with_the_python_client_quirks,
    idempotency_key_makes_retries_safe,
    citizen_bearer_token_files_as_the_citizen,
    batch_service_tokens,
    end_states_are_honest,
    updates_are_delivered_exactly_once,
    clients_post_updates,
    administrators_issue_keys,
);
