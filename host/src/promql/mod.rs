//! `promql` owns the PromQL evaluator: queries parsed by `promql-parser`,
//! checked against what Klaxon supports (an unsupported function fails when
//! the query is parsed, naming it, never at evaluation), and evaluated with
//! Prometheus 3 semantics over any [`Source`] of samples (the [`Store`], or
//! the in-memory data of a rule unit test).
//!
//! Semantics follow Prometheus's engine: left-open lookback `(t - 5m, t]`
//! for instant selectors and `(t - range, t]` for range selectors, staleness
//! markers end a series, `offset` and `@` shift the evaluation time,
//! subqueries step on absolute multiples of their step, `rate`/`increase`/
//! `delta` extrapolate as Prometheus does, Kahan summation in `sum`, `avg`
//! and the `*_over_time` functions. Native histograms are not supported.
//!
//! Never imports rules, route, notify, api or plugins.

mod eval;
mod functions;
pub mod notation;

use std::sync::Arc;
use std::time::Duration;

use promql_parser::parser::{self, Expr};

use crate::store::{Labels, Matcher, Store};

pub use eval::Engine;

/// Prometheus's staleness marker: a NaN with this exact bit pattern.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Whether `v` is a staleness marker (not just any NaN).
pub fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// A staleness marker value.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// Default lookback of instant selectors.
pub const DEFAULT_LOOKBACK: Duration = Duration::from_secs(300);

/// A query that failed to parse or uses something Klaxon does not support.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    #[error("cannot parse PromQL `{query}`: {message}")]
    Syntax { query: String, message: String },
    #[error("PromQL `{query}`: {feature} is not supported by Klaxon")]
    Unsupported { query: String, feature: String },
}

/// A query evaluation that failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    #[error("{0}")]
    Query(String),
    #[error("query processing would load too many samples into memory ({0} > limit)")]
    TooManySamples(usize),
}

/// A parsed, checked query.
#[derive(Debug, Clone)]
pub struct Query {
    text: Arc<str>,
    expr: Arc<Expr>,
}

impl Query {
    /// Parses `text` and checks it uses only supported features.
    pub fn parse(text: &str) -> Result<Query, ParseError> {
        let expr = parser::parse(text).map_err(|message| ParseError::Syntax {
            query: text.to_owned(),
            message,
        })?;
        if let Some(feature) = functions::unsupported(&expr) {
            return Err(ParseError::Unsupported {
                query: text.to_owned(),
                feature,
            });
        }
        Ok(Query {
            text: text.into(),
            expr: Arc::new(expr),
        })
    }

    /// The query text as given.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The parsed expression.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// What the query returns when evaluated at an instant.
    pub fn value_type(&self) -> ValueType {
        match self.expr.value_type() {
            parser::value::ValueType::Scalar => ValueType::Scalar,
            parser::value::ValueType::String => ValueType::String,
            parser::value::ValueType::Vector => ValueType::Vector,
            parser::value::ValueType::Matrix => ValueType::Matrix,
        }
    }
}

/// The type of a PromQL value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Scalar,
    String,
    Vector,
    Matrix,
}

impl ValueType {
    /// Prometheus's name for it in API answers.
    pub fn as_str(self) -> &'static str {
        match self {
            ValueType::Scalar => "scalar",
            ValueType::String => "string",
            ValueType::Vector => "vector",
            ValueType::Matrix => "matrix",
        }
    }
}

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    /// The sample's timestamp: the evaluation time, except for the samples
    /// of a plain selector, which keep their own (used by `timestamp()`).
    pub t: i64,
    pub v: f64,
}

/// One series of a range vector or of a range query's result.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    pub labels: Labels,
    pub samples: Vec<(i64, f64)>,
}

/// The result of evaluating an expression at one instant.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(f64),
    String(String),
    Vector(Vec<Sample>),
    Matrix(Vec<RangeSeries>),
}

impl Value {
    /// The value's type.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::Scalar(_) => ValueType::Scalar,
            Value::String(_) => ValueType::String,
            Value::Vector(_) => ValueType::Vector,
            Value::Matrix(_) => ValueType::Matrix,
        }
    }
}

/// The samples of one series over a time range, as a source hands them out.
#[derive(Debug, Clone, Default)]
pub struct SourceSeries {
    pub labels: Labels,
    pub timestamps: Vec<i64>,
    pub values: Vec<f64>,
}

/// Where the evaluator reads samples from.
pub trait Source: Sync {
    /// Series matching all `matchers`, with their samples in
    /// `[mint, maxt]` (both inclusive), sorted by labels.
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<SourceSeries>;
}

impl Source for Store {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<SourceSeries> {
        let handles = Store::select(self, matchers);
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            let mut s = SourceSeries {
                labels: h.labels().clone(),
                ..SourceSeries::default()
            };
            self.read_window(
                &h,
                mint.saturating_sub(1),
                maxt,
                &mut s.timestamps,
                &mut s.values,
            );
            if !s.timestamps.is_empty() {
                out.push(s);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
