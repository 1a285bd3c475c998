//! Label matchers (`=`, `!=`, `=~`, `!~`) with Prometheus semantics, and the
//! parser for series selectors such as `metric{label="value"}`.

use std::fmt;

use promql_parser::label::MatchOp as PromOp;
use promql_parser::parser::Expr;
use regex::Regex;

use super::labels::METRIC_NAME;

/// How a [`Matcher`] compares a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`, fully anchored
    RegexMatch,
    /// `!~`, fully anchored
    RegexNoMatch,
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::RegexMatch => "=~",
            MatchOp::RegexNoMatch => "!~",
        })
    }
}

/// One condition on one label. A series lacking the label is treated as having
/// it with the empty value, so e.g. `env!="prod"` and `env=~"dev|"` also select
/// series with no `env` label (Prometheus semantics).
#[derive(Debug, Clone)]
pub struct Matcher {
    name: String,
    op: MatchOp,
    value: String,
    /// `^(?:value)$`, for the regex operators.
    regex: Option<Regex>,
    matches_empty: bool,
}

/// Why a selector or matcher was refused.
#[derive(Debug, thiserror::Error)]
pub enum SelectorError {
    /// PromQL syntax error, in promql-parser's words.
    #[error("invalid selector {selector:?}: {message}")]
    Parse { selector: String, message: String },
    /// Valid PromQL, but not a plain series selector.
    #[error(
        "expected a series selector like metric{{label=\"value\"}}, got {found} in {selector:?}"
    )]
    NotASelector {
        selector: String,
        found: &'static str,
    },
    /// A selector feature Klaxon does not evaluate here.
    #[error("{feature} is not supported in a series selector: {selector:?}")]
    Unsupported {
        selector: String,
        feature: &'static str,
    },
    /// The value of `=~` / `!~` is not a valid regular expression.
    #[error("invalid regular expression in matcher {name}{op}{pattern:?}: {source}")]
    Regex {
        name: String,
        op: MatchOp,
        pattern: String,
        #[source]
        source: Box<regex::Error>,
    },
}

impl Matcher {
    /// A matcher; for the regex operators `value` is compiled anchored as
    /// `^(?:value)$`.
    pub fn new(
        op: MatchOp,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Matcher, SelectorError> {
        let (name, value) = (name.into(), value.into());
        let regex = match op {
            MatchOp::Equal | MatchOp::NotEqual => None,
            MatchOp::RegexMatch | MatchOp::RegexNoMatch => {
                match Regex::new(&format!("^(?:{value})$")) {
                    Ok(re) => Some(re),
                    Err(e) => {
                        return Err(SelectorError::Regex {
                            name,
                            op,
                            pattern: value,
                            source: Box::new(e),
                        });
                    }
                }
            }
        };
        Ok(Matcher::assemble(name, op, value, regex))
    }

    /// `name="value"`.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Matcher {
        Matcher::assemble(name.into(), MatchOp::Equal, value.into(), None)
    }

    /// `name!="value"`.
    pub fn not_equal(name: impl Into<String>, value: impl Into<String>) -> Matcher {
        Matcher::assemble(name.into(), MatchOp::NotEqual, value.into(), None)
    }

    /// The same matcher as parsed by promql-parser, reusing its compiled
    /// (already anchored) regex.
    pub fn from_promql(m: &promql_parser::label::Matcher) -> Matcher {
        let (op, regex) = match &m.op {
            PromOp::Equal => (MatchOp::Equal, None),
            PromOp::NotEqual => (MatchOp::NotEqual, None),
            PromOp::Re(re) => (MatchOp::RegexMatch, Some(re.clone())),
            PromOp::NotRe(re) => (MatchOp::RegexNoMatch, Some(re.clone())),
        };
        Matcher::assemble(m.name.clone(), op, m.value.clone(), regex)
    }

    fn assemble(name: String, op: MatchOp, value: String, regex: Option<Regex>) -> Matcher {
        let mut m = Matcher {
            name,
            op,
            value,
            regex,
            matches_empty: false,
        };
        m.matches_empty = m.matches("");
        m
    }

    /// The label name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The operator.
    pub fn op(&self) -> MatchOp {
        self.op
    }

    /// The value or regex source as written (unanchored).
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether a label value (empty for a missing label) satisfies the matcher.
    pub fn matches(&self, value: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => self.value == value,
            (MatchOp::NotEqual, _) => self.value != value,
            (MatchOp::RegexMatch, Some(re)) => re.is_match(value),
            (MatchOp::RegexNoMatch, Some(re)) => !re.is_match(value),
            // Unreachable by construction: regex ops always carry a regex.
            (MatchOp::RegexMatch | MatchOp::RegexNoMatch, None) => false,
        }
    }

    /// Whether the matcher also selects series that lack the label.
    pub fn matches_empty(&self) -> bool {
        self.matches_empty
    }
}

/// `name="value"`, with the value escaped as in PromQL.
impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}\"", self.name, self.op)?;
        for c in self.value.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                c => fmt::Write::write_char(f, c)?,
            }
        }
        f.write_str("\"")
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Matcher) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Eq for Matcher {}

/// Parses a series selector (`metric`, `metric{a="b", c=~"d.*"}`,
/// `{__name__=~"x_.*"}`) into matchers; the metric name becomes a
/// `__name__="metric"` matcher. Anything else (functions, range selectors,
/// `offset`, `@`, `or` inside braces) is refused.
pub fn parse_selector(selector: &str) -> Result<Vec<Matcher>, SelectorError> {
    let expr = promql_parser::parser::parse(selector).map_err(|message| SelectorError::Parse {
        selector: selector.to_owned(),
        message,
    })?;
    let mut expr = &expr;
    while let Expr::Paren(p) = expr {
        expr = &p.expr;
    }
    let unsupported = |feature| {
        Err(SelectorError::Unsupported {
            selector: selector.to_owned(),
            feature,
        })
    };
    let vs = match expr {
        Expr::VectorSelector(vs) => vs,
        other => {
            let found = match other {
                Expr::Aggregate(_) => "an aggregation",
                Expr::Unary(_) | Expr::Binary(_) => "an operator expression",
                Expr::Subquery(_) => "a subquery",
                Expr::NumberLiteral(_) => "a number",
                Expr::StringLiteral(_) => "a string",
                Expr::MatrixSelector(_) => {
                    "a range selector (drop the [duration]; the rule sets the window)"
                }
                Expr::Call(_) => "a function call",
                _ => "an unsupported expression",
            };
            return Err(SelectorError::NotASelector {
                selector: selector.to_owned(),
                found,
            });
        }
    };
    if !vs.matchers.or_matchers.is_empty() {
        return unsupported("`or` between matchers");
    }
    if vs.offset.is_some() {
        return unsupported("`offset`");
    }
    if vs.at.is_some() {
        return unsupported("the `@` modifier");
    }
    let mut matchers = Vec::with_capacity(vs.matchers.matchers.len() + 1);
    if let Some(name) = &vs.name {
        matchers.push(Matcher::equal(METRIC_NAME, name.as_str()));
    }
    matchers.extend(vs.matchers.matchers.iter().map(Matcher::from_promql));
    Ok(matchers)
}
