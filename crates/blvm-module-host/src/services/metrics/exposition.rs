//! The Prometheus text exposition (format 0.0.4), written by
//! `prometheus-client`'s encoder from a snapshot of the families: the
//! crate's collector interface is made for metrics that exist only at
//! scrape time, which is what a module's series are.

use blvm_module_protocol::methods::metrics::MetricKind;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::family::{Family, SeriesValue};

/// The `Content-Type` of what [`render`] writes.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Debug)]
struct Snapshot(Vec<Family>);

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for family in self.0.iter().filter(|f| !f.series.is_empty()) {
            let kind = match family.kind {
                MetricKind::Counter => MetricType::Counter,
                MetricKind::Gauge => MetricType::Gauge,
                MetricKind::Histogram => MetricType::Histogram,
            };
            let mut metric = encoder.encode_descriptor(&family.name, &family.help, None, kind)?;
            for (labels, value) in &family.series {
                let mut series = metric.encode_family(labels)?;
                match value {
                    SeriesValue::Counter(v) => series.encode_counter(v, None::<&Exemplar<NoLabelSet, f64>>)?,
                    SeriesValue::Gauge(v) => series.encode_gauge(v)?,
                    SeriesValue::Histogram(h) => {
                        series.encode_histogram::<NoLabelSet>(h.sum, h.count(), &h.buckets(), None)?
                    }
                }
            }
        }
        Ok(())
    }
}

/// The text exposition of `families`, in order. Families without series
/// are left out.
pub fn render(families: Vec<Family>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot(families)));
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry) {
        // Writing into a String cannot fail; say so if it ever does.
        tracing::error!("cannot encode the metrics: {e}");
    }
    text
}
