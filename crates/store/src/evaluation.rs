//! The evaluation's counts (`eval_counts`): written in the transaction of every case event, read
//! per period, rebuilt from the log.
//!
//! What an event counts for whom is `citygrid_core::evaluation::contributions`; this module only
//! adds those contributions to a day row and a month row per subject, and sums rows for a
//! period. A period is read as at most three ranges: the leading days of a partial month, the
//! whole months, the trailing days — so a year is 12 rows per subject, a month one.

use crate::{both, corrupt, ms, parse_json, Inner, Result, Store, StoreError};
use citygrid_core::case::{Case, Event};
use citygrid_core::evaluation::{contributions, month_key, Contribution, Counter, DayKey, Tally, TallyKind};
use jiff::civil::Date;
use jiff::Timestamp;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

/// One row to add: `tally` to subject (`kind`, `subject`) in `period` (a day or a month key).
pub(crate) struct CountRow {
    pub kind: TallyKind,
    pub period: i32,
    pub subject: String,
    pub tally: Tally,
}

/// The day rows and month rows that `contributions` add to.
pub(crate) fn count_rows(contributions: &[Contribution]) -> Vec<CountRow> {
    let mut rows: BTreeMap<(TallyKind, i32, &str), Tally> = BTreeMap::new();
    for c in contributions {
        for period in [c.day, month_key(c.day)] {
            rows.entry((c.kind, period, c.id.as_str())).or_default().add(c.counter, c.delta);
        }
    }
    rows.into_iter()
        .filter(|(_, t)| !t.is_zero())
        .map(|((kind, period, subject), tally)| CountRow { kind, period, subject: subject.to_owned(), tally })
        .collect()
}

/// Rows with the same subject and period summed into one (what one statement needs).
pub(crate) fn merge_rows(rows: Vec<CountRow>) -> Vec<CountRow> {
    let mut sums: BTreeMap<(TallyKind, i32, String), Tally> = BTreeMap::new();
    for r in rows {
        match sums.get_mut(&(r.kind, r.period, r.subject.clone())) {
            Some(t) => t.merge(&r.tally),
            None => {
                sums.insert((r.kind, r.period, r.subject), r.tally);
            }
        }
    }
    sums.into_iter()
        .filter(|(_, t)| !t.is_zero())
        .map(|((kind, period, subject), tally)| CountRow { kind, period, subject, tally })
        .collect()
}

/// Rows per statement: 500 × 34 parameters stays under SQLite's 32,766 and PostgreSQL's 65,535.
pub(crate) const ROWS_PER_STATEMENT: usize = 500;

/// How each engine stamps the counts rows a transaction changes (migration 0011): SQLite takes
/// the next value of its one-row clock (one writer, so stamps follow commit order), and readers
/// find changed rows by it; PostgreSQL writes the transaction id, and readers find changed rows
/// by the journal of migration 0013, keyed by the same ids, compared with their snapshot (the
/// transactions it saw running and the first it did not know).
pub(crate) trait CountsEngine {
    /// Run once per counting transaction before its rows are written, if the engine needs it.
    const BUMP: Option<&'static str>;
    /// The stamp of the rows, as an SQL expression.
    const STAMP: &'static str;
    /// In a reader's statement, two columns: the watermark of what it sees — every change it did
    /// not see has a stamp at or above the first, or one of the stamps listed (comma-separated)
    /// in the second.
    const WATERMARK: &'static str;
}

impl CountsEngine for sqlx::SqliteConnection {
    const BUMP: Option<&'static str> = Some("UPDATE eval_clock SET stamp = stamp + 1");
    const STAMP: &'static str = "(SELECT stamp FROM eval_clock)";
    const WATERMARK: &'static str = "(SELECT stamp + 1 FROM eval_clock), ''";
}

/// Readers of this version find what changed by the journal of migration 0013 (`eval_changes`,
/// written by statement triggers for every writer, keyed by the transaction id); the rows'
/// stamp is still written because a server of the version before reads it during a rolling
/// upgrade.
impl CountsEngine for sqlx::PgConnection {
    const BUMP: Option<&'static str> = None;
    const STAMP: &'static str = "pg_current_xact_id()::text::bigint";
    // Not just the oldest running transaction (`pg_snapshot_xmin`): one idle transaction
    // anywhere in the cluster would then make every read re-read everything written since.
    const WATERMARK: &'static str = "pg_snapshot_xmax(pg_current_snapshot())::text::bigint, \
        COALESCE((SELECT string_agg(x::text, ',') FROM pg_snapshot_xip(pg_current_snapshot()) AS x), '')";
}

/// The [`CountsEngine`] statements of a connection (`&*tx` of a transaction).
pub(crate) fn engine_sql<C: CountsEngine>(_: &C) -> (Option<&'static str>, &'static str) {
    (C::BUMP, C::STAMP)
}

/// `INSERT … VALUES (…), (…) ON CONFLICT DO UPDATE SET c = c + excluded.c` for `n` rows over
/// every counter column, stamping each row with `stamp` (an SQL expression). The rows of one
/// statement must have distinct keys (PostgreSQL refuses to update a row twice in one
/// statement): `count_rows` groups them so.
pub(crate) fn upsert_sql(n: usize, stamp: &str) -> String {
    static PARTS: OnceLock<(String, String)> = OnceLock::new();
    let (head, tail) = PARTS.get_or_init(|| {
        let cols: Vec<String> = Counter::ALL.iter().map(|c| format!("c_{}", c.as_str())).collect();
        let sets: Vec<String> = cols.iter().map(|c| format!("{c} = eval_counts.{c} + excluded.{c}")).collect();
        (
            format!("INSERT INTO eval_counts (kind, period, subject, {}, stamp) VALUES ", cols.join(", ")),
            format!(" ON CONFLICT (kind, period, subject) DO UPDATE SET {}, stamp = excluded.stamp", sets.join(", ")),
        )
    });
    let width = 3 + Counter::ALL.len();
    let rows: Vec<String> = (0..n)
        .map(|r| {
            let params: Vec<String> = (1..=width).map(|i| format!("${}", r * width + i)).collect();
            format!("({}, {stamp})", params.join(", "))
        })
        .collect();
    format!("{head}{}{tail}", rows.join(", "))
}

/// Add `$rows` (`&[CountRow]`) to `eval_counts` on the connection or transaction `$c`: one
/// statement per [`ROWS_PER_STATEMENT`] rows (an event's rows are one round trip), after the
/// engine's stamp bump.
macro_rules! add_counts {
    ($c:ident, $rows:expr) => {{
        let rows: &[$crate::evaluation::CountRow] = $rows;
        let (bump, stamp) = $crate::evaluation::engine_sql(&*$c);
        if !rows.is_empty() {
            if let Some(bump) = bump {
                sqlx::query(bump).execute(&mut *$c).await?;
            }
        }
        for chunk in rows.chunks($crate::evaluation::ROWS_PER_STATEMENT) {
            let sql = $crate::evaluation::upsert_sql(chunk.len(), stamp);
            let mut q = sqlx::query(&sql);
            for row in chunk {
                q = q.bind(row.kind.as_str()).bind(row.period).bind(&row.subject);
                for v in &row.tally.0 {
                    q = q.bind(*v);
                }
            }
            q.execute(&mut *$c).await?;
        }
    }};
}
pub(crate) use add_counts;

/// What one event of a case adds, as rows.
pub(crate) fn event_rows(before: Option<&Case>, after: &Case, event: &Event, offset_minutes: i32) -> Vec<CountRow> {
    count_rows(&contributions(before, after, event, offset_minutes))
}

fn key(d: Date) -> DayKey {
    i32::from(d.year()) * 10_000 + i32::from(d.month()) * 100 + i32::from(d.day())
}

/// `[from, to]` (inclusive days) as period ranges: (day range, month range, day range); an
/// empty range is `(1, 0)`.
pub fn period_ranges(from: Date, to: Date) -> [(i32, i32); 3] {
    const EMPTY: (i32, i32) = (1, 0);
    if from > to {
        return [EMPTY; 3];
    }
    let first_of = |d: Date| d.first_of_month();
    let last_of = |d: Date| d.last_of_month();
    if first_of(from) == first_of(to) && !(from == first_of(from) && to == last_of(to)) {
        return [(key(from), key(to)), EMPTY, EMPTY];
    }
    // Leading partial month, whole months, trailing partial month.
    let lead = if from == first_of(from) { EMPTY } else { (key(from), key(last_of(from))) };
    let first_whole = if from == first_of(from) { from } else { last_of(from).tomorrow().unwrap_or(from) };
    let trail = if to == last_of(to) { EMPTY } else { (key(first_of(to)), key(to)) };
    let last_whole = if to == last_of(to) { to } else { first_of(to).yesterday().unwrap_or(to) };
    let months =
        if first_whole <= last_whole { (month_key(key(first_whole)), month_key(key(last_whole))) } else { EMPTY };
    [lead, months, trail]
}

/// Every period key of `lo..=hi`: the days of a day range (yyyymmdd), the months of a month
/// range (yyyymm) — not every integer between (202613 is no month).
fn period_keys(lo: i32, hi: i32) -> Vec<i32> {
    let days = lo > 999_999;
    let first = if days { lo } else { lo * 100 + 1 };
    let start = Date::new((first / 10_000) as i16, (first / 100 % 100) as i8, (first % 100) as i8);
    let step = if days { jiff::Span::new().days(1) } else { jiff::Span::new().months(1) };
    match start {
        Ok(start) => {
            start.series(step).map(|d| if days { key(d) } else { month_key(key(d)) }).take_while(|k| *k <= hi).collect()
        }
        // (Keys come from `period_ranges`; every integer is a superset that stays correct.)
        Err(_) => (lo..=hi).collect(),
    }
}

/// The local midnight starting `d`, as a timestamp, at `offset_minutes` east of UTC.
fn local_midnight(d: Date, offset_minutes: i32) -> Result<Timestamp> {
    let off = jiff::tz::Offset::from_seconds(offset_minutes * 60).map_err(corrupt)?;
    off.to_timestamp(d.to_datetime(jiff::civil::Time::midnight())).map_err(corrupt)
}

/// A drill-down page: the cases behind one counter of one subject in a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CasesBehind {
    /// (case id, what the case adds to the counter in the period).
    pub cases: Vec<(i64, i64)>,
    /// The cursor of the next page (`after`), when there may be more.
    pub next: Option<i64>,
}

/// A period's counts per subject (subjects with nothing counted left out).
pub type PeriodCounts = Arc<HashMap<String, Tally>>;

/// The text the counts reads return: `subject:c1,c2,…` per subject, joined by `;`. A city's
/// grids are 20,000 rows of 31 counters; fetched row by row and value by value through the
/// driver they cost far more than the read itself.
///
/// Each read returns, from the same snapshot: the generation, the watermark, the journal floor
/// (PostgreSQL: below it the journal was pruned; SQLite: 0) and the text. A delta read (`$4`,
/// `$5`: a watermark) returns only the subjects changed since: SQLite finds them by the stamps
/// of the period's rows, PostgreSQL by the journal of changes (migration 0013).
fn counts_sql(sqlite: bool, delta: bool) -> &'static str {
    static SQL: OnceLock<[String; 4]> = OnceLock::new();
    let all = SQL.get_or_init(|| {
        let line: Vec<String> = Counter::ALL.iter().map(|c| format!("CAST(SUM(c_{}) AS TEXT)", c.as_str())).collect();
        let make = |sqlite: bool, delta: bool| {
            let (concat, watermark, journal_floor) = if sqlite {
                ("group_concat", <sqlx::SqliteConnection as CountsEngine>::WATERMARK, "0")
            } else {
                (
                    "string_agg",
                    <sqlx::PgConnection as CountsEngine>::WATERMARK,
                    "(SELECT journal_floor FROM eval_clock)",
                )
            };
            let rows = match (sqlite, delta) {
                (_, false) => "period BETWEEN $2 AND $3",
                // ($5 is PostgreSQL's list of running transactions; always empty here.)
                (true, true) => {
                    "period BETWEEN $2 AND $3 AND subject IN (SELECT subject FROM eval_counts \
                     WHERE kind = $1 AND period BETWEEN $2 AND $3 AND stamp >= $4) AND $5 = ''"
                }
                // One index probe per (period, changed subject): arrays (`$6` every day or
                // month key of the range), not `IN (…)` or a range, so the plan does not depend
                // on the statistics of the journal.
                // (The journal is not walked when the generation moved: the caller reads whole.)
                (false, true) => {
                    "period = ANY($6) \
                     AND subject = ANY(ARRAY(SELECT DISTINCT split_part(k, '|', 3) \
                     FROM eval_changes, unnest(keys) AS k \
                     WHERE (xid >= $4 OR xid = ANY(string_to_array(NULLIF($5, ''), ',')::bigint[])) \
                     AND (SELECT generation FROM eval_clock) = $7 \
                     AND split_part(k, '|', 1) = $1 AND split_part(k, '|', 2)::integer BETWEEN $2 AND $3))"
                }
            };
            // The changed subjects are summed whole again (their other days may be in the
            // range too); one statement, so one snapshot for the rows and the watermark.
            format!(
                "SELECT (SELECT generation FROM eval_clock), {watermark}, {journal_floor}, {concat}(line, ';') FROM \
                 (SELECT subject || ':' || {} AS line FROM eval_counts \
                 WHERE kind = $1 AND {rows} GROUP BY subject) AS t",
                line.join(" || ',' || ")
            )
        };
        [make(true, false), make(true, true), make(false, false), make(false, true)]
    });
    &all[usize::from(!sqlite) * 2 + usize::from(delta)]
}

/// Set the subjects of `text` (`subject:c1,c2,…;…`) in `into`; a subject summing to nothing
/// leaves it.
fn apply_lines(into: &mut HashMap<String, Tally>, text: &str) -> Result<()> {
    for item in text.split(';').filter(|i| !i.is_empty()) {
        let (subject, values) = item.split_once(':').ok_or_else(|| corrupt("evaluation counts line"))?;
        let mut t = Tally::default();
        for (c, v) in Counter::ALL.iter().zip(values.split(',')) {
            t.add(*c, v.parse::<i64>().map_err(corrupt)?);
        }
        if t.is_zero() {
            into.remove(subject);
        } else {
            into.insert(subject.to_owned(), t);
        }
    }
    Ok(())
}

/// One period part's counts as a snapshot had them: `generation` (moves at a rebuild) and
/// `watermark` (see [`CountsEngine::WATERMARK`]) say how to refresh them; `version` names this
/// reading, and `log` what changed between the last few (so a reader of an earlier version
/// learns which subjects to look at again instead of comparing them all).
#[derive(Clone)]
struct KeptPart {
    generation: i64,
    watermark: (i64, String),
    tallies: PeriodCounts,
    version: u64,
    /// (an earlier version, the subjects changed from it to the next one), oldest first.
    log: std::collections::VecDeque<(u64, Arc<Vec<String>>)>,
    used: u64,
}

/// Versions of a part remembered in its log.
const LOG_VERSIONS: usize = 32;

impl KeptPart {
    fn parse(generation: i64, watermark: (i64, String), text: Option<&str>, version: u64) -> Result<KeptPart> {
        let mut tallies = HashMap::new();
        apply_lines(&mut tallies, text.unwrap_or(""))?;
        let log = Default::default();
        Ok(KeptPart { generation, watermark, tallies: Arc::new(tallies), version, log, used: 0 })
    }

    /// The subjects that may differ between reading `since` and this one; `None` when `since`
    /// is not one of the versions remembered.
    fn changed_since(&self, since: u64) -> Option<HashSet<String>> {
        let mut changed = HashSet::new();
        if since == self.version {
            return Some(changed);
        }
        for (from, subjects) in self.log.iter().rev() {
            changed.extend(subjects.iter().cloned());
            if *from == since {
                return Some(changed);
            }
        }
        None
    }
}

/// The period parts kept in memory, least recently used dropped first beyond
/// [`KEPT_SUBJECTS`] subjects (about 300 bytes each).
#[derive(Default)]
pub(crate) struct KeptCounts {
    parts: Mutex<HashMap<(TallyKind, i32, i32), KeptPart>>,
    tick: std::sync::atomic::AtomicU64,
}

/// Subjects kept over all parts: a city's grids for a dozen periods.
const KEPT_SUBJECTS: usize = 300_000;

/// Which reading of a period's counts (one version per part): compare two with
/// [`Store::evaluation_counts_since`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CountsVersion(Vec<u64>);

/// A period's counts and what changed since an earlier reading.
pub struct CountsRead {
    pub counts: PeriodCounts,
    pub version: CountsVersion,
    /// The subjects whose counts may differ from the reading asked about (a superset: a row
    /// rewritten to the same sums is listed); `None` when that reading is not known any more.
    pub changed: Option<HashSet<String>>,
}

impl KeptCounts {
    fn get(&self, key: &(TallyKind, i32, i32)) -> Option<KeptPart> {
        self.parts.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned()
    }

    /// Unique in the process (not only in this handle): a version shown to another handle
    /// matches none of its own.
    fn next_version(&self) -> u64 {
        static VERSIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        VERSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
    }

    fn take(&self, key: &(TallyKind, i32, i32)) -> Option<KeptPart> {
        self.parts.lock().unwrap_or_else(|e| e.into_inner()).remove(key)
    }

    fn put(&self, key: (TallyKind, i32, i32), mut part: KeptPart) {
        part.used = self.tick.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut parts = self.parts.lock().unwrap_or_else(|e| e.into_inner());
        // A concurrent refresh may have put a part seen later: keep that one.
        if parts.get(&key).is_some_and(|p| p.generation == part.generation && p.watermark.0 > part.watermark.0) {
            return;
        }
        parts.insert(key, part);
        while parts.values().map(|p| p.tallies.len()).sum::<usize>() > KEPT_SUBJECTS && parts.len() > 1 {
            let Some(oldest) = parts.iter().filter(|(k, _)| **k != key).min_by_key(|(_, p)| p.used).map(|(k, _)| *k)
            else {
                break;
            };
            parts.remove(&oldest);
        }
    }

    /// Forget every part (the rows were rewritten by this process).
    pub(crate) fn clear(&self) {
        self.parts.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

impl Store {
    /// The city's offset from UTC in minutes: which local day an event counts on.
    pub fn utc_offset_minutes(&self) -> i32 {
        self.offset.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Set the city's offset (from the working calendar) before cases are written.
    pub fn set_utc_offset_minutes(&self, minutes: i32) {
        self.offset.store(minutes, std::sync::atomic::Ordering::Relaxed);
    }

    /// Every subject of `kind` with its counters summed over the days `from..=to`; only
    /// subjects whose id starts with `prefix` when one is given (regions under a region).
    pub async fn evaluation_tallies(
        &self,
        kind: TallyKind,
        from: Date,
        to: Date,
        prefix: Option<&str>,
    ) -> Result<Vec<(String, Tally)>> {
        let counts = self.evaluation_counts(kind, from, to).await?;
        let mut out: Vec<(String, Tally)> = counts
            .iter()
            .filter(|(id, _)| prefix.is_none_or(|p| id.starts_with(p)))
            .map(|(id, t)| (id.clone(), t.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Every subject of `kind` with its counters summed over the days `from..=to` (subjects
    /// with nothing counted left out), as the database has them now.
    ///
    /// A period is at most three parts (leading days, whole months, trailing days), each kept
    /// in memory after its first read; later reads fetch only the subjects whose rows changed
    /// since (SQLite: by the stamp each row carries, migration 0011; PostgreSQL: by the journal
    /// of changes, migration 0013), so asking again for a month of 20,000 grids costs what
    /// changed, not their 31 counters each.
    pub async fn evaluation_counts(&self, kind: TallyKind, from: Date, to: Date) -> Result<PeriodCounts> {
        Ok(self.evaluation_counts_since(kind, from, to, None).await?.counts)
    }

    /// [`Store::evaluation_counts`], with its version and the subjects changed since the
    /// reading `since` (of the same kind and days) when this handle still knows it.
    pub async fn evaluation_counts_since(
        &self,
        kind: TallyKind,
        from: Date,
        to: Date,
        since: Option<&CountsVersion>,
    ) -> Result<CountsRead> {
        let ranges: Vec<(i32, i32)> = period_ranges(from, to).into_iter().filter(|(lo, hi)| lo <= hi).collect();
        let since = since.filter(|v| v.0.len() == ranges.len());
        let mut parts = Vec::new();
        let mut version = Vec::new();
        let mut changed = since.map(|_| HashSet::new());
        for (i, (lo, hi)) in ranges.into_iter().enumerate() {
            let (counts, v, c) = self.counts_part(kind, lo, hi, since.map(|s| s.0[i])).await?;
            parts.push(counts);
            version.push(v);
            changed = match (changed, c) {
                (Some(mut all), Some(c)) => {
                    all.extend(c);
                    Some(all)
                }
                _ => None,
            };
        }
        let counts = match parts.len() {
            0 => PeriodCounts::default(),
            1 => parts.pop().unwrap_or_default(),
            _ => {
                let mut sum: HashMap<String, Tally> = HashMap::new();
                for part in &parts {
                    for (id, t) in part.iter() {
                        match sum.get_mut(id) {
                            Some(s) => s.merge(t),
                            None => {
                                sum.insert(id.clone(), t.clone());
                            }
                        }
                    }
                }
                sum.retain(|_, t| !t.is_zero());
                std::sync::Arc::new(sum)
            }
        };
        Ok(CountsRead { counts, version: CountsVersion(version), changed })
    }

    /// One part's counts (`period` in `lo..=hi`), from memory refreshed by what changed since;
    /// with its version and what changed since version `since`.
    async fn counts_part(
        &self,
        kind: TallyKind,
        lo: i32,
        hi: i32,
        since: Option<u64>,
    ) -> Result<(PeriodCounts, u64, Option<HashSet<String>>)> {
        let key = (kind, lo, hi);
        let kept = self.kept.get(&key);
        let read = |since: Option<(i64, String, i64)>| async move {
            let row: (i64, i64, String, i64, Option<String>) = match &*self.inner {
                Inner::Sqlite(p) => {
                    let q = sqlx::query_as(counts_sql(true, since.is_some())).bind(kind.as_str()).bind(lo).bind(hi);
                    match since {
                        Some((floor, running, _)) => q.bind(floor).bind(running).fetch_one(&p.read).await?,
                        None => q.fetch_one(&p.read).await?,
                    }
                }
                Inner::Postgres(p) => {
                    let q = sqlx::query_as(counts_sql(false, since.is_some())).bind(kind.as_str()).bind(lo).bind(hi);
                    match since {
                        Some((floor, running, generation)) => {
                            let q = q.bind(floor).bind(running).bind(period_keys(lo, hi)).bind(generation);
                            q.fetch_one(&p.pool).await?
                        }
                        None => q.fetch_one(&p.pool).await?,
                    }
                }
            };
            let (generation, floor, running, journal_floor, text) = row;
            Ok::<_, StoreError>((generation, (floor, running), journal_floor, text))
        };
        let whole = || async {
            let (generation, watermark, _, text) = read(None).await?;
            KeptPart::parse(generation, watermark, text.as_deref(), self.kept.next_version())
        };
        let fresh = match kept {
            Some(mut k) => {
                let since = (k.watermark.0, k.watermark.1.clone(), k.generation);
                let (generation, watermark, journal_floor, text) = read(Some(since)).await?;
                // The oldest transaction whose changes the last reading may not have seen.
                let needed =
                    k.watermark.1.split(',').filter_map(|x| x.parse::<i64>().ok()).fold(k.watermark.0, i64::min);
                if generation == k.generation && needed >= journal_floor {
                    if let Some(text) = text.filter(|t| !t.is_empty()) {
                        // Out of the cache while it changes, so it changes in place instead of
                        // copying 20,000 subjects (a reader meanwhile reads the part whole).
                        drop(self.kept.take(&key));
                        apply_lines(Arc::make_mut(&mut k.tallies), &text)?;
                        let subjects = text.split(';').filter_map(|l| l.split_once(':')).map(|(s, _)| s.to_owned());
                        k.log.push_back((k.version, Arc::new(subjects.collect())));
                        if k.log.len() > LOG_VERSIONS {
                            k.log.pop_front();
                        }
                        k.version = self.kept.next_version();
                    }
                    k.watermark = watermark;
                    k
                } else {
                    // Rows were deleted or rewritten (a rebuild), or the journal of what
                    // changed since was pruned: read the part whole.
                    whole().await?
                }
            }
            None => whole().await?,
        };
        let out = (fresh.tallies.clone(), fresh.version, since.and_then(|v| fresh.changed_since(v)));
        self.kept.put(key, fresh);
        Ok(out)
    }

    /// Forget the journal of counts changes (PostgreSQL, migration 0013) older than `keep`: a
    /// reader that kept counts since before then reads them whole next time. Returns the rows
    /// pruned. SQLite keeps no journal (its rows carry their stamps): nothing to do.
    pub async fn prune_evaluation_journal(&self, keep: std::time::Duration) -> Result<u64> {
        let Inner::Postgres(p) = &*self.inner else { return Ok(0) };
        // Only below the oldest transaction still running: a reader keeps that one in its list
        // (it may still commit changes), and must not find the floor above it.
        let sql = "WITH gone AS (DELETE FROM eval_changes \
                   WHERE at < now() - $1 * interval '1 millisecond' \
                   AND xid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint RETURNING xid), \
                   floor AS (UPDATE eval_clock SET journal_floor = \
                   GREATEST(journal_floor, (SELECT max(xid) + 1 FROM gone)) WHERE EXISTS (SELECT 1 FROM gone)) \
                   SELECT count(*) FROM gone";
        let n: i64 = sqlx::query_scalar(sql).bind(keep.as_millis() as f64).fetch_one(&p.pool).await?;
        Ok(n as u64)
    }

    /// The counts recomputed from the event log for the days `from..=to`: every case with an
    /// event in the period or due in it is replayed and its contributions in the period summed.
    /// A contribution dated by an earlier event of its case (a return charged on the dispatch
    /// day) is found by that event; one dated by the due date, by `cases.due_at`.
    /// Must equal [`Store::evaluation_tallies`] for every subject (tested).
    pub async fn evaluation_from_log(&self, from: Date, to: Date) -> Result<HashMap<(TallyKind, String), Tally>> {
        let offset = self.utc_offset_minutes();
        let (lo, hi) = (key(from), key(to));
        let ids = self.cases_touching(from, to, None).await?;
        let mut out: HashMap<(TallyKind, String), Tally> = HashMap::new();
        for chunk in ids.chunks(500) {
            for (id, events) in self.logs_of(chunk).await? {
                fold_log(id, &events, offset, |c| {
                    if (lo..=hi).contains(&c.day) {
                        out.entry((c.kind, c.id.clone())).or_default().add(c.counter, c.delta);
                    }
                })?;
            }
        }
        out.retain(|_, t| !t.is_zero());
        Ok(out)
    }

    /// Ids of the cases whose contributions may fall in `from..=to`: an event in the period, or
    /// the due date in it (a due-dated fact whose events are all earlier or later — the due
    /// date of a case returned late stays where it was, however far its deadline moved).
    /// Every other contribution is dated by an event of its case (its own, or the report,
    /// filing or dispatch it judges). With `grid_prefix`, only cases of that region.
    async fn cases_touching(&self, from: Date, to: Date, grid_prefix: Option<&str>) -> Result<Vec<i64>> {
        let offset = self.utc_offset_minutes();
        let start = ms(local_midnight(from, offset)?);
        let end = ms(local_midnight(to.tomorrow().map_err(corrupt)?, offset)?);
        let like = format!("{}%", grid_prefix.unwrap_or("").replace(['%', '_'], ""));
        let sql = "SELECT e.case_id FROM case_events e JOIN cases c ON c.id = e.case_id \
                   WHERE e.at >= $1 AND e.at < $2 AND c.grid_code LIKE $3 \
                   UNION SELECT id FROM cases WHERE due_at >= $1 AND due_at < $2 AND grid_code LIKE $3 \
                   ORDER BY 1";
        let ids: Vec<i64> =
            both!(self, |_w, r, _f| { sqlx::query_scalar(sql).bind(start).bind(end).bind(&like).fetch_all(r).await? });
        Ok(ids)
    }

    /// The logs of `ids`, oldest event first.
    async fn logs_of(&self, ids: &[i64]) -> Result<BTreeMap<i64, Vec<Event>>> {
        if ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        let sql = format!("SELECT case_id, data FROM case_events WHERE case_id IN ({list}) ORDER BY case_id, seq");
        let rows: Vec<(i64, String)> = both!(self, |_w, r, _f| { sqlx::query_as(&sql).fetch_all(r).await? });
        let mut logs: BTreeMap<i64, Vec<Event>> = BTreeMap::new();
        for (id, data) in rows {
            logs.entry(id).or_default().push(parse_json(&data)?);
        }
        Ok(logs)
    }

    /// The cases behind one counter of one subject in `from..=to`, in case id order after
    /// `after`, at most `limit`: the drill-down from a figure.
    pub async fn evaluation_cases(
        &self,
        kind: TallyKind,
        subject: &str,
        counter: Counter,
        period: (Date, Date),
        after: i64,
        limit: usize,
    ) -> Result<CasesBehind> {
        self.evaluation_cases_of(kind, &[subject], counter, period, after, limit).await
    }

    /// [`Store::evaluation_cases`] for several subjects of one kind together (the grids of a
    /// collector's area): a case is listed once, with what it adds to all of them.
    pub async fn evaluation_cases_of(
        &self,
        kind: TallyKind,
        subjects: &[&str],
        counter: Counter,
        (from, to): (Date, Date),
        after: i64,
        limit: usize,
    ) -> Result<CasesBehind> {
        let offset = self.utc_offset_minutes();
        let (lo, hi) = (key(from), key(to));
        let region = matches!(kind, TallyKind::Grid | TallyKind::Community | TallyKind::Street | TallyKind::District);
        let narrow = match subjects {
            [one] if region => Some(*one),
            _ => None,
        };
        let ids = self.cases_touching(from, to, narrow).await?;
        let subjects: std::collections::HashSet<&str> = subjects.iter().copied().collect();
        let mut cases = Vec::new();
        let pending: Vec<i64> = ids.into_iter().filter(|id| *id > after).collect();
        for chunk in pending.chunks(500) {
            for (id, events) in self.logs_of(chunk).await? {
                let mut n = 0;
                fold_log(id, &events, offset, |c| {
                    if c.kind == kind
                        && c.counter == counter
                        && subjects.contains(c.id.as_str())
                        && (lo..=hi).contains(&c.day)
                    {
                        n += c.delta;
                    }
                })?;
                if n != 0 {
                    cases.push((id, n));
                    if cases.len() == limit {
                        return Ok(CasesBehind { next: Some(id), cases });
                    }
                }
            }
        }
        Ok(CasesBehind { cases, next: None })
    }

    /// Recompute `eval_counts` from the whole event log, in one transaction; returns the
    /// events folded. Case writes wait meanwhile (SQLite: the one writer; PostgreSQL: the
    /// table lock), so no event is counted twice or missed.
    pub async fn rebuild_evaluation(&self, progress: &(dyn Fn(u64) + Sync)) -> Result<u64> {
        Ok(self.recount(false, progress).await?.events)
    }

    /// The one-time upgrade after the counting rules or the case row changed: every case row
    /// rewritten from its replayed log where it differs (rows of older versions lack fields the
    /// projection now keeps, such as `due_at`, `filed_at`, `dispatched_at`, `rework_of`, and the `due_at`
    /// column), and `eval_counts` recomputed from the log — in one transaction, so an
    /// interrupted upgrade leaves the database as it was and runs again. Cases without a log
    /// (a bench database's synthetic history) are left alone.
    pub async fn upgrade_cases_and_counts(&self, progress: &(dyn Fn(u64) + Sync)) -> Result<Recount> {
        self.recount(true, progress).await
    }

    async fn recount(&self, rewrite_rows: bool, progress: &(dyn Fn(u64) + Sync)) -> Result<Recount> {
        let offset = self.utc_offset_minutes();
        const CASES_PER_READ: i64 = 2_000;
        const FLUSH_ROWS: usize = 100_000;
        macro_rules! recount_on {
            ($tx:ident, $locks:expr) => {{
                for lock in $locks {
                    sqlx::query(lock).execute(&mut *$tx).await?;
                }
                sqlx::query("DELETE FROM eval_counts").execute(&mut *$tx).await?;
                // Every kept copy of the counts, in any process, is read again.
                sqlx::query("UPDATE eval_clock SET generation = generation + 1").execute(&mut *$tx).await?;
                let max: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM cases").fetch_one(&mut *$tx).await?;
                let mut acc: BTreeMap<(TallyKind, i32, String), Tally> = BTreeMap::new();
                let mut done = Recount::default();
                let mut lo = 0i64;
                while lo <= max.unwrap_or(0) {
                    let rows: Vec<(i64, String)> = sqlx::query_as(
                        "SELECT case_id, data FROM case_events WHERE case_id >= $1 AND case_id < $2 \
                         ORDER BY case_id, seq",
                    )
                    .bind(lo)
                    .bind(lo + CASES_PER_READ)
                    .fetch_all(&mut *$tx)
                    .await?;
                    let stored: HashMap<i64, (String, Option<i64>)> = if rewrite_rows {
                        let rows: Vec<(i64, String, Option<i64>)> =
                            sqlx::query_as("SELECT id, data, due_at FROM cases WHERE id >= $1 AND id < $2")
                                .bind(lo)
                                .bind(lo + CASES_PER_READ)
                                .fetch_all(&mut *$tx)
                                .await?;
                        rows.into_iter().map(|(id, data, due)| (id, (data, due))).collect()
                    } else {
                        HashMap::new()
                    };
                    let mut start = 0;
                    while start < rows.len() {
                        let id = rows[start].0;
                        let end = rows[start..].iter().position(|r| r.0 != id).map_or(rows.len(), |p| start + p);
                        let events =
                            rows[start..end].iter().map(|(_, d)| parse_json::<Event>(d)).collect::<Result<Vec<_>>>()?;
                        let replayed = fold_log(id, &events, offset, |c| {
                            for period in [c.day, month_key(c.day)] {
                                acc.entry((c.kind, period, c.id.clone())).or_default().add(c.counter, c.delta);
                            }
                        })?;
                        if let (Some(case), Some((data, due_column))) = (&replayed, stored.get(&id)) {
                            let row: Case = parse_json(data)?;
                            if row != *case || *due_column != case.due_at.map(ms) {
                                if drifted(&row, case) {
                                    done.rows_drifted += 1;
                                    tracing::warn!(case = id, "case row differed from its log; rewritten from the log");
                                }
                                crate::bind_case_row!(sqlx::query(crate::update_case_sql!()), case)
                                    .bind(id)
                                    .execute(&mut *$tx)
                                    .await?;
                                done.rows_rewritten += 1;
                            }
                        }
                        done.events += (end - start) as u64;
                        start = end;
                    }
                    if acc.len() >= FLUSH_ROWS {
                        let rows: Vec<CountRow> = std::mem::take(&mut acc)
                            .into_iter()
                            .filter(|(_, t)| !t.is_zero())
                            .map(|((kind, period, subject), tally)| CountRow { kind, period, subject, tally })
                            .collect();
                        add_counts!($tx, &rows);
                    }
                    progress(done.events);
                    lo += CASES_PER_READ;
                }
                let rows: Vec<CountRow> = acc
                    .into_iter()
                    .filter(|(_, t)| !t.is_zero())
                    .map(|((kind, period, subject), tally)| CountRow { kind, period, subject, tally })
                    .collect();
                add_counts!($tx, &rows);
                done
            }};
        }
        match &*self.inner {
            Inner::Sqlite(p) => {
                let mut conn = p.write.acquire().await?;
                let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                let done = recount_on!(tx, [] as [&str; 0]);
                tx.commit().await?;
                self.kept.clear();
                Ok(done)
            }
            Inner::Postgres(p) => {
                let mut tx = p.pool.begin().await?;
                // Case writes lock their row, then add counts: the cases first (when rows are
                // rewritten), then the counts, in that order, so the two never wait on each other.
                let locks: &[&str] = if rewrite_rows {
                    &["LOCK TABLE cases IN EXCLUSIVE MODE", "LOCK TABLE eval_counts IN EXCLUSIVE MODE"]
                } else {
                    &["LOCK TABLE eval_counts IN EXCLUSIVE MODE"]
                };
                let done = recount_on!(tx, locks.iter().copied());
                // Every row was rewritten and the generation moved (the delete's trigger): no
                // reader needs its journal, and thousands of keys would only slow their reads.
                sqlx::query("DELETE FROM eval_changes WHERE xid = pg_current_xact_id()::text::bigint")
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                self.kept.clear();
                Ok(done)
            }
        }
    }
}

/// What a recount did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recount {
    /// Events folded.
    pub events: u64,
    /// Case rows rewritten from their logs (the upgrade only).
    pub rows_rewritten: u64,
    /// Of those, rows that differed in more than the fields a newer projection adds (what
    /// `citygrid audit` would have reported before the upgrade).
    pub rows_drifted: u64,
}

/// Whether a stored row differs from its replay in more than what the projection of this
/// version keeps and older rows lack (filer and dispatcher, their times, what a rework judged,
/// the due date).
fn drifted(row: &Case, replayed: &Case) -> bool {
    let mut upgraded = row.clone();
    upgraded.filed_by = replayed.filed_by;
    upgraded.dispatched_by = replayed.dispatched_by;
    upgraded.filed_at = replayed.filed_at;
    upgraded.dispatched_at = replayed.dispatched_at;
    upgraded.rework_of = replayed.rework_of;
    upgraded.due_at = replayed.due_at;
    upgraded.due_department_id = replayed.due_department_id;
    upgraded != *replayed
}

impl Store {
    /// For `citygrid bench evaluate`: the evaluation counts of the synthetic historical cases of
    /// [`Store::bench_fill_cases`] (which have no events to count from), aggregated straight from
    /// their rows — reported, filed, citizen reports, dispatched, closed, closed and due by the
    /// deadline — per region level, department and reporting collector, per day and month, so the
    /// table has the size a city's years of history give it. A bench database only: these rows
    /// are not what a rebuild would find (there is no log behind them). Returns rows written.
    pub async fn bench_fill_evaluation(&self) -> Result<u64> {
        let sqlite = self.backend() == "sqlite";
        let day = if sqlite {
            "CAST(strftime('%Y%m%d', created_at / 1000 + 28800, 'unixepoch') AS INTEGER)"
        } else {
            "CAST(to_char(to_timestamp(created_at / 1000.0 + 28800) AT TIME ZONE 'UTC', 'YYYYMMDD') AS INTEGER)"
        };
        let filed = "state NOT IN ('reported', 'verifying', 'accepted', 'rejected', 'refused', 'voided')";
        let subjects = [
            ("grid", "grid_code", "1 = 1"),
            ("community", "community_code", "1 = 1"),
            ("street", "street_code", "1 = 1"),
            ("district", "district_code", "1 = 1"),
            ("department", "CAST(department_id AS TEXT)", "department_id IS NOT NULL"),
            ("collector", "CAST(reporter_id AS TEXT)", "source = 'collector' AND reporter_id IS NOT NULL"),
        ];
        let mut written = 0;
        for (kind, subject, filter) in subjects {
            for period in [day.to_owned(), format!("({day}) / 100")] {
                let sql = format!(
                    "INSERT INTO eval_counts (kind, period, subject, c_reported, c_filed, c_citizen_confirmed, \
                     c_dispatched, c_closed, c_closed_on_time, c_due, c_due_closed, c_due_closed_on_time, stamp) \
                     SELECT '{kind}', {period}, {subject}, COUNT(*), \
                     SUM(CASE WHEN {filed} THEN 1 ELSE 0 END), \
                     SUM(CASE WHEN {filed} AND source = 'citizen' THEN 1 ELSE 0 END), \
                     SUM(CASE WHEN department_id IS NOT NULL THEN 1 ELSE 0 END), \
                     SUM(CASE WHEN state = 'closed' THEN 1 ELSE 0 END), \
                     SUM(CASE WHEN state = 'closed' AND updated_at <= case_deadline THEN 1 ELSE 0 END), \
                     SUM(CASE WHEN {filed} THEN 1 ELSE 0 END), \
                     SUM(CASE WHEN state = 'closed' THEN 1 ELSE 0 END), \
                     SUM(CASE WHEN state = 'closed' AND updated_at <= case_deadline THEN 1 ELSE 0 END), 1 \
                     FROM cases WHERE {filter} GROUP BY 1, 2, 3 \
                     ON CONFLICT (kind, period, subject) DO UPDATE SET c_reported = eval_counts.c_reported + excluded.c_reported, \
                     stamp = eval_counts.stamp + 1"
                );
                written += both!(self, |w, _r, _f| { sqlx::query(&sql).execute(w).await?.rows_affected() });
            }
        }
        both!(self, |w, _r, _f| {
            sqlx::query("UPDATE eval_clock SET generation = generation + 1").execute(w).await?;
        });
        self.kept.clear();
        Ok(written)
    }
}

/// Replay a case's log and hand every contribution of every event to `f`; returns the case
/// the log projects to (`None` for an empty log).
fn fold_log(id: i64, events: &[Event], offset: i32, mut f: impl FnMut(&Contribution)) -> Result<Option<Case>> {
    let mut before: Option<Case> = None;
    for e in events {
        let after = citygrid_core::case::project(before.clone(), id, e)
            .ok_or_else(|| StoreError::Corrupt(format!("event {} does not follow its case", e.seq)))?;
        for c in contributions(before.as_ref(), &after, e, offset) {
            f(&c);
        }
        before = Some(after);
    }
    Ok(before)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        s.parse().unwrap()
    }

    #[test]
    fn periods_split_into_days_and_whole_months() {
        assert_eq!(period_ranges(d("2026-11-01"), d("2026-11-30")), [(1, 0), (202611, 202611), (1, 0)]);
        assert_eq!(period_ranges(d("2026-11-03"), d("2026-11-09")), [(20261103, 20261109), (1, 0), (1, 0)]);
        assert_eq!(
            period_ranges(d("2026-10-20"), d("2027-01-10")),
            [(20261020, 20261031), (202611, 202612), (20270101, 20270110)]
        );
        assert_eq!(period_ranges(d("2026-01-01"), d("2026-12-31")), [(1, 0), (202601, 202612), (1, 0)]);
        assert_eq!(
            period_ranges(d("2026-10-31"), d("2026-11-01")),
            [(20261031, 20261031), (1, 0), (20261101, 20261101)]
        );
        assert_eq!(period_ranges(d("2026-11-02"), d("2026-11-01")), [(1, 0); 3]);
    }

    #[test]
    fn period_keys_are_real_days_and_months() {
        assert_eq!(period_keys(20261128, 20261130), [20261128, 20261129, 20261130]);
        assert_eq!(period_keys(20270101, 20270101), [20270101]);
        assert_eq!(period_keys(202611, 202702), [202611, 202612, 202701, 202702]);
        assert_eq!(period_keys(202612, 202612), [202612]);
        assert!(period_keys(1, 0).is_empty());
    }
}
