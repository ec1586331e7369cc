//! The working calendar (工作日历): turns stage and disposal time limits into deadlines.
//!
//! Every stage of a case has a time limit in working minutes, hours or days, or in natural
//! (wall-clock) time. Working time counts only the office hours of working days: Monday to
//! Friday, minus the public holidays of the State Council's yearly notice, plus the weekend
//! make-up working days (调休上班) that the same notice declares. This module holds that
//! schedule and does the arithmetic: deadlines, elapsed working time, adding a remaining budget
//! after a suspension (挂账), and the green / yellow / red traffic light of a stage.
//!
//! It is pure: no I/O and no clock. The holiday data of 2025–2027 is compiled in from
//! `data/holidays/*.csv`; a later year's notice is loaded with [`WorkCalendar::load_year_csv`].
//! Years that were never loaded are treated as plain Monday-to-Friday weeks, so deadlines never
//! fail, they are only as good as the loaded schedule.
//!
//! All arithmetic is done in whole milliseconds (`i64`) of local time, using a fixed UTC offset:
//! China has had no daylight saving time since 1991, so a fixed offset is exact there. Sub-
//! millisecond parts of input timestamps are truncated.

use std::collections::BTreeMap;

use jiff::{civil::Date, SignedDuration, Timestamp};

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;
const DAY_MINUTES: u16 = 24 * 60;
/// ISO 8601 / RFC 3339 bound on offsets; anything larger is a configuration mistake.
const MAX_UTC_OFFSET_MINUTES: i32 = 18 * 60;
/// 1970-01-05, the first Monday after the Unix epoch, as a day number. Weekday arithmetic is
/// anchored there so that `(day - MONDAY_ANCHOR) mod 7` is 0 for Mondays.
const MONDAY_ANCHOR: i64 = 4;

/// Office hours of Chinese government offices, 08:30–12:00 and 13:30–17:30.
const CHINA_OFFICE_HOURS: [(u16, u16); 2] = [(8 * 60 + 30, 12 * 60), (13 * 60 + 30, 17 * 60 + 30)];
/// Beijing time, UTC+8, all year round.
const CHINA_UTC_OFFSET_MINUTES: i32 = 8 * 60;
/// The official schedules shipped with the code. A broken file is caught by the tests, never at
/// run time.
const CHINA_HOLIDAY_FILES: [(&str, &str); 3] = [
    ("2025.csv", include_str!("../../../data/holidays/2025.csv")),
    ("2026.csv", include_str!("../../../data/holidays/2026.csv")),
    ("2027.csv", include_str!("../../../data/holidays/2027.csv")),
];

/// Unit of a time limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LimitUnit {
    WorkingMinutes,
    WorkingHours,
    WorkingDays,
    NaturalMinutes,
    NaturalHours,
    NaturalDays,
}

impl LimitUnit {
    /// True for wall-clock units, which run through nights, weekends and holidays.
    pub const fn is_natural(self) -> bool {
        matches!(self, LimitUnit::NaturalMinutes | LimitUnit::NaturalHours | LimitUnit::NaturalDays)
    }
}

/// A stage or disposal time limit, e.g. 2 working hours. serde: `{"amount": 2, "unit": "working_hours"}`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Limit {
    pub amount: u32,
    pub unit: LimitUnit,
}

impl Limit {
    pub const fn working_minutes(n: u32) -> Limit {
        Limit { amount: n, unit: LimitUnit::WorkingMinutes }
    }

    pub const fn working_hours(n: u32) -> Limit {
        Limit { amount: n, unit: LimitUnit::WorkingHours }
    }

    pub const fn working_days(n: u32) -> Limit {
        Limit { amount: n, unit: LimitUnit::WorkingDays }
    }

    pub const fn natural_minutes(n: u32) -> Limit {
        Limit { amount: n, unit: LimitUnit::NaturalMinutes }
    }

    pub const fn natural_hours(n: u32) -> Limit {
        Limit { amount: n, unit: LimitUnit::NaturalHours }
    }

    pub const fn natural_days(n: u32) -> Limit {
        Limit { amount: n, unit: LimitUnit::NaturalDays }
    }

    /// True if the limit runs in wall-clock time rather than working time.
    pub fn is_natural(&self) -> bool {
        self.unit.is_natural()
    }

    /// The limit multiplied by `factor_percent` / 100 in the same unit, rounded up (an extension
    /// of 150 % on 3 working hours gives 5, never less time than asked for). Saturates at
    /// `u32::MAX`.
    pub fn scaled(&self, factor_percent: u32) -> Limit {
        let product = u64::from(self.amount) * u64::from(factor_percent);
        Limit { amount: u32::try_from(product.div_ceil(100)).unwrap_or(u32::MAX), unit: self.unit }
    }

    /// The limit as the centres write it: "2个工作时", "3个工作日", "30分钟(自然时间)".
    pub fn describe_zh(&self) -> String {
        let n = self.amount;
        match self.unit {
            LimitUnit::WorkingMinutes => format!("{n}个工作分钟"),
            LimitUnit::WorkingHours => format!("{n}个工作时"),
            LimitUnit::WorkingDays => format!("{n}个工作日"),
            LimitUnit::NaturalMinutes => format!("{n}分钟(自然时间)"),
            LimitUnit::NaturalHours => format!("{n}小时(自然时间)"),
            LimitUnit::NaturalDays => format!("{n}天(自然时间)"),
        }
    }
}

/// Traffic light of a stage (亮灯): green up to 80 % of the limit, yellow 80–100 %, red beyond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Light {
    Green,
    Yellow,
    Red,
}

/// Why office hours or a holiday file were rejected. File errors carry the 1-based line number.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CalendarError {
    #[error("UTC offset of {0} minutes is outside ±18 hours")]
    BadUtcOffset(i32),
    #[error("office hours are empty: a calendar needs at least one office interval")]
    NoOfficeHours,
    #[error("office interval #{index} ({start}–{end} minutes after midnight) must satisfy start < end <= 1440")]
    BadOfficeInterval { index: usize, start: u16, end: u16 },
    #[error("office interval #{index} overlaps the interval before it or is out of order")]
    OfficeIntervalsOutOfOrder { index: usize },
    #[error("holiday file has no header line `date,kind,name`")]
    MissingHeader,
    #[error("line {line}: expected the header `date,kind,name`, found `{found}`")]
    BadHeader { line: usize, found: String },
    #[error("line {line}: expected 3 fields `date,kind,name`, found {found}")]
    FieldCount { line: usize, found: usize },
    #[error("line {line}: `{value}` is not a valid date in the form YYYY-MM-DD")]
    BadDate { line: usize, value: String },
    #[error("line {line}: unknown kind `{value}`, expected `holiday` or `workday`")]
    UnknownKind { line: usize, value: String },
    #[error("line {line}: {date} is already listed on line {first_line}")]
    DuplicateDate { line: usize, date: Date, first_line: usize },
    #[error("line {line}: {date} is not in {year}, the year of this file")]
    WrongYear { line: usize, date: Date, year: i32 },
    #[error("line {line}: `# official:` must be `true` or `false`, found `{value}`")]
    BadOfficialFlag { line: usize, value: String },
    #[error("line {line}: `# year:` must be a year between 1 and 9999, found `{value}`")]
    BadYear { line: usize, value: String },
    #[error("holiday file lists no dates and has no `# year:` line, so its year is unknown")]
    NoYear,
}

/// A day the loaded schedule says differs from (or confirms) the plain Monday-to-Friday rule.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DayEntry {
    working: bool,
    name: String,
}

/// What is known about one loaded year.
#[derive(Debug, Clone, PartialEq, Eq)]
struct YearInfo {
    official: bool,
    source: Option<String>,
}

/// Office hours, a fixed UTC offset and the holiday schedule of the loaded years.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkCalendar {
    utc_offset_minutes: i32,
    office_minutes: Vec<(u16, u16)>,
    /// `office_minutes` in milliseconds after local midnight, kept to avoid converting on every
    /// step of the arithmetic.
    office_ms: Vec<(i64, i64)>,
    daily_ms: i64,
    /// Listed days keyed by day number (days since 1970-01-01), so that the arithmetic below
    /// works on plain integers and can find the next listed day with a range query.
    days: BTreeMap<i64, DayEntry>,
    years: BTreeMap<i32, YearInfo>,
}

impl WorkCalendar {
    /// China's official schedule for 2025–2027 (shipped under data/holidays/, embedded with
    /// `include_str!`), office hours 08:30–12:00 and 13:30–17:30 local time (UTC+8, China has
    /// no DST).
    ///
    /// 2027 ships the statutory holidays only (the State Council's notice was not yet
    /// available): `years()` reports it as not official until the notice is loaded.
    pub fn china_default() -> WorkCalendar {
        // The constants are valid by construction (and tested), so skip the fallible path.
        let mut cal = WorkCalendar::from_valid_parts(CHINA_UTC_OFFSET_MINUTES, &CHINA_OFFICE_HOURS);
        for (name, text) in CHINA_HOLIDAY_FILES {
            let loaded = cal.load_year_csv(text);
            // Cannot fail for the shipped files (a test loads each); a release build would
            // rather fall back to plain weeks for that year than refuse to start.
            debug_assert!(loaded.is_ok(), "embedded holiday file {name}: {loaded:?}");
        }
        cal
    }

    /// A calendar without any holiday data. `office_hours` are intervals in minutes after local
    /// midnight, sorted, non-overlapping, non-empty (an end of 1440 means midnight).
    pub fn new(utc_offset_minutes: i32, office_hours: &[(u16, u16)]) -> Result<WorkCalendar, CalendarError> {
        if utc_offset_minutes.abs() > MAX_UTC_OFFSET_MINUTES {
            return Err(CalendarError::BadUtcOffset(utc_offset_minutes));
        }
        if office_hours.is_empty() {
            return Err(CalendarError::NoOfficeHours);
        }
        let mut previous_end = 0;
        for (index, &(start, end)) in office_hours.iter().enumerate() {
            if start >= end || end > DAY_MINUTES {
                return Err(CalendarError::BadOfficeInterval { index, start, end });
            }
            // Touching intervals (end == next start) are allowed: they just form one longer
            // stretch of office time.
            if index > 0 && start < previous_end {
                return Err(CalendarError::OfficeIntervalsOutOfOrder { index });
            }
            previous_end = end;
        }
        Ok(WorkCalendar::from_valid_parts(utc_offset_minutes, office_hours))
    }

    fn from_valid_parts(utc_offset_minutes: i32, office_hours: &[(u16, u16)]) -> WorkCalendar {
        let office_ms: Vec<(i64, i64)> =
            office_hours.iter().map(|&(s, e)| (i64::from(s) * MINUTE_MS, i64::from(e) * MINUTE_MS)).collect();
        let daily_ms = office_ms.iter().map(|&(s, e)| e - s).sum();
        WorkCalendar {
            utc_offset_minutes,
            office_minutes: office_hours.to_vec(),
            office_ms,
            daily_ms,
            days: BTreeMap::new(),
            years: BTreeMap::new(),
        }
    }

    /// Load one year's schedule from the CSV text format (replaces any data for that year).
    ///
    /// ```text
    /// # official: true
    /// # source: 国务院办公厅关于2025年部分节假日安排的通知
    /// date,kind,name
    /// 2025-01-01,holiday,元旦
    /// 2025-01-26,workday,春节调休上班
    /// ```
    ///
    /// Lines starting with `#` are comments; `# official: true|false` (default false),
    /// `# source: ...` and `# year: YYYY` are read from them. The first other non-blank line is
    /// the header. The file's year is the `# year:` line, else the year of the first date.
    /// Names may not contain commas. On error the calendar is left unchanged. Returns the year.
    pub fn load_year_csv(&mut self, text: &str) -> Result<i32, CalendarError> {
        let parsed = parse_year_csv(text)?;
        let first = day_number(year_start(parsed.year)?);
        let next = day_number(year_end(parsed.year)?) + 1;
        let stale: Vec<i64> = self.days.range(first..next).map(|(&d, _)| d).collect();
        for day in stale {
            self.days.remove(&day);
        }
        for (date, entry) in parsed.entries {
            self.days.insert(day_number(date), entry);
        }
        self.years.insert(parsed.year, YearInfo { official: parsed.official, source: parsed.source });
        Ok(parsed.year)
    }

    /// The loaded years, ascending, each with whether its data is the official notice.
    pub fn years(&self) -> Vec<(i32, bool)> {
        self.years.iter().map(|(&year, info)| (year, info.official)).collect()
    }

    /// The `# source:` line of a loaded year, if it had one.
    pub fn year_source(&self, year: i32) -> Option<&str> {
        self.years.get(&year).and_then(|info| info.source.as_deref())
    }

    /// The name of a listed holiday or make-up working day ("春节", "国庆节调休上班").
    pub fn day_name(&self, d: Date) -> Option<&str> {
        self.days.get(&day_number(d)).map(|entry| entry.name.as_str())
    }

    /// Mon–Fri unless a holiday; Sat/Sun if a make-up working day (调休).
    pub fn is_working_day(&self, d: Date) -> bool {
        self.is_working_day_number(day_number(d))
    }

    /// Minutes of office time in one working day (450 for the Chinese default).
    pub fn daily_working_minutes(&self) -> u32 {
        // daily_ms is at most 1440 minutes, so this always fits.
        u32::try_from(self.daily_ms / MINUTE_MS).unwrap_or(u32::MAX)
    }

    /// The office intervals, in minutes after local midnight.
    pub fn office_hours(&self) -> &[(u16, u16)] {
        &self.office_minutes
    }

    /// The fixed offset of local time from UTC, in minutes.
    pub fn utc_offset_minutes(&self) -> i32 {
        self.utc_offset_minutes
    }

    /// Length of a limit in milliseconds of its own kind of time: working milliseconds for
    /// working units (N working days = N × the daily office time), wall-clock ones otherwise.
    pub fn limit_millis(&self, limit: Limit) -> i64 {
        let n = i64::from(limit.amount);
        let unit_ms = match limit.unit {
            LimitUnit::WorkingMinutes | LimitUnit::NaturalMinutes => MINUTE_MS,
            LimitUnit::WorkingHours | LimitUnit::NaturalHours => HOUR_MS,
            LimitUnit::WorkingDays => self.daily_ms,
            LimitUnit::NaturalDays => DAY_MS,
        };
        // u32::MAX days of 24 h is about 3.7e17 ms: far below i64::MAX, no overflow possible.
        n * unit_ms
    }

    /// Deadline of a limit starting at `start`: natural units add wall time; working units count
    /// only office minutes of working days. N working days = N × daily_working_minutes working
    /// minutes; N working hours = 60N working minutes. When start is outside office hours
    /// counting begins at the next office interval. A deadline that falls exactly at the end of
    /// an interval is that end instant (not the next morning). Amount 0 → start.
    pub fn deadline(&self, start: Timestamp, limit: Limit) -> Timestamp {
        if limit.amount == 0 {
            return start;
        }
        let ms = self.limit_millis(limit);
        if limit.is_natural() {
            start.checked_add(SignedDuration::from_millis(ms)).unwrap_or(Timestamp::MAX)
        } else {
            self.add_working_millis(start, ms)
        }
    }

    /// Working minutes (as milliseconds, exact) in [a, b); 0 if b <= a.
    pub fn working_millis_between(&self, a: Timestamp, b: Timestamp) -> i64 {
        let (la, lb) = (self.local_ms(a), self.local_ms(b));
        if lb <= la {
            return 0;
        }
        let (day_a, time_a) = (la.div_euclid(DAY_MS), la.rem_euclid(DAY_MS));
        let (day_b, time_b) = (lb.div_euclid(DAY_MS), lb.rem_euclid(DAY_MS));
        if day_a == day_b {
            return if self.is_working_day_number(day_a) {
                self.office_ms_before(time_b) - self.office_ms_before(time_a)
            } else {
                0
            };
        }
        let head = if self.is_working_day_number(day_a) { self.daily_ms - self.office_ms_before(time_a) } else { 0 };
        let tail = if self.is_working_day_number(day_b) { self.office_ms_before(time_b) } else { 0 };
        head + tail + self.daily_ms * self.working_days_in(day_a + 1, day_b)
    }

    /// Add an exact number of working milliseconds (used to carry a remaining budget across a
    /// suspension). The result is the earliest instant by which `ms` working milliseconds have
    /// passed since `start`; `ms <= 0` returns `start` unchanged. Saturates at `Timestamp::MAX`.
    pub fn add_working_millis(&self, start: Timestamp, ms: i64) -> Timestamp {
        if ms <= 0 {
            return start;
        }
        let local = self.local_ms(start);
        let mut day = local.div_euclid(DAY_MS);
        let time = local.rem_euclid(DAY_MS);
        let mut remaining = ms;

        // The rest of the first day, from `time` on.
        if self.is_working_day_number(day) {
            for &(s, e) in &self.office_ms {
                if e <= time {
                    continue;
                }
                let begin = s.max(time);
                let available = e - begin;
                // `<=`: a budget that runs out exactly at the end of an interval ends there,
                // not at the start of the next one.
                if remaining <= available {
                    return self.timestamp_from_local(day * DAY_MS + begin + remaining);
                }
                remaining -= available;
            }
        }
        day += 1;

        let week_ms = 5 * self.daily_ms;
        let last_day = Timestamp::MAX.as_millisecond().div_euclid(DAY_MS) + 1;
        // Whole days from here on. Runs of days with no listed holiday are plain weeks of five
        // working days each, so they are skipped a week at a time; only days near listed dates
        // (at most a few hundred per loaded year) are walked one by one.
        loop {
            if day > last_day {
                return Timestamp::MAX;
            }
            if remaining > week_ms {
                let plain_days = match self.days.range(day..).next() {
                    Some((&listed, _)) => listed - day,
                    None => i64::MAX,
                };
                // Leave at least 1 ms so the deadline is found inside a day below.
                let weeks = ((remaining - 1) / week_ms).min(plain_days / 7);
                if weeks > 0 {
                    day = day.saturating_add(7 * weeks);
                    remaining -= weeks * week_ms;
                    continue;
                }
            }
            if self.is_working_day_number(day) {
                if remaining <= self.daily_ms {
                    return self.timestamp_from_local(day * DAY_MS + self.office_offset(remaining));
                }
                remaining -= self.daily_ms;
            }
            day += 1;
        }
    }

    /// Traffic light of a stage: green up to 80 % of the limit elapsed, yellow 80–100 %, red
    /// beyond. Elapsed measured in the limit's own kind of time (working or natural).
    ///
    /// Any instant after the deadline is red, even outside office hours when no working time
    /// has passed since it: the stage is overdue (超时) from that instant on.
    pub fn light(&self, start: Timestamp, deadline: Timestamp, now: Timestamp, natural: bool) -> Light {
        if now > deadline {
            return Light::Red;
        }
        let (total, elapsed) = if natural {
            let start_ms = start.as_millisecond();
            ((deadline.as_millisecond() - start_ms).max(0), (now.as_millisecond() - start_ms).max(0))
        } else {
            (self.working_millis_between(start, deadline), self.working_millis_between(start, now))
        };
        // i128: 100 × a span of thousands of years in ms would overflow i64.
        if i128::from(elapsed) * 100 <= i128::from(total) * 80 {
            Light::Green
        } else {
            Light::Yellow
        }
    }

    fn local_ms(&self, ts: Timestamp) -> i64 {
        ts.as_millisecond() + i64::from(self.utc_offset_minutes) * MINUTE_MS
    }

    fn timestamp_from_local(&self, local_ms: i64) -> Timestamp {
        let utc_ms = local_ms.saturating_sub(i64::from(self.utc_offset_minutes) * MINUTE_MS);
        Timestamp::from_millisecond(utc_ms).unwrap_or(if utc_ms < 0 { Timestamp::MIN } else { Timestamp::MAX })
    }

    fn is_working_day_number(&self, day: i64) -> bool {
        match self.days.get(&day) {
            Some(entry) => entry.working,
            None => is_plain_weekday(day),
        }
    }

    /// Working days in the day-number range [from, to): plain weekdays by arithmetic, then
    /// corrected for every listed day in the range.
    fn working_days_in(&self, from: i64, to: i64) -> i64 {
        if to <= from {
            return 0;
        }
        let plain = weekdays_before(to) - weekdays_before(from);
        let correction: i64 = self
            .days
            .range(from..to)
            .map(|(&day, entry)| i64::from(entry.working) - i64::from(is_plain_weekday(day)))
            .sum();
        plain + correction
    }

    /// Office milliseconds of one working day that lie before `time` (ms after midnight).
    fn office_ms_before(&self, time: i64) -> i64 {
        self.office_ms.iter().map(|&(s, e)| (e.min(time) - s).max(0)).sum()
    }

    /// The time of day (ms after midnight) at which `worked` office milliseconds of a day have
    /// passed, for 0 < worked <= daily_ms; an exact interval end stays that end.
    fn office_offset(&self, worked: i64) -> i64 {
        let mut remaining = worked;
        for &(s, e) in &self.office_ms {
            if remaining <= e - s {
                return s + remaining;
            }
            remaining -= e - s;
        }
        // Unreachable for worked <= daily_ms; the end of the day is the sensible bound.
        self.office_ms.last().map_or(0, |&(_, e)| e)
    }
}

/// Days since 1970-01-01 (negative before it).
fn day_number(d: Date) -> i64 {
    d.duration_since(Date::constant(1970, 1, 1)).as_hours().div_euclid(24)
}

fn is_plain_weekday(day: i64) -> bool {
    (day - MONDAY_ANCHOR).rem_euclid(7) < 5
}

/// Number of Monday-to-Friday days before `day`, counted from the anchor Monday; only
/// differences of this are meaningful.
fn weekdays_before(day: i64) -> i64 {
    let n = day - MONDAY_ANCHOR;
    5 * n.div_euclid(7) + n.rem_euclid(7).min(5)
}

fn year_start(year: i32) -> Result<Date, CalendarError> {
    year_date(year, 1, 1)
}

fn year_end(year: i32) -> Result<Date, CalendarError> {
    year_date(year, 12, 31)
}

fn year_date(year: i32, month: i8, day: i8) -> Result<Date, CalendarError> {
    i16::try_from(year).ok().and_then(|y| Date::new(y, month, day).ok()).ok_or(CalendarError::NoYear)
}

/// One holiday file, validated.
struct ParsedYear {
    year: i32,
    official: bool,
    source: Option<String>,
    entries: Vec<(Date, DayEntry)>,
}

fn parse_year_csv(text: &str) -> Result<ParsedYear, CalendarError> {
    // Files saved by spreadsheet programs often start with a byte order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut official = false;
    let mut source = None;
    let mut declared_year = None;
    let mut seen_header = false;
    let mut rows: Vec<(usize, Date, DayEntry)> = Vec::new();

    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            let Some((key, value)) = comment.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match key.trim().to_ascii_lowercase().as_str() {
                "official" => {
                    official = match value.to_ascii_lowercase().as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(CalendarError::BadOfficialFlag { line, value: value.to_owned() }),
                    }
                }
                "source" => source = Some(value.to_owned()),
                "year" => {
                    let year = value
                        .parse::<i32>()
                        .ok()
                        .filter(|y| (1..=9999).contains(y))
                        .ok_or_else(|| CalendarError::BadYear { line, value: value.to_owned() })?;
                    declared_year = Some(year);
                }
                // Any other comment is prose.
                _ => {}
            }
            continue;
        }
        let fields: Vec<&str> = trimmed.split(',').map(unquote).collect();
        if !seen_header {
            let is_header = fields.len() == 3
                && fields[0].eq_ignore_ascii_case("date")
                && fields[1].eq_ignore_ascii_case("kind")
                && fields[2].eq_ignore_ascii_case("name");
            if !is_header {
                return Err(CalendarError::BadHeader { line, found: trimmed.to_owned() });
            }
            seen_header = true;
            continue;
        }
        let [date, kind, name] = fields[..] else {
            return Err(CalendarError::FieldCount { line, found: fields.len() });
        };
        let date = parse_iso_date(date).ok_or_else(|| CalendarError::BadDate { line, value: date.to_owned() })?;
        let working = match kind.to_ascii_lowercase().as_str() {
            "holiday" => false,
            "workday" => true,
            _ => return Err(CalendarError::UnknownKind { line, value: kind.to_owned() }),
        };
        rows.push((line, date, DayEntry { working, name: name.to_owned() }));
    }
    if !seen_header {
        return Err(CalendarError::MissingHeader);
    }

    let year = match (declared_year, rows.first()) {
        (Some(year), _) => year,
        (None, Some((_, date, _))) => i32::from(date.year()),
        (None, None) => return Err(CalendarError::NoYear),
    };
    let mut first_lines: BTreeMap<Date, usize> = BTreeMap::new();
    let mut entries = Vec::with_capacity(rows.len());
    for (line, date, entry) in rows {
        if i32::from(date.year()) != year {
            return Err(CalendarError::WrongYear { line, date, year });
        }
        if let Some(&first_line) = first_lines.get(&date) {
            return Err(CalendarError::DuplicateDate { line, date, first_line });
        }
        first_lines.insert(date, line);
        entries.push((date, entry));
    }
    Ok(ParsedYear { year, official, source, entries })
}

/// Trims a field and removes one pair of surrounding double quotes, as spreadsheets write them.
fn unquote(field: &str) -> &str {
    let field = field.trim();
    field.strip_prefix('"').and_then(|f| f.strip_suffix('"')).unwrap_or(field)
}

/// Strict `YYYY-MM-DD`: jiff's parser also accepts other ISO 8601 forms, which a holiday file
/// should not contain.
fn parse_iso_date(s: &str) -> Option<Date> {
    let bytes = s.as_bytes();
    let shape_ok = bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, &b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !shape_ok {
        return None;
    }
    let year: i16 = s.get(0..4)?.parse().ok()?;
    let month: i8 = s.get(5..7)?.parse().ok()?;
    let day: i8 = s.get(8..10)?.parse().ok()?;
    Date::new(year, month, day).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::{date, Weekday};
    use proptest::prelude::*;

    /// A local Beijing time, "2026-10-09 16:00" or "2026-10-09 16:00:00.001".
    fn bj(s: &str) -> Timestamp {
        let iso = s.replace(' ', "T");
        let iso = if iso.len() == 16 { format!("{iso}:00") } else { iso };
        format!("{iso}+08:00").parse().unwrap()
    }

    fn cal() -> WorkCalendar {
        WorkCalendar::china_default()
    }

    // --- shipped data -------------------------------------------------------------------

    #[test]
    fn china_default_loads_all_shipped_years() {
        let c = cal();
        assert_eq!(c.years(), vec![(2025, true), (2026, true), (2027, false)]);
        assert_eq!(c.daily_working_minutes(), 450);
        assert_eq!(c.utc_offset_minutes(), 480);
        assert_eq!(c.office_hours(), &[(510, 720), (810, 1050)]);
        for (name, text) in CHINA_HOLIDAY_FILES {
            let mut fresh = WorkCalendar::new(480, &CHINA_OFFICE_HOURS).unwrap();
            assert!(fresh.load_year_csv(text).is_ok(), "{name}");
        }
        assert!(c.year_source(2026).unwrap().contains("2026年部分节假日安排"));
        assert!(c.year_source(2027).unwrap().contains("放假办法"));
        assert_eq!(c.year_source(2030), None);
    }

    #[test]
    fn shipped_make_up_days_are_weekends_and_counts_match_the_notices() {
        let c = cal();
        let mut workdays = Vec::new();
        let mut holidays = BTreeMap::new();
        for (&day, entry) in &c.days {
            let d = Date::constant(1970, 1, 1).checked_add(jiff::Span::new().days(day)).unwrap();
            assert_eq!(day_number(d), day);
            if entry.working {
                assert!(matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday));
                workdays.push(d);
            } else {
                *holidays.entry(d.year()).or_insert(0) += 1;
            }
        }
        // 2025: 1 + 8 + 3 + 5 + 3 + 8; 2026: 3 + 9 + 3 + 5 + 3 + 3 + 7; 2027 statutory 13.
        assert_eq!(holidays.get(&2025), Some(&28));
        assert_eq!(holidays.get(&2026), Some(&33));
        assert_eq!(holidays.get(&2027), Some(&13));
        assert_eq!(workdays.len(), 5 + 6);
        assert_eq!(c.day_name(date(2026, 10, 10)), Some("国庆节调休上班"));
        assert_eq!(c.day_name(date(2025, 1, 28)), Some("春节"));
        assert_eq!(c.day_name(date(2026, 3, 17)), None);
    }

    #[test]
    fn working_days_follow_the_schedule() {
        let c = cal();
        assert!(c.is_working_day(date(2026, 3, 13))); // Friday
        assert!(!c.is_working_day(date(2026, 3, 14))); // Saturday
        assert!(!c.is_working_day(date(2026, 3, 15))); // Sunday
        assert!(!c.is_working_day(date(2026, 10, 1))); // National Day, Thursday
        assert!(!c.is_working_day(date(2026, 10, 7))); // Wednesday, bridge day
        assert!(c.is_working_day(date(2026, 10, 10))); // Saturday, make-up
        assert!(c.is_working_day(date(2026, 9, 20))); // Sunday, make-up
        assert!(c.is_working_day(date(2025, 1, 26))); // Sunday, make-up
        assert!(!c.is_working_day(date(2025, 5, 5))); // Monday, Labour Day
        assert!(!c.is_working_day(date(2027, 2, 5))); // 除夕, statutory
        assert!(!c.is_working_day(date(2027, 2, 8))); // 初三, Monday

        // Unknown years are plain weeks.
        assert!(c.is_working_day(date(2030, 1, 1))); // Tuesday
        assert!(c.is_working_day(date(2024, 10, 1))); // Tuesday, but 2024 not loaded
        assert!(!c.is_working_day(date(2030, 1, 5))); // Saturday
    }

    // --- deadlines ----------------------------------------------------------------------

    #[test]
    fn deadline_across_a_weekend() {
        // Friday 16:30 + 2 h: one hour on Friday, one on Monday morning.
        let c = cal();
        assert_eq!(c.deadline(bj("2026-03-13 16:30"), Limit::working_hours(2)), bj("2026-03-16 09:30"));
    }

    #[test]
    fn deadline_across_national_day_2026_and_its_saturday_make_up_day() {
        let c = cal();
        // 90 min on Sep 30, Oct 1–7 off, 360 min left: 210 in the morning of Thu Oct 8, then
        // 150 from 13:30.
        assert_eq!(c.deadline(bj("2026-09-30 16:00"), Limit::working_days(1)), bj("2026-10-08 16:00"));
        // Friday Oct 9 16:00 + 3 h: 90 min on Friday, 90 min on make-up Saturday Oct 10.
        assert_eq!(c.deadline(bj("2026-10-09 16:00"), Limit::working_hours(3)), bj("2026-10-10 10:00"));
        // + 2 working days = 900 min: 90 Fri, 450 Sat, Sun off, 360 on Monday Oct 12.
        assert_eq!(c.deadline(bj("2026-10-09 16:00"), Limit::working_days(2)), bj("2026-10-12 16:00"));
    }

    #[test]
    fn deadline_across_lunch_break() {
        let c = cal();
        assert_eq!(c.deadline(bj("2026-03-17 11:30"), Limit::working_hours(1)), bj("2026-03-17 14:00"));
        // Starting during lunch counts from 13:30.
        assert_eq!(c.deadline(bj("2026-03-17 12:30"), Limit::working_minutes(30)), bj("2026-03-17 14:00"));
    }

    #[test]
    fn deadline_starting_outside_office_hours() {
        let c = cal();
        assert_eq!(c.deadline(bj("2026-03-17 07:00"), Limit::working_minutes(30)), bj("2026-03-17 09:00"));
        assert_eq!(c.deadline(bj("2026-03-17 18:00"), Limit::working_hours(1)), bj("2026-03-18 09:30"));
        // Exactly at closing time is outside: next morning.
        assert_eq!(c.deadline(bj("2026-03-17 17:30"), Limit::working_minutes(1)), bj("2026-03-18 08:31"));
        // Friday evening: Monday.
        assert_eq!(c.deadline(bj("2026-03-13 20:00"), Limit::working_minutes(30)), bj("2026-03-16 09:00"));
    }

    #[test]
    fn deadline_starting_on_a_holiday() {
        let c = cal();
        assert_eq!(c.deadline(bj("2026-10-03 10:00"), Limit::working_minutes(30)), bj("2026-10-08 09:00"));
        // Spring Festival 2026: Feb 15–23 off, Tue Feb 24 is the first working day.
        assert_eq!(c.deadline(bj("2026-02-17 09:00"), Limit::working_hours(8)), bj("2026-02-25 09:00"));
    }

    #[test]
    fn exact_end_of_interval_is_the_deadline() {
        let c = cal();
        assert_eq!(c.deadline(bj("2026-03-17 11:00"), Limit::working_hours(1)), bj("2026-03-17 12:00"));
        assert_eq!(c.deadline(bj("2026-03-17 16:30"), Limit::working_hours(1)), bj("2026-03-17 17:30"));
        assert_eq!(c.deadline(bj("2026-03-17 08:30"), Limit::working_days(1)), bj("2026-03-17 17:30"));
        // Before office hours, a whole day ends the same evening too.
        assert_eq!(c.deadline(bj("2026-03-17 06:00"), Limit::working_days(1)), bj("2026-03-17 17:30"));
    }

    #[test]
    fn working_days_unit() {
        let c = cal();
        assert_eq!(c.deadline(bj("2026-03-16 08:30"), Limit::working_days(5)), bj("2026-03-20 17:30"));
        assert_eq!(c.deadline(bj("2026-03-16 10:00"), Limit::working_days(1)), bj("2026-03-17 10:00"));
        // 15 working days across Spring Festival 2026 from Mon Feb 9 09:00: Feb 10–13, make-up
        // Sat 14, (15–23 off), 24–27, make-up Sat 28, Mar 2–6.
        assert_eq!(c.deadline(bj("2026-02-09 09:00"), Limit::working_days(15)), bj("2026-03-06 09:00"));
        // 2028 is not loaded: plain weeks. Mon 2028-01-03 + 10 working days → Mon Jan 17.
        assert_eq!(c.deadline(bj("2028-01-03 09:00"), Limit::working_days(10)), bj("2028-01-17 09:00"));
    }

    #[test]
    fn natural_units_add_wall_time() {
        let c = cal();
        let start = bj("2026-10-01 10:00");
        assert_eq!(c.deadline(start, Limit::natural_minutes(30)), bj("2026-10-01 10:30"));
        assert_eq!(c.deadline(start, Limit::natural_hours(2)), bj("2026-10-01 12:00"));
        assert_eq!(c.deadline(start, Limit::natural_days(3)), bj("2026-10-04 10:00"));
        let night = bj("2026-03-17 23:50");
        assert_eq!(c.deadline(night, Limit::natural_minutes(20)), bj("2026-03-18 00:10"));
    }

    #[test]
    fn amount_zero_is_start() {
        let c = cal();
        let start = bj("2026-10-03 03:00");
        for limit in [Limit::working_minutes(0), Limit::working_days(0), Limit::natural_hours(0)] {
            assert_eq!(c.deadline(start, limit), start);
        }
        assert_eq!(c.add_working_millis(start, 0), start);
        assert_eq!(c.add_working_millis(start, -5), start);
    }

    #[test]
    fn millisecond_exactness() {
        let c = cal();
        assert_eq!(c.add_working_millis(bj("2026-03-17 11:59:59.999"), 2), bj("2026-03-17 13:30:00.001"));
        assert_eq!(c.working_millis_between(bj("2026-03-17 11:59:59.999"), bj("2026-03-17 13:30:00.001")), 2);
    }

    #[test]
    fn working_millis_between_hand_computed() {
        let c = cal();
        // Fri 16:00 → Mon 09:00: 90 + 30 minutes.
        assert_eq!(c.working_millis_between(bj("2026-03-13 16:00"), bj("2026-03-16 09:00")), 120 * MINUTE_MS);
        // Across National Day 2026: Sep 30 from 08:30 (450) + Oct 8 (450) + Oct 9 (450) +
        // Oct 10 make-up until 10:00 (90).
        assert_eq!(
            c.working_millis_between(bj("2026-09-30 08:30"), bj("2026-10-10 10:00")),
            (450 * 3 + 90) * MINUTE_MS
        );
        assert_eq!(c.working_millis_between(bj("2026-03-16 09:00"), bj("2026-03-13 16:00")), 0);
        // Entirely within a holiday.
        assert_eq!(c.working_millis_between(bj("2026-10-02 09:00"), bj("2026-10-02 17:00")), 0);
    }

    #[test]
    fn long_limits_are_fast_and_huge_ones_saturate() {
        let c = cal();
        let start = bj("2026-03-16 09:00");
        // 100 000 working days ≈ 383 years of plain weeks: weeks are skipped, not walked.
        let far = c.deadline(start, Limit::working_days(100_000));
        assert_eq!(c.working_millis_between(start, far), c.limit_millis(Limit::working_days(100_000)));
        assert_eq!(c.deadline(start, Limit::working_days(u32::MAX)), Timestamp::MAX);
        assert_eq!(c.deadline(start, Limit::natural_days(u32::MAX)), Timestamp::MAX);
        assert_eq!(c.add_working_millis(start, i64::MAX), Timestamp::MAX);
    }

    #[test]
    fn other_offsets_and_office_hours() {
        // A UTC calendar with 09:00–17:00 and no holidays.
        let c = WorkCalendar::new(0, &[(540, 1020)]).unwrap();
        assert_eq!(c.daily_working_minutes(), 480);
        let start: Timestamp = "2026-10-01T16:00:00Z".parse().unwrap();
        assert_eq!(c.deadline(start, Limit::working_hours(2)), "2026-10-02T10:00:00Z".parse().unwrap());
        // An office day ending at midnight.
        let late = WorkCalendar::new(480, &[(1200, 1440)]).unwrap();
        assert_eq!(late.deadline(bj("2026-03-17 23:00"), Limit::working_hours(1)), bj("2026-03-18 00:00"));
    }

    #[test]
    fn office_hours_are_validated() {
        assert_eq!(WorkCalendar::new(480, &[]), Err(CalendarError::NoOfficeHours));
        assert_eq!(
            WorkCalendar::new(480, &[(600, 600)]),
            Err(CalendarError::BadOfficeInterval { index: 0, start: 600, end: 600 })
        );
        assert_eq!(
            WorkCalendar::new(480, &[(600, 1441)]),
            Err(CalendarError::BadOfficeInterval { index: 0, start: 600, end: 1441 })
        );
        assert_eq!(
            WorkCalendar::new(480, &[(510, 720), (700, 1050)]),
            Err(CalendarError::OfficeIntervalsOutOfOrder { index: 1 })
        );
        assert_eq!(WorkCalendar::new(19 * 60, &[(510, 720)]), Err(CalendarError::BadUtcOffset(1140)));
        assert!(WorkCalendar::new(-300, &[(510, 720), (720, 1050)]).is_ok());
    }

    // --- traffic light ------------------------------------------------------------------

    #[test]
    fn light_boundaries_in_working_time() {
        let c = cal();
        let start = bj("2026-03-16 08:30");
        let deadline = c.deadline(start, Limit::working_minutes(100));
        assert_eq!(deadline, bj("2026-03-16 10:10"));
        let at = |s: &str| c.light(start, deadline, bj(s), false);
        assert_eq!(at("2026-03-16 08:00"), Light::Green); // before start
        assert_eq!(at("2026-03-16 09:50"), Light::Green); // exactly 80 %
        assert_eq!(at("2026-03-16 09:50:00.001"), Light::Yellow);
        assert_eq!(at("2026-03-16 10:10"), Light::Yellow); // exactly 100 %
        assert_eq!(at("2026-03-16 10:10:00.001"), Light::Red);

        // Across lunch: 11:00 + 100 min = 14:10; 80 % = 80 min is reached at 13:50.
        let start = bj("2026-03-16 11:00");
        let deadline = c.deadline(start, Limit::working_minutes(100));
        assert_eq!(deadline, bj("2026-03-16 14:10"));
        let at = |s: &str| c.light(start, deadline, bj(s), false);
        assert_eq!(at("2026-03-16 13:00"), Light::Green); // lunch does not count
        assert_eq!(at("2026-03-16 13:50"), Light::Green);
        assert_eq!(at("2026-03-16 13:51"), Light::Yellow);

        // A deadline at closing time: the evening after it is overdue, not yellow.
        let start = bj("2026-03-16 16:30");
        let deadline = c.deadline(start, Limit::working_hours(1));
        assert_eq!(c.light(start, deadline, bj("2026-03-16 19:00"), false), Light::Red);
    }

    #[test]
    fn light_boundaries_in_natural_time() {
        let c = cal();
        let start = bj("2026-10-01 10:00");
        let deadline = c.deadline(start, Limit::natural_minutes(100));
        let at = |s: &str| c.light(start, deadline, bj(s), true);
        assert_eq!(at("2026-10-01 11:20"), Light::Green);
        assert_eq!(at("2026-10-01 11:20:00.001"), Light::Yellow);
        assert_eq!(at("2026-10-01 11:40"), Light::Yellow);
        assert_eq!(at("2026-10-01 11:40:00.001"), Light::Red);
    }

    // --- limits -------------------------------------------------------------------------

    #[test]
    fn limit_helpers() {
        assert_eq!(Limit::working_hours(2).scaled(150), Limit::working_hours(3));
        assert_eq!(Limit::working_hours(3).scaled(150), Limit::working_hours(5));
        assert_eq!(Limit::working_days(5).scaled(100), Limit::working_days(5));
        assert_eq!(Limit::natural_minutes(0).scaled(150), Limit::natural_minutes(0));
        assert_eq!(Limit::working_minutes(1).scaled(1), Limit::working_minutes(1));
        assert_eq!(Limit::working_days(u32::MAX).scaled(200), Limit::working_days(u32::MAX));
        assert!(Limit::natural_hours(1).is_natural());
        assert!(!Limit::working_hours(1).is_natural());
        assert_eq!(Limit::working_hours(2).describe_zh(), "2个工作时");
        assert_eq!(Limit::working_days(3).describe_zh(), "3个工作日");
        assert_eq!(Limit::working_minutes(30).describe_zh(), "30个工作分钟");
        assert_eq!(Limit::natural_minutes(30).describe_zh(), "30分钟(自然时间)");
        assert_eq!(Limit::natural_hours(2).describe_zh(), "2小时(自然时间)");
        assert_eq!(Limit::natural_days(1).describe_zh(), "1天(自然时间)");
        assert_eq!(cal().limit_millis(Limit::working_days(2)), 900 * MINUTE_MS);
    }

    #[test]
    fn serde_shapes() {
        let json = serde_json::to_string(&Limit::working_hours(2)).unwrap();
        assert_eq!(json, r#"{"amount":2,"unit":"working_hours"}"#);
        let back: Limit = serde_json::from_str(r#"{"amount":30,"unit":"natural_minutes"}"#).unwrap();
        assert_eq!(back, Limit::natural_minutes(30));
        assert_eq!(serde_json::to_string(&Light::Yellow).unwrap(), r#""yellow""#);
    }

    // --- holiday files ------------------------------------------------------------------

    fn load(text: &str) -> Result<i32, CalendarError> {
        WorkCalendar::new(480, &CHINA_OFFICE_HOURS)?.load_year_csv(text)
    }

    #[test]
    fn csv_errors_carry_line_numbers() {
        assert_eq!(
            load("# c\ndate,kind,name\n2030-01-01,holiday,元旦\n2030-02-30,holiday,x\n"),
            Err(CalendarError::BadDate { line: 4, value: "2030-02-30".into() })
        );
        assert_eq!(
            load("date,kind,name\n2030/01/01,holiday,元旦\n"),
            Err(CalendarError::BadDate { line: 2, value: "2030/01/01".into() })
        );
        assert_eq!(
            load("date,kind,name\n2030-01-01,vacation,元旦\n"),
            Err(CalendarError::UnknownKind { line: 2, value: "vacation".into() })
        );
        assert_eq!(
            load("date,kind,name\n2030-01-01,holiday,元旦\n\n2030-01-01,workday,x\n"),
            Err(CalendarError::DuplicateDate { line: 4, date: date(2030, 1, 1), first_line: 2 })
        );
        assert_eq!(
            load("date,kind,name\n2030-01-01,holiday,元旦\n2031-01-01,holiday,元旦\n"),
            Err(CalendarError::WrongYear { line: 3, date: date(2031, 1, 1), year: 2030 })
        );
        assert_eq!(
            load("# year: 2031\ndate,kind,name\n2030-01-01,holiday,元旦\n"),
            Err(CalendarError::WrongYear { line: 3, date: date(2030, 1, 1), year: 2031 })
        );
        assert_eq!(load("date,kind,name\n2030-01-01,holiday\n"), Err(CalendarError::FieldCount { line: 2, found: 2 }));
        assert_eq!(
            load("# only a comment\n2030-01-01,holiday,元旦\n"),
            Err(CalendarError::BadHeader { line: 2, found: "2030-01-01,holiday,元旦".into() })
        );
        assert_eq!(load("# nothing\n\n"), Err(CalendarError::MissingHeader));
        assert_eq!(load("date,kind,name\n"), Err(CalendarError::NoYear));
        assert_eq!(
            load("# official: maybe\ndate,kind,name\n2030-01-01,holiday,元旦\n"),
            Err(CalendarError::BadOfficialFlag { line: 1, value: "maybe".into() })
        );
        assert_eq!(
            load("# year: MMXXX\ndate,kind,name\n"),
            Err(CalendarError::BadYear { line: 1, value: "MMXXX".into() })
        );
        let message = load("date,kind,name\n2030-13-01,holiday,x\n").unwrap_err().to_string();
        assert!(message.starts_with("line 2:"), "{message}");
    }

    #[test]
    fn csv_loading_replaces_the_year_and_accepts_spreadsheet_output() {
        let mut c = cal();
        assert!(!c.is_working_day(date(2027, 2, 5)));
        let text = "\u{feff}# official: true\r\n# source: test notice\r\nDate,Kind,Name\r\n\
                    \"2027-02-06\",holiday,\"春节\"\r\n2027-02-20,workday,春节调休上班\r\n";
        assert_eq!(c.load_year_csv(text), Ok(2027));
        // The statutory Feb 5 is gone, the new data is in.
        assert!(c.is_working_day(date(2027, 2, 5)));
        assert!(!c.is_working_day(date(2027, 2, 6)));
        assert!(c.is_working_day(date(2027, 2, 20)));
        assert_eq!(c.day_name(date(2027, 10, 1)), None);
        assert_eq!(c.years(), vec![(2025, true), (2026, true), (2027, true)]);
        assert_eq!(c.year_source(2027), Some("test notice"));
        // Neighbouring years are untouched.
        assert!(!c.is_working_day(date(2026, 10, 1)));
        // A failed load leaves the calendar as it was.
        let before = c.clone();
        assert!(c.load_year_csv("date,kind,name\n2027-01-01,holiday,x\n2027-01-01,holiday,y\n").is_err());
        assert_eq!(c, before);
        // An empty year with `# year:` clears that year.
        assert_eq!(c.load_year_csv("# year: 2027\ndate,kind,name\n"), Ok(2027));
        assert_eq!(c.years().last(), Some(&(2027, false)));
        assert!(c.is_working_day(date(2027, 2, 5)));
        assert_eq!(c.day_name(date(2027, 2, 6)), None);
    }

    // --- properties ---------------------------------------------------------------------

    /// 2024-01-01 .. 2029-01-01 local: loaded years and unknown years on both sides.
    fn any_instant() -> impl Strategy<Value = Timestamp> {
        let from = bj("2024-01-01 00:00").as_millisecond();
        let to = bj("2029-01-01 00:00").as_millisecond();
        (from..to).prop_map(|ms| Timestamp::from_millisecond(ms).unwrap())
    }

    fn any_working_limit() -> impl Strategy<Value = Limit> {
        (
            0u32..2000,
            prop_oneof![Just(LimitUnit::WorkingMinutes), Just(LimitUnit::WorkingHours), Just(LimitUnit::WorkingDays)],
        )
            .prop_map(|(amount, unit)| Limit {
                amount: match unit {
                    LimitUnit::WorkingDays => amount % 60,
                    LimitUnit::WorkingHours => amount % 200,
                    _ => amount,
                },
                unit,
            })
    }

    fn any_unit() -> impl Strategy<Value = LimitUnit> {
        prop_oneof![
            Just(LimitUnit::WorkingMinutes),
            Just(LimitUnit::WorkingHours),
            Just(LimitUnit::WorkingDays),
            Just(LimitUnit::NaturalMinutes),
            Just(LimitUnit::NaturalHours),
            Just(LimitUnit::NaturalDays),
        ]
    }

    /// Local date and ms after midnight of an instant in the China calendar.
    fn local_parts(ts: Timestamp) -> (i64, i64) {
        let local = ts.as_millisecond() + 480 * MINUTE_MS;
        (local.div_euclid(DAY_MS), local.rem_euclid(DAY_MS))
    }

    /// Brute-force reference: count office minutes one by one.
    fn naive_working_minutes(c: &WorkCalendar, a: Timestamp, b: Timestamp) -> i64 {
        let mut count = 0;
        let mut t = a.as_millisecond();
        while t < b.as_millisecond() {
            let (day, time) = local_parts(Timestamp::from_millisecond(t).unwrap());
            if c.is_working_day_number(day) && c.office_ms.iter().any(|&(s, e)| s <= time && time < e) {
                count += 1;
            }
            t += MINUTE_MS;
        }
        count
    }

    proptest! {
        #[test]
        fn deadline_spends_exactly_the_limit(start in any_instant(), limit in any_working_limit()) {
            let c = cal();
            let d = c.deadline(start, limit);
            prop_assert_eq!(c.working_millis_between(start, d), c.limit_millis(limit));
            prop_assert!(d >= start);
        }

        #[test]
        fn deadline_spends_exactly_the_limit_from_inside_office_hours(
            day in 0i64..1800, slot in 0i64..(450 * MINUTE_MS), limit in any_working_limit()
        ) {
            let c = cal();
            let day = day_number(date(2024, 3, 1)) + day;
            prop_assume!(c.is_working_day_number(day));
            let time = c.office_offset(slot + 1) - 1;
            let start = c.timestamp_from_local(day * DAY_MS + time);
            let (_, t) = local_parts(start);
            prop_assert!(c.office_ms.iter().any(|&(s, e)| s <= t && t < e));
            prop_assert_eq!(
                c.working_millis_between(start, c.deadline(start, limit)),
                c.limit_millis(limit)
            );
        }

        #[test]
        fn deadline_is_monotone_in_amount(
            start in any_instant(), a in 0u32..400, b in 0u32..400, unit in any_unit()
        ) {
            let c = cal();
            let (lo, hi) = (a.min(b), a.max(b));
            let dl = c.deadline(start, Limit { amount: lo, unit });
            let dh = c.deadline(start, Limit { amount: hi, unit });
            prop_assert!(dl <= dh);
            if lo < hi {
                prop_assert!(dl < dh);
            }
        }

        #[test]
        fn add_back_the_elapsed_working_time(a in any_instant(), b in any_instant()) {
            let c = cal();
            let (s, t) = (a.min(b), a.max(b));
            let w = c.working_millis_between(s, t);
            let x = c.add_working_millis(s, w);
            prop_assert!(x <= t);
            prop_assert!(x >= s);
            prop_assert_eq!(c.working_millis_between(s, x), w);
            // Nothing of [x, t) is office time of a working day.
            prop_assert_eq!(c.working_millis_between(x, t), 0);
            // And x is t itself whenever t lies inside an office interval (start excluded).
            let (day, time) = local_parts(t);
            let inside = c.is_working_day_number(day)
                && c.office_ms.iter().any(|&(st, e)| st < time && time <= e);
            if w > 0 && inside {
                prop_assert_eq!(x, t);
            }
        }

        #[test]
        fn working_deadlines_land_inside_office_time_of_working_days(
            start in any_instant(), limit in any_working_limit()
        ) {
            prop_assume!(limit.amount > 0);
            let c = cal();
            let (day, time) = local_parts(c.deadline(start, limit));
            prop_assert!(c.is_working_day_number(day));
            prop_assert!(c.office_ms.iter().any(|&(s, e)| s < time && time <= e));
        }

        #[test]
        fn between_is_additive(a in any_instant(), b in any_instant(), m in any_instant()) {
            let c = cal();
            let mut v = [a, b, m];
            v.sort();
            prop_assert_eq!(
                c.working_millis_between(v[0], v[1]) + c.working_millis_between(v[1], v[2]),
                c.working_millis_between(v[0], v[2])
            );
        }

        #[test]
        fn between_matches_minute_counting(start_min in 0i64..2_600_000, len in 0i64..(12 * 1440)) {
            // Minute-aligned instants from 2024-01-01 on, at most 12 days apart.
            let c = cal();
            let base = bj("2024-01-01 00:00").as_millisecond();
            let a = Timestamp::from_millisecond(base + start_min * MINUTE_MS).unwrap();
            let b = Timestamp::from_millisecond(base + (start_min + len) * MINUTE_MS).unwrap();
            prop_assert_eq!(
                c.working_millis_between(a, b),
                naive_working_minutes(&c, a, b) * MINUTE_MS
            );
        }

        #[test]
        fn day_numbers_agree_with_jiff(days in -800_000i64..2_900_000) {
            let d = Date::constant(1970, 1, 1).checked_add(jiff::Span::new().days(days));
            if let Ok(d) = d {
                prop_assert_eq!(day_number(d), days);
                prop_assert_eq!(
                    is_plain_weekday(days),
                    !matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday)
                );
            }
        }

        #[test]
        fn weekday_counting_matches_iteration(from in -3000i64..3000, len in 0i64..40) {
            let counted = (from..from + len).filter(|&d| is_plain_weekday(d)).count() as i64;
            prop_assert_eq!(weekdays_before(from + len) - weekdays_before(from), counted);
        }
    }
}
