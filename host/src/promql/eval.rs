//! The evaluator: walks a parsed expression at one instant, reading each
//! selector's samples from the [`Source`] once per query. A range query is
//! evaluated a node at a time over all its steps where `matrix` covers the
//! nodes, and otherwise as the instant evaluation repeated at every step.
//!
//! In a range query, `sum_over_time`, `avg_over_time`, `count_over_time`,
//! `rate`, `increase` and `delta` of a plain range selector are computed
//! for every step at once, sliding one window along each series
//! (O(samples + steps) instead of O(samples × steps)), with
//! Kahan-compensated sums; series with non-finite or very large values take
//! the per-window path, whose summation order is Prometheus's.
//!
//! With [`Engine::delayed_name_removal`] (Prometheus 3's
//! `promql-delayed-name-removal`), name-dropping functions and operators
//! move `__name__` to [`MARKED_NAME`] instead of removing it; `label_replace`,
//! `label_join`, `by (__name__)` and `on (__name__)` still read it, and the
//! end of the query removes it and then checks for duplicate label sets.

/// Fx-hashed maps: keys here are label sets, whose hash is already their
/// fingerprint, and small integers; SipHash on top only costs time.
type HashMap<K, V> = rustc_hash::FxHashMap<K, V>;
type HashSet<K> = rustc_hash::FxHashSet<K>;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use promql_parser::label::Matchers;
use promql_parser::parser::{
    AggregateExpr, AtModifier, BinaryExpr, Expr, LabelModifier, MatrixSelector, Offset,
    SubqueryExpr, VectorMatchCardinality, VectorSelector,
};

use super::functions;
use super::{
    DEFAULT_LOOKBACK, EvalError, Query, RangeSeries, Sample, Source, SourceSeries, Value, is_stale,
};
use crate::store::{Labels, METRIC_NAME, Matcher};

mod matrix;

type Result<T> = std::result::Result<T, EvalError>;

pub(super) fn err<T>(message: impl Into<String>) -> Result<T> {
    Err(EvalError::Query(message.into()))
}

/// Evaluation settings shared by every query.
#[derive(Debug, Clone)]
pub struct Engine {
    /// How far back an instant selector looks for a sample (default 5m).
    pub lookback_ms: i64,
    /// Step of subqueries that give none (`x[1h:]`): the rule group's
    /// evaluation interval in Prometheus; 1m by default.
    pub default_subquery_step_ms: i64,
    /// Prometheus 3's `promql-delayed-name-removal`: functions and
    /// operators only mark `__name__` for removal (`label_replace`,
    /// `label_join` and `by (__name__)` still see it) and marked names are
    /// removed when the query ends. Off by default, as in Prometheus.
    pub delayed_name_removal: bool,
}

impl Default for Engine {
    fn default() -> Engine {
        Engine {
            lookback_ms: ms(DEFAULT_LOOKBACK),
            default_subquery_step_ms: 60_000,
            delayed_name_removal: false,
        }
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => ms(*d),
        Some(Offset::Neg(d)) => -ms(*d),
    }
}

fn system_time_ms(t: &SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => ms(d),
        Err(e) => -ms(e.duration()),
    }
}

impl Engine {
    /// Evaluates `query` at instant `t_ms`.
    pub fn instant(&self, src: &dyn Source, query: &Query, t_ms: i64) -> Result<Value> {
        let mut ev = Evaluator::new(self, src, query.expr(), t_ms, t_ms);
        let v = ev.eval(query.expr(), t_ms)?;
        if !self.delayed_name_removal {
            return Ok(v);
        }
        match v {
            Value::Vector(mut v) => {
                for s in &mut v {
                    s.labels = remove_marked_name(&s.labels);
                }
                check_unique(&v)?;
                Ok(Value::Vector(v))
            }
            Value::Matrix(m) => {
                let n = m.len();
                let m = finish_series(m)?;
                if m.len() != n {
                    return err(SAME_LABELSET);
                }
                Ok(Value::Matrix(m))
            }
            other => Ok(other),
        }
    }

    /// Evaluates `query` at every step from `start_ms` to `end_ms` and
    /// assembles one series per label set (a scalar result becomes one
    /// series without labels). Only scalar and instant-vector queries can be
    /// range queries.
    pub fn range(
        &self,
        src: &dyn Source,
        query: &Query,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<Vec<RangeSeries>> {
        self.range_with(src, query, (start_ms, end_ms, step_ms), true)
    }

    /// [`Engine::range`] evaluated step by step only (no node-at-a-time
    /// path): the reference that path is tested and measured against.
    pub fn range_per_step(
        &self,
        src: &dyn Source,
        query: &Query,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<Vec<RangeSeries>> {
        self.range_with(src, query, (start_ms, end_ms, step_ms), false)
    }

    /// How many nodes of `query` [`Engine::range`] evaluates step by step
    /// inside the node-at-a-time path; `None` when the whole query falls
    /// back to step by step.
    #[cfg(test)]
    pub(super) fn nodes_stepped(
        &self,
        src: &dyn Source,
        query: &Query,
        (start_ms, end_ms, step_ms): (i64, i64, i64),
    ) -> Option<usize> {
        let mut ev = Evaluator::new(self, src, query.expr(), start_ms, end_ms);
        ev.grid = Some(Grid {
            start: start_ms,
            step: step_ms,
            steps: usize::try_from((end_ms - start_ms) / step_ms + 1).unwrap_or(0),
        });
        ev.range_rows(query.expr()).map(|_| ev.stepped_nodes)
    }

    fn range_with(
        &self,
        src: &dyn Source,
        query: &Query,
        (start_ms, end_ms, step_ms): (i64, i64, i64),
        by_node: bool,
    ) -> Result<Vec<RangeSeries>> {
        if step_ms <= 0 {
            return err("zero or negative query resolution step widths are not accepted");
        }
        match query.expr().value_type() {
            promql_parser::parser::value::ValueType::Vector
            | promql_parser::parser::value::ValueType::Scalar => {}
            other => {
                return err(format!(
                    "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                    match other {
                        promql_parser::parser::value::ValueType::Matrix => "range vector",
                        _ => "string",
                    }
                ));
            }
        }
        let mut ev = Evaluator::new(self, src, query.expr(), start_ms, end_ms);
        ev.grid = Some(Grid {
            start: start_ms,
            step: step_ms,
            steps: usize::try_from((end_ms - start_ms) / step_ms + 1).unwrap_or(0),
        });
        if by_node
            && end_ms >= start_ms
            && let Some(series) = ev.range_rows(query.expr())
        {
            return self.finish_range(series);
        }
        let mut out: HashMap<Labels, Vec<(i64, f64)>> = HashMap::default();
        let mut t = start_ms;
        while t <= end_ms {
            match ev.eval(query.expr(), t)? {
                Value::Scalar(v) => out.entry(Labels::empty()).or_default().push((t, v)),
                Value::Vector(samples) => {
                    for s in samples {
                        out.entry(s.labels).or_default().push((t, s.v));
                    }
                }
                other => {
                    return err(format!(
                        "range query evaluated to {}",
                        other.value_type().as_str()
                    ));
                }
            }
            t += step_ms;
        }
        let mut series: Vec<RangeSeries> = out
            .into_iter()
            .map(|(labels, samples)| RangeSeries { labels, samples })
            .collect();
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        self.finish_range(series)
    }

    /// A range query's series with marked names removed (delayed name
    /// removal); series left with one label set are merged.
    fn finish_range(&self, series: Vec<RangeSeries>) -> Result<Vec<RangeSeries>> {
        if self.delayed_name_removal {
            finish_series(series)
        } else {
            Ok(series)
        }
    }
}

/// `series` with their marked names removed, sorted by labels; series that
/// end up with one label set are merged, an error where two of them have a
/// sample at one time (as Prometheus's end-of-query cleanup does).
fn finish_series(mut series: Vec<RangeSeries>) -> Result<Vec<RangeSeries>> {
    for s in &mut series {
        s.labels = remove_marked_name(&s.labels);
    }
    series.sort_by(|a, b| a.labels.cmp(&b.labels));
    let mut out: Vec<RangeSeries> = Vec::with_capacity(series.len());
    for s in series {
        match out.last_mut() {
            Some(prev) if prev.labels == s.labels => {
                prev.samples.extend(s.samples);
                prev.samples.sort_by_key(|p| p.0);
                if prev.samples.windows(2).any(|w| w[0].0 == w[1].0) {
                    return err(SAME_LABELSET);
                }
            }
            _ => out.push(s),
        }
    }
    Ok(out)
}

/// `rate`/`increase`/`delta` of one series at every step of `grid`: two
/// pointers over its non-stale samples and a prefix sum of counter-reset
/// corrections, so each step costs O(1) after the pointers move.
#[allow(clippy::too_many_arguments)]
fn slide_rate(
    s: &SourceSeries,
    range: i64,
    offset: i64,
    grid: Grid,
    counter: bool,
    per_second: bool,
    out: &mut [Option<f64>],
) {
    let mut ts = Vec::with_capacity(s.timestamps.len());
    let mut vs = Vec::with_capacity(s.values.len());
    for (&t, &v) in s.timestamps.iter().zip(&s.values) {
        if !is_stale(v) {
            ts.push(t);
            vs.push(v);
        }
    }
    let finite = vs.iter().all(|v| v.is_finite());
    // corrections[i]: the reset corrections of samples 1..=i (a drop adds
    // the value before it), as Prometheus adds them.
    let mut corrections = Vec::with_capacity(vs.len());
    let mut acc = 0.0;
    for (i, &v) in vs.iter().enumerate() {
        if counter && i > 0 && v < vs[i - 1] {
            acc += vs[i - 1];
        }
        corrections.push(acc);
    }
    let (mut lo, mut hi) = (0usize, 0usize);
    for (k, step) in out.iter_mut().enumerate() {
        let t = grid.start + k as i64 * grid.step;
        let end = t - offset;
        let start = end - range;
        while hi < ts.len() && ts[hi] <= end {
            hi += 1;
        }
        while lo < hi && ts[lo] <= start {
            lo += 1;
        }
        if hi - lo < 2 {
            continue;
        }
        let w = Window { start, end };
        let v = if finite {
            let result = vs[hi - 1] - vs[lo] + (corrections[hi - 1] - corrections[lo]);
            functions::extrapolate(
                (ts[lo], vs[lo]),
                ts[hi - 1],
                hi - lo,
                result,
                w,
                counter,
                per_second,
            )
        } else {
            let window: Vec<(i64, f64)> = ts[lo..hi]
                .iter()
                .copied()
                .zip(vs[lo..hi].iter().copied())
                .collect();
            match functions::extrapolated_rate(&window, w, counter, per_second) {
                Some(v) => v,
                None => continue,
            }
        };
        *step = Some(v);
    }
}

/// The sliding kind and range selector of `c` when it is `sum_over_time`,
/// `avg_over_time`, `count_over_time`, `rate`, `increase` or `delta` of a
/// plain range selector (no `@`).
fn sliding_call(c: &promql_parser::parser::Call) -> Option<(Sliding, &MatrixSelector)> {
    let kind = match c.func.name {
        "sum_over_time" => Sliding::Sum,
        "avg_over_time" => Sliding::Avg,
        "count_over_time" => Sliding::Count,
        "rate" => Sliding::Rate {
            counter: true,
            per_second: true,
        },
        "increase" => Sliding::Rate {
            counter: true,
            per_second: false,
        },
        "delta" => Sliding::Rate {
            counter: false,
            per_second: false,
        },
        _ => return None,
    };
    let [arg] = c.args.args.as_slice() else {
        return None;
    };
    let Expr::MatrixSelector(m) = unparen(arg) else {
        return None;
    };
    if m.vs.at.is_some() {
        return None;
    }
    Some((kind, m))
}

/// One series' value at every step of a range query's grid (`None`: no
/// sample at that step).
#[derive(Debug, Clone)]
struct Row {
    labels: Labels,
    v: Vec<Option<f64>>,
}

/// The range functions computed by sliding a window.
#[derive(Debug, Clone, Copy)]
enum Sliding {
    Sum,
    Avg,
    Count,
    /// `rate` (counter, per second), `increase` (counter) or `delta`.
    Rate {
        counter: bool,
        per_second: bool,
    },
}

/// Where a range function's window lies: `(start, end]`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    pub start: i64,
    pub end: i64,
}

impl Window {
    pub fn range_seconds(&self) -> f64 {
        (self.end - self.start) as f64 / 1000.0
    }
}

/// The steps of a range query: `start + k * step` for `k < steps`.
#[derive(Debug, Clone, Copy)]
struct Grid {
    start: i64,
    step: i64,
    steps: usize,
}

impl Grid {
    fn index(&self, t: i64) -> Option<usize> {
        let d = t - self.start;
        (d >= 0 && d % self.step == 0)
            .then(|| (d / self.step) as usize)
            .filter(|&k| k < self.steps)
    }
}

/// Sums above this (in absolute value) make sliding subtraction lose
/// precision: such series take the per-window path.
const SLIDING_MAX_ABS: f64 = 1e12;

struct Evaluator<'a> {
    engine: &'a Engine,
    /// Set for range queries.
    grid: Option<Grid>,
    /// Subqueries being evaluated (their steps are not the grid's).
    subquery_depth: usize,
    /// Per sliding call (by address in the expression tree): its result at
    /// every step of the grid.
    sliding: HashMap<usize, Arc<Vec<Row>>>,
    /// Vector-matching signatures, computed once per series per query.
    sigs: SigMemo,
    /// Nodes the node-at-a-time path evaluated step by step.
    stepped_nodes: usize,
    /// Grouping labels, computed once per series per query.
    labels: functions::LabelMemo,
    src: &'a dyn Source,
    query_start: i64,
    query_end: i64,
    /// Per selector (by address in the expression tree): the time range the
    /// whole query needs from it, then its loaded series.
    ranges: HashMap<usize, (i64, i64)>,
    loaded: HashMap<usize, Arc<Vec<SourceSeries>>>,
}

fn key(vs: &VectorSelector) -> usize {
    vs as *const VectorSelector as usize
}

impl<'a> Evaluator<'a> {
    fn new(
        engine: &'a Engine,
        src: &'a dyn Source,
        expr: &Expr,
        start: i64,
        end: i64,
    ) -> Evaluator<'a> {
        let mut ev = Evaluator {
            engine,
            grid: None,
            subquery_depth: 0,
            sliding: HashMap::default(),
            sigs: SigMemo::default(),
            stepped_nodes: 0,
            labels: functions::LabelMemo::new(engine.delayed_name_removal),
            src,
            query_start: start,
            query_end: end,
            ranges: HashMap::default(),
            loaded: HashMap::default(),
        };
        ev.collect_ranges(expr, start, end);
        ev
    }

    fn at_time(&self, at: &Option<AtModifier>) -> Option<i64> {
        match at {
            None => None,
            Some(AtModifier::Start) => Some(self.query_start),
            Some(AtModifier::End) => Some(self.query_end),
            Some(AtModifier::At(t)) => Some(system_time_ms(t)),
        }
    }

    /// Records, for every selector, the time range the query will read
    /// when its enclosing expression is evaluated over `[start, end]`.
    fn collect_ranges(&mut self, expr: &Expr, start: i64, end: i64) {
        match expr {
            Expr::VectorSelector(vs) => self.note_range(vs, start, end, self.engine.lookback_ms),
            Expr::MatrixSelector(m) => self.note_range(&m.vs, start, end, ms(m.range)),
            Expr::Subquery(sq) => {
                let (s, e) = match self.at_time(&sq.at) {
                    Some(at) => (at, at),
                    None => (start, end),
                };
                let o = offset_ms(&sq.offset);
                self.collect_ranges(&sq.expr, s - o - ms(sq.range), e - o);
            }
            Expr::Aggregate(a) => {
                self.collect_ranges(&a.expr, start, end);
                if let Some(p) = &a.param {
                    self.collect_ranges(p, start, end);
                }
            }
            Expr::Unary(u) => self.collect_ranges(&u.expr, start, end),
            Expr::Binary(b) => {
                self.collect_ranges(&b.lhs, start, end);
                self.collect_ranges(&b.rhs, start, end);
            }
            Expr::Paren(p) => self.collect_ranges(&p.expr, start, end),
            Expr::Call(c) => {
                for a in &c.args.args {
                    self.collect_ranges(a, start, end);
                }
            }
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
        }
    }

    fn note_range(&mut self, vs: &VectorSelector, start: i64, end: i64, before: i64) {
        let (s, e) = match self.at_time(&vs.at) {
            Some(at) => (at, at),
            None => (start, end),
        };
        let o = offset_ms(&vs.offset);
        let (mint, maxt) = (s - o - before, e - o);
        let r = self.ranges.entry(key(vs)).or_insert((mint, maxt));
        r.0 = r.0.min(mint);
        r.1 = r.1.max(maxt);
    }

    fn series(&mut self, vs: &VectorSelector) -> Arc<Vec<SourceSeries>> {
        let k = key(vs);
        if let Some(s) = self.loaded.get(&k) {
            return s.clone();
        }
        let (mint, maxt) = self.ranges.get(&k).copied().unwrap_or((i64::MIN, i64::MAX));
        let loaded = Arc::new(select(self.src, vs, mint, maxt));
        self.loaded.insert(k, loaded.clone());
        loaded
    }

    pub(super) fn eval(&mut self, expr: &Expr, t: i64) -> Result<Value> {
        match expr {
            Expr::NumberLiteral(n) => Ok(Value::Scalar(n.val)),
            Expr::StringLiteral(s) => Ok(Value::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, t),
            Expr::Unary(u) => match self.eval(&u.expr, t)? {
                Value::Scalar(v) => Ok(Value::Scalar(-v)),
                Value::Vector(mut v) => {
                    for s in &mut v {
                        s.v = -s.v;
                        s.labels = drop_name(&s.labels, self.engine.delayed_name_removal);
                        s.t = t;
                    }
                    check_unique(&v)?;
                    Ok(Value::Vector(v))
                }
                other => err(format!(
                    "unary minus on {} is not allowed",
                    other.value_type().as_str()
                )),
            },
            Expr::VectorSelector(vs) => Ok(Value::Vector(self.instant_selector(vs, t))),
            Expr::MatrixSelector(m) => {
                let (series, _) = self.range_selector(&m.vs, ms(m.range), t);
                Ok(Value::Matrix(series))
            }
            Expr::Subquery(sq) => {
                let (series, _) = self.subquery(sq, t)?;
                Ok(Value::Matrix(series))
            }
            Expr::Binary(b) => self.binary(b, t),
            Expr::Aggregate(a) => self.aggregate(a, t),
            Expr::Call(c) => {
                if let Some(v) = self.try_sliding(c, t) {
                    check_unique(&v)?;
                    return Ok(Value::Vector(v));
                }
                let mut args = Vec::with_capacity(c.args.args.len());
                let mut window = None;
                for a in &c.args.args {
                    match unparen(a) {
                        Expr::MatrixSelector(m) => {
                            let (series, w) = self.range_selector(&m.vs, ms(m.range), t);
                            window = Some(w);
                            args.push(Value::Matrix(series));
                        }
                        Expr::Subquery(sq) => {
                            let (series, w) = self.subquery(sq, t)?;
                            window = Some(w);
                            args.push(Value::Matrix(series));
                        }
                        other => args.push(self.eval(other, t)?),
                    }
                }
                let out =
                    functions::call(c.func.name, &c.args.args, args, window, t, &mut self.labels)?;
                if let Value::Vector(v) = &out {
                    check_unique(v)?;
                }
                Ok(out)
            }
            Expr::Extension(_) => err("extension expressions are not supported"),
        }
    }

    /// The sliding-window result of `c` at grid step `t`, when `c` is
    /// `sum_over_time`, `avg_over_time` or `count_over_time` of a plain range
    /// selector (no `@`) evaluated on the range query's grid.
    fn try_sliding(&mut self, c: &promql_parser::parser::Call, t: i64) -> Option<Vec<Sample>> {
        let grid = self.grid?;
        if self.subquery_depth > 0 {
            return None;
        }
        let k = grid.index(t)?;
        let (kind, m) = sliding_call(c)?;
        let rows = self.sliding_rows(c, &m.vs, ms(m.range), grid, kind);
        Some(
            rows.iter()
                .filter_map(|r| {
                    r.v[k].map(|v| Sample {
                        labels: r.labels.clone(),
                        t,
                        v,
                    })
                })
                .collect(),
        )
    }

    /// The rows of sliding call `c` (computed once per query).
    fn sliding_rows(
        &mut self,
        c: &promql_parser::parser::Call,
        vs: &VectorSelector,
        range: i64,
        grid: Grid,
        kind: Sliding,
    ) -> Arc<Vec<Row>> {
        let id = c as *const promql_parser::parser::Call as usize;
        if let Some(rows) = self.sliding.get(&id) {
            return rows.clone();
        }
        let rows = Arc::new(self.slide(vs, range, grid, kind));
        self.sliding.insert(id, rows.clone());
        rows
    }

    /// `kind` over windows `(t - offset - range, t - offset]` for every step
    /// `t` of `grid`, per series in the selector's order.
    fn slide(&mut self, vs: &VectorSelector, range: i64, grid: Grid, kind: Sliding) -> Vec<Row> {
        let offset = offset_ms(&vs.offset);
        let series = self.series(vs);
        let mut rows = Vec::with_capacity(series.len());
        for s in series.iter() {
            let mut out: Vec<Option<f64>> = vec![None; grid.steps];
            self.slide_series(s, range, offset, grid, kind, &mut out);
            if out.iter().any(Option::is_some) {
                rows.push(Row {
                    labels: drop_name(&s.labels, self.engine.delayed_name_removal),
                    v: out,
                });
            }
        }
        rows
    }

    /// `kind` of one series at every step of `grid`, into `out`.
    fn slide_series(
        &self,
        s: &SourceSeries,
        range: i64,
        offset: i64,
        grid: Grid,
        kind: Sliding,
        out: &mut [Option<f64>],
    ) {
        let step_t = |k: usize| grid.start + k as i64 * grid.step;
        if let Sliding::Rate {
            counter,
            per_second,
        } = kind
        {
            slide_rate(s, range, offset, grid, counter, per_second, out);
            return;
        }
        let (ts, vs_) = (&s.timestamps, &s.values);
        let well_conditioned = vs_
            .iter()
            .all(|v| is_stale(*v) || (v.is_finite() && v.abs() <= SLIDING_MAX_ABS));
        if !well_conditioned {
            // Per window, in Prometheus's order.
            for (k, step) in out.iter_mut().enumerate() {
                let end = step_t(k) - offset;
                let lo = ts.partition_point(|&x| x <= end - range);
                let hi = ts.partition_point(|&x| x <= end);
                let window: Vec<f64> = vs_[lo..hi]
                    .iter()
                    .copied()
                    .filter(|v| !is_stale(*v))
                    .collect();
                if window.is_empty() {
                    continue;
                }
                *step = Some(match kind {
                    Sliding::Count => window.len() as f64,
                    Sliding::Sum => functions::kahan_sum(window.iter().copied()),
                    Sliding::Avg | Sliding::Rate { .. } => {
                        functions::kahan_mean(window.iter().copied())
                    }
                });
            }
            return;
        }
        let (mut lo, mut hi) = (0usize, 0usize);
        let (mut sum, mut c, mut n) = (0.0f64, 0.0f64, 0usize);
        for (k, step) in out.iter_mut().enumerate() {
            let end = step_t(k) - offset;
            let start = end - range;
            while hi < ts.len() && ts[hi] <= end {
                if !is_stale(vs_[hi]) {
                    (sum, c) = functions::kahan_inc(vs_[hi], sum, c);
                    n += 1;
                }
                hi += 1;
            }
            while lo < hi && ts[lo] <= start {
                if !is_stale(vs_[lo]) {
                    (sum, c) = functions::kahan_inc(-vs_[lo], sum, c);
                    n -= 1;
                }
                lo += 1;
            }
            if n == 0 {
                // Nothing in the window: restart the sum exactly.
                (sum, c) = (0.0, 0.0);
                continue;
            }
            *step = Some(match kind {
                Sliding::Count => n as f64,
                Sliding::Sum => sum + c,
                Sliding::Avg | Sliding::Rate { .. } => (sum + c) / n as f64,
            });
        }
    }

    fn instant_selector(&mut self, vs: &VectorSelector, t: i64) -> Vec<Sample> {
        let ts = self.at_time(&vs.at).unwrap_or(t) - offset_ms(&vs.offset);
        let lookback = self.engine.lookback_ms;
        let series = self.series(vs);
        let mut out = Vec::with_capacity(series.len());
        for s in series.iter() {
            let i = s.timestamps.partition_point(|&x| x <= ts);
            if i == 0 {
                continue;
            }
            let (st, v) = (s.timestamps[i - 1], s.values[i - 1]);
            if st <= ts - lookback || is_stale(v) {
                continue;
            }
            out.push(Sample {
                labels: s.labels.clone(),
                t: st,
                v,
            });
        }
        out
    }

    fn range_selector(
        &mut self,
        vs: &VectorSelector,
        range: i64,
        t: i64,
    ) -> (Vec<RangeSeries>, Window) {
        let end = self.at_time(&vs.at).unwrap_or(t) - offset_ms(&vs.offset);
        let start = end - range;
        let series = self.series(vs);
        let mut out = Vec::new();
        for s in series.iter() {
            let lo = s.timestamps.partition_point(|&x| x <= start);
            let hi = lo + s.timestamps[lo..].partition_point(|&x| x <= end);
            let mut samples: Vec<(i64, f64)> = Vec::with_capacity(hi - lo);
            samples.extend(
                s.timestamps[lo..hi]
                    .iter()
                    .zip(&s.values[lo..hi])
                    .filter(|(_, v)| !is_stale(**v))
                    .map(|(t, v)| (*t, *v)),
            );
            if !samples.is_empty() {
                out.push(RangeSeries {
                    labels: s.labels.clone(),
                    samples,
                });
            }
        }
        (out, Window { start, end })
    }

    fn subquery(&mut self, sq: &SubqueryExpr, t: i64) -> Result<(Vec<RangeSeries>, Window)> {
        let end = self.at_time(&sq.at).unwrap_or(t) - offset_ms(&sq.offset);
        let range = ms(sq.range);
        let step = sq
            .step
            .map(ms)
            .filter(|s| *s > 0)
            .unwrap_or(self.engine.default_subquery_step_ms);
        // First multiple of `step` after `end - range` (Go's truncating division).
        let mut ts = step * ((end - range) / step);
        if ts <= end - range {
            ts += step;
        }
        let mut acc: HashMap<Labels, Vec<(i64, f64)>> = HashMap::default();
        let mut order: Vec<Labels> = Vec::new();
        while ts <= end {
            self.subquery_depth += 1;
            let value = self.eval(&sq.expr, ts);
            self.subquery_depth -= 1;
            match value? {
                Value::Scalar(v) => push_point(&mut acc, &mut order, Labels::empty(), ts, v),
                Value::Vector(samples) => {
                    for s in samples {
                        push_point(&mut acc, &mut order, s.labels, ts, s.v);
                    }
                }
                other => {
                    return err(format!(
                        "subquery is only allowed on instant vector or scalar, got {}",
                        other.value_type().as_str()
                    ));
                }
            }
            ts += step;
        }
        order.sort();
        let series = order
            .into_iter()
            .filter_map(|l| {
                acc.remove(&l)
                    .map(|samples| RangeSeries { labels: l, samples })
            })
            .collect();
        Ok((
            series,
            Window {
                start: end - range,
                end,
            },
        ))
    }

    fn aggregate(&mut self, a: &AggregateExpr, t: i64) -> Result<Value> {
        let op = a.op.to_string();
        let param = match &a.param {
            Some(p) => Some(self.eval(p, t)?),
            None => None,
        };
        let input = match self.eval(&a.expr, t)? {
            Value::Vector(v) => v,
            other => {
                return err(format!(
                    "expected instant vector in aggregation, got {}",
                    other.value_type().as_str()
                ));
            }
        };
        functions::aggregate(&op, param, input, a.modifier.as_ref(), t, &mut self.labels)
    }

    fn binary(&mut self, b: &BinaryExpr, t: i64) -> Result<Value> {
        let op = b.op.to_string();
        let lhs = self.eval(&b.lhs, t)?;
        let rhs = self.eval(&b.rhs, t)?;
        let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
        let comparison = b.op.is_comparison_operator();
        let delayed = self.engine.delayed_name_removal;
        match (lhs, rhs) {
            (Value::Scalar(l), Value::Scalar(r)) => {
                let (v, keep) = scalar_binop(&op, l, r)?;
                if comparison {
                    if return_bool {
                        return Ok(Value::Scalar(if keep { 1.0 } else { 0.0 }));
                    }
                    return err("comparisons between scalars must use BOOL modifier");
                }
                Ok(Value::Scalar(v))
            }
            (Value::Vector(v), Value::Scalar(s)) => {
                vector_scalar(&op, v, s, false, comparison, return_bool, t, delayed)
            }
            (Value::Scalar(s), Value::Vector(v)) => {
                vector_scalar(&op, v, s, true, comparison, return_bool, t, delayed)
            }
            (Value::Vector(l), Value::Vector(r)) => {
                let matching = b.modifier.as_ref().and_then(|m| m.matching.as_ref());
                let card = b
                    .modifier
                    .as_ref()
                    .map(|m| m.card.clone())
                    .unwrap_or(VectorMatchCardinality::OneToOne);
                if b.op.is_set_operator() {
                    return Ok(Value::Vector(set_op(&op, l, r, matching, &mut self.sigs)));
                }
                vector_vector(
                    &op,
                    l,
                    r,
                    matching,
                    &card,
                    comparison,
                    return_bool,
                    t,
                    &mut self.sigs,
                    delayed,
                )
            }
            (l, r) => err(format!(
                "binary operator `{op}` between {} and {} is not allowed",
                l.value_type().as_str(),
                r.value_type().as_str()
            )),
        }
    }
}

fn push_point(
    acc: &mut HashMap<Labels, Vec<(i64, f64)>>,
    order: &mut Vec<Labels>,
    labels: Labels,
    t: i64,
    v: f64,
) {
    match acc.get_mut(&labels) {
        Some(points) => points.push((t, v)),
        None => {
            order.push(labels.clone());
            acc.insert(labels, vec![(t, v)]);
        }
    }
}

pub(super) fn unparen(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => unparen(&p.expr),
        other => other,
    }
}

fn select(src: &dyn Source, vs: &VectorSelector, mint: i64, maxt: i64) -> Vec<SourceSeries> {
    let base = base_matchers(vs);
    let Matchers {
        matchers: _,
        or_matchers,
    } = &vs.matchers;
    if or_matchers.is_empty() {
        return src.select(&base, mint, maxt);
    }
    // `{a="1" or b="2"}`: the union of each alternative.
    let mut seen: HashMap<Labels, ()> = HashMap::default();
    let mut out = Vec::new();
    for alt in or_matchers {
        let mut ms: Vec<Matcher> = base.clone();
        ms.extend(alt.iter().map(Matcher::from_promql));
        for s in src.select(&ms, mint, maxt) {
            if seen.insert(s.labels.clone(), ()).is_none() {
                out.push(s);
            }
        }
    }
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    out
}

/// The selector's matchers, the metric name as a `__name__` matcher.
pub(super) fn base_matchers(vs: &VectorSelector) -> Vec<Matcher> {
    let mut ms = Vec::with_capacity(vs.matchers.matchers.len() + 1);
    if let Some(name) = &vs.name {
        ms.push(Matcher::equal(METRIC_NAME, name.as_str()));
    }
    ms.extend(vs.matchers.matchers.iter().map(Matcher::from_promql));
    ms
}

/// Where a metric name marked for removal is kept until the query ends
/// (delayed name removal): not a valid label name, so no selector, matcher
/// or label function can name it.
pub(super) const MARKED_NAME: &str = "__name__ (marked for removal)";

/// The error of a vector with two elements of one label set.
const SAME_LABELSET: &str = "vector cannot contain metrics with the same labelset";

/// The label set without `__name__`; with delayed name removal, with the
/// name marked for removal instead (kept under [`MARKED_NAME`]).
pub(super) fn drop_name(l: &Labels, delayed: bool) -> Labels {
    if l.get(METRIC_NAME).is_none() {
        return l.clone();
    }
    if delayed {
        return Labels::new(l.iter().map(|(n, v)| {
            if n == METRIC_NAME {
                (MARKED_NAME, v)
            } else {
                (n, v)
            }
        }));
    }
    Labels::new(l.iter().filter(|(n, _)| *n != METRIC_NAME))
}

/// The metric name, whether marked for removal or not.
pub(super) fn name_of(l: &Labels) -> Option<&str> {
    l.get(METRIC_NAME).or_else(|| l.get(MARKED_NAME))
}

/// Whether label `n` is the metric name (marked for removal or not).
pub(super) fn is_name(n: &str) -> bool {
    n == METRIC_NAME || n == MARKED_NAME
}

/// The label set with a name marked for removal removed.
fn remove_marked_name(l: &Labels) -> Labels {
    if l.get(MARKED_NAME).is_none() {
        return l.clone();
    }
    Labels::new(l.iter().filter(|(n, _)| *n != MARKED_NAME))
}

/// Prometheus refuses a vector with two elements of the same label set.
pub(super) fn check_unique(v: &[Sample]) -> Result<()> {
    if v.len() < 2 {
        return Ok(());
    }
    let mut seen = HashSet::with_capacity_and_hasher(v.len(), Default::default());
    for s in v {
        if !seen.insert(&s.labels) {
            return err(SAME_LABELSET);
        }
    }
    Ok(())
}

/// `(value, keep)`: the arithmetic result, or for comparisons the left
/// value and whether the comparison holds.
pub(super) fn scalar_binop(op: &str, l: f64, r: f64) -> Result<(f64, bool)> {
    Ok(match op {
        "+" => (l + r, true),
        "-" => (l - r, true),
        "*" => (l * r, true),
        "/" => (l / r, true),
        "%" => (l % r, true),
        "^" => (l.powf(r), true),
        "atan2" => (l.atan2(r), true),
        "==" => (l, l == r),
        "!=" => (l, l != r),
        ">" => (l, l > r),
        "<" => (l, l < r),
        ">=" => (l, l >= r),
        "<=" => (l, l <= r),
        other => return err(format!("operator `{other}` not allowed here")),
    })
}

#[allow(clippy::too_many_arguments)]
fn vector_scalar(
    op: &str,
    v: Vec<Sample>,
    s: f64,
    scalar_left: bool,
    comparison: bool,
    return_bool: bool,
    t: i64,
    delayed: bool,
) -> Result<Value> {
    let mut out = Vec::with_capacity(v.len());
    for mut sample in v {
        let (l, r) = if scalar_left {
            (s, sample.v)
        } else {
            (sample.v, s)
        };
        let (mut value, mut keep) = scalar_binop(op, l, r)?;
        if comparison && scalar_left {
            value = r;
        }
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
            keep = true;
        }
        if keep {
            sample.v = value;
            sample.t = t;
            if !comparison || return_bool {
                sample.labels = drop_name(&sample.labels, delayed);
            }
            out.push(sample);
        }
    }
    check_unique(&out)?;
    Ok(Value::Vector(out))
}

/// The match signature of a label set under `on(...)` / `ignoring(...)`
/// (no modifier: all labels but the name).
/// A vector-matching signature: the matching label pairs, hashed once.
#[derive(Clone)]
struct Sig {
    hash: u64,
    pairs: Arc<Vec<(String, String)>>,
}

impl PartialEq for Sig {
    fn eq(&self, other: &Sig) -> bool {
        Arc::ptr_eq(&self.pairs, &other.pairs)
            || (self.hash == other.hash && self.pairs == other.pairs)
    }
}

impl Eq for Sig {}

impl std::hash::Hash for Sig {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// Signatures by (matching clause, labels), kept for the whole query: a
/// range query matches the same series at every step.
#[derive(Default)]
struct SigMemo(HashMap<(usize, Labels), Sig>);

impl SigMemo {
    fn get(&mut self, l: &Labels, matching: Option<&LabelModifier>) -> Sig {
        let key = (
            matching.map_or(0, |m| m as *const LabelModifier as usize),
            l.clone(),
        );
        self.0
            .entry(key)
            .or_insert_with(|| {
                use std::hash::{Hash, Hasher};
                let pairs = signature(l, matching);
                let mut hasher = std::hash::DefaultHasher::new();
                pairs.hash(&mut hasher);
                Sig {
                    hash: hasher.finish(),
                    pairs: Arc::new(pairs),
                }
            })
            .clone()
    }
}

fn signature(l: &Labels, matching: Option<&LabelModifier>) -> Vec<(String, String)> {
    match matching {
        Some(LabelModifier::Include(on)) => {
            let mut names: Vec<&String> = on.labels.iter().collect();
            names.sort();
            names.dedup();
            names
                .into_iter()
                .map(|n| {
                    let v = if n == METRIC_NAME {
                        name_of(l)
                    } else {
                        l.get(n)
                    };
                    (n.clone(), v.unwrap_or_default().to_owned())
                })
                .collect()
        }
        Some(LabelModifier::Exclude(ign)) => l
            .iter()
            .filter(|(n, _)| !is_name(n) && !ign.labels.iter().any(|x| x == n))
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect(),
        None => l
            .iter()
            .filter(|(n, _)| !is_name(n))
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect(),
    }
}

fn set_op(
    op: &str,
    l: Vec<Sample>,
    r: Vec<Sample>,
    matching: Option<&LabelModifier>,
    memo: &mut SigMemo,
) -> Vec<Sample> {
    match op {
        "and" => {
            let right: HashSet<_> = r.iter().map(|s| memo.get(&s.labels, matching)).collect();
            l.into_iter()
                .filter(|s| right.contains(&memo.get(&s.labels, matching)))
                .collect()
        }
        "unless" => {
            let right: HashSet<_> = r.iter().map(|s| memo.get(&s.labels, matching)).collect();
            l.into_iter()
                .filter(|s| !right.contains(&memo.get(&s.labels, matching)))
                .collect()
        }
        _ => {
            let left: HashSet<_> = l.iter().map(|s| memo.get(&s.labels, matching)).collect();
            let mut out = l;
            out.extend(
                r.into_iter()
                    .filter(|s| !left.contains(&memo.get(&s.labels, matching))),
            );
            out
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn vector_vector(
    op: &str,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
    matching: Option<&LabelModifier>,
    card: &VectorMatchCardinality,
    comparison: bool,
    return_bool: bool,
    t: i64,
    memo: &mut SigMemo,
    delayed: bool,
) -> Result<Value> {
    let one_to_many = matches!(card, VectorMatchCardinality::OneToMany(_));
    let (many, one) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };
    let mut one_by_sig: HashMap<Sig, &Sample> = HashMap::default();
    for s in &one {
        let sig = memo.get(&s.labels, matching);
        if let Some(prev) = one_by_sig.insert(sig.clone(), s) {
            let side = if one_to_many { "left" } else { "right" };
            return err(format!(
                "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                fmt_sig(&sig.pairs),
                prev.labels,
                s.labels
            ));
        }
    }
    let include: &[String] = match card {
        VectorMatchCardinality::ManyToOne(l) | VectorMatchCardinality::OneToMany(l) => &l.labels,
        _ => &[],
    };
    let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
    let mut out = Vec::new();
    let mut matched: HashMap<Sig, HashSet<Labels>> = HashMap::default();
    for ls in &many {
        let sig = memo.get(&ls.labels, matching);
        let Some(rs) = one_by_sig.get(&sig) else {
            continue;
        };
        let (fl, fr) = if one_to_many {
            (rs.v, ls.v)
        } else {
            (ls.v, rs.v)
        };
        // Prometheus reports an ambiguous one-to-one match even when the
        // comparison would filter the samples out.
        if one_to_one
            && !matched
                .entry(sig.clone())
                .or_default()
                .insert(Labels::empty())
        {
            return err(
                "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
            );
        }
        let (mut value, mut keep) = scalar_binop(op, fl, fr)?;
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
            keep = true;
        }
        if !keep {
            continue;
        }
        let mut labels = result_labels(
            &ls.labels,
            &rs.labels,
            !comparison,
            delayed,
            one_to_one,
            matching,
            include,
        );
        if return_bool {
            labels = drop_name(&labels, delayed);
        }
        if !one_to_one && !matched.entry(sig).or_default().insert(labels.clone()) {
            return err("multiple matches for labels: grouping labels must ensure unique matches");
        }
        out.push(Sample {
            labels,
            t,
            v: value,
        });
    }
    check_unique(&out)?;
    Ok(Value::Vector(out))
}

fn fmt_sig(sig: &[(String, String)]) -> String {
    let inner: Vec<String> = sig.iter().map(|(n, v)| format!("{n}=\"{v}\"")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// The labels of a vector-matching result: the "many" side's, the name
/// dropped (or marked, `delayed`) for arithmetic, reduced to the matching
/// labels for one-to-one matching, plus the `group_left`/`group_right`
/// labels from the "one" side.
#[allow(clippy::too_many_arguments)]
pub(super) fn result_labels(
    many: &Labels,
    one: &Labels,
    drop_metric_name: bool,
    delayed: bool,
    one_to_one: bool,
    matching: Option<&LabelModifier>,
    include: &[String],
) -> Labels {
    // A marked name still counts as `__name__` for `on`/`ignoring`/`group_x`.
    fn plain(n: &str) -> &str {
        if n == MARKED_NAME { METRIC_NAME } else { n }
    }
    let mut pairs: Vec<(String, String)> = many
        .iter()
        .filter_map(|(n, v)| {
            if n == METRIC_NAME && drop_metric_name {
                return delayed.then(|| (MARKED_NAME.to_owned(), v.to_owned()));
            }
            Some((n.to_owned(), v.to_owned()))
        })
        .collect();
    if one_to_one {
        match matching {
            Some(LabelModifier::Include(on)) => {
                pairs.retain(|(n, _)| on.labels.iter().any(|x| x == plain(n)))
            }
            Some(LabelModifier::Exclude(ign)) => {
                pairs.retain(|(n, _)| !ign.labels.iter().any(|x| x == plain(n)))
            }
            None => {}
        }
    }
    for name in include {
        pairs.retain(|(n, _)| plain(n) != name);
        let v = if name == METRIC_NAME {
            name_of(one)
        } else {
            one.get(name)
        };
        if let Some(v) = v {
            pairs.push((name.clone(), v.to_owned()));
        }
    }
    Labels::new(pairs)
}
