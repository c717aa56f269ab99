//! Serves the output folder of `herald build`: the archive pages and feeds,
//! with validators (ETag, Last-Modified) and conditional requests.
//!
//! Files are looked up on disk for every request, so a `herald build` while
//! the server runs is picked up at once, with no restart and no watcher. A
//! `stat` is cheap; what is not cheap is reading and hashing the bytes, so
//! those are cached and keyed by what `stat` tells (mtime, length, inode):
//! `herald build` writes by rename, so a changed file always shows up as a
//! new inode even when its mtime and length happen to match.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::AppState;
use crate::config::Settings;
use crate::render::feed::{self, FeedKind, FEEDS};

/// Files above this size are served without caching their bytes.
const MAX_CACHED_FILE: u64 = 8 * 1024 * 1024;
/// When the cached bytes outgrow this, the cache starts over: simple, and
/// bounded however many files come and go.
const CACHE_BUDGET: u64 = 256 * 1024 * 1024;

/// The served folder and the response headers that depend only on config.
pub struct Site {
    root: PathBuf,
    cache_control: HeaderValue,
    /// `Link: <hub>; rel="hub", <feed>; rel="self"` per feed file, when a
    /// WebSub hub is configured.
    feed_links: Vec<(FeedKind, HeaderValue)>,
    cache: RwLock<Cache>,
}

#[derive(Default)]
struct Cache {
    files: HashMap<PathBuf, (Stamp, Arc<CachedFile>)>,
    bytes: u64,
}

/// What `stat` says about a file; a different stamp means different bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: SystemTime,
    len: u64,
    inode: u64,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let inode = 0;
        Stamp {
            modified: meta.modified().unwrap_or(UNIX_EPOCH),
            len: meta.len(),
            inode,
        }
    }
}

struct CachedFile {
    bytes: Bytes,
    etag: HeaderValue,
    last_modified: HeaderValue,
    /// The mtime in whole seconds, as `Last-Modified` states it.
    modified_secs: u64,
}

impl Site {
    pub fn new(settings: &Settings) -> Site {
        let cache_control = HeaderValue::from_str(&format!(
            "public, max-age={}",
            settings.server.cache_max_age_secs
        ))
        .expect("digits are a valid header value");
        let feed_links = match &settings.feeds.websub_hub {
            Some(hub) => FEEDS
                .iter()
                .filter_map(|kind| {
                    let value = format!(
                        "<{hub}>; rel=\"hub\", <{}>; rel=\"self\"",
                        feed::feed_url(settings, kind)
                    );
                    // A URL is ASCII once serialised; this cannot fail.
                    HeaderValue::from_str(&value).ok().map(|v| (*kind, v))
                })
                .collect(),
            None => Vec::new(),
        };
        Site {
            root: settings.output_dir(),
            cache_control,
            feed_links,
            cache: RwLock::new(Cache::default()),
        }
    }

    /// The file's bytes and validators, from the cache while its stamp holds.
    fn load(&self, path: &Path, meta: &std::fs::Metadata) -> std::io::Result<Arc<CachedFile>> {
        let stamp = Stamp::of(meta);
        if let Some((cached_stamp, file)) = self.cache.read().expect("cache lock").files.get(path) {
            if *cached_stamp == stamp {
                return Ok(file.clone());
            }
        }
        let bytes = Bytes::from(std::fs::read(path)?);
        let file = Arc::new(CachedFile {
            etag: etag_of(&bytes),
            last_modified: HeaderValue::from_str(&httpdate::fmt_http_date(stamp.modified))
                .expect("an HTTP date is a valid header value"),
            modified_secs: stamp
                .modified
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            bytes,
        });
        let len = file.bytes.len() as u64;
        if len <= MAX_CACHED_FILE {
            let mut cache = self.cache.write().expect("cache lock");
            if cache.bytes + len > CACHE_BUDGET {
                *cache = Cache::default();
            }
            cache.bytes += len;
            if let Some((_, old)) = cache
                .files
                .insert(path.to_path_buf(), (stamp, file.clone()))
            {
                cache.bytes -= old.bytes.len() as u64;
            }
        }
        Ok(file)
    }
}

/// A strong validator: the first 128 bits of the SHA-256 of the bytes.
fn etag_of(bytes: &[u8]) -> HeaderValue {
    let digest = Sha256::digest(bytes);
    HeaderValue::from_str(&format!("\"{}\"", hex::encode(&digest[..16])))
        .expect("hex is a valid header value")
}

/// The fallback handler: a file of the output folder, or 404.
pub async fn serve_site(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    request_headers: HeaderMap,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
        )
            .into_response();
    }
    let Some(relative) = safe_relative_path(uri.path()) else {
        return not_found();
    };
    let site = &state.site;
    let mut path = site.root.join(&relative);
    // Blocking `stat` and (on a cache miss) `read` inside the handler: both
    // are short on a local disk, and a spawn_blocking round trip per request
    // would cost more than it saves. The bench holds us to that.
    let Ok(mut meta) = std::fs::metadata(&path) else {
        return not_found();
    };
    if meta.is_dir() {
        if !uri.path().ends_with('/') {
            // Pages link relatively (`../../style.css`), which only resolves
            // from the canonical URL with its trailing slash.
            // Built from the checked relative path, never the raw request
            // path: `//evil.example` would redirect off-site.
            const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
                .remove(b'-')
                .remove(b'_')
                .remove(b'.')
                .remove(b'~');
            let mut canonical = String::from("/");
            for segment in relative.iter() {
                let segment = segment.to_string_lossy();
                canonical.extend(percent_encoding::utf8_percent_encode(&segment, SEGMENT));
                canonical.push('/');
            }
            let location = match uri.query() {
                Some(query) => format!("{canonical}?{query}"),
                None => canonical,
            };
            return (
                StatusCode::PERMANENT_REDIRECT,
                [(header::LOCATION, location)],
            )
                .into_response();
        }
        path.push("index.html");
        meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            Err(_) => return not_found(),
        };
    }
    if !meta.is_file() {
        return not_found();
    }
    let Ok(file) = site.load(&path, &meta) else {
        // Removed between the stat and the read.
        return not_found();
    };
    let feed_kind = FEEDS.iter().find(|kind| relative.as_os_str() == kind.file);

    let mut response = if is_fresh(&request_headers, &file) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = Response::new(Body::from(file.bytes.clone()));
        let media_type = match feed_kind {
            Some(kind) => kind.media_type,
            None => media_type_of(&path),
        };
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
        response
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, file.etag.clone());
    headers.insert(header::LAST_MODIFIED, file.last_modified.clone());
    headers.insert(header::CACHE_CONTROL, site.cache_control.clone());
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Some(kind) = feed_kind {
        if let Some((_, link)) = site.feed_links.iter().find(|(k, _)| k == kind) {
            headers.insert(header::LINK, link.clone());
        }
    }
    response
}

/// Whether the client's copy is current (RFC 9110 §13.2.2): If-None-Match
/// decides when present; only without it does If-Modified-Since count.
fn is_fresh(request: &HeaderMap, file: &CachedFile) -> bool {
    let mut if_none_match = request.get_all(header::IF_NONE_MATCH).iter().peekable();
    if if_none_match.peek().is_some() {
        let ours = file.etag.as_bytes();
        return if_none_match
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            // Weak comparison, as RFC 9110 asks for If-None-Match.
            .any(|tag| tag == "*" || tag.trim_start_matches("W/").as_bytes() == ours);
    }
    request
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| httpdate::parse_http_date(value).ok())
        .and_then(|since| since.duration_since(UNIX_EPOCH).ok())
        .is_some_and(|since| file.modified_secs <= since.as_secs())
}

/// The request path as a path under the output folder, or `None` when it
/// could leave it: a `.` or `..` segment (also percent-encoded), an encoded
/// `/` or `\`, a NUL, a drive letter, or any dot-file (temporary files of an
/// atomic write among them). Empty segments are skipped, so `//etc` stays
/// inside.
fn safe_relative_path(request_path: &str) -> Option<PathBuf> {
    let mut relative = PathBuf::new();
    for segment in request_path.split('/').filter(|s| !s.is_empty()) {
        let decoded = percent_encoding::percent_decode_str(segment)
            .decode_utf8()
            .ok()?;
        if decoded.starts_with('.') || decoded.contains(['/', '\\', '\0', ':']) {
            return None;
        }
        relative.push(decoded.as_ref());
    }
    Some(relative)
}

fn media_type_of(path: &Path) -> &'static str {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("txt") => "text/plain; charset=utf-8",
        Some("xml") => "application/xml",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("avif") => "image/avif",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("woff") => "font/woff",
        Some("pdf") => "application/pdf",
        _ => "application/octet-stream",
    }
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "not found\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_could_leave_the_folder_are_refused() {
        for bad in [
            "/../secret",
            "/issues/../../secret",
            "/%2e%2e/secret",
            "/%2E%2E/secret",
            "/..%2fsecret",
            "/..%5csecret",
            "/%2fetc%2fpasswd",
            "/a%00b",
            "/C:%5cWindows",
            "/.hidden",
            "/.tmpAbC123",
            "/%ff",
        ] {
            assert_eq!(safe_relative_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn ordinary_paths_map_under_the_folder() {
        for (request, expected) in [
            ("/", ""),
            ("/feed.xml", "feed.xml"),
            ("/issues/vol-001/", "issues/vol-001"),
            ("//etc/passwd", "etc/passwd"),
            ("/issues/%E6%B5%8B%E8%AF%95/", "issues/测试"),
        ] {
            assert_eq!(
                safe_relative_path(request),
                Some(PathBuf::from(expected)),
                "{request}"
            );
        }
    }
}
