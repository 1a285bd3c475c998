//! Prometheus's series notation for test data, shared by `klaxon test rules`
//! (promtool's `input_series`) and the conformance runner: a series
//! descriptor `metric{a="b"}` and values in expanding notation (`1 2 _ 3`,
//! `0+10x5` = 0 10 20 30 40 50, `1-1x3`, `7x2` = 7 7 7, `_x3` = three
//! gaps, `stale` = a staleness marker; `{{...}}` native-histogram values are
//! reported as such).

use promql_parser::parser::Expr;

use super::stale_nan;
use crate::store::{Labels, METRIC_NAME};

/// One value of a series line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Point {
    Value(f64),
    /// `_`: no sample at this step.
    Omitted,
    /// A native-histogram value (`{{...}}`), which Klaxon does not store.
    Histogram,
}

/// A number as the notation writes it: decimal, exponent, `Inf`, `NaN`,
/// `stale`, or `0x` hex.
pub fn parse_number(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        "nan" => Some(f64::NAN),
        "stale" => Some(stale_nan()),
        _ => {
            if let Some(hex) = s.strip_prefix("0x") {
                return i64::from_str_radix(hex, 16).ok().map(|v| v as f64);
            }
            s.parse().ok()
        }
    }
}

/// Expands a values string; `None` when it is malformed.
pub fn expand(values: &str) -> Option<Vec<Point>> {
    let mut out = Vec::new();
    let mut rest = values.trim();
    while !rest.is_empty() {
        if rest.starts_with("{{") {
            let end = rest.find("}}")?;
            rest = &rest[end + 2..];
            // `{{...}}+{{...}}xN`
            while rest.starts_with("+{{") || rest.starts_with("-{{") {
                let end = rest.find("}}")?;
                rest = &rest[end + 2..];
            }
            let mut n = 1;
            if let Some(r) = rest.strip_prefix('x') {
                let digits = r.bytes().take_while(u8::is_ascii_digit).count();
                n = r[..digits].parse::<usize>().ok()? + 1;
                rest = &r[digits..];
            }
            rest = rest.trim_start();
            out.extend(std::iter::repeat_n(Point::Histogram, n));
            continue;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let token = &rest[..end];
        rest = rest[end..].trim_start();
        if token == "_" {
            out.push(Point::Omitted);
            continue;
        }
        if let Some(n) = token.strip_prefix("_x") {
            out.extend(std::iter::repeat_n(Point::Omitted, n.parse().ok()?));
            continue;
        }
        // a+bxn, a-bxn, axn, a
        let (head, times) = match token.rfind('x') {
            Some(i)
                if i + 1 < token.len() && token[i + 1..].bytes().all(|c| c.is_ascii_digit()) =>
            {
                (&token[..i], Some(token[i + 1..].parse::<i64>().ok()?))
            }
            _ => (token, None),
        };
        let Some(times) = times else {
            out.push(Point::Value(parse_number(head)?));
            continue;
        };
        // Split at the sign that is neither leading nor part of an exponent.
        let bytes = head.as_bytes();
        let split = (1..bytes.len()).find(|&i| {
            (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E')
        });
        let (start, step) = match split {
            Some(i) => (parse_number(&head[..i])?, parse_number(&head[i..])?),
            None => (parse_number(head)?, 0.0),
        };
        for k in 0..=times {
            out.push(Point::Value(start + step * k as f64));
        }
    }
    Some(out)
}

/// A series descriptor's labels (`metric{a="b"}`, `{a="b"}`, `metric`).
pub fn parse_series(desc: &str) -> Option<Labels> {
    let desc = desc.trim();
    if desc == "{}" {
        return Some(Labels::empty());
    }
    let Ok(Expr::VectorSelector(vs)) = promql_parser::parser::parse(desc) else {
        return None;
    };
    let mut pairs: Vec<(String, String)> = vs
        .matchers
        .matchers
        .iter()
        .map(|m| (m.name.clone(), m.value.clone()))
        .collect();
    if let Some(name) = vs.name {
        pairs.push((METRIC_NAME.into(), name));
    }
    Some(Labels::new(pairs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(s: &str) -> Vec<f64> {
        expand(s)
            .unwrap_or_default()
            .into_iter()
            .map(|p| match p {
                Point::Value(v) => v,
                _ => -1.0,
            })
            .collect()
    }

    #[test]
    fn expands_like_promtool() {
        assert_eq!(values("0+10x3"), [0.0, 10.0, 20.0, 30.0]);
        assert_eq!(values("1 2 _ 4"), [1.0, 2.0, -1.0, 4.0]);
        assert_eq!(values("5-1x2"), [5.0, 4.0, 3.0]);
        assert_eq!(values("7x2"), [7.0, 7.0, 7.0]);
        assert_eq!(values("_x3 1"), [-1.0, -1.0, -1.0, 1.0]);
        assert_eq!(values("-2+1e1x1"), [-2.0, 8.0]);
        assert!(expand("1 abc").is_none());
        assert_eq!(
            parse_series(r#"up{job="a", instance="b"}"#).map(|l| l.to_prom_string()),
            Some(r#"{__name__="up",instance="b",job="a"}"#.to_string())
        );
    }
}
