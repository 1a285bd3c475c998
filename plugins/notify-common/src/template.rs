//! Alertmanager's notification templates: Go `text/template` strings rendered against
//! Alertmanager's data model, with its default named templates and its functions.
//!
//! # Data
//!
//! The dot of every template is Alertmanager's `template.Data`:
//!
//! | field | value |
//! |-------|-------|
//! | `.Receiver` | receiver name, regexp-quoted as Alertmanager does (`regexp.QuoteMeta`) |
//! | `.Status` | `firing` or `resolved` |
//! | `.Alerts` | the alerts; `.Alerts.Firing` and `.Alerts.Resolved` filter them |
//! | `.GroupLabels` `.CommonLabels` `.CommonAnnotations` | label maps |
//! | `.ExternalURL` | the host's external URL |
//!
//! Each alert has `.Status .Labels .Annotations .StartsAt .EndsAt .GeneratorURL
//! .Fingerprint`; the times are RFC 3339 strings with Go's `.Format "layout"` (the
//! other methods of Go's `time.Time` are not available). Label maps have the methods
//! `.SortedPairs` (a list of `.Name`/`.Value`), `.Names`, `.Values` and `.Remove
//! <names>`; a list of pairs has `.Names` and `.Values`. A missing label renders as an
//! empty string (Alertmanager's `missingkey=zero`).
//!
//! # Functions
//!
//! Go's built-ins, and Alertmanager's `toUpper`, `toLower`, `title`, `trimSpace`,
//! `join`, `safeHtml`, `safeUrl`, `urlUnescape`, `reReplaceAll`, `stringSlice`,
//! `match`, `toJson` and `humanizeDuration`. Not available: `date`, `tz` and `since`
//! (plugins have no clock; a template using them is refused by `check-config`).
//!
//! # How methods work
//!
//! `gotmpl`, like any data-driven port of Go's templates, has fields but no methods.
//! Each parsed tree is rewritten once: a field chain through a method name becomes a
//! call of an internal function (`.GroupLabels.SortedPairs.Values` runs as
//! `(amValues (amSortedPairs .GroupLabels))`, and `.CommonLabels.Remove x` as
//! `amRemove .CommonLabels x`), and each printing action ends with a function that
//! prints a missing value as the empty string. A label literally named like a method
//! (`Values`) is therefore reached with `index .Labels "Values"`, as in Go.

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::parse::{CommandNode, Expr, ListNode, Node, PipeNode, Pos, SmolStr};
use gotmpl::{FuncMap, Template, TemplateError, Value};
use klaxon_sdk::{Alert, Notification};

/// Alertmanager's `default.tmpl`: the named templates the stock notifiers' defaults
/// use (`__subject`, `__text_alert_list`, `slack.default.title`, …).
pub const DEFAULT_TEMPLATES: &str = include_str!("default.tmpl");

/// Methods of Alertmanager's data model and the functions that stand in for them.
const METHODS: [(&str, &str); 7] = [
    ("Firing", "amFiring"),
    ("Resolved", "amResolved"),
    ("SortedPairs", "amSortedPairs"),
    ("Names", "amNames"),
    ("Values", "amValues"),
    ("Remove", "amRemove"),
    ("Format", "amFormat"),
];

/// The methods taking arguments: only valid as the first word of a command.
const METHODS_WITH_ARGS: [&str; 2] = ["Remove", "Format"];

/// Appended to every printing action: prints a missing value as `""`.
const OR_EMPTY: &str = "amOrEmpty";

/// Go's predefined template functions (all provided by gotmpl).
const BUILTINS: [&str; 19] = [
    "and", "call", "html", "index", "slice", "js", "len", "not", "or", "print", "printf",
    "println", "urlquery", "eq", "ne", "lt", "le", "gt", "ge",
];

/// The default templates, parsed and rewritten, ready to render fields against.
#[derive(Clone)]
pub struct Templates {
    base: Template,
}

impl Templates {
    /// Parses [`DEFAULT_TEMPLATES`].
    ///
    /// # Panics
    ///
    /// Never with the embedded text; a unit test parses it.
    pub fn new() -> Self {
        let mut base = Template::new("").funcs(funcs());
        // The embedded text is a constant checked by the tests: it always parses.
        if let Ok(parsed) = Template::new("").funcs(funcs()).parse(DEFAULT_TEMPLATES) {
            for name in parsed.templates() {
                if let Some(tree) = parsed.lookup(name) {
                    let mut tree = tree.clone();
                    rewrite_list(&mut tree, &mut Refs::default());
                    base = base.add_parse_tree(name, tree);
                }
            }
        }
        Self { base }
    }

    /// The defaults plus the `{{ define }}`s of `definitions` (the host passes
    /// the text of the config's top-level `templates:` files in each
    /// integration's `templates` field). Errors name the field `templates`.
    pub fn with_definitions(definitions: &str) -> Result<Self, String> {
        let mut templates = Self::new();
        if definitions.trim().is_empty() {
            return Ok(templates);
        }
        let set = templates.parse("templates", definitions)?;
        templates.base = set;
        Ok(templates)
    }

    /// Parses `text`, the value of config field `field`, into a template set holding
    /// the defaults and `text` (named `field`). Errors name the field.
    fn parse(&self, field: &str, text: &str) -> Result<Template, String> {
        let parsed = Template::new(field)
            .funcs(funcs())
            .parse(text)
            .map_err(|e| format!("{field}: {e}"))?;
        let mut set = self.base.clone();
        let mut unknown = Refs::default();
        for name in parsed.templates() {
            if let Some(tree) = parsed.lookup(name) {
                let mut tree = tree.clone();
                rewrite_list(&mut tree, &mut unknown);
                set = set.add_parse_tree(name, tree);
            }
        }
        if let Some(f) = unknown.functions.first() {
            return Err(format!("{field}: function {f:?} not defined"));
        }
        if let Some(t) = unknown.templates.iter().find(|t| set.lookup(t).is_none()) {
            return Err(format!("{field}: template {t:?} not defined"));
        }
        Ok(set)
    }

    /// Checks that `text` parses and calls only known functions.
    pub fn check(&self, field: &str, text: &str) -> Result<(), String> {
        if text.contains("{{") {
            self.parse(field, text)?;
        }
        Ok(())
    }

    /// Renders `text` (config field `field`) against `data` (see [`data`]).
    pub fn render(&self, field: &str, text: &str, data: &Value) -> Result<String, String> {
        if !text.contains("{{") {
            return Ok(text.to_owned());
        }
        let set = self.parse(field, text)?;
        if set.lookup(field).is_none() {
            // Only `{{define}}`s: nothing to print.
            return Ok(String::new());
        }
        set.execute_template_to_string(field, data)
            .map_err(|e| format!("{field}: {e}"))
    }
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

/// Renders config fields of one notification: the templates and the data together.
pub struct Renderer {
    templates: Templates,
    data: Value,
}

impl Renderer {
    /// A renderer for `notification` with the default templates.
    pub fn new(notification: &Notification) -> Self {
        Self::with_templates(notification, Templates::new())
    }

    /// A renderer for `notification` with `templates` (see
    /// [`Templates::with_definitions`]).
    pub fn with_templates(notification: &Notification, templates: Templates) -> Self {
        Self {
            templates,
            data: data(notification),
        }
    }

    /// Renders `text`, the value of config field `field`.
    pub fn render(&self, field: &str, text: &str) -> Result<String, String> {
        self.templates.render(field, text, &self.data)
    }
}

/// Alertmanager's `template.Data` for `n` (see the module docs).
pub fn data(n: &Notification) -> Value {
    let alerts: Vec<Value> = n.alerts.iter().map(alert).collect();
    map([
        ("Receiver", Value::from(quote_meta(&n.receiver))),
        ("Status", Value::from(n.status.as_str())),
        ("Alerts", Value::from(alerts)),
        ("GroupLabels", kv(&n.group_labels)),
        ("CommonLabels", kv(&n.common_labels)),
        ("CommonAnnotations", kv(&n.common_annotations)),
        ("ExternalURL", Value::from(n.external_url.as_str())),
    ])
}

fn alert(a: &Alert) -> Value {
    map([
        ("Status", Value::from(a.status.as_str())),
        ("Labels", kv(&a.labels)),
        ("Annotations", kv(&a.annotations)),
        ("StartsAt", Value::from(a.starts_at.as_str())),
        ("EndsAt", Value::from(a.ends_at.as_str())),
        ("GeneratorURL", Value::from(a.generator_url.as_str())),
        ("Fingerprint", Value::from(a.fingerprint.as_str())),
    ])
}

fn map<const N: usize>(fields: [(&str, Value); N]) -> Value {
    Value::from(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect::<BTreeMap<String, Value>>(),
    )
}

fn kv(pairs: &[(String, String)]) -> Value {
    Value::from(
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect::<BTreeMap<String, Value>>(),
    )
}

/// Go's `regexp.QuoteMeta`.
fn quote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

// ---- rewriting methods into calls ----

/// What a tree refers to that must exist: functions it calls and templates it
/// invokes. Go refuses an unknown function when parsing; gotmpl only when
/// executing, which would be at send time, too late for `check-config`.
#[derive(Default)]
struct Refs {
    functions: Vec<String>,
    templates: Vec<String>,
}

fn method_func(field: &str) -> Option<&'static str> {
    METHODS.iter().find(|(m, _)| *m == field).map(|(_, f)| *f)
}

fn rewrite_list(list: &mut ListNode, unknown: &mut Refs) {
    for node in &mut list.nodes {
        rewrite_node(node, unknown);
    }
}

fn rewrite_node(node: &mut Node, unknown: &mut Refs) {
    match node {
        Node::List(list) => rewrite_list(list, unknown),
        Node::Action(action) => {
            rewrite_pipe(&mut action.pipe, unknown);
            if action.pipe.decl.is_empty() {
                let pos = action.pipe.pos;
                action.pipe.commands.push(CommandNode {
                    pos,
                    args: vec![Expr::Identifier(pos, OR_EMPTY.into())],
                });
            }
        }
        Node::If(branch) | Node::Range(branch) | Node::With(branch) => {
            rewrite_pipe(&mut branch.pipe, unknown);
            rewrite_list(&mut branch.body, unknown);
            if let Some(else_body) = &mut branch.else_body {
                rewrite_list(else_body, unknown);
            }
        }
        Node::Template(t) => {
            unknown.templates.push(t.name.to_string());
            if let Some(pipe) = &mut t.pipe {
                rewrite_pipe(pipe, unknown);
            }
        }
        Node::Define(d) => rewrite_list(&mut d.body, unknown),
        Node::Text(_) | Node::Break(_) | Node::Continue(_) => {}
    }
}

fn rewrite_pipe(pipe: &mut PipeNode, unknown: &mut Refs) {
    for command in &mut pipe.commands {
        // `.CommonLabels.Remove .GroupLabels.Names`: the method's arguments are the
        // rest of the command, so the call replaces the command's first word.
        if let Some((func, receiver)) = command.args.first().and_then(strip_method_with_args) {
            let pos = command.pos;
            command.args[0] = Expr::Identifier(pos, func.into());
            command.args.insert(1, receiver);
        }
        for arg in &mut command.args {
            rewrite_expr(arg, unknown);
        }
    }
}

/// The function and receiver of a field chain ending in a method that takes
/// arguments (`.CommonLabels.Remove`, `.StartsAt.Format`).
fn strip_method_with_args(expr: &Expr) -> Option<(&'static str, Expr)> {
    let split = |fields: &[SmolStr]| {
        let last = fields.last()?;
        if !METHODS_WITH_ARGS.contains(&last.as_str()) {
            return None;
        }
        Some((method_func(last)?, fields[..fields.len() - 1].to_vec()))
    };
    match expr {
        Expr::Field(pos, fields) => {
            let (func, rest) = split(fields)?;
            let receiver = if rest.is_empty() {
                Expr::Dot(*pos)
            } else {
                Expr::Field(*pos, rest)
            };
            Some((func, receiver))
        }
        Expr::Variable(pos, name, fields) => {
            let (func, rest) = split(fields)?;
            Some((func, Expr::Variable(*pos, name.clone(), rest)))
        }
        Expr::Chain(pos, inner, fields) => {
            let (func, rest) = split(fields)?;
            let receiver = if rest.is_empty() {
                (**inner).clone()
            } else {
                Expr::Chain(*pos, inner.clone(), rest)
            };
            Some((func, receiver))
        }
        _ => None,
    }
}

fn rewrite_expr(expr: &mut Expr, unknown: &mut Refs) {
    let first_method = |fields: &[SmolStr]| fields.iter().position(|f| method_func(f).is_some());
    match expr {
        Expr::Identifier(_, name) if !is_known_function(name) => {
            unknown.functions.push(name.to_string());
        }
        Expr::Pipe(_, pipe) => rewrite_pipe(pipe, unknown),
        Expr::Field(pos, fields) => {
            if let Some(i) = first_method(fields) {
                let receiver = if i == 0 {
                    Expr::Dot(*pos)
                } else {
                    Expr::Field(*pos, fields[..i].to_vec())
                };
                *expr = apply_methods(receiver, &fields[i..], *pos);
            }
        }
        Expr::Variable(pos, name, fields) => {
            if let Some(i) = first_method(fields) {
                let receiver = Expr::Variable(*pos, name.clone(), fields[..i].to_vec());
                *expr = apply_methods(receiver, &fields[i..], *pos);
            }
        }
        Expr::Chain(pos, inner, fields) => {
            rewrite_expr(inner, unknown);
            if let Some(i) = first_method(fields) {
                let receiver = if i == 0 {
                    (**inner).clone()
                } else {
                    Expr::Chain(*pos, inner.clone(), fields[..i].to_vec())
                };
                *expr = apply_methods(receiver, &fields[i..], *pos);
            }
        }
        _ => {}
    }
}

/// `receiver.M1.F.M2…` as nested calls and field accesses.
fn apply_methods(mut expr: Expr, rest: &[SmolStr], pos: Pos) -> Expr {
    let mut fields: Vec<SmolStr> = Vec::new();
    for segment in rest {
        match method_func(segment) {
            Some(func) => {
                if !fields.is_empty() {
                    expr = Expr::Chain(pos, Box::new(expr), std::mem::take(&mut fields));
                }
                expr = Expr::Pipe(
                    pos,
                    PipeNode {
                        pos,
                        decl: Vec::new(),
                        commands: vec![CommandNode {
                            pos,
                            args: vec![Expr::Identifier(pos, func.into()), expr],
                        }],
                        is_assign: false,
                    },
                );
            }
            None => fields.push(segment.clone()),
        }
    }
    if !fields.is_empty() {
        expr = Expr::Chain(pos, Box::new(expr), fields);
    }
    expr
}

fn is_known_function(name: &str) -> bool {
    BUILTINS.contains(&name)
        || FUNCTIONS.contains(&name)
        || name == OR_EMPTY
        || METHODS.iter().any(|(_, f)| *f == name)
}

// ---- functions ----

/// Alertmanager's template functions provided here.
const FUNCTIONS: [&str; 13] = [
    "toUpper",
    "toLower",
    "title",
    "trimSpace",
    "join",
    "safeHtml",
    "safeUrl",
    "urlUnescape",
    "reReplaceAll",
    "stringSlice",
    "match",
    "toJson",
    "humanizeDuration",
];

type Res = gotmpl::Result<Value>;

fn err(msg: String) -> TemplateError {
    TemplateError::Exec(msg)
}

fn arg<'a>(name: &str, args: &'a [Value], i: usize, n: usize) -> gotmpl::Result<&'a Value> {
    if args.len() != n {
        return Err(err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        )));
    }
    args.get(i)
        .ok_or_else(|| err(format!("{name}: missing argument {i}")))
}

/// A string argument; a missing value reads as `""`.
fn text(v: &Value) -> String {
    match v {
        Value::Nil => String::new(),
        other => other.to_string(),
    }
}

fn list(name: &str, v: &Value) -> gotmpl::Result<Arc<[Value]>> {
    match v {
        Value::List(items) => Ok(items.clone()),
        Value::Nil => Ok(Arc::from(Vec::new())),
        other => Err(err(format!(
            "{name}: expected a list, got {}",
            other.type_name()
        ))),
    }
}

fn label_map(name: &str, v: &Value) -> gotmpl::Result<Arc<BTreeMap<Arc<str>, Value>>> {
    match v {
        Value::Map(m) => Ok(m.clone()),
        Value::Nil => Ok(Arc::new(BTreeMap::new())),
        other => Err(err(format!(
            "{name}: expected a label map, got {}",
            other.type_name()
        ))),
    }
}

fn regex(name: &str, pattern: &str) -> gotmpl::Result<regex::Regex> {
    regex::Regex::new(pattern).map_err(|e| err(format!("{name}: {e}")))
}

/// Go's `strings.Title`: the first letter of each word in upper case.
fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut at_start = true;
    for c in s.chars() {
        if at_start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        at_start = !(c.is_alphanumeric() || c == '_');
    }
    out
}

fn by_status(name: &'static str, status: &'static str) -> impl Fn(&[Value]) -> Res {
    move |args| {
        let alerts = list(name, arg(name, args, 0, 1)?)?;
        Ok(Value::from(
            alerts
                .iter()
                .filter(|a| a.field("Status").and_then(Value::as_str) == Some(status))
                .cloned()
                .collect::<Vec<_>>(),
        ))
    }
}

/// Names (`pick` = "Name") or values ("Value") of a label map or a list of pairs.
fn pair_part(name: &'static str, pick: &'static str) -> impl Fn(&[Value]) -> Res {
    move |args| {
        let v = arg(name, args, 0, 1)?;
        let items: Vec<Value> = match v {
            Value::List(pairs) => pairs
                .iter()
                .map(|p| p.field(pick).cloned().unwrap_or(Value::Nil))
                .collect(),
            _ => label_map(name, v)?
                .iter()
                .map(|(k, v)| {
                    if pick == "Name" {
                        Value::String(k.clone())
                    } else {
                        v.clone()
                    }
                })
                .collect(),
        };
        Ok(Value::from(items))
    }
}

/// Go's `url.QueryUnescape`: `%XX` decoded, `+` read as a space.
fn query_unescape(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("invalid URL escape {:?}", &s[i..s.len().min(i + 3)]))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "invalid UTF-8 after URL unescaping".to_owned())
}

/// Go's `json.Marshal`: compact, map keys sorted, and `<`, `>`, `&`, U+2028 and
/// U+2029 escaped as Go escapes them.
fn to_json(v: &Value) -> gotmpl::Result<String> {
    fn json(v: &Value, out: &mut String) -> gotmpl::Result<()> {
        match v {
            Value::Nil => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => out.push_str(&i.to_string()),
            Value::Uint(u) => out.push_str(&u.to_string()),
            Value::Float(f) if f.is_finite() => out.push_str(&f.to_string()),
            Value::String(s) => quote(s, out),
            Value::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    json(item, out)?;
                }
                out.push(']');
            }
            Value::Map(m) => {
                out.push('{');
                for (i, (k, item)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    quote(k, out);
                    out.push(':');
                    json(item, out)?;
                }
                out.push('}');
            }
            other => {
                return Err(err(format!(
                    "toJson: cannot encode a {}",
                    other.type_name()
                )));
            }
        }
        Ok(())
    }
    fn quote(s: &str, out: &mut String) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                    out.push_str(&format!("\\u{:04x}", u32::from(c)));
                }
                c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    let mut out = String::new();
    json(v, &mut out)?;
    Ok(out)
}

/// Go's `%.4g`.
fn go_g4(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v == 0.0 {
        return "0".into();
    }
    // Round to 4 significant digits first: the exponent is the rounded one's.
    let sci = format!("{v:.3e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s
        }
    };
    if !(-4..4).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa.to_owned()), exp.abs())
    } else {
        let decimals = usize::try_from(3 - exp).unwrap_or(0);
        trim(format!("{v:.decimals$}"))
    }
}

/// Prometheus's `humanizeDuration`, which Alertmanager's templates share: seconds
/// as `1d 2h 3m 4s`, or with an SI prefix below one second.
fn humanize_duration(v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return go_g4(v);
    }
    if v == 0.0 {
        return "0s".into();
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        let v = v.abs();
        let total = v as i64;
        let (seconds, minutes) = (total % 60, total / 60 % 60);
        let (hours, days) = (total / 3600 % 24, total / 86_400);
        return match (days, hours, minutes) {
            (0, 0, 0) => format!("{sign}{}s", go_g4(v)),
            (0, 0, _) => format!("{sign}{minutes}m {seconds}s"),
            (0, _, _) => format!("{sign}{hours}h {minutes}m {seconds}s"),
            _ => format!("{sign}{days}d {hours}h {minutes}m {seconds}s"),
        };
    }
    let mut v = v;
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", go_g4(v))
}

fn funcs() -> FuncMap {
    let mut m = FuncMap::new();
    let mut add = |name: &str, f: gotmpl::ValueFunc| {
        m.insert(name.to_owned(), f);
    };
    add("amFiring", Arc::new(by_status("Firing", "firing")));
    add("amResolved", Arc::new(by_status("Resolved", "resolved")));
    add(
        "amSortedPairs",
        Arc::new(|args: &[Value]| {
            let m = label_map("SortedPairs", arg("SortedPairs", args, 0, 1)?)?;
            Ok(Value::from(
                m.iter()
                    .map(|(k, v)| map([("Name", Value::String(k.clone())), ("Value", v.clone())]))
                    .collect::<Vec<_>>(),
            ))
        }),
    );
    add("amNames", Arc::new(pair_part("Names", "Name")));
    add("amValues", Arc::new(pair_part("Values", "Value")));
    add(
        "amRemove",
        Arc::new(|args: &[Value]| {
            let m = label_map("Remove", arg("Remove", args, 0, 2)?)?;
            let names = list("Remove", arg("Remove", args, 1, 2)?)?;
            let names: Vec<String> = names.iter().map(text).collect();
            Ok(Value::from(
                m.iter()
                    .filter(|(k, _)| !names.iter().any(|n| n.as_str() == &***k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<BTreeMap<Arc<str>, Value>>(),
            ))
        }),
    );
    add(
        "amFormat",
        Arc::new(|args: &[Value]| {
            let time = text(arg("Format", args, 0, 2)?);
            let layout = text(arg("Format", args, 1, 2)?);
            crate::gotime::format(&time, &layout)
                .map(Value::from)
                .ok_or_else(|| err(format!("Format: {time:?} is not an RFC 3339 time")))
        }),
    );
    add(
        OR_EMPTY,
        Arc::new(|args: &[Value]| {
            Ok(match arg(OR_EMPTY, args, 0, 1)? {
                Value::Nil => Value::from(""),
                other => other.clone(),
            })
        }),
    );
    add(
        "toUpper",
        Arc::new(|args: &[Value]| {
            Ok(Value::from(
                text(arg("toUpper", args, 0, 1)?).to_uppercase(),
            ))
        }),
    );
    add(
        "toLower",
        Arc::new(|args: &[Value]| {
            Ok(Value::from(
                text(arg("toLower", args, 0, 1)?).to_lowercase(),
            ))
        }),
    );
    add(
        "title",
        Arc::new(|args: &[Value]| Ok(Value::from(title_case(&text(arg("title", args, 0, 1)?))))),
    );
    add(
        "trimSpace",
        Arc::new(|args: &[Value]| Ok(Value::from(text(arg("trimSpace", args, 0, 1)?).trim()))),
    );
    add(
        "safeHtml",
        Arc::new(|args: &[Value]| Ok(Value::from(text(arg("safeHtml", args, 0, 1)?)))),
    );
    add(
        "safeUrl",
        Arc::new(|args: &[Value]| Ok(Value::from(text(arg("safeUrl", args, 0, 1)?)))),
    );
    add(
        "urlUnescape",
        Arc::new(|args: &[Value]| {
            query_unescape(&text(arg("urlUnescape", args, 0, 1)?))
                .map(Value::from)
                .map_err(|e| err(format!("urlUnescape: {e}")))
        }),
    );
    add(
        "humanizeDuration",
        Arc::new(|args: &[Value]| {
            let seconds = match arg("humanizeDuration", args, 0, 1)? {
                Value::Int(i) => *i as f64,
                Value::Uint(u) => *u as f64,
                Value::Float(f) => *f,
                other => text(other).trim().parse::<f64>().map_err(|_| {
                    err(format!(
                        "humanizeDuration: {:?} is not a number",
                        text(other)
                    ))
                })?,
            };
            Ok(Value::from(humanize_duration(seconds)))
        }),
    );
    add(
        "toJson",
        Arc::new(|args: &[Value]| to_json(arg("toJson", args, 0, 1)?).map(Value::from)),
    );
    add(
        "join",
        Arc::new(|args: &[Value]| {
            let sep = text(arg("join", args, 0, 2)?);
            let items = list("join", arg("join", args, 1, 2)?)?;
            Ok(Value::from(
                items.iter().map(text).collect::<Vec<_>>().join(&sep),
            ))
        }),
    );
    add(
        "stringSlice",
        Arc::new(|args: &[Value]| {
            Ok(Value::from(
                args.iter()
                    .map(|a| Value::from(text(a)))
                    .collect::<Vec<_>>(),
            ))
        }),
    );
    add(
        "reReplaceAll",
        Arc::new(|args: &[Value]| {
            let re = regex("reReplaceAll", &text(arg("reReplaceAll", args, 0, 3)?))?;
            let repl = text(arg("reReplaceAll", args, 1, 3)?);
            let subject = text(arg("reReplaceAll", args, 2, 3)?);
            Ok(Value::from(
                re.replace_all(&subject, repl.as_str()).into_owned(),
            ))
        }),
    );
    add(
        "match",
        Arc::new(|args: &[Value]| {
            let re = regex("match", &text(arg("match", args, 0, 2)?))?;
            Ok(Value::Bool(re.is_match(&text(arg("match", args, 1, 2)?))))
        }),
    );
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn alert(status: &str, model: &str) -> Alert {
        Alert {
            status: status.into(),
            labels: pairs(&[
                ("alertname", "HighLatency"),
                ("model", model),
                ("severity", "page"),
            ]),
            annotations: pairs(&[("summary", "p99 above 250ms")]),
            starts_at: "2024-05-01T10:00:00Z".into(),
            ends_at: "0001-01-01T00:00:00Z".into(),
            generator_url: "http://klaxon:9190/rules/high-latency".into(),
            fingerprint: "0123456789abcdef".into(),
        }
    }

    /// One firing alert, grouped by `alertname`.
    fn firing() -> Notification {
        Notification {
            receiver: "ml-oncall".into(),
            status: "firing".into(),
            alerts: vec![alert("firing", "fraud-v2")],
            group_labels: pairs(&[("alertname", "HighLatency")]),
            common_labels: pairs(&[
                ("alertname", "HighLatency"),
                ("model", "fraud-v2"),
                ("severity", "page"),
            ]),
            common_annotations: pairs(&[("summary", "p99 above 250ms")]),
            external_url: "http://klaxon:9190".into(),
            group_key: "{}:{alertname=\"HighLatency\"}".into(),
            truncated_alerts: 0,
        }
    }

    fn render(text: &str, n: &Notification) -> String {
        Renderer::new(n).render("text", text).unwrap()
    }

    #[test]
    fn default_templates_parse() {
        let t = Template::new("").funcs(funcs()).parse(DEFAULT_TEMPLATES);
        let t = t.unwrap();
        for name in [
            "__subject",
            "__text_alert_list",
            "slack.default.title",
            "pagerduty.default.description",
            "opsgenie.default.message",
            "msteams.default.title",
        ] {
            assert!(t.lookup(name).is_some(), "{name}");
        }
    }

    #[test]
    fn subject_matches_alertmanager() {
        let n = firing();
        assert_eq!(
            render(r#"{{ template "__subject" . }}"#, &n),
            "[FIRING:1] HighLatency (fraud-v2 page)"
        );
        // Group labels equal to the common labels: no parenthesis.
        let mut n2 = n.clone();
        n2.common_labels = n2.group_labels.clone();
        assert_eq!(
            render(r#"{{ template "slack.default.title" . }}"#, &n2),
            "[FIRING:1] HighLatency "
        );
        let mut resolved = n.clone();
        resolved.status = "resolved".into();
        resolved.alerts[0].status = "resolved".into();
        assert_eq!(
            render(r#"{{ template "__subject" . }}"#, &resolved),
            "[RESOLVED] HighLatency (fraud-v2 page)"
        );
    }

    #[test]
    fn definitions_from_template_files_are_usable_and_can_override_defaults() {
        let n = firing();
        let defs = r#"
{{ define "ml.title" }}[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }} on {{ .CommonLabels.model }}{{ end }}
{{ define "__subject" }}custom subject{{ end }}
"#;
        let t = Templates::with_definitions(defs).expect("definitions parse");
        let r = Renderer::with_templates(&n, t);
        assert_eq!(
            r.render("title", r#"{{ template "ml.title" . }}"#)
                .expect("renders"),
            "[FIRING] HighLatency on fraud-v2"
        );
        assert_eq!(
            r.render("title", r#"{{ template "__subject" . }}"#)
                .expect("renders"),
            "custom subject",
            "a file's define replaces the default of the same name, as in Alertmanager"
        );
        let err = Templates::with_definitions(r#"{{ define "x" }}{{ nosuchfunc }}{{ end }}"#)
            .err()
            .expect("refused");
        assert!(err.starts_with("templates: "), "{err}");
    }

    #[test]
    fn text_alert_list_matches_alertmanager() {
        assert_eq!(
            render(
                r#"{{ template "__text_alert_list" .Alerts.Firing }}"#,
                &firing()
            ),
            "Labels:\n - alertname = HighLatency\n - model = fraud-v2\n - severity = page\n\
             Annotations:\n - summary = p99 above 250ms\n\
             Source: http://klaxon:9190/rules/high-latency\n"
        );
        assert_eq!(
            render(
                r#"{{ template "__text_alert_list" .Alerts.Resolved }}"#,
                &firing()
            ),
            ""
        );
    }

    #[test]
    fn alertmanager_url_quotes_the_receiver() {
        let mut n = firing();
        n.receiver = "ml.oncall team".into();
        assert_eq!(
            render(r#"{{ template "__alertmanagerURL" . }}"#, &n),
            "http://klaxon:9190/#/alerts?receiver=ml%5C.oncall+team"
        );
    }

    #[test]
    fn methods_and_functions() {
        let n = firing();
        for (text, expected) in [
            (
                "{{ .CommonLabels.Names | join \",\" }}",
                "alertname,model,severity",
            ),
            (
                "{{ .CommonLabels.SortedPairs.Names | join \",\" }}",
                "alertname,model,severity",
            ),
            (
                "{{ range .Alerts }}{{ .Labels.model | toUpper }}{{ end }}",
                "FRAUD-V2",
            ),
            (
                "{{ with .CommonLabels.Remove (stringSlice \"model\") }}{{ .Values | join \" \" }}{{ end }}",
                "HighLatency page",
            ),
            (
                "{{ $l := .CommonLabels }}{{ $l.Values | join \"/\" }}",
                "HighLatency/fraud-v2/page",
            ),
            ("{{ len .Alerts.Firing }}/{{ len .Alerts.Resolved }}", "1/0"),
            ("[{{ .CommonLabels.missing }}]", "[]"),
            ("{{ if .CommonLabels.missing }}x{{ else }}y{{ end }}", "y"),
            ("{{ title \"high latency_now\" }}", "High Latency_now"),
            ("{{ toLower \"ABC\" }}{{ safeHtml \"<b>\" }}", "abc<b>"),
            (
                "{{ reReplaceAll \"(.*)-v(\\\\d)\" \"$1 version $2\" .CommonLabels.model }}",
                "fraud version 2",
            ),
            (
                "{{ if match \"^fraud\" .CommonLabels.model }}yes{{ end }}",
                "yes",
            ),
            ("{{ trimSpace \"  x \" }}", "x"),
            (
                "{{ range .Alerts }}{{ .StartsAt.Format \"Jan 2 15:04 MST\" }}{{ end }}",
                "May 1 10:00 UTC",
            ),
            (
                "{{ .CommonLabels | toJson }}",
                r#"{"alertname":"HighLatency","model":"fraud-v2","severity":"page"}"#,
            ),
            ("{{ toJson \"<a & b>\" }}", r#""\u003ca \u0026 b\u003e""#),
            (
                "{{ urlUnescape \"a%2Fb+c\" }}{{ safeUrl \"/x\" }}",
                "a/b c/x",
            ),
            ("plain text", "plain text"),
        ] {
            assert_eq!(render(text, &n), expected, "{text}");
        }
    }

    #[test]
    fn unknown_functions_and_syntax_errors_name_the_field() {
        let t = Templates::new();
        let e = t.check("title", "{{ since .StartsAt }}").unwrap_err();
        assert_eq!(e, "title: function \"since\" not defined");
        let e = t.check("text", "{{ if }}").unwrap_err();
        assert!(e.starts_with("text: "), "{e}");
        let e = t
            .check("text", "{{ template \"slack.default.titel\" . }}")
            .unwrap_err();
        assert_eq!(e, "text: template \"slack.default.titel\" not defined");
        assert!(
            t.check("text", "{{ define \"x\" }}x{{ end }}{{ template \"x\" }}")
                .is_ok()
        );
        assert!(t.check("text", "{{ .CommonLabels.SortedPairs }}").is_ok());
        assert!(t.check("text", "no template").is_ok());
    }

    #[test]
    fn humanize_duration_matches_prometheus() {
        for (v, expected) in [
            (0.0, "0s"),
            (1.0, "1s"),
            (1.5, "1.5s"),
            (12.3456, "12.35s"),
            (60.0, "1m 0s"),
            (3_723.0, "1h 2m 3s"),
            (93_784.0, "1d 2h 3m 4s"),
            (-90.0, "-1m 30s"),
            (0.25, "250ms"),
            (0.000_001_5, "1.5us"),
        ] {
            assert_eq!(humanize_duration(v), expected, "{v}");
        }
        assert_eq!(go_g4(123_456.0), "1.235e+05");
        assert_eq!(go_g4(9.999_96), "10");
        assert_eq!(
            render(
                "{{ humanizeDuration 3723 }} {{ humanizeDuration \"0.5\" }}",
                &firing()
            ),
            "1h 2m 3s 500ms"
        );
    }

    #[test]
    fn quote_meta_matches_go() {
        assert_eq!(quote_meta("a.b+c(d)"), "a\\.b\\+c\\(d\\)");
        assert_eq!(quote_meta("ml-oncall"), "ml-oncall");
    }
}
