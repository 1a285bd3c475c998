//! PromQL functions and aggregation operators, with Prometheus's formulas
//! (extrapolated `rate`, Kahan sums, `histogram_quantile` on classic
//! buckets), and the list of what is supported.

/// Fx-hashed maps: keys here are label sets, whose hash is already their
/// fingerprint, and small integers; SipHash on top only costs time.
type HashMap<K, V> = rustc_hash::FxHashMap<K, V>;
type HashSet<K> = rustc_hash::FxHashSet<K>;

use chrono::{Datelike, TimeZone, Timelike, Utc};
use promql_parser::parser::{Expr, LabelModifier};
use regex::Regex;

use super::eval::{MARKED_NAME, Window, base_matchers, drop_name, err, is_name, name_of, unparen};
use super::{EvalError, RangeSeries, Sample, Value};
use crate::store::{Labels, METRIC_NAME, MatchOp, is_label_name};

type Result<T> = std::result::Result<T, EvalError>;

/// A `*_over_time`-style reduction of one series' window.
type RangeFn<'a> = dyn Fn(&[(i64, f64)]) -> Option<f64> + 'a;

/// Functions the evaluator implements.
const SUPPORTED: &[&str] = &[
    "abs",
    "absent",
    "absent_over_time",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atanh",
    "avg_over_time",
    "ceil",
    "changes",
    "clamp",
    "clamp_max",
    "clamp_min",
    "cos",
    "cosh",
    "count_over_time",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "days_in_month",
    "deg",
    "delta",
    "deriv",
    "exp",
    "floor",
    "histogram_quantile",
    "hour",
    "idelta",
    "increase",
    "irate",
    "label_join",
    "label_replace",
    "last_over_time",
    "ln",
    "log10",
    "log2",
    "max_over_time",
    "min_over_time",
    "minute",
    "month",
    "pi",
    "predict_linear",
    "present_over_time",
    "quantile_over_time",
    "rad",
    "rate",
    "resets",
    "round",
    "scalar",
    "sgn",
    "sin",
    "sinh",
    "sort",
    "sort_desc",
    "sqrt",
    "stddev_over_time",
    "stdvar_over_time",
    "sum_over_time",
    "tan",
    "tanh",
    "time",
    "timestamp",
    "vector",
    "year",
];

const SUPPORTED_AGGREGATIONS: &[&str] = &[
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "group",
    "stddev",
    "stdvar",
    "quantile",
    "topk",
    "bottomk",
    "count_values",
];

/// The first unsupported feature used by `expr`, if any.
pub(super) fn unsupported(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Call(c) => {
            if !SUPPORTED.contains(&c.func.name) {
                return Some(format!("function `{}`", c.func.name));
            }
            c.args.args.iter().find_map(|a| unsupported(a))
        }
        Expr::Aggregate(a) => {
            let op = a.op.to_string();
            if !SUPPORTED_AGGREGATIONS.contains(&op.as_str()) {
                return Some(format!("aggregation `{op}`"));
            }
            unsupported(&a.expr).or_else(|| a.param.as_ref().and_then(|p| unsupported(p)))
        }
        Expr::Binary(b) => {
            let fill = b.modifier.as_ref().map(|m| &m.fill_values);
            if fill.is_some_and(|f| f.lhs.is_some() || f.rhs.is_some()) {
                return Some("the `fill` modifier".into());
            }
            unsupported(&b.lhs).or_else(|| unsupported(&b.rhs))
        }
        Expr::Unary(u) => unsupported(&u.expr),
        Expr::Paren(p) => unsupported(&p.expr),
        Expr::Subquery(s) => unsupported(&s.expr),
        Expr::Extension(_) => Some("extension expressions".into()),
        Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::VectorSelector(_)
        | Expr::MatrixSelector(_) => None,
    }
}

/// Neumaier's improved Kahan summation step, as Prometheus's `kahanSumInc`.
pub(super) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

pub(super) fn kahan_sum(values: impl Iterator<Item = f64>) -> f64 {
    let (mut s, mut c) = (0.0, 0.0);
    for v in values {
        (s, c) = kahan_inc(v, s, c);
    }
    s + c
}

pub(super) fn kahan_mean<I: Iterator<Item = f64> + Clone>(values: I) -> f64 {
    let (mut sum, mut c, mut n) = (0.0, 0.0, 0usize);
    for v in values.clone() {
        (sum, c) = kahan_inc(v, sum, c);
        n += 1;
    }
    let sum = sum + c;
    if sum.is_finite() || values.clone().any(|v| !v.is_finite()) {
        return sum / n as f64;
    }
    // The sum overflowed although every value is finite: incremental mean.
    let (mut mean, mut c) = (0.0, 0.0);
    for (i, v) in values.enumerate() {
        let count = (i + 1) as f64;
        (mean, c) = kahan_inc(v / count - (mean + c) / count, mean, c);
    }
    mean + c
}

/// Population variance with Welford's method and Kahan compensation.
fn variance(values: impl Iterator<Item = f64>) -> f64 {
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for f in values {
        count += 1.0;
        let delta = f - (mean + c_mean);
        (mean, c_mean) = kahan_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_inc(delta * (f - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

/// Prometheus's `quantile`: linear interpolation between closest ranks.
fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    // NaN sorts first, as Prometheus's heap order has it.
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

fn linear_regression(samples: &[(i64, f64)], intercept_time: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy, mut sxy, mut cxy, mut sx2, mut cx2) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let init_y = samples[0].1;
    let mut const_y = true;
    for (i, &(t, v)) in samples.iter().enumerate() {
        if const_y && i > 0 && v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (t - intercept_time) as f64 / 1e3;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(v, sy, cy);
        (sxy, cxy) = kahan_inc(x * v, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let (sx, sy, sxy, sx2) = (sx + cx, sy + cy, sxy + cxy, sx2 + cx2);
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

/// Prometheus's `extrapolatedRate` for `rate`, `increase` and `delta`.
pub(super) fn extrapolated_rate(
    s: &[(i64, f64)],
    w: Window,
    counter: bool,
    rate: bool,
) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let (first_t, first_v) = s[0];
    let (last_t, last_v) = s[s.len() - 1];
    let mut result = last_v - first_v;
    if counter {
        let mut last = 0.0;
        for &(_, v) in s {
            if v < last {
                result += last;
            }
            last = v;
        }
    }
    Some(extrapolate(
        (first_t, first_v),
        last_t,
        s.len(),
        result,
        w,
        counter,
        rate,
    ))
}

/// Prometheus's `extrapolatedRate` from a window's summary: its first
/// sample, last timestamp, sample count (at least 2) and `result` (last minus
/// first value, plus the counter-reset corrections when `counter`).
pub(super) fn extrapolate(
    (first_t, first_v): (i64, f64),
    last_t: i64,
    n: usize,
    result: f64,
    w: Window,
    counter: bool,
    rate: bool,
) -> f64 {
    let mut to_start = (first_t - w.start) as f64 / 1000.0;
    let mut to_end = (w.end - last_t) as f64 / 1000.0;
    let sampled = (last_t - first_t) as f64 / 1000.0;
    let avg_gap = sampled / (n - 1) as f64;
    let threshold = avg_gap * 1.1;
    if to_start >= threshold {
        to_start = avg_gap / 2.0;
    }
    if counter {
        let mut to_zero = to_start;
        if result > 0.0 && first_v >= 0.0 {
            to_zero = sampled * (first_v / result);
        }
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg_gap / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if rate {
        factor /= w.range_seconds();
    }
    result * factor
}

fn instant_rate(s: &[(i64, f64)], is_rate: bool) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let (pt, pv) = s[s.len() - 2];
    let (lt, lv) = s[s.len() - 1];
    let mut result = if is_rate && lv < pv { lv } else { lv - pv };
    let gap = lt - pt;
    if gap == 0 {
        return None;
    }
    if is_rate {
        result /= gap as f64 / 1000.0;
    }
    Some(result)
}

fn scalar_arg(v: &Value) -> Result<f64> {
    match v {
        Value::Scalar(s) => Ok(*s),
        other => err(format!(
            "expected scalar argument, got {}",
            other.value_type().as_str()
        )),
    }
}

fn string_arg(v: &Value) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => err(format!(
            "expected string argument, got {}",
            other.value_type().as_str()
        )),
    }
}

fn take_vector(v: Value) -> Result<Vec<Sample>> {
    match v {
        Value::Vector(v) => Ok(v),
        other => err(format!(
            "expected instant vector argument, got {}",
            other.value_type().as_str()
        )),
    }
}

fn take_matrix(v: Value) -> Result<Vec<RangeSeries>> {
    match v {
        Value::Matrix(m) => Ok(m),
        other => err(format!(
            "expected range vector argument, got {}",
            other.value_type().as_str()
        )),
    }
}

/// Labels an `absent`-style result carries: those of the selector's
/// equality matchers (a name given twice is left out).
fn absent_labels(arg: &Expr) -> Labels {
    let vs = match unparen(arg) {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(m) => &m.vs,
        _ => return Labels::empty(),
    };
    let matchers = base_matchers(vs);
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    let mut repeated: Vec<&str> = Vec::new();
    for m in &matchers {
        if m.name() == METRIC_NAME {
            continue;
        }
        if matchers.iter().filter(|o| o.name() == m.name()).count() > 1 {
            repeated.push(m.name());
        }
        if m.op() == MatchOp::Equal {
            pairs.push((m.name(), m.value()));
        }
    }
    Labels::new(pairs.into_iter().filter(|(n, _)| !repeated.contains(n)))
}

/// Calls function `name`; `window` is the window of its range argument.
pub(super) fn call(
    name: &str,
    arg_exprs: &[Box<Expr>],
    mut args: Vec<Value>,
    window: Option<Window>,
    t: i64,
    memo: &mut LabelMemo,
) -> Result<Value> {
    let delayed = memo.delayed_name_removal;
    let simple = |f: fn(f64) -> f64, args: Vec<Value>| -> Result<Value> {
        let v = take_vector(args.into_iter().next().unwrap_or(Value::Vector(vec![])))?;
        Ok(Value::Vector(
            v.into_iter()
                .map(|s| Sample {
                    labels: drop_name(&s.labels, delayed),
                    t,
                    v: f(s.v),
                })
                .collect(),
        ))
    };
    let over_time = |f: &RangeFn<'_>, keep_name: bool, args: Vec<Value>| -> Result<Value> {
        let m = take_matrix(args.into_iter().last().unwrap_or(Value::Matrix(vec![])))?;
        Ok(Value::Vector(
            m.into_iter()
                .filter_map(|s| {
                    f(&s.samples).map(|v| Sample {
                        labels: if keep_name {
                            s.labels.clone()
                        } else {
                            drop_name(&s.labels, delayed)
                        },
                        t,
                        v,
                    })
                })
                .collect(),
        ))
    };
    let values = |s: &[(i64, f64)]| s.iter().map(|p| p.1).collect::<Vec<f64>>();
    let w = window.unwrap_or(Window { start: t, end: t });
    if let Some(f) = simple_fn(name) {
        return simple(f, args);
    }
    match name {
        "pi" => Ok(Value::Scalar(std::f64::consts::PI)),
        "time" => Ok(Value::Scalar(t as f64 / 1000.0)),
        "round" => {
            let to_nearest = match args.get(1) {
                Some(v) => scalar_arg(v)?,
                None => 1.0,
            };
            let inv = 1.0 / to_nearest;
            let v = take_vector(args.swap_remove(0))?;
            Ok(Value::Vector(
                v.into_iter()
                    .map(|s| Sample {
                        labels: drop_name(&s.labels, delayed),
                        t,
                        v: (s.v * inv + 0.5).floor() / inv,
                    })
                    .collect(),
            ))
        }
        "clamp" | "clamp_min" | "clamp_max" => {
            let (lo, hi) = match name {
                "clamp" => (scalar_arg(&args[1])?, scalar_arg(&args[2])?),
                "clamp_min" => (scalar_arg(&args[1])?, f64::NAN),
                _ => (f64::NAN, scalar_arg(&args[1])?),
            };
            let v = take_vector(args.swap_remove(0))?;
            if name == "clamp" && hi < lo {
                return Ok(Value::Vector(vec![]));
            }
            Ok(Value::Vector(
                v.into_iter()
                    .map(|s| {
                        let mut x = s.v;
                        if !hi.is_nan() || name == "clamp" {
                            x = go_min(hi, x);
                        }
                        if !lo.is_nan() || name == "clamp" {
                            x = go_max(lo, x);
                        }
                        Sample {
                            labels: drop_name(&s.labels, delayed),
                            t,
                            v: x,
                        }
                    })
                    .collect(),
            ))
        }
        "timestamp" => {
            let v = take_vector(args.swap_remove(0))?;
            Ok(Value::Vector(
                v.into_iter()
                    .map(|s| Sample {
                        labels: drop_name(&s.labels, delayed),
                        t,
                        v: s.t as f64 / 1000.0,
                    })
                    .collect(),
            ))
        }
        "vector" => Ok(Value::Vector(vec![Sample {
            labels: Labels::empty(),
            t,
            v: scalar_arg(&args[0])?,
        }])),
        "scalar" => {
            let v = take_vector(args.swap_remove(0))?;
            Ok(Value::Scalar(if v.len() == 1 { v[0].v } else { f64::NAN }))
        }
        "sort" | "sort_desc" => {
            let mut v = take_vector(args.swap_remove(0))?;
            let desc = name == "sort_desc";
            v.sort_by(|a, b| match (a.v.is_nan(), b.v.is_nan()) {
                (true, true) => std::cmp::Ordering::Equal,
                (true, false) => std::cmp::Ordering::Greater,
                (false, true) => std::cmp::Ordering::Less,
                _ => {
                    let o = a.v.partial_cmp(&b.v).unwrap_or(std::cmp::Ordering::Equal);
                    if desc { o.reverse() } else { o }
                }
            });
            Ok(Value::Vector(v))
        }
        "absent" => {
            let v = take_vector(args.swap_remove(0))?;
            if !v.is_empty() {
                return Ok(Value::Vector(vec![]));
            }
            Ok(Value::Vector(vec![Sample {
                labels: arg_exprs
                    .first()
                    .map(|a| absent_labels(a))
                    .unwrap_or_default(),
                t,
                v: 1.0,
            }]))
        }
        "absent_over_time" => {
            let m = take_matrix(args.swap_remove(0))?;
            if !m.is_empty() {
                return Ok(Value::Vector(vec![]));
            }
            Ok(Value::Vector(vec![Sample {
                labels: arg_exprs
                    .first()
                    .map(|a| absent_labels(a))
                    .unwrap_or_default(),
                t,
                v: 1.0,
            }]))
        }
        "present_over_time" => over_time(&|_| Some(1.0), false, args),
        "count_over_time" => over_time(&|s| Some(s.len() as f64), false, args),
        "sum_over_time" => over_time(&|s| Some(kahan_sum(s.iter().map(|p| p.1))), false, args),
        "avg_over_time" => over_time(&|s| Some(kahan_mean(s.iter().map(|p| p.1))), false, args),
        "min_over_time" => over_time(
            &|s| {
                Some(s.iter().skip(1).fold(
                    s[0].1,
                    |m, p| {
                        if p.1 < m || m.is_nan() { p.1 } else { m }
                    },
                ))
            },
            false,
            args,
        ),
        "max_over_time" => over_time(
            &|s| {
                Some(s.iter().skip(1).fold(
                    s[0].1,
                    |m, p| {
                        if p.1 > m || m.is_nan() { p.1 } else { m }
                    },
                ))
            },
            false,
            args,
        ),
        "last_over_time" => over_time(&|s| s.last().map(|p| p.1), true, args),
        "stdvar_over_time" => over_time(&|s| Some(variance(s.iter().map(|p| p.1))), false, args),
        "stddev_over_time" => over_time(
            &|s| Some(variance(s.iter().map(|p| p.1)).sqrt()),
            false,
            args,
        ),
        "quantile_over_time" => {
            let q = scalar_arg(&args[0])?;
            over_time(&|s| Some(quantile(q, &mut values(s))), false, args)
        }
        "changes" => over_time(
            &|s| {
                let mut n = 0;
                for p in s.windows(2) {
                    let (a, b) = (p[0].1, p[1].1);
                    if a != b && !(a.is_nan() && b.is_nan()) {
                        n += 1;
                    }
                }
                Some(n as f64)
            },
            false,
            args,
        ),
        "resets" => over_time(
            &|s| Some(s.windows(2).filter(|p| p[1].1 < p[0].1).count() as f64),
            false,
            args,
        ),
        "rate" => over_time(&|s| extrapolated_rate(s, w, true, true), false, args),
        "increase" => over_time(&|s| extrapolated_rate(s, w, true, false), false, args),
        "delta" => over_time(&|s| extrapolated_rate(s, w, false, false), false, args),
        "irate" => over_time(&|s| instant_rate(s, true), false, args),
        "idelta" => over_time(&|s| instant_rate(s, false), false, args),
        "deriv" => over_time(
            &|s| (s.len() >= 2).then(|| linear_regression(s, s[0].0).0),
            false,
            args,
        ),
        "predict_linear" => {
            let d = scalar_arg(&args[1])?;
            let m = args.swap_remove(0);
            over_time(
                &|s| {
                    (s.len() >= 2).then(|| {
                        let (slope, intercept) = linear_regression(s, t);
                        slope * d + intercept
                    })
                },
                false,
                vec![m],
            )
        }
        "label_replace" => label_replace(args, t),
        "label_join" => label_join(args, t),
        "histogram_quantile" => histogram_quantile(args, t, memo),
        "minute" | "hour" | "day_of_week" | "day_of_month" | "day_of_year" | "days_in_month"
        | "month" | "year" => {
            let v = match args.pop() {
                Some(v) => take_vector(v)?,
                None => vec![Sample {
                    labels: Labels::empty(),
                    t,
                    v: t as f64 / 1000.0,
                }],
            };
            Ok(Value::Vector(
                v.into_iter()
                    .filter_map(|s| {
                        date_part(name, s.v).map(|v| Sample {
                            labels: drop_name(&s.labels, delayed),
                            t,
                            v,
                        })
                    })
                    .collect(),
            ))
        }
        other => err(format!("function `{other}` is not supported by Klaxon")),
    }
}

/// The function of one float applied sample by sample for `name`, if it is one.
pub(super) fn simple_fn(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sqrt" => f64::sqrt,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "deg" => f64::to_degrees,
        "rad" => f64::to_radians,
        "sgn" => |v| {
            if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                v
            }
        },
        _ => return None,
    })
}

/// Go's `math.Min`: NaN if either is NaN.
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

fn date_part(name: &str, v: f64) -> Option<f64> {
    if v.is_nan() || v.is_infinite() {
        return Some(f64::NAN);
    }
    let secs = v.floor() as i64;
    let dt = Utc.timestamp_opt(secs, 0).single()?;
    Some(match name {
        "minute" => dt.minute() as f64,
        "hour" => dt.hour() as f64,
        "day_of_week" => dt.weekday().num_days_from_sunday() as f64,
        "day_of_month" => dt.day() as f64,
        "day_of_year" => dt.ordinal() as f64,
        "month" => dt.month() as f64,
        "year" => dt.year() as f64,
        _ => {
            let (y, m) = (dt.year(), dt.month());
            let next = if m == 12 {
                chrono::NaiveDate::from_ymd_opt(y + 1, 1, 1)
            } else {
                chrono::NaiveDate::from_ymd_opt(y, m + 1, 1)
            }?;
            let this = chrono::NaiveDate::from_ymd_opt(y, m, 1)?;
            (next - this).num_days() as f64
        }
    })
}

fn label_replace(mut args: Vec<Value>, t: i64) -> Result<Value> {
    let regex_text = string_arg(&args[4])?;
    let src = string_arg(&args[3])?;
    let replacement = string_arg(&args[2])?;
    let dst = string_arg(&args[1])?;
    let re = Regex::new(&format!("^(?s:{regex_text})$")).map_err(|e| {
        EvalError::Query(format!(
            "invalid regular expression in label_replace(): {regex_text}: {e}"
        ))
    })?;
    if !is_label_name(&dst) {
        return err(format!(
            "invalid destination label name in label_replace(): {dst}"
        ));
    }
    let v = take_vector(args.swap_remove(0))?;
    let mut out = Vec::with_capacity(v.len());
    for s in v {
        // A name marked for removal can still be read.
        let value = if src == METRIC_NAME {
            name_of(&s.labels)
        } else {
            s.labels.get(&src)
        }
        .unwrap_or_default()
        .to_owned();
        let labels = match re.captures(&value) {
            Some(caps) => {
                let mut res = String::new();
                caps.expand(&replacement, &mut res);
                // Writing `__name__` replaces a name marked for removal.
                let mut pairs: Vec<(String, String)> = s
                    .labels
                    .iter()
                    .filter(|(n, _)| *n != dst && !(dst == METRIC_NAME && *n == MARKED_NAME))
                    .map(|(n, v)| (n.to_owned(), v.to_owned()))
                    .collect();
                if !res.is_empty() {
                    pairs.push((dst.clone(), res));
                }
                Labels::new(pairs)
            }
            None => s.labels.clone(),
        };
        out.push(Sample { labels, t, v: s.v });
    }
    Ok(Value::Vector(out))
}

fn label_join(mut args: Vec<Value>, t: i64) -> Result<Value> {
    let dst = string_arg(&args[1])?;
    let sep = string_arg(&args[2])?;
    let srcs: Vec<String> = args[3..].iter().map(string_arg).collect::<Result<_>>()?;
    if !is_label_name(&dst) {
        return err(format!(
            "invalid destination label name in label_join(): {dst}"
        ));
    }
    let v = take_vector(args.swap_remove(0))?;
    Ok(Value::Vector(
        v.into_iter()
            .map(|s| {
                let joined: Vec<&str> = srcs
                    .iter()
                    .map(|n| {
                        if n == METRIC_NAME {
                            name_of(&s.labels)
                        } else {
                            s.labels.get(n)
                        }
                        .unwrap_or_default()
                    })
                    .collect();
                let joined = joined.join(&sep);
                let mut pairs: Vec<(String, String)> = s
                    .labels
                    .iter()
                    .filter(|(n, _)| *n != dst && !(dst == METRIC_NAME && *n == MARKED_NAME))
                    .map(|(n, v)| (n.to_owned(), v.to_owned()))
                    .collect();
                if !joined.is_empty() {
                    pairs.push((dst.clone(), joined));
                }
                Sample {
                    labels: Labels::new(pairs),
                    t,
                    v: s.v,
                }
            })
            .collect(),
    ))
}

fn histogram_quantile(mut args: Vec<Value>, t: i64, memo: &mut LabelMemo) -> Result<Value> {
    let delayed = memo.delayed_name_removal;
    let q = scalar_arg(&args[0])?;
    let v = take_vector(args.swap_remove(1))?;
    let mut groups: HashMap<Labels, Vec<(f64, f64)>> = HashMap::default();
    let mut order = Vec::new();
    for s in v {
        let Some(le) = s.labels.get("le").and_then(parse_le) else {
            continue;
        };
        // Grouped by metric name too (two histograms never mix); the name
        // is dropped from the output, where a clash is an error.
        let key = memo.get(TAG_WITHOUT_LE, &s.labels, |l| {
            Labels::new(l.iter().filter(|(n, _)| *n != "le"))
        });
        let entry = groups.entry(key.clone()).or_insert_with(|| {
            order.push(key);
            Vec::new()
        });
        entry.push((le, s.v));
    }
    let mut out = Vec::with_capacity(order.len());
    for key in order {
        if let Some(mut buckets) = groups.remove(&key) {
            out.push(Sample {
                labels: drop_name(&key, delayed),
                t,
                v: bucket_quantile(q, &mut buckets),
            });
        }
    }
    Ok(Value::Vector(out))
}

pub(super) fn parse_le(s: &str) -> Option<f64> {
    match s.trim() {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        other => other.parse().ok(),
    }
}

/// Prometheus's `BucketQuantile` over `(upper bound, cumulative count)`.
pub(super) fn bucket_quantile(q: f64, buckets: &mut [(f64, f64)]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    match buckets.last() {
        Some((ub, _)) if *ub == f64::INFINITY => {}
        _ => return f64::NAN,
    }
    // Coalesce buckets with the same upper bound.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for &(ub, c) in buckets.iter() {
        match merged.last_mut() {
            Some(last) if last.0 == ub => last.1 += c,
            _ => merged.push((ub, c)),
        }
    }
    // Monotonic counts, tiny deltas ignored.
    let mut prev = merged[0].1;
    for b in merged.iter_mut().skip(1) {
        let curr = b.1;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, 1e-12) || curr < prev {
            b.1 = prev;
            continue;
        }
        prev = curr;
    }
    if merged.len() < 2 {
        return f64::NAN;
    }
    let observations = merged[merged.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = merged[..merged.len() - 1]
        .iter()
        .position(|x| x.1 >= rank)
        .unwrap_or(merged.len() - 1);
    if b == merged.len() - 1 {
        return merged[merged.len() - 2].0;
    }
    if b == 0 && merged[0].0 <= 0.0 {
        return merged[0].0;
    }
    let (mut start, end, mut count) = (0.0, merged[b].0, merged[b].1);
    if b > 0 {
        start = merged[b - 1].0;
        count -= merged[b - 1].1;
        rank -= merged[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

/// Aggregation `op` (`sum`, `avg`, `count`, `group`, `min`, `max`,
/// `stdvar`, `stddev`, `quantile` with `q`) of one group's values, in the
/// order given (which the compensated sums depend on), at least one.
pub(super) fn reduce(op: &str, q: f64, vs: &mut [f64]) -> Result<f64> {
    Ok(match op {
        "sum" => kahan_sum(vs.iter().copied()),
        "avg" => kahan_mean(vs.iter().copied()),
        "count" => vs.len() as f64,
        "group" => 1.0,
        "min" => vs
            .iter()
            .skip(1)
            .fold(vs[0], |m, &x| if m > x || m.is_nan() { x } else { m }),
        "max" => vs
            .iter()
            .skip(1)
            .fold(vs[0], |m, &x| if m < x || m.is_nan() { x } else { m }),
        "stdvar" => variance(vs.iter().copied()),
        "stddev" => variance(vs.iter().copied()).sqrt(),
        "quantile" => quantile(q, vs),
        other => return err(format!("aggregation `{other}` is not supported by Klaxon")),
    })
}

/// Go's `almost.Equal`.
fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || (a.abs() + b.abs()) < MIN_NORMAL {
        return diff < epsilon * MIN_NORMAL;
    }
    diff / (a.abs() + b.abs()).min(f64::MAX) < epsilon
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`.
fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// Applies aggregation `op` (`param` for topk, bottomk, quantile and
/// count_values) over `input`, grouped by `modifier`.
/// Derived label sets by (transformation, input), kept for a whole query: a
/// range query groups the same series at every step.
#[derive(Default)]
pub(super) struct LabelMemo {
    map: HashMap<(usize, Labels), Labels>,
    /// The engine's `delayed_name_removal`, for the functions.
    pub(super) delayed_name_removal: bool,
}

impl LabelMemo {
    pub(super) fn new(delayed_name_removal: bool) -> LabelMemo {
        LabelMemo {
            map: HashMap::default(),
            delayed_name_removal,
        }
    }

    /// `f(l)` for transformation `tag`, computed once per label set.
    pub(super) fn get(
        &mut self,
        tag: usize,
        l: &Labels,
        f: impl FnOnce(&Labels) -> Labels,
    ) -> Labels {
        self.map
            .entry((tag, l.clone()))
            .or_insert_with(|| f(l))
            .clone()
    }
}

/// The labels an aggregation groups `l` by.
pub(super) fn group_key_of(l: &Labels, modifier: Option<&LabelModifier>) -> Labels {
    match modifier {
        // A name marked for removal still groups as `__name__`.
        Some(LabelModifier::Include(by)) => Labels::new(l.iter().filter_map(|(n, v)| {
            let n = if n == MARKED_NAME { METRIC_NAME } else { n };
            by.labels.iter().any(|b| b == n).then_some((n, v))
        })),
        Some(LabelModifier::Exclude(without)) => Labels::new(
            l.iter()
                .filter(|(n, _)| !is_name(n) && !without.labels.iter().any(|b| b == n)),
        ),
        None => Labels::empty(),
    }
}

/// Whether `l`'s group (by `modifier`) keeps a name marked for removal: a
/// group's name is removed at the end of the query if any member's was
/// marked.
pub(super) fn group_marked(l: &Labels, modifier: Option<&LabelModifier>) -> bool {
    match modifier {
        Some(LabelModifier::Include(by)) => {
            l.get(MARKED_NAME).is_some() && by.labels.iter().any(|b| b == METRIC_NAME)
        }
        _ => false,
    }
}

/// `key` with its name marked for removal when `marked`.
fn mark_if(key: Labels, marked: bool) -> Labels {
    if marked { drop_name(&key, true) } else { key }
}

/// `LabelMemo` tag of histogram_quantile's "all labels but `le`".
pub(super) const TAG_WITHOUT_LE: usize = 1;

pub(super) fn aggregate(
    op: &str,
    param: Option<Value>,
    input: Vec<Sample>,
    modifier: Option<&LabelModifier>,
    t: i64,
    memo: &mut LabelMemo,
) -> Result<Value> {
    // Tag: the modifier's address (2 without one; 1 is taken).
    let tag = modifier.map_or(2, |m| m as *const LabelModifier as usize);
    let mut group_key = |l: &Labels| -> Labels { memo.get(tag, l, |l| group_key_of(l, modifier)) };
    if op == "count_values" {
        let label = match &param {
            Some(v) => string_arg(v)?,
            None => return err("count_values needs a label name"),
        };
        if !is_label_name(&label) {
            return err(format!("invalid label name {label:?}"));
        }
        let mut counts: HashMap<Labels, f64> = HashMap::default();
        let mut marked: HashSet<Labels> = HashSet::default();
        let mut order = Vec::new();
        for s in &input {
            let base = group_key(&s.labels);
            let is_marked = group_marked(&s.labels, modifier);
            let mut pairs: Vec<(String, String)> = base
                .iter()
                .filter(|(n, _)| *n != label)
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect();
            pairs.push((label.clone(), format_value(s.v)));
            let key = Labels::new(pairs);
            if is_marked {
                marked.insert(key.clone());
            }
            let c = counts.entry(key.clone()).or_insert_with(|| {
                order.push(key);
                0.0
            });
            *c += 1.0;
        }
        return Ok(Value::Vector(
            order
                .into_iter()
                .map(|labels| {
                    let v = counts.get(&labels).copied().unwrap_or(0.0);
                    let is_marked = marked.contains(&labels);
                    Sample {
                        labels: mark_if(labels, is_marked),
                        t,
                        v,
                    }
                })
                .collect(),
        ));
    }
    if op == "topk" || op == "bottomk" {
        let k = match &param {
            Some(v) => scalar_arg(v)?,
            None => return err(format!("{op} needs a parameter")),
        };
        if k.is_nan() {
            return err("Parameter value is NaN");
        }
        if k < 1.0 {
            return Ok(Value::Vector(vec![]));
        }
        let k = if k >= i64::MAX as f64 {
            usize::MAX
        } else {
            k as usize
        };
        let mut groups: HashMap<Labels, Vec<Sample>> = HashMap::default();
        let mut order = Vec::new();
        for s in input {
            let key = group_key(&s.labels);
            groups
                .entry(key.clone())
                .or_insert_with(|| {
                    order.push(key);
                    Vec::new()
                })
                .push(s);
        }
        let top = op == "topk";
        let mut out = Vec::new();
        for key in order {
            let Some(mut members) = groups.remove(&key) else {
                continue;
            };
            members.sort_by(|a, b| match (a.v.is_nan(), b.v.is_nan()) {
                (true, true) => std::cmp::Ordering::Equal,
                (true, false) => std::cmp::Ordering::Greater,
                (false, true) => std::cmp::Ordering::Less,
                _ => {
                    let o = a.v.partial_cmp(&b.v).unwrap_or(std::cmp::Ordering::Equal);
                    if top { o.reverse() } else { o }
                }
            });
            members.truncate(k);
            for mut s in members {
                s.t = t;
                out.push(s);
            }
        }
        return Ok(Value::Vector(out));
    }
    let q = match (op, &param) {
        ("quantile", Some(v)) => scalar_arg(v)?,
        ("quantile", None) => return err("quantile needs a parameter"),
        _ => 0.0,
    };
    let mut groups: HashMap<Labels, Vec<f64>> = HashMap::default();
    let mut marked: HashSet<Labels> = HashSet::default();
    let mut order = Vec::new();
    for s in input {
        let key = group_key(&s.labels);
        if group_marked(&s.labels, modifier) {
            marked.insert(key.clone());
        }
        groups
            .entry(key.clone())
            .or_insert_with(|| {
                order.push(key);
                Vec::new()
            })
            .push(s.v);
    }
    let mut out = Vec::with_capacity(order.len());
    for key in order {
        let Some(mut vs) = groups.remove(&key) else {
            continue;
        };
        let v = reduce(op, q, &mut vs)?;
        let is_marked = marked.contains(&key);
        out.push(Sample {
            labels: mark_if(key, is_marked),
            t,
            v,
        });
    }
    Ok(Value::Vector(out))
}
