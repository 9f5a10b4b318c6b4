//! Metrics: a module reports counters, gauges and histograms
//! (`report_metrics`) and reads the node's and other modules' current values
//! (`read_metrics`).
//!
//! A *series* is one metric name with one set of label values. The node
//! keeps at most a configured number of series per module; a report that
//! would create more is refused whole with `quota_exceeded`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What kind of value a metric is, as Prometheus means it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// Only goes up; a report adds `value` (≥ 0) to it.
    Counter,
    /// Goes up and down; a report sets it to `value`.
    Gauge,
    /// Counts observations into buckets; a report observes each of
    /// `observations`.
    Histogram,
}

impl MetricKind {
    /// The wire and Prometheus spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// One update of one series, in `report_metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricUpdate {
    /// The metric's name as the module knows it (`blocks_seen`); the node
    /// exposes it as `module_<module>_<name>`, with anything that is not a
    /// Prometheus name character replaced by `_`.
    pub name: String,
    /// Counter, gauge or histogram. A name keeps the kind of its first
    /// report.
    pub kind: MetricKind,
    /// One line of help; the first report's help is kept.
    #[serde(default)]
    pub help: Option<String>,
    /// Label names to values; names are sanitized like metric names.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Counter: the increment (finite, ≥ 0). Gauge: the new value (finite).
    /// Ignored for a histogram.
    #[serde(default)]
    pub value: f64,
    /// Histogram: the values observed. Ignored otherwise.
    #[serde(default)]
    pub observations: Vec<f64>,
    /// Histogram: upper bucket bounds, ascending, at most 32; only the
    /// first report of a name sets them (default: Prometheus' 11 default
    /// buckets, 0.005 to 10).
    #[serde(default)]
    pub buckets: Option<Vec<f64>>,
}

/// Params of `report_metrics`: applied all or nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportMetrics {
    /// The updates, in order.
    pub metrics: Vec<MetricUpdate>,
}

/// Result of `report_metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportMetricsResult {
    /// The module's series after the report.
    pub series: u64,
    /// The most series it may have.
    pub max_series: u64,
}

/// Params of `read_metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadMetrics {
    /// Only this source: `node` for the node's own metrics, or a module's
    /// name; nil for every source.
    #[serde(default)]
    pub source: Option<String>,
    /// Only metrics whose exposed name starts with this.
    #[serde(default)]
    pub prefix: Option<String>,
}

/// One series' current value, in `read_metrics`' answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricValue {
    /// `node`, or the name of the module that reported it.
    pub source: String,
    /// The exposed name, as in the node's `/metrics` (a counter without its
    /// `_total` suffix).
    pub name: String,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// Label names to values.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Counter or gauge: the value. Histogram: the sum of observations.
    pub value: f64,
    /// Histogram: how many observations.
    #[serde(default)]
    pub count: Option<u64>,
}

/// Result of `read_metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricValues {
    /// Every matching series, node first, then modules by name.
    pub metrics: Vec<MetricValue>,
}
