//! The HTTP routes: one handler per endpoint, each answering either its
//! result or an [`ApiFailure`].
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /metadata/{file}` | a TUF metadata file |
//! | `GET /targets/{*path}` | a target file (hash-prefixed name) |
//! | `GET /api/v1/modules?q=TEXT` | [`ModuleSummary`] list |
//! | `GET /api/v1/modules/{name}` | [`ModuleVersions`] |
//! | `GET /api/v1/modules/{name}/{version}/manifest` | the manifest |
//! | `GET /api/v1/modules/{name}/{version}/binary` | the binary |
//! | `POST /api/v1/publish` | MessagePack [`PublishRequest`] → 201 [`VersionRecord`] |
//! | `POST /api/v1/yank` | JSON [`SignedStatement`] → 200 [`VersionRecord`] |

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::api::{self, ModuleSummary, ModuleVersions};
use super::error::ApiFailure;
use super::files::serve_file;
use super::publish::{apply_publish, apply_yank, check_publish};
use super::Shared;
use crate::layout::{PublishRequest, SignedStatement, VersionRecord};

type Answer<T> = Result<T, ApiFailure>;

/// The router over `state`.
pub(crate) fn router(state: Arc<Shared>) -> Router {
    Router::new()
        .route("/metadata/{file}", get(metadata))
        .route("/targets/{*path}", get(target))
        .route("/api/v1/modules", get(search))
        .route("/api/v1/modules/{name}", get(module))
        .route("/api/v1/modules/{name}/{version}/manifest", get(manifest))
        .route("/api/v1/modules/{name}/{version}/binary", get(binary))
        .route("/api/v1/publish", post(publish))
        .route("/api/v1/yank", post(yank))
        .fallback(|| async { ApiFailure::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async { ApiFailure::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed") })
        .with_state(state)
}

fn path_failure(rejection: PathRejection) -> ApiFailure {
    ApiFailure::not_found(rejection.body_text())
}

async fn metadata(State(state): State<Arc<Shared>>, file: Result<Path<String>, PathRejection>) -> Answer<Response> {
    let Path(file) = file.map_err(path_failure)?;
    // One file name: no directory.
    if file.contains('/') {
        return Err(ApiFailure::not_found(format!("no file {file}")));
    }
    serve_file(&state.repository.join("metadata"), &file, "application/json").await
}

async fn target(State(state): State<Arc<Shared>>, path: Result<Path<String>, PathRejection>) -> Answer<Response> {
    let Path(path) = path.map_err(path_failure)?;
    serve_file(&state.repository.join("targets"), &path, "application/octet-stream").await
}

#[derive(Deserialize)]
struct SearchQuery {
    #[serde(default)]
    q: String,
}

async fn search(
    State(state): State<Arc<Shared>>,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Answer<Json<Vec<ModuleSummary>>> {
    let Query(query) = query.map_err(|e| ApiFailure::bad_request(e.body_text()))?;
    Ok(Json(api::search(&state.catalog(), &query.q)))
}

async fn module(
    State(state): State<Arc<Shared>>,
    name: Result<Path<String>, PathRejection>,
) -> Answer<Json<ModuleVersions>> {
    let Path(name) = name.map_err(path_failure)?;
    api::versions(&state.catalog(), &name)
        .map(Json)
        .ok_or_else(|| ApiFailure::not_found(format!("no module named {name}")))
}

/// Where version `version` of `name`'s manifest or binary is under
/// `targets/`.
fn version_file(state: &Shared, name: &str, version: &str, binary: bool) -> Answer<String> {
    let catalog = state.catalog();
    let entry = catalog
        .version(name, version)
        .ok_or_else(|| ApiFailure::not_found(format!("{name} has no version {version}")))?;
    if binary {
        entry
            .binary_url_path()
            .ok_or_else(|| ApiFailure::not_found(format!("{name} {version} has no binary")))
    } else {
        Ok(entry.manifest_url_path())
    }
}

async fn manifest(
    State(state): State<Arc<Shared>>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Answer<Response> {
    let Path((name, version)) = path.map_err(path_failure)?;
    let file = version_file(&state, &name, &version, false)?;
    serve_file(&state.repository.join("targets"), &file, "application/toml").await
}

async fn binary(
    State(state): State<Arc<Shared>>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Answer<Response> {
    let Path((name, version)) = path.map_err(path_failure)?;
    let file = version_file(&state, &name, &version, true)?;
    serve_file(&state.repository.join("targets"), &file, "application/octet-stream").await
}

/// The most bytes of a yank statement.
const MAX_YANK: usize = 64 * 1024;

/// Reads a request body of at most `limit` bytes within the upload
/// timeout: 413 above the limit (before reading anything when the
/// `Content-Length` says so), 408 when the client is too slow. The whole
/// body is in memory before the registry is locked, so a slow upload
/// holds up no one, and the timeout frees its connection.
async fn read_body(state: &Shared, headers: &HeaderMap, body: Body, limit: usize) -> Answer<Bytes> {
    let too_large = || {
        ApiFailure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request is larger than this registry's limit of {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let timeout = state.upload_timeout;
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) if is_length_limit(&e) => Err(too_large()),
        Ok(Err(e)) => Err(ApiFailure::bad_request(format!("cannot read the request body: {e}"))),
        Err(_) => Err(ApiFailure::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("the request body did not arrive within {}s", timeout.as_secs()),
        )),
    }
}

/// Whether `error` is the body limit's (anywhere in its source chain).
fn is_length_limit(error: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = e.source();
    }
    false
}

async fn publish(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Answer<(StatusCode, Json<VersionRecord>)> {
    // Held until the answer: the body stays in memory that long.
    let _permit = state.uploads.clone().try_acquire_owned().map_err(|_| {
        ApiFailure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the registry is receiving as many uploads as it takes at once; try again shortly",
        )
    })?;
    let body = read_body(&state, &headers, body, state.max_upload).await?;
    // Decoding and hashing need no lock either.
    let checked = tokio::task::spawn_blocking(move || {
        let request: PublishRequest = rmp_serde::from_slice(&body)
            .map_err(|e| ApiFailure::bad_request(format!("the body is not a MessagePack publish request: {e}")))?;
        check_publish(request)
    })
    .await
    .unwrap_or_else(|e| Err(ApiFailure::internal("a publish check failed", &e)))?;
    let record = run_locked(state, move |registry, catalog| {
        let (record, catalog) = apply_publish(registry, catalog, checked, std::time::SystemTime::now())?;
        Ok((record, Some(catalog)))
    })
    .await?;
    Ok((StatusCode::CREATED, Json(record)))
}

async fn yank(State(state): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Answer<Json<VersionRecord>> {
    let body = read_body(&state, &headers, body, MAX_YANK).await?;
    let statement: SignedStatement = serde_json::from_slice(&body)
        .map_err(|e| ApiFailure::bad_request(format!("the body is not a JSON signed statement: {e}")))?;
    let record = run_locked(state, move |registry, catalog| {
        apply_yank(registry, catalog, statement, std::time::SystemTime::now())
    })
    .await?;
    Ok(Json(record))
}

/// Runs `change` on a blocking thread with the registry locked; a new
/// catalog it returns replaces the current one before the lock is
/// released, so the next change sees it.
async fn run_locked<T: Send + 'static>(
    state: Arc<Shared>,
    change: impl FnOnce(
            &mut super::store::Registry,
            &super::catalog::Catalog,
        ) -> Result<(T, Option<super::catalog::Catalog>), ApiFailure>
        + Send
        + 'static,
) -> Answer<T> {
    tokio::task::spawn_blocking(move || {
        let mut registry = state.lock_registry();
        let current = state.catalog();
        let (value, catalog) = change(&mut registry, &current)?;
        if let Some(catalog) = catalog {
            state.set_catalog(catalog);
        }
        Ok(value)
    })
    .await
    .unwrap_or_else(|e| Err(ApiFailure::internal("a publish task failed", &e)))
}
