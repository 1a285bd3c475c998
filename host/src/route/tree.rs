//! The routing tree with Alertmanager's semantics (`dispatch/route.go`,
//! `config/config.go`): building it from `route` config with inheritance of
//! `receiver`, `group_by` and timers, validating it with Alertmanager's
//! messages, matching an alert's labels to routes (depth-first, first
//! matching child wins unless it has `continue`), each route's key for group
//! keys, and printing the tree as `amtool config routes show` does.
//!
//! Also owns Alertmanager's matcher syntax (`pkg/labels/parse.go`), which
//! differs from PromQL's (unquoted values, a list of matchers in one string).
//! Pure data and functions: no tasks, no I/O. Never imports rules or notify.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::time::Duration;

use crate::config::{
    RouteConfig, default_group_interval, default_group_wait, default_repeat_interval,
};
use crate::store::{Labels, MatchOp, Matcher, is_label_name};

/// A route's options after inheritance (Alertmanager's `RouteOpts`).
#[derive(Debug, Clone, PartialEq)]
pub struct RouteOpts {
    pub receiver: String,
    /// Labels to group by, in config order (without `...`).
    pub group_by: Vec<String>,
    /// `group_by: ['...']`: group by every label.
    pub group_by_all: bool,
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
    /// Names of the route's own `mute_time_intervals` (never inherited).
    pub mute_time_intervals: Vec<String>,
    /// Names of the route's own `active_time_intervals` (never inherited).
    pub active_time_intervals: Vec<String>,
}

impl RouteOpts {
    /// The labels an alert is grouped by on this route.
    pub fn group_labels(&self, labels: &Labels) -> Labels {
        if self.group_by_all {
            return labels.clone();
        }
        Labels::new(
            labels
                .iter()
                .filter(|(k, _)| self.group_by.iter().any(|g| g == k)),
        )
    }
}

/// One node of the tree.
#[derive(Debug, Clone)]
pub struct RouteNode {
    /// Index of the parent node, `None` for the root.
    pub parent: Option<usize>,
    /// Indices of the child nodes, in config order.
    pub children: Vec<usize>,
    /// `match`, `match_re` and `matchers`, sorted as Alertmanager sorts them.
    pub matchers: Vec<Matcher>,
    pub continue_: bool,
    pub opts: RouteOpts,
    /// Alertmanager's `Route.Key()`: the parents' matchers and this route's,
    /// e.g. `{}/{severity="critical"}`.
    pub key: String,
}

impl RouteNode {
    /// Whether every matcher accepts the labels (a missing label is "").
    pub fn matches(&self, labels: &Labels) -> bool {
        self.matchers
            .iter()
            .all(|m| m.matches(labels.get(m.name()).unwrap_or("")))
    }
}

/// The routing tree; node 0 is the root.
#[derive(Debug, Clone)]
pub struct RouteTree {
    nodes: Vec<RouteNode>,
}

/// Why a routing tree was refused, and where: the route's position (child
/// indices from the root) and the field, so the line can be found.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason}")]
pub struct RouteError {
    /// Child indices from the root to the offending route.
    pub path: Vec<usize>,
    /// The offending field of that route, when there is one.
    pub field: Option<&'static str>,
    /// Text after the field's line that pins the line down (a matcher).
    pub needle: Option<String>,
    pub reason: String,
}

impl RouteError {
    fn new(path: &[usize], field: Option<&'static str>, reason: String) -> Self {
        Self {
            path: path.to_vec(),
            field,
            needle: None,
            reason,
        }
    }

    /// The 1-based line of the error in the config `text` (block-style YAML),
    /// 0 when the route cannot be found.
    pub fn line(&self, text: &str) -> usize {
        locate_route(text, &self.path, self.field, self.needle.as_deref())
    }
}

impl RouteTree {
    /// Builds and validates the tree. `receivers` are the defined receiver
    /// names, `time_intervals` the defined time interval names; every
    /// route's receiver and time intervals must be among them.
    pub fn build(
        root: &RouteConfig,
        receivers: &HashSet<&str>,
        time_intervals: &HashSet<&str>,
    ) -> Result<Self, RouteError> {
        let top: &[usize] = &[];
        if root.receiver.as_deref().unwrap_or("").is_empty() {
            return Err(RouteError::new(
                top,
                None,
                "root route must specify a default receiver".into(),
            ));
        }
        for (field, set) in [
            ("matchers", !root.matchers.is_empty()),
            ("match", !root.match_.is_empty()),
            ("match_re", !root.match_re.is_empty()),
        ] {
            if set {
                return Err(RouteError::new(
                    top,
                    Some(field),
                    "root route must not have any matchers".into(),
                ));
            }
        }
        for (field, set, what) in [
            (
                "mute_time_intervals",
                !root.mute_time_intervals.is_empty(),
                "mute",
            ),
            (
                "active_time_intervals",
                !root.active_time_intervals.is_empty(),
                "active",
            ),
        ] {
            if set {
                return Err(RouteError::new(
                    top,
                    Some(field),
                    format!("root route must not have any {what} time intervals"),
                ));
            }
        }
        if root.continue_ {
            return Err(RouteError::new(
                top,
                Some("continue"),
                "cannot have continue in root route".into(),
            ));
        }
        let defaults = RouteOpts {
            receiver: String::new(),
            group_by: Vec::new(),
            group_by_all: false,
            group_wait: default_group_wait(),
            group_interval: default_group_interval(),
            repeat_interval: default_repeat_interval(),
            mute_time_intervals: Vec::new(),
            active_time_intervals: Vec::new(),
        };
        let mut tree = RouteTree { nodes: Vec::new() };
        let mut path = Vec::new();
        let names = Names {
            receivers,
            time_intervals,
        };
        tree.add(root, None, &defaults, &names, &mut path)?;
        Ok(tree)
    }

    fn add(
        &mut self,
        cr: &RouteConfig,
        parent: Option<usize>,
        inherited: &RouteOpts,
        names: &Names,
        path: &mut Vec<usize>,
    ) -> Result<usize, RouteError> {
        let fail = |field, reason: String| RouteError::new(path, Some(field), reason);
        // config.go: Route.UnmarshalYAML.
        for name in cr.match_.keys() {
            if !is_label_name(name) {
                return Err(fail("match", format!("invalid label name {name:?}")));
            }
        }
        for name in cr.match_re.keys() {
            if !is_label_name(name) {
                return Err(fail("match_re", format!("invalid label name {name:?}")));
            }
        }
        let mut group_by = Vec::new();
        let mut group_by_all = false;
        for l in cr.group_by.iter().flatten() {
            if l == "..." {
                group_by_all = true;
            } else if !is_label_name(l) {
                return Err(fail(
                    "group_by",
                    format!("invalid label name {l:?} in group_by list"),
                ));
            } else {
                group_by.push(l.to_string());
            }
        }
        if !group_by.is_empty() && group_by_all {
            return Err(fail(
                "group_by",
                "cannot have wildcard group_by (`...`) and other other labels at the same time"
                    .into(),
            ));
        }
        let mut seen = HashSet::new();
        for l in &group_by {
            if !seen.insert(l) {
                return Err(fail(
                    "group_by",
                    format!("duplicated label {l:?} in group_by"),
                ));
            }
        }
        if cr.group_interval == Some(Duration::ZERO) {
            return Err(fail(
                "group_interval",
                "group_interval cannot be zero".into(),
            ));
        }
        if cr.repeat_interval == Some(Duration::ZERO) {
            return Err(fail(
                "repeat_interval",
                "repeat_interval cannot be zero".into(),
            ));
        }
        if let Some(r) = &cr.receiver
            && !r.is_empty()
            && !names.receivers.contains(r.as_str())
        {
            return Err(fail(
                "receiver",
                format!("undefined receiver {r:?} used in route"),
            ));
        }
        // config.go: checkTimeInterval.
        for (field, list) in [
            ("active_time_intervals", &cr.active_time_intervals),
            ("mute_time_intervals", &cr.mute_time_intervals),
        ] {
            if let Some(ti) = list
                .iter()
                .find(|ti| !names.time_intervals.contains(ti.as_str()))
            {
                return Err(RouteError {
                    needle: Some(ti.clone()),
                    ..fail(
                        field,
                        format!("undefined time interval {ti:?} used in route"),
                    )
                });
            }
        }

        // dispatch/route.go: NewRoute.
        let mut opts = inherited.clone();
        if let Some(r) = cr.receiver.as_ref().filter(|r| !r.is_empty()) {
            opts.receiver = r.clone();
        }
        // Alertmanager keeps the parent's grouping when the list names no
        // label (`[]` included); `['...']` alone switches to all labels.
        if !group_by.is_empty() {
            opts.group_by = group_by;
            opts.group_by_all = false;
        } else if group_by_all {
            opts.group_by_all = true;
        }
        opts.group_wait = cr.group_wait.unwrap_or(opts.group_wait);
        opts.group_interval = cr.group_interval.unwrap_or(opts.group_interval);
        opts.repeat_interval = cr.repeat_interval.unwrap_or(opts.repeat_interval);
        // dispatch/route.go sets these from the route's own config: a child
        // does not inherit its parent's mute or active time intervals.
        opts.mute_time_intervals = cr.mute_time_intervals.clone();
        opts.active_time_intervals = cr.active_time_intervals.clone();

        let mut matchers = Vec::new();
        for (name, value) in &cr.match_ {
            matchers.push(Matcher::equal(name.clone(), value.clone()));
        }
        for (name, value) in &cr.match_re {
            // Alertmanager anchors legacy regexes in the matcher's value
            // itself, so they show (and form group keys) as `^(?:v)$`.
            let anchored = format!("^(?:{value})$");
            let m = Matcher::new(MatchOp::RegexMatch, name.clone(), anchored).map_err(|e| {
                RouteError {
                    needle: Some(name.clone()),
                    ..fail("match_re", e.to_string())
                }
            })?;
            matchers.push(m);
        }
        for line in &cr.matchers {
            let parsed = parse_matchers(line).map_err(|reason| RouteError {
                needle: Some(line.to_string()),
                ..fail("matchers", reason)
            })?;
            matchers.extend(parsed);
        }
        matchers.sort_by(|a, b| {
            (a.name(), a.value(), op_rank(a.op())).cmp(&(b.name(), b.value(), op_rank(b.op())))
        });
        let own = matchers_string(&matchers);
        let key = match parent {
            Some(p) => format!("{}/{own}", self.nodes[p].key),
            None => own,
        };
        let id = self.nodes.len();
        self.nodes.push(RouteNode {
            parent,
            children: Vec::new(),
            matchers,
            continue_: cr.continue_,
            opts: opts.clone(),
            key,
        });
        for (i, child) in cr.routes.iter().enumerate() {
            path.push(i);
            let c = self.add(child, Some(id), &opts, names, path)?;
            path.pop();
            self.nodes[id].children.push(c);
        }
        Ok(id)
    }

    /// A tree of one root route with these options (no matchers, no children).
    pub fn single(opts: RouteOpts) -> Self {
        RouteTree {
            nodes: vec![RouteNode {
                parent: None,
                children: Vec::new(),
                matchers: Vec::new(),
                continue_: false,
                opts,
                key: "{}".into(),
            }],
        }
    }

    /// Every node, indexed by node id; the root is 0.
    pub fn nodes(&self) -> &[RouteNode] {
        &self.nodes
    }

    /// The node with this id.
    pub fn node(&self, id: usize) -> &RouteNode {
        &self.nodes[id]
    }

    /// The routes an alert with these labels goes to, in tree order
    /// (Alertmanager's `Route.Match` from the root).
    pub fn match_labels(&self, labels: &Labels) -> Vec<usize> {
        let mut out = Vec::new();
        self.match_from(0, labels, &mut out);
        out
    }

    fn match_from(&self, id: usize, labels: &Labels, out: &mut Vec<usize>) -> bool {
        let node = &self.nodes[id];
        if !node.matches(labels) {
            return false;
        }
        let before = out.len();
        for &child in &node.children {
            if self.match_from(child, labels, out) && !self.nodes[child].continue_ {
                break;
            }
        }
        if out.len() == before {
            out.push(id);
        }
        true
    }

    /// The receivers of the matching routes, in tree order (`amtool config
    /// routes test`).
    pub fn receivers_for(&self, labels: &Labels) -> Vec<&str> {
        self.match_labels(labels)
            .into_iter()
            .map(|id| self.nodes[id].opts.receiver.as_str())
            .collect()
    }

    /// The whole tree as `amtool config routes show` prints it (after its
    /// `Routing tree:` line).
    pub fn render(&self) -> String {
        let mut out = String::from(".\n");
        self.render_node(0, &mut Vec::new(), true, &mut out, &|n| slug(n, true, true));
        out
    }

    /// The routes an alert's labels walk through (`amtool config routes test
    /// --tree`): the final routes show their receiver.
    pub fn render_matching(&self, labels: &Labels) -> String {
        let mut out = String::from(".\n");
        self.render_matching_node(0, labels, &mut Vec::new(), true, &mut out);
        out
    }

    fn render_node(
        &self,
        id: usize,
        ended: &mut Vec<bool>,
        last: bool,
        out: &mut String,
        label: &dyn Fn(&RouteNode) -> String,
    ) {
        write_branch(out, ended, last, &label(&self.nodes[id]));
        ended.push(last);
        let children = &self.nodes[id].children;
        for (i, &c) in children.iter().enumerate() {
            self.render_node(c, ended, i + 1 == children.len(), out, label);
        }
        ended.pop();
    }

    fn render_matching_node(
        &self,
        id: usize,
        labels: &Labels,
        ended: &mut Vec<bool>,
        last: bool,
        out: &mut String,
    ) {
        let node = &self.nodes[id];
        let mut matched = Vec::new();
        for &c in &node.children {
            if self.nodes[c].matches(labels) {
                matched.push(c);
                if !self.nodes[c].continue_ {
                    break;
                }
            }
        }
        write_branch(out, ended, last, &slug(node, false, matched.is_empty()));
        ended.push(last);
        for (i, &c) in matched.iter().enumerate() {
            self.render_matching_node(c, labels, ended, i + 1 == matched.len(), out);
        }
        ended.pop();
    }
}

/// The names a route may refer to.
struct Names<'a> {
    receivers: &'a HashSet<&'a str>,
    time_intervals: &'a HashSet<&'a str>,
}

/// One treeprint line: `│   ` / `    ` per ancestor level, then the edge.
fn write_branch(out: &mut String, ended: &[bool], last: bool, text: &str) {
    for &e in ended {
        out.push_str(if e { "    " } else { "│   " });
    }
    let _ = writeln!(out, "{} {text}", if last { "└──" } else { "├──" });
}

/// amtool's `getRouteTreeSlug`.
fn slug(node: &RouteNode, show_continue: bool, show_receiver: bool) -> String {
    let mut s = if node.matchers.is_empty() {
        "default-route".to_string()
    } else {
        matchers_string(&node.matchers)
    };
    if node.continue_ && show_continue {
        s.push_str("  continue: true");
    }
    if show_receiver {
        s.push_str("  receiver: ");
        s.push_str(&node.opts.receiver);
        if node.opts.group_by_all {
            s.push_str("  grouping: [...]");
        } else if !node.opts.group_by.is_empty() {
            let _ = write!(s, "  grouping: [{}]", node.opts.group_by.join(","));
        }
        // Not in amtool's output, which omits them; printed only when set.
        if !node.opts.mute_time_intervals.is_empty() {
            let _ = write!(
                s,
                "  mute_time_intervals: [{}]",
                node.opts.mute_time_intervals.join(",")
            );
        }
        if !node.opts.active_time_intervals.is_empty() {
            let _ = write!(
                s,
                "  active_time_intervals: [{}]",
                node.opts.active_time_intervals.join(",")
            );
        }
    }
    s
}

/// Alertmanager's `Matchers.String()`: `{a="b",c=~"d"}`.
fn matchers_string(matchers: &[Matcher]) -> String {
    let inner: Vec<String> = matchers.iter().map(ToString::to_string).collect();
    format!("{{{}}}", inner.join(","))
}

/// Alertmanager's `MatchType` order, used to sort matchers.
fn op_rank(op: MatchOp) -> u8 {
    match op {
        MatchOp::Equal => 0,
        MatchOp::NotEqual => 1,
        MatchOp::RegexMatch => 2,
        MatchOp::RegexNoMatch => 3,
    }
}

/// Alertmanager's `labels.ParseMatchers`: a comma-separated list of matchers,
/// optionally in braces; commas inside double quotes do not separate.
pub fn parse_matchers(s: &str) -> Result<Vec<Matcher>, String> {
    let s = s.strip_prefix('{').unwrap_or(s);
    let s = s.strip_suffix('}').unwrap_or(s);
    let mut tokens = Vec::new();
    let mut token = String::new();
    let (mut inside_quotes, mut escaped) = (false, false);
    for c in s.chars() {
        match c {
            ',' if !inside_quotes => {
                tokens.push(std::mem::take(&mut token));
                continue;
            }
            ',' => {}
            '"' => {
                if escaped {
                    escaped = false;
                } else {
                    inside_quotes = !inside_quotes;
                }
            }
            '\\' => escaped = !escaped,
            _ => escaped = false,
        }
        token.push(c);
    }
    let last = token.trim();
    if !last.is_empty() {
        tokens.push(last.to_string());
    }
    tokens
        .iter()
        .map(String::as_str)
        .map(parse_matcher)
        .collect()
}

/// Alertmanager's `labels.ParseMatcher`: `name op value`, the value
/// optionally double-quoted with OpenMetrics escapes (`\"`, `\n`, `\\`).
pub fn parse_matcher(s: &str) -> Result<Matcher, String> {
    let bad = || format!("bad matcher format: {s}");
    let t = s.trim_start();
    let name_len = t
        .char_indices()
        .find(|&(i, c)| {
            !(c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit()))
        })
        .map(|(i, _)| i)
        .unwrap_or(t.len());
    if name_len == 0 {
        return Err(bad());
    }
    let name = &t[..name_len];
    let rest = t[name_len..].trim_start();
    // `=~` before `=`, or the `~` would become part of the value.
    let (op, raw) = if let Some(r) = rest.strip_prefix("=~") {
        (MatchOp::RegexMatch, r)
    } else if let Some(r) = rest.strip_prefix("!=") {
        (MatchOp::NotEqual, r)
    } else if let Some(r) = rest.strip_prefix("!~") {
        (MatchOp::RegexNoMatch, r)
    } else if let Some(r) = rest.strip_prefix('=') {
        (MatchOp::Equal, r)
    } else {
        return Err(bad());
    };
    let raw = raw.trim();
    let unquoted_err = || format!("matcher value contains unescaped double quote: {raw}");
    let (body, mut expect_trailing_quote) = match raw.strip_prefix('"') {
        Some(b) => (b, true),
        None => (raw, false),
    };
    let mut value = String::with_capacity(body.len());
    let mut escaped = false;
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if escaped {
            escaped = false;
            match c {
                'n' => value.push('\n'),
                '"' | '\\' => value.push(c),
                other => {
                    // A spurious escape: the backslash is literal.
                    value.push('\\');
                    value.push(other);
                }
            }
            continue;
        }
        match c {
            '\\' if chars.peek().is_some() => escaped = true,
            '\\' => value.push('\\'),
            '"' => {
                if !expect_trailing_quote || chars.peek().is_some() {
                    return Err(unquoted_err());
                }
                expect_trailing_quote = false;
            }
            other => value.push(other),
        }
    }
    if expect_trailing_quote {
        return Err(unquoted_err());
    }
    Matcher::new(op, name, value).map_err(|e| e.to_string())
}

/// Finds the line of a route's field in block-style YAML: the top-level
/// `route:` mapping, then the `routes:` list items along `path`, then the
/// field's key within that route, then `needle` at or after it. Falls back to
/// the closest enclosing line found; 0 when there is no `route:` at all.
fn locate_route(text: &str, path: &[usize], field: Option<&str>, needle: Option<&str>) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    let content = |l: &str| {
        let t = l.trim_start();
        !t.is_empty() && !t.starts_with('#')
    };
    let indent = |l: &str| l.len() - l.trim_start().len();
    let Some(start) = lines.iter().position(|l| l.starts_with("route:")) else {
        return 0;
    };
    // A route: its first line, its lines' end (exclusive), and the column of its keys.
    let span = |first: usize, key_col: usize| -> usize {
        (first + 1..lines.len())
            .find(|&i| content(lines[i]) && indent(lines[i]) < key_col)
            .unwrap_or(lines.len())
    };
    let Some(root_key_col) = (start + 1..lines.len())
        .find(|&i| content(lines[i]))
        .map(|i| indent(lines[i]))
        .filter(|&c| c > 0)
    else {
        return start + 1;
    };
    let (mut first, mut key_col) = (start, root_key_col);
    let mut end = span(first, key_col);
    // The line holding `key:` at this route's key column.
    let find_key = |first: usize, end: usize, key_col: usize, key: &str| -> Option<usize> {
        (first..end).find(|&i| {
            let l = lines[i];
            let t = if i == first {
                // A list item's first line: `- key: v`.
                let after_dash = l.trim_start().strip_prefix("- ");
                match after_dash {
                    Some(rest) if l.len() - rest.trim_start().len() == key_col => rest.trim_start(),
                    _ => return false,
                }
            } else if indent(l) == key_col && !l.trim_start().starts_with("- ") {
                l.trim_start()
            } else {
                return false;
            };
            t.strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with(':'))
        })
    };
    for &idx in path {
        let Some(routes_line) = find_key(first, end, key_col, "routes") else {
            return first + 1;
        };
        let Some(dash_col) = (routes_line + 1..end)
            .find(|&i| content(lines[i]))
            .map(|i| indent(lines[i]))
        else {
            return routes_line + 1;
        };
        let items: Vec<usize> = (routes_line + 1..end)
            .filter(|&i| indent(lines[i]) == dash_col && lines[i].trim_start().starts_with("- "))
            .collect();
        let Some(&item) = items.get(idx) else {
            return routes_line + 1;
        };
        let after = &lines[item][dash_col + 2..];
        first = item;
        key_col = dash_col + 2 + (after.len() - after.trim_start().len());
        end = span(first, key_col).min(end);
    }
    let Some(field) = field else {
        return first + 1;
    };
    let Some(at) = find_key(first, end, key_col, field) else {
        return first + 1;
    };
    let norm = |s: &str| s.replace(['"', '\''], "");
    needle
        .map(norm)
        .and_then(|n| (at..end).find(|&i| norm(lines[i]).contains(&n)))
        .unwrap_or(at)
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(yaml: &str) -> Result<RouteTree, RouteError> {
        let route: RouteConfig = serde_norway::from_str(yaml).expect("route yaml");
        let receivers: HashSet<&str> = ["default", "pager", "mail", "ml", "db", "x"].into();
        let intervals: HashSet<&str> = ["weekends", "business-hours"].into();
        RouteTree::build(&route, &receivers, &intervals)
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::new(pairs.iter().copied())
    }

    const TREE: &str = r#"
receiver: default
group_by: [alertname]
group_wait: 10s
routes:
  - matchers: ['severity="critical"']
    receiver: pager
    group_by: [alertname, model_name]
    routes:
      - matchers: ['team=ml']
        group_wait: 1s
  - match: { team: db }
    receiver: db
    continue: true
  - match_re: { service: 'files|mail' }
    receiver: mail
    group_by: ['...']
  - matchers: ['model_name=~"fraud.*"', 'team!=ml']
    receiver: ml
    continue: true
    routes:
      - matchers: ['stage!~"dev|test"']
        receiver: x
        group_by: []
  - matchers: ['model_name=~"fraud.*"']
    receiver: ml
"#;

    /// Alertmanager's own routing cases, from `testdata/alertmanager_routes.yml`.
    #[test]
    fn alertmanager_routing_cases() {
        #[derive(serde::Deserialize)]
        struct File {
            cases: Vec<Case>,
        }
        #[derive(serde::Deserialize)]
        struct Case {
            name: String,
            tree: String,
            #[serde(default)]
            walk: Vec<String>,
            #[serde(default)]
            walk_group_by_all: Vec<bool>,
            expect: Vec<Expect>,
        }
        #[derive(serde::Deserialize)]
        struct Expect {
            labels: std::collections::BTreeMap<String, String>,
            routes: Vec<Matched>,
        }
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Matched {
            receiver: String,
            group_by: Vec<String>,
            all: bool,
            wait: String,
            interval: String,
            repeat: String,
            key: String,
        }
        let file: File = serde_norway::from_str(include_str!("testdata/alertmanager_routes.yml"))
            .expect("cases parse");
        for case in file.cases {
            let route: RouteConfig = serde_norway::from_str(&case.tree).expect("tree yaml");
            let names: Vec<String> = case
                .tree
                .lines()
                .filter_map(|l| l.trim().strip_prefix("receiver: "))
                .map(|r| r.trim_matches('\'').to_string())
                .collect();
            let receivers: HashSet<&str> = names.iter().map(String::as_str).collect();
            let t = RouteTree::build(&route, &receivers, &HashSet::new())
                .unwrap_or_else(|e| panic!("{}: {e}", case.name));
            if !case.walk.is_empty() {
                let walk: Vec<&str> = t.nodes().iter().map(|n| n.opts.receiver.as_str()).collect();
                assert_eq!(walk, case.walk, "{}: walk", case.name);
            }
            if !case.walk_group_by_all.is_empty() {
                let walk: Vec<bool> = t.nodes().iter().map(|n| n.opts.group_by_all).collect();
                assert_eq!(walk, case.walk_group_by_all, "{}: group_by_all", case.name);
            }
            for e in case.expect {
                let l = Labels::new(e.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                let got: Vec<Matched> = t
                    .match_labels(&l)
                    .into_iter()
                    .map(|id| {
                        let n = t.node(id);
                        let mut group_by = n.opts.group_by.clone();
                        group_by.sort();
                        Matched {
                            receiver: n.opts.receiver.clone(),
                            group_by,
                            all: n.opts.group_by_all,
                            wait: crate::duration::format(n.opts.group_wait),
                            interval: crate::duration::format(n.opts.group_interval),
                            repeat: crate::duration::format(n.opts.repeat_interval),
                            key: n.key.clone(),
                        }
                    })
                    .collect();
                assert_eq!(got, e.routes, "{}: {:?}", case.name, e.labels);
            }
        }
    }

    #[test]
    fn matching_follows_alertmanager_table() {
        let t = tree(TREE).unwrap();
        // (labels, receivers in order, route keys)
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], &'a [&'a str]);
        let cases: &[Case] = &[
            (&[("alertname", "A")], &["default"], &["{}"]),
            (
                &[("severity", "critical")],
                &["pager"],
                &["{}/{severity=\"critical\"}"],
            ),
            (
                &[("severity", "critical"), ("team", "ml")],
                &["pager"],
                &["{}/{severity=\"critical\"}/{team=\"ml\"}"],
            ),
            // `continue` on the db route: later siblings are tried too.
            (
                &[("team", "db"), ("service", "mail")],
                &["db", "mail"],
                &["{}/{team=\"db\"}", "{}/{service=~\"^(?:files|mail)$\"}"],
            ),
            // Continue route matched but no later sibling does.
            (&[("team", "db")], &["db"], &["{}/{team=\"db\"}"]),
            // First matching child without continue wins.
            (
                &[("severity", "critical"), ("team", "db")],
                &["pager"],
                &["{}/{severity=\"critical\"}"],
            ),
            // Nested child matches; the parent has continue, so the next
            // sibling matches too.
            (
                &[("model_name", "fraud-v2"), ("stage", "prod")],
                &["x", "ml"],
                &[
                    "{}/{model_name=~\"fraud.*\",team!=\"ml\"}/{stage!~\"dev|test\"}",
                    "{}/{model_name=~\"fraud.*\"}",
                ],
            ),
            // The child does not match: the parent itself is the match.
            (
                &[("model_name", "fraud-v2"), ("stage", "dev")],
                &["ml", "ml"],
                &[
                    "{}/{model_name=~\"fraud.*\",team!=\"ml\"}",
                    "{}/{model_name=~\"fraud.*\"}",
                ],
            ),
            // Regexes are anchored.
            (&[("service", "mailer")], &["default"], &["{}"]),
        ];
        for (ls, want_receivers, want_keys) in cases {
            let l = labels(ls);
            assert_eq!(&t.receivers_for(&l), want_receivers, "{ls:?}");
            let keys: Vec<&str> = t
                .match_labels(&l)
                .into_iter()
                .map(|id| t.node(id).key.as_str())
                .collect();
            assert_eq!(&keys, want_keys, "{ls:?}");
        }
    }

    #[test]
    fn children_inherit_like_alertmanager() {
        let t = tree(TREE).unwrap();
        let root = &t.node(0).opts;
        assert_eq!(root.receiver, "default");
        assert_eq!(root.group_wait, Duration::from_secs(10));
        assert_eq!(root.group_interval, Duration::from_secs(300));
        assert_eq!(root.repeat_interval, Duration::from_secs(4 * 3600));
        let find = |key: &str| {
            t.nodes()
                .iter()
                .find(|n| n.key == key)
                .map(|n| n.opts.clone())
                .unwrap()
        };
        let pager_ml = find("{}/{severity=\"critical\"}/{team=\"ml\"}");
        assert_eq!(pager_ml.receiver, "pager", "receiver inherited");
        assert_eq!(pager_ml.group_by, ["alertname", "model_name"]);
        assert_eq!(pager_ml.group_wait, Duration::from_secs(1));
        let db = find("{}/{team=\"db\"}");
        assert_eq!(db.group_by, ["alertname"], "group_by inherited");
        assert_eq!(db.group_wait, Duration::from_secs(10), "timer inherited");
        let mail = find("{}/{service=~\"^(?:files|mail)$\"}");
        assert!(mail.group_by_all);
        let l = labels(&[("service", "mail"), ("x", "1")]);
        assert_eq!(mail.group_labels(&l), l);
        // `group_by: []` names no label: Alertmanager keeps the parent's.
        let x = find("{}/{model_name=~\"fraud.*\",team!=\"ml\"}/{stage!~\"dev|test\"}");
        assert_eq!(x.group_by, ["alertname"]);
        assert!(!x.group_by_all);
        // A child of a `...` route naming labels groups by those only.
        let t = tree(
            "receiver: default\ngroup_by: ['...']\nroutes:\n  - match: {a: b}\n    group_by: [a]\n  - match: {c: d}\n",
        )
        .unwrap();
        assert!(t.node(0).opts.group_by_all);
        assert!(!t.node(1).opts.group_by_all);
        assert_eq!(t.node(1).opts.group_by, ["a"]);
        assert!(t.node(2).opts.group_by_all);
    }

    #[test]
    fn matchers_parse_like_alertmanager() {
        let ok: &[(&str, &[&str])] = &[
            ("severity=\"critical\"", &["severity=\"critical\""]),
            ("team!=ml", &["team!=\"ml\""]),
            ("model_name=~\"fraud.*\"", &["model_name=~\"fraud.*\""]),
            ("  x !~ a|b  ", &["x!~\"a|b\""]),
            (
                "{foo = \"bar\", dings != \"bums\", }",
                &["foo=\"bar\"", "dings!=\"bums\""],
            ),
            ("a=\"x, y\",b=c", &["a=\"x, y\"", "b=\"c\""]),
            ("q=\"say \\\"hi\\\"\"", &["q=\"say \\\"hi\\\"\""]),
            ("empty=", &["empty=\"\""]),
            ("n:s=1", &["n:s=\"1\""]),
        ];
        for (input, want) in ok {
            let got: Vec<String> = parse_matchers(input)
                .unwrap_or_else(|e| panic!("{input}: {e}"))
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(&got, want, "{input}");
        }
        let bad: &[(&str, &str)] = &[
            ("severity", "bad matcher format: severity"),
            ("1a=b", "bad matcher format: 1a=b"),
            ("a=\"b", "unescaped double quote"),
            ("a=b\"c", "unescaped double quote"),
            ("a=~\"(\"", "invalid regular expression"),
        ];
        for (input, want) in bad {
            let e = parse_matchers(input).unwrap_err();
            assert!(e.contains(want), "{input}: {e}");
        }
        let m = parse_matcher("a=~\"x|y\"").unwrap();
        assert!(m.matches("x") && !m.matches("xx"));
    }

    #[test]
    fn validation_uses_alertmanager_messages_and_lines() {
        let full =
            |route: &str| format!("groups: []\nroute:\n{route}receivers:\n  - name: default\n");
        let cases: &[(&str, usize, &str)] = &[
            (
                "  group_by: [a]\n",
                2,
                "root route must specify a default receiver",
            ),
            (
                "  receiver: default\n  matchers: ['a=b']\n",
                4,
                "root route must not have any matchers",
            ),
            (
                "  receiver: default\n  continue: true\n",
                4,
                "cannot have continue in root route",
            ),
            (
                "  receiver: default\n  routes:\n    - receiver: default\n    - match: {a: b}\n      receiver: nope\n",
                7,
                "undefined receiver \"nope\" used in route",
            ),
            (
                "  receiver: default\n  routes:\n    - receiver: default\n      routes:\n      - matchers:\n          - a=b\n          - 'c=\"d'\n",
                9,
                "matcher value contains unescaped double quote",
            ),
            (
                "  receiver: default\n  routes:\n  - match: {a: b}\n    group_by: [a, '...']\n",
                6,
                "cannot have wildcard group_by (`...`) and other other labels at the same time",
            ),
            (
                "  receiver: default\n  group_interval: 0s\n",
                4,
                "group_interval cannot be zero",
            ),
            (
                "  receiver: default\n  routes:\n    - repeat_interval: 0s\n",
                5,
                "repeat_interval cannot be zero",
            ),
            (
                "  receiver: default\n  routes:\n    - match_re: {a: '('}\n",
                5,
                "invalid regular expression",
            ),
            (
                "  receiver: default\n  group_by: [a, a]\n",
                4,
                "duplicated label \"a\" in group_by",
            ),
            (
                "  receiver: default\n  routes:\n    - group_by: ['model-name']\n",
                5,
                "invalid label name \"model-name\" in group_by list",
            ),
            (
                "  receiver: default\n  routes:\n    - receiver: default\n      match: {'a-b': c}\n",
                6,
                "invalid label name \"a-b\"",
            ),
            (
                "  receiver: default\n  routes:\n    - mute_time_intervals: [weekends]\n",
                5,
                "undefined time interval \"weekends\" used in route",
            ),
            (
                "  receiver: default\n  routes:\n    - receiver: default\n      active_time_intervals:\n        - nights\n",
                7,
                "undefined time interval \"nights\" used in route",
            ),
            (
                "  receiver: default\n  mute_time_intervals: [weekends]\n",
                4,
                "root route must not have any mute time intervals",
            ),
            (
                "  receiver: default\n  active_time_intervals: [weekends]\n",
                4,
                "root route must not have any active time intervals",
            ),
        ];
        for (route, line, reason) in cases {
            let text = full(route);
            let config = crate::config::Config::parse(&text, "am.yml").unwrap();
            let e = config.validate_static("am.yml", &text).unwrap_err();
            assert_eq!(e.line, *line, "{text}\n{e}");
            assert!(e.reason.contains(reason), "{text}\n{e}");
        }
    }

    #[test]
    fn renders_like_amtool() {
        let t = tree(
            "receiver: default\ngroup_by: [alertname]\nroutes:\n  - matchers: ['severity=\"critical\"']\n    receiver: pager\n    continue: true\n    routes:\n      - match: {team: ml}\n  - match: {team: db}\n    receiver: db\n",
        )
        .unwrap();
        assert_eq!(
            t.render(),
            ".\n└── default-route  receiver: default  grouping: [alertname]\n    ├── {severity=\"critical\"}  continue: true  receiver: pager  grouping: [alertname]\n    │   └── {team=\"ml\"}  receiver: pager  grouping: [alertname]\n    └── {team=\"db\"}  receiver: db  grouping: [alertname]\n"
        );
        let l = labels(&[("severity", "critical"), ("team", "db")]);
        assert_eq!(
            t.render_matching(&l),
            ".\n└── default-route\n    ├── {severity=\"critical\"}  receiver: pager  grouping: [alertname]\n    └── {team=\"db\"}  receiver: db  grouping: [alertname]\n"
        );
    }
}
