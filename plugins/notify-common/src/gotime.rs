//! Go's `time.Time.Format` for the RFC 3339 timestamps of the notification model
//! (`.StartsAt`, `.EndsAt`), so that `{{ .StartsAt.Format "2006-01-02 15:04" }}`
//! renders as in Alertmanager.
//!
//! The layout is read as Go reads it: the reference time `Mon Jan 2 15:04:05 MST 2006`
//! written the way the output should look. Supported elements: `2006 06 January Jan 01
//! 1 Monday Mon 02 _2 2 15 03 3 04 4 05 5 PM pm MST Z07:00 Z0700 Z07 -07:00 -0700 -07`
//! and fractional seconds (`.000`, `.999`, `,000`…). `MST` prints `UTC` for a zero
//! offset, else the numeric offset (the zone's name is not in an RFC 3339 string).

/// A timestamp broken down, in its own offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
    /// Seconds east of UTC.
    offset: i32,
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

fn digits(s: &str, at: usize, n: usize) -> Option<u32> {
    let part = s.get(at..at + n)?;
    part.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| part.parse().ok())
        .flatten()
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
fn parse_rfc3339(s: &str) -> Option<Civil> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let mut c = Civil {
        year: i64::from(digits(s, 0, 4)?),
        month: digits(s, 5, 2)?,
        day: digits(s, 8, 2)?,
        hour: digits(s, 11, 2)?,
        minute: digits(s, 14, 2)?,
        second: digits(s, 17, 2)?,
        nanos: 0,
        offset: 0,
    };
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        let end = start + b[start..].iter().take_while(|d| d.is_ascii_digit()).count();
        if end == start {
            return None;
        }
        let frac = &s[start..end.min(start + 9)];
        c.nanos = frac.parse::<u32>().ok()? * 10u32.pow(9 - frac.len() as u32);
        i = end;
    }
    match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => {}
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let secs = (digits(s, i + 1, 2)? * 3600 + digits(s, i + 4, 2)? * 60) as i32;
            c.offset = if *sign == b'-' { -secs } else { secs };
        }
        _ => return None,
    }
    let valid = (1..=12).contains(&c.month)
        && (1..=31).contains(&c.day)
        && c.hour < 24
        && c.minute < 60
        && c.second < 61;
    valid.then_some(c)
}

/// Day of the week, 0 = Sunday (Sakamoto's method on the proleptic Gregorian calendar).
fn weekday(year: i64, month: u32, day: u32) -> usize {
    const T: [i64; 12] = [0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4];
    let y = if month < 3 { year - 1 } else { year };
    let d = y + y.div_euclid(4) - y.div_euclid(100)
        + y.div_euclid(400)
        + T[(month - 1) as usize]
        + i64::from(day);
    d.rem_euclid(7) as usize
}

/// Layout elements, longest first where one is a prefix of another; fractional
/// seconds (`.000`, `.999`) are read separately.
const ELEMENTS: [&str; 27] = [
    "January", "Jan", "Monday", "Mon", "MST", "2006", "Z07:00", "Z0700", "Z07", "-07:00", "-0700",
    "-07", "01", "02", "03", "04", "05", "06", "_2", "15", "PM", "pm", "1", "2", "3", "4", "5",
];

/// Formats `timestamp` (RFC 3339) with Go `layout`; `None` when it is not RFC 3339.
pub fn format(timestamp: &str, layout: &str) -> Option<String> {
    let c = parse_rfc3339(timestamp)?;
    let mut out = String::new();
    let mut rest = layout;
    while let Some(ch) = rest.chars().next() {
        // Fractional seconds: a separator then a run of 0s (fixed width) or 9s
        // (trailing zeros dropped).
        if ch == '.' || ch == ',' {
            let run = rest[1..]
                .find(|x: char| x != '0' && x != '9')
                .unwrap_or(rest.len() - 1);
            let digits_run = &rest[1..1 + run];
            let zeros = digits_run.bytes().all(|d| d == b'0');
            let nines = digits_run.bytes().all(|d| d == b'9');
            if run > 0 && (zeros || nines) {
                let frac = format!("{:09}", c.nanos);
                let frac = &frac[..run.min(9)];
                if zeros {
                    out.push(ch);
                    out.push_str(frac);
                } else {
                    let trimmed = frac.trim_end_matches('0');
                    if !trimmed.is_empty() {
                        out.push(ch);
                        out.push_str(trimmed);
                    }
                }
                rest = &rest[1 + run..];
                continue;
            }
        }
        let Some(element) = ELEMENTS.iter().find(|e| rest.starts_with(**e)) else {
            out.push(ch);
            rest = &rest[ch.len_utf8()..];
            continue;
        };
        let hour12 = match c.hour % 12 {
            0 => 12,
            h => h,
        };
        let offset = |colon: bool, minutes: bool, z: bool| {
            if z && c.offset == 0 {
                return "Z".to_owned();
            }
            let sign = if c.offset < 0 { '-' } else { '+' };
            let abs = c.offset.unsigned_abs();
            let (h, m) = (abs / 3600, abs % 3600 / 60);
            match (minutes, colon) {
                (false, _) => format!("{sign}{h:02}"),
                (true, true) => format!("{sign}{h:02}:{m:02}"),
                (true, false) => format!("{sign}{h:02}{m:02}"),
            }
        };
        let text = match *element {
            "January" => MONTHS[(c.month - 1) as usize].to_owned(),
            "Jan" => MONTHS[(c.month - 1) as usize][..3].to_owned(),
            "Monday" => DAYS[weekday(c.year, c.month, c.day)].to_owned(),
            "Mon" => DAYS[weekday(c.year, c.month, c.day)][..3].to_owned(),
            "MST" if c.offset == 0 => "UTC".to_owned(),
            "MST" => offset(false, true, false),
            "2006" => format!("{:04}", c.year),
            "06" => format!("{:02}", c.year % 100),
            "01" => format!("{:02}", c.month),
            "1" => c.month.to_string(),
            "02" => format!("{:02}", c.day),
            "_2" => format!("{:>2}", c.day),
            "2" => c.day.to_string(),
            "15" => format!("{:02}", c.hour),
            "03" => format!("{hour12:02}"),
            "3" => hour12.to_string(),
            "04" => format!("{:02}", c.minute),
            "4" => c.minute.to_string(),
            "05" => format!("{:02}", c.second),
            "5" => c.second.to_string(),
            "PM" => (if c.hour >= 12 { "PM" } else { "AM" }).to_owned(),
            "pm" => (if c.hour >= 12 { "pm" } else { "am" }).to_owned(),
            "Z07:00" => offset(true, true, true),
            "Z0700" => offset(false, true, true),
            "Z07" => offset(false, false, true),
            "-07:00" => offset(true, true, false),
            "-0700" => offset(false, true, false),
            _ => offset(false, false, false),
        };
        out.push_str(&text);
        rest = &rest[element.len()..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go() {
        let t = "2024-05-01T15:04:05.120Z";
        for (layout, expected) in [
            ("2006-01-02 15:04:05", "2024-05-01 15:04:05"),
            (
                "Mon Jan _2 15:04:05 MST 2006",
                "Wed May  1 15:04:05 UTC 2024",
            ),
            (
                "Monday, 2 January 06 3:4:5 PM",
                "Wednesday, 1 May 24 3:4:5 PM",
            ),
            ("15:04:05.000", "15:04:05.120"),
            ("15:04:05.999", "15:04:05.12"),
            ("2006-01-02T15:04:05Z07:00", "2024-05-01T15:04:05Z"),
            ("-0700", "+0000"),
            ("03pm", "03pm"),
        ] {
            assert_eq!(format(t, layout).as_deref(), Some(expected), "{layout}");
        }
        assert_eq!(
            format("2024-05-01T08:30:00+05:30", "15:04 -07:00 Z0700 MST").as_deref(),
            Some("08:30 +05:30 +0530 +0530")
        );
        assert_eq!(
            format("0001-01-01T00:00:00Z", "2006-01-02").as_deref(),
            Some("0001-01-01")
        );
        assert_eq!(format("yesterday", "2006"), None);
    }

    #[test]
    fn weekdays() {
        assert_eq!(DAYS[weekday(2024, 5, 1)], "Wednesday");
        assert_eq!(DAYS[weekday(2000, 1, 1)], "Saturday");
        assert_eq!(DAYS[weekday(1, 1, 1)], "Monday");
    }
}
