//! The three-random on-site assessment (三随机): random assessor, random place, random time
//! (考核人员随机、考核地点随机、考核时间随机).
//!
//! [`draw`] is a pure function of a 32-byte seed and a snapshot of its inputs ([`Inputs`]: the
//! assessors with their own streets, the streets with their grids and weights, the pairs of the
//! previous draw, the working time of the period), so anyone holding the revealed seed and the
//! published inputs can run it again and get the same places. The server makes the seed from the
//! operating system's random source, publishes `sha256(seed)` when it creates the draw and the
//! seed when it reveals it (commit–reveal).
//!
//! # The algorithm, for re-implementing it by hand
//! The random stream is ChaCha20 (20 rounds, `rand_chacha` 0.3 `ChaCha20Rng::from_seed`): the
//! keystream of key = seed, nonce = 0, block counter from 0. A number below `n` ([`below`]) takes
//! the next 8 keystream bytes as a little-endian `u64` x, draws again while
//! `x > u64::MAX − (2^64 mod n)` (so every result is equally likely), and returns `x mod n`.
//! Streets in the order of `inputs.streets`, and for each street `places_per_street` times:
//! 1. the assessor: the list of `inputs.assessors` (in order) without those whose `streets`
//!    hold this street and without those who formed a pair with it in `inputs.previous`;
//!    `below(len)` picks one;
//! 2. the grid: `below(sum of the street's grid weights)` = r; the grid is the first whose
//!    running sum of weights exceeds r;
//! 3. the time: `below(total whole minutes of inputs.slots)` = m; walking the slots in order,
//!    the minute m of working time (each slot gives `(end − start) / 60,000` whole minutes).

use crate::calendar::WorkCalendar;
use jiff::civil::Date;
use jiff::Timestamp;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A grid of a street and its weight in the place draw (the floor plus its problems).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GridWeight {
    pub grid_code: String,
    pub weight: u64,
}

/// A street and its grids (sorted by code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StreetPool {
    pub street_code: String,
    pub grids: Vec<GridWeight>,
}

/// An assessor of the pool and the streets they belong to (never drawn there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Assessor {
    pub user_id: i64,
    pub username: String,
    pub streets: Vec<String>,
}

/// An assessor–street pair of the previous draw (not repeated in this one).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct Pair {
    pub user_id: i64,
    pub street_code: String,
}

/// An interval of working time, UTC milliseconds, `[start_ms, end_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Slot {
    pub start_ms: i64,
    pub end_ms: i64,
}

/// Everything a draw depends on, stored with it so that a verification never depends on data
/// that changed later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Inputs {
    /// The assessment month the findings count for, `YYYY-MM`.
    pub month: String,
    /// The period, local dates, inclusive.
    #[schema(value_type = String, format = Date)]
    pub from: Date,
    #[schema(value_type = String, format = Date)]
    pub to: Date,
    pub places_per_street: u32,
    pub streets: Vec<StreetPool>,
    pub assessors: Vec<Assessor>,
    pub previous: Vec<Pair>,
    /// The working time of the period, in order.
    pub slots: Vec<Slot>,
}

/// One drawn place: who goes where, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Place {
    /// 1, 2, … in draw order.
    pub n: u32,
    pub street_code: String,
    pub grid_code: String,
    pub assessor_id: i64,
    pub assessor: String,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
}

/// Why a draw cannot be made from its inputs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DrawError {
    #[error("no assessor of the pool may go to street {0} (all belong to it or went there last time)")]
    NoAssessor(String),
    #[error("street {0} has no grid to draw")]
    NoGrid(String),
    #[error("the period has no working time")]
    NoWorkingTime,
    #[error("no streets to draw")]
    NoStreets,
}

/// A uniformly distributed number in `0..n` (`n > 0`), by rejection (see the module docs).
pub fn below(rng: &mut ChaCha20Rng, n: u64) -> u64 {
    debug_assert!(n > 0);
    let n = n.max(1);
    let r = (u64::MAX % n + 1) % n; // 2^64 mod n
    loop {
        let x = rng.next_u64();
        if x <= u64::MAX - r {
            return x % n;
        }
    }
}

/// The working time of the local dates `from..=to` on `cal`: office hours of working days.
pub fn working_slots(cal: &WorkCalendar, from: Date, to: Date) -> Vec<Slot> {
    let offset = jiff::tz::Offset::from_seconds(cal.utc_offset_minutes() * 60).unwrap_or(jiff::tz::Offset::UTC);
    let mut out = Vec::new();
    let mut d = from;
    while d <= to {
        let midnight = offset.to_timestamp(d.to_datetime(jiff::civil::Time::midnight()));
        if let (true, Ok(midnight)) = (cal.is_working_day(d), midnight) {
            let midnight_utc_ms = midnight.as_millisecond();
            for &(a, b) in cal.office_hours() {
                out.push(Slot {
                    start_ms: midnight_utc_ms + i64::from(a) * 60_000,
                    end_ms: midnight_utc_ms + i64::from(b) * 60_000,
                });
            }
        }
        match d.tomorrow() {
            Ok(next) => d = next,
            Err(_) => break,
        }
    }
    out
}

/// Draw the places: deterministic from `seed` and `inputs` (see the module docs).
pub fn draw(seed: [u8; 32], inputs: &Inputs) -> Result<Vec<Place>, DrawError> {
    if inputs.streets.is_empty() {
        return Err(DrawError::NoStreets);
    }
    let minutes: Vec<u64> =
        inputs.slots.iter().map(|s| u64::try_from((s.end_ms - s.start_ms).max(0) / 60_000).unwrap_or(0)).collect();
    let total_minutes: u64 = minutes.iter().sum();
    if total_minutes == 0 {
        return Err(DrawError::NoWorkingTime);
    }
    let mut rng = ChaCha20Rng::from_seed(seed);
    let mut out = Vec::new();
    let mut n = 0u32;
    for street in &inputs.streets {
        let total_weight: u64 = street.grids.iter().map(|g| g.weight).sum();
        if total_weight == 0 {
            return Err(DrawError::NoGrid(street.street_code.clone()));
        }
        let eligible: Vec<&Assessor> = inputs
            .assessors
            .iter()
            .filter(|a| !a.streets.contains(&street.street_code))
            .filter(|a| !inputs.previous.iter().any(|p| p.user_id == a.user_id && p.street_code == street.street_code))
            .collect();
        if eligible.is_empty() {
            return Err(DrawError::NoAssessor(street.street_code.clone()));
        }
        for _ in 0..inputs.places_per_street {
            let assessor = eligible[below(&mut rng, eligible.len() as u64) as usize];
            let mut r = below(&mut rng, total_weight);
            let mut grid = &street.grids[0];
            for g in &street.grids {
                if r < g.weight {
                    grid = g;
                    break;
                }
                r -= g.weight;
            }
            let mut m = below(&mut rng, total_minutes);
            let mut at_ms = inputs.slots[0].start_ms;
            for (slot, &len) in inputs.slots.iter().zip(&minutes) {
                if m < len {
                    at_ms = slot.start_ms + i64::try_from(m).unwrap_or(0) * 60_000;
                    break;
                }
                m -= len;
            }
            n += 1;
            out.push(Place {
                n,
                street_code: street.street_code.clone(),
                grid_code: grid.grid_code.clone(),
                assessor_id: assessor.user_id,
                assessor: assessor.username.clone(),
                at: Timestamp::from_millisecond(at_ms).unwrap_or(Timestamp::UNIX_EPOCH),
            });
        }
    }
    Ok(out)
}

/// The pairs a draw made, to be excluded from the next one.
pub fn pairs(places: &[Place]) -> Vec<Pair> {
    let mut out: Vec<Pair> =
        places.iter().map(|p| Pair { user_id: p.assessor_id, street_code: p.street_code.clone() }).collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests;
