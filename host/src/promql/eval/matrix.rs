//! Range queries evaluated a node at a time over every step of the grid (a
//! matrix per node: series × steps), as Prometheus 3 and VictoriaMetrics
//! do, instead of the whole expression once per step. Selectors walk each
//! series once; grouping labels, match signatures, histogram bucket order
//! and output labels are worked out once per series (or series pair)
//! instead of at every step.
//!
//! Covered: number literals, unary minus, instant selectors (no `@`), the
//! sliding range functions, the functions of one float (`abs`, `ln`...),
//! `histogram_quantile`, the aggregations `sum avg count group min max
//! stddev stdvar`, arithmetic and comparisons (scalar or vector matching
//! with `on`/`ignoring`/`group_left`/`group_right`) and `and or unless`.
//! Any other node is evaluated step by step by the per-step evaluator and
//! turned into rows, so a query can mix both.
//!
//! Results are the per-step evaluator's, bit for bit: values are combined
//! in the order the per-step evaluator combines them (each vector records
//! whether its rows are in the per-step order at every step, and
//! order-sensitive nodes fall back when they are not). Where the per-step
//! evaluator could fail at some step (label sets colliding, duplicate match
//! groups) the node is evaluated step by step instead; any error makes the
//! whole query take the per-step path, which then gives Prometheus's error
//! for the first failing step.

use promql_parser::parser::{
    AggregateExpr, BinaryExpr, Call, Expr, LabelModifier, VectorMatchCardinality, VectorSelector,
};

use super::{
    Evaluator, Grid, HashMap, HashSet, Row, Sig, drop_name, ms, offset_ms, result_labels,
    scalar_binop, sliding_call,
};
use crate::promql::{RangeSeries, Value, functions, is_stale};
use crate::store::Labels;

/// A node's value at every step of the grid.
pub(super) enum Mat {
    /// A scalar per step.
    Scalar(Vec<f64>),
    /// An instant vector per step, one row per label set (label sets are
    /// unique among the rows).
    Vector(Rows),
}

/// The rows of an instant vector over the grid.
pub(super) struct Rows {
    rows: Vec<Row>,
    /// Whether, at every step, the per-step evaluator's vector lists the
    /// rows present at that step in row order.
    ordered: bool,
}

/// Why the matrix path stops.
#[derive(Debug)]
pub(super) enum Stop {
    /// Evaluate this node step by step.
    Node,
    /// Evaluate the whole query step by step.
    Query,
}

type M<T> = std::result::Result<T, Stop>;

/// Aggregations computed here (without a parameter).
const AGGREGATIONS: &[&str] = &[
    "sum", "avg", "count", "group", "min", "max", "stddev", "stdvar",
];

impl Evaluator<'_> {
    /// The range query's series, sorted by labels, or `None` when the query
    /// must be evaluated step by step.
    pub(super) fn range_rows(&mut self, expr: &Expr) -> Option<Vec<RangeSeries>> {
        let grid = self.grid?;
        if grid.steps == 0 {
            return None;
        }
        let t = |k: usize| grid.start + k as i64 * grid.step;
        match self.mat(expr).ok()? {
            Mat::Scalar(v) => Some(vec![RangeSeries {
                labels: Labels::empty(),
                samples: v.iter().enumerate().map(|(k, &x)| (t(k), x)).collect(),
            }]),
            Mat::Vector(r) => {
                let mut out = Vec::with_capacity(r.rows.len());
                for row in r.rows {
                    let samples: Vec<(i64, f64)> = row
                        .v
                        .iter()
                        .enumerate()
                        .filter_map(|(k, v)| v.map(|v| (t(k), v)))
                        .collect();
                    if !samples.is_empty() {
                        out.push(RangeSeries {
                            labels: row.labels,
                            samples,
                        });
                    }
                }
                out.sort_by(|a, b| a.labels.cmp(&b.labels));
                Some(out)
            }
        }
    }

    fn grid_or_stop(&self) -> M<Grid> {
        self.grid.ok_or(Stop::Query)
    }

    /// `e` at every step: by node when covered, step by step otherwise.
    fn mat(&mut self, e: &Expr) -> M<Mat> {
        match self.mat_node(e) {
            Err(Stop::Node) => self.per_step(e),
            other => other,
        }
    }

    fn mat_node(&mut self, e: &Expr) -> M<Mat> {
        let grid = self.grid_or_stop()?;
        let delayed = self.engine.delayed_name_removal;
        match e {
            Expr::NumberLiteral(n) => Ok(Mat::Scalar(vec![n.val; grid.steps])),
            Expr::Paren(p) => self.mat(&p.expr),
            Expr::Unary(u) => match self.mat(&u.expr)? {
                Mat::Scalar(mut v) => {
                    v.iter_mut().for_each(|x| *x = -*x);
                    Ok(Mat::Scalar(v))
                }
                Mat::Vector(mut r) => {
                    for row in &mut r.rows {
                        row.labels = drop_name(&row.labels, delayed);
                        row.v.iter_mut().flatten().for_each(|x| *x = -*x);
                    }
                    unique(&r.rows)?;
                    Ok(Mat::Vector(r))
                }
            },
            Expr::VectorSelector(vs) if vs.at.is_none() => {
                Ok(Mat::Vector(self.selector_rows(vs, grid)))
            }
            Expr::Call(c) => self.call_rows(c, grid),
            Expr::Aggregate(a) => self.aggregate_rows(a, grid),
            Expr::Binary(b) => self.binary_rows(b, grid),
            _ => Err(Stop::Node),
        }
    }

    /// `e` evaluated by the per-step evaluator at every step, as rows.
    fn per_step(&mut self, e: &Expr) -> M<Mat> {
        let grid = self.grid_or_stop()?;
        self.stepped_nodes += 1;
        let scalar = match e.value_type() {
            promql_parser::parser::value::ValueType::Scalar => true,
            promql_parser::parser::value::ValueType::Vector => false,
            _ => return Err(Stop::Query),
        };
        let mut scalars = Vec::with_capacity(if scalar { grid.steps } else { 0 });
        let mut rows: Vec<Row> = Vec::new();
        let mut index: HashMap<Labels, usize> = HashMap::default();
        let mut ordered = true;
        for k in 0..grid.steps {
            let t = grid.start + k as i64 * grid.step;
            match (self.eval(e, t).map_err(|_| Stop::Query)?, scalar) {
                (Value::Scalar(v), true) => scalars.push(v),
                (Value::Vector(samples), false) => {
                    let mut last: Option<usize> = None;
                    for s in samples {
                        let i = match index.get(&s.labels) {
                            Some(&i) => i,
                            None => {
                                index.insert(s.labels.clone(), rows.len());
                                rows.push(Row {
                                    labels: s.labels,
                                    v: vec![None; grid.steps],
                                });
                                rows.len() - 1
                            }
                        };
                        if rows[i].v[k].replace(s.v).is_some() {
                            // Two samples of one label set at one step.
                            return Err(Stop::Query);
                        }
                        if last.is_some_and(|l| l >= i) {
                            ordered = false;
                        }
                        last = Some(i);
                    }
                }
                _ => return Err(Stop::Query),
            }
        }
        Ok(if scalar {
            Mat::Scalar(scalars)
        } else {
            Mat::Vector(Rows { rows, ordered })
        })
    }

    /// An instant selector at every step: one pass over each series.
    fn selector_rows(&mut self, vs: &VectorSelector, grid: Grid) -> Rows {
        let offset = offset_ms(&vs.offset);
        let lookback = self.engine.lookback_ms;
        let series = self.series(vs);
        let mut rows = Vec::with_capacity(series.len());
        for s in series.iter() {
            let mut v = vec![None; grid.steps];
            let (mut i, mut any) = (0usize, false);
            for (k, slot) in v.iter_mut().enumerate() {
                let ts = grid.start + k as i64 * grid.step - offset;
                while i < s.timestamps.len() && s.timestamps[i] <= ts {
                    i += 1;
                }
                if i == 0 {
                    continue;
                }
                let (st, x) = (s.timestamps[i - 1], s.values[i - 1]);
                if st <= ts - lookback || is_stale(x) {
                    continue;
                }
                *slot = Some(x);
                any = true;
            }
            if any {
                rows.push(Row {
                    labels: s.labels.clone(),
                    v,
                });
            }
        }
        Rows {
            rows,
            ordered: true,
        }
    }

    fn call_rows(&mut self, c: &Call, grid: Grid) -> M<Mat> {
        let delayed = self.engine.delayed_name_removal;
        if let Some((kind, m)) = sliding_call(c) {
            let rows = self.sliding_rows(c, &m.vs, ms(m.range), grid, kind);
            unique(&rows)?;
            return Ok(Mat::Vector(Rows {
                rows: rows.as_ref().clone(),
                ordered: true,
            }));
        }
        if let Some(f) = functions::simple_fn(c.func.name) {
            let [arg] = c.args.args.as_slice() else {
                return Err(Stop::Node);
            };
            let Mat::Vector(mut r) = self.mat(arg)? else {
                return Err(Stop::Query);
            };
            for row in &mut r.rows {
                row.labels = drop_name(&row.labels, delayed);
                row.v.iter_mut().flatten().for_each(|x| *x = f(*x));
            }
            unique(&r.rows)?;
            return Ok(Mat::Vector(r));
        }
        if c.func.name == "histogram_quantile" {
            return self.histogram_rows(c, grid);
        }
        Err(Stop::Node)
    }

    /// `histogram_quantile`: buckets grouped and put in `le` order once per
    /// series set.
    fn histogram_rows(&mut self, c: &Call, grid: Grid) -> M<Mat> {
        let [q, arg] = c.args.args.as_slice() else {
            return Err(Stop::Node);
        };
        let Mat::Scalar(qs) = self.mat(q)? else {
            return Err(Stop::Query);
        };
        let Mat::Vector(input) = self.mat(arg)? else {
            return Err(Stop::Query);
        };
        if !input.ordered {
            return Err(Stop::Node);
        }
        let mut index: HashMap<Labels, usize> = HashMap::default();
        let mut groups: Vec<(Labels, Vec<(f64, usize)>)> = Vec::new();
        let mut row_group = Vec::with_capacity(input.rows.len());
        for (i, row) in input.rows.iter().enumerate() {
            let Some(le) = row.labels.get("le").and_then(functions::parse_le) else {
                row_group.push(None);
                continue;
            };
            if le.is_nan() {
                // The per-step sort order of a NaN bound is its own.
                return Err(Stop::Node);
            }
            let key = self
                .labels
                .get(functions::TAG_WITHOUT_LE, &row.labels, |l| {
                    Labels::new(l.iter().filter(|(n, _)| *n != "le"))
                });
            let g = *index.entry(key.clone()).or_insert_with(|| {
                groups.push((key, Vec::new()));
                groups.len() - 1
            });
            groups[g].1.push((le, i));
            row_group.push(Some(g));
        }
        let ordered = first_seen_ordered(&input.rows, &row_group, groups.len(), grid.steps);
        let mut rows = Vec::with_capacity(groups.len());
        let mut buckets = Vec::new();
        for (key, mut members) in groups {
            // Stable: the per-step sort of the same buckets in row order.
            members.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
            let mut v = vec![None; grid.steps];
            for (k, slot) in v.iter_mut().enumerate() {
                buckets.clear();
                buckets.extend(
                    members
                        .iter()
                        .filter_map(|&(le, i)| input.rows[i].v[k].map(|x| (le, x))),
                );
                if !buckets.is_empty() {
                    *slot = Some(functions::bucket_quantile(qs[k], &mut buckets));
                }
            }
            rows.push(Row {
                labels: drop_name(&key, self.engine.delayed_name_removal),
                v,
            });
        }
        unique(&rows)?;
        Ok(Mat::Vector(Rows { rows, ordered }))
    }

    fn aggregate_rows(&mut self, a: &AggregateExpr, grid: Grid) -> M<Mat> {
        let op = a.op.to_string();
        if a.param.is_some() || !AGGREGATIONS.contains(&op.as_str()) {
            return Err(Stop::Node);
        }
        let Mat::Vector(input) = self.mat(&a.expr)? else {
            return Err(Stop::Query);
        };
        if !input.ordered {
            return Err(Stop::Node);
        }
        let modifier = a.modifier.as_ref();
        // The per-step aggregation's memo tag, so both share it.
        let tag = modifier.map_or(2, |m| m as *const LabelModifier as usize);
        let mut index: HashMap<Labels, usize> = HashMap::default();
        let mut groups: Vec<(Labels, Vec<usize>, bool)> = Vec::new();
        let mut row_group = Vec::with_capacity(input.rows.len());
        for (i, row) in input.rows.iter().enumerate() {
            let key = self
                .labels
                .get(tag, &row.labels, |l| functions::group_key_of(l, modifier));
            let g = *index.entry(key.clone()).or_insert_with(|| {
                groups.push((key, Vec::new(), false));
                groups.len() - 1
            });
            groups[g].1.push(i);
            groups[g].2 |= functions::group_marked(&row.labels, modifier);
            row_group.push(Some(g));
        }
        let ordered = first_seen_ordered(&input.rows, &row_group, groups.len(), grid.steps);
        let mut rows = Vec::with_capacity(groups.len());
        let mut values = Vec::new();
        for (key, members, marked) in groups {
            let mut v = vec![None; grid.steps];
            for (k, slot) in v.iter_mut().enumerate() {
                values.clear();
                values.extend(members.iter().filter_map(|&i| input.rows[i].v[k]));
                if !values.is_empty() {
                    *slot =
                        Some(functions::reduce(&op, 0.0, &mut values).map_err(|_| Stop::Query)?);
                }
            }
            let labels = if marked { drop_name(&key, true) } else { key };
            rows.push(Row { labels, v });
        }
        Ok(Mat::Vector(Rows { rows, ordered }))
    }

    fn binary_rows(&mut self, b: &BinaryExpr, grid: Grid) -> M<Mat> {
        let op = b.op.to_string();
        let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
        let comparison = b.op.is_comparison_operator();
        let delayed = self.engine.delayed_name_removal;
        let lhs = self.mat(&b.lhs)?;
        let rhs = self.mat(&b.rhs)?;
        match (lhs, rhs) {
            (Mat::Scalar(l), Mat::Scalar(r)) => {
                if comparison && !return_bool {
                    return Err(Stop::Query);
                }
                let mut out = Vec::with_capacity(grid.steps);
                for (&l, &r) in l.iter().zip(&r) {
                    let (v, keep) = scalar_binop(&op, l, r).map_err(|_| Stop::Query)?;
                    out.push(match (comparison, keep) {
                        (false, _) => v,
                        (true, true) => 1.0,
                        (true, false) => 0.0,
                    });
                }
                Ok(Mat::Scalar(out))
            }
            (Mat::Vector(v), Mat::Scalar(s)) => {
                vector_scalar_rows(&op, v, &s, false, comparison, return_bool, delayed)
            }
            (Mat::Scalar(s), Mat::Vector(v)) => {
                vector_scalar_rows(&op, v, &s, true, comparison, return_bool, delayed)
            }
            (Mat::Vector(l), Mat::Vector(r)) => {
                let matching = b.modifier.as_ref().and_then(|m| m.matching.as_ref());
                if b.op.is_set_operator() {
                    return self.set_rows(&op, l, r, matching, grid);
                }
                let card = b
                    .modifier
                    .as_ref()
                    .map(|m| m.card.clone())
                    .unwrap_or(VectorMatchCardinality::OneToOne);
                self.vector_rows(&op, l, r, matching, &card, comparison, return_bool)
            }
        }
    }

    /// Per signature: at which steps some row of `rows` with it is present.
    fn presence(
        &mut self,
        rows: &[Row],
        matching: Option<&LabelModifier>,
        steps: usize,
    ) -> (Vec<Sig>, HashMap<Sig, Vec<bool>>) {
        let mut sigs = Vec::with_capacity(rows.len());
        let mut present: HashMap<Sig, Vec<bool>> = HashMap::default();
        for row in rows {
            let sig = self.sigs.get(&row.labels, matching);
            let p = present
                .entry(sig.clone())
                .or_insert_with(|| vec![false; steps]);
            for (slot, v) in p.iter_mut().zip(&row.v) {
                *slot |= v.is_some();
            }
            sigs.push(sig);
        }
        (sigs, present)
    }

    fn set_rows(
        &mut self,
        op: &str,
        mut l: Rows,
        mut r: Rows,
        matching: Option<&LabelModifier>,
        grid: Grid,
    ) -> M<Mat> {
        if op == "or" {
            let (_, left) = self.presence(&l.rows, matching, grid.steps);
            let labels: HashSet<&Labels> = l.rows.iter().map(|row| &row.labels).collect();
            if r.rows.iter().any(|row| labels.contains(&row.labels)) {
                // One label set on both sides: merged step by step.
                return Err(Stop::Node);
            }
            for row in &mut r.rows {
                let sig = self.sigs.get(&row.labels, matching);
                if let Some(p) = left.get(&sig) {
                    for (slot, &hit) in row.v.iter_mut().zip(p) {
                        if hit {
                            *slot = None;
                        }
                    }
                }
            }
            let ordered = l.ordered && r.ordered;
            l.rows.append(&mut r.rows);
            return Ok(Mat::Vector(Rows {
                rows: l.rows,
                ordered,
            }));
        }
        let keep_matched = op == "and";
        let (_, right) = self.presence(&r.rows, matching, grid.steps);
        for row in &mut l.rows {
            let sig = self.sigs.get(&row.labels, matching);
            let p = right.get(&sig);
            for (k, slot) in row.v.iter_mut().enumerate() {
                if slot.is_some() && p.is_some_and(|p| p[k]) != keep_matched {
                    *slot = None;
                }
            }
        }
        Ok(Mat::Vector(l))
    }

    /// Arithmetic or comparison between two vectors: each row of the "many"
    /// side is matched with its row of the "one" side once.
    #[allow(clippy::too_many_arguments)]
    fn vector_rows(
        &mut self,
        op: &str,
        l: Rows,
        r: Rows,
        matching: Option<&LabelModifier>,
        card: &VectorMatchCardinality,
        comparison: bool,
        return_bool: bool,
    ) -> M<Mat> {
        let one_to_many = matches!(card, VectorMatchCardinality::OneToMany(_));
        let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
        let (many, one) = if one_to_many { (r, l) } else { (l, r) };
        let include: &[String] = match card {
            VectorMatchCardinality::ManyToOne(l) | VectorMatchCardinality::OneToMany(l) => {
                &l.labels
            }
            _ => &[],
        };
        let mut one_by_sig: HashMap<Sig, usize> = HashMap::default();
        for (i, row) in one.rows.iter().enumerate() {
            let sig = self.sigs.get(&row.labels, matching);
            if one_by_sig.insert(sig, i).is_some() {
                // Duplicates fail only at the steps where both are present.
                return Err(Stop::Node);
            }
        }
        let mut matched: HashSet<Sig> = HashSet::default();
        let mut rows = Vec::with_capacity(many.rows.len());
        for mrow in &many.rows {
            let sig = self.sigs.get(&mrow.labels, matching);
            let Some(&oi) = one_by_sig.get(&sig) else {
                continue;
            };
            if one_to_one && !matched.insert(sig) {
                // Ambiguous at the steps where all three are present.
                return Err(Stop::Node);
            }
            let orow = &one.rows[oi];
            let mut labels = result_labels(
                &mrow.labels,
                &orow.labels,
                !comparison,
                self.engine.delayed_name_removal,
                one_to_one,
                matching,
                include,
            );
            if return_bool {
                labels = drop_name(&labels, self.engine.delayed_name_removal);
            }
            let mut v = vec![None; mrow.v.len()];
            let mut any = false;
            for (k, slot) in v.iter_mut().enumerate() {
                let (Some(m), Some(o)) = (mrow.v[k], orow.v[k]) else {
                    continue;
                };
                let (fl, fr) = if one_to_many { (o, m) } else { (m, o) };
                let (mut value, mut keep) = scalar_binop(op, fl, fr).map_err(|_| Stop::Query)?;
                if return_bool {
                    value = if keep { 1.0 } else { 0.0 };
                    keep = true;
                }
                if keep {
                    *slot = Some(value);
                    any = true;
                }
            }
            if any {
                rows.push(Row { labels, v });
            }
        }
        unique(&rows)?;
        Ok(Mat::Vector(Rows {
            rows,
            ordered: many.ordered,
        }))
    }
}

fn vector_scalar_rows(
    op: &str,
    mut v: Rows,
    s: &[f64],
    scalar_left: bool,
    comparison: bool,
    return_bool: bool,
    delayed: bool,
) -> M<Mat> {
    let relabel = !comparison || return_bool;
    for row in &mut v.rows {
        for (slot, &s) in row.v.iter_mut().zip(s) {
            let Some(x) = *slot else {
                continue;
            };
            let (l, r) = if scalar_left { (s, x) } else { (x, s) };
            let (mut value, mut keep) = scalar_binop(op, l, r).map_err(|_| Stop::Query)?;
            if comparison && scalar_left {
                value = r;
            }
            if return_bool {
                value = if keep { 1.0 } else { 0.0 };
                keep = true;
            }
            *slot = keep.then_some(value);
        }
        if relabel {
            row.labels = drop_name(&row.labels, delayed);
        }
    }
    if relabel {
        unique(&v.rows)?;
    }
    Ok(Mat::Vector(v))
}

/// Rows whose label sets collide fail (or not) step by step.
fn unique(rows: &[Row]) -> M<()> {
    let mut seen: HashSet<&Labels> =
        HashSet::with_capacity_and_hasher(rows.len(), Default::default());
    if rows.iter().all(|r| seen.insert(&r.labels)) {
        Ok(())
    } else {
        Err(Stop::Node)
    }
}

/// Whether the groups (numbered in order of first appearance over all
/// rows) also first appear in that order at every step, that is whether a
/// grouping node's rows are in the per-step order.
fn first_seen_ordered(
    rows: &[Row],
    row_group: &[Option<usize>],
    groups: usize,
    steps: usize,
) -> bool {
    let mut seen_at = vec![usize::MAX; groups];
    for k in 0..steps {
        let mut last: Option<usize> = None;
        for (row, g) in rows.iter().zip(row_group) {
            let Some(g) = *g else {
                continue;
            };
            if row.v[k].is_none() || seen_at[g] == k {
                continue;
            }
            seen_at[g] = k;
            if last.is_some_and(|l| l > g) {
                return false;
            }
            last = Some(g);
        }
    }
    true
}
