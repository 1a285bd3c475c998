//! The inverted label index: label name → value → sorted series ids, plus
//! id → series. Series ids only grow, so a new series is a push at the end of
//! each of its postings lists.

use std::collections::HashMap;
use std::sync::Arc;

use super::FpBuildHasher;
use super::matcher::{MatchOp, Matcher};
use super::series::Series;

#[derive(Default)]
pub(super) struct LabelIndex {
    postings: HashMap<Box<str>, HashMap<Box<str>, Vec<u64>>>,
    series: HashMap<u64, Arc<Series>, FpBuildHasher>,
}

impl LabelIndex {
    pub(super) fn insert(&mut self, series: &Arc<Series>) {
        for (name, value) in series.labels.iter() {
            let values = match self.postings.get_mut(name) {
                Some(values) => values,
                None => self.postings.entry(name.into()).or_default(),
            };
            let ids = match values.get_mut(value) {
                Some(ids) => ids,
                None => values.entry(value.into()).or_default(),
            };
            // Ids are allocated in increasing order but two creators may
            // reach the index in either order.
            match ids.last() {
                Some(&last) if last > series.id => {
                    let at = ids.partition_point(|&id| id < series.id);
                    ids.insert(at, series.id);
                }
                _ => ids.push(series.id),
            }
        }
        self.series.insert(series.id, Arc::clone(series));
    }

    pub(super) fn remove(&mut self, series: &Series) {
        for (name, value) in series.labels.iter() {
            let Some(values) = self.postings.get_mut(name) else {
                continue;
            };
            if let Some(ids) = values.get_mut(value) {
                if let Ok(at) = ids.binary_search(&series.id) {
                    ids.remove(at);
                }
                if ids.is_empty() {
                    values.remove(value);
                }
            }
            if values.is_empty() {
                self.postings.remove(name);
            }
        }
        self.series.remove(&series.id);
    }

    /// Series satisfying every matcher, in no particular order.
    pub(super) fn select(&self, matchers: &[Matcher]) -> Vec<Arc<Series>> {
        let mut selected: Option<Vec<u64>> = None;
        let mut excluded: Vec<Vec<u64>> = Vec::new();
        for m in matchers {
            let values = self.postings.get(m.name());
            if m.matches_empty() {
                // Everything except series whose value fails the matcher;
                // series without the label stay in.
                let ids = self.union(values, |v| !m.matches(v));
                if !ids.is_empty() {
                    excluded.push(ids);
                }
            } else {
                let ids = match (m.op(), values) {
                    (MatchOp::Equal, Some(values)) => {
                        values.get(m.value()).cloned().unwrap_or_default()
                    }
                    _ => self.union(values, |v| m.matches(v)),
                };
                let ids = match selected {
                    None => ids,
                    Some(prev) => intersect(&prev, &ids),
                };
                if ids.is_empty() {
                    return Vec::new();
                }
                selected = Some(ids);
            }
        }
        let mut ids = selected.unwrap_or_else(|| {
            let mut all: Vec<u64> = self.series.keys().copied().collect();
            all.sort_unstable();
            all
        });
        for ex in &excluded {
            ids = difference(&ids, ex);
        }
        ids.iter()
            .filter_map(|id| self.series.get(id).cloned())
            .collect()
    }

    /// Sorted ids of series whose value of one label satisfies `keep`.
    fn union(
        &self,
        values: Option<&HashMap<Box<str>, Vec<u64>>>,
        keep: impl Fn(&str) -> bool,
    ) -> Vec<u64> {
        let Some(values) = values else {
            return Vec::new();
        };
        let mut ids = Vec::new();
        for (value, postings) in values {
            if keep(value) {
                ids.extend_from_slice(postings);
            }
        }
        // A series has one value per name, so the lists are disjoint.
        ids.sort_unstable();
        ids
    }

    pub(super) fn label_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.postings.keys().map(|n| n.to_string()).collect();
        names.sort_unstable();
        names
    }

    pub(super) fn label_values(&self, name: &str) -> Vec<String> {
        let mut values: Vec<String> = self
            .postings
            .get(name)
            .map(|vs| vs.keys().map(|v| v.to_string()).collect())
            .unwrap_or_default();
        values.sort_unstable();
        values
    }
}

fn intersect(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

fn difference(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len());
    let mut j = 0;
    for &id in a {
        while j < b.len() && b[j] < id {
            j += 1;
        }
        if j >= b.len() || b[j] != id {
            out.push(id);
        }
    }
    out
}
