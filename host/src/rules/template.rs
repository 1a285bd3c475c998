//! Annotation and label templates in Go text/template syntax, rendered the
//! way Prometheus renders alerting-rule templates: the variables `$labels`,
//! `$externalLabels`, `$externalURL`, `$value`, and Prometheus's template
//! functions (`humanize`, `humanizeDuration`, `title`, `reReplaceAll`, …; the
//! list and what is left out are in `funcs`). Templates are parsed once,
//! when the rule is built.
//!
//! # Engine
//! `gotmpl` (a port of Go's text/template, parser and `printf` checked
//! against Go) registers custom functions as closures (`Template::funcs`)
//! and exposes its parse tree. `gtmpl` (0.7), the other Go-template crate,
//! takes only plain `fn` pointers as functions and prints floats with Rust's
//! `{}` as well, so switching would not close the gap below.
//!
//! The gap: gotmpl prints floats with Rust's `{}` (`1e21` as 22 digits,
//! `1.5e-7` as `0.00000015`) where Go prints `1e+21` and `1.5e-07`. Until that is fixed upstream, each parsed
//! template is rewritten once: every printing action gets a final Go-style
//! printer command (`{{ x }}` runs as `{{ x | print-as-go }}`), and each
//! `%v` argument of a `printf` with a literal format is converted the same
//! way. Variables, comparisons and functions still see the float itself.
//! Still in Rust's form: float operands of `print`/`println` (making them
//! strings would change Go's rule for spaces between operands). `printf`
//! verbs other than `%v` (`%.2f`, `%g`, …) are gotmpl's, which match Go.
//!
//! # Layout
//! - `gofmt`: Go's `%v` and `%.4g` for floats.
//! - `funcs`: the Prometheus function map and the internal printers.

mod funcs;
mod gofmt;

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::Value;
use gotmpl::parse::{CommandNode, Expr, ListNode, Node, PipeNode, Pos};

/// What Prometheus prepends to every alert template.
const PREFIX: &str = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}\
{{$externalURL := .ExternalURL}}{{$value := .Value}}";

/// The name the alert text is parsed and executed under.
const NAME: &str = "alert";

/// A parsed template; text without `{{` is kept as is.
#[derive(Clone)]
pub struct AlertTemplate {
    raw: String,
    parsed: Option<Arc<gotmpl::Template>>,
}

impl std::fmt::Debug for AlertTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.raw)
    }
}

impl AlertTemplate {
    /// Parses `text`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parsed = if text.contains("{{") {
            let t = gotmpl::Template::new(NAME)
                .funcs(funcs::prometheus_funcs())
                .parse(&format!("{PREFIX}{text}"))
                .map_err(|e| e.to_string())?;
            // Rebuild with every tree (the body and any `{{define}}`) rewritten
            // to print like Go.
            let known = funcs::prometheus_funcs();
            let mut fixed = gotmpl::Template::new(NAME).funcs(funcs::prometheus_funcs());
            for name in t.templates() {
                if let Some(tree) = t.lookup(name) {
                    // Go refuses unknown functions when parsing; gotmpl only
                    // when executing, which would be too late for `klaxon check`.
                    let mut unknown = None;
                    visit_identifiers_list(tree, &mut |f| {
                        if unknown.is_none() && !known.contains_key(f) && !BUILTINS.contains(&f) {
                            unknown = Some(f.to_string());
                        }
                    });
                    if let Some(f) = unknown {
                        return Err(format!("template: {NAME}: function {f:?} not defined"));
                    }
                    let mut tree = tree.clone();
                    rewrite_list(&mut tree);
                    fixed = fixed.add_parse_tree(name, tree);
                }
            }
            Some(Arc::new(fixed))
        } else {
            None
        };
        Ok(Self {
            raw: text.to_string(),
            parsed,
        })
    }

    /// The template's source text.
    pub fn source(&self) -> &str {
        &self.raw
    }

    /// Renders for one alert.
    pub fn render(
        &self,
        labels: &BTreeMap<String, String>,
        external_labels: &BTreeMap<String, String>,
        external_url: &str,
        value: f64,
    ) -> Result<String, String> {
        let Some(t) = &self.parsed else {
            return Ok(self.raw.clone());
        };
        let map = |m: &BTreeMap<String, String>| {
            Value::from(
                m.iter()
                    .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                    .collect::<BTreeMap<String, Value>>(),
            )
        };
        let data = Value::from(BTreeMap::from([
            ("Labels".to_string(), map(labels)),
            ("ExternalLabels".to_string(), map(external_labels)),
            ("ExternalURL".to_string(), Value::from(external_url)),
            ("Value".to_string(), Value::Float(value)),
        ]));
        t.execute_template_to_string(NAME, &data)
            .map_err(|e| e.to_string())
    }
}

/// Checks that a template parses.
pub fn check(text: &str) -> Result<(), String> {
    AlertTemplate::parse(text).map(|_| ())
}

/// Go text/template's predefined functions, all provided by gotmpl.
const BUILTINS: [&str; 19] = [
    "and", "call", "eq", "ge", "gt", "html", "index", "js", "le", "len", "lt", "ne", "not", "or",
    "print", "printf", "println", "slice", "urlquery",
];

fn visit_identifiers_list(list: &ListNode, f: &mut dyn FnMut(&str)) {
    for node in &list.nodes {
        match node {
            Node::Action(a) => visit_identifiers_pipe(&a.pipe, f),
            Node::If(b) | Node::Range(b) | Node::With(b) => {
                visit_identifiers_pipe(&b.pipe, f);
                visit_identifiers_list(&b.body, f);
                if let Some(e) = &b.else_body {
                    visit_identifiers_list(e, f);
                }
            }
            Node::List(l) => visit_identifiers_list(l, f),
            Node::Define(d) => visit_identifiers_list(&d.body, f),
            Node::Template(t) => {
                if let Some(p) = &t.pipe {
                    visit_identifiers_pipe(p, f);
                }
            }
            Node::Text(_) | Node::Break(_) | Node::Continue(_) => {}
        }
    }
}

fn visit_identifiers_pipe(pipe: &PipeNode, f: &mut dyn FnMut(&str)) {
    fn expr(e: &Expr, f: &mut dyn FnMut(&str)) {
        match e {
            Expr::Identifier(_, name) => f(name),
            Expr::Pipe(_, p) => visit_identifiers_pipe(p, f),
            Expr::Chain(_, inner, _) => expr(inner, f),
            _ => {}
        }
    }
    for cmd in &pipe.commands {
        for arg in &cmd.args {
            expr(arg, f);
        }
    }
}

fn rewrite_list(list: &mut ListNode) {
    for node in &mut list.nodes {
        rewrite_node(node);
    }
}

fn rewrite_node(node: &mut Node) {
    match node {
        Node::Action(action) => {
            rewrite_pipe(&mut action.pipe);
            if action.pipe.decl.is_empty() {
                let pos = action.pos;
                action.pipe.commands.push(call(pos, funcs::PRINT, vec![]));
            }
        }
        Node::If(b) | Node::Range(b) | Node::With(b) => {
            rewrite_pipe(&mut b.pipe);
            rewrite_list(&mut b.body);
            if let Some(e) = &mut b.else_body {
                rewrite_list(e);
            }
        }
        Node::List(l) => rewrite_list(l),
        Node::Define(d) => rewrite_list(&mut d.body),
        Node::Template(t) => {
            if let Some(p) = &mut t.pipe {
                rewrite_pipe(p);
            }
        }
        Node::Text(_) | Node::Break(_) | Node::Continue(_) => {}
    }
}

fn call(pos: Pos, name: &str, mut args: Vec<Expr>) -> CommandNode {
    args.insert(0, Expr::Identifier(pos, name.into()));
    CommandNode { pos, args }
}

/// Converts the `%v` operands of `printf` calls with a literal format, in
/// this pipeline and the sub-pipelines of its arguments.
fn rewrite_pipe(pipe: &mut PipeNode) {
    let mut i = 0;
    while i < pipe.commands.len() {
        for arg in &mut pipe.commands[i].args {
            if let Expr::Pipe(_, sub) = arg {
                rewrite_pipe(sub);
            }
        }
        let cmd = &mut pipe.commands[i];
        let is_printf = matches!(cmd.args.first(), Some(Expr::Identifier(_, n)) if n == "printf");
        let verbs = match cmd.args.get(1) {
            Some(Expr::String(_, format)) if is_printf => v_operands(format),
            _ => None,
        };
        let Some(verbs) = verbs else {
            i += 1;
            continue;
        };
        let explicit = cmd.args.len() - 2;
        let mut piped_is_v = false;
        for k in verbs {
            if k < explicit {
                let arg = &mut cmd.args[2 + k];
                let pos = arg.pos();
                let inner = std::mem::replace(arg, Expr::Nil(pos));
                *arg = Expr::Pipe(
                    pos,
                    PipeNode {
                        pos,
                        decl: vec![],
                        commands: vec![call(pos, funcs::GO_VALUE, vec![inner])],
                        is_assign: false,
                    },
                );
            } else if k == explicit && i > 0 {
                piped_is_v = true;
            }
        }
        if piped_is_v {
            let pos = cmd.pos;
            pipe.commands.insert(i, call(pos, funcs::GO_VALUE, vec![]));
            i += 1;
        }
        i += 1;
    }
}

/// Indexes of the operands a Go format string prints with `%v`; `None` when
/// the format uses `*` widths or explicit argument indexes (left as is).
fn v_operands(format: &str) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    let mut operand = 0;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            continue;
        }
        while let Some(&f) = chars.peek() {
            match f {
                '+' | '-' | '#' | ' ' | '0'..='9' | '.' => {
                    chars.next();
                }
                '*' | '[' => return None,
                _ => break,
            }
        }
        match chars.next() {
            Some('%') | None => {}
            Some(verb) => {
                if verb == 'v' {
                    out.push(operand);
                }
                operand += 1;
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn try_render(text: &str, value: f64) -> Result<String, String> {
        let labels = BTreeMap::from([("model_name".to_string(), "fraud".to_string())]);
        let external = BTreeMap::from([("cluster".to_string(), "eu-1".to_string())]);
        AlertTemplate::parse(text)?.render(&labels, &external, "http://klaxon:9190", value)
    }

    fn render(text: &str, value: f64) -> String {
        match try_render(text, value) {
            Ok(s) => s,
            Err(e) => panic!("{text:?} failed: {e}"),
        }
    }

    /// `{{ func input }}:` for each input, concatenated: the shape of
    /// Prometheus's `{{ range . }}{{ func . }}:{{ end }}` table tests.
    fn each(func: &str, inputs: &[&str]) -> String {
        inputs
            .iter()
            .map(|i| render(&format!("{{{{ {func} {i} }}}}:"), 0.0))
            .collect()
    }

    #[test]
    fn renders_labels_and_value_like_go() {
        assert_eq!(
            render(
                "{{ $labels.model_name }} latency {{ $value }} above 0.2 s",
                0.25
            ),
            "fraud latency 0.25 above 0.2 s"
        );
        assert_eq!(render("plain", 1.0), "plain");
        assert_eq!(render("{{ $value }}", 3.0), "3");
    }

    #[test]
    fn value_prints_as_go_percent_v() {
        for (v, want) in [
            (1e21, "1e+21"),
            (0.1, "0.1"),
            (1.5e-7, "1.5e-07"),
            (1234567.0, "1.234567e+06"),
            (123456.0, "123456"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ] {
            assert_eq!(render("{{ $value }}", v), want);
            assert_eq!(render("{{ .Value }}", v), want);
            assert_eq!(render("{{ with $value }}{{ . }}{{ end }}", v), want);
            assert_eq!(render("{{ printf \"%v\" $value }}", v), want);
            assert_eq!(
                render("{{ $value | printf \"v=%v\" }}", v),
                format!("v={want}")
            );
        }
        // Everything but the printing is unchanged: comparisons see the float.
        assert_eq!(render("{{ if gt $value 1e20 }}big{{ end }}", 1e21), "big");
        assert_eq!(render("{{ printf \"%.2f\" $value }}", 0.125), "0.12");
        assert_eq!(render("{{ printf \"%d %v\" 3 $value }}", 1e21), "3 1e+21");
        assert_eq!(render("{{ $x := $value }}{{ $x }}", 1e21), "1e+21");
        assert_eq!(render("{{ .Missing }}", 1.0), "<no value>");
        assert_eq!(render("{{ 1 }}", 1.0), "1");
        assert_eq!(
            render(
                "{{define \"x\"}}{{.arg0}} {{.arg1}}{{end}}{{template \"x\" (args 1e21 \"2\")}}",
                0.0
            ),
            "1e+21 2"
        );
    }

    #[test]
    fn external_labels_and_url() {
        assert_eq!(
            render("{{ $externalLabels.cluster }} {{ $externalURL }}", 0.0),
            "eu-1 http://klaxon:9190"
        );
    }

    // Expected outputs below are Prometheus's own (template/template_test.go).

    #[test]
    fn humanize() {
        assert_eq!(
            each("humanize", &["0.0", "1.0", "1234567.0", ".12"]),
            "0:1:1.235M:120m:"
        );
        assert_eq!(
            each(
                "humanize",
                &["\"0.0\"", "\"1.0\"", "\"1234567.0\"", "\".12\""]
            ),
            "0:1:1.235M:120m:"
        );
        assert_eq!(
            each(
                "humanize",
                &["0", "-1", "1", "1234567", "9223372036854775807"]
            ),
            "0:-1:1:1.235M:9.223E:"
        );
        assert_eq!(each("humanize", &["0.00123", "1e-30"]), "1.23m:1e-06y:");
        let e = try_render("{{ humanize \"one\" }}", 0.0).unwrap_err();
        assert!(
            e.contains(
                r#"error calling humanize: strconv.ParseFloat: parsing "one": invalid syntax"#
            ),
            "{e}"
        );
    }

    #[test]
    fn humanize1024() {
        assert_eq!(
            each("humanize1024", &["0.0", "1.0", "1048576.0", ".12"]),
            "0:1:1Mi:0.12:"
        );
        assert_eq!(
            each(
                "humanize1024",
                &["\"0.0\"", "\"1.0\"", "\"1048576.0\"", "\".12\""]
            ),
            "0:1:1Mi:0.12:"
        );
        assert_eq!(
            each(
                "humanize1024",
                &["0", "-1", "1", "1234567", "9223372036854775807"]
            ),
            "0:-1:1:1.177Mi:8Ei:"
        );
        assert_eq!(each("humanize1024", &["2048"]), "2ki:");
        assert!(try_render("{{ humanize1024 \"one\" }}", 0.0).is_err());
    }

    #[test]
    fn humanize_duration() {
        assert_eq!(
            each(
                "humanizeDuration",
                &[
                    "0", "1", "60", "3600", "86400", "90000", "-183845", "899.99"
                ]
            ),
            "0s:1s:1m 0s:1h 0m 0s:1d 0h 0m 0s:1d 1h 0m 0s:-2d 3h 4m 5s:14m 59s:"
        );
        assert_eq!(
            each(
                "humanizeDuration",
                &["\"0\"", "\"1\"", "\"60\"", "\"3600\"", "\"86400\""]
            ),
            "0s:1s:1m 0s:1h 0m 0s:1d 0h 0m 0s:"
        );
        assert_eq!(
            each(
                "humanizeDuration",
                &[".1", ".0001", ".12345", "60.1", "60.5", "1.2345", "12.345"]
            ),
            "100ms:100us:123.5ms:1m 0s:1m 0s:1.234s:12.35s:"
        );
        assert_eq!(
            each("humanizeDuration", &["0", "-1", "1", "1234567"]),
            "0s:-1s:1s:14d 6h 56m 7s:"
        );
        assert_eq!(
            each("humanizeDuration", &["3725", "0.5"]),
            "1h 2m 5s:500ms:"
        );
        assert!(try_render("{{ humanizeDuration \"one\" }}", 0.0).is_err());
    }

    #[test]
    fn humanize_non_finite() {
        let t = "{{ humanize . }}:{{ humanize1024 . }}:{{ humanizeDuration . }}:{{ humanizeTimestamp . }}:";
        let mut out = String::new();
        for v in ["\"+Inf\"", "\"-Inf\"", "\"NaN\""] {
            out += &render(&format!("{{{{ with {v} }}}}{t}{{{{ end }}}}"), 0.0);
        }
        assert_eq!(
            out,
            "+Inf:+Inf:+Inf:+Inf:-Inf:-Inf:-Inf:-Inf:NaN:NaN:NaN:NaN:"
        );
        let mut out = String::new();
        for v in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN] {
            // NaN and the infinities are truthy in Go, so `with` runs for each.
            out += &render(&format!("{{{{ with $value }}}}{t}{{{{ end }}}}"), v);
        }
        assert_eq!(
            out,
            "+Inf:+Inf:+Inf:+Inf:-Inf:-Inf:-Inf:-Inf:NaN:NaN:NaN:NaN:"
        );
    }

    #[test]
    fn humanize_percentage() {
        assert_eq!(
            render(
                "{{ -0.22222 | humanizePercentage }}:{{ 0.0 | humanizePercentage }}:{{ 0.1234567 | humanizePercentage }}:{{ 1.23456 | humanizePercentage }}",
                0.0
            ),
            "-22.22%:0%:12.35%:123.5%"
        );
        assert_eq!(
            each(
                "humanizePercentage",
                &["0", "-1", "1", "1234567", "9223372036854775807"]
            ),
            "0%:-100%:100%:1.235e+08%:9.223e+20%:"
        );
        assert_eq!(
            render(
                r#"{{ "-0.22222" | humanizePercentage }}:{{ "0.1234567" | humanizePercentage }}"#,
                0.0
            ),
            "-22.22%:12.35%"
        );
        assert_eq!(each("humanizePercentage", &["0.1234"]), "12.34%:");
        assert!(try_render(r#"{{ "one" | humanizePercentage }}"#, 0.0).is_err());
    }

    #[test]
    fn humanize_timestamp_and_to_time() {
        assert_eq!(
            each(
                "humanizeTimestamp",
                &["0", "-1", "1", "1234567", "9223372036"]
            ),
            "1970-01-01 00:00:00 +0000 UTC:1969-12-31 23:59:59 +0000 UTC:\
             1970-01-01 00:00:01 +0000 UTC:1970-01-15 06:56:07 +0000 UTC:\
             2262-04-11 23:47:16 +0000 UTC:"
        );
        assert_eq!(
            render("{{ 1435065584.128 | humanizeTimestamp }}", 0.0),
            "2015-06-23 13:19:44.128 +0000 UTC"
        );
        assert_eq!(
            render(r#"{{ "1435065584.128" | humanizeTimestamp }}"#, 0.0),
            "2015-06-23 13:19:44.128 +0000 UTC"
        );
        assert_eq!(
            render("{{ 1435065584.128 | toTime }}", 0.0),
            "2015-06-23 13:19:44.128 +0000 UTC"
        );
        let e = try_render("{{ humanizeTimestamp -9223372036854775807 }}", 0.0).unwrap_err();
        assert!(
            e.contains(
                "error calling humanizeTimestamp: -9.223372036854776e+18 cannot be represented \
                 as a nanoseconds timestamp since it overflows int64"
            ),
            "{e}"
        );
    }

    #[test]
    fn string_functions() {
        assert_eq!(render("{{ \"aa bb CC\" | title }}", 0.0), "Aa Bb CC");
        assert_eq!(render("{{ \"aa bb CC\" | toUpper }}", 0.0), "AA BB CC");
        assert_eq!(render("{{ \"aA bB CC\" | toLower }}", 0.0), "aa bb cc");
        assert_eq!(
            render("{{ match \"a+\" \"aa\" }} {{ match \"a+\" \"b\" }}", 0.0),
            "true false"
        );
        assert_eq!(
            render("{{ reReplaceAll \"(a)b\" \"x$1\" \"ab\" }}", 0.0),
            "xa"
        );
        assert_eq!(render("{{ \"<b>\" | safeHtml }}", 0.0), "<b>");
        assert_eq!(render("{{ \"<b>\" }}", 0.0), "<b>");
        assert_eq!(
            render("{{ printf \"%0.2f\" (parseDuration \"1h2m10ms\") }}", 0.0),
            "3720.01"
        );
        assert_eq!(render("{{ $labels.model_name | title }}", 0.0), "Fraud");
        assert!(try_render("{{ match \"(\" \"x\" }}", 0.0).is_err());
    }

    #[test]
    fn strip_port_and_domain() {
        for (input, port, domain) in [
            ("foo.example.com", "foo.example.com", "foo"),
            ("foo.example.com:12345", "foo.example.com", "foo:12345"),
            ("192.0.2.1", "192.0.2.1", "192.0.2.1"),
            ("192.0.2.1:12345", "192.0.2.1", "192.0.2.1:12345"),
            ("2001:0DB8::1", "2001:0DB8::1", "2001:0DB8::1"),
            (
                "[2001:0DB8::1]:12345",
                "2001:0DB8::1",
                "[2001:0DB8::1]:12345",
            ),
            (
                "[2001:0DB8::1]::12345",
                "[2001:0DB8::1]::12345",
                "[2001:0DB8::1]::12345",
            ),
        ] {
            assert_eq!(
                render(&format!("{{{{ {input:?} | stripPort }}}}"), 0.0),
                port
            );
            assert_eq!(
                render(&format!("{{{{ {input:?} | stripDomain }}}}"), 0.0),
                domain
            );
        }
    }

    #[test]
    fn bad_templates_are_refused() {
        assert!(check("{{ $labels.x ").is_err());
        assert!(check("{{ if }}").is_err());
        assert!(check("{{").is_err());
        assert!(check("{{ nosuchfunc 1 }}").is_err());
        assert!(check("{{ $labels.x }}").is_ok());
    }
}
