//! Serving repository files: a relative path checked so it cannot leave
//! its directory, and the file streamed with its `Content-Length`.

use std::path::{Path, PathBuf};

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tokio::io::AsyncReadExt;

use super::error::ApiFailure;

/// How much of a file is read per chunk of the response.
const CHUNK: u64 = 64 * 1024;

/// `base/relative`, when every component of `relative` is a plain name:
/// not empty, not `.` or `..`, no backslash or NUL, not hidden (staging
/// files start with a dot or end in `.tmp`). `None` for anything else.
pub fn confined(base: &Path, relative: &str) -> Option<PathBuf> {
    let mut path = base.to_owned();
    for part in relative.split('/') {
        let plain =
            !part.is_empty() && !part.starts_with('.') && !part.ends_with(".tmp") && !part.contains(['\\', '\0']);
        if !plain {
            return None;
        }
        path.push(part);
    }
    Some(path)
}

/// The file `relative` under `base`, streamed with its length and
/// `content_type`; 404 for a path that escapes or names no regular file.
pub async fn serve_file(base: &Path, relative: &str, content_type: &'static str) -> Result<Response, ApiFailure> {
    let not_found = || ApiFailure::not_found(format!("no file {relative}"));
    let path = confined(base, relative).ok_or_else(not_found)?;
    let file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found()),
        Err(e) => return Err(ApiFailure::internal("cannot open a repository file", &e)),
    };
    let meta = file
        .metadata()
        .await
        .map_err(|e| ApiFailure::internal("cannot stat a repository file", &e))?;
    if !meta.is_file() {
        return Err(not_found());
    }
    // The length of the open file: files are replaced by rename, never
    // rewritten, so this handle's length is the length of what it reads.
    let length = meta.len();
    let stream = futures_util::stream::unfold((file, length), |(mut file, remaining)| async move {
        if remaining == 0 {
            return None;
        }
        let mut buf = vec![0u8; CHUNK.min(remaining) as usize];
        match file.read(&mut buf).await {
            Ok(0) => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the file shrank while it was served",
                )),
                (file, 0),
            )),
            Ok(read) => {
                buf.truncate(read);
                Some((Ok(Bytes::from(buf)), (file, remaining - read as u64)))
            }
            Err(e) => Some((Err(e), (file, 0))),
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_LENGTH, length.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_stay_inside() {
        let base = Path::new("/srv/repo/targets");
        assert_eq!(
            confined(base, "block-stats/0.1.0/ab.binary"),
            Some(base.join("block-stats/0.1.0/ab.binary"))
        );
        for escape in [
            "../keys/root.json",
            "a/../../x",
            "/etc/passwd",
            "",
            "a//b",
            "a/./b",
            ".hidden",
            "a\\..\\b",
            "timestamp.json.tmp",
        ] {
            assert_eq!(confined(base, escape), None, "{escape:?}");
        }
    }
}
