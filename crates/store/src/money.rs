//! The ledger (台账), reward approvals and monthly settlements.
//!
//! Every write here runs in one transaction that first bumps the single `ledger_lock` row, so
//! ledger writers are serialised on both engines: two reconciliations of the same problem can
//! never both decide a reward is missing and write it twice. What is due is decided by
//! `citygrid_core::reward`; this module only gathers the facts and appends the entries.

use crate::{both, corrupt, from_ms, json, locked_tx, ms, parse_json, Inner, Result, Store, StoreError};
use citygrid_core::case::{Case, Source};
use citygrid_core::citizen::{PayoutChannel, Phone, Service};
use citygrid_core::reward::{self, Entry, EntryKind, PartyKind, PastReward, ReportFacts, Reporter, Rules};
use citygrid_core::settlement::{self, Candidate, Outcome, Payee};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::collections::{BTreeMap, HashMap, HashSet};

/// What a reconciliation needs besides the database.
pub struct LedgerCtx<'a> {
    pub rules: &'a Rules,
    /// Citizen categories by code.
    pub services: &'a HashMap<String, Service>,
    /// The city's offset from UTC, minutes (local days and months).
    pub offset_minutes: i32,
    /// (cleaning contractor, collector) whose areas hold a point.
    pub areas: &'a (dyn Fn(f64, f64) -> (Option<String>, Option<String>) + Send + Sync),
    pub now: Timestamp,
    /// Why this reconciliation runs, kept on reversals (`verify`, `void`, `approval`, ...).
    pub why: &'a str,
}

/// What a reconciliation found and wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reconciled {
    pub root: i64,
    pub cases: Vec<i64>,
    pub first: Option<i64>,
    /// Why nobody is rewarded, when nobody is.
    pub reason: Option<String>,
    /// Ids of the entries written.
    pub written: Vec<i64>,
}

/// A ledger entry as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerRow {
    pub id: i64,
    pub kind: EntryKind,
    pub party_kind: PartyKind,
    pub party: String,
    pub case_id: i64,
    pub case_number: String,
    pub class_code: String,
    pub grid_code: String,
    pub set_root: i64,
    pub amount_fen: i64,
    pub rule: String,
    pub reverses: Option<i64>,
    /// Set when a later entry reverses this one.
    pub reversed_by: Option<i64>,
    pub needs_approval: bool,
    /// The approver's decision, once taken.
    pub approved: Option<bool>,
    pub month: String,
    /// The settlement that paid or deducted it.
    pub settled_in: Option<String>,
    pub created_at: Timestamp,
    pub detail: EntryDetail,
}

impl LedgerRow {
    pub fn status(&self) -> reward::EntryStatus {
        reward::EntryStatus::of(
            self.settled_in.is_some(),
            self.reverses,
            self.reversed_by,
            self.needs_approval,
            self.approved,
        )
    }
}

/// Why an entry was written, in words and facts, so that every amount can be explained.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EntryDetail {
    /// The cases of the problem (merged set) when the entry was written.
    pub set_cases: Vec<i64>,
    /// The collector whose area holds the point (for missed-report deductions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collector: Option<String>,
    pub why: String,
}

/// Filters of the ledger list.
#[derive(Debug, Clone, Default)]
pub struct LedgerFilter {
    pub kind: Option<EntryKind>,
    pub party_kind: Option<PartyKind>,
    pub party: Option<String>,
    pub month: Option<String>,
    pub case_id: Option<i64>,
    /// Only entries of cases in this region (code prefix of the grid code).
    pub region_prefix: Option<String>,
    /// Only rewards waiting for an approver.
    pub awaiting_approval: bool,
}

/// A stored settlement run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settlement {
    pub month: String,
    pub run_at: Timestamp,
    pub run_by: Option<i64>,
    pub outcome: Outcome,
    /// File name → SHA-256 of its bytes.
    pub files: BTreeMap<String, String>,
    /// False when this call found the month settled already (nothing was written).
    pub created: bool,
}

const LOCK: &str = "UPDATE ledger_lock SET n = n + 1 WHERE id = 1";

const ROW_SELECT: &str = "SELECT e.id, e.kind, e.party_kind, e.party, e.case_id, c.number, c.class_code, c.grid_code, \
     e.set_root, e.amount_fen, e.rule, e.reverses, \
     (SELECT r.id FROM ledger_entries r WHERE r.reverses = e.id) AS reversed_by, \
     e.needs_approval, (SELECT a.approved FROM ledger_approvals a WHERE a.entry_id = e.id) AS approved, \
     e.month, (SELECT s.month FROM settlement_lines s WHERE s.entry_id = e.id) AS settled_in, e.created_at, e.data \
     FROM ledger_entries e JOIN cases c ON c.id = e.case_id WHERE 1 = 1";

fn ledger_row<R: Row>(row: &R) -> Result<LedgerRow>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i64>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let kind: String = row.try_get("kind")?;
    let party_kind: String = row.try_get("party_kind")?;
    let data: String = row.try_get("data")?;
    Ok(LedgerRow {
        id: row.try_get("id")?,
        kind: EntryKind::parse(&kind).ok_or_else(|| corrupt(&kind))?,
        party_kind: PartyKind::parse(&party_kind).ok_or_else(|| corrupt(&party_kind))?,
        party: row.try_get("party")?,
        case_id: row.try_get("case_id")?,
        case_number: row.try_get("number")?,
        class_code: row.try_get("class_code")?,
        grid_code: row.try_get("grid_code")?,
        set_root: row.try_get("set_root")?,
        amount_fen: row.try_get("amount_fen")?,
        rule: row.try_get("rule")?,
        reverses: row.try_get("reverses")?,
        reversed_by: row.try_get("reversed_by")?,
        needs_approval: row.try_get::<i64, _>("needs_approval")? != 0,
        approved: row.try_get::<Option<i64>, _>("approved")?.map(|v| v != 0),
        month: row.try_get("month")?,
        settled_in: row.try_get("settled_in")?,
        created_at: from_ms(row.try_get("created_at")?)?,
        detail: parse_json(&data)?,
    })
}

/// The body of a reconciliation on the transaction `$tx`: walk the set, gather the facts,
/// decide, and (when `$write`) append. Used inside an `async` block returning
/// `Result<Option<Reconciled>>`: it evaluates to `Some` when done, or returns early (`None`
/// when `$write` is false and something would be written).
macro_rules! reconcile_body {
    ($tx:ident, $case_id:expr, $ctx:expr, $month:expr, $write:expr) => {{
        let case_id: i64 = $case_id;
        let ctx: &LedgerCtx<'_> = $ctx;
        let month: &str = $month;
        // The root: follow duplicate_of upwards (bounded, in case of a cycle in bad data).
        let mut root = case_id;
        let mut seen = HashSet::new();
        loop {
            let up: Option<Option<i64>> = sqlx::query_scalar("SELECT duplicate_of FROM cases WHERE id = $1")
                .bind(root)
                .fetch_optional(&mut *$tx)
                .await?;
            match up {
                None => return Err(StoreError::NotFound),
                Some(Some(next)) if seen.insert(root) => root = next,
                _ => break,
            }
        }
        // The whole set: the root and everything merged into it, however deep.
        let mut ids = vec![root];
        let mut frontier = vec![root];
        while !frontier.is_empty() && ids.len() < 10_000 {
            let sql = format!("SELECT id FROM cases WHERE duplicate_of IN ({})", in_list(frontier.len(), 1));
            let mut q = sqlx::query_scalar::<_, i64>(&sql);
            for id in &frontier {
                q = q.bind(*id);
            }
            let children: Vec<i64> = q.fetch_all(&mut *$tx).await?;
            frontier = children.into_iter().filter(|c| !ids.contains(c)).collect();
            ids.extend(&frontier);
        }
        ids.sort_unstable();
        let sql = format!("SELECT data FROM cases WHERE id IN ({})", in_list(ids.len(), 1));
        let mut q = sqlx::query_scalar::<_, String>(&sql);
        for id in &ids {
            q = q.bind(*id);
        }
        let cases: Vec<Case> = q.fetch_all(&mut *$tx).await?.iter().map(|d| parse_json(d)).collect::<Result<_>>()?;
        // Who reported: role, proven phone, exclusion.
        let reporters: Vec<i64> = cases.iter().filter_map(|c| c.reporter_id).collect();
        let mut people: HashMap<i64, Reporter> = HashMap::new();
        if !reporters.is_empty() {
            let sql = format!(
                "SELECT u.id, u.role, a.phone, x.reason FROM users u \
                         LEFT JOIN citizen_accounts a ON a.user_id = u.id \
                         LEFT JOIN reward_exclusions x ON x.phone = a.phone WHERE u.id IN ({})",
                in_list(reporters.len(), 1)
            );
            let mut q = sqlx::query_as::<_, (i64, String, Option<String>, Option<String>)>(&sql);
            for id in &reporters {
                q = q.bind(*id);
            }
            for (id, role, phone, excluded) in q.fetch_all(&mut *$tx).await? {
                let reporter = match (role.as_str(), phone.map(|p| Phone::parse(&p))) {
                    ("citizen", Some(Ok(phone))) => Reporter::Citizen { user_id: id, phone, excluded },
                    ("citizen", _) => Reporter::Anonymous,
                    _ => Reporter::Staff,
                };
                people.insert(id, reporter);
            }
        }
        let facts: Vec<ReportFacts> = cases
            .iter()
            .map(|c| {
                let (contractor, collector) = (ctx.areas)(c.location.lon, c.location.lat);
                ReportFacts {
                    case_id: c.id,
                    source: c.source,
                    received_at: c.created_at,
                    state: c.state,
                    verified: c.verified,
                    duplicate_of: c.duplicate_of,
                    class_code: c.class_code.as_str().to_owned(),
                    location: c.location,
                    grid_code: c.grid_code.as_str().to_owned(),
                    reporter: match (c.source, c.reporter_id.and_then(|r| people.get(&r))) {
                        (Source::Citizen, Some(r)) => r.clone(),
                        (Source::Citizen, None) => Reporter::Anonymous,
                        _ => Reporter::Staff,
                    },
                    contractor,
                    collector,
                }
            })
            .collect();
        // The entries the set's cases hold now.
        let sql = format!(
            "SELECT id, kind, party_kind, party, case_id, amount_fen, rule, reverses, needs_approval \
                     FROM ledger_entries WHERE case_id IN ({}) ORDER BY id",
            in_list(ids.len(), 1)
        );
        let mut q = sqlx::query_as::<_, (i64, String, String, String, i64, i64, String, Option<i64>, i64)>(&sql);
        for id in &ids {
            q = q.bind(*id);
        }
        let mut existing = Vec::new();
        for (id, kind, pk, party, case, amount, rule, reverses, na) in q.fetch_all(&mut *$tx).await? {
            existing.push(Entry {
                id,
                kind: EntryKind::parse(&kind).ok_or_else(|| corrupt(&kind))?,
                party_kind: PartyKind::parse(&pk).ok_or_else(|| corrupt(&pk))?,
                party,
                case_id: case,
                amount_fen: amount,
                rule,
                reverses,
                needs_approval: na != 0,
            });
        }
        let sql = format!(
            "SELECT e.case_id FROM ledger_approvals a JOIN ledger_entries e ON e.id = a.entry_id \
                     WHERE a.approved = 0 AND e.case_id IN ({})",
            in_list(ids.len(), 1)
        );
        let mut q = sqlx::query_scalar::<_, i64>(&sql);
        for id in &ids {
            q = q.bind(*id);
        }
        let declined: HashSet<i64> = q.fetch_all(&mut *$tx).await?.into_iter().collect();
        // The first reporter's standing rewards elsewhere, for the caps and same-spot rule.
        // `+e.reverses` keeps SQLite off the `reverses` index, which would walk every
        // original entry of the ledger; the party index finds this citizen's few.
        let first = facts.iter().min_by_key(|f| (f.received_at, f.case_id));
        let mut history = Vec::new();
        if let Some(ReportFacts { reporter: Reporter::Citizen { user_id, .. }, .. }) = first {
            let rows: Vec<(i64, i64, i64, f64, f64)> = sqlx::query_as(
                "SELECT e.case_id, e.amount_fen, c.created_at, c.lon, c.lat FROM ledger_entries e \
                         JOIN cases c ON c.id = e.case_id \
                         WHERE e.party_kind = 'citizen' AND e.party = $1 AND e.kind = 'reward' AND +e.reverses IS NULL \
                         AND NOT EXISTS (SELECT 1 FROM ledger_entries r WHERE r.reverses = e.id)",
            )
            .bind(user_id.to_string())
            .fetch_all(&mut *$tx)
            .await?;
            for (case, amount, at, lon, lat) in rows {
                if !ids.contains(&case) {
                    history.push(PastReward {
                        case_id: case,
                        received_at: from_ms(at)?,
                        amount_fen: amount,
                        location: citygrid_core::case::Point { lon, lat },
                    });
                }
            }
        }
        let service = first.and_then(|f| ctx.services.get(&f.class_code)).filter(|s| s.active);
        let assessment = reward::assess(&facts, service, ctx.rules, &history, &declined, ctx.offset_minutes, &existing);
        let new = reward::reconcile(&existing, &assessment.due, ctx.why);
        if new.is_empty() || !$write {
            // Nothing to append (the common case on a re-check), or a first look
            // without the lock: end without a commit.
            $tx.rollback().await?;
            return Ok(new.is_empty().then(|| Reconciled {
                root,
                cases: ids,
                first: assessment.first,
                reason: assessment.reason.map(str::to_owned),
                written: vec![],
            }));
        }
        let mut written = Vec::new();
        for n in &new {
            let collector = facts.iter().find(|f| f.case_id == n.case_id).and_then(|f| f.collector.clone());
            let detail = EntryDetail {
                set_cases: ids.clone(),
                collector: (n.party_kind == PartyKind::Collection).then_some(collector).flatten(),
                why: match n.reverses {
                    Some(_) => format!("reversed: {}", assessment.reason.unwrap_or("no longer due")),
                    None => ctx.why.to_owned(),
                },
            };
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO ledger_entries (kind, party_kind, party, case_id, set_root, amount_fen, rule, \
                         reverses, needs_approval, month, created_at, data) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
            )
            .bind(n.kind.as_str())
            .bind(n.party_kind.as_str())
            .bind(&n.party)
            .bind(n.case_id)
            .bind(root)
            .bind(n.amount_fen)
            .bind(&n.rule)
            .bind(n.reverses)
            .bind(n.needs_approval as i64)
            .bind(&month)
            .bind(ms(ctx.now))
            .bind(json(&detail)?)
            .fetch_one(&mut *$tx)
            .await?;
            written.push(id);
        }
        Some(Reconciled {
            root,
            cases: ids,
            first: assessment.first,
            reason: assessment.reason.map(str::to_owned),
            written,
        })
    }};
}

fn in_list(n: usize, from: usize) -> String {
    (0..n).map(|i| format!("${}", i + from)).collect::<Vec<_>>().join(", ")
}

impl Store {
    /// Bring the ledger in line with the problem `case_id` belongs to: walk its merged set,
    /// decide what is due (`citygrid_core::reward::assess`) and append the difference
    /// (`reconcile`). Idempotent: a second call writes nothing.
    pub async fn reconcile_set(&self, case_id: i64, ctx: &LedgerCtx<'_>) -> Result<Reconciled> {
        let month = reward::month_of(ctx.now, ctx.offset_minutes);
        both!(self, |w, r, _f| {
            // A first look without the lock, on a reader: most calls (every re-check of a
            // settlement) find nothing to write and never queue behind the ledger's writers.
            let mut conn = r.acquire().await?;
            let looked = async {
                let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                let out = reconcile_body!(tx, case_id, ctx, &month, false);
                Ok::<_, StoreError>(out)
            }
            .await?;
            drop(conn);
            if let Some(done) = looked {
                return Ok(done);
            }
            let written = locked_tx!(w, LOCK, |tx| { reconcile_body!(tx, case_id, ctx, &month, true) })?;
            written.ok_or_else(|| corrupt("a locked reconciliation did not write"))
        })
    }

    /// Ledger entries matching `f`, newest first, `limit` per page below the cursor `before`.
    pub async fn list_ledger(
        &self,
        f: &LedgerFilter,
        before: Option<i64>,
        limit: u32,
    ) -> Result<crate::Page<LedgerRow>> {
        let limit = i64::from(limit.clamp(1, 1000));
        both!(self, |_w, r, _f| {
            let mut q = sqlx::QueryBuilder::new(ROW_SELECT);
            if let Some(k) = f.kind {
                q.push(" AND e.kind = ").push_bind(k.as_str());
            }
            if let Some(k) = f.party_kind {
                q.push(" AND e.party_kind = ").push_bind(k.as_str());
            }
            if let Some(p) = &f.party {
                q.push(" AND e.party = ").push_bind(p.clone());
            }
            if let Some(m) = &f.month {
                q.push(" AND e.month = ").push_bind(m.clone());
            }
            if let Some(c) = f.case_id {
                q.push(" AND e.case_id = ").push_bind(c);
            }
            if let Some(p) = &f.region_prefix {
                q.push(" AND c.grid_code LIKE ").push_bind(format!("{p}%"));
            }
            if f.awaiting_approval {
                q.push(
                    " AND e.needs_approval = 1 AND +e.reverses IS NULL \
                     AND NOT EXISTS (SELECT 1 FROM ledger_approvals a WHERE a.entry_id = e.id) \
                     AND NOT EXISTS (SELECT 1 FROM ledger_entries r WHERE r.reverses = e.id)",
                );
            }
            if let Some(b) = before {
                q.push(" AND e.id < ").push_bind(b);
            }
            q.push(" ORDER BY e.id DESC LIMIT ").push_bind(limit + 1);
            let rows = q.build().fetch_all(r).await?;
            let mut items = rows.iter().map(ledger_row).collect::<Result<Vec<_>>>()?;
            let next = if items.len() as i64 > limit {
                items.truncate(limit as usize);
                items.last().map(|e| e.id)
            } else {
                None
            };
            Ok(crate::Page { items, next })
        })
    }

    pub async fn get_ledger_entry(&self, id: i64) -> Result<Option<LedgerRow>> {
        let sql = format!("{ROW_SELECT} AND e.id = $1");
        both!(self, |_w, r, _f| {
            let row = sqlx::query(&sql).bind(id).fetch_optional(r).await?;
            row.as_ref().map(ledger_row).transpose()
        })
    }

    /// Record an approver's decision on a reward that needs one. Refused (conflict) when the
    /// entry does not need approval, is a reversal, is reversed, or was decided already.
    pub async fn decide_approval(
        &self,
        entry_id: i64,
        approved: bool,
        by: i64,
        now: Timestamp,
        note: Option<&str>,
    ) -> Result<()> {
        both!(self, |w, _r, _f| {
            locked_tx!(w, LOCK, |tx| {
                let row: Option<(i64, Option<i64>)> =
                    sqlx::query_as("SELECT needs_approval, reverses FROM ledger_entries WHERE id = $1")
                        .bind(entry_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                let (needs, reverses) = row.ok_or(StoreError::NotFound)?;
                if needs == 0 || reverses.is_some() {
                    return Err(StoreError::Conflict("this entry needs no approval".into()));
                }
                let reversed: Option<i64> = sqlx::query_scalar("SELECT id FROM ledger_entries WHERE reverses = $1")
                    .bind(entry_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                if reversed.is_some() {
                    return Err(StoreError::Conflict("this reward was reversed; nothing to approve".into()));
                }
                let n = sqlx::query(
                    "INSERT INTO ledger_approvals (entry_id, approved, decided_by, decided_at, note) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (entry_id) DO NOTHING",
                )
                .bind(entry_id)
                .bind(approved as i64)
                .bind(by)
                .bind(ms(now))
                .bind(note)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n == 0 {
                    return Err(StoreError::Conflict("this reward was decided already".into()));
                }
            })
        })
    }

    /// Citizen-channel cases changed at or after `since` (all when `None`): what a settlement
    /// reconciles first, so that a crash between a case's commit and its reconciliation can
    /// never lose a reward.
    pub async fn cases_to_reconcile(&self, since: Option<Timestamp>) -> Result<Vec<i64>> {
        // Citizen reports, merged reports, and the cases reports were merged into (a staff
        // report's acceptance can confirm a citizen's problem).
        let sql = "SELECT id FROM cases WHERE (source = 'citizen' OR duplicate_of IS NOT NULL \
                   OR id IN (SELECT duplicate_of FROM cases WHERE duplicate_of IS NOT NULL)) AND updated_at >= $1 \
                   ORDER BY id";
        let since = since.map(ms).unwrap_or(i64::MIN);
        Ok(both!(self, |_w, r, _f| { sqlx::query_scalar(sql).bind(since).fetch_all(r).await? }))
    }

    pub async fn get_settlement(&self, month: &str) -> Result<Option<Settlement>> {
        both!(self, |_w, r, _f| {
            let row: Option<(i64, Option<i64>, String)> =
                sqlx::query_as("SELECT run_at, run_by, data FROM settlements WHERE month = $1")
                    .bind(month)
                    .fetch_optional(r)
                    .await?;
            let Some((run_at, run_by, data)) = row else { return Ok(None) };
            let files: Vec<(String, String)> =
                sqlx::query_as("SELECT name, sha256 FROM settlement_files WHERE month = $1 ORDER BY name")
                    .bind(month)
                    .fetch_all(r)
                    .await?;
            Ok(Some(Settlement {
                month: month.to_owned(),
                run_at: from_ms(run_at)?,
                run_by,
                outcome: parse_json(&data)?,
                files: files.into_iter().collect(),
                created: false,
            }))
        })
    }

    pub async fn list_settlements(&self) -> Result<Vec<Settlement>> {
        let months: Vec<String> = both!(self, |_w, r, _f| {
            sqlx::query_scalar("SELECT month FROM settlements ORDER BY month DESC").fetch_all(r).await?
        });
        let mut out = Vec::new();
        for m in months {
            out.extend(self.get_settlement(&m).await?);
        }
        Ok(out)
    }

    /// One file of a settlement: its bytes as written by the run.
    pub async fn settlement_file(&self, month: &str, name: &str) -> Result<Option<String>> {
        let sql = "SELECT content FROM settlement_files WHERE month = $1 AND name = $2";
        Ok(both!(self, |_w, r, _f| { sqlx::query_scalar(sql).bind(month).bind(name).fetch_optional(r).await? }))
    }

    /// Settle `month`: take every payable unsettled entry up to its end, write the lines, the
    /// totals and the files, and freeze the month. A month settled already is returned as it
    /// was (`created: false`), so a second run pays nobody twice and gives the same files.
    pub async fn settle_month(&self, month: &str, now: Timestamp, by: Option<i64>) -> Result<Settlement> {
        if let Some(done) = self.get_settlement(month).await? {
            return Ok(done);
        }
        let written = both!(self, |w, _r, _f| {
            locked_tx!(w, LOCK, |tx| {
                let done: Option<String> = sqlx::query_scalar("SELECT month FROM settlements WHERE month = $1")
                    .bind(month)
                    .fetch_optional(&mut *tx)
                    .await?;
                if done.is_some() {
                    None
                } else {
                    let rows = sqlx::query(
                        "SELECT e.id, e.kind, e.party_kind, e.party, e.amount_fen, e.month, e.reverses, \
                         e.needs_approval, (SELECT a.approved FROM ledger_approvals a WHERE a.entry_id = e.id) AS approved, \
                         e.case_id, c.number FROM ledger_entries e JOIN cases c ON c.id = e.case_id \
                         WHERE e.month <= $1 AND NOT EXISTS (SELECT 1 FROM settlement_lines s WHERE s.entry_id = e.id) \
                         ORDER BY e.id",
                    )
                    .bind(month)
                    .fetch_all(&mut *tx)
                    .await?;
                    let mut candidates = Vec::with_capacity(rows.len());
                    for row in &rows {
                        let kind: String = row.try_get("kind")?;
                        let pk: String = row.try_get("party_kind")?;
                        candidates.push(Candidate {
                            entry_id: row.try_get("id")?,
                            kind: EntryKind::parse(&kind).ok_or_else(|| corrupt(&kind))?,
                            party_kind: PartyKind::parse(&pk).ok_or_else(|| corrupt(&pk))?,
                            party: row.try_get("party")?,
                            amount_fen: row.try_get("amount_fen")?,
                            month: row.try_get("month")?,
                            reverses: row.try_get("reverses")?,
                            needs_approval: row.try_get::<i64, _>("needs_approval")? != 0,
                            approved: row.try_get::<Option<i64>, _>("approved")?.map(|v| v != 0),
                            case_id: row.try_get("case_id")?,
                            case_number: row.try_get("number")?,
                        });
                    }
                    let originals: Vec<i64> = candidates.iter().filter_map(|c| c.reverses).collect();
                    let mut settled = HashSet::new();
                    if !originals.is_empty() {
                        let sql = format!(
                            "SELECT entry_id FROM settlement_lines WHERE entry_id IN ({})",
                            in_list(originals.len(), 1)
                        );
                        let mut q = sqlx::query_scalar::<_, i64>(&sql);
                        for id in &originals {
                            q = q.bind(*id);
                        }
                        settled.extend(q.fetch_all(&mut *tx).await?);
                    }
                    let payees_rows: Vec<(i64, String, String, Option<String>)> = sqlx::query_as(
                        "SELECT user_id, phone, payout_channel, payout_account FROM citizen_accounts WHERE CAST(user_id AS TEXT) IN \
                         (SELECT party FROM ledger_entries WHERE party_kind = 'citizen' AND month <= $1)",
                    )
                    .bind(month)
                    .fetch_all(&mut *tx)
                    .await?;
                    let mut payees = HashMap::new();
                    for (user, phone, channel, account) in payees_rows {
                        let channel = PayoutChannel::parse(&channel).ok_or_else(|| corrupt(&channel))?;
                        payees.insert(user.to_string(), Payee { channel, phone, account: account.unwrap_or_default() });
                    }
                    let outcome = settlement::settle(month, &candidates, &settled, &payees);
                    let mut stored = outcome.clone();
                    stored.files = BTreeMap::new();
                    sqlx::query("INSERT INTO settlements (month, run_at, run_by, data) VALUES ($1, $2, $3, $4)")
                        .bind(month)
                        .bind(ms(now))
                        .bind(by)
                        .bind(json(&stored)?)
                        .execute(&mut *tx)
                        .await?;
                    for (id, channel) in &outcome.lines {
                        sqlx::query("INSERT INTO settlement_lines (entry_id, month, channel) VALUES ($1, $2, $3)")
                            .bind(*id)
                            .bind(month)
                            .bind(channel.map(|c| c.as_str()))
                            .execute(&mut *tx)
                            .await?;
                    }
                    for (name, content) in &outcome.files {
                        use sha2::Digest;
                        let sha = hex::encode(sha2::Sha256::digest(content.as_bytes()));
                        sqlx::query(
                            "INSERT INTO settlement_files (month, name, content, sha256) VALUES ($1, $2, $3, $4)",
                        )
                        .bind(month)
                        .bind(name)
                        .bind(content)
                        .bind(sha)
                        .execute(&mut *tx)
                        .await?;
                    }
                    Some(())
                }
            })
        })?;
        let mut s = self.get_settlement(month).await?.ok_or_else(|| corrupt("settlement vanished"))?;
        s.created = written.is_some();
        Ok(s)
    }

    /// Net reward fen accrued in `month` (rewards minus their reversals), optionally in a region.
    pub async fn month_rewards_fen(&self, month: &str, region_prefix: Option<&str>) -> Result<i64> {
        let prefix = format!("{}%", region_prefix.unwrap_or(""));
        let sql = "SELECT CAST(COALESCE(SUM(e.amount_fen), 0) AS BIGINT) FROM ledger_entries e JOIN cases c ON c.id = e.case_id \
                   WHERE e.kind = 'reward' AND e.month = $1 AND c.grid_code LIKE $2";
        let v: i64 = both!(self, |_w, r, _f| {
            let v: Option<i64> = sqlx::query_scalar(sql).bind(month).bind(&prefix).fetch_one(r).await?;
            v.unwrap_or(0)
        });
        Ok(v)
    }
}
