//! `Labels`: the immutable, sorted label set that names a series (and, later,
//! an alert). One allocation holds all names and values back to back; the
//! Prometheus fingerprint is computed once, at construction, so the store can
//! hash a series per batch for free.

use std::cmp::Ordering;
use std::fmt::{self, Write as _};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock};

use serde::ser::{Serialize, SerializeMap, Serializer};

/// The label that carries the metric name.
pub const METRIC_NAME: &str = "__name__";

// FNV-1a 64, as in prometheus/common model/fnv.go.
const FNV_OFFSET_BASIS: u64 = 14_695_981_039_346_656_037;
const FNV_PRIME: u64 = 1_099_511_628_211;
// Cannot occur in UTF-8, so `a=bc` and `ab=c` hash differently
// (prometheus/common model.SeparatorByte).
const SEPARATOR: u8 = 0xff;

fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// Prometheus's legacy label name rule, `[a-zA-Z_][a-zA-Z0-9_]*`, which
/// ingest, queries, routing and silences all enforce.
pub fn is_label_name(name: &str) -> bool {
    let b = name.as_bytes();
    matches!(b.first(), Some(c) if c.is_ascii_alphabetic() || *c == b'_')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// An immutable set of `name="value"` labels, sorted by name, cheap to clone
/// (one `Arc`).
///
/// Labels with an empty value are dropped at construction: as in Prometheus,
/// `a=""` means the same as no label `a`. Duplicate names keep the last value.
#[derive(Clone)]
pub struct Labels(Arc<Inner>);

struct Inner {
    fingerprint: u64,
    /// name0 value0 name1 value1 … with no separators.
    text: Box<str>,
    /// `ends[2i]` is where name i ends, `ends[2i + 1]` where value i ends.
    ends: Box<[usize]>,
}

static EMPTY: LazyLock<Labels> =
    LazyLock::new(|| Labels::from_sorted_unique(&[] as &[(&str, &str)]));

impl Labels {
    /// Builds a label set from `(name, value)` pairs in any order.
    pub fn new<I, N, V>(pairs: I) -> Labels
    where
        I: IntoIterator<Item = (N, V)>,
        N: AsRef<str>,
        V: AsRef<str>,
    {
        // In-place collect: no new allocation when `pairs` is a `Vec`.
        let mut pairs: Vec<(N, V)> = pairs
            .into_iter()
            .filter(|(_, v)| !v.as_ref().is_empty())
            .collect();
        let sorted_unique = pairs.windows(2).all(|w| w[0].0.as_ref() < w[1].0.as_ref());
        if !sorted_unique {
            // Stable, so among equal names the last given stays last.
            pairs.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
            let mut keep = Vec::with_capacity(pairs.len());
            let mut iter = pairs.into_iter().peekable();
            while let Some(pair) = iter.next() {
                if iter
                    .peek()
                    .is_none_or(|next| next.0.as_ref() != pair.0.as_ref())
                {
                    keep.push(pair);
                }
            }
            pairs = keep;
        }
        Labels::from_sorted_unique(&pairs)
    }

    /// The empty label set.
    pub fn empty() -> Labels {
        EMPTY.clone()
    }

    fn from_sorted_unique<N: AsRef<str>, V: AsRef<str>>(pairs: &[(N, V)]) -> Labels {
        let len: usize = pairs
            .iter()
            .map(|(n, v)| n.as_ref().len() + v.as_ref().len())
            .sum();
        let mut text = String::with_capacity(len);
        let mut ends = Vec::with_capacity(pairs.len() * 2);
        let mut hash = FNV_OFFSET_BASIS;
        for (name, value) in pairs {
            let (name, value) = (name.as_ref(), value.as_ref());
            text.push_str(name);
            ends.push(text.len());
            text.push_str(value);
            ends.push(text.len());
            hash = fnv1a(hash, name.as_bytes());
            hash = fnv1a(hash, &[SEPARATOR]);
            hash = fnv1a(hash, value.as_bytes());
            hash = fnv1a(hash, &[SEPARATOR]);
        }
        Labels(Arc::new(Inner {
            fingerprint: hash,
            text: text.into_boxed_str(),
            ends: ends.into_boxed_slice(),
        }))
    }

    /// The fingerprint the label set of these pairs would have, without
    /// building it: `pairs` sorted by name, names unique, no empty value
    /// (what [`Labels::new`] keeps).
    pub fn fingerprint_of_sorted<N: AsRef<str>, V: AsRef<str>>(pairs: &[(N, V)]) -> u64 {
        let mut hash = FNV_OFFSET_BASIS;
        for (name, value) in pairs {
            hash = fnv1a(hash, name.as_ref().as_bytes());
            hash = fnv1a(hash, &[SEPARATOR]);
            hash = fnv1a(hash, value.as_ref().as_bytes());
            hash = fnv1a(hash, &[SEPARATOR]);
        }
        hash
    }

    /// Whether these are exactly the pairs of `self` (sorted by name, names
    /// unique, no empty value), compared without building a label set.
    pub fn equals_sorted<N: AsRef<str>, V: AsRef<str>>(&self, pairs: &[(N, V)]) -> bool {
        self.len() == pairs.len()
            && self
                .iter()
                .zip(pairs)
                .all(|((n, v), (pn, pv))| n == pn.as_ref() && v == pv.as_ref())
    }

    /// Builds a label set from pairs already sorted by name, names unique,
    /// no empty value (checked in debug builds).
    pub fn from_sorted<N: AsRef<str>, V: AsRef<str>>(pairs: &[(N, V)]) -> Labels {
        debug_assert!(
            pairs.windows(2).all(|w| w[0].0.as_ref() < w[1].0.as_ref())
                && pairs.iter().all(|(_, v)| !v.as_ref().is_empty())
        );
        Labels::from_sorted_unique(pairs)
    }

    /// The Prometheus / Alertmanager fingerprint (`model.LabelSet.Fingerprint()`):
    /// FNV-1a 64 over `name 0xff value 0xff` for each label in name order.
    pub fn fingerprint(&self) -> u64 {
        self.0.fingerprint
    }

    /// The value of label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        let mut lo = 0;
        let mut hi = self.len();
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (n, v) = self.pair(mid);
            match n.cmp(name) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return Some(v),
            }
        }
        None
    }

    /// The metric name (`__name__`), if present.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// Number of labels, `__name__` included.
    pub fn len(&self) -> usize {
        self.0.ends.len() / 2
    }

    /// Whether there are no labels at all.
    pub fn is_empty(&self) -> bool {
        self.0.ends.is_empty()
    }

    /// `(name, value)` pairs in name order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        (0..self.len()).map(move |i| self.pair(i))
    }

    fn pair(&self, i: usize) -> (&str, &str) {
        let ends = &self.0.ends;
        let start = if i == 0 { 0 } else { ends[2 * i - 1] };
        let text = &self.0.text;
        (
            &text[start..ends[2 * i]],
            &text[ends[2 * i]..ends[2 * i + 1]],
        )
    }

    /// Full Prometheus notation, metric name included as a label, no spaces:
    /// `{__name__="up",job="api"}`, values escaped as Go does (`\\`, `\"`, `\n`).
    /// This is the string plugins receive.
    pub fn to_prom_string(&self) -> String {
        let mut out = String::with_capacity(self.0.text.len() + 4 * self.len() + 2);
        out.push('{');
        for (i, (name, value)) in self.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(name);
            out.push('=');
            push_quoted(&mut out, value);
        }
        out.push('}');
        out
    }
}

/// Appends `"value"` with `\`, `"` and newline escaped.
fn push_quoted(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `metric{a="b", c="d"}` like Prometheus `model.Metric.String()`; `metric`
/// alone when there are no other labels, `{}` for the empty set.
impl Default for Labels {
    fn default() -> Labels {
        Labels::empty()
    }
}

impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.metric_name();
        f.write_str(name.unwrap_or(""))?;
        let others = self.len() - usize::from(name.is_some());
        if others == 0 {
            return if name.is_some() {
                Ok(())
            } else {
                f.write_str("{}")
            };
        }
        f.write_char('{')?;
        let mut value_buf = String::new();
        let mut first = true;
        for (n, v) in self.iter().filter(|(n, _)| *n != METRIC_NAME) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            value_buf.clear();
            push_quoted(&mut value_buf, v);
            write!(f, "{n}={value_buf}")?;
        }
        f.write_char('}')
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_prom_string())
    }
}

impl PartialEq for Labels {
    fn eq(&self, other: &Labels) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || (self.0.fingerprint == other.0.fingerprint
                && self.0.ends == other.0.ends
                && self.0.text == other.0.text)
    }
}

impl Eq for Labels {}

impl Hash for Labels {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.fingerprint);
    }
}

/// Label by label, name then value, like Prometheus `labels.Compare`.
impl Ord for Labels {
    fn cmp(&self, other: &Labels) -> Ordering {
        self.iter().cmp(other.iter())
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Labels) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Serialized as a JSON object `{"__name__": "up", "job": "api"}`.
impl Serialize for Labels {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (n, v) in self.iter() {
            map.serialize_entry(n, v)?;
        }
        map.end()
    }
}

impl<N: AsRef<str>, V: AsRef<str>> FromIterator<(N, V)> for Labels {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Labels {
        Labels::new(iter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrowed_pairs_fingerprint_and_compare_like_the_label_set() {
        let pairs = [("alertname", "A"), ("model_name", "m\"1")];
        let labels = Labels::new(pairs);
        assert_eq!(Labels::fingerprint_of_sorted(&pairs), labels.fingerprint());
        assert!(labels.equals_sorted(&pairs));
        assert_eq!(Labels::from_sorted(&pairs), labels);
        assert!(!labels.equals_sorted(&[("alertname", "A")]));
        assert!(!labels.equals_sorted(&[("alertname", "A"), ("model_name", "m")]));
        // Name and value boundaries count: `a=bc` is not `ab=c`.
        assert_ne!(
            Labels::fingerprint_of_sorted(&[("a", "bc")]),
            Labels::fingerprint_of_sorted(&[("ab", "c")])
        );
        assert!(!Labels::new([("a", "bc")]).equals_sorted(&[("ab", "c")]));
        let empty: [(&str, &str); 0] = [];
        assert_eq!(
            Labels::fingerprint_of_sorted(&empty),
            Labels::empty().fingerprint()
        );
    }
}
