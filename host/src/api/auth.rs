//! Who may call which endpoint: bearer tokens (configured as SHA-256
//! hashes, `server.auth.tokens`), the scope each route needs (one table,
//! [`ROUTE_SCOPES`]; a route missing from it needs `admin`), and per-token
//! request rate (token bucket, 429 with `Retry-After`) and body size limits.
//!
//! With no tokens configured, authentication is off and every route is open
//! (the loopback-only first run). Health checks are always open.
//!
//! Tokens are read from the config in force at each request, so a reload
//! changes them; rate-limit buckets are kept by token name across reloads.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use crate::config::{ApiRateLimit, Scope, TokenConfig};

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token, ever (health checks).
    Open,
    /// A token holding this scope (or `admin`).
    Scoped(Scope),
}

use Access::{Open, Scoped};
use Scope::{Admin, Push, Read, Write};

/// The scope of every route the API registers: `(method, path as given to
/// the router, access)`. A path ending in `/*` covers every route below it.
/// A route not listed here needs `admin` (so a new route is never open by
/// accident); `tests/auth.rs` fails when a registered route is missing.
///
/// `POST /api/v2/alerts` is ingestion (`push`): Prometheus sends its alerts
/// with the same token it remote-writes with. Silences are `write`.
pub const ROUTE_SCOPES: &[(&str, &str, Access)] = &[
    ("POST", "/api/v1/push", Scoped(Push)),
    ("POST", "/api/v1/import/prometheus", Scoped(Push)),
    ("POST", "/api/v1/write", Scoped(Push)),
    ("POST", "/api/v2/alerts", Scoped(Push)),
    ("GET", "/api/v1/alerts", Scoped(Read)),
    ("GET", "/api/v1/rules", Scoped(Read)),
    ("GET", "/api/v1/slos", Scoped(Read)),
    ("GET", "/api/v1/plugins", Scoped(Read)),
    ("GET", "/api/v1/plugins/*", Scoped(Read)),
    ("GET", "/api/v1/notifications", Scoped(Read)),
    ("GET", "/api/v1/status/runtime", Scoped(Read)),
    ("GET", "/api/v1/query", Scoped(Read)),
    ("POST", "/api/v1/query", Scoped(Read)),
    ("GET", "/api/v1/query_range", Scoped(Read)),
    ("POST", "/api/v1/query_range", Scoped(Read)),
    ("GET", "/api/v1/series", Scoped(Read)),
    ("POST", "/api/v1/series", Scoped(Read)),
    ("GET", "/api/v1/labels", Scoped(Read)),
    ("POST", "/api/v1/labels", Scoped(Read)),
    ("GET", "/api/v1/label/{name}/values", Scoped(Read)),
    ("GET", "/api/v1/status/buildinfo", Scoped(Read)),
    ("GET", "/api/v2/alerts", Scoped(Read)),
    ("GET", "/api/v2/alerts/groups", Scoped(Read)),
    ("GET", "/api/v2/silences", Scoped(Read)),
    ("GET", "/api/v2/silence/{id}", Scoped(Read)),
    ("GET", "/api/v2/status", Scoped(Read)),
    ("GET", "/api/v2/receivers", Scoped(Read)),
    ("POST", "/api/v2/silences", Scoped(Write)),
    ("DELETE", "/api/v2/silence/{id}", Scoped(Write)),
    ("POST", "/-/reload", Scoped(Admin)),
    // Plugin changes (upload, delete, rollback, promote, shadow).
    ("PUT", "/api/v1/plugins/*", Scoped(Admin)),
    ("POST", "/api/v1/plugins/*", Scoped(Admin)),
    ("DELETE", "/api/v1/plugins/*", Scoped(Admin)),
    ("GET", "/healthz", Open),
    ("GET", "/-/healthy", Open),
    ("GET", "/-/ready", Open),
];

/// The table's entry for a route, if it has one. `HEAD` is looked up as
/// `GET` (axum answers it with the `GET` handler).
pub fn route_access(method: &Method, path: &str) -> Option<Access> {
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    let exact = ROUTE_SCOPES
        .iter()
        .find(|(m, p, _)| *m == method && *p == path);
    let prefix = || {
        ROUTE_SCOPES.iter().find(|(m, p, _)| {
            *m == method
                && p.strip_suffix('*')
                    .is_some_and(|dir| path.starts_with(dir) && path.len() > dir.len())
        })
    };
    exact.or_else(prefix).map(|(_, _, a)| *a)
}

/// What a request needs: the table's entry, else `admin`.
pub fn required_access(method: &Method, matched_path: Option<&str>) -> Access {
    matched_path
        .and_then(|p| route_access(method, p))
        .unwrap_or(Scoped(Admin))
}

/// Lower-case hex SHA-256 of a token: what `server.auth.tokens[].sha256` holds.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

/// A new random token (256 bits, hex).
pub fn generate_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("klx_{}", hex::encode(bytes))
}

/// Whether a token with `scopes` may do what `scope` allows.
pub fn grants(scopes: &[Scope], scope: Scope) -> bool {
    scopes.contains(&Admin) || scopes.contains(&scope)
}

/// The auth layer's own state: rate-limit buckets by token name.
pub struct Gate {
    app: Arc<AppState>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Gate {
    /// A gate reading its tokens from `app`'s config in force.
    pub fn new(app: Arc<AppState>) -> Arc<Self> {
        Arc::new(Self {
            app,
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Takes one request from the token's bucket; `Err(wait)` when empty.
    fn take(&self, name: &str, limit: ApiRateLimit) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock();
        let bucket = buckets
            .entry(name.to_string())
            .or_insert_with(|| Bucket::new(limit, now));
        bucket.take(limit, now)
    }
}

/// A token bucket.
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn burst(limit: ApiRateLimit) -> f64 {
        f64::from(
            limit
                .burst
                .unwrap_or(limit.per_second.ceil().min(f64::from(u32::MAX)) as u32)
                .max(1),
        )
    }

    fn new(limit: ApiRateLimit, now: Instant) -> Self {
        Self {
            tokens: Self::burst(limit),
            at: now,
        }
    }

    fn take(&mut self, limit: ApiRateLimit, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * limit.per_second).min(Self::burst(limit));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / limit.per_second;
            Err(Duration::try_from_secs_f64(wait).unwrap_or(Duration::MAX))
        }
    }
}

/// The token a request presents (`Authorization: Bearer <token>`).
fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The configured token whose hash matches `presented`, compared in
/// constant time.
fn find_token<'a>(tokens: &'a [TokenConfig], presented: &str) -> Option<&'a TokenConfig> {
    let digest = Sha256::digest(presented.as_bytes());
    let mut found = None;
    for t in tokens {
        let Ok(expected) = hex::decode(&t.sha256) else {
            continue;
        };
        if bool::from(expected.as_slice().ct_eq(digest.as_slice())) {
            found = Some(t);
        }
    }
    found
}

fn refuse(status: StatusCode, kind: &str, message: String) -> Response {
    let body = json!({"status": "error", "errorType": kind, "error": message});
    (status, axum::Json(body)).into_response()
}

/// The middleware: authenticates, checks the route's scope, then the
/// token's rate and body limits.
pub async fn authorize(State(gate): State<Arc<Gate>>, req: Request, next: Next) -> Response {
    let max_body = match admit(&gate, &req) {
        Ok(max_body) => max_body,
        Err(refusal) => return *refusal,
    };
    let Some(max) = max_body else {
        return next.run(req).await;
    };
    // A body without a length is cut off at the limit as it streams.
    let (parts, body) = req.into_parts();
    let limited = Body::new(http_body_util::Limited::new(body, max));
    next.run(Request::from_parts(parts, limited)).await
}

/// Whether the request may go on, and then the body limit of its token.
fn admit(gate: &Gate, req: &Request) -> Result<Option<usize>, Box<Response>> {
    let matched = req.extensions().get::<MatchedPath>().map(|p| p.as_str());
    let method = req.method();
    let Scoped(scope) = required_access(method, matched) else {
        return Ok(None);
    };
    let live = gate.app.live.load();
    let auth = &live.config.server.auth;
    if auth.tokens.is_empty() {
        return Ok(None);
    }
    let route = matched.unwrap_or("(no such route)");
    let presented = bearer(req);
    let Some(token) = presented.and_then(|t| find_token(&auth.tokens, t)) else {
        let why = if presented.is_some() {
            "unknown token"
        } else {
            "missing `Authorization: Bearer <token>`"
        };
        tracing::debug!(%method, path = %req.uri().path(), why, "API request refused");
        let mut resp = refuse(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!("{why}: {method} {route} needs a token with scope `{scope}`"),
        );
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"klaxon\""),
        );
        return Err(Box::new(resp));
    };
    if !grants(&token.scopes, scope) {
        tracing::info!(token = %token.name, %method, %route, needed = %scope, "API request refused: missing scope");
        return Err(Box::new(refuse(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "token `{}` lacks scope `{scope}` for {method} {route}",
                token.name
            ),
        )));
    }
    if let Some(limit) = token.rate_limit.or(auth.rate_limit)
        && let Err(wait) = gate.take(&token.name, limit)
    {
        let secs = wait.as_secs_f64().ceil().clamp(1.0, 1e9) as u64;
        let mut resp = refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "token `{}` exceeds its rate limit of {}/s; retry in {secs}s",
                token.name, limit.per_second
            ),
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return Err(Box::new(resp));
    }
    let Some(max) = token.max_body_bytes.or(auth.max_body_bytes) else {
        return Ok(None);
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(Box::new(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "bad_data",
            format!(
                "body: request body exceeds token `{}`'s limit of {max} bytes",
                token.name
            ),
        )));
    }
    Ok(Some(max))
}

/// Why the listening address deserves a warning, if it does: a
/// non-loopback address without tokens serves anyone who can reach it;
/// with tokens but without TLS, the tokens cross the network in clear.
pub fn exposure_warning(addr: std::net::SocketAddr, auth: bool, tls: bool) -> Option<String> {
    if addr.ip().is_loopback() {
        return None;
    }
    if !auth {
        return Some(format!(
            "!!! Klaxon listens on {addr}, a non-loopback address, WITHOUT AUTHENTICATION: \
             anyone who can reach it can push data, read alerts, silence them and reload \
             the config. Configure `server.auth.tokens` (see README, Security) or listen \
             on 127.0.0.1."
        ));
    }
    if !tls {
        return Some(format!(
            "Klaxon listens on {addr}, a non-loopback address, without TLS: bearer tokens \
             cross the network in clear text. Configure `server.tls` or terminate TLS in \
             front of Klaxon."
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_routes_need_admin() {
        assert_eq!(
            required_access(&Method::POST, Some("/api/v1/push")),
            Scoped(Push)
        );
        assert_eq!(
            required_access(&Method::HEAD, Some("/healthz")),
            Access::Open
        );
        assert_eq!(
            required_access(&Method::GET, Some("/api/v1/plugins/{name}/versions")),
            Scoped(Read)
        );
        assert_eq!(
            route_access(&Method::PUT, "/api/v1/plugins/{name}"),
            Some(Scoped(Admin))
        );
        assert_eq!(route_access(&Method::PUT, "/api/v1/plugins/"), None);
        for (m, p) in [
            (Method::PATCH, Some("/api/v1/plugins/{name}")),
            (Method::GET, Some("/api/v1/new-thing")),
            (Method::POST, Some("/healthz")),
            (Method::GET, None),
        ] {
            assert_eq!(required_access(&m, p), Scoped(Admin), "{m} {p:?}");
        }
    }

    #[test]
    fn admin_grants_everything() {
        assert!(grants(&[Admin], Write));
        assert!(grants(&[Read, Push], Push));
        assert!(!grants(&[Read], Write));
        assert!(!grants(&[Push, Read, Write], Admin));
    }

    #[test]
    fn tokens_match_by_hash() {
        let token = generate_token();
        let tokens = vec![TokenConfig {
            name: "ci".into(),
            sha256: hash_token(&token),
            scopes: vec![Push],
            rate_limit: None,
            max_body_bytes: None,
        }];
        assert_eq!(
            find_token(&tokens, &token).map(|t| t.name.as_str()),
            Some("ci")
        );
        assert!(find_token(&tokens, "klx_wrong").is_none());
        assert_eq!(
            hash_token("secret"),
            "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
        );
    }

    #[test]
    fn bucket_refuses_past_the_burst_and_says_how_long() {
        let limit = ApiRateLimit {
            per_second: 2.0,
            burst: Some(2),
        };
        let t0 = Instant::now();
        let mut b = Bucket::new(limit, t0);
        assert!(b.take(limit, t0).is_ok());
        assert!(b.take(limit, t0).is_ok());
        let wait = b.take(limit, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(b.take(limit, t0 + Duration::from_millis(500)).is_ok());
    }

    #[test]
    fn exposure_warnings() {
        let lo: std::net::SocketAddr = "127.0.0.1:9190".parse().unwrap();
        let lo6: std::net::SocketAddr = "[::1]:9190".parse().unwrap();
        let any: std::net::SocketAddr = "0.0.0.0:9190".parse().unwrap();
        assert_eq!(exposure_warning(lo, false, false), None);
        assert_eq!(exposure_warning(lo6, false, false), None);
        let w = exposure_warning(any, false, false).expect("warns");
        assert!(w.contains("WITHOUT AUTHENTICATION"), "{w}");
        let w = exposure_warning(any, true, false).expect("warns");
        assert!(w.contains("without TLS"), "{w}");
        assert_eq!(exposure_warning(any, true, true), None);
    }
}
