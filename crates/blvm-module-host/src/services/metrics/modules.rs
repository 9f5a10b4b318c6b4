//! The node's own metrics about each loaded module, from its status.

use blvm_module_protocol::methods::metrics::MetricKind;

use super::family::Family;
use super::MetricsService;
use crate::manager::{ModuleState, ModuleStatus};

/// `blvm_module_*` families, one series per module (label `module`):
/// up, restarts, RSS, CPU, requests, rate-limited requests, events
/// delivered and dropped, its durable subscription's lag and
/// unacknowledged events, and its metric series against their cap.
pub fn module_families(statuses: &[ModuleStatus], metrics: &MetricsService) -> Vec<Family> {
    let mut up = Family::new(
        "blvm_module_up",
        "1 when the module is running, else 0.",
        MetricKind::Gauge,
    );
    let mut restarts = Family::new(
        "blvm_module_restarts",
        "Restarts after crashes since the module was loaded.",
        MetricKind::Counter,
    );
    let mut rss = Family::new(
        "blvm_module_resident_memory_bytes",
        "Resident set size of the module's processes.",
        MetricKind::Gauge,
    );
    let mut cpu = Family::new(
        "blvm_module_cpu_seconds",
        "CPU time (user and system) of the module's processes.",
        MetricKind::Counter,
    );
    let mut requests = Family::new(
        "blvm_module_requests",
        "Requests the module sent to the node since the node started.",
        MetricKind::Counter,
    );
    let mut limited = Family::new(
        "blvm_module_rate_limited_requests",
        "Requests of the current connection answered rate_limited.",
        MetricKind::Counter,
    );
    let mut delivered = Family::new(
        "blvm_module_events_delivered",
        "Events placed in the module's queue (current connection).",
        MetricKind::Counter,
    );
    let mut dropped = Family::new(
        "blvm_module_events_dropped",
        "Events not delivered to the module (current connection), by reason.",
        MetricKind::Counter,
    );
    let mut series = Family::new(
        "blvm_module_metric_series",
        "Metric series the module has reported.",
        MetricKind::Gauge,
    );
    let mut max_series = Family::new(
        "blvm_module_metric_series_max",
        "The most metric series the module may report (the operator's cap).",
        MetricKind::Gauge,
    );
    let mut lag = Family::new(
        "blvm_module_durable_lag_blocks",
        "Blocks between the module's acknowledged durable cursor and the active tip (0: caught up).",
        MetricKind::Gauge,
    );
    let mut unacked = Family::new(
        "blvm_module_durable_unacked",
        "Durable events sent to the module and not yet acknowledged.",
        MetricKind::Gauge,
    );
    for s in statuses {
        let m: &[(&str, &str)] = &[("module", &s.name)];
        let running = matches!(s.state, ModuleState::Running | ModuleState::Unresponsive);
        up = up.with(m, if running { 1.0 } else { 0.0 });
        restarts = restarts.with(m, f64::from(s.restarts));
        if let Some(u) = &s.usage {
            rss = rss.with(m, u.rss_bytes as f64);
            cpu = cpu.with(m, u.cpu_time_ms as f64 / 1000.0);
        }
        requests = requests.with(m, metrics.requests(&s.name) as f64);
        limited = limited.with(m, s.rate_limited as f64);
        if let Some(d) = &s.delivery {
            delivered = delivered.with(m, d.delivered as f64);
            for (reason, n) in [
                ("queue_full", d.dropped_full),
                ("queue_closed", d.dropped_closed),
                ("encode_error", d.encode_errors),
            ] {
                dropped = dropped.with(&[("module", &s.name), ("reason", reason)], n as f64);
            }
        }
        if let Some(d) = &s.durable {
            lag = lag.with(m, d.lag_blocks as f64);
            unacked = unacked.with(m, d.unacked as f64);
        }
        series = series.with(m, s.metric_series as f64);
        max_series = max_series.with(m, s.max_metric_series as f64);
    }
    vec![
        up, restarts, rss, cpu, requests, limited, delivered, dropped, lag, unacked, series, max_series,
    ]
}
