//! Alertmanager's time intervals (`timeinterval/timeinterval.go`): parsing
//! the `time_intervals` (and legacy `mute_time_intervals`) config with
//! Alertmanager's rules and messages, and deciding whether an instant is
//! inside an interval ([`TimeInterval::contains`], Alertmanager's
//! `ContainsTime`) and whether a route is muted at an instant
//! ([`RouteTimeIntervals::muted_at`], its `TimeActiveStage` and
//! `TimeMuteStage`).
//!
//! The rules, as Alertmanager has them: every range is inclusive except
//! `times`, whose `end_time` is exclusive (`00:00`–`24:00`, in minutes);
//! weekday and month names are case-insensitive; a negative day of month
//! counts from the end of the month (`-1` is its last day); each field that
//! is set must match, any one of its ranges matching is enough, and a field
//! that is not set matches everything. An instant is first converted to the
//! interval's `location` (an IANA zone from the `chrono-tz` database; UTC
//! when unset). `Local` is refused: the host's zone would make the config
//! mean different things on different machines.
//!
//! Two deliberate differences. Alertmanager derives the length of a month
//! from elapsed hours, so in a zone whose clocks spring forward that month
//! (March in `Europe/Berlin`) it counts 30 days and `-1` means the 30th;
//! here a month has its calendar length. And a month number outside 1–12,
//! which Alertmanager accepts and never matches, is refused as a typo.
//!
//! Pure data and functions: no tasks, no clocks, no I/O. Never imports
//! rules or notify.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// A named list of time intervals: one entry of `time_intervals` (or of the
/// legacy `mute_time_intervals`). It contains an instant when any of its
/// intervals does; an empty list contains none.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedTimeInterval {
    /// The name routes refer to; required (checked with the config).
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub time_intervals: Vec<TimeInterval>,
}

impl NamedTimeInterval {
    /// Whether any of the intervals contains the instant.
    pub fn contains(&self, instant: DateTime<Utc>) -> bool {
        self.time_intervals.iter().any(|ti| ti.contains(instant))
    }
}

/// One time interval (Alertmanager's `TimeInterval`). A field left unset
/// matches every instant; a field set to an empty list matches none (as in
/// Alertmanager, where `[]` is not nil).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeInterval {
    /// Times of day, `start_time` inclusive, `end_time` exclusive.
    #[serde(default)]
    pub times: Option<Vec<TimeRange>>,
    /// `monday:friday`, `saturday`, ...
    #[serde(default)]
    pub weekdays: Option<Vec<WeekdayRange>>,
    /// `1:5`, `-3:-1` (the last three days), ...
    #[serde(default)]
    pub days_of_month: Option<Vec<DayOfMonthRange>>,
    /// `january:march`, `12`, ...
    #[serde(default)]
    pub months: Option<Vec<MonthRange>>,
    /// `2026:2027`, ...
    #[serde(default)]
    pub years: Option<Vec<YearRange>>,
    /// The zone the other fields are read in; UTC when unset.
    #[serde(default)]
    pub location: Option<Location>,
}

impl TimeInterval {
    /// Alertmanager's `ContainsTime`: the instant, seen in the interval's
    /// location, satisfies every field that is set.
    pub fn contains(&self, instant: DateTime<Utc>) -> bool {
        let tz = self.location.as_ref().map_or(Tz::UTC, |l| l.0);
        let t = instant.with_timezone(&tz);
        if let Some(times) = &self.times {
            let minute = t.hour() * 60 + t.minute();
            if !times
                .iter()
                .any(|r| minute >= r.start_minute && minute < r.end_minute)
            {
                return false;
            }
        }
        if let Some(days) = &self.days_of_month {
            let in_month = days_in_month(t.year(), t.month());
            let day = t.day() as i32;
            let matched = days.iter().any(|r| {
                let resolve = |d: i32| if d < 0 { in_month + d + 1 } else { d };
                let (begin, end) = (resolve(r.0.begin), resolve(r.0.end));
                // A range starting after the end of this month matches nothing.
                if begin > in_month {
                    return false;
                }
                let clamp = |d: i32| d.clamp(-in_month, in_month);
                day >= clamp(begin) && day <= clamp(end)
            });
            if !matched {
                return false;
            }
        }
        if let Some(months) = &self.months {
            let month = t.month() as i32;
            if !months.iter().any(|r| r.0.contains(month)) {
                return false;
            }
        }
        if let Some(weekdays) = &self.weekdays {
            let weekday = t.weekday().num_days_from_sunday() as i32;
            if !weekdays.iter().any(|r| r.0.contains(weekday)) {
                return false;
            }
        }
        if let Some(years) = &self.years
            && !years.iter().any(|r| r.0.contains(t.year()))
        {
            return false;
        }
        true
    }
}

/// Calendar days in a month (28–31).
fn days_in_month(year: i32, month: u32) -> i32 {
    let first = NaiveDate::from_ymd_opt(year, month, 1);
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    };
    match (first, next) {
        (Some(a), Some(b)) => (b - a).num_days() as i32,
        _ => 31,
    }
}

/// An inclusive range of integers (weekdays 0 = Sunday, days, months, years).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InclusiveRange {
    pub begin: i32,
    pub end: i32,
}

impl InclusiveRange {
    fn contains(&self, n: i32) -> bool {
        n >= self.begin && n <= self.end
    }
}

/// Alertmanager's `stringableRangeFromString`: `a:b` or `a`, lower-cased,
/// each member read by `member`.
fn parse_range(
    s: &str,
    member: impl Fn(&str) -> Result<i32, String>,
) -> Result<InclusiveRange, String> {
    let lower = s.to_lowercase();
    if lower.contains(':') {
        let parts: Vec<&str> = lower.split(':').collect();
        let [a, b] = parts.as_slice() else {
            return Err(format!("couldn't parse range {lower}, invalid format"));
        };
        return Ok(InclusiveRange {
            begin: member(a)?,
            end: member(b)?,
        });
    }
    let n = member(&lower)?;
    Ok(InclusiveRange { begin: n, end: n })
}

/// A number as Go's `strconv.Atoi` reads it (an optional sign, digits).
fn parse_int(s: &str) -> Result<i32, String> {
    s.parse::<i32>()
        .map_err(|_| format!("strconv.Atoi: parsing {s:?}: invalid syntax"))
}

const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// Weekdays by name only (`monday:friday`), 0 = Sunday.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeekdayRange(pub InclusiveRange);

impl FromStr for WeekdayRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let r = parse_range(s, |m| {
            WEEKDAYS
                .iter()
                .position(|d| *d == m)
                .map(|i| i as i32)
                .ok_or_else(|| format!("{m} is not a valid weekday"))
        })?;
        if r.begin > r.end {
            // Alertmanager's wording, kept so messages match its docs and issues.
            return Err("start day cannot be before end day".into());
        }
        Ok(Self(r))
    }
}

/// Days of the month, 1–31 or -31–-1 counted from the end (-1 = last day).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayOfMonthRange(pub InclusiveRange);

impl FromStr for DayOfMonthRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let r = parse_range(s, parse_int)?;
        for d in [r.begin, r.end] {
            if d == 0 || !(-31..=31).contains(&d) {
                return Err(format!("{d} is not a valid day of the month: out of range"));
            }
        }
        if r.begin < 0 && r.end > 0 {
            return Err("end day must be negative if start day is negative".into());
        }
        // Only ranges wrong in every month are refused (28 days at least).
        let check = |d: i32| if d < 0 { 28 + d } else { d };
        if check(r.begin) > check(r.end) {
            return Err(format!(
                "end day {} is always before start day {}",
                r.end, r.begin
            ));
        }
        Ok(Self(r))
    }
}

/// Months by name or number (`january:march`, `12`), 1 = January.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonthRange(pub InclusiveRange);

impl FromStr for MonthRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let r = parse_range(s, |m| match MONTHS.iter().position(|n| *n == m) {
            Some(i) => Ok(i as i32 + 1),
            None => m
                .parse::<i32>()
                .map_err(|_| format!("{m} is not a valid month")),
        })?;
        // Alertmanager accepts 0 or 13 (which never match); refusing them
        // catches the typo instead.
        for m in [r.begin, r.end] {
            if !(1..=12).contains(&m) {
                return Err(format!("{m} is not a valid month: out of range"));
            }
        }
        if r.begin > r.end {
            return Err(format!(
                "end month {} is before start month {}",
                MONTHS[(r.end - 1) as usize],
                MONTHS[(r.begin - 1) as usize]
            ));
        }
        Ok(Self(r))
    }
}

/// Years (`2026:2027`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YearRange(pub InclusiveRange);

impl FromStr for YearRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let r = parse_range(s, parse_int)?;
        if r.begin > r.end {
            return Err(format!(
                "end year {} is before start year {}",
                r.end, r.begin
            ));
        }
        Ok(Self(r))
    }
}

/// A range of minutes of the day, `end_minute` exclusive (`17:00` = 1020).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub start_minute: u32,
    pub end_minute: u32,
}

impl TimeRange {
    /// From `start_time` and `end_time` as written (`"09:00"`, `"24:00"`).
    pub fn parse(start: &str, end: &str) -> Result<Self, String> {
        if start.is_empty() || end.is_empty() {
            return Err("both start and end times must be provided".into());
        }
        let (start_minute, end_minute) = (parse_time(start)?, parse_time(end)?);
        if start_minute >= end_minute {
            return Err("start time cannot be equal or greater than end time".into());
        }
        Ok(Self {
            start_minute,
            end_minute,
        })
    }
}

/// `HH:MM` from `00:00` to `23:59`, or `24:00`, as minutes of the day.
fn parse_time(s: &str) -> Result<u32, String> {
    let invalid = || format!("couldn't parse timestamp {s}, invalid format");
    if s == "24:00" {
        return Ok(24 * 60);
    }
    let b = s.as_bytes();
    if b.len() != 5 || b[2] != b':' {
        return Err(invalid());
    }
    let two = |i: usize| -> Option<u32> {
        let (h, l) = (b[i], b[i + 1]);
        (h.is_ascii_digit() && l.is_ascii_digit())
            .then(|| u32::from(h - b'0') * 10 + u32::from(l - b'0'))
    };
    match (two(0), two(3)) {
        (Some(h), Some(m)) if h < 24 && m < 60 => Ok(h * 60 + m),
        _ => Err(invalid()),
    }
}

/// An IANA time zone (`Europe/Berlin`); `UTC` and the empty string are UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location(pub Tz);

impl FromStr for Location {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "" | "UTC" => Ok(Self(Tz::UTC)),
            "Local" => Err(
                "location \"Local\" is not supported: name an IANA time zone such as \"Europe/Berlin\""
                    .into(),
            ),
            _ => s
                .parse::<Tz>()
                .map(Self)
                .map_err(|_| format!("unknown time zone {s}")),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

/// A scalar as text: Alertmanager reads `12` and `"12"` alike.
struct ScalarText;

impl Visitor<'_> for ScalarText {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an integer")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
}

macro_rules! deserialize_from_str {
    ($($t:ty),*) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = d.deserialize_any(ScalarText)?;
                text.parse().map_err(de::Error::custom)
            }
        }
    )*};
}

deserialize_from_str!(
    WeekdayRange,
    DayOfMonthRange,
    MonthRange,
    YearRange,
    Location
);

impl<'de> Deserialize<'de> for TimeRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            #[serde(default)]
            start_time: String,
            #[serde(default)]
            end_time: String,
        }
        let raw = Raw::deserialize(d)?;
        TimeRange::parse(&raw.start_time, &raw.end_time).map_err(de::Error::custom)
    }
}

/// A route's `mute_time_intervals` and `active_time_intervals`, resolved to
/// their definitions. Alertmanager does not pass them on to child routes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteTimeIntervals {
    pub mute: Vec<NamedTimeInterval>,
    pub active: Vec<NamedTimeInterval>,
}

/// Why a route is muted at an instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Muted {
    /// Inside these mute intervals.
    ByMuteIntervals(Vec<String>),
    /// Outside every one of these active intervals.
    OutsideActiveIntervals(Vec<String>),
}

impl fmt::Display for Muted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Muted::ByMuteIntervals(n) => write!(f, "in mute time intervals [{}]", n.join(",")),
            Muted::OutsideActiveIntervals(n) => {
                write!(f, "outside active time intervals [{}]", n.join(","))
            }
        }
    }
}

impl RouteTimeIntervals {
    /// Whether neither is set.
    pub fn is_empty(&self) -> bool {
        self.mute.is_empty() && self.active.is_empty()
    }

    /// Alertmanager's `TimeActiveStage` then `TimeMuteStage`: muted when
    /// active intervals are set and none contains `now`, or when any mute
    /// interval contains it. `None`: notifications go out.
    pub fn muted_at(&self, now: DateTime<Utc>) -> Option<Muted> {
        if !self.active.is_empty() && !self.active.iter().any(|a| a.contains(now)) {
            return Some(Muted::OutsideActiveIntervals(
                self.active.iter().map(|a| a.name.clone()).collect(),
            ));
        }
        let muting: Vec<String> = self
            .mute
            .iter()
            .filter(|m| m.contains(now))
            .map(|m| m.name.clone())
            .collect();
        (!muting.is_empty()).then_some(Muted::ByMuteIntervals(muting))
    }
}

#[cfg(test)]
mod tests;
