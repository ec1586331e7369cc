//! The Open311 channel's own rows: API clients (only the SHA-256 of a key is kept), what each
//! request carried beyond its case (contact data that is never shown publicly, attribute
//! answers, the media URL, the batch token), the updates clients post about a request, and the
//! public reads of citizen-category cases the GeoReport and FixMyStreet endpoints answer from.

use crate::{both, from_ms, json, ms, parse_json, unique_violation, user_from_parts, Inner, Result, Store, StoreError};
use citygrid_core::case::{Case, Event};
use citygrid_core::org::{Role, Scope};
use jiff::Timestamp;
use sqlx::Row;

/// An Open311 API client and the citizen-role user its anonymous reports are filed as.
#[derive(Debug, Clone)]
pub struct Open311Client {
    pub id: i64,
    pub name: String,
    pub active: bool,
    pub user: crate::User,
}

/// What an Open311 request carried beyond its case.
#[derive(Debug, Clone)]
pub struct Open311Request {
    pub case_id: i64,
    pub client_id: Option<i64>,
    pub token: String,
    pub service_code: String,
    /// JSON written by the server: contact data, attributes, media URL, the full description.
    pub data: String,
    pub created_at: Timestamp,
}

/// An update a client posted about a request (FixMyStreet `POST servicerequestupdates`).
#[derive(Debug, Clone)]
pub struct Open311Update {
    pub id: i64,
    pub case_id: i64,
    pub client_id: Option<i64>,
    pub data: String,
    pub created_at: Timestamp,
}

const CLIENT_COLUMNS: &str = "c.id, c.name, c.active, u.id, u.username, u.display_name, u.role, u.scope, u.active";

type ClientRow = (i64, String, i64, i64, String, String, String, String, i64);

fn client_from_row(r: ClientRow) -> Result<Open311Client> {
    let (id, name, active, uid, username, display, role, scope, uactive) = r;
    Ok(Open311Client {
        id,
        name,
        active: active != 0,
        user: user_from_parts(uid, username, display, role, scope, uactive)?,
    })
}

type RequestRow = (i64, Option<i64>, String, String, String, i64);

fn request_from_row(r: RequestRow) -> Result<Open311Request> {
    let (case_id, client_id, token, service_code, data, created_at) = r;
    Ok(Open311Request { case_id, client_id, token, service_code, data, created_at: from_ms(created_at)? })
}

const REQUEST_COLUMNS: &str = "case_id, client_id, token, service_code, data, created_at";

impl Store {
    /// Create an API client with its own citizen-role user (scope: its own reports) that can
    /// never sign in (the password hash is not a hash), in one transaction.
    pub async fn create_open311_client(
        &self,
        name: &str,
        key_hash: &str,
        username: &str,
        now: Timestamp,
    ) -> Result<Open311Client> {
        let user_sql = crate::INSERT_USER;
        let client_sql = "INSERT INTO open311_clients (name, key_hash, user_id, active, created_at) \
                          VALUES ($1, $2, $3, 1, $4) RETURNING id";
        let scope = json(&Scope::Own)?;
        let display = format!("Open311: {name}");
        let res: std::result::Result<(i64, i64), sqlx::Error> = both!(self, |w, _r, _f| {
            async {
                let mut tx = w.begin().await?;
                let uid: i64 = sqlx::query_scalar(user_sql)
                    .bind(username)
                    .bind(&display)
                    // No password can match: the account files reports, it never signs in.
                    .bind("!")
                    .bind(Role::Citizen.as_str())
                    .bind(&scope)
                    .bind(ms(now))
                    .fetch_one(&mut *tx)
                    .await?;
                let cid: i64 = sqlx::query_scalar(client_sql)
                    .bind(name)
                    .bind(key_hash)
                    .bind(uid)
                    .bind(ms(now))
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>((cid, uid))
            }
            .await
        });
        match res {
            Ok((id, uid)) => Ok(Open311Client {
                id,
                name: name.to_owned(),
                active: true,
                user: crate::User {
                    id: uid,
                    username: username.to_owned(),
                    display_name: display,
                    role: Role::Citizen,
                    scope: Scope::Own,
                    active: true,
                },
            }),
            Err(e) if unique_violation(&e) => {
                Err(StoreError::Conflict(format!("an Open311 client {name:?} (or its user {username:?}) exists")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The active client holding this key (by its SHA-256), with its active user.
    pub async fn open311_client_by_key(&self, key_hash: &str) -> Result<Option<Open311Client>> {
        let sql = format!(
            "SELECT {CLIENT_COLUMNS} FROM open311_clients c JOIN users u ON u.id = c.user_id \
             WHERE c.key_hash = $1 AND c.active = 1 AND u.active = 1"
        );
        let row: Option<ClientRow> =
            both!(self, |_w, r, _f| { sqlx::query_as(&sql).bind(key_hash).fetch_optional(r).await? });
        row.map(client_from_row).transpose()
    }

    pub async fn open311_client_by_name(&self, name: &str) -> Result<Option<Open311Client>> {
        let sql = format!(
            "SELECT {CLIENT_COLUMNS} FROM open311_clients c JOIN users u ON u.id = c.user_id WHERE c.name = $1"
        );
        let row: Option<ClientRow> =
            both!(self, |_w, r, _f| { sqlx::query_as(&sql).bind(name).fetch_optional(r).await? });
        row.map(client_from_row).transpose()
    }

    /// Record what an Open311 request carried. A retry of a request whose case exists keeps the
    /// first row (the case id is the key) and gets it back.
    pub async fn put_open311_request(
        &self,
        case_id: i64,
        client_id: Option<i64>,
        token: &str,
        service_code: &str,
        data: &str,
        now: Timestamp,
    ) -> Result<Open311Request> {
        let insert = "INSERT INTO open311_requests (case_id, client_id, token, service_code, data, created_at) \
                      VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (case_id) DO NOTHING";
        both!(self, |w, _r, _f| {
            sqlx::query(insert)
                .bind(case_id)
                .bind(client_id)
                .bind(token)
                .bind(service_code)
                .bind(data)
                .bind(ms(now))
                .execute(w)
                .await?;
        });
        self.open311_request(case_id).await?.ok_or(StoreError::NotFound)
    }

    pub async fn open311_request(&self, case_id: i64) -> Result<Option<Open311Request>> {
        let sql = format!("SELECT {REQUEST_COLUMNS} FROM open311_requests WHERE case_id = $1");
        let row: Option<RequestRow> =
            both!(self, |_w, r, _f| { sqlx::query_as(&sql).bind(case_id).fetch_optional(r).await? });
        row.map(request_from_row).transpose()
    }

    pub async fn open311_request_by_token(&self, token: &str) -> Result<Option<Open311Request>> {
        let sql = format!("SELECT {REQUEST_COLUMNS} FROM open311_requests WHERE token = $1");
        let row: Option<RequestRow> =
            both!(self, |_w, r, _f| { sqlx::query_as(&sql).bind(token).fetch_optional(r).await? });
        row.map(request_from_row).transpose()
    }

    /// The public 311 feed: event cases of a citizen category (a class in the services table),
    /// whatever their source, newest first, each with its Open311 row's data if it came that
    /// way. `ids` non-empty overrides every other filter (the spec's rule for
    /// `service_request_id`); `created` is inclusive at both ends; `page` is (limit, offset).
    pub async fn open311_cases(
        &self,
        ids: &[i64],
        service_codes: &[String],
        created: (Option<Timestamp>, Option<Timestamp>),
        states: &[&str],
        page: (u32, u32),
    ) -> Result<Vec<(Case, Option<String>)>> {
        let (limit, offset) = (i64::from(page.0.clamp(1, 10_000)), i64::from(page.1));
        both!(self, |_w, r, _f| {
            let mut q = sqlx::QueryBuilder::new(
                "SELECT c.data AS case_data, o.data AS o_data FROM cases c \
                 LEFT JOIN open311_requests o ON o.case_id = c.id \
                 WHERE c.kind = 'event' AND c.class_code IN (SELECT code FROM citizen_services)",
            );
            if !ids.is_empty() {
                q.push(" AND c.id IN (");
                let mut sep = q.separated(", ");
                for id in ids {
                    sep.push_bind(*id);
                }
                q.push(")");
            } else {
                if !service_codes.is_empty() {
                    q.push(" AND c.class_code IN (");
                    let mut sep = q.separated(", ");
                    for c in service_codes {
                        sep.push_bind(c.clone());
                    }
                    q.push(")");
                }
                if let Some(from) = created.0 {
                    q.push(" AND c.created_at >= ").push_bind(ms(from));
                }
                if let Some(to) = created.1 {
                    q.push(" AND c.created_at <= ").push_bind(ms(to));
                }
                if !states.is_empty() {
                    q.push(" AND c.state IN (");
                    let mut sep = q.separated(", ");
                    for s in states {
                        sep.push_bind((*s).to_owned());
                    }
                    q.push(")");
                }
            }
            q.push(" ORDER BY c.created_at DESC, c.id DESC LIMIT ").push_bind(limit);
            q.push(" OFFSET ").push_bind(offset);
            let rows = q.build().fetch_all(r).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let data: String = row.try_get("case_data")?;
                let extra: Option<String> = row.try_get("o_data")?;
                out.push((parse_json::<Case>(&data)?, extra));
            }
            Ok(out)
        })
    }

    /// The whole logs of the citizen-category event cases changed at or after `since` (the
    /// `cases_updated` index finds them), by case id then sequence: the updates feed replays
    /// them to see which events changed what the public sees.
    pub async fn open311_case_logs(&self, since: Timestamp) -> Result<Vec<(i64, Vec<Event>)>> {
        let sql = "SELECT e.case_id, e.data FROM case_events e WHERE e.case_id IN \
                   (SELECT c.id FROM cases c WHERE c.updated_at >= $1 AND c.kind = 'event' \
                    AND c.class_code IN (SELECT code FROM citizen_services)) \
                   ORDER BY e.case_id, e.seq";
        let rows: Vec<(i64, String)> =
            both!(self, |_w, r, _f| { sqlx::query_as(sql).bind(ms(since)).fetch_all(r).await? });
        let mut out: Vec<(i64, Vec<Event>)> = Vec::new();
        for (id, data) in rows {
            let event: Event = parse_json(&data)?;
            match out.last_mut() {
                Some((last, events)) if *last == id => events.push(event),
                _ => out.push((id, vec![event])),
            }
        }
        Ok(out)
    }

    /// The events that ended these cases without a fix (reject, refuse, void), oldest first:
    /// their reason and note become the public status notes.
    pub async fn open311_end_events(&self, ids: &[i64]) -> Result<Vec<(i64, Event)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        both!(self, |_w, r, _f| {
            let mut q = sqlx::QueryBuilder::new(
                "SELECT case_id, data FROM case_events WHERE action IN ('reject', 'refuse', 'void') AND case_id IN (",
            );
            let mut sep = q.separated(", ");
            for id in ids {
                sep.push_bind(*id);
            }
            q.push(") ORDER BY case_id, seq");
            let rows = q.build().fetch_all(r).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let id: i64 = row.try_get("case_id")?;
                let data: String = row.try_get("data")?;
                out.push((id, parse_json::<Event>(&data)?));
            }
            Ok(out)
        })
    }

    /// Store an update a client posted about a case. With the client's own id for it
    /// (`client_ref`), a retry returns the update stored the first time: `(update, replayed)`.
    pub async fn add_open311_update(
        &self,
        case_id: i64,
        client_id: Option<i64>,
        client_ref: Option<&str>,
        data: &str,
        now: Timestamp,
    ) -> Result<(Open311Update, bool)> {
        let find = "SELECT id, case_id, client_id, data, created_at FROM open311_updates \
                    WHERE case_id = $1 AND client_id = $2 ORDER BY id";
        let insert = "INSERT INTO open311_updates (case_id, client_id, data, created_at) VALUES ($1, $2, $3, $4) \
                      RETURNING id";
        both!(self, |w, _r, _f| {
            let mut tx = w.begin().await?;
            if let (Some(cid), Some(reference)) = (client_id, client_ref) {
                // Earlier updates of this client on this case; few, so matched here, not in SQL.
                let rows: Vec<(i64, i64, Option<i64>, String, i64)> =
                    sqlx::query_as(find).bind(case_id).bind(cid).fetch_all(&mut *tx).await?;
                for (id, case_id, client_id, d, at) in rows {
                    let stored: serde_json::Value = parse_json(&d)?;
                    if stored.get("client_update_id").and_then(|v| v.as_str()) == Some(reference) {
                        let u = Open311Update { id, case_id, client_id, data: d, created_at: from_ms(at)? };
                        return Ok((u, true));
                    }
                }
            }
            let id: i64 = sqlx::query_scalar(insert)
                .bind(case_id)
                .bind(client_id)
                .bind(data)
                .bind(ms(now))
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok((Open311Update { id, case_id, client_id, data: data.to_owned(), created_at: now }, false))
        })
    }
}
