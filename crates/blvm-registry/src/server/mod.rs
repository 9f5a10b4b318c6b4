//! The registry server behind `blvm-registry serve`: a registry directory
//! on disk ([`store`]) served over HTTP (`routes`).
//!
//! The TUF repository is served as files (`/metadata/`, `/targets/`), which
//! is all a TUF client needs; the REST API (`/api/v1/`) adds search,
//! listings, publish and yank. The key decision: one writer, behind one
//! mutex, signs every change, and readers answer from an immutable
//! [`catalog::Catalog`] swapped in after each commit, so a publish never
//! blocks a download and a download never sees half a publish. The cost
//! is that publishes are serialized, which a registry of modules can
//! afford.
//!
//! - [`store`]: the registry directory, its claims and the writer;
//! - `keys`: the role keys on disk;
//! - [`catalog`]: the index of the signed targets the API reads;
//! - [`publish`]: the checks of publish and yank;
//! - [`files`]: confined, streamed file answers;
//! - [`api`]: the JSON answers;
//! - [`error`]: every refusal as `ApiError` JSON.

pub mod api;
pub mod catalog;
pub mod error;
pub mod files;
mod keys;
pub mod publish;
mod routes;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime};

pub use error::ApiFailure;
pub use store::{Registry, StoreError};

use self::catalog::Catalog;
use crate::tuf::Lifetimes;

/// How `serve` runs.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// The largest publish request body, in bytes (413 above it).
    pub max_upload: usize,
    /// How long a signed timestamp stays valid; the server re-signs it
    /// well before that.
    pub timestamp_lifetime: Duration,
    /// How long a publish or yank body may take to arrive (408 after).
    pub upload_timeout: Duration,
    /// How many publish bodies may be in memory at once (503 beyond):
    /// with `max_upload`, the most memory uploads can take.
    pub max_concurrent_uploads: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_upload: 64 << 20,
            timestamp_lifetime: Lifetimes::default().timestamp,
            upload_timeout: Duration::from_secs(300),
            max_concurrent_uploads: 4,
        }
    }
}

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The registry's TUF repository directory.
    repository: PathBuf,
    /// The largest publish body.
    max_upload: usize,
    /// How long a request body may take.
    upload_timeout: Duration,
    /// One permit per publish body in memory.
    uploads: Arc<tokio::sync::Semaphore>,
    /// The one writer. A std mutex: it is only taken on blocking threads.
    registry: Mutex<Registry>,
    /// What is signed now; replaced whole after each commit.
    catalog: RwLock<Arc<Catalog>>,
}

impl Shared {
    fn catalog(&self) -> Arc<Catalog> {
        // A poisoned lock still holds a whole catalog: it is only ever
        // replaced, never edited.
        self.catalog.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_catalog(&self, catalog: Catalog) {
        *self.catalog.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(catalog);
    }

    fn lock_registry(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock (none is expected) left the
        // writer's files consistent: each is written by rename.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A registry opened for serving.
#[derive(Debug)]
pub struct Server {
    shared: Arc<Shared>,
    options: ServeOptions,
}

impl Server {
    /// Opens the registry in `dir` and brings its timestamp up to date (a
    /// registry that was down past its timestamp's expiry serves fresh
    /// metadata at once).
    ///
    /// # Errors
    ///
    /// A registry that cannot be opened or re-signed.
    pub fn open(dir: &Path, options: ServeOptions) -> Result<Server, StoreError> {
        let lifetimes = Lifetimes {
            timestamp: options.timestamp_lifetime,
            ..Lifetimes::default()
        };
        let mut registry = Registry::open(dir, lifetimes)?;
        let mut catalog = Catalog::load(registry.repository_dir(), &Catalog::default())?;
        if let Some(fresh) = registry.keep_fresh(SystemTime::now(), refresh_margin(&lifetimes), &catalog)? {
            catalog = fresh;
        }
        Ok(Server {
            shared: Arc::new(Shared {
                repository: registry.repository_dir().to_owned(),
                max_upload: options.max_upload,
                upload_timeout: options.upload_timeout,
                uploads: Arc::new(tokio::sync::Semaphore::new(options.max_concurrent_uploads)),
                registry: Mutex::new(registry),
                catalog: RwLock::new(Arc::new(catalog)),
            }),
            options,
        })
    }

    /// The HTTP routes (see `routes`).
    pub fn router(&self) -> axum::Router {
        routes::router(self.shared.clone())
    }

    /// Serves on `listener` until `shutdown` completes, re-signing the
    /// timestamp in the background.
    ///
    /// # Errors
    ///
    /// The listener failing.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let refresher = tokio::spawn(keep_timestamp_fresh(self.shared.clone(), self.options));
        let served = axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await;
        refresher.abort();
        served
    }
}

/// The refresher wakes every third of the timestamp's lifetime and
/// re-signs the timestamp, so one failed refresh still leaves another try
/// before clients would see it expire. Targets and snapshot, which
/// live longer, are re-signed when they expire within two such periods.
fn refresh_margin(lifetimes: &Lifetimes) -> Duration {
    lifetimes.timestamp / 3 * 2
}

async fn keep_timestamp_fresh(shared: Arc<Shared>, options: ServeOptions) {
    let period = (options.timestamp_lifetime / 3).max(Duration::from_millis(100));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is now, and `open` has just refreshed.
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let shared = shared.clone();
        let refreshed = tokio::task::spawn_blocking(move || {
            let mut registry = shared.lock_registry();
            let current = shared.catalog();
            let margin = refresh_margin(&registry.lifetimes());
            let fresh = registry.keep_fresh(SystemTime::now(), margin, &current)?;
            if let Some(catalog) = fresh {
                shared.set_catalog(catalog);
            }
            Ok::<_, StoreError>(())
        })
        .await;
        match refreshed {
            Ok(Ok(())) => tracing::debug!("timestamp re-signed"),
            Ok(Err(e)) => tracing::error!("cannot re-sign the timestamp: {e}"),
            Err(e) => tracing::error!("the timestamp refresher failed: {e}"),
        }
    }
}
