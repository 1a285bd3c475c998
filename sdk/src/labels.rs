//! A series' labels in Prometheus series notation, parsed only when asked. Pure string
//! handling: never imports the bindings.
//!
//! # Format
//!
//! The host sends each series' labels as one string, the way Prometheus prints a
//! series:
//!
//! ```text
//! {__name__="prediction_score",model_name="fraud",quote="say \"hi\""}
//! ```
//!
//! - The metric name is the `__name__` label; names are sorted.
//! - Values are double-quoted and escaped as in Go: `\\`, `\"`, `\n` (and, when
//!   reading, `\t` and `\r`; any other escaped character stands for itself).
//! - Names are bare (`[a-zA-Z_][a-zA-Z0-9_]*`) or, for UTF-8 names, quoted like values.
//!
//! When reading, the parser also accepts what Prometheus itself prints: a metric name
//! before the brace (`up{job="x"}`, read as `__name__="up"`), spaces after commas and
//! a trailing comma. `{}` and the empty string are an empty label set.
//!
//! Parsing is lazy: a detector that never looks at labels never pays for them, and
//! one that does pays a scan of one short string, with no allocation unless a value
//! contains an escape.

use std::borrow::Cow;
use std::fmt;

/// The labels of one series, a view over the notation string (see the module docs).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Labels<'a> {
    raw: &'a str,
}

impl<'a> Labels<'a> {
    /// A view over a label string in Prometheus notation.
    pub const fn new(raw: &'a str) -> Self {
        Self { raw }
    }

    /// The notation string as the host sent it.
    pub const fn as_str(&self) -> &'a str {
        self.raw
    }

    /// The value of label `name`, unescaped.
    pub fn get(&self, name: &str) -> Option<Cow<'a, str>> {
        self.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The metric name (the `__name__` label).
    pub fn metric_name(&self) -> Option<Cow<'a, str>> {
        self.get("__name__")
    }

    /// Every `(name, value)` pair in order, unescaped.
    ///
    /// Iteration stops at the first malformed pair; [`Labels::is_well_formed`] tells
    /// whether that can happen. The host only sends well-formed strings.
    pub fn iter(&self) -> LabelIter<'a> {
        LabelIter::new(self.raw)
    }

    /// Whether the whole string parses.
    pub fn is_well_formed(&self) -> bool {
        let mut it = self.iter();
        while it.next().is_some() {}
        !it.malformed
    }

    /// The pairs as owned strings.
    pub fn to_vec(&self) -> Vec<(String, String)> {
        self.iter()
            .map(|(n, v)| (n.into_owned(), v.into_owned()))
            .collect()
    }
}

impl fmt::Debug for Labels<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.raw)
    }
}

impl fmt::Display for Labels<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.raw)
    }
}

impl<'a> IntoIterator for &Labels<'a> {
    type Item = (Cow<'a, str>, Cow<'a, str>);
    type IntoIter = LabelIter<'a>;

    fn into_iter(self) -> LabelIter<'a> {
        self.iter()
    }
}

/// Iterator over the pairs of a [`Labels`].
#[derive(Debug, Clone)]
pub struct LabelIter<'a> {
    rest: &'a str,
    /// A metric name written before the brace, still to be yielded as `__name__`.
    metric_name: Option<&'a str>,
    done: bool,
    malformed: bool,
}

impl<'a> LabelIter<'a> {
    fn new(raw: &'a str) -> Self {
        let raw = raw.trim();
        let mut it = Self {
            rest: "",
            metric_name: None,
            done: false,
            malformed: false,
        };
        match raw.find('{') {
            Some(0) => it.rest = &raw[1..],
            Some(brace) => {
                it.metric_name = Some(raw[..brace].trim_end());
                it.rest = &raw[brace + 1..];
            }
            None if raw.is_empty() => it.done = true,
            None => {
                // A bare metric name with no labels at all.
                it.metric_name = Some(raw);
                it.done = true;
            }
        }
        it
    }

    fn fail(&mut self) -> Option<(Cow<'a, str>, Cow<'a, str>)> {
        self.done = true;
        self.malformed = true;
        None
    }
}

impl<'a> Iterator for LabelIter<'a> {
    type Item = (Cow<'a, str>, Cow<'a, str>);

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(name) = self.metric_name.take() {
            return Some((Cow::Borrowed("__name__"), Cow::Borrowed(name)));
        }
        if self.done {
            return None;
        }
        let rest = self.rest.trim_start();
        if let Some(after) = rest.strip_prefix('}') {
            self.done = true;
            if !after.trim().is_empty() {
                self.malformed = true;
            }
            return None;
        }
        let (name, rest) = if rest.starts_with('"') {
            match quoted(rest) {
                Some(split) => split,
                None => return self.fail(),
            }
        } else {
            match rest.find('=') {
                Some(eq) if eq > 0 => (Cow::Borrowed(rest[..eq].trim_end()), &rest[eq..]),
                _ => return self.fail(),
            }
        };
        let Some(rest) = rest.trim_start().strip_prefix('=') else {
            return self.fail();
        };
        let Some((value, rest)) = quoted(rest.trim_start()) else {
            return self.fail();
        };
        let rest = rest.trim_start();
        self.rest = if let Some(after_comma) = rest.strip_prefix(',') {
            after_comma
        } else if rest.starts_with('}') {
            rest
        } else {
            return self.fail();
        };
        Some((name, value))
    }
}

/// Splits a leading double-quoted, Go-escaped string off `s`: `(unescaped, rest)`.
fn quoted(s: &str) -> Option<(Cow<'_, str>, &str)> {
    let body = s.strip_prefix('"')?;
    let bytes = body.as_bytes();
    let mut escaped = false;
    let mut i = 0;
    // Quotes and backslashes are ASCII, so every index this loop stops at is a char
    // boundary and the slices below cannot panic.
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let content = &body[..i];
                let rest = &body[i + 1..];
                let value = if escaped {
                    Cow::Owned(unescape(content))
                } else {
                    Cow::Borrowed(content)
                };
                return Some((value, rest));
            }
            b'\\' => {
                escaped = true;
                i += 2;
            }
            _ => i += 1,
        }
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// Formats label pairs in the notation the host uses: sorted by name, values escaped,
/// names quoted when they are not plain identifiers.
///
/// ```
/// let s = klaxon_sdk::labels::format(&[("model", "fraud"), ("__name__", "score")]);
/// assert_eq!(s, r#"{__name__="score",model="fraud"}"#);
/// ```
pub fn format<N: AsRef<str>, V: AsRef<str>>(pairs: &[(N, V)]) -> String {
    let mut sorted: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(n, v)| (n.as_ref(), v.as_ref()))
        .collect();
    sorted.sort_unstable();
    let mut out = String::from("{");
    for (i, (name, value)) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if is_identifier(name) {
            out.push_str(name);
        } else {
            push_quoted(&mut out, name);
        }
        out.push('=');
        push_quoted(&mut out, value);
    }
    out.push('}');
    out
}

fn is_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn push_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(raw: &str) -> Vec<(String, String)> {
        Labels::new(raw).to_vec()
    }

    fn owned(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_host_notation() {
        let l = Labels::new(r#"{__name__="x",model_name="fraud"}"#);
        assert_eq!(l.metric_name().as_deref(), Some("x"));
        assert_eq!(l.get("model_name").as_deref(), Some("fraud"));
        assert_eq!(l.get("missing"), None);
        assert!(l.is_well_formed());
        assert!(matches!(l.get("model_name"), Some(Cow::Borrowed(_))));
    }

    #[test]
    fn unescapes_go_escapes() {
        let l = Labels::new(r#"{a="say \"hi\"",b="back\\slash",c="two\nlines",d="tab\tx"}"#);
        assert_eq!(l.get("a").as_deref(), Some(r#"say "hi""#));
        assert_eq!(l.get("b").as_deref(), Some(r"back\slash"));
        assert_eq!(l.get("c").as_deref(), Some("two\nlines"));
        assert_eq!(l.get("d").as_deref(), Some("tab\tx"));
    }

    #[test]
    fn accepts_prometheus_print_style() {
        assert_eq!(
            pairs(r#"up{job="api", instance="a:1",}"#),
            owned(&[("__name__", "up"), ("job", "api"), ("instance", "a:1")])
        );
        assert_eq!(pairs("up"), owned(&[("__name__", "up")]));
        assert!(pairs("{}").is_empty());
        assert!(pairs("").is_empty());
    }

    #[test]
    fn quoted_utf8_names() {
        let l = Labels::new(r#"{"service.name"="api","é"="ü"}"#);
        assert_eq!(l.get("service.name").as_deref(), Some("api"));
        assert_eq!(l.get("é").as_deref(), Some("ü"));
    }

    #[test]
    fn malformed_input_stops_without_panicking() {
        for raw in [
            r#"{a="unterminated"#,
            r#"{a=unquoted}"#,
            r#"{="x"}"#,
            r#"{a="1" b="2"}"#,
            r#"{a="1"} trailing"#,
            r#"{a"#,
            "{\"\\",
            r#"{a="\"#,
        ] {
            let l = Labels::new(raw);
            assert!(!l.is_well_formed(), "{raw}");
            let _ = l.to_vec();
        }
        // Pairs before the damage are still readable.
        assert_eq!(pairs(r#"{a="1",b=2}"#), owned(&[("a", "1")]));
    }

    #[test]
    fn format_round_trips() {
        let original = owned(&[
            ("z", "last"),
            ("__name__", "m"),
            ("q", "a \"quoted\" \\ value\nwith newline"),
            ("dotted.name", "ü"),
        ]);
        let text = format(&original);
        assert!(text.starts_with(r#"{__name__="m",""#), "{text}");
        let mut expected = original.clone();
        expected.sort();
        assert_eq!(pairs(&text), expected);
    }
}
