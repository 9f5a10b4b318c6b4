//! `tracing` into the node's log: every event becomes a `log` frame, which
//! the node records under the module's name, level, target and fields
//! kept.

use std::collections::BTreeMap;

use blvm_sdk::protocol::{LogLevel, LogRecord};
use blvm_sdk::ModuleIpcClient;
use tracing::field::{Field, Visit};
use tracing::{Level, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// The layer: sends each event it sees to the node.
pub struct NodeLog {
    client: ModuleIpcClient,
}

#[derive(Default)]
struct Fields {
    message: String,
    fields: BTreeMap<String, String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.fields.insert(field.name().to_owned(), value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.fields.insert(field.name().to_owned(), format!("{value:?}"));
        }
    }
}

fn level(l: &Level) -> LogLevel {
    match *l {
        Level::ERROR => LogLevel::Error,
        Level::WARN => LogLevel::Warn,
        Level::INFO => LogLevel::Info,
        Level::DEBUG => LogLevel::Debug,
        Level::TRACE => LogLevel::Trace,
    }
}

impl<S: Subscriber> Layer<S> for NodeLog {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        // Nothing to do when the node is gone: the module is ending.
        let _ = self.client.log(&LogRecord {
            level: level(meta.level()),
            target: meta.target().to_owned(),
            message: fields.message,
            fields: fields.fields,
        });
    }
}

/// Sends this module's `tracing` events at `max` and above, and the
/// SDK's warnings, to the node over `client`. Once per process; a second
/// call changes nothing.
pub fn init(client: ModuleIpcClient, max: LevelFilter) {
    let targets = Targets::new()
        .with_target("stratum_v2", max)
        .with_target("blvm_sdk", LevelFilter::WARN);
    let _ = tracing_subscriber::registry()
        .with(NodeLog { client }.with_filter(targets))
        .try_init();
}
