//! The alert state machine of one rule: inactive → pending → firing →
//! resolved, keyed by the fingerprint of the alert's labels. Pure logic with
//! explicit time, so it is tested without clocks.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::store::Labels;

/// How long a resolved alert is kept (and visible) after resolving.
pub const RESOLVED_RETENTION: Duration = Duration::minutes(15);

/// Where an alert is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Pending,
    Firing,
    /// Was firing, condition cleared: kept for `RESOLVED_RETENTION`.
    Inactive,
}

/// One alert of a rule.
#[derive(Debug, Clone)]
pub struct RuleAlert {
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub value: f64,
    pub state: AlertState,
    /// When the condition first held (pending since).
    pub active_at: DateTime<Utc>,
    pub fired_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// When the condition last cleared while `keep_firing_for` holds it firing.
    pub keep_firing_since: Option<DateTime<Utc>>,
}

/// A detector's judgement of one series, ready for the state machine.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The alert's labels (series labels without `__name__`, plus rule labels and `alertname`).
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub value: f64,
    pub firing: bool,
}

/// A state change worth telling routing about.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// Went firing (or is still firing: sent each evaluation to refresh annotations).
    Firing(u64),
    /// Resolved at this evaluation.
    Resolved(u64),
}

/// All alerts of one rule.
#[derive(Debug, Default)]
pub struct AlertTable {
    alerts: HashMap<u64, RuleAlert>,
}

impl AlertTable {
    /// Applies one evaluation's observations at `now`. Series absent from
    /// `observations` count as not firing. Returns the fingerprints of alerts
    /// now firing and of those resolved by this evaluation.
    pub fn apply(
        &mut self,
        now: DateTime<Utc>,
        observations: Vec<Observation>,
        hold: Duration,
        keep_firing_for: Duration,
    ) -> Vec<Transition> {
        let mut seen = std::collections::HashSet::with_capacity(observations.len());
        for obs in observations.into_iter().filter(|o| o.firing) {
            let fp = obs.labels.fingerprint();
            seen.insert(fp);
            match self.alerts.get_mut(&fp) {
                Some(a) if a.state != AlertState::Inactive => {
                    a.value = obs.value;
                    a.annotations = obs.annotations;
                    a.keep_firing_since = None;
                }
                _ => {
                    self.alerts.insert(
                        fp,
                        RuleAlert {
                            labels: obs.labels,
                            annotations: obs.annotations,
                            value: obs.value,
                            state: AlertState::Pending,
                            active_at: now,
                            fired_at: None,
                            resolved_at: None,
                            keep_firing_since: None,
                        },
                    );
                }
            }
        }

        let mut transitions = Vec::new();
        self.alerts.retain(|fp, a| {
            if !seen.contains(fp) {
                match a.state {
                    AlertState::Pending => return false,
                    AlertState::Firing => {
                        let since = *a.keep_firing_since.get_or_insert(now);
                        if keep_firing_for.is_zero() || now - since >= keep_firing_for {
                            a.state = AlertState::Inactive;
                            a.resolved_at = Some(now);
                            transitions.push(Transition::Resolved(*fp));
                        } else {
                            transitions.push(Transition::Firing(*fp));
                        }
                        return true;
                    }
                    AlertState::Inactive => {
                        return a.resolved_at.is_some_and(|r| now - r < RESOLVED_RETENTION);
                    }
                }
            }
            if a.state == AlertState::Pending && now - a.active_at >= hold {
                a.state = AlertState::Firing;
                a.fired_at = Some(now);
            }
            if a.state == AlertState::Firing {
                transitions.push(Transition::Firing(*fp));
            }
            true
        });
        transitions
    }

    /// An alert by fingerprint.
    pub fn get(&self, fp: u64) -> Option<&RuleAlert> {
        self.alerts.get(&fp)
    }

    /// Pending and firing alerts (not the resolved ones kept for notification).
    pub fn active(&self) -> impl Iterator<Item = &RuleAlert> {
        self.alerts
            .values()
            .filter(|a| a.state != AlertState::Inactive)
    }

    /// Every alert held, resolved ones included.
    pub fn all(&self) -> impl Iterator<Item = &RuleAlert> {
        self.alerts.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(model: &str, firing: bool, value: f64) -> Observation {
        Observation {
            labels: Labels::new([("alertname", "A"), ("model_name", model)]),
            annotations: BTreeMap::new(),
            value,
            firing,
        }
    }

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    #[test]
    fn pending_then_firing_then_resolved() {
        let mut table = AlertTable::default();
        let hold = Duration::seconds(60);
        let fp = obs("m", true, 1.0).labels.fingerprint();

        assert!(
            table
                .apply(t(0), vec![obs("m", true, 1.0)], hold, Duration::zero())
                .is_empty()
        );
        assert_eq!(table.get(fp).unwrap().state, AlertState::Pending);
        assert!(
            table
                .apply(t(30), vec![obs("m", true, 2.0)], hold, Duration::zero())
                .is_empty()
        );
        assert_eq!(table.get(fp).unwrap().value, 2.0);

        let tr = table.apply(t(60), vec![obs("m", true, 3.0)], hold, Duration::zero());
        assert_eq!(tr, vec![Transition::Firing(fp)]);
        let a = table.get(fp).unwrap();
        assert_eq!(
            (a.state, a.active_at, a.fired_at),
            (AlertState::Firing, t(0), Some(t(60)))
        );

        let tr = table.apply(t(75), vec![obs("m", false, 0.1)], hold, Duration::zero());
        assert_eq!(tr, vec![Transition::Resolved(fp)]);
        assert_eq!(table.get(fp).unwrap().resolved_at, Some(t(75)));
        assert_eq!(table.active().count(), 0);

        // Kept for the retention, then forgotten.
        table.apply(t(75 + 14 * 60), vec![], hold, Duration::zero());
        assert!(table.get(fp).is_some());
        table.apply(t(75 + 15 * 60), vec![], hold, Duration::zero());
        assert!(table.get(fp).is_none());
    }

    #[test]
    fn pending_that_clears_is_dropped_silently() {
        let mut table = AlertTable::default();
        table.apply(
            t(0),
            vec![obs("m", true, 1.0)],
            Duration::seconds(60),
            Duration::zero(),
        );
        let tr = table.apply(
            t(15),
            vec![obs("m", false, 0.0)],
            Duration::seconds(60),
            Duration::zero(),
        );
        assert!(tr.is_empty());
        assert_eq!(table.all().count(), 0);
    }

    #[test]
    fn zero_hold_fires_in_the_same_evaluation() {
        let mut table = AlertTable::default();
        let tr = table.apply(
            t(0),
            vec![obs("m", true, 1.0)],
            Duration::zero(),
            Duration::zero(),
        );
        assert_eq!(tr.len(), 1);
    }

    #[test]
    fn keep_firing_for_holds_a_cleared_alert() {
        let mut table = AlertTable::default();
        let keep = Duration::seconds(30);
        table.apply(t(0), vec![obs("m", true, 1.0)], Duration::zero(), keep);
        let fp = obs("m", true, 1.0).labels.fingerprint();
        assert_eq!(
            table.apply(t(10), vec![], Duration::zero(), keep),
            vec![Transition::Firing(fp)]
        );
        assert_eq!(
            table.apply(t(39), vec![], Duration::zero(), keep),
            vec![Transition::Firing(fp)]
        );
        assert_eq!(
            table.apply(t(40), vec![], Duration::zero(), keep),
            vec![Transition::Resolved(fp)]
        );
    }

    #[test]
    fn refiring_after_resolution_starts_a_new_alert() {
        let mut table = AlertTable::default();
        let fp = obs("m", true, 1.0).labels.fingerprint();
        table.apply(
            t(0),
            vec![obs("m", true, 1.0)],
            Duration::zero(),
            Duration::zero(),
        );
        table.apply(t(10), vec![], Duration::zero(), Duration::zero());
        table.apply(
            t(20),
            vec![obs("m", true, 1.0)],
            Duration::seconds(30),
            Duration::zero(),
        );
        let a = table.get(fp).unwrap();
        assert_eq!(
            (a.state, a.active_at, a.resolved_at),
            (AlertState::Pending, t(20), None)
        );
    }
}
