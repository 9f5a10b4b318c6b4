//! A metric family as the exposition and `read_metrics` see it: the same
//! shape for the node's own metrics and for a module's.

use std::collections::BTreeMap;

use blvm_module_protocol::methods::metrics::MetricKind;

/// One metric name with all its series.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The exposed name (a counter's without `_total`).
    pub name: String,
    /// One line of help.
    pub help: String,
    /// Counter, gauge or histogram; every series is of this kind.
    pub kind: MetricKind,
    /// Its series, by label set.
    pub series: BTreeMap<Labels, SeriesValue>,
}

/// A series' label names and values, sorted by name.
pub type Labels = Vec<(String, String)>;

/// A series' current value.
#[derive(Debug, Clone, PartialEq)]
pub enum SeriesValue {
    /// A counter's total.
    Counter(f64),
    /// A gauge's value.
    Gauge(f64),
    /// A histogram.
    Histogram(Histogram),
}

/// A classic histogram: upper bounds and a count per bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Upper bounds, ascending; `+Inf` is implicit.
    pub bounds: Vec<f64>,
    /// Observations per bucket (not cumulative); one more than `bounds`,
    /// the last for `+Inf`.
    pub counts: Vec<u64>,
    /// Sum of the observations.
    pub sum: f64,
}

impl Histogram {
    /// An empty histogram over `bounds`.
    pub fn new(bounds: Vec<f64>) -> Self {
        let counts = vec![0; bounds.len() + 1];
        Histogram {
            bounds,
            counts,
            sum: 0.0,
        }
    }

    /// Records one observation.
    pub fn observe(&mut self, v: f64) {
        let i = self.bounds.iter().position(|b| v <= *b).unwrap_or(self.bounds.len());
        self.counts[i] += 1;
        self.sum += v;
    }

    /// How many observations.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// `(upper bound, observations in that bucket)`, `+Inf` last: what
    /// `prometheus-client`'s encoder takes (it writes them cumulative).
    pub fn buckets(&self) -> Vec<(f64, u64)> {
        self.bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.counts.iter().copied())
            .collect()
    }
}

impl Family {
    /// An empty family.
    pub fn new(name: impl Into<String>, help: impl Into<String>, kind: MetricKind) -> Self {
        Family {
            name: name.into(),
            help: help.into(),
            kind,
            series: BTreeMap::new(),
        }
    }

    /// Adds (or replaces) a counter or gauge series; for the node's own
    /// metrics, built fresh at every scrape.
    pub fn with(mut self, labels: &[(&str, &str)], value: f64) -> Self {
        let labels = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let value = match self.kind {
            MetricKind::Counter => SeriesValue::Counter(value),
            _ => SeriesValue::Gauge(value),
        };
        self.series.insert(labels, value);
        self
    }
}
