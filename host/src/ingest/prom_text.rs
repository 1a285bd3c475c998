//! The Prometheus text exposition format 0.0.4 and OpenMetrics 1.0 text, as
//! accepted by `POST /api/v1/import/prometheus`: a line-by-line reader that
//! turns a body into [`SeriesSamples`] or an [`IngestError`] naming the line
//! (`line 7: invalid value "abc" ...`).
//!
//! Why our own reader and not a crate: the crates looked at
//! (`openmetrics-parser`, `prometheus-parse`, `prometheus-exposition-format-rs`)
//! rebuild metric families, so the line of an error is lost; the first says
//! its API keeps changing, the second knows neither OpenMetrics nor `# EOF`.
//! What ingest needs is flat samples, our name rules and limits, and the line
//! of the first problem; the format is line-based and small enough to read
//! here, with a table of good and bad inputs in the tests.
//!
//! What it accepts:
//! - `name{label="value",...} value [timestamp]`; spaces or tabs between
//!   tokens; a trailing comma in the label list; label value escapes `\\`,
//!   `\"`, `\n` (any other escape is an error).
//! - values: floats as Go's `ParseFloat` writes them, `NaN`, `+Inf`, `-Inf`.
//! - timestamps: integer milliseconds (0.0.4) or float seconds (OpenMetrics);
//!   absent means the server's `now`. Both must lie within the limits'
//!   `max_sample_age` / `max_sample_future` of `now`.
//! - `# HELP` (text ignored), `# TYPE` (type checked; a second `TYPE` for one
//!   name is an error), `# UNIT`, other comments ignored, blank lines skipped.
//! - OpenMetrics: the body must end with `# EOF` and nothing may follow it;
//!   exemplars (` # {...} v [t]` after a sample) are ignored.
//! - histograms and summaries are stored as the flat series they are
//!   written as (`_bucket` with `le`, `_sum`, `_count`, `quantile`); a
//!   `_bucket` sample of a histogram must have a numeric `le`, a summary's
//!   quantile sample a numeric `quantile`.
//! - `_created` samples of counters, histograms and summaries are dropped:
//!   they carry a creation time, not a measurement, and Prometheus does not
//!   store them as series either.
//!
//! Metric and label names follow the JSON push rules (`__` prefixes are
//! reserved), and every `IngestLimits` limit applies: one sample line is one
//! sample, and repeated series are merged before the series limit counts.

use std::borrow::Cow;
use std::collections::HashMap;

use super::push::{is_metric_name, merge_duplicates, short};
use super::{IngestError, IngestLimits};
use crate::duration::as_millis_i64;
use crate::store::is_label_name;
use crate::store::{Labels, METRIC_NAME, SeriesSamples};

/// Which text format a body is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextFormat {
    /// Prometheus text exposition format 0.0.4 (`text/plain`).
    Prometheus,
    /// OpenMetrics 1.0 text (`application/openmetrics-text`).
    OpenMetrics,
}

impl TextFormat {
    /// The format a `Content-Type` announces: OpenMetrics for
    /// `application/openmetrics-text`, the 0.0.4 text format for anything
    /// else (including none, so `curl --data-binary` works).
    pub fn from_content_type(content_type: Option<&str>) -> TextFormat {
        match content_type {
            Some(ct)
                if ct
                    .trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/openmetrics-text") =>
            {
                TextFormat::OpenMetrics
            }
            _ => TextFormat::Prometheus,
        }
    }
}

/// A label added to every series of a request (`extra_label=name=value`),
/// replacing a label of that name given in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraLabel {
    pub name: String,
    pub value: String,
}

impl ExtraLabel {
    /// Parses and checks `name=value` against the label name rules and limits.
    pub fn parse(spec: &str, limits: &IngestLimits) -> Result<ExtraLabel, IngestError> {
        let fail = |message: String| IngestError {
            field: "extra_label".into(),
            message,
        };
        let Some((name, value)) = spec.split_once('=') else {
            return Err(fail(format!(
                "expected name=value, found {:?}",
                short(spec)
            )));
        };
        if let Some(message) = label_name_problem(name, limits) {
            return Err(fail(format!("{:?}: {message}", short(name))));
        }
        if value.len() > limits.max_label_value_bytes {
            return Err(fail(format!(
                "label value is {} bytes, more than limits.max_label_value_bytes = {}",
                value.len(),
                limits.max_label_value_bytes
            )));
        }
        Ok(ExtraLabel {
            name: name.to_owned(),
            value: value.to_owned(),
        })
    }
}

/// Parses and validates a text-format body. `now_ms` is the server's clock:
/// the time of samples without a timestamp and the centre of the accepted
/// range. `extra` labels are added to (or replace labels of) every series.
pub fn parse_prom_text(
    body: &[u8],
    format: TextFormat,
    limits: &IngestLimits,
    now_ms: i64,
    extra: &[ExtraLabel],
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
    let text = std::str::from_utf8(body).map_err(|e| {
        let line = body[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        IngestError {
            field: format!("line {line}"),
            message: "invalid UTF-8".into(),
        }
    })?;
    let mut reader = Reader {
        format,
        limits,
        now_ms,
        min_ts: now_ms.saturating_sub(as_millis_i64(limits.max_sample_age)),
        max_ts: now_ms.saturating_add(as_millis_i64(limits.max_sample_future)),
        extra,
        types: HashMap::new(),
        out: Vec::new(),
        last: None,
        samples: 0,
    };
    let mut seen_eof = false;
    let mut last_line = 0;
    let lines: Vec<&str> = text.split('\n').collect();
    for (i, raw) in lines.iter().enumerate() {
        let n = i + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if seen_eof {
            // Only the empty remainder after the final newline may follow.
            if line.is_empty() && n == lines.len() {
                break;
            }
            return Err(at(n, "content after `# EOF`"));
        }
        last_line = n;
        if line.trim_matches([' ', '\t']).is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            if format == TextFormat::OpenMetrics && line == "# EOF" {
                seen_eof = true;
                continue;
            }
            reader.comment(rest, n)?;
        } else {
            reader.sample(line, n)?;
        }
    }
    if format == TextFormat::OpenMetrics && !seen_eof {
        return Err(at(
            last_line.max(1),
            "missing `# EOF`: an OpenMetrics body must end with it",
        ));
    }
    let series = merge_duplicates(reader.out);
    if series.len() > limits.max_series_per_request {
        return Err(IngestError {
            field: "body".into(),
            message: format!(
                "request has {} series, more than limits.max_series_per_request = {}",
                series.len(),
                limits.max_series_per_request
            ),
        });
    }
    Ok(series)
}

fn at(line: usize, message: impl Into<String>) -> IngestError {
    IngestError {
        field: format!("line {line}"),
        message: message.into(),
    }
}

/// Why `name` cannot be a label name, if it cannot.
fn label_name_problem(name: &str, limits: &IngestLimits) -> Option<String> {
    if name.starts_with("__") {
        Some("label names starting with `__` are reserved".into())
    } else if !is_label_name(name) {
        Some("invalid label name: must match [a-zA-Z_][a-zA-Z0-9_]*".into())
    } else if name.len() > limits.max_label_name_bytes {
        Some(format!(
            "label name is {} bytes, more than limits.max_label_name_bytes = {}",
            name.len(),
            limits.max_label_name_bytes
        ))
    } else {
        None
    }
}

/// A metric family's declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MetricType {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    Untyped,
}

impl MetricType {
    fn parse(s: &str, format: TextFormat) -> Option<MetricType> {
        Some(match (s, format) {
            ("counter", _) => MetricType::Counter,
            ("gauge", _) => MetricType::Gauge,
            ("histogram", _) => MetricType::Histogram,
            ("summary", _) => MetricType::Summary,
            ("untyped", TextFormat::Prometheus) | ("unknown", TextFormat::OpenMetrics) => {
                MetricType::Untyped
            }
            ("gaugehistogram", TextFormat::OpenMetrics) => MetricType::GaugeHistogram,
            ("info", TextFormat::OpenMetrics) => MetricType::Info,
            ("stateset", TextFormat::OpenMetrics) => MetricType::StateSet,
            _ => return None,
        })
    }

    fn has_created(self) -> bool {
        matches!(
            self,
            MetricType::Counter
                | MetricType::Histogram
                | MetricType::GaugeHistogram
                | MetricType::Summary
        )
    }
}

/// Sample-name suffixes that belong to a family named without them.
const SUFFIXES: [&str; 7] = [
    "_bucket", "_count", "_sum", "_total", "_created", "_gcount", "_gsum",
];

type Pairs<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

struct Reader<'a, 'l> {
    format: TextFormat,
    limits: &'l IngestLimits,
    now_ms: i64,
    min_ts: i64,
    max_ts: i64,
    extra: &'l [ExtraLabel],
    /// Declared family types, by family name.
    types: HashMap<&'a str, MetricType>,
    out: Vec<SeriesSamples>,
    /// The series text (`name{labels}`) and metric name of the last sample
    /// line, and its index in `out`: a history import repeats one series
    /// line after line, whose labels are then parsed and checked once.
    last: Option<(&'a str, &'a str, usize)>,
    /// Samples read so far.
    samples: usize,
}

impl<'a> Reader<'a, '_> {
    /// A line starting with `#` (`rest` is what follows it).
    fn comment(&mut self, rest: &'a str, n: usize) -> Result<(), IngestError> {
        // `#HELP` is a plain comment; `# HELP` is not.
        if !rest.starts_with([' ', '\t']) {
            return Ok(());
        }
        let mut tokens = rest.split([' ', '\t']).filter(|t| !t.is_empty());
        let keyword = match (tokens.next(), self.format) {
            (Some(k @ ("HELP" | "TYPE")), _) | (Some(k @ "UNIT"), TextFormat::OpenMetrics) => k,
            _ => return Ok(()),
        };
        let Some(name) = tokens.next() else {
            return Err(at(n, format!("`# {keyword}` without a metric name")));
        };
        self.check_metric_name(name, n)?;
        if keyword != "TYPE" {
            return Ok(());
        }
        let Some(type_name) = tokens.next() else {
            return Err(at(n, format!("`# TYPE {name}` without a type")));
        };
        let Some(ty) = MetricType::parse(type_name, self.format) else {
            let expected = match self.format {
                TextFormat::Prometheus => "counter, gauge, histogram, summary or untyped",
                TextFormat::OpenMetrics => {
                    "counter, gauge, histogram, gaugehistogram, summary, info, stateset or unknown"
                }
            };
            return Err(at(
                n,
                format!(
                    "unknown metric type {:?}: expected {expected}",
                    short(type_name)
                ),
            ));
        };
        if let Some(extra) = tokens.next() {
            return Err(at(
                n,
                format!("unexpected {:?} after the metric type", short(extra)),
            ));
        }
        if self.types.insert(name, ty).is_some() {
            return Err(at(
                n,
                format!("second `# TYPE` line for metric {}", short(name)),
            ));
        }
        Ok(())
    }

    fn check_metric_name(&self, name: &str, n: usize) -> Result<(), IngestError> {
        if !is_metric_name(name) {
            return Err(at(
                n,
                format!(
                    "invalid metric name {:?}: must match [a-zA-Z_:][a-zA-Z0-9_:]*",
                    short(name)
                ),
            ));
        }
        let max = self.limits.max_label_name_bytes;
        if name.len() > max {
            return Err(at(
                n,
                format!(
                    "metric name is {} bytes, more than limits.max_label_name_bytes = {max}",
                    name.len()
                ),
            ));
        }
        Ok(())
    }

    /// The family a sample name belongs to, with the suffix it carries.
    fn family(&self, name: &str) -> Option<(MetricType, &'static str)> {
        if let Some(&ty) = self.types.get(name) {
            return Some((ty, ""));
        }
        SUFFIXES.iter().find_map(|&suffix| {
            let base = name.strip_suffix(suffix)?;
            self.types.get(base).map(|&ty| (ty, suffix))
        })
    }

    /// A sample line.
    fn sample(&mut self, line: &'a str, n: usize) -> Result<(), IngestError> {
        let s = line.trim_start_matches([' ', '\t']);
        // The same series as the line before: only the value and time differ.
        if let Some((series, name, idx)) = self.last
            && let Some(rest) = s.strip_prefix(series)
            && rest.starts_with([' ', '\t'])
            && !rest.trim_start_matches([' ', '\t']).starts_with('{')
        {
            let (ts, value) = self.value_and_time(rest, name, n)?;
            self.count_sample(n)?;
            self.out[idx].samples.push((ts, value));
            return Ok(());
        }
        let name_len = s
            .bytes()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b':')
            .count();
        if name_len == 0 {
            let found: String = s.chars().take(16).collect();
            return Err(at(n, format!("expected a metric name, found {found:?}")));
        }
        let (name, mut rest) = s.split_at(name_len);
        self.check_metric_name(name, n)?;
        let mut pairs: Pairs<'a> = Vec::new();
        if let Some(after) = rest.trim_start_matches([' ', '\t']).strip_prefix('{') {
            rest = self.labels(after, n, &mut pairs)?;
        }
        let series = &s[..s.len() - rest.len()];
        let (ts, value) = self.value_and_time(rest, name, n)?;

        let family = self.family(name);
        if let Some((ty, "_created")) = family
            && ty.has_created()
        {
            return Ok(());
        }
        pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if let Some(w) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(at(n, format!("duplicate label name {}", short(&w[0].0))));
        }
        match family {
            Some((MetricType::Histogram | MetricType::GaugeHistogram, "_bucket")) => {
                self.numeric_label(&pairs, "le", "a histogram bucket", n)?;
            }
            Some((MetricType::Summary, "")) => {
                self.numeric_label(&pairs, "quantile", "a summary quantile", n)?;
            }
            _ => {}
        }
        if !self.extra.is_empty() {
            pairs.retain(|(name, _)| self.extra.iter().all(|e| e.name != *name));
            pairs.extend(
                self.extra
                    .iter()
                    .map(|e| (Cow::Owned(e.name.clone()), Cow::Owned(e.value.clone()))),
            );
        }
        let max = self.limits.max_labels_per_series;
        if pairs.len() > max {
            return Err(at(
                n,
                format!(
                    "series has {} labels, more than limits.max_labels_per_series = {max}",
                    pairs.len()
                ),
            ));
        }
        pairs.push((Cow::Borrowed(METRIC_NAME), Cow::Borrowed(name)));
        self.count_sample(n)?;
        self.last = Some((series, name, self.out.len()));
        self.out.push(SeriesSamples {
            labels: Labels::new(pairs),
            samples: vec![(ts, value)],
        });
        Ok(())
    }

    /// Counts one more sample against `limits.max_samples_per_request`.
    fn count_sample(&mut self, n: usize) -> Result<(), IngestError> {
        if self.samples == self.limits.max_samples_per_request {
            return Err(at(
                n,
                format!(
                    "request has more than {} samples (limits.max_samples_per_request)",
                    self.limits.max_samples_per_request
                ),
            ));
        }
        self.samples += 1;
        Ok(())
    }

    /// The value and optional timestamp after a series (`rest` starts with
    /// the blank before the value), and an OpenMetrics exemplar, ignored.
    fn value_and_time(&self, rest: &str, name: &str, n: usize) -> Result<(i64, f64), IngestError> {
        let mut tokens = rest.split([' ', '\t']).filter(|t| !t.is_empty());
        let Some(value_tok) = tokens.next() else {
            return Err(at(n, format!("metric {} has no value", short(name))));
        };
        if !rest.starts_with([' ', '\t']) {
            return Err(at(
                n,
                format!("expected a space before the value, found {:?}", short(rest)),
            ));
        }
        let Ok(value) = value_tok.parse::<f64>() else {
            return Err(at(
                n,
                format!(
                    "invalid value {:?}: expected a float, NaN, +Inf or -Inf",
                    short(value_tok)
                ),
            ));
        };
        let mut ts = self.now_ms;
        let mut next = tokens.next();
        if let Some(tok) = next
            && tok != "#"
        {
            ts = self.timestamp(tok, n)?;
            next = tokens.next();
        }
        match (next, self.format) {
            (None, _) => {}
            // An exemplar: ignored.
            (Some("#"), TextFormat::OpenMetrics) => {}
            (Some(tok), _) => {
                return Err(at(
                    n,
                    format!("unexpected {:?} after the timestamp", short(tok)),
                ));
            }
        }
        Ok((ts, value))
    }

    /// Checks that label `name` is present and a float.
    fn numeric_label(
        &self,
        pairs: &Pairs<'_>,
        name: &str,
        what: &str,
        n: usize,
    ) -> Result<(), IngestError> {
        match pairs.iter().find(|(n, _)| n == name) {
            Some((_, v)) if v.parse::<f64>().is_ok() => Ok(()),
            Some((_, v)) => Err(at(
                n,
                format!(
                    "{what} needs a numeric `{name}` label, found {:?}",
                    short(v)
                ),
            )),
            None => Err(at(n, format!("{what} needs a `{name}` label"))),
        }
    }

    /// A sample's timestamp: integer milliseconds, or float seconds in
    /// OpenMetrics; checked against the accepted range.
    fn timestamp(&self, tok: &str, n: usize) -> Result<i64, IngestError> {
        let ts = match self.format {
            TextFormat::Prometheus => tok.parse::<i64>().map_err(|_| {
                at(
                    n,
                    format!(
                        "invalid timestamp {:?}: expected integer milliseconds since the Unix epoch",
                        short(tok)
                    ),
                )
            })?,
            TextFormat::OpenMetrics => match tok.parse::<f64>() {
                Ok(secs) if secs.is_finite() && secs.abs() < 9.2e15 => (secs * 1000.0).round() as i64,
                _ => {
                    return Err(at(
                        n,
                        format!(
                            "invalid timestamp {:?}: expected seconds since the Unix epoch",
                            short(tok)
                        ),
                    ));
                }
            },
        };
        if ts < self.min_ts || ts > self.max_ts {
            return Err(at(
                n,
                format!(
                    "timestamp {ts} is outside the accepted range [{}, {}] (server time {} minus \
                     limits.max_sample_age, plus limits.max_sample_future)",
                    self.min_ts, self.max_ts, self.now_ms
                ),
            ));
        }
        Ok(ts)
    }

    /// The label list after `{`; returns what follows the closing `}`.
    fn labels(
        &self,
        mut s: &'a str,
        n: usize,
        pairs: &mut Pairs<'a>,
    ) -> Result<&'a str, IngestError> {
        loop {
            s = s.trim_start_matches([' ', '\t']);
            if let Some(after) = s.strip_prefix('}') {
                return Ok(after);
            }
            let name_len = s
                .bytes()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
                .count();
            let (name, after) = s.split_at(name_len);
            if name.is_empty() {
                let found: String = s.chars().take(16).collect();
                return Err(at(
                    n,
                    format!("expected a label name or `}}`, found {found:?}"),
                ));
            }
            if let Some(message) = label_name_problem(name, self.limits) {
                return Err(at(n, format!("label {}: {message}", short(name))));
            }
            let after = after.trim_start_matches([' ', '\t']);
            let Some(after) = after.strip_prefix('=') else {
                return Err(at(n, format!("expected `=` after label name {name}")));
            };
            let after = after.trim_start_matches([' ', '\t']);
            let Some(after) = after.strip_prefix('"') else {
                return Err(at(n, format!("expected a quoted value for label {name}")));
            };
            let (value, after) =
                label_value(after).map_err(|message| at(n, format!("label {name}: {message}")))?;
            if value.len() > self.limits.max_label_value_bytes {
                return Err(at(
                    n,
                    format!(
                        "label {name}: value is {} bytes, more than limits.max_label_value_bytes = {}",
                        value.len(),
                        self.limits.max_label_value_bytes
                    ),
                ));
            }
            pairs.push((Cow::Borrowed(name), value));
            if pairs.len() > self.limits.max_labels_per_series {
                return Err(at(
                    n,
                    format!(
                        "series has more than limits.max_labels_per_series = {} labels",
                        self.limits.max_labels_per_series
                    ),
                ));
            }
            s = after.trim_start_matches([' ', '\t']);
            if let Some(after) = s.strip_prefix(',') {
                s = after;
            } else if !s.starts_with('}') {
                let found: String = s.chars().take(16).collect();
                return Err(at(
                    n,
                    format!(
                        "expected `,` or `}}` after the value of label {name}, found {found:?}"
                    ),
                ));
            }
        }
    }
}

/// A label value after its opening quote: the unescaped value (borrowed when
/// it has no escapes) and what follows the closing quote.
fn label_value(s: &str) -> Result<(Cow<'_, str>, &str), String> {
    let Some(end) = s.find(['"', '\\']) else {
        return Err("unterminated label value".into());
    };
    if s.as_bytes()[end] == b'"' {
        return Ok((Cow::Borrowed(&s[..end]), &s[end + 1..]));
    }
    let mut value = String::with_capacity(s.len());
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((Cow::Owned(value), &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, '\\')) => value.push('\\'),
                Some((_, '"')) => value.push('"'),
                Some((_, 'n')) => value.push('\n'),
                Some((_, other)) => {
                    return Err(format!(
                        "invalid escape sequence `\\{other}` in label value"
                    ));
                }
                None => break,
            },
            c => value.push(c),
        }
    }
    Err("unterminated label value".into())
}
