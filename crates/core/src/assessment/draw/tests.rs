//! The draw: reproducible from the seed, weighted as intended, and its constraints hold.
//! Statistical checks use fixed seeds, so they give the same answer on every run.

use super::*;
use std::collections::{BTreeMap, BTreeSet};

fn seed(i: u64) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&i.to_le_bytes());
    s[31] = 0xA5;
    s
}

fn date(s: &str) -> Date {
    s.parse().unwrap()
}

/// Four streets of three grids; six assessors, two of them belonging to a street.
fn inputs(previous: Vec<Pair>) -> Inputs {
    let cal = WorkCalendar::china_default();
    let (from, to) = (date("2026-10-01"), date("2026-10-31"));
    let streets = ["320311001", "320311002", "320303001", "320303002"]
        .iter()
        .map(|s| StreetPool {
            street_code: (*s).into(),
            grids: (1..=3u64)
                .map(|g| GridWeight { grid_code: format!("{s}001{g:03}"), weight: g + if g == 3 { 3 } else { 0 } })
                .collect(),
        })
        .collect();
    let assessors = (1..=6)
        .map(|i| Assessor {
            user_id: i,
            username: format!("a{i}"),
            streets: match i {
                1 => vec!["320311001".into()],
                2 => vec!["320303001".into(), "320303002".into()],
                _ => vec![],
            },
        })
        .collect();
    Inputs {
        month: "2026-10".into(),
        from,
        to,
        places_per_street: 1,
        streets,
        assessors,
        previous,
        slots: working_slots(&cal, from, to),
    }
}

#[test]
fn working_slots_are_office_hours_of_working_days() {
    let cal = WorkCalendar::china_default();
    // 2026-10-01..07 is the National Day holiday; 10-08 (Thu) and 10-09 (Fri) are working
    // days, 10-10 (Sat) a make-up working day (调休), 10-11 a Sunday (data/holidays/2026.csv).
    let slots = working_slots(&cal, date("2026-10-01"), date("2026-10-11"));
    let days: BTreeSet<i64> = slots.iter().map(|s| (s.start_ms + 8 * 3_600_000) / 86_400_000).collect();
    let expected: BTreeSet<i64> = ["2026-10-08", "2026-10-09", "2026-10-10"]
        .iter()
        .map(|d| date(d).since(Date::constant(1970, 1, 1)).unwrap().get_days() as i64)
        .collect();
    assert_eq!(days, expected);
    // 08:30 Beijing = 00:30 UTC.
    let first = Timestamp::from_millisecond(slots[0].start_ms).unwrap();
    assert_eq!(first.to_string(), "2026-10-08T00:30:00Z");
    assert_eq!(slots.len() % cal.office_hours().len(), 0);
}

#[test]
fn same_seed_same_places_other_seed_other_places() {
    let i = inputs(vec![]);
    let a = draw(seed(7), &i).unwrap();
    assert_eq!(a, draw(seed(7), &i).unwrap());
    assert_ne!(a, draw(seed(8), &i).unwrap());
    assert_eq!(a.len(), 4);
    assert_eq!(a.iter().map(|p| p.n).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    // Round trip through JSON (how the inputs are stored) changes nothing.
    let stored: Inputs = serde_json::from_str(&serde_json::to_string(&i).unwrap()).unwrap();
    assert_eq!(draw(seed(7), &stored).unwrap(), a);
}

#[test]
fn below_is_unbiased_at_the_edges() {
    let mut rng = ChaCha20Rng::from_seed(seed(1));
    assert!((0..1000).all(|_| below(&mut rng, 1) == 0));
    let big = (u64::MAX / 3) * 2 + 1; // rejection zone of a third of the range
    assert!((0..1000).all(|_| below(&mut rng, big) < big));
}

/// The draws' constraints over 1,000 consecutive draws, each excluding the pairs of the one
/// before: never an assessor's own street, never last time's pair, every street drawn, every
/// time a whole minute in working time inside the period.
#[test]
fn constraints_hold_over_1000_draws() {
    let mut previous = vec![];
    let base = inputs(vec![]);
    let (start, end) = (base.slots[0].start_ms, base.slots.last().unwrap().end_ms);
    for k in 0..1000u64 {
        let i = Inputs { previous: previous.clone(), ..base.clone() };
        let places = draw(seed(k), &i).unwrap();
        let streets: BTreeSet<&str> = places.iter().map(|p| p.street_code.as_str()).collect();
        assert_eq!(streets.len(), 4, "every street drawn");
        for p in &places {
            let a = i.assessors.iter().find(|a| a.user_id == p.assessor_id).unwrap();
            assert!(!a.streets.contains(&p.street_code), "draw {k}: {p:?} is the assessor's own street");
            assert!(
                !previous.iter().any(|q: &Pair| q.user_id == p.assessor_id && q.street_code == p.street_code),
                "draw {k}: {p:?} repeats the previous pair"
            );
            assert!(p.grid_code.starts_with(&p.street_code), "grid of the street");
            let t = p.at.as_millisecond();
            assert!(i.slots.iter().any(|s| s.start_ms <= t && t < s.end_ms), "draw {k}: {p:?} outside working time");
            assert!((start..end).contains(&t) && t % 60_000 == 0);
        }
        previous = pairs(&places);
    }
}

/// Pearson's chi-square statistic of observed counts against expected shares.
fn chi_square(observed: &[u64], weights: &[f64]) -> f64 {
    let n: u64 = observed.iter().sum();
    let w: f64 = weights.iter().sum();
    observed
        .iter()
        .zip(weights)
        .map(|(&o, &wi)| {
            let e = n as f64 * wi / w;
            (o as f64 - e).powi(2) / e
        })
        .sum()
}

/// Grids are drawn in proportion to their weights (1, 2, 6) and assessors uniformly among the
/// eligible. 3,000 draws with fixed seeds; the statistics stay below the 0.1 % critical values
/// of the chi-square distribution (2 degrees of freedom: 13.82; 3: 16.27) and the shares within
/// two percentage points of the intended ones.
#[test]
fn grids_and_assessors_are_drawn_with_the_intended_weights() {
    let i = inputs(vec![]);
    let mut grids: BTreeMap<String, u64> = BTreeMap::new();
    let mut assessors_of_first: BTreeMap<i64, u64> = BTreeMap::new();
    let draws = 3000u64;
    for k in 0..draws {
        let places = draw(seed(1_000_000 + k), &i).unwrap();
        for p in &places {
            *grids.entry(p.grid_code[12..].to_owned()).or_default() += 1;
        }
        *assessors_of_first.entry(places[0].assessor_id).or_default() += 1;
    }
    let g: Vec<u64> = ["001", "002", "003"].iter().map(|c| grids[*c]).collect();
    let chi = chi_square(&g, &[1.0, 2.0, 6.0]);
    assert!(chi < 13.82, "grid counts {g:?}: chi-square {chi}");
    let total = g.iter().sum::<u64>() as f64;
    for (o, share) in g.iter().zip([1.0 / 9.0, 2.0 / 9.0, 6.0 / 9.0]) {
        assert!((*o as f64 / total - share).abs() < 0.02, "{g:?}");
    }
    // Street 320311001: assessor 1 belongs to it; 2..=6 are eligible, one fifth each.
    assert!(!assessors_of_first.contains_key(&1));
    let a: Vec<u64> = (2..=6).map(|id| assessors_of_first.get(&id).copied().unwrap_or(0)).collect();
    let chi = chi_square(&a, &[1.0; 5]);
    assert!(chi < 18.47, "assessor counts {a:?}: chi-square {chi} (4 degrees of freedom, 0.1 %)");
}

#[test]
fn times_spread_over_the_period() {
    // Every working day of October 2026 gets some of 3,000 draws' times (uniform over working
    // minutes: about 150 per day), and no time falls on a holiday.
    let i = inputs(vec![]);
    let cal = WorkCalendar::china_default();
    let mut days: BTreeMap<i64, u64> = BTreeMap::new();
    for k in 0..3000u64 {
        for p in draw(seed(5_000_000 + k), &i).unwrap() {
            *days.entry((p.at.as_millisecond() + 8 * 3_600_000) / 86_400_000).or_default() += 1;
        }
    }
    let working: Vec<i64> = (1..=31)
        .map(|d| date(&format!("2026-10-{d:02}")))
        .filter(|d| cal.is_working_day(*d))
        .map(|d| d.since(Date::constant(1970, 1, 1)).unwrap().get_days() as i64)
        .collect();
    assert_eq!(days.keys().copied().collect::<Vec<_>>(), working);
    let counts: Vec<u64> = days.values().copied().collect();
    let chi = chi_square(&counts, &vec![1.0; counts.len()]);
    // 20 working days → 19 degrees of freedom; 0.1 % critical value 43.82.
    assert!(chi < 43.82, "{counts:?}: {chi}");
}

#[test]
fn impossible_draws_are_refused() {
    let mut i = inputs(vec![]);
    for a in &mut i.assessors {
        a.streets.push("320311002".into());
    }
    assert_eq!(draw(seed(1), &i), Err(DrawError::NoAssessor("320311002".into())));
    let mut i = inputs(vec![]);
    i.slots.clear();
    assert_eq!(draw(seed(1), &i), Err(DrawError::NoWorkingTime));
    let mut i = inputs(vec![]);
    i.streets[0].grids.clear();
    assert_eq!(draw(seed(1), &i), Err(DrawError::NoGrid("320311001".into())));
    // Only assessor 6 is left for 320311002 once 3, 4, 5 went there last time (1 and 2 are free
    // too): the previous pairs narrow the choice, the draw still succeeds.
    let prev: Vec<Pair> =
        [1, 2, 3, 4, 5].iter().map(|&u| Pair { user_id: u, street_code: "320311002".into() }).collect();
    let places = draw(seed(3), &inputs(prev)).unwrap();
    assert_eq!(places[1].assessor_id, 6);
}

/// The random stream is the plain ChaCha20 keystream (key = seed, nonce 0, counter from 0), read
/// as little-endian u64s, as the module docs say: the first three words for a seed of 0x42
/// bytes, computed independently with Python's `cryptography` (ChaCha20, 16 zero nonce bytes).
#[test]
fn the_stream_is_the_chacha20_keystream() {
    let mut rng = ChaCha20Rng::from_seed([0x42; 32]);
    let words: Vec<u64> = (0..3).map(|_| rng.next_u64()).collect();
    assert_eq!(words, vec![0x69ba_327f_1ff3_dda4, 0x1ef2_f3ec_50ce_146f, 0x6679_f4bd_830e_103e]);
}
