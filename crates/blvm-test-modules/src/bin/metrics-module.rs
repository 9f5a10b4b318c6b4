//! A module that reports and reads metrics when the test says so, through
//! the SDK's typed calls (`report_metrics`, `read_metrics`).
//!
//! `module_call` methods (params and answers are text):
//!
//! - `report`: updates separated by `;`, each `<kind> <name> <value>
//!   [label=value ...]` (a histogram's value is its observations,
//!   comma-separated), sent as ONE `report_metrics`; answers `OK <series>
//!   <max_series>` or `ERROR <code> <capability or -> <message>`;
//! - `read`: `<source or *> [prefix]`; answers one line per series,
//!   `<source> <name> <labels k=v,...> <value> [count]`, or `ERROR …`;
//! - `ping`: answers `PONG` after a node round trip (the connection works).
//!
//! With config `report` (the same text as the `report` method's params) it
//! reports that once at start and prints `reported <answer>` on stdout.

use std::collections::BTreeMap;

use blvm_sdk::protocol::methods::invocation::{ModuleCall, ModuleCallResult};
use blvm_sdk::protocol::methods::metrics::{MetricKind, MetricUpdate};
use blvm_sdk::protocol::RemoteError;
use blvm_sdk::{ModuleIntegration, NodeApiIpc, SdkError};
use blvm_test_modules::error_line as error;

fn parse_update(text: &str) -> Option<MetricUpdate> {
    let mut words = text.split_whitespace();
    let kind = match words.next()? {
        "counter" => MetricKind::Counter,
        "gauge" => MetricKind::Gauge,
        "histogram" => MetricKind::Histogram,
        _ => return None,
    };
    let name = words.next()?.to_owned();
    let value = words.next()?;
    let labels: BTreeMap<String, String> = words
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let (value, observations) = match kind {
        MetricKind::Histogram => (
            0.0,
            value.split(',').map(str::parse).collect::<Result<Vec<f64>, _>>().ok()?,
        ),
        _ => (value.parse().ok()?, Vec::new()),
    };
    Some(MetricUpdate {
        name,
        kind,
        help: None,
        labels,
        value,
        observations,
        buckets: None,
    })
}

async fn report(api: &NodeApiIpc, params: &str) -> String {
    let Some(updates) = params.split(';').map(parse_update).collect::<Option<Vec<_>>>() else {
        return format!("ERROR local - cannot parse `{params}`");
    };
    match api.report_metrics(updates).await {
        Ok(r) => format!("OK {} {}", r.series, r.max_series),
        Err(e) => error(e),
    }
}

async fn read(api: &NodeApiIpc, params: &str) -> String {
    let mut words = params.split_whitespace();
    let source = words.next().filter(|s| *s != "*");
    let prefix = words.next();
    match api.read_metrics(source, prefix).await {
        Ok(values) => values
            .iter()
            .map(|v| {
                let labels: Vec<String> = v.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let count = v.count.map(|c| format!(" {c}")).unwrap_or_default();
                format!("{} {} {} {}{count}", v.source, v.name, labels.join(","), v.value)
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Err(e) => error(e),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
    let integration = ModuleIntegration::from_env().await?;
    let mut invocations = integration.invocation_receiver()?;
    let api = integration.node_api();
    if let Some(at_start) = integration.welcome().config.get("report") {
        println!("reported {}", report(&api, at_start).await);
    }
    loop {
        tokio::select! {
            _ = integration.shutdown_requested() => return Ok(()),
            inv = invocations.recv() => {
                let Some(inv) = inv else { return Ok(()) };
                let call: ModuleCall = inv.params()?;
                let params = String::from_utf8_lossy(&call.params).into_owned();
                let answer = match call.method.as_str() {
                    "report" => report(&api, &params).await,
                    "read" => read(&api, &params).await,
                    "ping" => match api.ping().await {
                        Ok(()) => "PONG".to_owned(),
                        Err(e) => error(e),
                    },
                    other => {
                        inv.reject(RemoteError::method_not_found(other));
                        continue;
                    }
                };
                inv.respond(&ModuleCallResult { result: answer.into_bytes() })?;
            }
        }
    }
}
