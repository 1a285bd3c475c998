//! Prometheus-style durations (`90s`, `6h`, `1h30m`, `10m`) for config
//! fields, so `store:` and `limits:` read like the Prometheus files users
//! already have. Crate-private: a shared config helper may replace it.

use std::fmt;
use std::time::Duration;

use serde::{Deserializer, de};

/// Parses a Prometheus duration: one or more `<integer><unit>` terms with units
/// in decreasing order, unit one of `y` (365 d), `w`, `d`, `h`, `m`, `s`, `ms`.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
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
        format!("invalid duration {text:?}: expected e.g. \"30s\", \"10m\", \"6h\" or \"1h30m\"")
    };
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
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        // "ms" must be tried before "m".
        let unit = UNITS
            .iter()
            .enumerate()
            .skip(next_unit)
            .filter(|(_, (name, _))| rest.starts_with(name))
            .max_by_key(|(_, (name, _))| name.len())
            .ok_or_else(bad)?;
        let (index, (name, factor)) = unit;
        rest = &rest[name.len()..];
        next_unit = index + 1;
        total_ms = number
            .checked_mul(*factor)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| format!("duration {text:?} is too long"))?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// `#[serde(deserialize_with = "...")]` for a `Duration` written as a
/// Prometheus duration string.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Duration, D::Error> {
    struct DurationVisitor;
    impl de::Visitor<'_> for DurationVisitor {
        type Value = Duration;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a duration such as \"30s\", \"10m\" or \"6h\"")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            parse(v).map_err(E::custom)
        }
    }
    deserializer.deserialize_str(DurationVisitor)
}

/// A duration in whole milliseconds as `i64`, saturating (config durations
/// beyond ~292 million years are clamped, not wrapped).
pub(crate) fn as_millis_i64(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
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
        assert_eq!(parse("1w1d"), Ok(Duration::from_secs(8 * 86400)));
        for bad in [
            "", "6", "h", "30m1h", "1h1h", "1.5h", "-1h", "6 h", "6hours",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
