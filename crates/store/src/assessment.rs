//! Storage of the street assessment (长效管理考核): its configuration, special-work assessments,
//! three-random draws with their reveals and findings, published months; and the month's facts
//! the contract statements are computed from.
//!
//! Every write runs in one transaction that first bumps the one-row `assessment_lock`, so a
//! publication and an entry of the same month are serialised on both engines; a published
//! month is also frozen by triggers (no new or changed entries), and draws, reveals and
//! findings are immutable. What a score, a draw or a statement is, `citygrid_core::assessment`
//! decides.

use crate::{both, corrupt, from_ms, json, locked_tx, ms, parse_json, Inner, Result, Store, StoreError};
use citygrid_core::assessment::draw::{Inputs, Place};
use citygrid_core::assessment::{Config, SpecialItem};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Settings key of the assessment configuration (JSON of [`Config`]).
const CONFIG_KEY: &str = "assessment.config";
const LOCK: &str = "UPDATE assessment_lock SET n = n + 1 WHERE id = 1";
const PUBLISHED: &str = "SELECT COUNT(*) FROM assessment_publications WHERE month = $1";

fn frozen(month: &str) -> StoreError {
    StoreError::Conflict(format!("the assessment of {month} is published and frozen"))
}

/// A special-work assessment (专项工作考核) of a street in a month.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpecialRow {
    pub id: i64,
    pub month: String,
    pub street_code: String,
    pub title: String,
    pub items: Vec<SpecialItem>,
    pub photo_ids: Vec<String>,
    pub note: Option<String>,
    /// The items' points summed.
    pub points: f64,
    pub entered_by: i64,
    pub created_at: Timestamp,
}

#[derive(Serialize, Deserialize)]
struct SpecialData {
    items: Vec<SpecialItem>,
    photo_ids: Vec<String>,
    note: Option<String>,
}

/// A stored draw. `seed` is the hex seed, which the API shows only once revealed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrawRow {
    pub id: i64,
    pub month: String,
    pub seed: String,
    pub seed_hash: String,
    pub inputs: Inputs,
    /// The inputs exactly as stored (and hashed): `inputs_sha256` is the SHA-256 of this text.
    pub inputs_json: String,
    pub inputs_sha256: String,
    pub places: Vec<Place>,
    pub created_by: i64,
    pub created_at: Timestamp,
    pub revealed_at: Option<Timestamp>,
}

/// A draw to store: seed and inputs with their hashes, and the places drawn.
#[derive(Debug, Clone)]
pub struct NewDraw {
    pub seed_hex: String,
    pub seed_hash: String,
    pub inputs: Inputs,
    pub inputs_json: String,
    pub inputs_sha256: String,
    pub places: Vec<Place>,
    pub created_by: i64,
    pub now: Timestamp,
}

/// An on-site finding (实地考核发现问题) and the case it became.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingRow {
    pub id: i64,
    pub draw_id: i64,
    pub place_n: u32,
    pub month: String,
    pub street_code: String,
    pub grid_code: String,
    pub case_id: i64,
    pub case_number: String,
    pub class_code: String,
    pub points: f64,
    pub lon: f64,
    pub lat: f64,
    pub found_by: i64,
    pub found_at: Timestamp,
    pub description: String,
    pub photo_ids: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct FindingData {
    description: String,
    photo_ids: Vec<String>,
}

/// A published month: when, by whom, and the ranking as published (JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    pub month: String,
    pub published_at: Timestamp,
    pub published_by: Option<i64>,
    pub data: String,
}

/// A collector's step in the month: a report, verification or check.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectorStep {
    /// `report`, `verify` or `check`.
    pub action: String,
    pub username: String,
    pub grid_code: String,
    pub late: bool,
    /// The case's state now, and whether it was merged into another (a justified void).
    pub case_state: String,
    pub merged: bool,
}

const DRAW_SELECT: &str = "SELECT d.id, d.month, d.seed, d.seed_hash, d.inputs, d.inputs_sha256, d.places, \
     d.created_by, d.created_at, r.revealed_at FROM assessment_draws d \
     LEFT JOIN assessment_reveals r ON r.draw_id = d.id";

type SpecialTuple = (i64, String, String, String, f64, i64, i64, String);

type DrawTuple = (i64, String, String, String, String, String, String, i64, i64, Option<i64>);

fn draw_row(t: DrawTuple) -> Result<DrawRow> {
    let (id, month, seed, seed_hash, inputs, inputs_sha256, places, created_by, created_at, revealed_at) = t;
    Ok(DrawRow {
        id,
        month,
        seed,
        seed_hash,
        inputs: parse_json(&inputs)?,
        inputs_json: inputs,
        inputs_sha256,
        places: parse_json(&places)?,
        created_by,
        created_at: from_ms(created_at)?,
        revealed_at: revealed_at.map(from_ms).transpose()?,
    })
}

const FINDING_SELECT: &str = "SELECT f.id, f.draw_id, f.place_n, f.month, f.street_code, f.grid_code, f.case_id, \
     c.number, f.class_code, f.points, f.lon, f.lat, f.found_by, f.found_at, f.data \
     FROM assessment_findings f JOIN cases c ON c.id = f.case_id";

type FindingTuple = (i64, i64, i64, String, String, String, i64, String, String, f64, f64, f64, i64, i64, String);

fn finding_row(t: FindingTuple) -> Result<FindingRow> {
    let (
        id,
        draw_id,
        place_n,
        month,
        street_code,
        grid_code,
        case_id,
        case_number,
        class_code,
        points,
        lon,
        lat,
        by,
        at,
        data,
    ) = t;
    let d: FindingData = parse_json(&data)?;
    Ok(FindingRow {
        id,
        draw_id,
        place_n: u32::try_from(place_n).map_err(corrupt)?,
        month,
        street_code,
        grid_code,
        case_id,
        case_number,
        class_code,
        points,
        lon,
        lat,
        found_by: by,
        found_at: from_ms(at)?,
        description: d.description,
        photo_ids: d.photo_ids,
    })
}

/// A finding to store (its case exists already).
#[derive(Debug, Clone)]
pub struct NewFinding {
    pub draw_id: i64,
    pub place_n: u32,
    pub month: String,
    pub street_code: String,
    pub grid_code: String,
    pub case_id: i64,
    pub class_code: String,
    pub points: f64,
    pub lon: f64,
    pub lat: f64,
    pub found_by: i64,
    pub now: Timestamp,
    pub description: String,
    pub photo_ids: Vec<String>,
}

/// A special-work assessment to store (validated by the caller).
#[derive(Debug, Clone)]
pub struct NewSpecial {
    pub month: String,
    pub street_code: String,
    pub title: String,
    pub items: Vec<SpecialItem>,
    pub photo_ids: Vec<String>,
    pub note: Option<String>,
    pub entered_by: i64,
    pub now: Timestamp,
}

impl Store {
    /// The assessment configuration; the defaults until an administrator sets it.
    pub async fn assessment_config(&self) -> Result<Config> {
        match self.get_setting(CONFIG_KEY).await? {
            Some(text) => parse_json(&text),
            None => Ok(Config::default()),
        }
    }

    pub async fn put_assessment_config(&self, c: &Config) -> Result<()> {
        self.put_setting(CONFIG_KEY, &json(c)?).await
    }

    /// Is this assessment month published (frozen)?
    pub async fn assessment_published(&self, month: &str) -> Result<Option<Publication>> {
        let sql = "SELECT published_at, published_by, data FROM assessment_publications WHERE month = $1";
        let row: Option<(i64, Option<i64>, String)> =
            both!(self, |_w, r, _f| { sqlx::query_as(sql).bind(month).fetch_optional(r).await? });
        row.map(|(at, by, data)| {
            Ok(Publication { month: month.to_owned(), published_at: from_ms(at)?, published_by: by, data })
        })
        .transpose()
    }

    /// Publish a month with its ranking (JSON); `Conflict` when it was published already.
    pub async fn publish_assessment(&self, month: &str, data: &str, by: i64, now: Timestamp) -> Result<Publication> {
        both!(self, |w, _r, _f| {
            locked_tx!(w, LOCK, |tx| {
                let n: i64 = sqlx::query_scalar(PUBLISHED).bind(month).fetch_one(&mut *tx).await?;
                if n > 0 {
                    return Err(StoreError::Conflict(format!("the assessment of {month} is published already")));
                }
                sqlx::query(
                    "INSERT INTO assessment_publications (month, published_at, published_by, data) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(month)
                .bind(ms(now))
                .bind(by)
                .bind(data)
                .execute(&mut *tx)
                .await?;
            })
        })?;
        Ok(Publication { month: month.to_owned(), published_at: now, published_by: Some(by), data: data.to_owned() })
    }

    /// Add a special-work assessment; `Conflict` when its month is published.
    pub async fn add_special_assessment(&self, s: &NewSpecial) -> Result<SpecialRow> {
        let points: f64 = s.items.iter().map(|i| i.points).sum();
        let data = json(&SpecialData { items: s.items.clone(), photo_ids: s.photo_ids.clone(), note: s.note.clone() })?;
        let id = both!(self, |w, _r, _f| {
            locked_tx!(w, LOCK, |tx| {
                let n: i64 = sqlx::query_scalar(PUBLISHED).bind(&s.month).fetch_one(&mut *tx).await?;
                if n > 0 {
                    return Err(frozen(&s.month));
                }
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO special_assessments (month, street_code, title, points, entered_by, created_at, data) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                )
                .bind(&s.month)
                .bind(&s.street_code)
                .bind(&s.title)
                .bind(points)
                .bind(s.entered_by)
                .bind(ms(s.now))
                .bind(&data)
                .fetch_one(&mut *tx)
                .await?;
                id
            })
        })?;
        Ok(SpecialRow {
            id,
            month: s.month.clone(),
            street_code: s.street_code.clone(),
            title: s.title.clone(),
            items: s.items.clone(),
            photo_ids: s.photo_ids.clone(),
            note: s.note.clone(),
            points,
            entered_by: s.entered_by,
            created_at: s.now,
        })
    }

    /// Special-work assessments of a month, optionally of streets under a region code prefix.
    pub async fn list_special_assessments(&self, month: &str, prefix: Option<&str>) -> Result<Vec<SpecialRow>> {
        let sql =
            "SELECT id, month, street_code, title, points, entered_by, created_at, data FROM special_assessments \
                   WHERE month = $1 AND substr(street_code, 1, length($2)) = $2 ORDER BY id";
        let rows: Vec<SpecialTuple> =
            both!(self, |_w, r, _f| { sqlx::query_as(sql).bind(month).bind(prefix.unwrap_or("")).fetch_all(r).await? });
        rows.into_iter()
            .map(|(id, month, street_code, title, points, entered_by, at, data)| {
                let d: SpecialData = parse_json(&data)?;
                Ok(SpecialRow {
                    id,
                    month,
                    street_code,
                    title,
                    items: d.items,
                    photo_ids: d.photo_ids,
                    note: d.note,
                    points,
                    entered_by,
                    created_at: from_ms(at)?,
                })
            })
            .collect()
    }

    /// Store a draw (immutable from now on).
    pub async fn create_draw(&self, d: &NewDraw) -> Result<DrawRow> {
        let places = json(&d.places)?;
        let id = both!(self, |w, _r, _f| {
            locked_tx!(w, LOCK, |tx| {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO assessment_draws (month, seed, seed_hash, inputs, inputs_sha256, places, created_by, \
                     created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                )
                .bind(&d.inputs.month)
                .bind(&d.seed_hex)
                .bind(&d.seed_hash)
                .bind(&d.inputs_json)
                .bind(&d.inputs_sha256)
                .bind(&places)
                .bind(d.created_by)
                .bind(ms(d.now))
                .fetch_one(&mut *tx)
                .await?;
                id
            })
        })?;
        self.get_draw(id).await?.ok_or_else(|| corrupt("draw vanished"))
    }

    pub async fn get_draw(&self, id: i64) -> Result<Option<DrawRow>> {
        let sql = format!("{DRAW_SELECT} WHERE d.id = $1");
        let row: Option<DrawTuple> =
            both!(self, |_w, r, _f| { sqlx::query_as(&sql).bind(id).fetch_optional(r).await? });
        row.map(draw_row).transpose()
    }

    /// Draws, newest first, optionally of one month.
    pub async fn list_draws(&self, month: Option<&str>) -> Result<Vec<DrawRow>> {
        let sql = format!("{DRAW_SELECT} WHERE ($1 = '' OR d.month = $1) ORDER BY d.id DESC");
        let rows: Vec<DrawTuple> =
            both!(self, |_w, r, _f| { sqlx::query_as(&sql).bind(month.unwrap_or("")).fetch_all(r).await? });
        rows.into_iter().map(draw_row).collect()
    }

    /// The latest draw, whose pairs the next one may not repeat.
    pub async fn latest_draw(&self) -> Result<Option<DrawRow>> {
        let sql = format!("{DRAW_SELECT} ORDER BY d.id DESC LIMIT 1");
        let row: Option<DrawTuple> = both!(self, |_w, r, _f| { sqlx::query_as(&sql).fetch_optional(r).await? });
        row.map(draw_row).transpose()
    }

    /// Reveal a draw's seed (idempotent: a revealed draw stays as it was).
    pub async fn reveal_draw(&self, id: i64, by: i64, now: Timestamp) -> Result<DrawRow> {
        both!(self, |w, _r, _f| {
            locked_tx!(w, LOCK, |tx| {
                let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM assessment_draws WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                if exists.is_none() {
                    return Err(StoreError::NotFound);
                }
                sqlx::query(
                    "INSERT INTO assessment_reveals (draw_id, revealed_at, revealed_by) VALUES ($1, $2, $3) \
                     ON CONFLICT (draw_id) DO NOTHING",
                )
                .bind(id)
                .bind(ms(now))
                .bind(by)
                .execute(&mut *tx)
                .await?;
            })
        })?;
        self.get_draw(id).await?.ok_or(StoreError::NotFound)
    }

    /// Store a finding; `Conflict` when its month is published.
    pub async fn add_finding(&self, f: &NewFinding) -> Result<FindingRow> {
        let data = json(&FindingData { description: f.description.clone(), photo_ids: f.photo_ids.clone() })?;
        let id = both!(self, |w, _r, _f| {
            locked_tx!(w, LOCK, |tx| {
                let n: i64 = sqlx::query_scalar(PUBLISHED).bind(&f.month).fetch_one(&mut *tx).await?;
                if n > 0 {
                    return Err(frozen(&f.month));
                }
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO assessment_findings (draw_id, place_n, month, street_code, grid_code, case_id, \
                     class_code, points, lon, lat, found_by, found_at, data) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
                )
                .bind(f.draw_id)
                .bind(i64::from(f.place_n))
                .bind(&f.month)
                .bind(&f.street_code)
                .bind(&f.grid_code)
                .bind(f.case_id)
                .bind(&f.class_code)
                .bind(f.points)
                .bind(f.lon)
                .bind(f.lat)
                .bind(f.found_by)
                .bind(ms(f.now))
                .bind(&data)
                .fetch_one(&mut *tx)
                .await?;
                id
            })
        })?;
        let sql = format!("{FINDING_SELECT} WHERE f.id = $1");
        let row: FindingTuple = both!(self, |_w, r, _f| { sqlx::query_as(&sql).bind(id).fetch_one(r).await? });
        finding_row(row)
    }

    /// Findings of a month (all when empty) and/or of a draw.
    pub async fn list_findings(&self, month: Option<&str>, draw_id: Option<i64>) -> Result<Vec<FindingRow>> {
        let sql =
            format!("{FINDING_SELECT} WHERE ($1 = '' OR f.month = $1) AND ($2 = 0 OR f.draw_id = $2) ORDER BY f.id");
        let rows: Vec<FindingTuple> = both!(self, |_w, r, _f| {
            sqlx::query_as(&sql).bind(month.unwrap_or("")).bind(draw_id.unwrap_or(0)).fetch_all(r).await?
        });
        rows.into_iter().map(finding_row).collect()
    }

    /// Cases filed in `[from, to)` per unit grid: the problem areas that weight the place draw.
    pub async fn filed_by_grid(&self, from: Timestamp, to: Timestamp) -> Result<Vec<(String, i64)>> {
        let sql = "SELECT c.grid_code, COUNT(*) FROM case_events e JOIN cases c ON c.id = e.case_id \
                   WHERE e.action = 'file' AND e.at >= $1 AND e.at < $2 GROUP BY c.grid_code ORDER BY c.grid_code";
        Ok(both!(self, |_w, r, _f| { sqlx::query_as(sql).bind(ms(from)).bind(ms(to)).fetch_all(r).await? }))
    }

    /// Cases filed in `[from, to)`, the denominator of the missed-report rate.
    pub async fn filed_count(&self, from: Timestamp, to: Timestamp) -> Result<i64> {
        let sql = "SELECT COUNT(*) FROM case_events WHERE action = 'file' AND at >= $1 AND at < $2";
        Ok(both!(self, |_w, r, _f| { sqlx::query_scalar(sql).bind(ms(from)).bind(ms(to)).fetch_one(r).await? }))
    }

    /// Every report, verification and check by a collector in `[from, to)`.
    pub async fn collector_steps(&self, from: Timestamp, to: Timestamp) -> Result<Vec<CollectorStep>> {
        let sql = "SELECT e.action, u.username, c.grid_code, e.data, c.state, c.duplicate_of FROM case_events e \
                   JOIN users u ON u.id = e.actor_id JOIN cases c ON c.id = e.case_id \
                   WHERE e.at >= $1 AND e.at < $2 AND u.role = 'collector' AND e.action IN ('report', 'verify', 'check') \
                   ORDER BY e.case_id, e.seq";
        let rows: Vec<(String, String, String, String, String, Option<i64>)> =
            both!(self, |_w, r, _f| { sqlx::query_as(sql).bind(ms(from)).bind(ms(to)).fetch_all(r).await? });
        rows.into_iter()
            .map(|(action, username, grid_code, data, case_state, dup)| {
                let v: serde_json::Value = parse_json(&data)?;
                Ok(CollectorStep {
                    action,
                    username,
                    grid_code,
                    late: v.get("late").and_then(serde_json::Value::as_bool).unwrap_or(false),
                    case_state,
                    merged: dup.is_some(),
                })
            })
            .collect()
    }

    /// Row counts of the assessment tables (tests: a refusal wrote nothing).
    pub async fn assessment_counts(&self) -> Result<Vec<(String, i64)>> {
        let mut out = Vec::new();
        for t in [
            "special_assessments",
            "assessment_draws",
            "assessment_reveals",
            "assessment_findings",
            "assessment_publications",
        ] {
            let sql = format!("SELECT COUNT(*) FROM {t}");
            let n: i64 = both!(self, |_w, r, _f| { sqlx::query_scalar(&sql).fetch_one(r).await? });
            out.push((t.to_owned(), n));
        }
        Ok(out)
    }
}
