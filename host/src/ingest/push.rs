//! The JSON push body, read in one pass straight into `SeriesSamples`,
//! validating as it goes and naming the field of the first error.

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;

use super::json::{At, Cursor, Fail, PResult, line_column};
use super::{IngestError, IngestLimits};
use crate::store::{FpBuildHasher, Labels, METRIC_NAME, SeriesSamples, duration};

/// Parses and validates a push body. `now_ms` is the server's clock: the time
/// of `value` samples and the centre of the accepted timestamp range.
pub fn parse_push(
    body: &[u8],
    limits: &IngestLimits,
    now_ms: i64,
) -> Result<Vec<SeriesSamples>, IngestError> {
    if body.len() > limits.max_body_bytes {
        return Err(IngestError {
            field: "body".into(),
            message: format!(
                "request body is {} bytes, more than limits.max_body_bytes = {}",
                body.len(),
                limits.max_body_bytes
            ),
        });
    }
    let mut parser = Parser {
        c: Cursor::new(body),
        limits,
        now_ms,
        min_ts: now_ms.saturating_sub(duration::as_millis_i64(limits.max_sample_age)),
        max_ts: now_ms.saturating_add(duration::as_millis_i64(limits.max_sample_future)),
        samples: 0,
    };
    match parser.body() {
        Ok(series) => Ok(merge_duplicates(series)),
        Err(fail) => {
            let Fail {
                field,
                message,
                pos,
            } = *fail;
            let (line, column) = line_column(body, pos);
            Err(IngestError {
                field: field.unwrap_or_else(|| "body".into()),
                message: format!("{message} at line {line} column {column}"),
            })
        }
    }
}

/// Folds repeated label sets into their first entry, keeping request order.
fn merge_duplicates(series: Vec<SeriesSamples>) -> Vec<SeriesSamples> {
    if series.len() < 2 {
        return series;
    }
    // Fingerprints first: no duplicates, no further work (the usual case).
    let mut first: HashMap<u64, usize, FpBuildHasher> =
        HashMap::with_capacity_and_hasher(series.len(), FpBuildHasher);
    let mut repeated = false;
    for (i, s) in series.iter().enumerate() {
        if let Entry::Vacant(v) = first.entry(s.labels.fingerprint()) {
            v.insert(i);
        } else {
            repeated = true;
        }
    }
    if !repeated {
        return series;
    }
    let mut out: Vec<SeriesSamples> = Vec::with_capacity(series.len());
    let mut position: HashMap<Labels, usize, FpBuildHasher> = HashMap::with_hasher(FpBuildHasher);
    for s in series {
        match position.entry(s.labels.clone()) {
            Entry::Occupied(at) => out[*at.get()].samples.extend_from_slice(&s.samples),
            Entry::Vacant(slot) => {
                slot.insert(out.len());
                out.push(s);
            }
        }
    }
    out
}

fn is_metric_name(name: &str) -> bool {
    let b = name.as_bytes();
    matches!(b.first(), Some(c) if c.is_ascii_alphabetic() || *c == b'_' || *c == b':')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b':')
}

fn is_label_name(name: &str) -> bool {
    let b = name.as_bytes();
    matches!(b.first(), Some(c) if c.is_ascii_alphabetic() || *c == b'_')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// `series[3].labels.name`.
fn label_path(series: usize, name: &str) -> String {
    format!("series[{series}].labels.{}", short(name))
}

/// A client-chosen name as it appears in a field path: cut at 64 bytes so a
/// huge key cannot make a huge error.
fn short(name: &str) -> Cow<'_, str> {
    const MAX: usize = 64;
    if name.len() <= MAX {
        return Cow::Borrowed(name);
    }
    let mut cut = MAX;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    Cow::Owned(format!("{}…", &name[..cut]))
}

const SAMPLE_SHAPE: &str = "a sample must be [timestamp_ms, value]";
const VALUE_EXPECTED: &str = r#"a number or one of "NaN", "+Inf", "Inf", "-Inf""#;

struct Parser<'a, 'l> {
    c: Cursor<'a>,
    limits: &'l IngestLimits,
    now_ms: i64,
    min_ts: i64,
    max_ts: i64,
    /// Samples so far, all series together.
    samples: usize,
}

impl<'a> Parser<'a, '_> {
    /// `{"series": [...]}` and nothing after it.
    fn body(&mut self) -> PResult<Vec<SeriesSamples>> {
        if !self.c.eat(b'{') {
            return Err(self.c.unexpected(r#"a push body {"series": [...]}"#));
        }
        let mut series = None;
        if !self.c.eat(b'}') {
            loop {
                let key_pos = self.c.pos();
                let key = self.c.key()?;
                if key != "series" {
                    self.c.rewind(key_pos);
                    return Err(self
                        .c
                        .fail_at(short(&key).into_owned(), "unknown field, expected `series`"));
                }
                if series.is_some() {
                    self.c.rewind(key_pos);
                    return Err(self.c.fail_at("series".into(), "duplicate field `series`"));
                }
                series = Some(self.series_list().at(|| "series".into())?);
                if !self.c.next_member(b'}')? {
                    break;
                }
            }
        }
        let Some(series) = series else {
            return Err(self.c.fail_at("series".into(), "missing field `series`"));
        };
        if !self.c.at_end() {
            let next = self.c.describe_next();
            return Err(self
                .c
                .fail(format!("trailing characters after the body: {next}")));
        }
        Ok(series)
    }

    /// `[series, ...]`
    fn series_list(&mut self) -> PResult<Vec<SeriesSamples>> {
        if !self.c.eat(b'[') {
            return Err(self.c.unexpected("an array of series"));
        }
        let mut out = Vec::new();
        if self.c.eat(b']') {
            return Ok(out);
        }
        let mut i = 0;
        loop {
            if i == self.limits.max_series_per_request {
                return Err(self.c.fail_at(
                    "series".into(),
                    format!(
                        "request has more than {} series (limits.max_series_per_request)",
                        self.limits.max_series_per_request
                    ),
                ));
            }
            // `None`: a series with `"samples": []` carries nothing to store.
            out.extend(self.series(i).at(|| format!("series[{i}]"))?);
            i += 1;
            if !self.c.next_member(b']')? {
                return Ok(out);
            }
        }
    }

    /// One series object.
    fn series(&mut self, i: usize) -> PResult<Option<SeriesSamples>> {
        let series_start = self.c.pos();
        if !self.c.eat(b'{') {
            return Err(self.c.unexpected(
                r#"a series object {"metric": ..., "labels": {...}, "samples": [...]}"#,
            ));
        }
        let mut metric: Option<Cow<'a, str>> = None;
        let mut labels: Option<Vec<(Cow<'a, str>, Cow<'a, str>)>> = None;
        let mut samples: Option<Vec<(i64, f64)>> = None;
        let mut value: Option<f64> = None;
        if !self.c.eat(b'}') {
            loop {
                let key_pos = self.c.pos();
                let key = self.c.key()?;
                let seen = match key.as_ref() {
                    "metric" => metric.is_some(),
                    "labels" => labels.is_some(),
                    "samples" => samples.is_some(),
                    "value" => value.is_some(),
                    _ => {
                        self.c.rewind(key_pos);
                        return Err(self.c.fail_at(
                            format!("series[{i}].{}", short(&key)),
                            "unknown field, expected `metric`, `labels`, `samples` or `value`",
                        ));
                    }
                };
                if seen {
                    self.c.rewind(key_pos);
                    return Err(self.c.fail_at(
                        format!("series[{i}].{key}"),
                        format!("duplicate field `{key}`"),
                    ));
                }
                match key.as_ref() {
                    "metric" => metric = Some(self.metric().at(|| format!("series[{i}].metric"))?),
                    "labels" => labels = Some(self.labels(i).at(|| format!("series[{i}].labels"))?),
                    "samples" => {
                        samples = Some(self.samples(i).at(|| format!("series[{i}].samples"))?)
                    }
                    _ => value = Some(self.value().at(|| format!("series[{i}].value"))?),
                }
                if !self.c.next_member(b'}')? {
                    break;
                }
            }
        }
        let end = self.c.pos();
        self.c.rewind(series_start);
        let Some(metric) = metric else {
            return Err(self
                .c
                .fail_at(format!("series[{i}].metric"), "missing field `metric`"));
        };
        let samples = match (samples, value) {
            (Some(samples), None) => samples,
            (None, Some(value)) => {
                self.count_sample().at(|| format!("series[{i}].value"))?;
                vec![(self.now_ms, value)]
            }
            (Some(_), Some(_)) => {
                return Err(self.c.fail_at(
                    format!("series[{i}]"),
                    "give either `samples` or `value`, not both",
                ));
            }
            (None, None) => {
                return Err(self.c.fail_at(
                    format!("series[{i}]"),
                    "missing field: give `samples` or `value`",
                ));
            }
        };
        self.c.rewind(end);
        if samples.is_empty() {
            return Ok(None);
        }
        let mut pairs = labels.unwrap_or_default();
        // `pairs` is sorted; keep it so, and building `Labels` needs no sort.
        let at = pairs.partition_point(|(n, _)| n.as_ref() < METRIC_NAME);
        pairs.insert(at, (Cow::Borrowed(METRIC_NAME), metric));
        Ok(Some(SeriesSamples {
            labels: Labels::new(pairs),
            samples,
        }))
    }

    fn metric(&mut self) -> PResult<Cow<'a, str>> {
        let pos = self.c.pos();
        let name = self.c.string()?;
        if !is_metric_name(&name) {
            self.c.rewind(pos);
            return Err(self.c.fail(format!(
                "invalid metric name {:?}: must match [a-zA-Z_:][a-zA-Z0-9_:]*",
                short(&name)
            )));
        }
        if name.len() > self.limits.max_label_name_bytes {
            self.c.rewind(pos);
            return Err(self.c.fail(format!(
                "metric name is {} bytes, more than limits.max_label_name_bytes = {}",
                name.len(),
                self.limits.max_label_name_bytes
            )));
        }
        Ok(name)
    }

    /// `{"name": "value", ...}`, returned sorted by name.
    fn labels(&mut self, i: usize) -> PResult<Vec<(Cow<'a, str>, Cow<'a, str>)>> {
        if !self.c.eat(b'{') {
            return Err(self
                .c
                .unexpected(r#"an object of label names to string values {"name": "value"}"#));
        }
        let limits = self.limits;
        // Room for the metric name the caller adds.
        let mut pairs: Vec<(Cow<'a, str>, Cow<'a, str>)> = Vec::with_capacity(8);
        if self.c.eat(b'}') {
            return Ok(pairs);
        }
        loop {
            let key_pos = self.c.pos();
            let name = self.c.key()?;
            let invalid = if pairs.len() == limits.max_labels_per_series {
                self.c.rewind(key_pos);
                return Err(self.c.fail(format!(
                    "more than {} labels (limits.max_labels_per_series)",
                    limits.max_labels_per_series
                )));
            } else if name == METRIC_NAME {
                Some(Cow::from(
                    "label `__name__` is reserved: give the metric name as `metric`",
                ))
            } else if name.starts_with("__") {
                Some(Cow::from("label names starting with `__` are reserved"))
            } else if !is_label_name(&name) {
                Some(Cow::from(
                    "invalid label name: must match [a-zA-Z_][a-zA-Z0-9_]*",
                ))
            } else if name.len() > limits.max_label_name_bytes {
                Some(Cow::from(format!(
                    "label name is {} bytes, more than limits.max_label_name_bytes = {}",
                    name.len(),
                    limits.max_label_name_bytes
                )))
            } else {
                None
            };
            if let Some(message) = invalid {
                self.c.rewind(key_pos);
                return Err(self.c.fail_at(label_path(i, &name), message));
            }
            let value_pos = self.c.pos();
            let value = self.c.string().at(|| label_path(i, &name))?;
            if value.len() > limits.max_label_value_bytes {
                self.c.rewind(value_pos);
                return Err(self.c.fail_at(
                    label_path(i, &name),
                    format!(
                        "label value is {} bytes, more than limits.max_label_value_bytes = {}",
                        value.len(),
                        limits.max_label_value_bytes
                    ),
                ));
            }
            pairs.push((name, value));
            if !self.c.next_member(b'}')? {
                break;
            }
        }
        if !pairs.windows(2).all(|w| w[0].0 < w[1].0) {
            pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            if let Some(w) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
                return Err(self
                    .c
                    .fail_at(label_path(i, &w[0].0), "duplicate label name"));
            }
        }
        Ok(pairs)
    }

    /// `[[timestamp_ms, value], ...]`: the hot loop.
    fn samples(&mut self, i: usize) -> PResult<Vec<(i64, f64)>> {
        if !self.c.eat(b'[') {
            return Err(self.c.unexpected("an array of [timestamp_ms, value] pairs"));
        }
        let mut out = Vec::with_capacity(8);
        if self.c.eat(b']') {
            return Ok(out);
        }
        loop {
            let j = out.len();
            let start = self.c.pos();
            let sample = match self.c.compact_sample() {
                Some((t, v)) if t >= self.min_ts && t <= self.max_ts => {
                    self.count_sample()
                        .at(|| format!("series[{i}].samples[{j}]"))?;
                    (t, v)
                }
                _ => {
                    self.c.rewind(start);
                    self.sample(i, j)
                        .at(|| format!("series[{i}].samples[{j}]"))?
                }
            };
            out.push(sample);
            if !self.c.next_member(b']')? {
                return Ok(out);
            }
        }
    }

    #[inline]
    fn sample(&mut self, i: usize, j: usize) -> PResult<(i64, f64)> {
        let c = &mut self.c;
        if !c.eat(b'[') {
            return Err(c.unexpected("a sample [timestamp_ms, value]"));
        }
        if c.peek() == Some(b']') {
            return Err(c.fail(SAMPLE_SHAPE));
        }
        let ts_pos = c.pos();
        let t = self
            .timestamp()
            .at(|| format!("series[{i}].samples[{j}][0]"))?;
        let c = &mut self.c;
        match c.peek() {
            Some(b',') => c.eat(b','),
            Some(b']') => return Err(c.fail(SAMPLE_SHAPE)),
            _ => return Err(c.unexpected("`,` or `]`")),
        };
        let v = self.value().at(|| format!("series[{i}].samples[{j}][1]"))?;
        let c = &mut self.c;
        if !c.eat(b']') {
            return Err(if c.peek() == Some(b',') {
                c.fail(SAMPLE_SHAPE)
            } else {
                c.unexpected("`]`")
            });
        }
        if t < self.min_ts || t > self.max_ts {
            c.rewind(ts_pos);
            return Err(c.fail_at(
                format!("series[{i}].samples[{j}][0]"),
                format!(
                    "timestamp {t} is outside the accepted range [{}, {}] (server time {} minus \
                     limits.max_sample_age, plus limits.max_sample_future)",
                    self.min_ts, self.max_ts, self.now_ms
                ),
            ));
        }
        self.count_sample()?;
        Ok((t, v))
    }

    /// An integer number of milliseconds.
    #[inline]
    fn timestamp(&mut self) -> PResult<i64> {
        const WHAT: &str = "an integer timestamp in milliseconds since the Unix epoch";
        let pos = self.c.pos();
        let n = self.c.number(WHAT)?;
        match self.c.integer(&n) {
            Some(t) => Ok(t),
            None => {
                let text = self.c.text(&n);
                self.c.rewind(pos);
                Err(self.c.fail(if n.integer {
                    format!("timestamp {text} is out of range")
                } else {
                    format!("expected {WHAT}, found {text}")
                }))
            }
        }
    }

    /// A JSON number, or `"NaN"`, `"+Inf"`, `"Inf"`, `"-Inf"`.
    #[inline]
    fn value(&mut self) -> PResult<f64> {
        let pos = self.c.pos();
        if self.c.peek() == Some(b'"') {
            let s = self.c.string()?;
            return match s.as_ref() {
                "NaN" => Ok(f64::NAN),
                "+Inf" | "Inf" => Ok(f64::INFINITY),
                "-Inf" => Ok(f64::NEG_INFINITY),
                _ => {
                    self.c.rewind(pos);
                    Err(self.c.fail(format!(
                        "expected {VALUE_EXPECTED}, found string {:?}",
                        short(&s)
                    )))
                }
            };
        }
        let n = self.c.number(VALUE_EXPECTED)?;
        let v = self.c.float(&n);
        if v.is_finite() {
            return Ok(v);
        }
        let text = self.c.text(&n);
        self.c.rewind(pos);
        Err(self.c.fail(format!(
            "number {text} is out of range (use \"+Inf\" or \"-Inf\")"
        )))
    }

    /// Counts one more sample against the request limit.
    #[inline]
    fn count_sample(&mut self) -> PResult<()> {
        self.samples += 1;
        if self.samples > self.limits.max_samples_per_request {
            return Err(self.c.fail(format!(
                "request has more than {} samples (limits.max_samples_per_request)",
                self.limits.max_samples_per_request
            )));
        }
        Ok(())
    }
}
