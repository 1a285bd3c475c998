//! Request parameters of the Prometheus-compatible read API, parsed as
//! Prometheus's `web/api/v1/api.go` parses them: the merged form (URL query
//! plus a form-encoded POST body), timestamps (`parse_time`: unix seconds
//! with a fraction, or RFC 3339), durations (`parse_duration_or_float`, for
//! `step`), and `match[]` series selectors. Shared by the metadata endpoints
//! and the query endpoints; owns no state and answers nothing itself.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{Method, header};
use chrono::TimeDelta;

use super::ApiError;
use crate::store::{Matcher, SelectorError, parse_selector};

/// Prometheus's `MinTime` (`time.Unix(math.MinInt64/1000+62135596801, 0)`)
/// in milliseconds: the default `start`.
pub(crate) const MIN_TIME_MS: i64 = -9_223_309_901_257_974_000;
/// Prometheus's `MaxTime` (`time.Unix(math.MaxInt64/1000-62135596801, 999999999)`)
/// in milliseconds: the default `end`.
pub(crate) const MAX_TIME_MS: i64 = 9_223_309_901_257_974_999;

/// How clients (client_golang, Grafana) spell `MinTime` and `MaxTime`;
/// Go's (and chrono's) RFC 3339 parser cannot read these years.
const MIN_TIME_TEXT: &str = "-292273086-05-16T16:47:06Z";
const MAX_TIME_TEXT: &str = "292277025-08-18T07:12:54.999999999Z";

/// Why a parameter was refused; the text is Prometheus's.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ParamError {
    #[error("cannot parse {0:?} to a valid timestamp")]
    Timestamp(String),
    #[error("invalid time value for '{name}': {source}")]
    TimeParam {
        name: &'static str,
        #[source]
        source: Box<ParamError>,
    },
    #[error("cannot parse {0:?} to a valid duration")]
    Duration(String),
    #[error("cannot parse {0:?} to a valid duration. It overflows int64")]
    DurationOverflow(String),
    #[error(transparent)]
    Selector(#[from] SelectorError),
    #[error("match[] must contain at least one non-empty matcher")]
    AllMatchersEmpty,
    #[error("invalid parameter \"limit\": {0}")]
    Limit(String),
}

/// The request's parameters in Go's `r.Form` order: form body first, then
/// the URL query. A repeated name keeps every value.
#[derive(Debug, Default, Clone)]
pub(crate) struct PromParams {
    pairs: Vec<(String, String)>,
}

impl PromParams {
    /// From an already split form.
    #[cfg(test)]
    pub(crate) fn from_pairs(pairs: Vec<(String, String)>) -> PromParams {
        PromParams { pairs }
    }

    /// The first value of `name` (Go's `r.FormValue`); `None` if absent.
    pub(crate) fn first(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order (Go's `r.Form[name]`).
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// `name` as a timestamp in milliseconds, `default` when absent or empty
    /// (Prometheus's `parseTimeParam`).
    pub(crate) fn time_or(&self, name: &'static str, default: i64) -> Result<i64, ParamError> {
        match self.first(name) {
            None | Some("") => Ok(default),
            Some(text) => parse_time(text).map_err(|e| ParamError::TimeParam {
                name,
                source: Box::new(e),
            }),
        }
    }

    /// `limit` (Prometheus's `parseLimitParam`): `None` when absent, empty
    /// or 0, which mean no limit.
    pub(crate) fn limit(&self) -> Result<Option<usize>, ParamError> {
        let text = match self.first("limit") {
            None | Some("") => return Ok(None),
            Some(text) => text,
        };
        let n: i64 = text.parse().map_err(|e: std::num::ParseIntError| {
            let why = match e.kind() {
                std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                    "value out of range"
                }
                _ => "invalid syntax",
            };
            ParamError::Limit(format!("strconv.Atoi: parsing {text:?}: {why}"))
        })?;
        if n < 0 {
            return Err(ParamError::Limit("limit must be non-negative".into()));
        }
        Ok(usize::try_from(n).ok().filter(|&n| n > 0))
    }

    /// Every `match[]` parsed (Prometheus's `parseMatchersParam`); empty
    /// when there is none.
    pub(crate) fn match_sets(&self) -> Result<Vec<Vec<Matcher>>, ParamError> {
        parse_match_sets(&self.all("match[]"))
    }
}

impl<S: Send + Sync> FromRequest<S> for PromParams {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<PromParams, ApiError> {
        let query = req.uri().query().map(str::to_owned);
        let is_form = req.method() == Method::POST
            && req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let mut pairs = Vec::new();
        if is_form {
            let body = Bytes::from_request(req, state)
                .await
                .map_err(|e| ApiError::bad_data(format!("error parsing form data: {e}")))?;
            pairs.extend(form_urlencoded::parse(&body).into_owned());
        }
        if let Some(q) = query {
            pairs.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        Ok(PromParams { pairs })
    }
}

/// A timestamp in milliseconds since the epoch from unix seconds (`1700000000`,
/// `1700000000.123`; rounded to the millisecond) or RFC 3339
/// (`2023-11-14T22:13:20.123Z`), as Prometheus's `parseTime`.
pub(crate) fn parse_time(text: &str) -> Result<i64, ParamError> {
    if let Ok(secs) = text.parse::<f64>() {
        if !secs.is_finite() {
            return Err(ParamError::Timestamp(text.to_owned()));
        }
        let whole = secs.trunc();
        let millis = ((secs - whole) * 1000.0).round();
        // `as` saturates: out-of-range seconds clamp instead of wrapping.
        return Ok((whole as i64)
            .saturating_mul(1000)
            .saturating_add(millis as i64));
    }
    // chrono also takes a space or a lower-case `t`/`z`; Go's RFC3339 layout
    // does not, so neither do we.
    let go_shaped = text.as_bytes().get(10) == Some(&b'T') && !text.ends_with('z');
    if go_shaped && let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    match text {
        MIN_TIME_TEXT => Ok(MIN_TIME_MS),
        MAX_TIME_TEXT => Ok(MAX_TIME_MS),
        _ => Err(ParamError::Timestamp(text.to_owned())),
    }
}

/// A duration from float seconds (`15`, `0.5`) or a Prometheus duration
/// (`1m30s`), as Prometheus's `parseDuration` (used for `step`). Sign and
/// zero are not checked here: that is the caller's rule.
pub(crate) fn parse_duration_or_float(text: &str) -> Result<TimeDelta, ParamError> {
    if let Ok(secs) = text.parse::<f64>() {
        if secs.is_nan() {
            return Err(ParamError::Duration(text.to_owned()));
        }
        let nanos = secs * 1e9;
        // i64::MAX as f64 rounds up to 2^63, which is itself out of range.
        if !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&nanos) {
            return Err(ParamError::DurationOverflow(text.to_owned()));
        }
        return Ok(TimeDelta::nanoseconds(nanos as i64));
    }
    crate::duration::parse(text)
        .ok()
        .and_then(|d| TimeDelta::from_std(d).ok())
        .filter(|d| d.num_nanoseconds().is_some())
        .ok_or_else(|| ParamError::Duration(text.to_owned()))
}

/// Parses `match[]` values; each set must have a matcher that does not
/// match the empty string (so `{foo=""}` alone, which would select every
/// series, is refused).
pub(crate) fn parse_match_sets(selectors: &[&str]) -> Result<Vec<Vec<Matcher>>, ParamError> {
    let mut sets = Vec::with_capacity(selectors.len());
    for selector in selectors {
        let set = parse_selector(selector)?;
        if set.iter().all(Matcher::matches_empty) {
            return Err(ParamError::AllMatchersEmpty);
        }
        sets.push(set);
    }
    Ok(sets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_prometheus_parses_them() {
        let ok: &[(&str, i64)] = &[
            ("0", 0),
            ("1700000000", 1_700_000_000_000),
            ("1700000000.123", 1_700_000_000_123),
            ("-1.5", -1_500),
            ("1e3", 1_000_000),
            ("2023-11-14T22:13:20Z", 1_700_000_000_000),
            ("2023-11-14T22:13:20.123456789Z", 1_700_000_000_123),
            ("2023-11-15T00:13:20.5+02:00", 1_700_000_000_500),
            (MIN_TIME_TEXT, MIN_TIME_MS),
            (MAX_TIME_TEXT, MAX_TIME_MS),
        ];
        for &(text, want) in ok {
            assert_eq!(parse_time(text).ok(), Some(want), "{text}");
        }
        for bad in [
            "",
            "foo",
            "NaN",
            "+Inf",
            "2023-11-14",
            "2023-11-14 22:13:20",
        ] {
            assert_eq!(
                parse_time(bad).map_err(|e| e.to_string()),
                Err(format!("cannot parse {bad:?} to a valid timestamp"))
            );
        }
    }

    #[test]
    fn time_params_default_and_name_the_parameter() {
        let p = PromParams::from_pairs(vec![
            ("start".into(), "x".into()),
            ("end".into(), "".into()),
        ]);
        assert_eq!(p.time_or("end", MAX_TIME_MS).ok(), Some(MAX_TIME_MS));
        assert_eq!(p.time_or("other", 7).ok(), Some(7));
        assert_eq!(
            p.time_or("start", MIN_TIME_MS).map_err(|e| e.to_string()),
            Err("invalid time value for 'start': cannot parse \"x\" to a valid timestamp".into())
        );
    }

    #[test]
    fn durations_as_prometheus_parses_them() {
        let ok: &[(&str, i64)] = &[
            ("15", 15_000_000_000),
            ("0.5", 500_000_000),
            ("-1", -1_000_000_000),
            ("1m30s", 90_000_000_000),
            ("5m", 300_000_000_000),
            ("0", 0),
        ];
        for &(text, want) in ok {
            assert_eq!(
                parse_duration_or_float(text)
                    .ok()
                    .and_then(|d| d.num_nanoseconds()),
                Some(want),
                "{text}"
            );
        }
        for bad in ["", "x", "1.5m", "NaN", "5M"] {
            assert_eq!(
                parse_duration_or_float(bad).map_err(|e| e.to_string()),
                Err(format!("cannot parse {bad:?} to a valid duration"))
            );
        }
        assert_eq!(
            parse_duration_or_float("1e10").map_err(|e| e.to_string()),
            Err("cannot parse \"1e10\" to a valid duration. It overflows int64".into())
        );
    }

    #[test]
    fn match_sets_need_a_non_empty_matcher() {
        let sets = parse_match_sets(&["up", r#"{job=~"a.*", env!="x"}"#]).ok();
        assert_eq!(
            sets.map(|s| s.iter().map(Vec::len).collect::<Vec<_>>()),
            Some(vec![1, 2])
        );
        // The PromQL parser already refuses these, in Prometheus's words.
        let err = parse_match_sets(&[r#"{job=~".*"}"#]).map_err(|e| e.to_string());
        assert!(
            err.as_ref().is_err_and(
                |e| e.ends_with("vector selector must contain at least one non-empty matcher")
            ),
            "{err:?}"
        );
        assert!(parse_match_sets(&["rate(x[5m])"]).is_err());
        assert!(parse_match_sets(&["{"]).is_err());
    }

    #[test]
    fn limit_as_prometheus_parses_it() {
        let limit = |v: &str| {
            PromParams::from_pairs(vec![("limit".into(), v.into())])
                .limit()
                .map_err(|e| e.to_string())
        };
        assert_eq!(PromParams::default().limit().ok(), Some(None));
        assert_eq!(limit(""), Ok(None));
        assert_eq!(limit("0"), Ok(None));
        assert_eq!(limit("5"), Ok(Some(5)));
        assert_eq!(
            limit("-1"),
            Err("invalid parameter \"limit\": limit must be non-negative".into())
        );
        assert_eq!(
            limit("x"),
            Err(r#"invalid parameter "limit": strconv.Atoi: parsing "x": invalid syntax"#.into())
        );
        assert_eq!(
            limit("99999999999999999999"),
            Err(r#"invalid parameter "limit": strconv.Atoi: parsing "99999999999999999999": value out of range"#.into())
        );
    }

    #[test]
    fn repeated_parameters_keep_every_value_first_wins() {
        let p = PromParams::from_pairs(vec![
            ("match[]".into(), "a".into()),
            ("start".into(), "1".into()),
            ("match[]".into(), "b".into()),
            ("start".into(), "2".into()),
        ]);
        assert_eq!(p.all("match[]"), vec!["a", "b"]);
        assert_eq!(p.first("start"), Some("1"));
        assert_eq!(p.first("end"), None);
    }
}
