//! Inhibition with Alertmanager's semantics: while a firing alert matches an
//! inhibit rule's source matchers, alerts matching its target matchers with
//! the same values of the `equal` labels are muted (e.g. model-quality
//! alerts while `ModelServerDown` fires for the same `model_name`). An alert
//! that matches both sides does not inhibit itself, nor alerts that also
//! match both sides.
//!
//! Owns each rule's cache of source alerts, fed with every alert the host
//! receives ([`Inhibitor::observe`]) and indexed by the `equal` label
//! values, so a mute check costs one hash lookup per rule.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use parking_lot::RwLock;

use crate::alert::Alert;
use crate::config::InhibitRuleConfig;
use crate::store::{Labels, MatchOp, Matcher};

use super::tree::parse_matchers;

/// One compiled inhibit rule.
struct Rule {
    source: Vec<Matcher>,
    target: Vec<Matcher>,
    equal: Vec<String>,
    /// Source alerts by the values of the `equal` labels, then fingerprint.
    sources: RwLock<HashMap<String, HashMap<u64, Alert>>>,
}

impl Rule {
    fn equal_key(&self, labels: &Labels) -> String {
        let mut key = String::new();
        for name in &self.equal {
            key.push_str(labels.get(name).unwrap_or(""));
            key.push('\u{ff}');
        }
        key
    }
}

/// Why an inhibit rule was refused: the rule's index and the reason.
#[derive(Debug, Clone, thiserror::Error)]
#[error("inhibit_rules[{index}]: {reason}")]
pub struct InhibitError {
    pub index: usize,
    pub reason: String,
}

/// The inhibit rules of a config.
#[derive(Default)]
pub struct Inhibitor {
    rules: Vec<Rule>,
}

fn matches_all(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers
        .iter()
        .all(|m| m.matches(labels.get(m.name()).unwrap_or("")))
}

/// The legacy `*_match` / `*_match_re` maps and the `*_matchers` list as one
/// list of matchers.
fn side(
    index: usize,
    field: &str,
    eq: &std::collections::BTreeMap<String, String>,
    re: &std::collections::BTreeMap<String, String>,
    list: &[String],
) -> Result<Vec<Matcher>, InhibitError> {
    let fail = |reason: String| InhibitError { index, reason };
    let mut out = Vec::new();
    for (name, value) in eq {
        out.push(Matcher::equal(name.clone(), value.clone()));
    }
    for (name, value) in re {
        out.push(
            Matcher::new(MatchOp::RegexMatch, name.clone(), value.clone())
                .map_err(|e| fail(format!("{field}_match_re: {e}")))?,
        );
    }
    for line in list {
        out.extend(parse_matchers(line).map_err(|e| fail(format!("{field}_matchers: {e}")))?);
    }
    Ok(out)
}

impl Inhibitor {
    /// Compiles the rules; errors name the rule by index.
    pub fn from_config(rules: &[InhibitRuleConfig]) -> Result<Self, InhibitError> {
        let rules = rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let source = side(
                    i,
                    "source",
                    &r.source_match,
                    &r.source_match_re,
                    &r.source_matchers,
                )?;
                let target = side(
                    i,
                    "target",
                    &r.target_match,
                    &r.target_match_re,
                    &r.target_matchers,
                )?;
                for name in &r.equal {
                    if !crate::store::is_label_name(name) {
                        return Err(InhibitError {
                            index: i,
                            reason: format!("invalid label name {name:?} in equal list"),
                        });
                    }
                }
                Ok(Rule {
                    source,
                    target,
                    equal: r.equal.clone(),
                    sources: RwLock::new(HashMap::new()),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { rules })
    }

    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Records an alert (new, updated or resolved) as a possible source.
    pub fn observe(&self, alert: &Alert) {
        for rule in &self.rules {
            if matches_all(&rule.source, &alert.labels) {
                let key = rule.equal_key(&alert.labels);
                rule.sources
                    .write()
                    .entry(key)
                    .or_default()
                    .insert(alert.fingerprint(), alert.clone());
            }
        }
    }

    /// Alertmanager's `Inhibitor.Mutes`: the fingerprint of a firing source
    /// alert that inhibits `labels` now, if any.
    pub fn mutes(&self, labels: &Labels, now: DateTime<Utc>) -> Option<u64> {
        for rule in &self.rules {
            if !matches_all(&rule.target, labels) {
                continue;
            }
            // A target that is also a source is inhibited only by sources
            // that are not themselves targets.
            let exclude_two_sided = matches_all(&rule.source, labels);
            let sources = rule.sources.read();
            let Some(candidates) = sources.get(&rule.equal_key(labels)) else {
                continue;
            };
            let found = candidates.iter().find(|(_, a)| {
                let two_sided = exclude_two_sided && matches_all(&rule.target, &a.labels);
                !a.is_resolved_at(now) && !two_sided
            });
            if let Some((fp, _)) = found {
                return Some(*fp);
            }
        }
        None
    }

    /// Forgets resolved source alerts.
    pub fn gc(&self, now: DateTime<Utc>) {
        for rule in &self.rules {
            let mut sources = rule.sources.write();
            sources.retain(|_, alerts| {
                alerts.retain(|_, a| !a.is_resolved_at(now));
                !alerts.is_empty()
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(pairs: &[(&str, &str)], resolved: bool) -> Alert {
        let now = Utc::now();
        Alert {
            labels: Labels::new(pairs.iter().copied()),
            annotations: Default::default(),
            starts_at: now - chrono::Duration::minutes(5),
            ends_at: resolved.then(|| now - chrono::Duration::minutes(1)),
            generator_url: "".into(),
        }
    }

    fn rule(source: &[&str], target: &[&str], equal: &[&str]) -> InhibitRuleConfig {
        InhibitRuleConfig {
            source_matchers: source.iter().map(|s| s.to_string()).collect(),
            target_matchers: target.iter().map(|s| s.to_string()).collect(),
            equal: equal.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn server_down_inhibits_quality_alerts_of_the_same_model() {
        let ih = Inhibitor::from_config(&[rule(
            &["alertname=ModelServerDown"],
            &["team=ml", "alertname!=ModelServerDown"],
            &["model_name"],
        )])
        .expect("valid");
        let now = Utc::now();
        let target = Labels::new([
            ("alertname", "AccuracyLow"),
            ("team", "ml"),
            ("model_name", "fraud"),
        ]);
        assert_eq!(ih.mutes(&target, now), None, "no source yet");
        let down = alert(
            &[("alertname", "ModelServerDown"), ("model_name", "fraud")],
            false,
        );
        ih.observe(&down);
        assert_eq!(ih.mutes(&target, now), Some(down.fingerprint()));
        let other = Labels::new([
            ("alertname", "AccuracyLow"),
            ("team", "ml"),
            ("model_name", "churn"),
        ]);
        assert_eq!(ih.mutes(&other, now), None, "equal label differs");
        // The source resolves: the target is no longer muted.
        ih.observe(&alert(
            &[("alertname", "ModelServerDown"), ("model_name", "fraud")],
            true,
        ));
        assert_eq!(ih.mutes(&target, now), None);
        ih.gc(now);
        assert!(ih.rules[0].sources.read().is_empty());
    }

    #[test]
    fn missing_equal_labels_are_equal_and_legacy_matchers_work() {
        let cfg = InhibitRuleConfig {
            source_match: [("severity".to_string(), "critical".to_string())].into(),
            target_match_re: [("severity".to_string(), "warn.*".to_string())].into(),
            equal: vec!["cluster".into()],
            ..Default::default()
        };
        let ih = Inhibitor::from_config(&[cfg]).expect("valid");
        ih.observe(&alert(
            &[("alertname", "X"), ("severity", "critical")],
            false,
        ));
        let now = Utc::now();
        assert!(
            ih.mutes(&Labels::new([("severity", "warning")]), now)
                .is_some()
        );
        assert!(
            ih.mutes(
                &Labels::new([("severity", "warning"), ("cluster", "eu")]),
                now
            )
            .is_none()
        );
        assert!(
            ih.mutes(&Labels::new([("severity", "xwarning")]), now)
                .is_none(),
            "anchored"
        );
    }

    #[test]
    fn an_alert_matching_both_sides_does_not_inhibit_itself() {
        let ih = Inhibitor::from_config(&[rule(
            &["severity=~critical|warning"],
            &["severity=~warning|info"],
            &[],
        )])
        .expect("valid");
        let now = Utc::now();
        let both = alert(&[("alertname", "A"), ("severity", "warning")], false);
        ih.observe(&both);
        assert_eq!(
            ih.mutes(&both.labels, now),
            None,
            "two-sided alerts do not inhibit each other"
        );
        assert!(
            ih.mutes(
                &Labels::new([("alertname", "B"), ("severity", "info")]),
                now
            )
            .is_some()
        );
        let crit = alert(&[("alertname", "C"), ("severity", "critical")], false);
        ih.observe(&crit);
        assert_eq!(ih.mutes(&both.labels, now), Some(crit.fingerprint()));
    }

    #[test]
    fn bad_rules_name_their_index() {
        let err =
            Inhibitor::from_config(&[rule(&["a=b"], &["c=d"], &[]), rule(&["a=~("], &[], &[])])
                .err()
                .expect("refused");
        assert_eq!(err.index, 1);
        assert!(
            err.to_string()
                .starts_with("inhibit_rules[1]: source_matchers"),
            "{err}"
        );
    }
}
