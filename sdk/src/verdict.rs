//! What a detector (per series) or a composite (per group) returns: a [`Verdict`] and
//! the state to hand back next time, together an [`Output`]. Plain data: never imports
//! the bindings (`glue` converts).

/// Annotation that marks a detector verdict as judging a *group* of series rather than
/// one: its value is a comma-separated list of label names (e.g. `le`). The host drops
/// those labels from the alert's labels, so every series of the group (e.g. the
/// `_bucket` series of one histogram) maps to ONE alert, and removes the annotation.
/// Set it with [`Verdict::group_without`].
pub const GROUP_WITHOUT_ANNOTATION: &str = "__group_without__";

/// The judgement on one series or group.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// True when the condition holds: the alert goes pending, then firing.
    pub firing: bool,
    /// The statistic the decision was made on (reduced value, z-score, burn rate...).
    /// Becomes the alert's `$value`.
    pub score: f64,
    /// One line for humans, e.g. `z=4.1 over 20 samples`.
    pub summary: String,
    /// Extra alert annotations, in order: threshold, baseline, window size...
    pub annotations: Vec<(String, String)>,
}

impl Verdict {
    /// A verdict with no annotations.
    pub fn new(firing: bool, score: f64, summary: impl Into<String>) -> Self {
        Self {
            firing,
            score,
            summary: summary.into(),
            annotations: Vec::new(),
        }
    }

    /// A firing verdict.
    pub fn firing(score: f64, summary: impl Into<String>) -> Self {
        Self::new(true, score, summary)
    }

    /// A verdict that does not fire.
    pub fn ok(score: f64, summary: impl Into<String>) -> Self {
        Self::new(false, score, summary)
    }

    /// Adds an annotation.
    pub fn annotate(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.annotations.push((name.into(), value.into()));
        self
    }

    /// Marks the verdict as covering the group of series that differ only in
    /// `labels` (see [`GROUP_WITHOUT_ANNOTATION`]): the host raises one alert per group,
    /// labelled without them. Give every member of the group the same verdict.
    pub fn group_without(self, labels: &[&str]) -> Self {
        self.annotate(GROUP_WITHOUT_ANNOTATION, labels.join(","))
    }

    /// The value of annotation `name`, if set.
    pub fn annotation(&self, name: &str) -> Option<&str> {
        self.annotations
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Wraps the verdict with state for the next evaluation.
    pub fn with_state(self, state: Vec<u8>) -> Output {
        Output {
            verdict: self,
            state: Some(state),
        }
    }
}

/// A verdict and the state the host stores for next time (`None`: keep none).
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// The judgement.
    pub verdict: Verdict,
    /// Opaque bytes the host returns as `Series::state` on the next evaluation of the
    /// same series; the host owns them, so reloads and restarts lose nothing.
    pub state: Option<Vec<u8>>,
}

impl Output {
    /// An output without state.
    pub fn new(verdict: Verdict) -> Self {
        Self {
            verdict,
            state: None,
        }
    }
}

impl From<Verdict> for Output {
    fn from(verdict: Verdict) -> Self {
        Self::new(verdict)
    }
}
