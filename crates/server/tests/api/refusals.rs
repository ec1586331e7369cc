//! Refusals: wrong role, wrong scope, wrong state, bad input. Every refusal is an
//! `application/problem+json` with the right status, `code` and `field`, and leaves every table
//! (and every case) exactly as it was.

use crate::helpers::{garbage, garbage_at, spawn_app, tiny_png, Backend, TestApp, YUNLONG};
use axum::http::Method;
use serde_json::{json, Value};
use std::collections::HashMap;

/// Who sends a request.
#[derive(Debug, Clone, Copy)]
enum Who {
    User(&'static str),
    NoToken,
    Revoked,
    Bogus,
}

/// One row of the refusal table.
struct Row {
    name: String,
    who: Who,
    method: Method,
    uri: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
    field: Option<&'static str>,
}

impl Row {
    fn new(name: &str, who: Who, method: Method, uri: String) -> Row {
        Row {
            name: name.to_owned(),
            who,
            method,
            uri,
            headers: Vec::new(),
            body: Vec::new(),
            status: 0,
            code: "",
            field: None,
        }
    }

    fn json(mut self, body: &Value) -> Row {
        self.headers.push(("content-type", "application/json".into()));
        self.body = body.to_string().into_bytes();
        self
    }

    fn raw(mut self, content_type: Option<&str>, body: &str) -> Row {
        if let Some(ct) = content_type {
            self.headers.push(("content-type", ct.to_owned()));
        }
        self.body = body.as_bytes().to_vec();
        self
    }

    fn header(mut self, name: &'static str, value: &str) -> Row {
        self.headers.push((name, value.to_owned()));
        self
    }

    fn is(mut self, status: u16, code: &'static str, field: Option<&'static str>) -> Row {
        self.status = status;
        self.code = code;
        self.field = field;
        self
    }
}

fn act(name: &str, who: &'static str, id: i64, action: &str, body: Value) -> Row {
    let row = Row::new(name, Who::User(who), Method::POST, format!("/api/v1/cases/{id}/actions/{action}"));
    if body.is_null() {
        row
    } else {
        row.json(&body)
    }
}

fn report(name: &str, who: &'static str, body: Value) -> Row {
    Row::new(name, Who::User(who), Method::POST, "/api/v1/cases".into()).json(&body)
}

fn get(name: &str, who: Who, uri: &str) -> Row {
    Row::new(name, who, Method::GET, uri.to_owned())
}

/// The cases the table acts on.
struct Fixture {
    app: TestApp,
    tokens: HashMap<&'static str, String>,
    revoked: String,
    /// Citizen report, waiting for verification (reported by `citizen`).
    verifying: i64,
    /// Collector report, waiting for the acceptor.
    reported: i64,
    /// Accepted once already.
    accepted: i64,
    /// Filed in 泉山区 (320311).
    filed: i64,
    /// Filed in 云龙区 (320303), outside the commander's district.
    filed_yunlong: i64,
    /// Dispatched to sanitation (HW).
    at_hw: i64,
    /// Dispatched to municipal works (SZ), outside the handler's department.
    at_sz: i64,
    hw: i64,
    photo: String,
}

async fn fixture(backend: Backend) -> Fixture {
    let app = spawn_app(backend).await;
    let mut tokens = HashMap::new();
    for user in
        ["admin", "collector", "acceptor", "leader", "dispatcher", "commander", "evaluator", "citizen", "handler"]
    {
        tokens.insert(user, app.sign_in(user).await);
    }
    // A second citizen, created by the administrator.
    let created = app
        .post_json(
            &tokens["admin"],
            "/api/v1/users",
            &json!({"username": "citizen2", "password": "demo-2", "role": "citizen", "scope": {"kind": "own"}}),
        )
        .await
        .ok(201);
    assert_eq!(created["role"], "citizen");
    tokens.insert("citizen2", app.sign_in_with("citizen2", "demo-2").await);
    // A token that was signed out.
    let revoked = app.sign_in("collector").await;
    let r = app.request(Method::DELETE, "/api/v1/auth/token", Some(&revoked), &[], Vec::new()).await;
    assert_eq!(r.status.as_u16(), 204);

    let hw = app.department("HW").await;
    let sz = app.department("SZ").await;
    let t = |u: &str| tokens[u].clone();
    let verifying = app.report(&t("citizen"), &garbage()).await["id"].as_i64().unwrap();
    let reported = app.report(&t("collector"), &garbage()).await["id"].as_i64().unwrap();
    let accepted = app.report(&t("collector"), &garbage()).await["id"].as_i64().unwrap();
    app.step(&t("acceptor"), accepted, "accept", Value::Null).await;
    let mut filed_ids = Vec::new();
    for at in [crate::helpers::QUANSHAN, YUNLONG, crate::helpers::QUANSHAN, crate::helpers::QUANSHAN] {
        let id = app.report(&t("collector"), &garbage_at(at.0, at.1)).await["id"].as_i64().unwrap();
        app.step(&t("acceptor"), id, "accept", Value::Null).await;
        app.step(&t("leader"), id, "file", Value::Null).await;
        filed_ids.push(id);
    }
    let [filed, filed_yunlong, at_hw, at_sz] = filed_ids[..] else { unreachable!() };
    app.step(&t("dispatcher"), at_hw, "dispatch", json!({"department_id": hw})).await;
    app.step(&t("dispatcher"), at_sz, "dispatch", json!({"department_id": sz})).await;
    let photo = app.photo_id(&t("handler"), &tiny_png(1)).await;
    Fixture { app, tokens, revoked, verifying, reported, accepted, filed, filed_yunlong, at_hw, at_sz, hw, photo }
}

impl Fixture {
    async fn run(&self, rows: Vec<Row>) {
        let ids =
            [self.verifying, self.reported, self.accepted, self.filed, self.filed_yunlong, self.at_hw, self.at_sz];
        for row in rows {
            let token = match row.who {
                Who::User(u) => Some(self.tokens[u].clone()),
                Who::NoToken => None,
                Who::Revoked => Some(self.revoked.clone()),
                Who::Bogus => Some("not-a-token".to_owned()),
            };
            let before = self.app.counts().await;
            let mut cases = Vec::new();
            for id in ids {
                cases.push(self.app.store.get_case(id).await.unwrap());
            }
            let headers: Vec<(&str, &str)> = row.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let res =
                self.app.request(row.method.clone(), &row.uri, token.as_deref(), &headers, row.body.clone()).await;
            let what = format!("{} ({} {})", row.name, row.method, row.uri);
            res.problem_in(&what, row.status, row.code, row.field);
            assert_eq!(self.app.counts().await, before, "{what}: table row counts changed");
            for (id, case) in ids.iter().zip(cases) {
                assert_eq!(self.app.store.get_case(*id).await.unwrap(), case, "{what}: case {id} changed");
            }
        }
        self.app.assert_replays().await;
    }
}

async fn wrong_role(backend: Backend) {
    let f = fixture(backend).await;
    let hw = f.hw;
    let p = f.photo.clone();
    let rows = vec![
        act("citizen dispatches (own case)", "citizen", f.verifying, "dispatch", json!({"department_id": hw})),
        act("collector files", "collector", f.accepted, "file", json!({})),
        act("handler closes", "handler", f.at_hw, "close", Value::Null),
        report("evaluator reports", "evaluator", garbage()),
        report("handler reports", "handler", garbage()),
        report("admin reports", "admin", garbage()),
        act("admin accepts", "admin", f.reported, "accept", Value::Null),
        act("dispatcher disposes", "dispatcher", f.at_hw, "dispose", json!({"photo_ids": [p]})),
        act("leader checks", "leader", f.at_hw, "check", json!({"passed": true})),
        act("acceptor dispatches", "acceptor", f.filed, "dispatch", json!({"department_id": hw})),
        act("evaluator verifies", "evaluator", f.verifying, "verify", json!({"confirmed": true})),
        act("handler approves its own extension", "handler", f.at_hw, "approve_extension", Value::Null),
        act("collector urges", "collector", f.filed, "urge", Value::Null),
        Row::new("acceptor creates a user", Who::User("acceptor"), Method::POST, "/api/v1/users".into()).json(
            &json!({"username": "x1", "password": "secret", "role": "admin", "scope": {"kind": "region", "code": "320300"}}),
        ),
        get("handler lists users", Who::User("handler"), "/api/v1/users"),
    ]
    .into_iter()
    .map(|r| r.is(403, "forbidden_role", None))
    .collect();
    f.run(rows).await;
}

async fn wrong_scope(backend: Backend) {
    let f = fixture(backend).await;
    let hw = f.hw;
    let p = f.photo.clone();
    let (v, yl, sz) = (f.verifying, f.filed_yunlong, f.at_sz);
    let rows =
        vec![
            act("commander (320311) dispatches in 320303", "commander", yl, "dispatch", json!({"department_id": hw}))
                .is(403, "out_of_scope", None),
            act("commander (320311) urges in 320303", "commander", yl, "urge", Value::Null).is(
                403,
                "out_of_scope",
                None,
            ),
            act("handler (HW) disposes a case at SZ", "handler", sz, "dispose", json!({"photo_ids": [p]})).is(
                403,
                "out_of_scope",
                None,
            ),
            act("handler (HW) returns a case at SZ", "handler", sz, "return", json!({"note": "不归我们管"})).is(
                403,
                "out_of_scope",
                None,
            ),
            act("handler (HW) acts on an undispatched case", "handler", f.filed, "dispose", json!({"photo_ids": [p]}))
                .is(403, "out_of_scope", None),
            get("citizen2 reads citizen's case", Who::User("citizen2"), &format!("/api/v1/cases/{v}")).is(
                404,
                "not_found",
                None,
            ),
            act("citizen2 acts on citizen's case", "citizen2", v, "verify", json!({"confirmed": true})).is(
                404,
                "not_found",
                None,
            ),
            get("citizen reads a collector's case", Who::User("citizen"), &format!("/api/v1/cases/{}", f.reported)).is(
                404,
                "not_found",
                None,
            ),
            get("handler (HW) reads a case at SZ", Who::User("handler"), &format!("/api/v1/cases/{sz}")).is(
                404,
                "not_found",
                None,
            ),
            get("commander (320311) reads a 320303 case", Who::User("commander"), &format!("/api/v1/cases/{yl}")).is(
                404,
                "not_found",
                None,
            ),
            get("citizen2 downloads the handler's photo", Who::User("citizen2"), &format!("/api/v1/photos/{p}")).is(
                404,
                "not_found",
                None,
            ),
        ];
    f.run(rows).await;
}

async fn wrong_state(backend: Backend) {
    let f = fixture(backend).await;
    let hw = f.hw;
    let rows = vec![
        act("close a filed case", "leader", f.filed, "close", Value::Null).is(409, "wrong_state", None),
        act("dispatch a reported case", "dispatcher", f.reported, "dispatch", json!({"department_id": hw})).is(
            409,
            "wrong_state",
            None,
        ),
        act("accept twice", "acceptor", f.accepted, "accept", Value::Null).is(409, "wrong_state", None),
        act("verify a reported case", "collector", f.reported, "verify", json!({"confirmed": true})).is(
            409,
            "wrong_state",
            None,
        ),
        act("file a verifying case", "leader", f.verifying, "file", Value::Null).is(409, "wrong_state", None),
        act("dispatch a dispatched case", "dispatcher", f.at_hw, "dispatch", json!({"department_id": hw})).is(
            409,
            "wrong_state",
            None,
        ),
        act("check a dispatched case", "collector", f.at_hw, "check", json!({"passed": true})).is(
            409,
            "wrong_state",
            None,
        ),
        act("resume a case that is not suspended", "dispatcher", f.at_hw, "resume", Value::Null).is(
            409,
            "wrong_state",
            None,
        ),
        act("void a dispatched case", "leader", f.at_hw, "void", json!({"note": "重复"})).is(409, "wrong_state", None),
        act("approve an extension nobody asked for", "dispatcher", f.at_hw, "approve_extension", Value::Null)
            .is(409, "conflict", None),
    ];
    f.run(rows).await;
}

async fn bad_input(backend: Backend) {
    let f = fixture(backend).await;
    let (hw, rep, at_hw) = (f.hw, f.reported, f.at_hw);
    let p = f.photo.clone();
    let with = |k: &str, v: Value| {
        let mut b = garbage();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = garbage();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    let fake_ids: Vec<String> = (0..10).map(|i| format!("{i:064x}")).collect();
    let inactive = deactivate_class(&f, "06011").await;
    let rows = vec![
        // The report body.
        report("missing description", "collector", without("description")).is(
            422,
            "invalid_field",
            Some("description"),
        ),
        report("missing location", "collector", without("location")).is(422, "invalid_field", Some("location")),
        report("missing kind", "collector", without("kind")).is(422, "invalid_field", Some("kind")),
        report("lon is a string", "collector", with("location", json!({"lon": "117.18", "lat": 34.26}))).is(
            422,
            "invalid_field",
            Some("location.lon"),
        ),
        report("unknown field", "collector", with("colour", json!("red"))).is(422, "invalid_field", Some("colour")),
        report("class_code 123", "collector", with("class_code", json!("123"))).is(
            422,
            "invalid_field",
            Some("class_code"),
        ),
        report("unknown class", "collector", with("class_code", json!("06999"))).is(
            422,
            "invalid_field",
            Some("class_code"),
        ),
        report("inactive class", "collector", with("class_code", json!(inactive)))
            .header("idempotency-key", "inactive-1")
            .is(422, "invalid_field", Some("class_code")),
        report("point outside the city", "collector", garbage_at(116.5, 34.26)).is(
            422,
            "invalid_field",
            Some("location"),
        ),
        report("point outside the world", "collector", garbage_at(200.0, 34.26)).is(
            422,
            "invalid_field",
            Some("location"),
        ),
        report("empty description", "collector", with("description", json!("   "))).is(
            422,
            "invalid_field",
            Some("description"),
        ),
        report("description too long", "collector", with("description", json!("垃".repeat(2001)))).is(
            422,
            "invalid_field",
            Some("description"),
        ),
        report("address too long", "collector", with("address", json!("路".repeat(257)))).is(
            422,
            "invalid_field",
            Some("address"),
        ),
        report("ten photo ids", "collector", with("photo_ids", json!(fake_ids))).is(
            422,
            "invalid_field",
            Some("photo_ids"),
        ),
        report("unknown photo id", "collector", with("photo_ids", json!([format!("{:064x}", 7)]))).is(
            422,
            "invalid_field",
            Some("photo_ids"),
        ),
        report("malformed photo id", "collector", with("photo_ids", json!(["IMG_0001.JPG"]))).is(
            422,
            "invalid_field",
            Some("photo_ids"),
        ),
        report("citizen reports as hotline", "citizen", with("source", json!("hotline"))).is(
            422,
            "invalid_field",
            Some("source"),
        ),
        report("empty Idempotency-Key", "collector", garbage()).header("idempotency-key", " ").is(
            400,
            "invalid_header",
            Some("Idempotency-Key"),
        ),
        Row::new("bad JSON", Who::User("collector"), Method::POST, "/api/v1/cases".into())
            .raw(Some("application/json"), r#"{"kind": "event", "#)
            .is(400, "malformed_json", Some("body")),
        Row::new("text/plain body", Who::User("collector"), Method::POST, "/api/v1/cases".into())
            .raw(Some("text/plain"), &garbage().to_string())
            .is(415, "unsupported_media_type", None),
        Row::new("no content type", Who::User("collector"), Method::POST, "/api/v1/cases".into())
            .raw(None, &garbage().to_string())
            .is(415, "unsupported_media_type", None),
        // Actions.
        act("unknown action", "acceptor", rep, "teleport", Value::Null).is(404, "not_found", None),
        act("report is not an action", "acceptor", rep, "report", Value::Null).is(404, "not_found", None),
        act("unknown case", "acceptor", 987_654, "accept", Value::Null).is(404, "not_found", None),
        Row::new(
            "case id not a number",
            Who::User("acceptor"),
            Method::POST,
            "/api/v1/cases/abc/actions/accept".into(),
        )
        .is(400, "invalid_path", Some("path")),
        act("dispatch without department", "dispatcher", f.filed, "dispatch", json!({})).is(
            422,
            "invalid_field",
            Some("department_id"),
        ),
        act("dispatch to no department", "dispatcher", f.filed, "dispatch", json!({"department_id": 99_999})).is(
            422,
            "invalid_field",
            Some("department_id"),
        ),
        act("check without passed", "collector", at_hw, "check", json!({"note": "x"})).is(
            422,
            "invalid_field",
            Some("passed"),
        ),
        act("verify without confirmed", "collector", f.verifying, "verify", Value::Null).is(
            422,
            "invalid_field",
            Some("confirmed"),
        ),
        act("dispose without photo", "handler", at_hw, "dispose", json!({"note": "done"})).is(
            422,
            "invalid_field",
            Some("photo_ids"),
        ),
        act("dispose with unknown photo", "handler", at_hw, "dispose", json!({"photo_ids": [format!("{:064x}", 9)]}))
            .is(422, "invalid_field", Some("photo_ids")),
        act("dispose with ten photos", "handler", at_hw, "dispose", json!({"photo_ids": vec![p.clone(); 10]})).is(
            422,
            "invalid_field",
            Some("photo_ids"),
        ),
        act("return without reason", "handler", at_hw, "return", json!({"note": "  "})).is(
            422,
            "invalid_field",
            Some("note"),
        ),
        act("reject without reason", "acceptor", rep, "reject", Value::Null).is(422, "invalid_field", Some("note")),
        act(
            "extension of 0",
            "handler",
            at_hw,
            "request_extension",
            json!({"note": "x", "limit": {"amount": 0, "unit": "working_days"}}),
        )
        .is(422, "invalid_field", Some("limit")),
        act("extension without limit", "handler", at_hw, "request_extension", json!({"note": "x"})).is(
            422,
            "invalid_field",
            Some("limit"),
        ),
        act(
            "unknown field in an action",
            "dispatcher",
            f.filed,
            "dispatch",
            json!({"department_id": hw, "priority": 1}),
        )
        .is(422, "invalid_field", Some("priority")),
        act("void as a duplicate of itself", "acceptor", rep, "void", json!({"note": "重复", "duplicate_of": rep})).is(
            422,
            "invalid_field",
            Some("duplicate_of"),
        ),
        act(
            "void as a duplicate of no case",
            "acceptor",
            rep,
            "void",
            json!({"note": "重复", "duplicate_of": 987_654}),
        )
        .is(422, "invalid_field", Some("duplicate_of")),
        act("note too long", "handler", at_hw, "return", json!({"note": "长".repeat(2001)})).is(
            422,
            "invalid_field",
            Some("note"),
        ),
        Row::new(
            "bad JSON in an action",
            Who::User("acceptor"),
            Method::POST,
            format!("/api/v1/cases/{rep}/actions/accept"),
        )
        .raw(Some("application/json"), "{")
        .is(400, "malformed_json", Some("body")),
        // Users.
        Row::new("collector with the own scope", Who::User("admin"), Method::POST, "/api/v1/users".into())
            .json(&json!({"username": "c2", "password": "secret", "role": "collector", "scope": {"kind": "own"}}))
            .is(422, "invalid_field", Some("scope")),
        Row::new("username taken", Who::User("admin"), Method::POST, "/api/v1/users".into())
            .json(&json!({"username": "citizen2", "password": "secret", "role": "citizen", "scope": {"kind": "own"}}))
            .is(409, "conflict", None),
        // Authentication.
        get("no token", Who::NoToken, "/api/v1/cases").is(401, "unauthorized", None),
        report("no token, report", "collector", garbage()).is(0, "", None),
        get("revoked token", Who::Revoked, "/api/v1/auth/me").is(401, "unauthorized", None),
        get("revoked token, list", Who::Revoked, "/api/v1/cases").is(401, "unauthorized", None),
        get("unknown token", Who::Bogus, "/api/v1/cases").is(401, "unauthorized", None),
        Row::new("unknown route", Who::User("admin"), Method::GET, "/api/v1/nothing-here".into()).is(
            404,
            "not_found",
            None,
        ),
    ]
    .into_iter()
    // A row with status 0 is a placeholder for "the same, without a token".
    .map(|r| if r.status == 0 { Row { who: Who::NoToken, ..r }.is(401, "unauthorized", None) } else { r })
    .collect();
    f.run(rows).await;
}

/// Make a class inactive (administrator) and return its code.
async fn deactivate_class(f: &Fixture, code: &str) -> String {
    let admin = &f.tokens["admin"];
    let class = f.app.get(admin, &format!("/api/v1/catalogue/event/{code}")).await.ok(200);
    let edit = json!({
        "name_zh": class["name_zh"], "name_en": class["name_en"],
        "filing_condition": class["filing_condition"], "closing_condition": class["closing_condition"],
        "department_code": class["department_code"], "limits": class["limits"],
        "citizen": class["citizen"], "active": false,
    });
    let r = f
        .app
        .request(
            Method::PUT,
            &format!("/api/v1/catalogue/event/{code}"),
            Some(admin),
            &[("content-type", "application/json")],
            edit.to_string().into_bytes(),
        )
        .await;
    assert_eq!(r.ok(200)["active"], false);
    code.to_owned()
}

/// serde names the field as a path prefix (`urgency: unknown variant `super`…`); the server must
/// report that path, not the first back-ticked word of the message (the rejected value).
async fn field_of_a_bad_enum_value(backend: Backend) {
    let f = fixture(backend).await;
    let mut body = garbage();
    body["urgency"] = json!("super");
    let mut kind = garbage();
    kind["kind"] = json!("animal");
    let mut number = garbage();
    number["description"] = json!(42);
    f.run(vec![
        report("unknown urgency", "collector", body).is(422, "invalid_field", Some("urgency")),
        report("unknown kind", "collector", kind).is(422, "invalid_field", Some("kind")),
        report("description is a number", "collector", number).is(422, "invalid_field", Some("description")),
    ])
    .await;
}

/// A wrongly typed field of an action body must be named, like in the report body.
async fn field_of_a_wrong_type_in_an_action(backend: Backend) {
    let f = fixture(backend).await;
    let at_hw = f.at_hw;
    f.run(vec![
        act("passed is a string", "collector", at_hw, "check", json!({"passed": "yes"})).is(
            422,
            "invalid_field",
            Some("passed"),
        ),
        act("department_id is a string", "dispatcher", f.filed, "dispatch", json!({"department_id": "HW"})).is(
            422,
            "invalid_field",
            Some("department_id"),
        ),
    ])
    .await;
}

backend_tests!(
    wrong_role,
    wrong_scope,
    wrong_state,
    bad_input,
    field_of_a_bad_enum_value,
    field_of_a_wrong_type_in_an_action,
);
