//! The JSON push body, read by `serde_json` through `DeserializeSeed`
//! visitors straight into `SeriesSamples`: no intermediate tree, strings
//! borrowed from the body where they have no escapes, limits checked while
//! the body is read, and the field of the first error recorded on the way
//! out (`series[3].samples[2][0]`), which serde's derive cannot report.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{IngestError, IngestLimits};
use crate::duration::as_millis_i64;
use crate::store::{FpBuildHasher, Labels, METRIC_NAME, SeriesSamples, is_label_name};

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
    let ctx = Ctx {
        limits,
        now_ms,
        min_ts: now_ms.saturating_sub(as_millis_i64(limits.max_sample_age)),
        max_ts: now_ms.saturating_add(as_millis_i64(limits.max_sample_future)),
        samples: Cell::new(0),
        failed_at: RefCell::new(None),
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = BodySeed(&ctx)
        .deserialize(&mut de)
        .and_then(|series| de.end().map(|()| series));
    match parsed {
        Ok(series) => Ok(merge_duplicates(series)),
        Err(e) => Err(IngestError {
            field: ctx.failed_at.take().unwrap_or_else(|| "body".into()),
            message: e.to_string(),
        }),
    }
}

/// Folds repeated label sets into their first entry, keeping request order.
pub(super) fn merge_duplicates(series: Vec<SeriesSamples>) -> Vec<SeriesSamples> {
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

pub(super) fn is_metric_name(name: &str) -> bool {
    let b = name.as_bytes();
    matches!(b.first(), Some(c) if c.is_ascii_alphabetic() || *c == b'_' || *c == b':')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b':')
}

/// `series[3].labels.name`.
fn label_path(series: usize, name: &str) -> String {
    format!("series[{series}].labels.{}", short(name))
}

/// A client-chosen name as it appears in a field path or message: cut at 64
/// bytes so a huge key cannot make a huge error.
pub(super) fn short(name: &str) -> Cow<'_, str> {
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
const TIMESTAMP_EXPECTED: &str = "an integer timestamp in milliseconds since the Unix epoch";

/// What every visitor shares: limits, the sample count so far, and where the
/// first error happened.
struct Ctx<'l> {
    limits: &'l IngestLimits,
    now_ms: i64,
    min_ts: i64,
    max_ts: i64,
    /// Samples so far, all series together.
    samples: Cell<usize>,
    /// The field path of the innermost visitor an error passed through.
    failed_at: RefCell<Option<String>>,
}

impl Ctx<'_> {
    /// Records `path` as the error's field unless an inner visitor already did.
    #[cold]
    fn mark(&self, path: impl FnOnce() -> String) {
        let mut at = self.failed_at.borrow_mut();
        if at.is_none() {
            *at = Some(path());
        }
    }

    /// Passes `r` through, recording `path` when it is an error.
    #[inline]
    fn at<T, E>(&self, r: Result<T, E>, path: impl FnOnce() -> String) -> Result<T, E> {
        if r.is_err() {
            self.mark(path);
        }
        r
    }

    /// A validation error of our own at `path`.
    #[cold]
    fn fail<E: de::Error>(&self, path: impl FnOnce() -> String, message: impl fmt::Display) -> E {
        self.mark(path);
        E::custom(message)
    }

    /// Counts one more sample against the request limit.
    #[inline]
    fn count_sample<E: de::Error>(&self, path: impl FnOnce() -> String) -> Result<(), E> {
        let n = self.samples.get() + 1;
        self.samples.set(n);
        if n > self.limits.max_samples_per_request {
            return Err(self.fail(
                path,
                format_args!(
                    "request has more than {} samples (limits.max_samples_per_request)",
                    self.limits.max_samples_per_request
                ),
            ));
        }
        Ok(())
    }
}

/// A string, borrowed from the body when it has no escapes.
struct Str;

impl<'de> DeserializeSeed<'de> for Str {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Str {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// `{"series": [...]}`.
struct BodySeed<'c, 'l>(&'c Ctx<'l>);

impl<'de> DeserializeSeed<'de> for BodySeed<'_, '_> {
    type Value = Vec<SeriesSamples>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for BodySeed<'_, '_> {
    type Value = Vec<SeriesSamples>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(r#"a push body {"series": [...]}"#)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let ctx = self.0;
        let mut series = None;
        while let Some(key) = map.next_key_seed(Str)? {
            if key != "series" {
                return Err(ctx.fail(
                    || short(&key).into_owned(),
                    "unknown field, expected `series`",
                ));
            }
            if series.is_some() {
                return Err(ctx.fail(|| "series".into(), "duplicate field `series`"));
            }
            let list = map.next_value_seed(SeriesListSeed(ctx));
            series = Some(ctx.at(list, || "series".into())?);
        }
        series.ok_or_else(|| ctx.fail(|| "series".into(), "missing field `series`"))
    }
}

/// `[series, ...]`.
struct SeriesListSeed<'c, 'l>(&'c Ctx<'l>);

impl<'de> DeserializeSeed<'de> for SeriesListSeed<'_, '_> {
    type Value = Vec<SeriesSamples>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for SeriesListSeed<'_, '_> {
    type Value = Vec<SeriesSamples>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of series")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let ctx = self.0;
        let max = ctx.limits.max_series_per_request;
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(max));
        for i in 0.. {
            let next = seq.next_element_seed(SeriesSeed { ctx, i });
            let Some(series) = ctx.at(next, || format!("series[{i}]"))? else {
                break;
            };
            if i == max {
                return Err(ctx.fail(
                    || "series".into(),
                    format_args!(
                        "request has more than {max} series (limits.max_series_per_request)"
                    ),
                ));
            }
            // `None`: a series with `"samples": []` carries nothing to store.
            out.extend(series);
        }
        Ok(out)
    }
}

/// One series object.
struct SeriesSeed<'c, 'l> {
    ctx: &'c Ctx<'l>,
    i: usize,
}

impl<'de> DeserializeSeed<'de> for SeriesSeed<'_, '_> {
    type Value = Option<SeriesSamples>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for SeriesSeed<'_, '_> {
    type Value = Option<SeriesSamples>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(r#"a series object {"metric": ..., "labels": {...}, "samples": [...]}"#)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let SeriesSeed { ctx, i } = self;
        let mut metric: Option<Cow<'de, str>> = None;
        let mut labels: Option<Vec<(Cow<'de, str>, Cow<'de, str>)>> = None;
        let mut samples: Option<Vec<(i64, f64)>> = None;
        let mut value: Option<f64> = None;
        while let Some(key) = map.next_key_seed(Str)? {
            let seen = match key.as_ref() {
                "metric" => metric.is_some(),
                "labels" => labels.is_some(),
                "samples" => samples.is_some(),
                "value" => value.is_some(),
                _ => {
                    return Err(ctx.fail(
                        || format!("series[{i}].{}", short(&key)),
                        "unknown field, expected `metric`, `labels`, `samples` or `value`",
                    ));
                }
            };
            if seen {
                return Err(ctx.fail(
                    || format!("series[{i}].{key}"),
                    format_args!("duplicate field `{key}`"),
                ));
            }
            match key.as_ref() {
                "metric" => {
                    let name = map.next_value_seed(MetricSeed { ctx, i });
                    metric = Some(ctx.at(name, || format!("series[{i}].metric"))?);
                }
                "labels" => {
                    let pairs = map.next_value_seed(LabelsSeed { ctx, i });
                    labels = Some(ctx.at(pairs, || format!("series[{i}].labels"))?);
                }
                "samples" => {
                    let list = map.next_value_seed(SamplesSeed { ctx, i });
                    samples = Some(ctx.at(list, || format!("series[{i}].samples"))?);
                }
                _ => {
                    let v = map.next_value_seed(ValueSeed);
                    value = Some(ctx.at(v, || format!("series[{i}].value"))?);
                }
            }
        }
        let Some(metric) = metric else {
            return Err(ctx.fail(|| format!("series[{i}].metric"), "missing field `metric`"));
        };
        let samples = match (samples, value) {
            (Some(samples), None) => samples,
            (None, Some(value)) => {
                ctx.count_sample(|| format!("series[{i}].value"))?;
                vec![(ctx.now_ms, value)]
            }
            (Some(_), Some(_)) => {
                return Err(ctx.fail(
                    || format!("series[{i}]"),
                    "give either `samples` or `value`, not both",
                ));
            }
            (None, None) => {
                return Err(ctx.fail(
                    || format!("series[{i}]"),
                    "missing field: give `samples` or `value`",
                ));
            }
        };
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
}

/// The `metric` field: a valid metric name within the name length limit.
struct MetricSeed<'c, 'l> {
    ctx: &'c Ctx<'l>,
    i: usize,
}

impl<'de> DeserializeSeed<'de> for MetricSeed<'_, '_> {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let MetricSeed { ctx, i } = self;
        let name = Str.deserialize(d)?;
        let path = || format!("series[{i}].metric");
        if !is_metric_name(&name) {
            return Err(ctx.fail(
                path,
                format_args!(
                    "invalid metric name {:?}: must match [a-zA-Z_:][a-zA-Z0-9_:]*",
                    short(&name)
                ),
            ));
        }
        let max = ctx.limits.max_label_name_bytes;
        if name.len() > max {
            return Err(ctx.fail(
                path,
                format_args!(
                    "metric name is {} bytes, more than limits.max_label_name_bytes = {max}",
                    name.len()
                ),
            ));
        }
        Ok(name)
    }
}

/// `{"name": "value", ...}`, returned sorted by name.
struct LabelsSeed<'c, 'l> {
    ctx: &'c Ctx<'l>,
    i: usize,
}

impl<'de> DeserializeSeed<'de> for LabelsSeed<'_, '_> {
    type Value = Vec<(Cow<'de, str>, Cow<'de, str>)>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for LabelsSeed<'_, '_> {
    type Value = Vec<(Cow<'de, str>, Cow<'de, str>)>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(r#"an object of label names to string values {"name": "value"}"#)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let LabelsSeed { ctx, i } = self;
        let limits = ctx.limits;
        // Room for the metric name the caller adds.
        let mut pairs: Self::Value = Vec::with_capacity(8);
        while let Some(name) = map.next_key_seed(Str)? {
            if pairs.len() == limits.max_labels_per_series {
                return Err(ctx.fail(
                    || format!("series[{i}].labels"),
                    format_args!(
                        "more than {} labels (limits.max_labels_per_series)",
                        limits.max_labels_per_series
                    ),
                ));
            }
            let invalid = if name == METRIC_NAME {
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
                return Err(ctx.fail(|| label_path(i, &name), message));
            }
            let value = ctx.at(map.next_value_seed(Str), || label_path(i, &name))?;
            if value.len() > limits.max_label_value_bytes {
                return Err(ctx.fail(
                    || label_path(i, &name),
                    format_args!(
                        "label value is {} bytes, more than limits.max_label_value_bytes = {}",
                        value.len(),
                        limits.max_label_value_bytes
                    ),
                ));
            }
            pairs.push((name, value));
        }
        if !pairs.windows(2).all(|w| w[0].0 < w[1].0) {
            pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            if let Some(w) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
                return Err(ctx.fail(|| label_path(i, &w[0].0), "duplicate label name"));
            }
        }
        Ok(pairs)
    }
}

/// `[[timestamp_ms, value], ...]`: the hot loop.
struct SamplesSeed<'c, 'l> {
    ctx: &'c Ctx<'l>,
    i: usize,
}

impl<'de> DeserializeSeed<'de> for SamplesSeed<'_, '_> {
    type Value = Vec<(i64, f64)>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for SamplesSeed<'_, '_> {
    type Value = Vec<(i64, f64)>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of [timestamp_ms, value] pairs")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let SamplesSeed { ctx, i } = self;
        let mut out = Vec::with_capacity(8);
        loop {
            let j = out.len();
            let next = seq.next_element_seed(SampleSeed { ctx, i, j });
            match ctx.at(next, || format!("series[{i}].samples[{j}]"))? {
                Some(sample) => out.push(sample),
                None => return Ok(out),
            }
        }
    }
}

/// One `[timestamp_ms, value]` pair.
struct SampleSeed<'c, 'l> {
    ctx: &'c Ctx<'l>,
    i: usize,
    j: usize,
}

impl<'de> DeserializeSeed<'de> for SampleSeed<'_, '_> {
    type Value = (i64, f64);
    #[inline]
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for SampleSeed<'_, '_> {
    type Value = (i64, f64);
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a sample [timestamp_ms, value]")
    }
    #[inline]
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let SampleSeed { ctx, i, j } = self;
        let here = || format!("series[{i}].samples[{j}]");
        let t = seq.next_element_seed(TimestampSeed);
        let Some(t) = ctx.at(t, || format!("series[{i}].samples[{j}][0]"))? else {
            return Err(ctx.fail(here, SAMPLE_SHAPE));
        };
        let v = seq.next_element_seed(ValueSeed);
        let Some(v) = ctx.at(v, || format!("series[{i}].samples[{j}][1]"))? else {
            return Err(ctx.fail(here, SAMPLE_SHAPE));
        };
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(ctx.fail(here, SAMPLE_SHAPE));
        }
        if t < ctx.min_ts || t > ctx.max_ts {
            return Err(ctx.fail(
                || format!("series[{i}].samples[{j}][0]"),
                format_args!(
                    "timestamp {t} is outside the accepted range [{}, {}] (server time {} minus \
                     limits.max_sample_age, plus limits.max_sample_future)",
                    ctx.min_ts, ctx.max_ts, ctx.now_ms
                ),
            ));
        }
        ctx.count_sample(here)?;
        Ok((t, v))
    }
}

/// An integer number of milliseconds.
struct TimestampSeed;

impl<'de> DeserializeSeed<'de> for TimestampSeed {
    type Value = i64;
    #[inline]
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_i64(self)
    }
}

impl Visitor<'_> for TimestampSeed {
    type Value = i64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(TIMESTAMP_EXPECTED)
    }
    #[inline]
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom(format_args!("timestamp {v} is out of range")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        // serde_json reads integers beyond u64 as floats.
        Err(if v.fract() == 0.0 && v.abs() >= 9.2e18 {
            E::custom(format_args!("timestamp {v} is out of range"))
        } else {
            E::custom(format_args!("expected {TIMESTAMP_EXPECTED}, found {v}"))
        })
    }
}

/// A JSON number, or `"NaN"`, `"+Inf"`, `"Inf"`, `"-Inf"`.
struct ValueSeed;

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = f64;
    #[inline]
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl Visitor<'_> for ValueSeed {
    type Value = f64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(VALUE_EXPECTED)
    }
    #[inline]
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }
    #[inline]
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }
    #[inline]
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        match v {
            "NaN" => Ok(f64::NAN),
            "+Inf" | "Inf" => Ok(f64::INFINITY),
            "-Inf" => Ok(f64::NEG_INFINITY),
            _ => Err(E::custom(format_args!(
                "expected {VALUE_EXPECTED}, found string {:?}",
                short(v)
            ))),
        }
    }
}
