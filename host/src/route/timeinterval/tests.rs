//! Tables from Alertmanager's documentation of `time_intervals` and its
//! `timeinterval` tests: parsing, messages, and `contains` at chosen instants.

use chrono::{DateTime, Utc};

use super::*;
use crate::config::Config;

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("{rfc3339}: {e}"))
        .with_timezone(&Utc)
}

fn interval(yaml: &str) -> TimeInterval {
    serde_norway::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"))
}

fn range(begin: i32, end: i32) -> InclusiveRange {
    InclusiveRange { begin, end }
}

#[test]
fn ranges_parse_like_alertmanager() {
    let weekdays: &[(&str, (i32, i32))] = &[
        ("monday:friday", (1, 5)),
        ("saturday", (6, 6)),
        ("Sunday:SATURDAY", (0, 6)),
        ("monday:monday", (1, 1)),
    ];
    for (s, (b, e)) in weekdays {
        assert_eq!(
            s.parse::<WeekdayRange>(),
            Ok(WeekdayRange(range(*b, *e))),
            "{s}"
        );
    }
    let days: &[(&str, (i32, i32))] = &[
        ("1:5", (1, 5)),
        ("-3:-1", (-3, -1)),
        ("-1", (-1, -1)),
        ("1:-1", (1, -1)),
        ("31", (31, 31)),
    ];
    for (s, (b, e)) in days {
        assert_eq!(
            s.parse::<DayOfMonthRange>(),
            Ok(DayOfMonthRange(range(*b, *e))),
            "{s}"
        );
    }
    let months: &[(&str, (i32, i32))] = &[
        ("january:march", (1, 3)),
        ("12", (12, 12)),
        ("May:August", (5, 8)),
        ("1:3", (1, 3)),
        ("december", (12, 12)),
        ("february:12", (2, 12)),
    ];
    for (s, (b, e)) in months {
        assert_eq!(
            s.parse::<MonthRange>(),
            Ok(MonthRange(range(*b, *e))),
            "{s}"
        );
    }
    for (s, (b, e)) in [("2026:2027", (2026, 2027)), ("2030", (2030, 2030))] {
        assert_eq!(s.parse::<YearRange>(), Ok(YearRange(range(b, e))), "{s}");
    }
    let times: &[(&str, &str, (u32, u32))] = &[
        ("09:00", "17:00", (540, 1020)),
        ("00:00", "24:00", (0, 1440)),
        ("17:00", "24:00", (1020, 1440)),
        ("23:59", "24:00", (1439, 1440)),
    ];
    for (start, end, (s, e)) in times {
        assert_eq!(
            TimeRange::parse(start, end),
            Ok(TimeRange {
                start_minute: *s,
                end_minute: *e
            })
        );
    }
    assert_eq!(
        "Europe/Berlin".parse::<Location>().map(|l| l.to_string()),
        Ok("Europe/Berlin".into())
    );
    assert_eq!("UTC".parse::<Location>(), Ok(Location(Tz::UTC)));
    assert_eq!("".parse::<Location>(), Ok(Location(Tz::UTC)));
}

#[test]
fn bad_ranges_are_refused_with_alertmanagers_messages() {
    let weekdays: &[(&str, &str)] = &[
        ("monday:sundy", "sundy is not a valid weekday"),
        ("friday:monday", "start day cannot be before end day"),
        // Sunday is day 0: a weekend is two entries, not a range.
        ("saturday:sunday", "start day cannot be before end day"),
        ("1", "1 is not a valid weekday"),
        ("monday:", " is not a valid weekday"),
        (
            "monday:tuesday:friday",
            "couldn't parse range monday:tuesday:friday, invalid format",
        ),
    ];
    for (s, want) in weekdays {
        assert_eq!(s.parse::<WeekdayRange>().unwrap_err(), *want, "{s}");
    }
    let days: &[(&str, &str)] = &[
        ("0", "0 is not a valid day of the month: out of range"),
        ("1:32", "32 is not a valid day of the month: out of range"),
        (
            "-32:-1",
            "-32 is not a valid day of the month: out of range",
        ),
        ("-3:5", "end day must be negative if start day is negative"),
        ("10:1", "end day 1 is always before start day 10"),
        ("-1:-3", "end day -3 is always before start day -1"),
        ("first", "strconv.Atoi: parsing \"first\": invalid syntax"),
    ];
    for (s, want) in days {
        assert_eq!(s.parse::<DayOfMonthRange>().unwrap_err(), *want, "{s}");
    }
    let months: &[(&str, &str)] = &[
        (
            "march:january",
            "end month january is before start month march",
        ),
        ("12:1", "end month january is before start month december"),
        ("janvier", "janvier is not a valid month"),
        ("13", "13 is not a valid month: out of range"),
    ];
    for (s, want) in months {
        assert_eq!(s.parse::<MonthRange>().unwrap_err(), *want, "{s}");
    }
    assert_eq!(
        "2027:2026".parse::<YearRange>().unwrap_err(),
        "end year 2026 is before start year 2027"
    );
    let times: &[(&str, &str, &str)] = &[
        ("", "17:00", "both start and end times must be provided"),
        ("09:00", "", "both start and end times must be provided"),
        (
            "9:00",
            "17:00",
            "couldn't parse timestamp 9:00, invalid format",
        ),
        (
            "09:00",
            "24:01",
            "couldn't parse timestamp 24:01, invalid format",
        ),
        (
            "09:60",
            "10:00",
            "couldn't parse timestamp 09:60, invalid format",
        ),
        (
            "17:00",
            "09:00",
            "start time cannot be equal or greater than end time",
        ),
        (
            "09:00",
            "09:00",
            "start time cannot be equal or greater than end time",
        ),
    ];
    for (start, end, want) in times {
        assert_eq!(
            TimeRange::parse(start, end).unwrap_err(),
            *want,
            "{start}-{end}"
        );
    }
    assert_eq!(
        "Mars/Olympus_Mons".parse::<Location>().unwrap_err(),
        "unknown time zone Mars/Olympus_Mons"
    );
    assert_eq!(
        "europe/berlin".parse::<Location>().unwrap_err(),
        "unknown time zone europe/berlin",
        "zone names are case-sensitive, as Go's LoadLocation on Linux"
    );
    assert!(
        "Local"
            .parse::<Location>()
            .unwrap_err()
            .contains("not supported")
    );
}

#[test]
fn yaml_accepts_numbers_and_strings_alike() {
    let ti = interval("days_of_month: [1, '-3:-1']\nmonths: [12, 'january']\nyears: [2026]\n");
    assert_eq!(
        ti.days_of_month,
        Some(vec![
            DayOfMonthRange(range(1, 1)),
            DayOfMonthRange(range(-3, -1))
        ])
    );
    assert_eq!(
        ti.months,
        Some(vec![MonthRange(range(12, 12)), MonthRange(range(1, 1))])
    );
    assert_eq!(ti.years, Some(vec![YearRange(range(2026, 2026))]));
    let e = serde_norway::from_str::<TimeInterval>("weekdays: [mondays]\n").unwrap_err();
    assert!(
        e.to_string().contains("mondays is not a valid weekday"),
        "{e}"
    );
    let e = serde_norway::from_str::<TimeInterval>("time_zone: UTC\n").unwrap_err();
    assert!(e.to_string().contains("unknown field `time_zone`"), "{e}");
}

/// (interval YAML, instant, contained?)
type Case<'a> = (&'a str, &'a str, bool);

#[test]
fn contains_follows_alertmanager() {
    const WORKDAY: &str =
        "times: [{start_time: '09:00', end_time: '17:00'}]\nweekdays: ['monday:friday']\n";
    const EVENINGS: &str = "times: [{start_time: '17:00', end_time: '24:00'}]\n";
    const EDGES: &str = "days_of_month: ['1:5', '-3:-1']\n";
    const LAST_DAY: &str = "days_of_month: ['-1']\n";
    const WINTER: &str = "months: ['november:december', 'january:february']\n";
    const Q1_2027: &str = "months: ['january:march']\nyears: ['2026:2027']\n";
    const SYDNEY_SATURDAY: &str = "weekdays: [saturday]\nlocation: Australia/Sydney\n";
    const LA_SATURDAY: &str = "weekdays: [saturday]\nlocation: America/Los_Angeles\n";
    const BERLIN_WORKDAY: &str =
        "times: [{start_time: '09:00', end_time: '17:00'}]\nlocation: Europe/Berlin\n";
    const BERLIN_2_TO_3: &str =
        "times: [{start_time: '02:00', end_time: '03:00'}]\nlocation: Europe/Berlin\n";
    const BERLIN_FIRST: &str = "days_of_month: ['1']\nlocation: Europe/Berlin\n";
    let cases: &[Case] = &[
        // 2026-12-01 is a Tuesday. start_time is inclusive, end_time exclusive.
        (WORKDAY, "2026-12-01T09:00:00Z", true),
        (WORKDAY, "2026-12-01T16:59:59Z", true),
        (WORKDAY, "2026-12-01T17:00:00Z", false),
        (WORKDAY, "2026-12-01T08:59:59Z", false),
        (WORKDAY, "2026-12-04T12:00:00Z", true), // Friday: ranges are inclusive
        (WORKDAY, "2026-12-05T12:00:00Z", false), // Saturday
        (WORKDAY, "2026-12-06T12:00:00Z", false), // Sunday
        (EVENINGS, "2026-12-01T23:59:59Z", true),
        (EVENINGS, "2026-12-02T00:00:00Z", false),
        // Negative days count from the end of each month.
        (EDGES, "2026-01-05T12:00:00Z", true),
        (EDGES, "2026-01-06T12:00:00Z", false),
        (EDGES, "2026-01-28T12:00:00Z", false),
        (EDGES, "2026-01-29T00:00:00Z", true),
        (EDGES, "2026-02-25T12:00:00Z", false),
        (EDGES, "2026-02-26T12:00:00Z", true),
        (EDGES, "2028-02-26T12:00:00Z", false), // leap year: 29 days
        (EDGES, "2028-02-27T12:00:00Z", true),
        (LAST_DAY, "2026-04-30T12:00:00Z", true),
        (LAST_DAY, "2026-04-29T12:00:00Z", false),
        (LAST_DAY, "2026-12-31T23:59:59Z", true),
        // Beyond the month's end: clamped, or skipped when it starts there.
        ("days_of_month: ['25:31']\n", "2026-02-28T12:00:00Z", true),
        ("days_of_month: ['31']\n", "2026-02-28T12:00:00Z", false),
        ("days_of_month: ['31']\n", "2026-03-31T12:00:00Z", true),
        // A range across the new year is written as two ranges.
        (WINTER, "2026-12-15T00:00:00Z", true),
        (WINTER, "2027-01-15T00:00:00Z", true),
        (WINTER, "2027-02-28T23:59:59Z", true),
        (WINTER, "2027-03-01T00:00:00Z", false),
        (WINTER, "2026-10-31T23:59:59Z", false),
        (Q1_2027, "2027-02-01T00:00:00Z", true),
        (Q1_2027, "2026-03-31T23:59:59Z", true),
        (Q1_2027, "2028-02-01T00:00:00Z", false),
        (Q1_2027, "2026-12-01T00:00:00Z", false),
        // The instant is read in the location first: Friday 14:00 UTC is
        // Saturday 01:00 in Sydney (AEDT, +11) ...
        (SYDNEY_SATURDAY, "2026-12-04T14:00:00Z", true),
        ("weekdays: [saturday]\n", "2026-12-04T14:00:00Z", false),
        (SYDNEY_SATURDAY, "2026-12-05T13:00:00Z", false), // Sunday 00:00 there
        // ... and Saturday 03:00 UTC is still Friday in Los Angeles.
        (LA_SATURDAY, "2026-12-05T03:00:00Z", false),
        (LA_SATURDAY, "2026-12-05T08:00:00Z", true),
        // The day of month too: 23:30 UTC on 31 January is 1 February in Berlin.
        (BERLIN_FIRST, "2026-01-31T23:30:00Z", true),
        (BERLIN_FIRST, "2026-01-31T22:30:00Z", false),
        // Times of day follow the zone's offset, winter (+1) and summer (+2).
        (BERLIN_WORKDAY, "2026-01-15T08:00:00Z", true),
        (BERLIN_WORKDAY, "2026-01-15T07:59:00Z", false),
        (BERLIN_WORKDAY, "2026-07-15T07:00:00Z", true),
        (BERLIN_WORKDAY, "2026-07-15T15:00:00Z", false),
        (BERLIN_WORKDAY, "2026-07-15T14:59:00Z", true),
        // 2026-03-29: at 01:00 UTC Berlin jumps from 02:00 to 03:00, so
        // 02:00–03:00 local never happens that day.
        (BERLIN_2_TO_3, "2026-03-29T00:59:00Z", false), // 01:59 CET
        (BERLIN_2_TO_3, "2026-03-29T01:00:00Z", false), // 03:00 CEST
        (BERLIN_2_TO_3, "2026-03-28T01:30:00Z", true),  // the day before: 02:30 CET
        // 2026-10-25: at 01:00 UTC Berlin falls back from 03:00 to 02:00, so
        // 02:00–03:00 local happens twice: two hours of UTC.
        (BERLIN_2_TO_3, "2026-10-24T23:59:00Z", false), // 01:59 CEST
        (BERLIN_2_TO_3, "2026-10-25T00:30:00Z", true),  // 02:30 CEST
        (BERLIN_2_TO_3, "2026-10-25T01:30:00Z", true),  // 02:30 CET
        (BERLIN_2_TO_3, "2026-10-25T02:00:00Z", false), // 03:00 CET
        // Calendar month length in a zone with DST: the last day of March
        // in Berlin is the 31st (Alertmanager, counting 743 hours, says 30th).
        (
            "days_of_month: ['-1']\nlocation: Europe/Berlin\n",
            "2026-03-31T12:00:00Z",
            true,
        ),
        (
            "days_of_month: ['-1']\nlocation: Europe/Berlin\n",
            "2026-03-30T12:00:00Z",
            false,
        ),
        // No field: every instant. A field set to []: none.
        ("{}", "2026-12-01T00:00:00Z", true),
        ("weekdays: []\n", "2026-12-01T00:00:00Z", false),
    ];
    for (yaml, instant, want) in cases {
        assert_eq!(
            interval(yaml).contains(at(instant)),
            *want,
            "{yaml}at {instant}"
        );
    }
}

#[test]
fn a_route_is_muted_as_by_alertmanagers_stages() {
    let named = |name: &str, yaml: &str| NamedTimeInterval {
        name: name.into(),
        time_intervals: vec![interval(yaml)],
    };
    let weekends = named("weekends", "weekdays: ['saturday', 'sunday']\n");
    let office = named(
        "office",
        "times: [{start_time: '09:00', end_time: '17:00'}]\nweekdays: ['monday:friday']\n",
    );
    let tuesday_noon = at("2026-12-01T12:00:00Z");
    let tuesday_night = at("2026-12-01T22:00:00Z");
    let saturday_noon = at("2026-12-05T12:00:00Z");

    let mute = RouteTimeIntervals {
        mute: vec![weekends.clone()],
        active: vec![],
    };
    assert_eq!(mute.muted_at(tuesday_noon), None);
    assert_eq!(
        mute.muted_at(saturday_noon),
        Some(Muted::ByMuteIntervals(vec!["weekends".into()]))
    );

    let active = RouteTimeIntervals {
        mute: vec![],
        active: vec![office.clone()],
    };
    assert_eq!(active.muted_at(tuesday_noon), None);
    let outside = active.muted_at(tuesday_night);
    assert_eq!(
        outside,
        Some(Muted::OutsideActiveIntervals(vec!["office".into()]))
    );
    assert_eq!(
        outside.map(|m| m.to_string()).as_deref(),
        Some("outside active time intervals [office]")
    );

    // Both: sent only when inside an active interval and outside every mute one.
    let both = RouteTimeIntervals {
        mute: vec![named(
            "lunch",
            "times: [{start_time: '12:00', end_time: '13:00'}]\n",
        )],
        active: vec![office, weekends],
    };
    assert!(both.muted_at(tuesday_noon).is_some(), "lunch mutes");
    assert!(both.muted_at(at("2026-12-01T14:00:00Z")).is_none());
    assert!(
        both.muted_at(tuesday_night).is_some(),
        "outside office and weekends"
    );
    assert!(
        both.muted_at(at("2026-12-05T22:00:00Z")).is_none(),
        "weekends are active"
    );
    assert!(
        RouteTimeIntervals::default()
            .muted_at(tuesday_noon)
            .is_none()
    );
    // A named interval with no intervals contains nothing.
    let empty = NamedTimeInterval {
        name: "never".into(),
        time_intervals: vec![],
    };
    assert!(!empty.contains(tuesday_noon));
}

#[test]
fn config_errors_name_the_file_line_and_alertmanagers_reason() {
    let receivers = "receivers:\n  - name: default\n";
    let cases: &[(&str, usize, &str)] = &[
        (
            "time_intervals:\n  - name: office\n    time_intervals:\n      - weekdays: ['monday:fryday']\n",
            4,
            "fryday is not a valid weekday",
        ),
        (
            "time_intervals:\n  - name: office\n    time_intervals:\n      - times:\n          - start_time: '17:00'\n            end_time: '09:00'\n",
            5,
            "start time cannot be equal or greater than end time",
        ),
        (
            "time_intervals:\n  - name: office\n    time_intervals:\n      - location: Mars/Olympus_Mons\n",
            4,
            "unknown time zone Mars/Olympus_Mons",
        ),
        (
            "time_intervals:\n  - name: office\n    time_intervals:\n      - days_of_month: ['10:1']\n",
            4,
            "end day 1 is always before start day 10",
        ),
        (
            "time_intervals:\n  - name: office\n    time_intervals: []\n  - name: nights\n  - name: office\n",
            5,
            "time interval \"office\" is not unique",
        ),
        (
            "mute_time_intervals:\n  - name: office\ntime_intervals:\n  - name: nights\n  - name: office\n",
            5,
            "time interval \"office\" is not unique",
        ),
        (
            "mute_time_intervals:\n  - name: a\n  - name: a\n",
            3,
            "mute time interval \"a\" is not unique",
        ),
        (
            "time_intervals:\n  - name: a\n  - time_intervals: []\n",
            3,
            "missing name in time interval",
        ),
    ];
    for (intervals, line, reason) in cases {
        let text = format!("{intervals}route:\n  receiver: default\n{receivers}");
        let e = match Config::parse(&text, "am.yml") {
            Err(e) => e,
            Ok(config) => config.validate_static("am.yml", &text).unwrap_err(),
        };
        assert_eq!(e.file, "am.yml");
        assert!(e.reason.contains(reason), "{text}\n{e}");
        assert_eq!(e.line, *line, "{text}\n{e}");
    }
}

#[test]
fn routes_resolve_their_own_intervals_and_children_inherit_none() {
    let text = "time_intervals:\n  - name: weekends\n    time_intervals: [{weekdays: ['saturday', 'sunday']}]\nmute_time_intervals:\n  - name: nights\n    time_intervals: [{times: [{start_time: '00:00', end_time: '06:00'}]}]\nroute:\n  receiver: default\n  routes:\n    - match: {team: ml}\n      mute_time_intervals: [weekends, nights]\n      active_time_intervals: [weekends]\n      routes:\n        - match: {severity: critical}\nreceivers:\n  - name: default\n";
    let config = Config::parse(text, "am.yml").unwrap();
    config.validate_static("am.yml", text).unwrap();
    let routing = crate::route::Routing::from_config(&config)
        .unwrap()
        .unwrap();
    let tree = routing.tree();
    assert_eq!(
        tree.node(1).opts.mute_time_intervals,
        ["weekends", "nights"]
    );
    assert_eq!(tree.node(1).opts.active_time_intervals, ["weekends"]);
    assert!(
        tree.node(2).opts.mute_time_intervals.is_empty(),
        "not inherited"
    );
    assert!(
        tree.node(2).opts.active_time_intervals.is_empty(),
        "not inherited"
    );
    let settings = crate::route::RouteSettings::for_route(&tree.node(1).opts, &config);
    let names: Vec<&str> = settings
        .time_intervals
        .mute
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(names, ["weekends", "nights"]);
    assert_eq!(settings.time_intervals.active.len(), 1);
    assert!(
        crate::route::RouteSettings::for_route(&tree.node(2).opts, &config)
            .time_intervals
            .is_empty()
    );
}
