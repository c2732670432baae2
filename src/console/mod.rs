//! `eventlake console` (CONTRACT section 7): one web application served from
//! the binary itself. The page's HTML, JavaScript and CSS are in `assets/`,
//! embedded at build time, plain modules without a bundler; this module is a
//! thin shell over the library's verbs (the lake's listing, the query engine).
//!
//! Security: it binds 127.0.0.1 unless told otherwise; a random token, carried
//! by the printed URL, is required by every call that changes state or runs a
//! query, and by every call when the server is not on loopback; on loopback the
//! `Host` header must name loopback (a page on another site cannot reach the
//! console through DNS rebinding); no CORS headers, and bodies are JSON (so a
//! page elsewhere cannot post to it without a preflight it fails) of at most
//! [`MAX_BODY_BYTES`].

mod lake;
pub mod live;
mod query;
mod rejected;
mod s3;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

/// Why the Query panel needs a local lake, and what to do on S3.
const QUERY_ON_S3: &str = "queries run on a local lake only; an S3 lake is queried with Athena: the same SQL, and athena/queries/, run there";
/// Why the Trace panel needs a local lake, and the Athena query for S3.
const TRACE_ON_S3: &str = "traces run on a local lake only; on S3 a trace is an Athena query: SELECT \"$path\", event_type, created_date, ingested_at FROM events WHERE event_uuid = '...'";

/// The header a call carries the token in.
pub const TOKEN_HEADER: &str = "x-eventlake-token";
/// The largest request body taken.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

const INDEX_HTML: &str = include_str!("assets/index.html");
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
/// The page's files: path, content type, bytes.
const ASSETS: [(&str, &str, &str); 4] = [
    ("/assets/app.js", JS, include_str!("assets/app.js")),
    ("/assets/app.css", CSS, include_str!("assets/app.css")),
    ("/assets/uPlot.iife.min.js", JS, include_str!("assets/vendor/uPlot.iife.min.js")),
    ("/assets/uPlot.min.css", CSS, include_str!("assets/vendor/uPlot.min.css")),
];

/// The lake a console serves.
pub enum LakeAt {
    /// A local lake: every panel.
    Local(PathBuf),
    /// An S3 lake and its Glue table: the Lake and Rejected panels (queries
    /// and traces are Athena's there).
    S3 {
        store: crate::aws::s3::S3Store,
        catalog: crate::catalog::Catalog,
        config: Box<crate::aws::SdkConfig>,
        /// Where Firehose writes the records it failed (`--failed`), if given.
        failed: Option<String>,
    },
}

impl LakeAt {
    fn local(&self) -> Option<&std::path::Path> {
        match self {
            LakeAt::Local(dir) => Some(dir),
            LakeAt::S3 { .. } => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            LakeAt::Local(dir) => dir.display().to_string(),
            LakeAt::S3 { store, catalog, .. } => format!("{} (Glue table {})", store.url(""), catalog.name()),
        }
    }
}

/// What the console serves.
pub struct Console {
    lake: LakeAt,
    token: String,
    /// Where it listens: loopback or not decides what needs the token.
    listen: SocketAddr,
    query_limits: query::Limits,
    /// One query runs at a time: the memory limit is the process's.
    query_slot: Arc<tokio::sync::Semaphore>,
    live: Arc<live::Live>,
}

impl Console {
    /// The console of `lake`; producers send to `target`, and the consumer's
    /// checkpoint is kept under `state_dir`.
    pub fn new(
        lake: LakeAt,
        token: String,
        listen: SocketAddr,
        query_limits: query::Limits,
        target: live::Target,
        state_dir: PathBuf,
    ) -> Self {
        let live = live::Live::new(target, lake.local().map(std::path::Path::to_owned), state_dir);
        Console {
            lake,
            token,
            listen,
            query_limits,
            query_slot: Arc::new(tokio::sync::Semaphore::new(1)),
            live,
        }
    }

    /// The local lake, or why a panel needs one (and what to do on S3).
    fn local_lake(&self, why_not_on_s3: &str) -> Result<&std::path::Path, String> {
        self.lake.local().ok_or_else(|| why_not_on_s3.to_owned())
    }
}

/// A new random token: 128 bits, hex.
pub fn new_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|error| std::io::Error::other(error.to_string()))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

pub use query::Limits as QueryLimits;

/// The console's routes.
pub fn router(console: Console) -> Router {
    let console = Arc::new(console);
    let mut router = Router::new().route("/", get(index));
    for (path, content_type, body) in ASSETS {
        router =
            router.route(path, get(move || async move { ([(header::CONTENT_TYPE, content_type)], body) }));
    }
    router
        .route("/api/lake", get(lake::overview))
        .route("/api/queries", get(query::ready_queries))
        .route("/api/query", post(query::run))
        .route("/api/query.csv", post(query::run_csv))
        .route("/api/live", get(live_events))
        .route("/api/producers", post(start_producer))
        .route("/api/producers/{id}/stop", post(stop_producer))
        .route("/api/rejected", get(rejected::list))
        .route("/api/replay", post(rejected::replay))
        .route("/api/trace", get(rejected::trace))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(Arc::clone(&console), guard))
        .with_state(console)
}

async fn index() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
            ),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(INDEX_HTML),
    )
}

/// The checks every request passes before its handler (see the module's doc).
/// The page's assets are public (embedded files); the page itself needs the
/// token off loopback; every `/api/` call needs it (in the header, or for the
/// event stream, which cannot send headers, in the query string).
async fn guard(State(console): State<Arc<Console>>, request: Request, next: Next) -> Response {
    let loopback = console.listen.ip().is_loopback();
    if loopback && !host_is_loopback(request.headers(), console.listen.ip()) {
        return refuse(
            StatusCode::FORBIDDEN,
            "the Host header does not name this machine's loopback address",
        );
    }
    let path = request.uri().path();
    let needs_token = !path.starts_with("/assets/") && (path != "/" || !loopback);
    if needs_token && !token_matches(request.headers(), request.uri().query(), &console.token) {
        let what = if path == "/" {
            "open the URL the console printed, with its token"
        } else {
            "this call needs the console's token (the one in the URL it printed)"
        };
        return refuse(StatusCode::UNAUTHORIZED, what);
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let json =
            request.headers().get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).is_some_and(
                |value| value.split(';').next().is_some_and(|kind| kind.trim() == "application/json"),
            );
        if !json {
            return refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send the body as application/json");
        }
    }
    next.run(request).await
}

/// Whether the `Host` header names loopback: `localhost`, `127.0.0.1`, `::1`,
/// or the loopback address the console is bound to.
fn host_is_loopback(headers: &HeaderMap, bound: std::net::IpAddr) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|value| value.to_str().ok()) else { return false };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    matches!(name, "127.0.0.1" | "localhost" | "::1") || name == bound.to_string()
}

/// The token in the header, or, for a page's event stream (which cannot send
/// headers), in the query string.
fn token_matches(headers: &HeaderMap, query: Option<&str>, token: &str) -> bool {
    let from_query = || query.and_then(|query| query.split('&').find_map(|pair| pair.strip_prefix("token=")));
    headers
        .get(TOKEN_HEADER)
        .and_then(|value| value.to_str().ok())
        .or_else(from_query)
        .is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes()))
}

/// Compares without stopping at the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An error as the API answers it: `{"error": "..."}`.
fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// Serves `console` on `listener` until the process ends (and starts the
/// consumer of its stream, if it has one).
pub async fn serve(listener: tokio::net::TcpListener, console: Console) -> std::io::Result<()> {
    console.live.start_consumer().map_err(std::io::Error::other)?;
    axum::serve(listener, router(console)).await
}

/// The Live panel's snapshot every second, as server-sent events.
async fn live_events(State(console): State<Arc<Console>>) -> impl IntoResponse {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let live = Arc::clone(&console.live);
    let ticks = futures::stream::unfold((live, true), |(live, first)| async move {
        if !first {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        let event = Event::default().json_data(live.snapshot()).map_err(axum::Error::new);
        Some((event, (live, false)))
    });
    Sse::new(ticks).keep_alive(KeepAlive::default())
}

#[derive(serde::Deserialize)]
struct StartProducer {
    rate: u32,
}

async fn start_producer(State(console): State<Arc<Console>>, Json(start): Json<StartProducer>) -> Response {
    match console.live.start(start.rate) {
        Ok(id) => (StatusCode::CREATED, Json(serde_json::json!({ "id": id }))).into_response(),
        Err(error) => refuse(StatusCode::BAD_REQUEST, &error.to_string()),
    }
}

async fn stop_producer(
    State(console): State<Arc<Console>>,
    axum::extract::Path(id): axum::extract::Path<usize>,
) -> Response {
    match console.live.stop(id) {
        Ok(()) => Json(serde_json::json!({ "id": id })).into_response(),
        Err(error) => refuse(StatusCode::NOT_FOUND, &error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_pass_on_loopback() {
        let bound: std::net::IpAddr = "127.0.0.2".parse().unwrap();
        let host = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::HOST, value.parse().unwrap());
            host_is_loopback(&headers, bound)
        };
        assert!(host("127.0.0.1:8080") && host("localhost:1") && host("[::1]:9") && host("localhost"));
        assert!(host("127.0.0.2:8484"), "the address it is bound to");
        assert!(!host("evil.example:8080") && !host("127.0.0.1.evil.example") && !host("[::2]:1"));
        assert!(!host("127.0.0.3:8484"));
        assert!(!host_is_loopback(&HeaderMap::new(), bound));
    }

    #[test]
    fn tokens_are_random_and_compared_whole() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(constant_time_eq(a.as_bytes(), a.as_bytes()));
        assert!(!constant_time_eq(a.as_bytes(), &a.as_bytes()[..31]));
        assert!(!constant_time_eq(a.as_bytes(), b.as_bytes()));
    }
}
