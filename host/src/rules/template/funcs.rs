//! The template functions Prometheus registers for alerting rules
//! (`template/template.go`), with Prometheus's output formats, plus the
//! internal printer that makes `{{ $value }}` print floats as Go does.
//!
//! Numbers are taken the way Prometheus's `convertToFloat` takes them:
//! floats, integers, and strings parsed as floats (`"1e3"`, `"NaN"`, `"+Inf"`).
//!
//! Not provided: the functions that run a query (`query`, `first`, `label`,
//! `value`, `strvalue`, `sortByLabel`) since annotations here have no query
//! engine; `graphLink`/`tableLink`/`pathPrefix`/`externalURL` (functions; the
//! `$externalURL` variable is set); `toDuration`, `now`, and `tmpl` (HTML only).
//! `toTime` returns the time already printed (`2015-06-23 13:19:44.128 +0000 UTC`),
//! since templates here have no time type to call `.Format` on.

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::{FuncMap, TemplateError, Value};
use regex::Regex;

use super::gofmt::{format_g, format_v};

/// Name of the printer appended to every printing action (see the parent module).
pub(super) const PRINT: &str = "__klaxon_go_print";
/// Name of the argument converter used for `%v` in `printf`.
pub(super) const GO_VALUE: &str = "__klaxon_go_value";

type FuncResult = Result<Value, TemplateError>;

/// Every function above, by its template name.
pub(super) fn prometheus_funcs() -> FuncMap {
    let mut m = FuncMap::new();
    let mut add = |name: &str, f: fn(&str, &[Value]) -> FuncResult| {
        let owned = name.to_string();
        m.insert(
            name.to_string(),
            Arc::new(move |args: &[Value]| f(&owned, args)),
        );
    };
    add("humanize", humanize);
    add("humanize1024", humanize1024);
    add("humanizeDuration", humanize_duration);
    add("humanizePercentage", humanize_percentage);
    add("humanizeTimestamp", humanize_timestamp);
    add("toTime", to_time);
    add("title", title);
    add("toUpper", |n, a| map_str(n, a, str::to_uppercase));
    add("toLower", |n, a| map_str(n, a, str::to_lowercase));
    add("safeHtml", |n, a| map_str(n, a, str::to_owned));
    add("stripPort", |n, a| map_str(n, a, strip_port));
    add("stripDomain", |n, a| map_str(n, a, strip_domain));
    add("match", re_match);
    add("reReplaceAll", re_replace_all);
    add("parseDuration", parse_duration);
    add("args", args_map);
    add(PRINT, |_, a| Ok(a.last().map_or(Value::Nil, go_print)));
    add(GO_VALUE, |_, a| Ok(a.last().map_or(Value::Nil, go_value)));
    m
}

fn err(name: &str, msg: impl std::fmt::Display) -> TemplateError {
    TemplateError::Exec(format!("error calling {name}: {msg}"))
}

fn exactly<'a, const N: usize>(
    name: &str,
    args: &'a [Value],
) -> Result<&'a [Value; N], TemplateError> {
    args.try_into().map_err(|_| TemplateError::ArgCount {
        name: name.to_string(),
        expected: N,
        got: args.len(),
    })
}

fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Nil => "<nil>",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Uint(_) => "uint",
        Value::Float(_) => "float64",
        Value::String(_) => "string",
        Value::List(_) => "[]interface {}",
        Value::Map(_) => "map[string]interface {}",
        Value::Function(_) => "func",
    }
}

/// Prometheus's `convertToFloat`.
fn to_float(name: &str, v: &Value) -> Result<f64, TemplateError> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Uint(u) => Ok(*u as f64),
        Value::String(s) => s.parse::<f64>().map_err(|_| {
            err(
                name,
                format!("strconv.ParseFloat: parsing {s:?}: invalid syntax"),
            )
        }),
        other => Err(err(
            name,
            format!("can't convert {} to float", go_type(other)),
        )),
    }
}

fn one_float(name: &str, args: &[Value]) -> Result<f64, TemplateError> {
    let [v] = exactly::<1>(name, args)?;
    to_float(name, v)
}

fn one_str<'a>(name: &str, args: &'a [Value]) -> Result<&'a str, TemplateError> {
    match exactly::<1>(name, args)? {
        [Value::String(s)] => Ok(s),
        [other] => Err(err(
            name,
            format!(
                "wrong type for value; expected string; got {}",
                go_type(other)
            ),
        )),
    }
}

fn string(s: String) -> Value {
    Value::String(s.into())
}

fn map_str(name: &str, args: &[Value], f: impl Fn(&str) -> String) -> FuncResult {
    Ok(string(f(one_str(name, args)?)))
}

/// Applies `step` to `v` once per prefix while `keep_going(v)` holds, as
/// Prometheus's loops do (divide by 1000 each time, not by 1000^n once, so
/// the rounding is the same).
fn scale(
    mut v: f64,
    prefixes: &[&'static str],
    keep_going: impl Fn(f64) -> bool,
    step: impl Fn(f64) -> f64,
) -> (f64, &'static str) {
    let mut prefix = "";
    for p in prefixes {
        if !keep_going(v) {
            break;
        }
        prefix = p;
        v = step(v);
    }
    (v, prefix)
}

const BIG: [&str; 8] = ["k", "M", "G", "T", "P", "E", "Z", "Y"];
const SMALL: [&str; 8] = ["m", "u", "n", "p", "f", "a", "z", "y"];

fn humanize(name: &str, args: &[Value]) -> FuncResult {
    let v = one_float(name, args)?;
    if v == 0.0 || !v.is_finite() {
        return Ok(string(format_g(v, 4)));
    }
    let (v, prefix) = if v.abs() >= 1.0 {
        scale(v, &BIG, |v| v.abs() >= 1000.0, |v| v / 1000.0)
    } else {
        scale(v, &SMALL, |v| v.abs() < 1.0, |v| v * 1000.0)
    };
    Ok(string(format!("{}{prefix}", format_g(v, 4))))
}

fn humanize1024(name: &str, args: &[Value]) -> FuncResult {
    let v = one_float(name, args)?;
    if v.abs() <= 1.0 || !v.is_finite() {
        return Ok(string(format_g(v, 4)));
    }
    const BINARY: [&str; 8] = ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"];
    let (v, prefix) = scale(v, &BINARY, |v| v.abs() >= 1024.0, |v| v / 1024.0);
    Ok(string(format!("{}{prefix}", format_g(v, 4))))
}

fn humanize_duration(name: &str, args: &[Value]) -> FuncResult {
    let v = one_float(name, args)?;
    if !v.is_finite() {
        return Ok(string(format_g(v, 4)));
    }
    if v == 0.0 {
        return Ok(string(format!("{}s", format_g(v, 4))));
    }
    if v.abs() >= 1.0 {
        let (sign, v) = if v < 0.0 { ("-", -v) } else { ("", v) };
        // Go's int64(v): truncation, saturating here where Go's is undefined.
        let secs = v as i64;
        let (s, m, h, d) = (
            secs % 60,
            (secs / 60) % 60,
            (secs / 3600) % 24,
            secs / 86_400,
        );
        let text = if d != 0 {
            format!("{sign}{d}d {h}h {m}m {s}s")
        } else if h != 0 {
            format!("{sign}{h}h {m}m {s}s")
        } else if m != 0 {
            format!("{sign}{m}m {s}s")
        } else {
            format!("{sign}{}s", format_g(v, 4))
        };
        return Ok(string(text));
    }
    let (v, prefix) = scale(v, &SMALL, |v| v.abs() < 1.0, |v| v * 1000.0);
    Ok(string(format!("{}{prefix}s", format_g(v, 4))))
}

fn humanize_percentage(name: &str, args: &[Value]) -> FuncResult {
    let v = one_float(name, args)?;
    Ok(string(format!("{}%", format_g(v * 100.0, 4))))
}

/// Prometheus's `floatToTime` then Go's `time.Time.String()` in UTC; the
/// time is truncated to milliseconds (`model.TimeFromUnixNano`).
fn time_string(name: &str, v: f64) -> Result<String, TemplateError> {
    let nanos = v * 1e9;
    // i64::MAX as f64 is 2^63, itself out of range.
    if !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&nanos) {
        return Err(err(
            name,
            format!(
                "{} cannot be represented as a nanoseconds timestamp since it overflows int64",
                format_v(v)
            ),
        ));
    }
    let millis = (nanos as i64) / 1_000_000;
    let t = chrono::DateTime::from_timestamp_millis(millis).ok_or_else(|| {
        err(
            name,
            format!("{} is outside the representable time range", format_v(v)),
        )
    })?;
    let mut out = t.format("%Y-%m-%d %H:%M:%S").to_string();
    let frac = millis.rem_euclid(1000);
    if frac != 0 {
        // Go's ".999999999": fractional digits without trailing zeros.
        let f = format!(".{frac:03}");
        out.push_str(f.trim_end_matches('0'));
    }
    out.push_str(" +0000 UTC");
    Ok(out)
}

fn humanize_timestamp(name: &str, args: &[Value]) -> FuncResult {
    let v = one_float(name, args)?;
    if !v.is_finite() {
        return Ok(string(format_g(v, 4)));
    }
    Ok(string(time_string(name, v)?))
}

fn to_time(name: &str, args: &[Value]) -> FuncResult {
    let v = one_float(name, args)?;
    if !v.is_finite() {
        return Err(err(name, "value is NaN or Inf"));
    }
    Ok(string(time_string(name, v)?))
}

/// Go's `strings.Title`: upper-cases each letter that follows a separator.
fn title(name: &str, args: &[Value]) -> FuncResult {
    fn is_separator(c: char) -> bool {
        if c.is_ascii() {
            return !(c.is_ascii_alphanumeric() || c == '_');
        }
        !(c.is_alphabetic() || c.is_numeric()) && c.is_whitespace()
    }
    let s = one_str(name, args)?;
    let mut out = String::with_capacity(s.len());
    let mut prev = ' ';
    for c in s.chars() {
        if is_separator(prev) {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev = c;
    }
    Ok(string(out))
}

fn regex(name: &str, pattern: &str) -> Result<Regex, TemplateError> {
    Regex::new(pattern)
        .map_err(|e| err(name, format!("invalid regular expression {pattern:?}: {e}")))
}

fn str_args<'a, const N: usize>(
    name: &str,
    args: &'a [Value],
) -> Result<[&'a str; N], TemplateError> {
    let args = exactly::<N>(name, args)?;
    let mut out = [""; N];
    for (slot, v) in out.iter_mut().zip(args) {
        *slot = v.as_str().ok_or_else(|| {
            err(
                name,
                format!("wrong type for value; expected string; got {}", go_type(v)),
            )
        })?;
    }
    Ok(out)
}

/// `regexp.MatchString(pattern, text)`: unanchored.
fn re_match(name: &str, args: &[Value]) -> FuncResult {
    let [pattern, text] = str_args::<2>(name, args)?;
    Ok(Value::Bool(regex(name, pattern)?.is_match(text)))
}

/// `regexp.MustCompile(pattern).ReplaceAllString(text, repl)`: `$1`, `${1}`
/// and `$name` expand as in Go.
fn re_replace_all(name: &str, args: &[Value]) -> FuncResult {
    let [pattern, repl, text] = str_args::<3>(name, args)?;
    Ok(string(
        regex(name, pattern)?.replace_all(text, repl).into_owned(),
    ))
}

/// Prometheus's `model.ParseDuration`, in seconds.
fn parse_duration(name: &str, args: &[Value]) -> FuncResult {
    let text = one_str(name, args)?;
    let d = crate::duration::parse(text).map_err(|e| err(name, e))?;
    Ok(Value::Float(d.as_secs_f64()))
}

/// `args 1 "2"` → `map[arg0:1 arg1:2]`, to pass several values to `{{template}}`.
fn args_map(_: &str, args: &[Value]) -> FuncResult {
    let m: BTreeMap<String, Value> = args
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("arg{i}"), v.clone()))
        .collect();
    Ok(Value::from(m))
}

/// Go's `net.SplitHostPort`, `None` where Go returns an error.
fn split_host_port(hostport: &str) -> Option<(&str, &str)> {
    let i = hostport.rfind(':')?;
    let (host, j, k) = if hostport.starts_with('[') {
        let end = hostport.find(']')?;
        if end + 1 != i {
            return None;
        }
        (&hostport[1..end], 1, end + 1)
    } else {
        let host = &hostport[..i];
        if host.contains(':') {
            return None;
        }
        (host, 0, 0)
    };
    if hostport[j..].contains('[') || hostport[k..].contains(']') {
        return None;
    }
    Some((host, &hostport[i + 1..]))
}

fn strip_port(hostport: &str) -> String {
    match split_host_port(hostport) {
        Some((host, _)) => host.to_string(),
        None => hostport.to_string(),
    }
}

fn strip_domain(hostport: &str) -> String {
    let (host, port) = split_host_port(hostport).unwrap_or((hostport, ""));
    if host.parse::<std::net::IpAddr>().is_ok() {
        return hostport.to_string();
    }
    let host = host.split('.').next().unwrap_or(host);
    if port.is_empty() {
        host.to_string()
    } else if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A value as Go's `fmt.Sprint` prints it, where that differs from gotmpl:
/// floats (also inside lists and maps). Anything else is handed back as is,
/// so `<no value>` and strings print exactly as before.
pub(super) fn go_print(v: &Value) -> Value {
    if has_float(v) {
        string(sprint(v))
    } else {
        v.clone()
    }
}

/// For `printf "%v"`: floats become their Go text, everything else is unchanged.
fn go_value(v: &Value) -> Value {
    match v {
        Value::Float(f) => string(format_v(*f)),
        other => other.clone(),
    }
}

fn has_float(v: &Value) -> bool {
    match v {
        Value::Float(_) => true,
        Value::List(l) => l.iter().any(has_float),
        Value::Map(m) => m.values().any(has_float),
        _ => false,
    }
}

fn sprint(v: &Value) -> String {
    match v {
        Value::Float(f) => format_v(*f),
        Value::List(l) => {
            let items: Vec<String> = l.iter().map(sprint).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Map(m) => {
            let items: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}:{}", sprint(v)))
                .collect();
            format!("map[{}]", items.join(" "))
        }
        other => other.to_string(),
    }
}
