//! Comprehensive evaluation (综合评价): one row per subject for any period, the cases behind a
//! figure, and the configuration (weights, bands, region classes, grades).
//!
//! The counts are kept by the store in the transaction of every case event
//! (`citygrid_core::evaluation::contributions`); a period's rows are a few range reads of them.
//! The formulas are `citygrid_core::evaluation::metrics`. Here: who may see which subjects,
//! periods, names, and the collectors' areas (the missed-report rate needs the filings in the
//! grids each collector covers).

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Json, Problem, Query};
use crate::state::AppState;
use crate::state::MapIndexes;
use axum::extract::State;
use citygrid_core::codes::{RegionCode, RegionLevel};
use citygrid_core::evaluation::{
    self, AreaFacts, Context, Counter, EvalConfig, MetricKind, SubjectKind, Tally, TallyKind,
};
use citygrid_core::org::{Role, Scope};
use citygrid_geo::grid::GridIndex;
use citygrid_geo::layers::AreaLayer;
use citygrid_store::CountsVersion;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_evaluations))
        .routes(routes!(evaluation_cases))
        .routes(routes!(get_config, put_config))
}

/// Settings key of the evaluation configuration.
pub const CONFIG_KEY: &str = "evaluation.config";

/// The longest period one request may cover.
const MAX_DAYS: i64 = 3660;

/// What to evaluate: a subject kind (regions at a level, under `parent` when given) over the
/// days `from..=to`.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalQuery {
    pub subject: SubjectKind,
    /// Regions only: grid, community, street or district (default street).
    pub level: Option<RegionLevel>,
    pub from: Date,
    /// Inclusive.
    pub to: Date,
    /// Regions only: just the regions under this one.
    pub parent: Option<RegionCode>,
}

/// One metric as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MetricOut {
    /// A rate 0–1, a count, or average minutes (see `kind`).
    pub value: f64,
    pub numerator: i64,
    pub denominator: i64,
    pub kind: MetricKind,
    pub lower_is_better: bool,
    /// Its weight in the score, percent; absent for figures that are not scored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// The counters behind the numerator: `GET /api/v1/evaluations/cases?counter=` lists the
    /// cases behind each.
    #[schema(value_type = Vec<Counter>)]
    pub counters: &'static [Counter],
}

/// One subject's evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct EvaluationRow {
    /// Region code, department id or user id.
    pub subject_id: String,
    pub name: String,
    /// 1 = best score of the rows asked for (ties share a rank).
    pub rank: usize,
    /// Metric name → value with numerator and denominator.
    #[schema(value_type = BTreeMap<String, MetricOut>)]
    pub metrics: MetricMap,
    /// 0–100, the weighted metric scores, rounded to 0.01.
    pub score: f64,
    pub grade: String,
    /// Regions: the region class its bands are read for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region_class: Option<String>,
    /// Anything counted for it in the period. A subject with nothing to do has every rate at
    /// "nothing failed"; it is ranked after every active subject, whatever its score.
    pub active: bool,
    /// What the row was scored from (a kept answer re-scores a row when it changes).
    #[serde(skip)]
    #[schema(ignore)]
    pub basis: Basis,
}

/// The inputs of one row's formulas.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Basis {
    pub tally: Tally,
    pub area: AreaFacts,
    /// A listed subject (a region of the map, a user, a department), not only counted.
    pub listed: bool,
}

/// A row's metrics in the order `citygrid_core::evaluation::metrics` gives them, serialised as
/// a JSON object. A vector, not a map: a city's grids times the metrics are hundreds of
/// thousands of entries per evaluation, and building and dropping tree maps was most of the
/// time of answering one.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricMap(pub Arc<[(&'static str, MetricOut)]>);

impl MetricMap {
    pub fn get(&self, name: &str) -> Option<&MetricOut> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, m)| m)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &MetricOut)> + '_ {
        self.0.iter().map(|(n, m)| (*n, m))
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::ops::Index<&str> for MetricMap {
    type Output = MetricOut;
    fn index(&self, name: &str) -> &MetricOut {
        match self.get(name) {
            Some(m) => m,
            None => panic!("no metric {name}"),
        }
    }
}

impl Serialize for MetricMap {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, m) in self.0.iter() {
            map.serialize_entry(name, m)?;
        }
        map.end()
    }
}

/// The evaluation configuration in force.
pub async fn config(app: &AppState) -> ApiResult<EvalConfig> {
    Ok(config_and_text(app).await?.0)
}

/// The configuration and the text it was read from (the key of the kept rows).
async fn config_and_text(app: &AppState) -> ApiResult<(EvalConfig, String)> {
    Ok(match app.store.get_setting(CONFIG_KEY).await? {
        Some(text) => {
            (serde_json::from_str(&text).map_err(|e| ApiError::Internal(format!("evaluation config: {e}")))?, text)
        }
        None => (EvalConfig::default(), String::new()),
    })
}

/// Which answer a query is kept under: the query and the configuration it was scored with.
/// (The days scored are in it: they grow with today in a period still running.)
type RowsKey = (SubjectKind, Option<RegionLevel>, Date, Date, Option<String>, u64, i64);

/// The subjects of an answer in id order: id, (name, username for people).
type Listed = Vec<(String, (String, Option<String>))>;

/// Every subject's row of a query, ranked. The rows are kept in subject-id order (a changed
/// subject is found by binary search, and equal scores rank by position); `order` is the rank
/// order, which is what [`Ranked::iter`] walks.
#[derive(Debug, Clone, Default)]
pub struct Ranked {
    rows: Vec<EvaluationRow>,
    order: Vec<u32>,
}

impl Ranked {
    /// The rows, best first.
    pub fn iter(&self) -> impl Iterator<Item = &EvaluationRow> + '_ {
        self.order.iter().map(|&i| &self.rows[i as usize])
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Active subjects first, then best score, then id; equal (activity, score) share a rank.
    /// The order is sorted from the previous one (a handful of rows moved, so it is nearly
    /// sorted) over a compact copy of the keys; the rows themselves never move.
    fn rank(&mut self) {
        let keys: Vec<(bool, f64)> = self.rows.iter().map(|r| (r.active, r.score)).collect();
        if self.order.len() != self.rows.len() {
            self.order = (0..self.rows.len() as u32).collect();
        }
        self.order.sort_by(|&a, &b| {
            let (ka, kb) = (keys[a as usize], keys[b as usize]);
            kb.0.cmp(&ka.0).then_with(|| kb.1.total_cmp(&ka.1)).then_with(|| a.cmp(&b))
        });
        let mut last: Option<((bool, f64), usize)> = None;
        for (pos, &i) in self.order.iter().enumerate() {
            let k = keys[i as usize];
            let rank = match last {
                Some((l, rank)) if l == k => rank,
                _ => pos + 1,
            };
            self.rows[i as usize].rank = rank;
            last = Some((k, rank));
        }
    }
}

/// A subject's row in rows kept in id order (or where it would go).
fn find_row(rows: &[EvaluationRow], id: &str) -> Result<usize, usize> {
    rows.binary_search_by(|r| r.subject_id.as_str().cmp(id))
}

/// What an answer was computed from: the same inputs give the same answer; changed counts
/// re-score only the subjects the store says changed since the versions read.
struct KeptAnswer {
    map: std::sync::Weak<MapIndexes>,
    /// The subjects listed (their ids and names): from the map for regions, from the users and
    /// departments otherwise.
    listed: Arc<Listed>,
    counts: CountsVersion,
    due: Option<CountsVersion>,
    areas: Arc<HashMap<String, AreaFacts>>,
    answer: Arc<Ranked>,
    used: u64,
}

/// Recent answers (a city's 20,000 grids cost tens of milliseconds to list and score afresh,
/// and between two asks a handful changed) and each collector's area by grid for the map in
/// force. Bounded: least recently used answers go first beyond [`KEPT_ROWS`] rows.
#[derive(Default)]
pub struct EvalCache {
    answers: std::sync::Mutex<HashMap<RowsKey, KeptAnswer>>,
    tick: std::sync::atomic::AtomicU64,
    #[allow(clippy::type_complexity)]
    areas: std::sync::Mutex<
        Option<(std::sync::Weak<GridIndex>, std::sync::Weak<MapIndexes>, Arc<HashMap<String, String>>)>,
    >,
}

/// About 1.5 KB a row: some 90 MB at most.
const KEPT_ROWS: usize = 60_000;

impl EvalCache {
    /// Forget every kept answer (the next ask of each scores it afresh).
    pub fn clear(&self) {
        self.answers.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn take(&self, key: &RowsKey) -> Option<KeptAnswer> {
        self.answers.lock().unwrap_or_else(|e| e.into_inner()).remove(key)
    }

    fn put(&self, key: RowsKey, mut answer: KeptAnswer) {
        answer.used = self.tick.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut all = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        all.insert(key.clone(), answer);
        while all.values().map(|a| a.answer.len()).sum::<usize>() > KEPT_ROWS && all.len() > 1 {
            let Some(oldest) =
                all.iter().filter(|(k, _)| **k != key).min_by_key(|(_, a)| a.used).map(|(k, _)| k.clone())
            else {
                break;
            };
            all.remove(&oldest);
        }
    }

    /// The collector (username) whose collector area holds each grid's centroid.
    fn collector_of_grid(&self, grids: Arc<GridIndex>, map: Arc<MapIndexes>) -> Arc<HashMap<String, String>> {
        let mut kept = self.areas.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((g, m, owners)) = &*kept {
            if std::ptr::eq(g.as_ptr(), Arc::as_ptr(&grids)) && std::ptr::eq(m.as_ptr(), Arc::as_ptr(&map)) {
                return owners.clone();
            }
        }
        let owners: HashMap<String, String> = grids
            .iter()
            .filter_map(|g| {
                let (lon, lat) = grids.centroid(&g.code)?;
                let area = map.areas.locate(AreaLayer::CollectorArea, lon, lat)?;
                Some((g.code.as_str().to_owned(), area.owner.clone()))
            })
            .collect();
        let owners = Arc::new(owners);
        *kept = Some((Arc::downgrade(&grids), Arc::downgrade(&map), owners.clone()));
        owners
    }
}

/// How long the journal of counts changes is kept: a reader that has not refreshed a period
/// for longer reads it whole (a few hundred milliseconds for a month of grids).
pub const JOURNAL_KEPT: std::time::Duration = std::time::Duration::from_secs(3600);

/// Prune the journal of counts changes every ten minutes (see
/// `Store::prune_evaluation_journal`; nothing to do on SQLite).
pub fn spawn_journal_pruning(app: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            tick.tick().await;
            match app.store.prune_evaluation_journal(JOURNAL_KEPT).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(rows = n, "evaluation journal pruned"),
                Err(e) => tracing::error!(error = %e, "pruning the evaluation journal failed; retrying in ten minutes"),
            }
        }
    })
}

/// The city's local date now.
fn today(app: &AppState) -> ApiResult<Date> {
    let (y, m, d) = citygrid_core::reward::local_day(app.now(), app.calendar().utc_offset_minutes());
    Date::new(y, m, d).map_err(|e| ApiError::Internal(e.to_string()))
}

/// The counters dated by a case's deadline (due to close and what became of those due).
const DUE_COUNTERS: [Counter; 3] = [Counter::Due, Counter::DueClosed, Counter::DueClosedOnTime];

/// Every subject of the query with its metrics, score, grade and rank, best first. No access
/// check: callers check who may ask (see [`list_evaluations`]).
pub async fn evaluate(app: &AppState, q: &EvalQuery) -> ApiResult<Vec<EvaluationRow>> {
    Ok(evaluate_shared(app, q).await?.iter().cloned().collect())
}

/// [`evaluate`] without copying the rows: the answer as kept (see [`EvalCache`]).
///
/// A period still running counts as due only the deadlines up to today: a case due next week
/// is not yet a closure the region failed.
pub async fn evaluate_shared(app: &AppState, q: &EvalQuery) -> ApiResult<Arc<Ranked>> {
    let (cfg, cfg_text) = config_and_text(app).await?;
    let level = match q.subject {
        SubjectKind::Region => Some(q.level.unwrap_or(RegionLevel::Street)),
        _ => None,
    };
    let kind = TallyKind::of(q.subject, level)
        .ok_or_else(|| ApiError::bad_query("level", "grid, community, street or district"))?;
    // A city's code (320300) is not a prefix of its districts' (3203xx): its first four digits are.
    let prefix = q.parent.as_ref().map(|p| match p.level() {
        RegionLevel::City => p.as_str()[..4].to_owned(),
        _ => p.as_str().to_owned(),
    });
    let prefix = prefix.filter(|_| q.subject == SubjectKind::Region);
    let today = today(app)?;
    // Bands expect what the days so far could bring in a period still running.
    let days = (q.to.min(today).max(q.from) - q.from).get_days() as i64 + 1;
    let key: RowsKey = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        cfg_text.hash(&mut h);
        (q.subject, level, q.from, q.to, prefix.clone(), h.finish(), days)
    };
    let kept = app.eval_cache.take(&key);
    let counts = app.store.evaluation_counts_since(kind, q.from, q.to, kept.as_ref().map(|k| &k.counts)).await?;
    // (A period wholly to come reads no days: nothing due yet.)
    let due = match q.to > today {
        true => Some(
            app.store.evaluation_counts_since(kind, q.from, today, kept.as_ref().and_then(|k| k.due.as_ref())).await?,
        ),
        false => None,
    };
    let areas =
        Arc::new(if q.subject == SubjectKind::Collector { collector_areas(app, q).await? } else { HashMap::new() });
    let map = app.map();
    // Regions are listed from the map (the same while the map is); the others from the users
    // and departments, read again each time (a few hundred).
    let listed = match (&kept, q.subject) {
        (Some(k), SubjectKind::Region) if std::ptr::eq(k.map.as_ptr(), Arc::as_ptr(&map)) => k.listed.clone(),
        _ => {
            let mut listed: Listed = subjects(app, q.subject, level, prefix.as_deref()).await?.into_iter().collect();
            listed.sort();
            match &kept {
                Some(k) if *k.listed == listed => k.listed.clone(),
                _ => Arc::new(listed),
            }
        }
    };
    // The subjects whose counts may have changed since the kept answer (None: unknown).
    let changed: Option<HashSet<&str>> = match (&kept, &counts.changed, &due) {
        (Some(k), Some(c), None) if k.due.is_none() => Some(c.iter().map(String::as_str).collect()),
        (Some(k), Some(c), Some(d)) if k.due.is_some() => {
            d.changed.as_ref().map(|d| c.iter().chain(d.iter()).map(String::as_str).collect())
        }
        _ => None,
    };
    let weights = cfg.weights.get(&q.subject).cloned().unwrap_or_default();
    // A subject's counts for the period and, in a period still running, up to today; one
    // counter of them (deadline-dated ones from the second).
    let parts = |id: &str| (counts.counts.get(id), due.as_ref().map(|d| d.counts.get(id)));
    let value = |(base, upto): (Option<&Tally>, Option<Option<&Tally>>), c: Counter| match upto {
        Some(upto) if DUE_COUNTERS.contains(&c) => upto.map_or(0, |u| u.get(c)),
        _ => base.map_or(0, |b| b.get(c)),
    };
    let tally_of = |id: &str| -> Tally {
        let (p, mut t) = (parts(id), Tally::default());
        for &c in Counter::ALL.iter() {
            t.add(c, value(p, c));
        }
        t
    };
    let score_row = |id: String, name: String, t: Tally, area: AreaFacts, listed: bool| -> EvaluationRow {
        let region_class = level.map(|_| cfg.region_class(&id));
        let ctx = Context { level, region_class: region_class.clone(), area, days };
        let metrics = evaluation::metrics(q.subject, &t, &cfg, &ctx);
        let score = evaluation::score(&metrics, &weights);
        EvaluationRow {
            grade: cfg.grade(score),
            subject_id: id,
            name,
            rank: 0,
            score,
            region_class,
            active: !t.is_zero(),
            metrics: MetricMap(
                metrics
                    .into_iter()
                    .map(|m| {
                        let scored = matches!(m.kind, MetricKind::Rate | MetricKind::Band);
                        let out = MetricOut {
                            value: m.value,
                            numerator: m.numerator,
                            denominator: m.denominator,
                            kind: m.kind,
                            lower_is_better: m.lower_is_better,
                            weight: if scored { weights.get(m.name).copied() } else { None },
                            counters: m.counters,
                        };
                        (m.name, out)
                    })
                    .collect(),
            ),
            basis: Basis { tally: t, area, listed },
        }
    };
    let usernames: HashMap<&str, &Option<String>> = if q.subject == SubjectKind::Collector {
        listed.iter().map(|(id, (_, u))| (id.as_str(), u)).collect()
    } else {
        HashMap::new()
    };
    let area_of =
        |id: &str| usernames.get(id).and_then(|u| u.as_ref()).and_then(|u| areas.get(u).copied()).unwrap_or_default();
    let in_scope = |id: &str| prefix.as_deref().is_none_or(|p| id.starts_with(p));
    // Re-score a kept row if what it was scored from changed; whether it did.
    let refresh = |r: &mut EvaluationRow| -> bool {
        let area = area_of(&r.subject_id);
        // Compared counter by counter: building the tally to compare it costs more.
        let p = parts(&r.subject_id);
        let changed = area != r.basis.area || Counter::ALL.iter().any(|&c| value(p, c) != r.basis.tally.get(c));
        if changed {
            let t = tally_of(&r.subject_id);
            let listed = r.basis.listed;
            *r = score_row(std::mem::take(&mut r.subject_id), std::mem::take(&mut r.name), t, area, listed);
        }
        changed
    };
    // Subjects counted that are listed nowhere (a removed user or region) still show, by id.
    let unlisted_row = |id: &str| score_row(id.to_owned(), id.to_owned(), tally_of(id), AreaFacts::default(), false);
    // Add a row for every counted subject in scope that `rows` (in id order) lacks; whether any.
    let add_unlisted = |rows: &mut Vec<EvaluationRow>| -> bool {
        let mut new: Vec<EvaluationRow> = counts
            .counts
            .keys()
            .filter(|id| in_scope(id) && find_row(rows, id).is_err())
            .map(|id| unlisted_row(id))
            .collect();
        if new.is_empty() {
            return false;
        }
        rows.append(&mut new);
        rows.sort_by(|a, b| a.subject_id.cmp(&b.subject_id));
        true
    };
    let answer = match kept {
        // The same subjects: re-score the rows whose inputs changed.
        Some(k) if Arc::ptr_eq(&k.listed, &listed) => {
            let mut answer = k.answer;
            let areas_changed = *k.areas != *areas;
            let nothing = changed.as_ref().is_some_and(|c| c.is_empty()) && !areas_changed;
            if !nothing {
                let all = Arc::make_mut(&mut answer);
                let mut moved = false;
                let mut dirty = false;
                match &changed {
                    // The store says which subjects changed: look at those only (and at every
                    // collector when the areas' figures moved; a few hundred).
                    Some(ids) => {
                        if areas_changed {
                            for r in all.rows.iter_mut() {
                                dirty |= refresh(r);
                            }
                        }
                        for id in ids.iter().filter(|id| in_scope(id)) {
                            match find_row(&all.rows, id) {
                                Ok(i) if !all.rows[i].basis.listed && !counts.counts.contains_key(*id) => {
                                    // An unlisted subject whose counts went back to nothing
                                    // leaves, as in a fresh answer.
                                    all.rows.remove(i);
                                    moved = true;
                                }
                                Ok(i) => dirty |= refresh(&mut all.rows[i]),
                                Err(i) if counts.counts.contains_key(*id) => {
                                    all.rows.insert(i, unlisted_row(id));
                                    moved = true;
                                }
                                Err(_) => {}
                            }
                        }
                    }
                    // Unknown: compare every row.
                    None => {
                        for r in all.rows.iter_mut() {
                            dirty |= refresh(r);
                        }
                        let before = all.rows.len();
                        all.rows.retain(|r| r.basis.listed || counts.counts.contains_key(&r.subject_id));
                        moved = before != all.rows.len();
                        moved |= add_unlisted(&mut all.rows);
                    }
                }
                if moved {
                    all.order.clear();
                }
                if moved || dirty {
                    all.rank();
                }
            }
            answer
        }
        // First ask, or the subjects changed: score them all.
        _ => {
            let mut rows: Vec<EvaluationRow> = listed
                .iter()
                .map(|(id, (name, _))| score_row(id.clone(), name.clone(), tally_of(id), area_of(id), true))
                .collect();
            add_unlisted(&mut rows);
            let mut answer = Ranked { rows, order: Vec::new() };
            answer.rank();
            Arc::new(answer)
        }
    };
    let kept = KeptAnswer {
        map: Arc::downgrade(&map),
        listed,
        counts: counts.version,
        due: due.map(|d| d.version),
        areas,
        answer: answer.clone(),
        used: 0,
    };
    app.eval_cache.put(key, kept);
    Ok(answer)
}

async fn subjects(
    app: &AppState,
    subject: SubjectKind,
    level: Option<RegionLevel>,
    prefix: Option<&str>,
) -> ApiResult<HashMap<String, (String, Option<String>)>> {
    let role = match subject {
        SubjectKind::Region => {
            // The names are in memory (the map's), read for every lookup anyway.
            let len = level.unwrap_or(RegionLevel::Street).code_len();
            return Ok(app
                .map()
                .region_names
                .iter()
                .filter(|(code, _)| code.len() == len && prefix.is_none_or(|p| code.starts_with(p)))
                // A city's code has a district's length: tell them apart by the code itself.
                .filter(|(code, _)| len != 6 || RegionCode::parse(code).is_ok_and(|c| Some(c.level()) == level))
                .map(|(code, name)| (code.clone(), (name.clone(), None)))
                .collect());
        }
        SubjectKind::Department => {
            return Ok(app
                .store
                .list_departments()
                .await?
                .into_iter()
                .map(|d| (d.id.to_string(), (d.name, None)))
                .collect());
        }
        SubjectKind::Collector => Role::Collector,
        SubjectKind::Acceptor => Role::Acceptor,
        SubjectKind::Leader => Role::Leader,
        SubjectKind::Dispatcher => Role::Dispatcher,
    };
    Ok(app
        .store
        .list_users()
        .await?
        .into_iter()
        .filter(|u| u.role == role && u.active)
        .map(|u| (u.id.to_string(), (u.display_name, Some(u.username))))
        .collect())
}

/// Per collector (username, the owner of a collector area): the confirmed citizen reports and
/// the filings of the period in the grids whose centre lies in the collector's area.
async fn collector_areas(app: &AppState, q: &EvalQuery) -> ApiResult<HashMap<String, AreaFacts>> {
    let grids = app.store.evaluation_counts(TallyKind::Grid, q.from, q.to).await?;
    let owners = app.eval_cache.collector_of_grid(app.grids(), app.map());
    let mut out: HashMap<String, AreaFacts> = HashMap::new();
    for (code, t) in grids.iter() {
        let Some(owner) = owners.get(code) else { continue };
        let f = out.entry(owner.clone()).or_default();
        f.citizen_confirmed += t.get(Counter::CitizenConfirmed);
        f.filed += t.get(Counter::Filed);
    }
    Ok(out)
}

// ---- periods -----------------------------------------------------------------------------

fn bad_period(field: &str) -> ApiError {
    ApiError::bad_query(
        field,
        "a day 2026-11-05, an ISO week 2026-W45, a month 2026-11, a quarter 2026-Q4 or a year 2026",
    )
}

/// `2026-11-05`, `2026-W45`, `2026-11`, `2026-Q4`, `2026` → the days it spans.
pub fn parse_period(s: &str) -> Option<(Date, Date)> {
    let s = s.trim();
    if let Ok(d) = s.parse::<Date>() {
        return Some((d, d));
    }
    let year = |y: &str| y.parse::<i16>().ok().filter(|y| (1..=9999).contains(y));
    if let Some((y, w)) = s.split_once("-W") {
        let week: i8 = w.parse().ok()?;
        let monday = jiff::civil::ISOWeekDate::new(year(y)?, week, jiff::civil::Weekday::Monday).ok()?.date();
        return Some((monday, monday.checked_add(jiff::Span::new().days(6)).ok()?));
    }
    if let Some((y, q)) = s.split_once("-Q") {
        let q: i8 = q.parse().ok().filter(|q| (1..=4).contains(q))?;
        let first = jiff::civil::Date::new(year(y)?, (q - 1) * 3 + 1, 1).ok()?;
        let last = jiff::civil::Date::new(year(y)?, q * 3, 1).ok()?.last_of_month();
        return Some((first, last));
    }
    if let Some((y, m)) = s.split_once('-') {
        let first = jiff::civil::Date::new(year(y)?, m.parse().ok()?, 1).ok()?;
        return Some((first, first.last_of_month()));
    }
    if s.len() == 4 {
        let y = year(s)?;
        return Some((jiff::civil::Date::new(y, 1, 1).ok()?, jiff::civil::Date::new(y, 12, 31).ok()?));
    }
    None
}

/// The period of a request: `period`, or `from`/`to`, or this month up to today.
pub fn period_of(
    app: &AppState,
    period: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
) -> ApiResult<(Date, Date)> {
    let day =
        |field: &str, s: &str| s.trim().parse::<Date>().map_err(|_| ApiError::bad_query(field, "a date YYYY-MM-DD"));
    let (from, to) = match (period, from, to) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(ApiError::bad_query("period", "give either period or from/to, not both"))
        }
        (Some(p), None, None) => parse_period(p).ok_or_else(|| bad_period("period"))?,
        (None, Some(f), Some(t)) => (day("from", f)?, day("to", t)?),
        (None, Some(_), None) => return Err(ApiError::bad_query("to", "required with from")),
        (None, None, Some(_)) => return Err(ApiError::bad_query("from", "required with to")),
        (None, None, None) => {
            let today = today(app)?;
            (today.first_of_month(), today)
        }
    };
    if from > to {
        return Err(ApiError::bad_query("to", "must not be before from"));
    }
    if (to - from).get_days() as i64 >= MAX_DAYS {
        return Err(ApiError::bad_query("to", format!("a period spans at most {MAX_DAYS} days")));
    }
    Ok((from, to))
}

// ---- who may see what ----------------------------------------------------------------------

/// What a reader may see of a subject kind: `Ok(Some(prefix))` regions under `prefix`,
/// `Ok(None)` everything of the kind; the caller filters rows with [`visible_row`].
fn reader_scope(auth: &Auth, subject: SubjectKind) -> ApiResult<Option<String>> {
    let out_of_scope = |detail: &str| ApiError::Forbidden { code: "out_of_scope", detail: detail.to_owned() };
    match (&auth.user.role, &auth.user.scope) {
        (Role::Citizen, _) => Err(ApiError::forbidden("citizens do not read evaluations")),
        (Role::Handler, Scope::Department { .. }) if subject == SubjectKind::Department => Ok(None),
        (Role::Handler, _) => Err(out_of_scope("a department sees its own departments' evaluation only")),
        (Role::Collector, _) if subject == SubjectKind::Collector => Ok(None),
        (Role::Collector, _) => Err(out_of_scope("a collector sees their own evaluation only")),
        (_, Scope::Region { code }) if code.level() == RegionLevel::City => Ok(None),
        (_, Scope::Region { code }) if subject == SubjectKind::Region => Ok(Some(code.as_str().to_owned())),
        (_, Scope::Region { .. }) => Err(out_of_scope(
            "departments and the centre's posts are evaluated city-wide: a city-scope account is needed",
        )),
        _ => Err(out_of_scope("no region scope")),
    }
}

/// Rows a handler or collector may see (departments they cover, themselves).
async fn visible_filter(app: &AppState, auth: &Auth) -> ApiResult<Option<HashSet<String>>> {
    Ok(match (&auth.user.role, &auth.user.scope) {
        (Role::Handler, Scope::Department { department_id }) => {
            Some(app.departments().await?.subtree(*department_id).into_iter().map(|d| d.to_string()).collect())
        }
        (Role::Collector, _) => Some([auth.user.id.to_string()].into()),
        _ => None,
    })
}

/// The query a reader may run: the region prefix narrowed to their scope.
fn scoped_query(auth: &Auth, mut q: EvalQuery) -> ApiResult<EvalQuery> {
    if q.subject != SubjectKind::Region && (q.level.is_some() || q.parent.is_some()) {
        return Err(ApiError::bad_query(
            if q.level.is_some() { "level" } else { "parent" },
            "only regions have levels and parents",
        ));
    }
    if let Some(own) = reader_scope(auth, q.subject)? {
        match &q.parent {
            Some(p) if p.as_str().starts_with(&own) => {}
            Some(_) => {
                return Err(ApiError::Forbidden {
                    code: "out_of_scope",
                    detail: format!("parent is outside your region {own}"),
                })
            }
            None => q.parent = Some(RegionCode::parse(&own).map_err(|e| ApiError::Internal(e.to_string()))?),
        }
    }
    Ok(q)
}

// ---- handlers ------------------------------------------------------------------------------

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EvalParams {
    /// `region`, `department`, `collector`, `acceptor`, `leader` or `dispatcher`.
    pub subject: String,
    /// Regions: `grid`, `community`, `street` (default) or `district`.
    pub level: Option<String>,
    /// First day `YYYY-MM-DD` (with `to`).
    pub from: Option<String>,
    /// Last day, inclusive (with `from`).
    pub to: Option<String>,
    /// Instead of from/to: `2026-11-05`, `2026-W45`, `2026-11`, `2026-Q4` or `2026`. Default:
    /// this month up to today.
    pub period: Option<String>,
    /// Regions: only those under this region code.
    pub parent: Option<String>,
    /// `score` (default, best first) or `subject_id`.
    pub sort: Option<String>,
    /// Rows to skip (paging).
    pub offset: Option<usize>,
    /// Rows to return (default all).
    pub limit: Option<usize>,
    /// `json` (default), `csv` (UTF-8 with BOM, for Excel) or `xlsx`; without it, an `Accept`
    /// of `text/csv` or the XLSX type picks the download.
    pub format: Option<String>,
}

/// A page of evaluation rows.
#[derive(Debug, Serialize, ToSchema)]
pub struct EvaluationPage {
    pub subject: SubjectKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    #[schema(value_type = String, format = Date)]
    pub from: Date,
    #[schema(value_type = String, format = Date)]
    pub to: Date,
    pub days: i64,
    /// Rows before paging.
    pub total: usize,
    pub rows: Vec<EvaluationRow>,
}

fn subject_param(s: &str) -> ApiResult<SubjectKind> {
    SubjectKind::parse(s)
        .ok_or_else(|| ApiError::bad_query("subject", "region, department, collector, acceptor, leader or dispatcher"))
}

fn level_param(s: Option<&str>) -> ApiResult<Option<RegionLevel>> {
    s.map(|l| {
        RegionLevel::parse(l)
            .filter(|l| *l != RegionLevel::City)
            .ok_or_else(|| ApiError::bad_query("level", "grid, community, street or district"))
    })
    .transpose()
}

fn parent_param(s: Option<&str>) -> ApiResult<Option<RegionCode>> {
    s.map(|p| RegionCode::parse(p).map_err(|e| ApiError::bad_query("parent", e.to_string()))).transpose()
}

/// Build the query of a request and check the reader may run it.
pub async fn request_query(
    app: &AppState,
    auth: &Auth,
    subject: &str,
    level: Option<&str>,
    parent: Option<&str>,
    period: (Option<&str>, Option<&str>, Option<&str>),
) -> ApiResult<EvalQuery> {
    let subject = subject_param(subject)?;
    let q = EvalQuery {
        subject,
        level: level_param(level)?,
        parent: parent_param(parent)?,
        from: Date::MIN,
        to: Date::MIN,
    };
    let (from, to) = period_of(app, period.0, period.1, period.2)?;
    scoped_query(auth, EvalQuery { from, to, ..q })
}

/// Rows of `q` the reader may see.
pub async fn evaluate_for(app: &AppState, auth: &Auth, q: &EvalQuery) -> ApiResult<Vec<EvaluationRow>> {
    let rows = evaluate_shared(app, q).await?;
    Ok(match visible_filter(app, auth).await? {
        Some(allowed) => rows.iter().filter(|r| allowed.contains(&r.subject_id)).cloned().collect(),
        None => rows.iter().cloned().collect(),
    })
}

/// The comprehensive evaluation (综合评价) of every subject of a kind over a period: one row
/// per subject with its metrics (value, numerator, denominator), score and grade, best first.
/// Regions at any level (under `parent`); departments, collectors and the centre's posts.
/// A district account sees its district's regions; a department clerk its departments; a
/// collector their own row; citizens nothing.
#[utoipa::path(get, path = "/api/v1/evaluations", tag = "evaluation", security(("bearer" = [])), params(EvalParams),
    responses((status = 200, description = "JSON, or with `format`/`Accept` a CSV or XLSX download", content(
            (EvaluationPage = "application/json"), (String = "text/csv"),
            (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn list_evaluations(
    State(app): State<AppState>,
    auth: Auth,
    headers: axum::http::HeaderMap,
    Query(p): Query<EvalParams>,
) -> ApiResult<axum::response::Response> {
    use crate::routes::reports::{download_format, evaluation_download, Download};
    use axum::response::IntoResponse;
    let download = download_format(p.format.as_deref(), &headers)?;
    let q = request_query(
        &app,
        &auth,
        &p.subject,
        p.level.as_deref(),
        p.parent.as_deref(),
        (p.period.as_deref(), p.from.as_deref(), p.to.as_deref()),
    )
    .await?;
    // The kept answer is shared: only the page asked for is copied.
    let shared = evaluate_shared(&app, &q).await?;
    let allowed = visible_filter(&app, &auth).await?;
    let mut rows: Vec<&EvaluationRow> =
        shared.iter().filter(|r| allowed.as_ref().is_none_or(|a| a.contains(&r.subject_id))).collect();
    match p.sort.as_deref() {
        None | Some("score") => {}
        Some("subject_id") => rows.sort_by(|a, b| a.subject_id.cmp(&b.subject_id)),
        Some(_) => return Err(ApiError::bad_query("sort", "score or subject_id")),
    }
    let total = rows.len();
    let rows: Vec<EvaluationRow> =
        rows.into_iter().skip(p.offset.unwrap_or(0)).take(p.limit.unwrap_or(usize::MAX)).cloned().collect();
    if download != Download::Json {
        return evaluation_download(&app, &q, &rows, download).await;
    }
    let level = (q.subject == SubjectKind::Region).then(|| q.level.unwrap_or(RegionLevel::Street).as_str().to_owned());
    Ok(Json(EvaluationPage {
        subject: q.subject,
        level,
        from: q.from,
        to: q.to,
        days: (q.to - q.from).get_days() as i64 + 1,
        total,
        rows,
    })
    .into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CasesParams {
    /// As for `/api/v1/evaluations`.
    pub subject: String,
    pub level: Option<String>,
    /// The subject: region code, department id or user id.
    pub id: String,
    /// The counter to list (a metric's `counters`), e.g. `filed`, `due_closed`, `reworked`.
    pub counter: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub period: Option<String>,
    /// Cursor: the `next` of the previous page.
    pub after: Option<i64>,
    /// 1–500, default 100.
    pub limit: Option<usize>,
}

/// One case behind a figure.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaseBehind {
    pub case_id: i64,
    pub number: String,
    pub state: String,
    pub class_code: String,
    pub grid_code: String,
    pub description: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: jiff::Timestamp,
    /// What the case adds to the counter in the period (1; −1 for a case counted and later
    /// taken back, e.g. due to close in the period but moved out of it).
    pub delta: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CasesPage {
    pub items: Vec<CaseBehind>,
    /// Cursor of the next page (`after`), absent on the last.
    pub next: Option<i64>,
}

/// Drill down from a figure: the cases behind one counter of one subject in a period, in case
/// id order, paged by cursor. The same access rules as the evaluation itself.
#[utoipa::path(get, path = "/api/v1/evaluations/cases", tag = "evaluation", security(("bearer" = [])), params(CasesParams),
    responses((status = 200, body = CasesPage), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn evaluation_cases(
    State(app): State<AppState>,
    auth: Auth,
    Query(p): Query<CasesParams>,
) -> ApiResult<Json<CasesPage>> {
    let counter = Counter::ALL
        .iter()
        .copied()
        .find(|c| c.as_str() == p.counter)
        .ok_or_else(|| ApiError::bad_query("counter", "a counter name, e.g. filed, closed, due_closed"))?;
    let limit = p.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_query("limit", "1–500"));
    }
    let subject = subject_param(&p.subject)?;
    let level = match subject {
        SubjectKind::Region => Some(level_param(p.level.as_deref())?.unwrap_or(RegionLevel::Street)),
        _ => level_param(p.level.as_deref())?,
    };
    let kind = TallyKind::of(subject, level)
        .ok_or_else(|| ApiError::bad_query("level", "grid, community, street or district"))?;
    if subject == SubjectKind::Region {
        let code = RegionCode::parse(&p.id).map_err(|e| ApiError::bad_query("id", e.to_string()))?;
        if Some(code.level()) != level {
            return Err(ApiError::bad_query("id", "not a region of that level"));
        }
    } else if p.id.parse::<i64>().is_err() {
        return Err(ApiError::bad_query("id", "a department or user id"));
    }
    let q = request_query(
        &app,
        &auth,
        &p.subject,
        level.filter(|_| subject == SubjectKind::Region).map(|l| l.as_str()),
        None,
        (p.period.as_deref(), p.from.as_deref(), p.to.as_deref()),
    )
    .await?;
    if let Some(parent) = &q.parent {
        if !p.id.starts_with(parent.as_str()) {
            return Err(ApiError::Forbidden {
                code: "out_of_scope",
                detail: format!("{} is outside your region", p.id),
            });
        }
    }
    if let Some(allowed) = visible_filter(&app, &auth).await? {
        if !allowed.contains(&p.id) {
            return Err(ApiError::Forbidden { code: "out_of_scope", detail: format!("{} is not yours to see", p.id) });
        }
    }
    // As in the figures: in a period still running, only the deadlines up to today are due.
    let to = if DUE_COUNTERS.contains(&counter) { q.to.min(today(&app)?) } else { q.to };
    let after = p.after.unwrap_or(0);
    let behind = if to < q.from {
        citygrid_store::CasesBehind { cases: Vec::new(), next: None }
    } else if subject == SubjectKind::Collector && counter == Counter::CitizenConfirmed {
        // The missed-report rate: the confirmed citizen reports in the grids of the collector's
        // area (a collector has no such counter of their own).
        let users = app.store.list_users().await?;
        let username = users.iter().find(|u| u.id.to_string() == p.id).map(|u| u.username.clone());
        let owners = app.eval_cache.collector_of_grid(app.grids(), app.map());
        let grids: Vec<&str> =
            owners.iter().filter(|(_, o)| Some(*o) == username.as_ref()).map(|(g, _)| g.as_str()).collect();
        if grids.is_empty() {
            citygrid_store::CasesBehind { cases: Vec::new(), next: None }
        } else {
            app.store.evaluation_cases_of(TallyKind::Grid, &grids, counter, (q.from, to), after, limit).await?
        }
    } else {
        app.store.evaluation_cases(kind, &p.id, counter, (q.from, to), after, limit).await?
    };
    let mut items = Vec::with_capacity(behind.cases.len());
    for (id, delta) in behind.cases {
        if let Some(c) = app.store.get_case(id).await? {
            items.push(CaseBehind {
                case_id: c.id,
                number: c.number,
                state: c.state.as_str().to_owned(),
                class_code: c.class_code.as_str().to_owned(),
                grid_code: c.grid_code.as_str().to_owned(),
                description: c.description,
                created_at: c.created_at,
                delta,
            });
        }
    }
    Ok(Json(CasesPage { items, next: behind.next }))
}

/// The evaluation configuration: weights per subject kind (percent, summing to 100), the
/// expected counts of the banded metrics per 30 days, region classes and grades.
#[utoipa::path(get, path = "/api/v1/evaluations/config", tag = "evaluation", security(("bearer" = [])),
    responses((status = 200, body = EvalConfig), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn get_config(State(app): State<AppState>, auth: Auth) -> ApiResult<Json<EvalConfig>> {
    if auth.user.role == Role::Citizen {
        return Err(ApiError::forbidden("citizens do not read evaluations"));
    }
    Ok(Json(config(&app).await?))
}

/// Replace the evaluation configuration (administrators and evaluators, city scope). It
/// applies to every evaluation read from now on, past periods included: the counts do not
/// depend on it.
#[utoipa::path(put, path = "/api/v1/evaluations/config", tag = "evaluation", security(("bearer" = [])), request_body = EvalConfig,
    responses((status = 200, body = EvalConfig), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn put_config(
    State(app): State<AppState>,
    auth: Auth,
    Json(cfg): Json<EvalConfig>,
) -> ApiResult<Json<EvalConfig>> {
    auth.require(&[Role::Admin, Role::Evaluator])?;
    auth.require_city("the evaluation configuration")?;
    cfg.validate().map_err(|e| ApiError::invalid(e.field, e.reason))?;
    let text = serde_json::to_string(&cfg).map_err(|e| ApiError::Internal(e.to_string()))?;
    app.store.put_setting(CONFIG_KEY, &text).await?;
    Ok(Json(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        s.parse().unwrap_or(Date::MIN)
    }

    #[test]
    fn periods() {
        assert_eq!(parse_period("2026-11-05"), Some((d("2026-11-05"), d("2026-11-05"))));
        assert_eq!(parse_period("2026-11"), Some((d("2026-11-01"), d("2026-11-30"))));
        assert_eq!(parse_period("2026-Q4"), Some((d("2026-10-01"), d("2026-12-31"))));
        assert_eq!(parse_period("2026-Q1"), Some((d("2026-01-01"), d("2026-03-31"))));
        assert_eq!(parse_period("2026"), Some((d("2026-01-01"), d("2026-12-31"))));
        // ISO week 1 of 2026 starts on Monday 29 December 2025.
        assert_eq!(parse_period("2026-W01"), Some((d("2025-12-29"), d("2026-01-04"))));
        assert_eq!(parse_period("2026-W48"), Some((d("2026-11-23"), d("2026-11-29"))));
        for bad in ["2026-13", "2026-Q5", "2026-W54", "26", "x", "", "2026-02-30", "0000"] {
            assert_eq!(parse_period(bad), None, "{bad}");
        }
    }
}
