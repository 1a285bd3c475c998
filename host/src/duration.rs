//! `duration` owns Prometheus-style durations (`90s`, `6h`, `1h30m`, `500ms`)
//! for every config field and API answer: parsing, formatting, and the serde
//! adapters. A leaf module: it depends on nothing else in the crate.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer, de};

/// Parses a Prometheus duration: one or more `<integer><unit>` terms with
/// units in decreasing order, unit one of `y` (365 d), `w`, `d`, `h`, `m`,
/// `s`, `ms`; or a bare `0`.
pub fn parse(text: &str) -> Result<Duration, String> {
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 24 * 3600 * 1000),
        ("w", 7 * 24 * 3600 * 1000),
        ("d", 24 * 3600 * 1000),
        ("h", 3600 * 1000),
        ("m", 60 * 1000),
        ("s", 1000),
        ("ms", 1),
    ];
    let bad = || {
        format!(
            "invalid duration `{text}`: expected e.g. `30s`, `10m`, `6h` or `1h30m` \
             (units y, w, d, h, m, s, ms, largest first)"
        )
    };
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err(bad());
    }
    let mut rest = text;
    let mut total_ms: u64 = 0;
    // Index into UNITS that the next term must not precede (units decrease).
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("duration `{text}` is too long"))?;
        rest = &rest[digits..];
        // "ms" must be tried before "m".
        let (index, (name, factor)) = UNITS
            .iter()
            .enumerate()
            .skip(next_unit)
            .filter(|(_, (name, _))| rest.starts_with(name))
            .max_by_key(|(_, (name, _))| name.len())
            .ok_or_else(bad)?;
        rest = &rest[name.len()..];
        next_unit = index + 1;
        total_ms = number
            .checked_mul(*factor)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| format!("duration `{text}` is too long"))?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Formats a duration the Prometheus way (`1h30m`, `15s`, `0s`).
pub fn format(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("w", 604_800_000u128),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&(ms / size).to_string());
            out.push_str(unit);
            ms %= size;
        }
    }
    out
}

/// A duration in whole milliseconds as `i64`, saturating (durations beyond
/// ~292 million years are clamped, not wrapped).
pub fn as_millis_i64(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `#[serde(with = "crate::duration::serde_str")]` for a `Duration` written
/// as a Prometheus duration string.
pub mod serde_str {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(u64),
        }
        match Raw::deserialize(d)? {
            Raw::Text(s) => parse(&s).map_err(de::Error::custom),
            Raw::Number(0) => Ok(Duration::ZERO),
            Raw::Number(n) => Err(de::Error::custom(format_args!(
                "duration `{n}` needs a unit, e.g. `{n}s`"
            ))),
        }
    }
}

/// `#[serde(default, with = "crate::duration::serde_opt")]` for an optional
/// `Duration`.
pub mod serde_opt {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => serde_str::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| parse(&s).map_err(de::Error::custom)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_durations() {
        assert_eq!(parse("6h"), Ok(Duration::from_secs(6 * 3600)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse("1m500ms"), Ok(Duration::from_millis(60_500)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("1d"), Ok(Duration::from_secs(86400)));
        assert_eq!(parse("1w1d"), Ok(Duration::from_secs(8 * 86400)));
        for bad in [
            "",
            "6",
            "15",
            "h",
            "5x",
            "30m1h",
            "1h1h",
            "1.5h",
            "-1h",
            "6 h",
            "6hours",
            "99999999999999999999y",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn formats_round_trip() {
        assert_eq!(format(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format(Duration::ZERO), "0s");
        assert_eq!(format(Duration::from_millis(1500)), "1s500ms");
        for text in ["15s", "1h30m", "2w3d", "250ms"] {
            assert_eq!(parse(text).map(format).as_deref(), Ok(text));
        }
    }
}
