//! The metrics service: modules report counters, gauges and histograms
//! (`report_metrics`), read the node's and each other's current values
//! (`read_metrics`), and the node serves them all as Prometheus text.
//!
//! # What it owns
//!
//! Every module's series, keyed by module name and tagged with the spawn
//! (module id) that reported them, and the cap on how many series each
//! module may have ([`MetricsLimits`]). A report is applied all or
//! nothing: a report that would take the module past its cap is answered
//! `quota_exceeded` and changes nothing, so a module never ends up with
//! half a report.
//!
//! # When series go
//!
//! A module's series are removed when its connection closes: on unload,
//! on reload, and on a crash. A restarted module starts with no series and
//! reports afresh; its counters start again at zero, which Prometheus reads
//! as a counter reset (`rate()` handles it), and nothing stale is exposed
//! in the meantime under a module that is not running. The node's own
//! per-module metrics (`blvm_module_up`, `blvm_module_restarts_total`, …)
//! stay for as long as the module is loaded.

mod exposition;
mod family;
mod modules;
pub mod names;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use blvm_module_protocol::methods::metrics::{
    MetricKind, MetricUpdate, MetricValue, MetricValues, ReadMetrics, ReportMetrics, ReportMetricsResult,
};
use blvm_module_protocol::{ErrorCode, RemoteError};

pub use exposition::{render, CONTENT_TYPE};
pub use family::{Family, Histogram, Labels, SeriesValue};
pub use modules::module_families;

/// The series cap of a module when the operator sets none.
pub const DEFAULT_MAX_SERIES: usize = 1000;

/// The most buckets a histogram may have.
pub const MAX_BUCKETS: usize = 32;

/// Prometheus' default histogram buckets (client_golang's `DefBuckets`).
pub const DEFAULT_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The source name of the node's own metrics in `read_metrics`.
pub const NODE_SOURCE: &str = "node";

/// The operator's caps on metric series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsLimits {
    /// Series every module may have (default [`DEFAULT_MAX_SERIES`]).
    pub max_series: usize,
    /// Per-module caps, replacing `max_series` for that module.
    pub max_series_per_module: BTreeMap<String, usize>,
}

impl Default for MetricsLimits {
    fn default() -> Self {
        MetricsLimits {
            max_series: DEFAULT_MAX_SERIES,
            max_series_per_module: BTreeMap::new(),
        }
    }
}

impl MetricsLimits {
    /// The cap of module `name`.
    pub fn max_series_of(&self, name: &str) -> usize {
        self.max_series_per_module.get(name).copied().unwrap_or(self.max_series)
    }
}

/// Something that produces families at scrape time.
type Source = Box<dyn Fn() -> Vec<Family> + Send + Sync>;

/// One module's series.
#[derive(Debug)]
struct ModuleSeries {
    /// The spawn that reported them: a late close of an older connection
    /// never removes a newer spawn's series.
    module_id: String,
    /// By exposed name.
    families: BTreeMap<String, Family>,
    /// The number of series in `families`.
    series: usize,
}

/// The metrics of the node and of every module.
pub struct MetricsService {
    limits: MetricsLimits,
    modules: Mutex<BTreeMap<String, ModuleSeries>>,
    requests: RwLock<HashMap<String, AtomicU64>>,
    node_source: RwLock<Option<Source>>,
    module_source: RwLock<Option<Source>>,
}

impl std::fmt::Debug for MetricsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsService").field("limits", &self.limits).finish()
    }
}

impl Default for MetricsService {
    fn default() -> Self {
        MetricsService::new(MetricsLimits::default())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn quota_exceeded(message: String) -> RemoteError {
    RemoteError::new(ErrorCode::QuotaExceeded, message)
}

impl MetricsService {
    /// A service with `limits` and no series.
    pub fn new(limits: MetricsLimits) -> Self {
        MetricsService {
            limits,
            modules: Mutex::new(BTreeMap::new()),
            requests: RwLock::new(HashMap::new()),
            node_source: RwLock::new(None),
            module_source: RwLock::new(None),
        }
    }

    /// The caps.
    pub fn limits(&self) -> &MetricsLimits {
        &self.limits
    }

    /// Sets what produces the node's own metrics (height, mempool, RPC …)
    /// at each scrape and `read_metrics`.
    pub fn set_node_source(&self, source: impl Fn() -> Vec<Family> + Send + Sync + 'static) {
        *self
            .node_source
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Box::new(source));
    }

    /// Sets what produces the node's per-module metrics (the manager's).
    pub(crate) fn set_module_source(&self, source: impl Fn() -> Vec<Family> + Send + Sync + 'static) {
        *self
            .module_source
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Box::new(source));
    }

    /// Counts one request of module `name` (any method, any answer).
    pub fn count_request(&self, name: &str) {
        {
            let requests = self.requests.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(n) = requests.get(name) {
                n.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        let mut requests = self.requests.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        requests
            .entry(name.to_owned())
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Requests module `name` has made since the node started.
    pub fn requests(&self, name: &str) -> u64 {
        let requests = self.requests.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        requests.get(name).map_or(0, |n| n.load(Ordering::Relaxed))
    }

    /// How many series module `name` has now.
    pub fn series(&self, name: &str) -> usize {
        lock(&self.modules).get(name).map_or(0, |m| m.series)
    }

    /// Applies a report of module `module_name` (spawn `module_id`), all
    /// or nothing.
    pub fn report(
        &self,
        module_id: &str,
        module_name: &str,
        report: &ReportMetrics,
    ) -> Result<ReportMetricsResult, RemoteError> {
        let cap = self.limits.max_series_of(module_name);
        let updates = report
            .metrics
            .iter()
            .map(|u| Prepared::new(module_name, u))
            .collect::<Result<Vec<_>, _>>()?;
        let mut modules = lock(&self.modules);
        let entry = modules.entry(module_name.to_owned()).or_insert_with(|| ModuleSeries {
            module_id: module_id.to_owned(),
            families: BTreeMap::new(),
            series: 0,
        });
        if entry.module_id != module_id {
            // Left by an older spawn whose close has not been seen yet.
            *entry = ModuleSeries {
                module_id: module_id.to_owned(),
                families: BTreeMap::new(),
                series: 0,
            };
        }
        // First pass: kinds agree and the cap holds; nothing changes yet.
        let mut kinds: HashMap<&str, MetricKind> = HashMap::new();
        let mut new_series: HashSet<(&str, &Labels)> = HashSet::new();
        for u in &updates {
            let existing = entry.families.get(&u.name);
            let kind = existing.map(|f| f.kind).or_else(|| kinds.get(u.name.as_str()).copied());
            if let Some(kind) = kind.filter(|k| *k != u.kind) {
                return Err(RemoteError::invalid_params(
                    "report_metrics",
                    format_args!(
                        "`{}` is a {}, not a {} (a metric keeps the kind of its first report)",
                        u.raw_name,
                        kind.as_str(),
                        u.kind.as_str()
                    ),
                ));
            }
            kinds.insert(&u.name, u.kind);
            if !existing.is_some_and(|f| f.series.contains_key(&u.labels)) {
                new_series.insert((&u.name, &u.labels));
            }
        }
        let after = entry.series + new_series.len();
        if after > cap {
            return Err(quota_exceeded(format!(
                "report_metrics: the report needs {} new series and module `{module_name}` has {} of its \
                 {cap} (the operator's series cap); nothing was recorded",
                new_series.len(),
                entry.series
            )));
        }
        // Second pass: apply.
        for u in updates {
            let family = entry
                .families
                .entry(u.name.clone())
                .or_insert_with(|| Family::new(u.name.clone(), u.help.clone(), u.kind));
            let bounds = family.series.values().find_map(|v| match v {
                SeriesValue::Histogram(h) => Some(h.bounds.clone()),
                _ => None,
            });
            let series = family.series.entry(u.labels).or_insert_with(|| match u.kind {
                MetricKind::Counter => SeriesValue::Counter(0.0),
                MetricKind::Gauge => SeriesValue::Gauge(0.0),
                MetricKind::Histogram => SeriesValue::Histogram(Histogram::new(bounds.unwrap_or(u.buckets))),
            });
            match series {
                SeriesValue::Counter(v) => *v += u.value,
                SeriesValue::Gauge(v) => *v = u.value,
                SeriesValue::Histogram(h) => u.observations.iter().for_each(|o| h.observe(*o)),
            }
        }
        entry.series = after;
        Ok(ReportMetricsResult {
            series: after as u64,
            max_series: cap as u64,
        })
    }

    /// Removes the series of spawn `module_id`: its connection closed.
    pub fn remove(&self, module_id: &str) {
        let mut modules = lock(&self.modules);
        modules.retain(|_, m| m.module_id != module_id);
    }

    /// The node's own families: its source's, then the per-module ones.
    fn node_families(&self) -> Vec<Family> {
        let mut families = Vec::new();
        for slot in [&self.node_source, &self.module_source] {
            if let Some(f) = &*slot.read().unwrap_or_else(std::sync::PoisonError::into_inner) {
                families.extend(f());
            }
        }
        families
    }

    /// The Prometheus text exposition of everything: the node's metrics,
    /// then every module's, by module name.
    pub fn render(&self) -> String {
        let mut families = self.node_families();
        families.extend(lock(&self.modules).values().flat_map(|m| m.families.values().cloned()));
        render(families)
    }

    /// `read_metrics`: current values, filtered by source and name prefix.
    pub fn read(&self, params: &ReadMetrics) -> MetricValues {
        let source = params.source.as_deref();
        let mut metrics = Vec::new();
        let mut push = |source: &str, families: Vec<Family>| {
            for f in families {
                if params.prefix.as_deref().is_some_and(|p| !f.name.starts_with(p)) {
                    continue;
                }
                for (labels, value) in f.series {
                    let (value, count) = match value {
                        SeriesValue::Counter(v) | SeriesValue::Gauge(v) => (v, None),
                        SeriesValue::Histogram(h) => (h.sum, Some(h.count())),
                    };
                    metrics.push(MetricValue {
                        source: source.to_owned(),
                        name: f.name.clone(),
                        kind: f.kind,
                        labels: labels.into_iter().collect(),
                        value,
                        count,
                    });
                }
            }
        };
        if source.is_none_or(|s| s == NODE_SOURCE) {
            push(NODE_SOURCE, self.node_families());
        }
        let modules: Vec<(String, Vec<Family>)> = lock(&self.modules)
            .iter()
            .filter(|(name, _)| source.is_none_or(|s| s == name.as_str()))
            .map(|(name, m)| (name.clone(), m.families.values().cloned().collect()))
            .collect();
        for (name, families) in modules {
            push(&name, families);
        }
        MetricValues { metrics }
    }
}

/// An update checked and with its names made valid.
struct Prepared {
    raw_name: String,
    name: String,
    help: String,
    kind: MetricKind,
    labels: Labels,
    value: f64,
    observations: Vec<f64>,
    buckets: Vec<f64>,
}

impl Prepared {
    fn new(module: &str, u: &MetricUpdate) -> Result<Prepared, RemoteError> {
        let bad = |why: std::fmt::Arguments<'_>| RemoteError::invalid_params("report_metrics", why);
        if u.name.is_empty() || u.name.len() > names::MAX_NAME_LEN {
            return Err(bad(format_args!(
                "a metric name must have 1 to {} bytes, `{}` has {}",
                names::MAX_NAME_LEN,
                u.name,
                u.name.len()
            )));
        }
        if u.labels.len() > names::MAX_LABELS {
            return Err(bad(format_args!(
                "`{}` has {} labels, at most {} are allowed",
                u.name,
                u.labels.len(),
                names::MAX_LABELS
            )));
        }
        let mut labels = Labels::with_capacity(u.labels.len());
        for (k, v) in &u.labels {
            if k.is_empty() || k.len() > names::MAX_NAME_LEN || v.len() > names::MAX_LABEL_VALUE_LEN {
                return Err(bad(format_args!(
                    "label `{k}` of `{}`: names have 1 to {} bytes, values at most {}",
                    u.name,
                    names::MAX_NAME_LEN,
                    names::MAX_LABEL_VALUE_LEN
                )));
            }
            labels.push((names::label_name(k), v.clone()));
        }
        labels.sort();
        labels.dedup_by(|a, b| a.0 == b.0);
        let ok_value = match u.kind {
            MetricKind::Counter => u.value.is_finite() && u.value >= 0.0,
            MetricKind::Gauge => u.value.is_finite(),
            MetricKind::Histogram => u.observations.iter().all(|o| o.is_finite()),
        };
        if !ok_value {
            return Err(bad(format_args!(
                "`{}`: a counter adds a finite value ≥ 0, a gauge takes a finite value, a histogram observes \
                 finite values",
                u.name
            )));
        }
        let buckets = match &u.buckets {
            None => DEFAULT_BUCKETS.to_vec(),
            Some(b) => {
                let ascending = b.windows(2).all(|w| w[0] < w[1]);
                if b.is_empty() || b.len() > MAX_BUCKETS || !ascending || !b.iter().all(|x| x.is_finite()) {
                    return Err(bad(format_args!(
                        "`{}`: buckets must be 1 to {MAX_BUCKETS} finite, strictly ascending bounds",
                        u.name
                    )));
                }
                b.clone()
            }
        };
        let name = names::exposed_name(module, &u.name, u.kind == MetricKind::Counter);
        let help = match u.help.as_deref().map(names::help) {
            Some(h) if !h.is_empty() => h,
            _ => format!("{} reported by module {module}.", u.name),
        };
        Ok(Prepared {
            raw_name: u.name.clone(),
            name,
            help: names::help(&help),
            kind: u.kind,
            labels,
            value: u.value,
            observations: u.observations.clone(),
            buckets,
        })
    }
}
