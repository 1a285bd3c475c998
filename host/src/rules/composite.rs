//! Composite rules: a rule whose condition is a composite plugin's verdict
//! over other rules' alert states, joined on labels (`on: [model_name]`).
//!
//! - Each child rule keeps a bounded history of its alerts' firing
//!   transitions ([`AlertHistory`], per alert label set: at most
//!   [`HISTORY_LEN`] transitions, forgotten [`HISTORY_RETENTION`] after the
//!   last one once the alert is gone), recorded after each of its
//!   evaluations, only while some composite names it.
//! - At each evaluation the composite groups its children's alerts by the
//!   values of the `on` labels (a missing label joins as ""); every label set
//!   any child has history for becomes one signal group holding one signal
//!   per child, in `children` order. A child with several alerts in one
//!   group (e.g. one per feature) fires when any of them fires; its value is
//!   the largest firing value, `since` the earliest firing onset (or the
//!   latest resolution while none fires), its history the alerts' merged
//!   transitions. A child without alerts in a group is a signal that does
//!   not fire, with value 0, since 0 and no history.
//! - ONE plugin call judges every group; the plugin's state per group
//!   (e.g. the hold-down) is kept by the host, keyed by the joined labels.
//! - Firing verdicts go through the rule's normal alert state machine with
//!   the joined labels as the alert's series labels (`for`, labels,
//!   annotations templates, routing).
//!
//! Evaluation order: within a group, rules that are not composites run
//! first in file order, then composites, each after the composites of the
//! same group it names; so a composite sees its same-group children's state
//! of the same tick. A child in another group is read as of that group's
//! latest evaluation (groups run on their own intervals).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};

use super::state::{AlertState, AlertTable, Observation};
use super::{EvalContext, Rule, RuleKind};
use crate::plugins::PluginKind;
use crate::plugins::bindings::types::{Label, Signal, SignalGroup};
use crate::store::Labels;

/// Transitions kept per alert label set.
pub const HISTORY_LEN: usize = 32;

/// How long the history of an alert that is gone is kept after its last
/// transition.
pub const HISTORY_RETENTION: chrono::Duration = chrono::Duration::hours(24);

/// The composite side of a composite rule.
pub struct CompositeRule {
    /// The composite plugin's name.
    pub plugin: String,
    pub config: serde_json::Value,
    pub(super) config_json: String,
    /// Child rule names, in order.
    pub children: Vec<String>,
    /// Join labels.
    pub on: Vec<String>,
    /// The child rules, linked once every group is built.
    pub(super) links: OnceLock<Vec<Arc<Rule>>>,
}

impl CompositeRule {
    pub(super) fn new(
        plugin: String,
        config: serde_json::Value,
        children: Vec<String>,
        on: Vec<String>,
    ) -> Self {
        Self {
            plugin,
            config_json: config.to_string(),
            config,
            children,
            on,
            links: OnceLock::new(),
        }
    }
}

/// The firing transitions of one alert label set of a child rule.
#[derive(Debug, Clone)]
pub struct AlertHistory {
    pub labels: Labels,
    pub firing: bool,
    pub value: f64,
    /// When the current state began (Unix ms).
    pub since_ms: i64,
    /// (Unix ms, firing), oldest first, at most [`HISTORY_LEN`].
    pub transitions: VecDeque<(i64, bool)>,
}

impl AlertHistory {
    fn push(&mut self, t: i64, firing: bool) {
        self.firing = firing;
        self.since_ms = t;
        self.transitions.push_back((t, firing));
        while self.transitions.len() > HISTORY_LEN {
            self.transitions.pop_front();
        }
    }
}

/// Brings `history` up to date with `table` after an evaluation at `now`.
pub(super) fn record_history(
    history: &mut HashMap<u64, AlertHistory>,
    table: &AlertTable,
    now: DateTime<Utc>,
) {
    let now_ms = now.timestamp_millis();
    let mut present = HashSet::new();
    for a in table.all() {
        let fp = a.labels.fingerprint();
        present.insert(fp);
        let firing = a.state == AlertState::Firing;
        let entry = history.entry(fp).or_insert_with(|| AlertHistory {
            labels: a.labels.clone(),
            firing: false,
            value: a.value,
            since_ms: a.active_at.timestamp_millis(),
            transitions: VecDeque::new(),
        });
        entry.value = a.value;
        if entry.firing != firing {
            let at = if firing { a.fired_at } else { a.resolved_at };
            entry.push(at.unwrap_or(now).timestamp_millis(), firing);
        }
    }
    let horizon = (now - HISTORY_RETENTION).timestamp_millis();
    history.retain(|fp, h| {
        if present.contains(fp) {
            return true;
        }
        if h.firing {
            h.push(now_ms, false);
        }
        h.transitions.back().is_some_and(|(t, _)| *t >= horizon)
    });
}

/// A child's signal in one group, from its alerts in that group.
fn signal(name: &str, alerts: &[&AlertHistory]) -> Signal {
    let firing: Vec<&&AlertHistory> = alerts.iter().filter(|h| h.firing).collect();
    let mut history: Vec<(i64, bool)> = alerts
        .iter()
        .flat_map(|h| h.transitions.iter().copied())
        .collect();
    history.sort_by_key(|(t, _)| *t);
    if history.len() > HISTORY_LEN {
        history.drain(..history.len() - HISTORY_LEN);
    }
    let max = |it: &mut dyn Iterator<Item = f64>| it.fold(f64::NEG_INFINITY, f64::max);
    let (value, since_ms) = if firing.is_empty() {
        (
            max(&mut alerts.iter().map(|h| h.value)),
            alerts.iter().map(|h| h.since_ms).max().unwrap_or(0),
        )
    } else {
        (
            max(&mut firing.iter().map(|h| h.value)),
            firing.iter().map(|h| h.since_ms).min().unwrap_or(0),
        )
    };
    Signal {
        name: name.to_owned(),
        firing: !firing.is_empty(),
        value: if value.is_finite() || value.is_nan() {
            value
        } else {
            0.0
        },
        since_ms,
        history,
    }
}

impl Rule {
    /// A composite rule: one plugin call over every joined label set.
    #[allow(clippy::type_complexity)]
    pub(super) fn evaluate_composite(
        &self,
        ctx: &EvalContext,
        c: &CompositeRule,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Observation>, usize, HashMap<u64, Vec<u8>>), String> {
        let children = c
            .links
            .get()
            .ok_or_else(|| "composite rule is not linked to its children".to_owned())?;
        // Join labels → per child, its alert histories in that group.
        let mut groups: BTreeMap<Labels, Vec<Vec<AlertHistory>>> = BTreeMap::new();
        for (i, child) in children.iter().enumerate() {
            let rt = child.runtime.lock();
            for h in rt.history.values() {
                let key = Labels::new(
                    c.on.iter()
                        .map(|n| (n.as_str(), h.labels.get(n).unwrap_or(""))),
                );
                groups
                    .entry(key)
                    .or_insert_with(|| vec![Vec::new(); children.len()])[i]
                    .push(h.clone());
            }
        }
        let now_ms = now.timestamp_millis();
        let previous = std::mem::take(&mut self.runtime.lock().detector_state);
        let keys: Vec<Labels> = groups.keys().cloned().collect();
        let wire: Vec<SignalGroup> = groups
            .iter()
            .map(|(key, per_child)| SignalGroup {
                labels: key
                    .iter()
                    .map(|(n, v)| Label {
                        name: n.to_owned(),
                        value: v.to_owned(),
                    })
                    .collect(),
                signals: c
                    .children
                    .iter()
                    .zip(per_child)
                    .map(|(name, hs)| signal(name, &hs.iter().collect::<Vec<_>>()))
                    .collect(),
                eval_time_ms: now_ms,
                state: previous.get(&key.fingerprint()).cloned(),
            })
            .collect();
        if wire.is_empty() {
            return Ok((Vec::new(), 0, HashMap::new()));
        }
        let plugin = ctx
            .plugins
            .get_kind(&c.plugin, PluginKind::Composite)
            .map_err(|e| e.to_string())?;
        let outputs = plugin
            .evaluate_composite(&c.config_json, &wire)
            .map_err(|e| format!("composite `{}`: {e}", c.plugin))?;
        let mut states = HashMap::new();
        let mut observations = Vec::new();
        for (key, out) in keys.iter().zip(outputs) {
            if let Some(s) = out.state {
                states.insert(key.fingerprint(), s);
            }
            let verdict = out.verdict;
            if !verdict.firing {
                continue;
            }
            let mut annotations: BTreeMap<String, String> = verdict
                .annotations
                .into_iter()
                .map(|l| (l.name, l.value))
                .collect();
            if !verdict.summary.is_empty() {
                annotations.insert("composite_summary".into(), verdict.summary);
            }
            observations.push(self.observation(ctx, key, verdict.score, annotations));
        }
        if self.limit > 0 && observations.len() > self.limit {
            return Err(format!(
                "exceeded limit of {} with {} alerts",
                self.limit,
                observations.len()
            ));
        }
        Ok((observations, keys.len(), states))
    }
}

/// Links every composite rule to its child rules (by alerting rule name,
/// any group) and marks the children so they record their history.
/// Validation made every child name unique and the graph acyclic.
pub(super) fn link(rules: &[Arc<Rule>]) -> Result<(), String> {
    let mut by_name: HashMap<&str, &Arc<Rule>> = HashMap::new();
    for r in rules {
        if !matches!(r.kind, RuleKind::Record { .. }) {
            by_name.insert(r.name.as_str(), r);
        }
    }
    for r in rules {
        let RuleKind::Composite(c) = &r.kind else {
            continue;
        };
        let children = c
            .children
            .iter()
            .map(|name| {
                by_name
                    .get(name.as_str())
                    .map(|child| {
                        child
                            .tracked
                            .store(true, std::sync::atomic::Ordering::Relaxed);
                        Arc::clone(child)
                    })
                    .ok_or_else(|| format!("rule `{}`: unknown child rule `{name}`", r.name))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let _ = c.links.set(children);
    }
    Ok(())
}

/// The order a group evaluates its rules in: non-composites in file order,
/// then composites, each after the same-group composites it names.
pub(super) fn evaluation_order(rules: &[Arc<Rule>]) -> Vec<usize> {
    let composite_children = |r: &Rule| match &r.kind {
        RuleKind::Composite(c) => Some(c.children.clone()),
        _ => None,
    };
    let mut order: Vec<usize> = (0..rules.len())
        .filter(|&i| composite_children(&rules[i]).is_none())
        .collect();
    let mut pending: Vec<usize> = (0..rules.len())
        .filter(|&i| composite_children(&rules[i]).is_some())
        .collect();
    while !pending.is_empty() {
        let done: HashSet<&str> = order.iter().map(|&i| rules[i].name.as_str()).collect();
        let waiting: HashSet<&str> = pending.iter().map(|&i| rules[i].name.as_str()).collect();
        let ready = pending.iter().position(|&i| {
            composite_children(&rules[i]).is_some_and(|cs| {
                cs.iter()
                    .all(|c| done.contains(c.as_str()) || !waiting.contains(c.as_str()))
            })
        });
        // A cycle cannot pass validation; should one get here, keep file order.
        let next = pending.remove(ready.unwrap_or(0));
        order.push(next);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap as Map;

    fn obs(model: &str) -> Observation {
        Observation {
            labels: Labels::new([("alertname", "A"), ("model_name", model)]),
            annotations: Map::new(),
            value: 1.0,
            firing: true,
        }
    }

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    #[test]
    fn history_records_firing_and_resolution() {
        let mut table = AlertTable::default();
        let mut history = HashMap::new();
        let zero = chrono::Duration::zero();
        let hold = chrono::Duration::seconds(10);
        table.apply(t(0), vec![obs("m")], hold, zero);
        record_history(&mut history, &table, t(0));
        let fp = obs("m").labels.fingerprint();
        assert!(history[&fp].transitions.is_empty(), "pending is not firing");
        table.apply(t(10), vec![obs("m")], hold, zero);
        record_history(&mut history, &table, t(10));
        assert_eq!(
            history[&fp].transitions,
            VecDeque::from([(t(10).timestamp_millis(), true)])
        );
        table.apply(t(20), vec![], hold, zero);
        record_history(&mut history, &table, t(20));
        let h = &history[&fp];
        assert!(!h.firing);
        assert_eq!(h.since_ms, t(20).timestamp_millis());
        assert_eq!(h.transitions.len(), 2);
        // Kept past the resolved alert's retention, then forgotten.
        record_history(&mut history, &AlertTable::default(), t(3600));
        assert!(history.contains_key(&fp));
        record_history(&mut history, &AlertTable::default(), t(20 + 24 * 3600 + 1));
        assert!(!history.contains_key(&fp));
    }

    #[test]
    fn history_is_bounded() {
        let mut h = AlertHistory {
            labels: Labels::empty(),
            firing: false,
            value: 0.0,
            since_ms: 0,
            transitions: VecDeque::new(),
        };
        for i in 0..100 {
            h.push(i, i % 2 == 0);
        }
        assert_eq!(h.transitions.len(), HISTORY_LEN);
        assert_eq!(
            h.transitions.front(),
            Some(&(100 - HISTORY_LEN as i64, true))
        );
    }

    #[test]
    fn a_child_with_several_alerts_fires_when_one_does() {
        let mk = |firing, since, value| AlertHistory {
            labels: Labels::empty(),
            firing,
            value,
            since_ms: since,
            transitions: VecDeque::from([(since, firing)]),
        };
        let (a, b) = (mk(true, 50, 2.0), mk(false, 70, 9.0));
        let s = signal("X", &[&a, &b]);
        assert!(s.firing);
        assert_eq!((s.value, s.since_ms), (2.0, 50));
        assert_eq!(s.history, vec![(50, true), (70, false)]);
        let s = signal("X", &[]);
        assert!(!s.firing);
        assert_eq!((s.value, s.since_ms), (0.0, 0));
    }
}
