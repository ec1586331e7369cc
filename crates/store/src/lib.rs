//! citygrid-store: persistence behind one interface, [`Store`], with two backends: SQLite (the
//! embedded default, WAL, one writer connection and a reader pool) and PostgreSQL.
//!
//! Each backend has its own migrations (`migrations/sqlite`, `migrations/postgres`) and its own
//! connection setup (`sqlite.rs`, `postgres.rs`). The queries themselves are the same SQL text on
//! both engines, so each method is written once: [`both!`] expands the body once per engine with
//! the concrete sqlx types, which keeps static dispatch and the full type checking of each
//! engine without a `dyn` or `sqlx::Any` layer.
//!
//! Every state change of a case happens in [`Store::create_case`] or [`Store::act`]: one
//! transaction that appends the event and rewrites the projection row, so the two never
//! disagree, and a refused action (the domain's `decide` returns a refusal) rolls back to nothing.

pub mod assessment;
mod batch;
mod citizen;
mod evaluation;
mod map;
mod money;
mod open311;
mod postgres;
mod services;
mod sqlite;

pub use evaluation::{period_ranges, CasesBehind, CountsRead, CountsVersion, PeriodCounts, Recount};
pub use map::{CaseMarker, ComponentFilter, ImportSummary, MapPage, OPEN_STATES};
pub use money::{EntryDetail, LedgerCtx, LedgerFilter, LedgerRow, Reconciled, Settlement};

use citygrid_core::case::{Case, Event, Refusal};
use citygrid_core::catalogue::ClassInfo;
use citygrid_core::codes::{Kind, RegionCode, RegionLevel};
use citygrid_core::org::{Department, Region, Role, Scope};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sqlx::Row;

pub use sqlx;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// The domain refused the action; nothing was written.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// A uniqueness or reference rule of the data (e.g. a username already taken).
    #[error("{0}")]
    Conflict(String),
    /// The same `Idempotency-Key` came with a different request body.
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyMismatch,
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The group commit this write was part of failed; nothing of it was written.
    #[error("commit failed: {0}")]
    Commit(String),
    #[error("unsupported database url {0:?}: use sqlite:PATH or postgres://...")]
    Url(String),
    /// The input was refused as a whole (an import row that does not fit); nothing was written.
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

pub(crate) fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

fn from_ms(v: i64) -> Result<Timestamp> {
    Timestamp::from_millisecond(v).map_err(corrupt)
}

/// A stored user (without the password hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub scope: Scope,
    pub active: bool,
}

/// A user to create; the password is already hashed by the caller.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub password_hash: String,
    pub role: Role,
    pub scope: Scope,
}

/// A stored photo.
#[derive(Debug, Clone)]
pub struct Photo {
    pub id: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
    pub uploaded_by: i64,
    pub created_at: Timestamp,
}

/// A department to create.
#[derive(Debug, Clone)]
pub struct NewDepartment {
    pub code: String,
    pub name: String,
    pub parent_id: Option<i64>,
}

/// `Idempotency-Key` of a create request: (user, key) → the case it created.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub user_id: i64,
    pub key: String,
    /// Hash of the request body: a retry must send the same body.
    pub request_hash: String,
}

/// Result of a create: the case, and whether it was created earlier by the same key.
#[derive(Debug, Clone)]
pub struct Created {
    pub case: Case,
    pub replayed: bool,
}

/// Filters of the case list. All are optional and combine with AND.
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    pub states: Vec<String>,
    pub kind: Option<Kind>,
    pub class_code: Option<String>,
    pub district: Option<RegionCode>,
    pub street: Option<RegionCode>,
    pub community: Option<RegionCode>,
    pub grid: Option<RegionCode>,
    pub department_id: Option<i64>,
    pub source: Option<String>,
    /// Open cases past their current deadline at `now` (true), or not (false).
    pub overdue: Option<bool>,
    pub now: Option<Timestamp>,
    pub created_from: Option<Timestamp>,
    pub created_to: Option<Timestamp>,
    pub urged: Option<bool>,
    /// Only cases whose position lies in (min_lon, min_lat, max_lon, max_lat), edges included.
    pub bbox: Option<(f64, f64, f64, f64)>,
}

/// What the reader may see: the store turns a data scope into SQL.
#[derive(Debug, Clone)]
pub enum Visibility {
    All,
    Region(RegionCode),
    Departments(Vec<i64>),
    Reporter(i64),
}

/// One page of a list, newest first; `next` is the cursor of the following page.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<i64>,
}

enum Inner {
    Sqlite(sqlite::Pools),
    Postgres(postgres::Pools),
}

/// The store: a handle on one database, cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: std::sync::Arc<Inner>,
    /// The city's offset from UTC in minutes, which decides the local day an event is counted
    /// on by the evaluation (set from the working calendar; China's +8 h by default).
    offset: std::sync::Arc<std::sync::atomic::AtomicI32>,
    /// The evaluation counts of recently read periods (see `Store::evaluation_counts`).
    kept: std::sync::Arc<evaluation::KeptCounts>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.backend())
    }
}

/// Run `$body` once per engine, with `$w` the write pool, `$r` the read pool, and `$for_update`
/// the row-lock clause (PostgreSQL only; SQLite has one writer and needs none).
macro_rules! both {
    ($self:ident, |$w:ident, $r:ident, $for_update:ident| $body:block) => {
        match &*$self.inner {
            Inner::Sqlite(p) => {
                let $w = &p.write;
                let $r = &p.read;
                let $for_update = "";
                $body
            }
            Inner::Postgres(p) => {
                let $w = &p.pool;
                let $r = &p.pool;
                let $for_update = " FOR UPDATE";
                $body
            }
        }
    };
}

pub(crate) use both;

/// Run `$body` in a transaction `$tx` on the write pool `$w` that first bumps the one-row lock
/// `$lock` (an `UPDATE … SET n = n + 1`), so writers of that area (the ledger, the assessment)
/// are serialised on both engines. A database error closes the connection rather than reuse it.
macro_rules! locked_tx {
    ($w:ident, $lock:expr, |$tx:ident| $body:block) => {{
        let mut conn = $w.acquire().await?;
        let result = async {
            let mut $tx = sqlx::Connection::begin(&mut *conn).await?;
            sqlx::query($lock).execute(&mut *$tx).await?;
            let out = $body;
            $tx.commit().await?;
            Ok::<_, StoreError>(out)
        }
        .await;
        if matches!(result, Err(StoreError::Db(_))) {
            conn.close_on_drop();
        }
        result
    }};
}
pub(crate) use locked_tx;

const CASE_TABLES: [&str; 30] = [
    "settings",
    "regions",
    "departments",
    "classes",
    "users",
    "tokens",
    "photos",
    "case_numbers",
    "cases",
    "case_events",
    "idempotency",
    "bench_raw",
    "areas",
    "kiosks",
    "roads",
    "addresses",
    "components",
    "citizen_accounts",
    "otp_codes",
    "reward_exclusions",
    "citizen_services",
    "open311_clients",
    "open311_requests",
    "open311_updates",
    "ledger_entries",
    "ledger_approvals",
    "settlements",
    "settlement_lines",
    "settlement_files",
    "eval_counts",
];

/// A new active user: username, display name, password hash, role, scope (JSON), created at.
/// One text for every path that makes users (staff, citizens, Open311 clients' accounts).
pub(crate) const INSERT_USER: &str = "INSERT INTO users (username, display_name, password_hash, role, scope, active, \
                                      created_at) VALUES ($1, $2, $3, $4, $5, 1, $6) RETURNING id";

fn unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

fn fk_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_foreign_key_violation())
}

/// Rewrite a case row from its projection: the columns that follow the case ($1–$11), for the
/// row `WHERE id = $12` (an action adds its optimistic `AND version = $13`).
macro_rules! update_case_sql {
    () => {
        "UPDATE cases SET state = $1, department_id = $2, deadline = $3, case_deadline = $4, urged = $5, \
         updated_at = $6, version = $7, urgency = $8, data = $9, duplicate_of = $10, due_at = $11 WHERE id = $12"
    };
}
pub(crate) use update_case_sql;

/// Bind a case's projected columns to [`update_case_sql!`]'s $1–$11.
macro_rules! bind_case_row {
    ($q:expr, $case:expr) => {{
        let c: &citygrid_core::case::Case = $case;
        $q.bind(c.state.as_str())
            .bind(c.department_id)
            .bind(c.deadline.map($crate::ms))
            .bind(c.case_deadline.map($crate::ms))
            .bind(c.urged as i64)
            .bind($crate::ms(c.updated_at))
            .bind(c.version as i64)
            .bind(c.urgency.as_str())
            .bind($crate::json(c)?)
            .bind(c.duplicate_of)
            .bind(c.due_at.map($crate::ms))
    }};
}
pub(crate) use bind_case_row;

fn json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(corrupt)
}

fn parse_json<T: for<'de> Deserialize<'de>>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(corrupt)
}

fn region_from_row(code: String, name: String, level: String, parent: Option<String>, area: String) -> Result<Region> {
    Ok(Region {
        code: RegionCode::parse(&code).map_err(corrupt)?,
        name,
        level: RegionLevel::parse(&level).ok_or_else(|| corrupt(&level))?,
        parent: parent.map(|p| RegionCode::parse(&p)).transpose().map_err(corrupt)?,
        area_class: citygrid_core::codes::AreaClass::parse(&area).ok_or_else(|| corrupt(&area))?,
    })
}

fn user_from_parts(
    id: i64,
    username: String,
    display: String,
    role: String,
    scope: String,
    active: i64,
) -> Result<User> {
    Ok(User {
        id,
        username,
        display_name: display,
        role: Role::parse(&role).ok_or_else(|| corrupt(&role))?,
        scope: parse_json(&scope)?,
        active: active != 0,
    })
}

/// One case to create: the report event (its number still empty) and what it needs.
pub(crate) struct CreateJob {
    pub day: String,
    pub idem: Option<Idempotency>,
    pub now: Timestamp,
    /// The city's offset from UTC, minutes (the evaluation's local day).
    pub offset: i32,
    /// The report event, or why the domain refused it (kept so that a retry with a key that
    /// succeeded before still gets its case back).
    pub event: std::result::Result<Event, Refusal>,
}

/// Append `$event` of case `$id` to the log on the connection or transaction `$c`.
macro_rules! append_event {
    ($c:ident, $id:expr, $event:expr) => {{
        let e: &citygrid_core::case::Event = $event;
        sqlx::query(
            "INSERT INTO case_events (case_id, seq, at, actor_id, action, from_state, to_state, data) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind($id)
        .bind(e.seq as i64)
        .bind($crate::ms(e.at))
        .bind(e.actor_id)
        .bind(e.change.action().as_str())
        .bind(e.from_state.map(|s| s.as_str()))
        .bind(e.to_state.as_str())
        .bind($crate::json(e)?)
        .execute(&mut *$c)
        .await?;
    }};
}

/// The statements of one create, on the connection or transaction `$c`; evaluates to
/// `Result<Created>`. Shared by the PostgreSQL path and SQLite's group-commit writer. The
/// evaluation count rows of the report are pushed to `$counts` for the caller to add in the
/// same transaction.
macro_rules! create_in {
    ($c:ident, $job:expr, $counts:expr) => {{
        let job: &CreateJob = &$job;
        async {
            let idem_claim = "INSERT INTO idempotency (user_id, key, request_hash, case_id, created_at) \
                              VALUES ($1, $2, $3, NULL, $4) ON CONFLICT (user_id, key) DO NOTHING";
            let idem_read = "SELECT request_hash, case_id FROM idempotency WHERE user_id = $1 AND key = $2";
            let idem_set = "UPDATE idempotency SET case_id = $1 WHERE user_id = $2 AND key = $3";
            let next_number = "INSERT INTO case_numbers (day, last) VALUES ($1, 1) \
                               ON CONFLICT (day) DO UPDATE SET last = case_numbers.last + 1 RETURNING last";
            let insert_case = "INSERT INTO cases (number, state, source, kind, class_code, urgency, grid_code, \
                               community_code, street_code, district_code, department_id, reporter_id, deadline, \
                               case_deadline, urged, created_at, updated_at, version, lon, lat, cell, due_at, data) \
                               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
                               $19, $20, $21, $22, '{}') RETURNING id";
            let set_data = "UPDATE cases SET data = $1 WHERE id = $2";
            let read_case = "SELECT data FROM cases WHERE id = $1";
            if let (Some(k), Err(refusal)) = (&job.idem, &job.event) {
                // Refused now, but a retry of a request that succeeded earlier (the class or
                // the reporter's scope changed since) still gets its case back.
                let row: Option<(String, Option<i64>)> =
                    sqlx::query_as(idem_read).bind(k.user_id).bind(&k.key).fetch_optional(&mut *$c).await?;
                return match row {
                    Some((hash, _)) if hash != k.request_hash => Err(StoreError::IdempotencyMismatch),
                    Some((_, Some(id))) => {
                        let data: String = sqlx::query_scalar(read_case).bind(id).fetch_one(&mut *$c).await?;
                        Ok(Created { case: parse_json(&data)?, replayed: true })
                    }
                    _ => Err(StoreError::Refused(refusal.clone())),
                };
            }
            if let Some(k) = &job.idem {
                let claimed = sqlx::query(idem_claim)
                    .bind(k.user_id)
                    .bind(&k.key)
                    .bind(&k.request_hash)
                    .bind(ms(job.now))
                    .execute(&mut *$c)
                    .await?
                    .rows_affected();
                if claimed == 0 {
                    let (hash, case_id): (String, Option<i64>) =
                        sqlx::query_as(idem_read).bind(k.user_id).bind(&k.key).fetch_one(&mut *$c).await?;
                    if hash != k.request_hash {
                        return Err(StoreError::IdempotencyMismatch);
                    }
                    let id = case_id.ok_or_else(|| corrupt("idempotency key without case"))?;
                    let data: String = sqlx::query_scalar(read_case).bind(id).fetch_one(&mut *$c).await?;
                    return Ok(Created { case: parse_json(&data)?, replayed: true });
                }
            }
            let seq: i64 = sqlx::query_scalar(next_number).bind(&job.day).fetch_one(&mut *$c).await?;
            let mut event = match &job.event {
                Ok(e) => e.clone(),
                Err(refusal) => return Err(StoreError::Refused(refusal.clone())),
            };
            if let citygrid_core::case::Change::Report { number, .. } = &mut event.change {
                *number = format!("{}{seq:05}", job.day);
            }
            let Some(case) = citygrid_core::case::project(None, 0, &event) else {
                return Err(corrupt("report event does not start a case"));
            };
            let id: i64 = sqlx::query_scalar(insert_case)
                .bind(&case.number)
                .bind(case.state.as_str())
                .bind(case.source.as_str())
                .bind(case.kind.as_str())
                .bind(case.class_code.as_str())
                .bind(case.urgency.as_str())
                .bind(case.grid_code.as_str())
                .bind(case.community_code.as_str())
                .bind(case.street_code.as_str())
                .bind(case.district_code.as_str())
                .bind(case.department_id)
                .bind(case.reporter_id)
                .bind(case.deadline.map(ms))
                .bind(case.case_deadline.map(ms))
                .bind(case.urged as i64)
                .bind(ms(case.created_at))
                .bind(ms(case.updated_at))
                .bind(case.version as i64)
                .bind(case.location.lon)
                .bind(case.location.lat)
                .bind(crate::map::map_cell(case.location.lon, case.location.lat))
                .bind(case.due_at.map(ms))
                .fetch_one(&mut *$c)
                .await?;
            let case = Case { id, ..case };
            sqlx::query(set_data).bind(json(&case)?).bind(id).execute(&mut *$c).await?;
            $crate::append_event!($c, id, &event);
            // The evaluation counts of the whole batch are added once, before its commit.
            $counts.extend($crate::evaluation::event_rows(None, &case, &event, job.offset));
            if let Some(k) = &job.idem {
                sqlx::query(idem_set).bind(id).bind(k.user_id).bind(&k.key).execute(&mut *$c).await?;
            }
            Ok::<Created, StoreError>(Created { case, replayed: false })
        }
        .await
    }};
}
pub(crate) use append_event;
pub(crate) use create_in;

/// Append the visibility and the filters of a case list to `$q` (a `QueryBuilder` over `cases`
/// whose WHERE is open), so that the list and the map markers select exactly the same cases.
/// `$sqlite` picks the spatial test: the R*Tree on SQLite, the GiST point index on PostgreSQL.
macro_rules! push_case_filters {
    ($q:ident, $vis:expr, $f:expr, $sqlite:expr) => {{
        let vis: &Visibility = $vis;
        let f: &CaseFilter = $f;
        let q = &mut $q;
        match vis {
            Visibility::All => {}
            Visibility::Region(code) => {
                if code.level() != RegionLevel::City {
                    q.push(" AND grid_code LIKE ").push_bind(format!("{}%", code.as_str()));
                } else {
                    q.push(" AND grid_code LIKE ").push_bind(format!("{}%", &code.as_str()[..4]));
                }
            }
            Visibility::Departments(ids) => {
                q.push(" AND department_id IN (");
                let mut sep = q.separated(", ");
                sep.push_bind(-1i64);
                for id in ids {
                    sep.push_bind(*id);
                }
                q.push(")");
            }
            Visibility::Reporter(uid) => {
                q.push(" AND reporter_id = ").push_bind(*uid);
            }
        }
        if !f.states.is_empty() {
            q.push(" AND state IN (");
            let mut sep = q.separated(", ");
            for s in &f.states {
                sep.push_bind(s.clone());
            }
            q.push(")");
        }
        if let Some(k) = f.kind {
            q.push(" AND kind = ").push_bind(k.as_str());
        }
        if let Some(c) = &f.class_code {
            q.push(" AND class_code = ").push_bind(c.clone());
        }
        if let Some(c) = &f.district {
            q.push(" AND district_code = ").push_bind(c.as_str().to_owned());
        }
        if let Some(c) = &f.street {
            q.push(" AND street_code = ").push_bind(c.as_str().to_owned());
        }
        if let Some(c) = &f.community {
            q.push(" AND community_code = ").push_bind(c.as_str().to_owned());
        }
        if let Some(c) = &f.grid {
            q.push(" AND grid_code = ").push_bind(c.as_str().to_owned());
        }
        if let Some(d) = f.department_id {
            q.push(" AND department_id = ").push_bind(d);
        }
        if let Some(s) = &f.source {
            q.push(" AND source = ").push_bind(s.clone());
        }
        if let Some(u) = f.urged {
            q.push(" AND urged = ").push_bind(u as i64);
        }
        if let Some(t) = f.created_from {
            q.push(" AND created_at >= ").push_bind(ms(t));
        }
        if let Some(t) = f.created_to {
            q.push(" AND created_at < ").push_bind(ms(t));
        }
        if let (Some(o), Some(now)) = (f.overdue, f.now) {
            let open = " AND state NOT IN ('closed', 'rejected', 'refused', 'voided', 'suspended')";
            if o {
                q.push(open).push(" AND deadline < ").push_bind(ms(now));
            } else {
                q.push(" AND NOT (state NOT IN ('closed', 'rejected', 'refused', 'voided', 'suspended') AND deadline IS NOT NULL AND deadline < ")
                    .push_bind(ms(now))
                    .push(")");
            }
        }
        if let Some((x0, y0, x1, y1)) = f.bbox {
            if $sqlite {
                // The R*Tree's 32-bit boxes are rounded outwards: it gives candidates, the
                // columns give the exact answer.
                q.push(" AND id IN (SELECT id FROM cases_rtree WHERE min_lon <= ")
                    .push_bind(x1)
                    .push(" AND max_lon >= ")
                    .push_bind(x0)
                    .push(" AND min_lat <= ")
                    .push_bind(y1)
                    .push(" AND max_lat >= ")
                    .push_bind(y0)
                    .push(")");
            }
            $crate::map::push_point_in_box(q, (x0, y0, x1, y1), $sqlite);
        }
    }};
}
pub(crate) use push_case_filters;

impl Store {
    /// Open (and create, for SQLite) the database named by `url`: `sqlite:PATH`,
    /// `sqlite::memory:` is not supported (the reader pool needs a file), or `postgres://…`.
    pub async fn connect(url: &str) -> Result<Store> {
        let inner = if url.starts_with("sqlite:") {
            Inner::Sqlite(sqlite::Pools::connect(url).await?)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Inner::Postgres(postgres::Pools::connect(url).await?)
        } else {
            return Err(StoreError::Url(url.to_owned()));
        };
        Ok(Store {
            inner: std::sync::Arc::new(inner),
            offset: std::sync::Arc::new(std::sync::atomic::AtomicI32::new(8 * 60)),
            kept: std::sync::Arc::default(),
        })
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match &*self.inner {
            Inner::Sqlite(_) => "sqlite",
            Inner::Postgres(_) => "postgres",
        }
    }

    /// Apply the backend's migrations.
    pub async fn migrate(&self) -> Result<()> {
        match &*self.inner {
            Inner::Sqlite(p) => sqlx::migrate!("./migrations/sqlite").run(&p.write).await?,
            Inner::Postgres(p) => sqlx::migrate!("./migrations/postgres").run(&p.pool).await?,
        }
        Ok(())
    }

    pub async fn close(&self) {
        match &*self.inner {
            Inner::Sqlite(p) => {
                p.write.close().await;
                p.read.close().await;
            }
            Inner::Postgres(p) => p.pool.close().await,
        }
    }

    /// Row count of every table, for tests that prove a refusal changed nothing.
    pub async fn table_counts(&self) -> Result<Vec<(String, i64)>> {
        let mut out = Vec::new();
        for t in CASE_TABLES {
            let sql = format!("SELECT COUNT(*) FROM {t}");
            let n: i64 = both!(self, |w, _r, _f| { sqlx::query_scalar(&sql).fetch_one(w).await? });
            out.push((t.to_owned(), n));
        }
        Ok(out)
    }

    // ---- settings ------------------------------------------------------------------------

    pub async fn get_setting(&self, key: &str) -> Result<Option<String>> {
        let sql = "SELECT value FROM settings WHERE key = $1";
        Ok(both!(self, |_w, r, _f| { sqlx::query_scalar(sql).bind(key).fetch_optional(r).await? }))
    }

    /// All settings whose key starts with `prefix`, by key.
    pub async fn settings_with_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        // A literal, case-sensitive prefix test on both engines (LIKE would treat `_` as a
        // wildcard and, on SQLite, ignore case).
        let sql = "SELECT key, value FROM settings WHERE substr(key, 1, length($1)) = $1 ORDER BY key";
        Ok(both!(self, |_w, r, _f| { sqlx::query_as(sql).bind(prefix).fetch_all(r).await? }))
    }

    pub async fn put_setting(&self, key: &str, value: &str) -> Result<()> {
        let sql = "INSERT INTO settings (key, value) VALUES ($1, $2) \
                   ON CONFLICT (key) DO UPDATE SET value = excluded.value";
        both!(self, |w, _r, _f| {
            sqlx::query(sql).bind(key).bind(value).execute(w).await?;
        });
        Ok(())
    }

    // ---- regions -------------------------------------------------------------------------

    /// Insert or replace regions (parents first); all or nothing.
    pub async fn upsert_regions(&self, regions: &[(Region, Option<String>)]) -> Result<()> {
        let sql = "INSERT INTO regions (code, name, level, parent, area_class, geometry, min_lon, min_lat, max_lon, max_lat) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (code) DO UPDATE SET \
                   name = excluded.name, level = excluded.level, parent = excluded.parent, \
                   area_class = excluded.area_class, geometry = excluded.geometry, min_lon = excluded.min_lon, \
                   min_lat = excluded.min_lat, max_lon = excluded.max_lon, max_lat = excluded.max_lat";
        both!(self, |w, _r, _f| {
            let mut tx = w.begin().await?;
            for (r, geometry) in regions {
                let bbox = geometry.as_deref().and_then(map::geojson_text_bbox);
                sqlx::query(sql)
                    .bind(r.code.as_str())
                    .bind(&r.name)
                    .bind(r.level.as_str())
                    .bind(r.parent.as_ref().map(|p| p.as_str().to_owned()))
                    .bind(r.area_class.as_str())
                    .bind(geometry.as_deref())
                    .bind(bbox.map(|b| b.0))
                    .bind(bbox.map(|b| b.1))
                    .bind(bbox.map(|b| b.2))
                    .bind(bbox.map(|b| b.3))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        if fk_violation(&e) {
                            StoreError::Conflict(format!("region {}: parent does not exist", r.code))
                        } else {
                            e.into()
                        }
                    })?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Regions, optionally only the children of `parent` or only one `level`.
    pub async fn list_regions(&self, parent: Option<&RegionCode>, level: Option<RegionLevel>) -> Result<Vec<Region>> {
        let sql = "SELECT code, name, level, parent, area_class FROM regions \
                   WHERE ($1 IS NULL OR parent = $1) AND ($2 IS NULL OR level = $2) ORDER BY code";
        let parent = parent.map(|p| p.as_str().to_owned());
        let level = level.map(|l| l.as_str().to_owned());
        let rows: Vec<(String, String, String, Option<String>, String)> =
            both!(self, |_w, r, _f| { sqlx::query_as(sql).bind(parent).bind(level).fetch_all(r).await? });
        rows.into_iter().map(|(c, n, l, p, a)| region_from_row(c, n, l, p, a)).collect()
    }

    pub async fn get_region(&self, code: &RegionCode) -> Result<Option<Region>> {
        let sql = "SELECT code, name, level, parent, area_class FROM regions WHERE code = $1";
        let row: Option<(String, String, String, Option<String>, String)> =
            both!(self, |_w, r, _f| { sqlx::query_as(sql).bind(code.as_str()).fetch_optional(r).await? });
        row.map(|(c, n, l, p, a)| region_from_row(c, n, l, p, a)).transpose()
    }

    /// Unit grids with their GeoJSON geometry, for building the point → grid index.
    pub async fn grid_geometries(&self) -> Result<Vec<(String, String)>> {
        let sql = "SELECT code, geometry FROM regions WHERE level = 'grid' AND geometry IS NOT NULL ORDER BY code";
        Ok(both!(self, |_w, r, _f| { sqlx::query_as(sql).fetch_all(r).await? }))
    }

    /// Rename a region or change its area class.
    pub async fn update_region(
        &self,
        code: &RegionCode,
        name: &str,
        area_class: citygrid_core::codes::AreaClass,
    ) -> Result<Region> {
        let sql = "UPDATE regions SET name = $1, area_class = $2 WHERE code = $3";
        let n = both!(self, |w, _r, _f| {
            sqlx::query(sql).bind(name).bind(area_class.as_str()).bind(code.as_str()).execute(w).await?.rows_affected()
        });
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        self.get_region(code).await?.ok_or(StoreError::NotFound)
    }

    /// Delete a region nothing refers to: no sub-regions, cases or users scoped to it.
    pub async fn delete_region(&self, code: &RegionCode) -> Result<()> {
        let in_use = "SELECT (SELECT COUNT(*) FROM regions WHERE parent = $1) \
                      + (SELECT COUNT(*) FROM cases WHERE grid_code LIKE $2) \
                      + (SELECT COUNT(*) FROM users WHERE scope LIKE $3)";
        let prefix = format!("{}%", code.as_str());
        let scoped = format!("%\"code\":\"{}\"%", code.as_str());
        let del = "DELETE FROM regions WHERE code = $1";
        both!(self, |w, _r, _f| {
            let mut tx = w.begin().await?;
            let n: i64 =
                sqlx::query_scalar(in_use).bind(code.as_str()).bind(&prefix).bind(&scoped).fetch_one(&mut *tx).await?;
            if n > 0 {
                return Err(StoreError::Conflict("region is in use by sub-regions, cases or users".into()));
            }
            if sqlx::query(del).bind(code.as_str()).execute(&mut *tx).await?.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            tx.commit().await?;
        });
        Ok(())
    }

    // ---- departments ---------------------------------------------------------------------

    pub async fn list_departments(&self) -> Result<Vec<Department>> {
        let sql = "SELECT id, code, name, parent_id, tier FROM departments ORDER BY id";
        let rows: Vec<(i64, String, String, Option<i64>, i64)> =
            both!(self, |_w, r, _f| { sqlx::query_as(sql).fetch_all(r).await? });
        Ok(rows
            .into_iter()
            .map(|(id, code, name, parent_id, tier)| Department { id, code, name, parent_id, tier: tier as u8 })
            .collect())
    }

    pub async fn get_department(&self, id: i64) -> Result<Option<Department>> {
        let sql = "SELECT id, code, name, parent_id, tier FROM departments WHERE id = $1";
        let row: Option<(i64, String, String, Option<i64>, i64)> =
            both!(self, |_w, r, _f| { sqlx::query_as(sql).bind(id).fetch_optional(r).await? });
        Ok(row.map(|(id, code, name, parent_id, tier)| Department { id, code, name, parent_id, tier: tier as u8 }))
    }

    /// Create a department; a sub-unit (三级) under a city-level one (二级).
    pub async fn create_department(&self, d: &NewDepartment) -> Result<Department> {
        let tier: i64 = match d.parent_id {
            None => 2,
            Some(p) => match self.get_department(p).await? {
                Some(parent) if parent.tier == 2 => 3,
                Some(_) => return Err(StoreError::Conflict("a sub-unit cannot have sub-units".into())),
                None => return Err(StoreError::Conflict("parent department does not exist".into())),
            },
        };
        let sql = "INSERT INTO departments (code, name, parent_id, tier) VALUES ($1, $2, $3, $4) RETURNING id";
        let res: Result<i64, sqlx::Error> = both!(self, |w, _r, _f| {
            sqlx::query_scalar(sql).bind(&d.code).bind(&d.name).bind(d.parent_id).bind(tier).fetch_one(w).await
        });
        match res {
            Ok(id) => Ok(Department {
                id,
                code: d.code.clone(),
                name: d.name.clone(),
                parent_id: d.parent_id,
                tier: tier as u8,
            }),
            Err(e) if unique_violation(&e) => Err(StoreError::Conflict(format!("department code {} is taken", d.code))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn update_department(&self, id: i64, code: &str, name: &str) -> Result<Department> {
        let sql = "UPDATE departments SET code = $1, name = $2 WHERE id = $3";
        let res: Result<u64, sqlx::Error> = both!(self, |w, _r, _f| {
            sqlx::query(sql).bind(code).bind(name).bind(id).execute(w).await.map(|r| r.rows_affected())
        });
        match res {
            Ok(0) => Err(StoreError::NotFound),
            Ok(_) => self.get_department(id).await?.ok_or(StoreError::NotFound),
            Err(e) if unique_violation(&e) => Err(StoreError::Conflict(format!("department code {code} is taken"))),
            Err(e) => Err(e.into()),
        }
    }

    /// Delete a department nobody refers to (no sub-units, users or cases).
    pub async fn delete_department(&self, id: i64) -> Result<()> {
        let in_use = "SELECT (SELECT COUNT(*) FROM departments WHERE parent_id = $1) \
                      + (SELECT COUNT(*) FROM cases WHERE department_id = $1) \
                      + (SELECT COUNT(*) FROM users WHERE scope LIKE $2)";
        let pattern = format!("%\"department_id\":{id}}}%");
        let del = "DELETE FROM departments WHERE id = $1";
        both!(self, |w, _r, _f| {
            let mut tx = w.begin().await?;
            let n: i64 = sqlx::query_scalar(in_use).bind(id).bind(&pattern).fetch_one(&mut *tx).await?;
            if n > 0 {
                return Err(StoreError::Conflict("department is in use by sub-units, users or cases".into()));
            }
            if sqlx::query(del).bind(id).execute(&mut *tx).await?.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            tx.commit().await?;
        });
        Ok(())
    }

    // ---- catalogue -----------------------------------------------------------------------

    /// Insert or replace classes; all or nothing.
    pub async fn upsert_classes(&self, classes: &[ClassInfo]) -> Result<()> {
        let sql = "INSERT INTO classes (kind, code, data) VALUES ($1, $2, $3) \
                   ON CONFLICT (kind, code) DO UPDATE SET data = excluded.data";
        let rows = classes
            .iter()
            .map(|c| Ok((c.kind.as_str(), c.code.as_str().to_owned(), json(c)?)))
            .collect::<Result<Vec<_>>>()?;
        both!(self, |w, _r, _f| {
            let mut tx = w.begin().await?;
            for (kind, code, data) in &rows {
                sqlx::query(sql).bind(*kind).bind(code).bind(data).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn list_classes(&self) -> Result<Vec<ClassInfo>> {
        let sql = "SELECT data FROM classes ORDER BY kind, code";
        let rows: Vec<String> = both!(self, |_w, r, _f| { sqlx::query_scalar(sql).fetch_all(r).await? });
        rows.iter().map(|d| parse_json(d)).collect()
    }

    pub async fn get_class(&self, kind: Kind, code: &str) -> Result<Option<ClassInfo>> {
        let sql = "SELECT data FROM classes WHERE kind = $1 AND code = $2";
        let row: Option<String> = both!(self, |_w, r, _f| {
            sqlx::query_scalar(sql).bind(kind.as_str()).bind(code).fetch_optional(r).await?
        });
        row.map(|d| parse_json(&d)).transpose()
    }

    /// Delete a local class that no case uses; national classes are deactivated instead.
    pub async fn delete_class(&self, kind: Kind, code: &str) -> Result<()> {
        let used = "SELECT COUNT(*) FROM cases WHERE kind = $1 AND class_code = $2";
        let del = "DELETE FROM classes WHERE kind = $1 AND code = $2";
        both!(self, |w, _r, _f| {
            let mut tx = w.begin().await?;
            let n: i64 = sqlx::query_scalar(used).bind(kind.as_str()).bind(code).fetch_one(&mut *tx).await?;
            if n > 0 {
                return Err(StoreError::Conflict("class is used by cases; deactivate it instead".into()));
            }
            if sqlx::query(del).bind(kind.as_str()).bind(code).execute(&mut *tx).await?.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            tx.commit().await?;
        });
        Ok(())
    }

    // ---- users and tokens ----------------------------------------------------------------

    pub async fn create_user(&self, u: &NewUser, now: Timestamp) -> Result<User> {
        let sql = INSERT_USER;
        let scope = json(&u.scope)?;
        let res: Result<i64, sqlx::Error> = both!(self, |w, _r, _f| {
            sqlx::query_scalar(sql)
                .bind(&u.username)
                .bind(&u.display_name)
                .bind(&u.password_hash)
                .bind(u.role.as_str())
                .bind(&scope)
                .bind(ms(now))
                .fetch_one(w)
                .await
        });
        match res {
            Ok(id) => Ok(User {
                id,
                username: u.username.clone(),
                display_name: u.display_name.clone(),
                role: u.role,
                scope: u.scope.clone(),
                active: true,
            }),
            Err(e) if unique_violation(&e) => Err(StoreError::Conflict(format!("username {} is taken", u.username))),
            Err(e) => Err(e.into()),
        }
    }

    /// A user and their password hash, for sign-in.
    pub async fn user_by_name(&self, username: &str) -> Result<Option<(User, String)>> {
        let sql =
            "SELECT id, username, display_name, role, scope, active, password_hash FROM users WHERE username = $1";
        let row: Option<(i64, String, String, String, String, i64, String)> =
            both!(self, |_w, r, _f| { sqlx::query_as(sql).bind(username).fetch_optional(r).await? });
        row.map(|(id, u, d, role, scope, active, hash)| Ok((user_from_parts(id, u, d, role, scope, active)?, hash)))
            .transpose()
    }

    pub async fn list_users(&self) -> Result<Vec<User>> {
        let sql = "SELECT id, username, display_name, role, scope, active FROM users ORDER BY id";
        let rows: Vec<(i64, String, String, String, String, i64)> =
            both!(self, |_w, r, _f| { sqlx::query_as(sql).fetch_all(r).await? });
        rows.into_iter().map(|(id, u, d, role, scope, active)| user_from_parts(id, u, d, role, scope, active)).collect()
    }

    pub async fn insert_token(&self, hash: &str, user_id: i64, now: Timestamp, expires: Timestamp) -> Result<()> {
        let sql = "INSERT INTO tokens (hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)";
        both!(self, |w, _r, _f| {
            sqlx::query(sql).bind(hash).bind(user_id).bind(ms(now)).bind(ms(expires)).execute(w).await?;
        });
        Ok(())
    }

    /// The active user of a live, unrevoked token.
    pub async fn user_by_token(&self, hash: &str, now: Timestamp) -> Result<Option<User>> {
        let sql = "SELECT u.id, u.username, u.display_name, u.role, u.scope, u.active FROM tokens t \
                   JOIN users u ON u.id = t.user_id \
                   WHERE t.hash = $1 AND t.revoked_at IS NULL AND t.expires_at > $2 AND u.active = 1";
        let row: Option<(i64, String, String, String, String, i64)> =
            both!(self, |_w, r, _f| { sqlx::query_as(sql).bind(hash).bind(ms(now)).fetch_optional(r).await? });
        row.map(|(id, u, d, role, scope, active)| user_from_parts(id, u, d, role, scope, active)).transpose()
    }

    /// Revoke a token; true if it was live.
    pub async fn revoke_token(&self, hash: &str, now: Timestamp) -> Result<bool> {
        let sql = "UPDATE tokens SET revoked_at = $1 WHERE hash = $2 AND revoked_at IS NULL";
        let n =
            both!(self, |w, _r, _f| { sqlx::query(sql).bind(ms(now)).bind(hash).execute(w).await?.rows_affected() });
        Ok(n > 0)
    }

    // ---- photos --------------------------------------------------------------------------

    /// Store a photo by content address; storing the same bytes again is a no-op.
    pub async fn insert_photo(&self, p: &Photo) -> Result<()> {
        let sql = "INSERT INTO photos (id, content_type, size, bytes, uploaded_by, created_at) \
                   VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING";
        both!(self, |w, _r, _f| {
            sqlx::query(sql)
                .bind(&p.id)
                .bind(&p.content_type)
                .bind(p.bytes.len() as i64)
                .bind(&p.bytes)
                .bind(p.uploaded_by)
                .bind(ms(p.created_at))
                .execute(w)
                .await?;
        });
        Ok(())
    }

    pub async fn get_photo(&self, id: &str) -> Result<Option<Photo>> {
        let sql = "SELECT id, content_type, bytes, uploaded_by, created_at FROM photos WHERE id = $1";
        let row: Option<(String, String, Vec<u8>, i64, i64)> =
            both!(self, |_w, r, _f| { sqlx::query_as(sql).bind(id).fetch_optional(r).await? });
        row.map(|(id, content_type, bytes, uploaded_by, at)| {
            Ok(Photo { id, content_type, bytes, uploaded_by, created_at: from_ms(at)? })
        })
        .transpose()
    }

    /// The ids among `ids` that are not stored.
    pub async fn missing_photos(&self, ids: &[String]) -> Result<Vec<String>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let stored: Vec<String> = both!(self, |_w, r, _f| {
            let mut q = sqlx::QueryBuilder::new("SELECT id FROM photos WHERE id IN (");
            let mut sep = q.separated(", ");
            for id in ids {
                sep.push_bind(id.clone());
            }
            q.push(")");
            q.build_query_scalar().fetch_all(r).await?
        });
        Ok(ids.iter().filter(|id| !stored.contains(id)).cloned().collect())
    }

    // ---- cases ---------------------------------------------------------------------------

    /// Create a case: let `build` make the report event, then, in one transaction, claim the
    /// idempotency key, allocate the day's next case number (written into the event), append
    /// the event and write the projection. With an idempotency key, a retry returns the case
    /// the first request created. `build` is called with an empty number: the store assigns it.
    ///
    /// Concurrent creates are committed together (group commit, `batch.rs`): one writer task
    /// takes every create waiting for it, runs them in one transaction, commits once, and only
    /// then answers each caller.
    pub async fn create_case<F>(
        &self,
        day: &str,
        idem: Option<&Idempotency>,
        now: Timestamp,
        build: F,
    ) -> Result<Created>
    where
        F: FnOnce(String) -> Result<Event, Refusal> + Send,
    {
        let event = build(String::new());
        match (&event, idem) {
            (Err(r), None) => return Err(StoreError::Refused(r.clone())),
            (Ok(e), _) if !matches!(e.change, citygrid_core::case::Change::Report { .. }) => {
                return Err(corrupt("a case starts with a report event"));
            }
            _ => {}
        }
        let job = CreateJob { day: day.to_owned(), idem: idem.cloned(), now, offset: self.utc_offset_minutes(), event };
        match &*self.inner {
            Inner::Sqlite(p) => p.batcher.submit(job).await,
            Inner::Postgres(p) => p.batcher.submit(job).await,
        }
    }

    pub async fn get_case(&self, id: i64) -> Result<Option<Case>> {
        let sql = "SELECT data FROM cases WHERE id = $1";
        let row: Option<String> =
            both!(self, |_w, r, _f| { sqlx::query_scalar(sql).bind(id).fetch_optional(r).await? });
        row.map(|d| parse_json(&d)).transpose()
    }

    /// The case's log, oldest first.
    pub async fn case_events(&self, id: i64) -> Result<Vec<Event>> {
        let sql = "SELECT data FROM case_events WHERE case_id = $1 ORDER BY seq";
        let rows: Vec<String> = both!(self, |_w, r, _f| { sqlx::query_scalar(sql).bind(id).fetch_all(r).await? });
        rows.iter().map(|d| parse_json(d)).collect()
    }

    /// Take one action on a case in one transaction: lock and read the case, let `decide` make
    /// the event (or refuse), append it, rewrite the projection.
    pub async fn act<F>(&self, id: i64, decide: F) -> Result<Case>
    where
        F: FnOnce(&Case) -> Result<Event, Refusal> + Send,
    {
        let update = concat!(update_case_sql!(), " AND version = $13");
        let offset = self.utc_offset_minutes();
        both!(self, |w, _r, for_update| {
            let mut conn = w.acquire().await?;
            let result = async {
                let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                let select = format!("SELECT data FROM cases WHERE id = $1{for_update}");
                let data: Option<String> = sqlx::query_scalar(&select).bind(id).fetch_optional(&mut *tx).await?;
                let case: Case = parse_json(&data.ok_or(StoreError::NotFound)?)?;
                let event = decide(&case)?;
                if let citygrid_core::case::Change::Void { duplicate_of: Some(target) } = &event.change {
                    // A merge names a case that still stands, checked under its lock, so two
                    // reports merged into each other at the same moment cannot both be voided.
                    let select = format!("SELECT state FROM cases WHERE id = $1{for_update}");
                    let state: Option<String> =
                        sqlx::query_scalar(&select).bind(*target).fetch_optional(&mut *tx).await.map_err(|e| {
                            if matches!(&e, sqlx::Error::Database(d) if d.code().as_deref() == Some("40P01")) {
                                StoreError::Conflict("the cases changed meanwhile; retry".into())
                            } else {
                                StoreError::Db(e)
                            }
                        })?;
                    if !state.as_deref().is_some_and(|s| !matches!(s, "voided" | "rejected" | "refused")) {
                        return Err(StoreError::Refused(Refusal::Invalid {
                            field: "duplicate_of",
                            message: format!("case {target} does not stand (voided, rejected or refused)"),
                        }));
                    }
                }
                let Some(next) = citygrid_core::case::project(Some(case.clone()), id, &event) else {
                    return Err(corrupt("event does not follow the case"));
                };
                let n = bind_case_row!(sqlx::query(update), &next)
                    .bind(id)
                    .bind(case.version as i64)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n != 1 {
                    return Err(StoreError::Conflict("the case changed meanwhile; retry".into()));
                }
                append_event!(tx, id, &event);
                let counts = evaluation::event_rows(Some(&case), &next, &event, offset);
                evaluation::add_counts!(tx, &counts);
                tx.commit().await?;
                Ok::<Case, StoreError>(next)
            }
            .await;
            // A database error may leave the connection in a transaction state sqlx does not
            // know (SQLite rolls back by itself on a full disk): never reuse it.
            if matches!(result, Err(StoreError::Db(_))) {
                conn.close_on_drop();
            }
            result
        })
    }

    /// Cases visible to the reader that match the filter, newest first, `limit` per page,
    /// starting below the cursor `before` (a case id).
    pub async fn list_cases(
        &self,
        vis: &Visibility,
        f: &CaseFilter,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Page<Case>> {
        let limit = limit.clamp(1, 500) as i64;
        let sqlite = self.backend() == "sqlite";
        both!(self, |_w, r, _f| {
            let mut q = sqlx::QueryBuilder::new("SELECT id, data FROM cases WHERE 1 = 1");
            push_case_filters!(q, vis, f, sqlite);
            if let Some(b) = before {
                q.push(" AND id < ").push_bind(b);
            }
            q.push(" ORDER BY id DESC LIMIT ").push_bind(limit + 1);
            let rows = q.build().fetch_all(r).await?;
            let mut items = Vec::with_capacity(rows.len());
            for row in &rows {
                let data: String = row.try_get("data")?;
                items.push(parse_json::<Case>(&data)?);
            }
            let next = if items.len() as i64 > limit {
                items.truncate(limit as usize);
                items.last().map(|c| c.id)
            } else {
                None
            };
            Ok(Page { items, next })
        })
    }

    /// Every case id, for replay checks and rebuilds.
    pub async fn case_ids(&self) -> Result<Vec<i64>> {
        let sql = "SELECT id FROM cases ORDER BY id";
        Ok(both!(self, |_w, r, _f| { sqlx::query_scalar(sql).fetch_all(r).await? }))
    }

    // ---- benchmark baseline --------------------------------------------------------------

    /// One durable single-row insert, the raw baseline of `citygrid bench intake`.
    pub async fn bench_raw_insert(&self, at: Timestamp, data: &str) -> Result<()> {
        let sql = "INSERT INTO bench_raw (at, data) VALUES ($1, $2)";
        both!(self, |w, _r, _f| {
            sqlx::query(sql).bind(ms(at)).bind(data).execute(w).await?;
        });
        Ok(())
    }
}
