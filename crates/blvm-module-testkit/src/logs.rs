//! [`ModuleLogs`]: what modules logged, as the node logs it: every `log`
//! frame (level, target, message, fields) and every line a module wrote
//! to stdout or stderr, by module name.
//!
//! The node turns both into `tracing` events carrying a `module` field;
//! the harness installs, once per test process, a subscriber layer that
//! keeps those. A test binary that installs a global subscriber of its
//! own before the first harness starts gets no module logs (the harness
//! says so when it is asked to wait for one).
//!
//! The node names a module's lines by module name only, so two harnesses
//! of one test process running modules of the same name at once could not
//! tell their lines apart: a harness takes its module name for its life
//! (see `harness::NameGuard`) and reads only the lines logged since it
//! started ([`ModuleLogs::mark`]).

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::Notify;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// One line a module logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleLogLine {
    /// The module's name.
    pub module: String,
    /// The level: a `log` frame's own; `INFO` for stdout, `WARN` for
    /// stderr.
    pub level: Level,
    /// `log` for a `log` frame, `stdout` or `stderr` for an output line.
    pub source: &'static str,
    /// The frame's target (empty for an output line).
    pub target: String,
    /// The message, or the output line, escaped as the node logs it.
    pub message: String,
    /// The frame's fields as the node formats them (`k=v …`).
    pub fields: String,
}

/// Every module log line of this process, newest last.
pub struct ModuleLogs {
    lines: Mutex<Vec<ModuleLogLine>>,
    added: Notify,
    installed: bool,
}

impl ModuleLogs {
    /// The process's log capture, installed on first use.
    pub fn get() -> Arc<ModuleLogs> {
        static LOGS: OnceLock<Arc<ModuleLogs>> = OnceLock::new();
        Arc::clone(LOGS.get_or_init(|| {
            let mut logs = ModuleLogs {
                lines: Mutex::new(Vec::new()),
                added: Notify::new(),
                installed: false,
            };
            // The layer needs the Arc; the flag is set before anything can
            // log through it.
            let probe = tracing_subscriber::registry().with(tracing_subscriber::filter::LevelFilter::TRACE);
            logs.installed = tracing::subscriber::set_global_default(probe.with(Capture)).is_ok();
            Arc::new(logs)
        }))
    }

    /// Whether the capture is in place (no other global subscriber came
    /// first).
    pub fn installed(&self) -> bool {
        self.installed
    }

    /// Where the next line will be: lines from a mark on are the ones
    /// logged after it.
    pub fn mark(&self) -> usize {
        self.lock().len()
    }

    /// The lines `module` logged from `mark` on.
    pub fn of(&self, module: &str, mark: usize) -> Vec<ModuleLogLine> {
        self.lock()
            .iter()
            .skip(mark)
            .filter(|l| l.module == module)
            .cloned()
            .collect()
    }

    /// Waits until `module` logs, from `mark` on, a line for which `pred`
    /// holds, at most `deadline`; returns it, or `None` at the deadline.
    pub async fn wait_for(
        &self,
        module: &str,
        mark: usize,
        deadline: Duration,
        pred: impl Fn(&ModuleLogLine) -> bool,
    ) -> Option<ModuleLogLine> {
        let wait = async {
            loop {
                let added = self.added.notified();
                if let Some(found) = self.lock().iter().skip(mark).find(|l| l.module == module && pred(l)) {
                    return found.clone();
                }
                added.await;
            }
        };
        tokio::time::timeout(deadline, wait).await.ok()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ModuleLogLine>> {
        // Every update is one push.
        self.lines.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, line: ModuleLogLine) {
        self.lock().push(line);
        self.added.notify_waiters();
    }
}

/// The layer: keeps events with a `module` field and a `module_target` or
/// `stream` field (the node's two kinds of module log line).
struct Capture;

#[derive(Default)]
struct Fields {
    module: Option<String>,
    target: Option<String>,
    stream: Option<String>,
    fields: String,
    message: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        self.record(field, text);
    }
}

impl Fields {
    fn record(&mut self, field: &Field, value: String) {
        match field.name() {
            "module" => self.module = Some(value),
            "module_target" => self.target = Some(value),
            "stream" => self.stream = Some(value),
            "fields" => self.fields = value,
            "message" => self.message = value,
            _ => {}
        }
    }
}

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let Some(module) = fields.module else {
            return;
        };
        let source = match (fields.target.is_some(), fields.stream.as_deref()) {
            (true, _) => "log",
            (false, Some("stdout")) => "stdout",
            (false, Some("stderr")) => "stderr",
            _ => return,
        };
        ModuleLogs::get().push(ModuleLogLine {
            module,
            level: *event.metadata().level(),
            source,
            target: fields.target.unwrap_or_default(),
            message: fields.message,
            fields: fields.fields,
        });
    }
}
