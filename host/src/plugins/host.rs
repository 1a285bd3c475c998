//! What a plugin instance sees of the host: the per-call state (`CallState`)
//! with its empty WASI context, memory limiter and log budget, and the host
//! implementations of the `log`, `http` and `smtp` imports (`http` through
//! the SSRF guard of [`super::netguard`]).
//!
//! Detector and composite calls are synchronous and run on a blocking
//! thread (`spawn_blocking`), never on an async worker. Notifier calls are
//! asynchronous (WASI's async bindings; `http` and `smtp` await the network
//! on the caller's runtime), so a delivery runs as a plain tokio task.

use std::sync::Arc;
use std::time::Duration;

use ::http::header::{HeaderMap, HeaderName, HeaderValue};
use ::http::{Method, StatusCode, Uri};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_platform_verifier::ConfigVerifierExt;
use wasmtime::ResourceLimiter;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{
    HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView,
};

use super::PluginLimits;
use super::bindings::{batch, http, log, smtp, types};
use super::netguard::{GuardedResolver, NetPolicy, Refusal, find_refusal, redact_url};

/// Bytes of stdout and of stderr kept per call.
const STDIO_CAPTURE_BYTES: usize = 64 << 10;

/// State of one plugin call's store.
pub(crate) struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    plugin: String,
    log_budget: u32,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    http: Option<Arc<HttpCapability>>,
    http_requests: u32,
    smtp: Option<Arc<SmtpCapability>>,
    smtp_messages: u32,
    /// Notifications the call delivers (`send-batch` delivers several): the
    /// per-call quotas of requests, messages and log lines are per
    /// notification.
    notifications: u32,
    /// What a `send-batch` call reported so far, by notification index.
    pub(crate) batch_reports: Vec<Option<Result<types::Delivery, types::DeliveryError>>>,
    /// When an asynchronous call is interrupted.
    pub(crate) deadline: Deadline,
    /// The epoch advances while the store lives (deadlines count ticks).
    _ticking: super::engine::Ticking,
}

/// An asynchronous call's deadline: `at`, moved to `step` from now when a
/// `send-batch` call first reports a notification (each notification of a
/// batch gets one call's time).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    pub(crate) at: std::time::Instant,
    pub(crate) step: Duration,
}

impl CallState {
    pub(crate) fn new(
        plugin: String,
        limits: &PluginLimits,
        http: Option<Arc<HttpCapability>>,
        smtp: Option<Arc<SmtpCapability>>,
        ticking: super::engine::Ticking,
    ) -> Self {
        let stdout = MemoryOutputPipe::new(STDIO_CAPTURE_BYTES);
        let stderr = MemoryOutputPipe::new(STDIO_CAPTURE_BYTES);
        // Nothing ambient: no env, args, preopens or network; clocks frozen at
        // zero so a plugin's verdicts depend only on its inputs.
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .allow_ip_name_lookup(false)
            .allow_tcp(false)
            .allow_udp(false)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter {
                max_bytes: limits.memory_bytes,
                denied: false,
                peak_bytes: 0,
            },
            plugin,
            log_budget: limits.max_log_lines,
            stdout,
            stderr,
            http,
            http_requests: 0,
            smtp,
            smtp_messages: 0,
            notifications: 1,
            batch_reports: Vec::new(),
            deadline: Deadline {
                at: std::time::Instant::now() + limits.timeout,
                step: limits.timeout,
            },
            _ticking: ticking,
        }
    }

    /// Makes the call's quotas those of `n` notifications, and room for
    /// their reports.
    pub(crate) fn set_notifications(&mut self, n: u32) {
        let n = n.max(1);
        self.log_budget = self.log_budget / self.notifications * n;
        self.notifications = n;
        self.batch_reports = vec![None; n as usize];
    }

    /// Moves what the plugin printed into the log, line by line, within budget.
    pub(crate) fn flush_stdio(&mut self) {
        for (stream, pipe) in [
            ("stdout", self.stdout.clone()),
            ("stderr", self.stderr.clone()),
        ] {
            let bytes = pipe.contents();
            if bytes.is_empty() {
                continue;
            }
            for line in String::from_utf8_lossy(&bytes).lines() {
                if self.log_budget == 0 {
                    break;
                }
                self.log_budget -= 1;
                tracing::info!(plugin = %self.plugin, stream, "{line}");
            }
        }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Caps a plugin's linear memory and remembers whether it hit the cap, so a
/// failed call can say "memory limit" instead of a bare trap.
pub(crate) struct MemoryLimiter {
    max_bytes: u64,
    pub(crate) denied: bool,
    /// Largest memory size granted during the call.
    pub(crate) peak_bytes: u64,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired as u64 <= self.max_bytes;
        if ok {
            self.peak_bytes = self.peak_bytes.max(desired as u64);
        } else {
            self.denied = true;
        }
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// Links the imports every plugin may use: WASI (with the empty context above).
pub(crate) fn add_base_imports(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)
}

/// Like [`add_base_imports`], WASI's async bindings: for notifiers, whose
/// calls are made with wasmtime's `*_async` functions.
pub(crate) fn add_base_imports_async(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)
}

impl log::Host for CallState {
    fn log(&mut self, level: log::Level, message: String) {
        if self.log_budget == 0 {
            return;
        }
        self.log_budget -= 1;
        let plugin = &self.plugin;
        match level {
            log::Level::Trace => tracing::trace!(plugin = %plugin, "{message}"),
            log::Level::Debug => tracing::debug!(plugin = %plugin, "{message}"),
            log::Level::Info => tracing::info!(plugin = %plugin, "{message}"),
            log::Level::Warn => tracing::warn!(plugin = %plugin, "{message}"),
            log::Level::Error => tracing::error!(plugin = %plugin, "{message}"),
        }
    }
}

impl super::bindings::types::Host for CallState {}

/// The client behind [`HttpCapability`]: hyper-util's pooled client, TLS by
/// rustls with the platform's roots (ALPN offers HTTP/2 and HTTP/1.1),
/// connecting only to the addresses [`GuardedResolver`] lets through.
type Client = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<HttpConnector<GuardedResolver>>,
    Full<Bytes>,
>;

/// Outbound HTTP a notifier may use for one receiver integration: a client
/// that reaches only what the integration's [`NetPolicy`] allows (checked
/// after DNS resolution and on every redirect hop), a per-request timeout
/// cap, a response size cap and a request count cap.
#[derive(Debug, Clone)]
pub struct HttpCapability {
    client: Client,
    handle: tokio::runtime::Handle,
    policy: Arc<NetPolicy>,
    /// Longest a single request may take, redirects and body included.
    pub max_timeout: Duration,
    /// Largest response body read; larger is an error.
    pub max_response_bytes: usize,
    /// Requests one `send` call may make.
    pub max_requests_per_call: u32,
    /// The URL last sent to, parsed: an integration sends to the same URL
    /// again and again, so most requests skip the parse.
    last_url: Arc<parking_lot::Mutex<Option<(String, reqwest::Url)>>>,
}

/// Redirects one request may follow (each hop checked like the first).
pub const MAX_REDIRECTS: usize = 3;

const USER_AGENT: &str = concat!("Klaxon/", env!("CARGO_PKG_VERSION"));

/// Headers a redirect to another origin does not carry (as browsers and
/// reqwest do): credentials meant for the first host.
const SENSITIVE_HEADERS: [HeaderName; 4] = [
    ::http::header::AUTHORIZATION,
    ::http::header::COOKIE,
    ::http::header::PROXY_AUTHORIZATION,
    ::http::header::WWW_AUTHENTICATE,
];

/// A pooled client connecting only where `policy` allows.
fn client(policy: &Arc<NetPolicy>) -> Result<Client, String> {
    let mut tcp = HttpConnector::new_with_resolver(GuardedResolver::new(policy.clone()));
    // The TLS layer above decides the scheme; it refuses anything else.
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config()?)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(tcp);
    Ok(
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .build(connector),
    )
}

/// One TLS configuration for every integration: ring, the platform's roots.
fn tls_config() -> Result<rustls::ClientConfig, String> {
    static CONFIG: std::sync::OnceLock<Result<rustls::ClientConfig, String>> =
        std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            // No process-wide rustls provider means a panic at the first
            // handshake; ring is the one Klaxon uses everywhere (installing
            // again is a no-op).
            let _ = rustls::crypto::ring::default_provider().install_default();
            rustls::ClientConfig::with_platform_verifier().map_err(|e| e.to_string())
        })
        .clone()
}

impl HttpCapability {
    /// Sets the hosts the live plugin version allows (see
    /// [`NetPolicy::set_plugin_hosts`]); called before each delivery.
    pub fn set_plugin_hosts(&self, hosts: &[String]) {
        self.policy.set_plugin_hosts(hosts);
    }

    /// A capability reaching only what `policy` allows, on the runtime behind
    /// `handle`. No proxy is ever used: a proxy would resolve and connect on
    /// the plugin's behalf, unchecked.
    pub fn new(policy: NetPolicy, handle: tokio::runtime::Handle) -> Result<Self, String> {
        let policy = Arc::new(policy);
        Ok(Self {
            client: client(&policy)?,
            handle,
            policy,
            max_timeout: Duration::from_secs(10),
            max_response_bytes: 1 << 20,
            max_requests_per_call: 3,
            last_url: Arc::default(),
        })
    }

    /// The same capability (policy and limits shared) with a connection
    /// pool (and parsed-URL cache) of its own, for the runtime behind
    /// `handle`: a pooled connection is served by a task on the runtime
    /// that opened it, so a runtime that sends on its own connections never
    /// wakes another.
    pub fn for_runtime(&self, handle: tokio::runtime::Handle) -> Result<Self, String> {
        Ok(Self {
            client: client(&self.policy)?,
            handle,
            last_url: Arc::default(),
            ..self.clone()
        })
    }

    /// Wall time a notifier call may spend waiting on the network.
    pub fn call_budget(&self) -> Duration {
        self.max_timeout * self.max_requests_per_call
    }

    /// Sends one request for a plugin, blocking on the capability's runtime
    /// (never call it on an async worker); see [`HttpCapability::send`].
    pub fn execute(&self, req: http::Request) -> Result<http::Response, http::HttpError> {
        self.handle.block_on(self.send(req))
    }

    /// Sends one request for a plugin; see the WIT `http` interface. Errors
    /// name the host, never the whole URL (which may carry a token).
    pub async fn send(&self, req: http::Request) -> Result<http::Response, http::HttpError> {
        let method = Method::from_bytes(req.method.as_bytes())
            .map_err(|_| http::HttpError::InvalidRequest(format!("bad method `{}`", req.method)))?;
        let url = self.parse_url(&req.url)?;
        self.policy.check_url(&url).map_err(denied)?;
        let timeout = req
            .timeout_ms
            .map(|ms| Duration::from_millis(ms.into()))
            .unwrap_or(self.max_timeout)
            .min(self.max_timeout);
        let headers = header_map(&req.headers)?;
        let exchange = Exchange {
            method,
            url,
            headers,
            body: Bytes::from(req.body),
        };
        tokio::time::timeout(timeout, self.exchange(exchange, &req.headers))
            .await
            .unwrap_or(Err(http::HttpError::Timeout))
    }

    /// Sends `first`, following redirects: each hop is checked by the policy
    /// before it is sent; a 303 (and a 301 or 302 answering a POST) turns
    /// into a body-less GET; a hop to another origin drops the credentials
    /// ([`SENSITIVE_HEADERS`]) for it and every later hop.
    async fn exchange(
        &self,
        first: Exchange,
        plugin_headers: &[http::Header],
    ) -> Result<http::Response, http::HttpError> {
        let mut hop = first;
        let mut redirects = 0;
        let mut bodiless = false;
        let mut cross_origin = false;
        loop {
            let uri: Uri = hop.url.as_str().parse().map_err(|e| {
                http::HttpError::InvalidRequest(format!(
                    "bad url `{}`: {e}",
                    redact_url(hop.url.as_str())
                ))
            })?;
            let mut request = ::http::Request::new(Full::new(hop.body.clone()));
            *request.method_mut() = hop.method.clone();
            *request.uri_mut() = uri;
            *request.headers_mut() = std::mem::take(&mut hop.headers);
            let response = self.client.request(request).await.map_err(classify)?;
            let Some(next) = redirect_target(&hop.url, &response) else {
                return read_response(response, self.max_response_bytes).await;
            };
            if redirects == MAX_REDIRECTS {
                return Err(denied(Refusal::TooManyRedirects(MAX_REDIRECTS)));
            }
            redirects += 1;
            self.policy.check_url(&next).map_err(denied)?;
            let status = response.status();
            if status == StatusCode::SEE_OTHER && hop.method != Method::HEAD
                || matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND)
                    && hop.method == Method::POST
            {
                hop.method = Method::GET;
                hop.body = Bytes::new();
                bodiless = true;
            }
            cross_origin |= next.origin() != hop.url.origin();
            hop.url = next;
            hop.headers = header_map(plugin_headers)?;
            if bodiless {
                for name in [
                    ::http::header::CONTENT_TYPE,
                    ::http::header::CONTENT_LENGTH,
                    ::http::header::CONTENT_ENCODING,
                    ::http::header::TRANSFER_ENCODING,
                ] {
                    hop.headers.remove(name);
                }
            }
            if cross_origin {
                for name in &SENSITIVE_HEADERS {
                    hop.headers.remove(name);
                }
            }
        }
    }
}

/// One hop of a request: what [`HttpCapability::exchange`] sends next.
struct Exchange {
    method: Method,
    url: reqwest::Url,
    headers: HeaderMap,
    body: Bytes,
}

/// The plugin's headers as a header map, with Klaxon's `User-Agent` unless
/// the plugin set one.
fn header_map(headers: &[http::Header]) -> Result<HeaderMap, http::HttpError> {
    let mut map = HeaderMap::with_capacity(headers.len() + 1);
    for h in headers {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| {
            http::HttpError::InvalidRequest(format!("bad header name `{}`", h.name))
        })?;
        let value = HeaderValue::from_str(&h.value).map_err(|_| {
            http::HttpError::InvalidRequest(format!("bad value for header `{}`", h.name))
        })?;
        map.append(name, value);
    }
    map.entry(::http::header::USER_AGENT)
        .or_insert(HeaderValue::from_static(USER_AGENT));
    Ok(map)
}

/// Where a redirect response points, resolved against `from`; `None` for
/// any other response (or a redirect without a usable `Location`, which
/// is returned to the plugin as it is).
fn redirect_target<B>(from: &reqwest::Url, response: &::http::Response<B>) -> Option<reqwest::Url> {
    if !matches!(
        response.status(),
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    ) {
        return None;
    }
    let location = response.headers().get(::http::header::LOCATION)?;
    from.join(location.to_str().ok()?).ok()
}

/// The response as the plugin sees it; a body over `max` bytes is an error.
async fn read_response(
    response: ::http::Response<hyper::body::Incoming>,
    max: usize,
) -> Result<http::Response, http::HttpError> {
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| http::Header {
            name: n.as_str().to_string(),
            value: String::from_utf8_lossy(v.as_bytes()).into_owned(),
        })
        .collect();
    let declared = response
        .headers()
        .get(::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(http::HttpError::TooLarge);
    }
    let mut incoming = response.into_body();
    let mut body = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    while let Some(frame) = incoming.frame().await {
        let frame = frame.map_err(|e| http::HttpError::Connection(error_chain(&e)))?;
        if let Ok(chunk) = frame.into_data() {
            if body.len() + chunk.len() > max {
                return Err(http::HttpError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
    }
    Ok(http::Response {
        status,
        headers,
        body,
    })
}

impl HttpCapability {
    /// `url` parsed, from [`HttpCapability::last_url`] when it is the same.
    fn parse_url(&self, url: &str) -> Result<reqwest::Url, http::HttpError> {
        if let Some((text, parsed)) = &*self.last_url.lock()
            && text == url
        {
            return Ok(parsed.clone());
        }
        let parsed = reqwest::Url::parse(url).map_err(|e| {
            http::HttpError::InvalidRequest(format!("bad url `{}`: {e}", redact_url(url)))
        })?;
        *self.last_url.lock() = Some((url.to_string(), parsed.clone()));
        Ok(parsed)
    }
}

/// A refused destination, as the plugin sees it.
fn denied(refusal: Refusal) -> http::HttpError {
    http::HttpError::Denied(refusal.to_string())
}

/// A client error as the plugin sees it: a refusal by the resolver (an
/// address the policy does not allow) or a connection failure. hyper's
/// errors never carry the URL.
fn classify(e: hyper_util::client::legacy::Error) -> http::HttpError {
    match find_refusal(&e) {
        Some(refusal) => denied(refusal),
        None => http::HttpError::Connection(error_chain(&e)),
    }
}

/// An error and its sources, `: `-separated (reqwest's own text is terse).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cur = s.source();
    }
    text
}

impl http::Host for CallState {
    async fn send(&mut self, req: http::Request) -> Result<http::Response, http::HttpError> {
        let Some(cap) = self.http.clone() else {
            return Err(http::HttpError::Denied(
                "this plugin has no http capability".into(),
            ));
        };
        if self.http_requests >= cap.max_requests_per_call * self.notifications {
            return Err(http::HttpError::Denied(format!(
                "at most {} requests per notification",
                cap.max_requests_per_call
            )));
        }
        self.http_requests += 1;
        // Never the whole URL: paths and queries carry tokens (Slack, Teams).
        // Redacting parses the URL: only for a line that is logged.
        if tracing::enabled!(tracing::Level::DEBUG) {
            tracing::debug!(plugin = %self.plugin, method = %req.method, url = %redact_url(&req.url), "plugin http request");
        }
        let url = req.url.clone();
        let result = cap.send(req).await;
        if let Err(http::HttpError::Denied(reason)) = &result {
            tracing::warn!(plugin = %self.plugin, url = %redact_url(&url), %reason, "plugin http request refused");
        }
        result
    }
}

/// Outbound mail a notifier may use for one integration: only to the
/// smarthosts its config names (the receiver's allow-list), within a time cap
/// and a message count cap. The password goes to the server and nowhere else:
/// it is never logged and is scrubbed from errors.
#[derive(Debug, Clone)]
pub struct SmtpCapability {
    handle: tokio::runtime::Handle,
    /// `(host, port)` pairs the plugin may connect to; host compared
    /// case-insensitively.
    allowed: Vec<(String, u16)>,
    /// Longest one whole SMTP transaction may take.
    pub max_timeout: Duration,
    /// Messages one `send` call may send.
    pub max_messages_per_call: u32,
}

impl SmtpCapability {
    /// A capability allowing exactly the `allowed` smarthosts, on the runtime
    /// behind `handle`.
    pub fn new(handle: tokio::runtime::Handle, allowed: Vec<(String, u16)>) -> Self {
        Self {
            handle,
            allowed,
            max_timeout: Duration::from_secs(30),
            max_messages_per_call: 1,
        }
    }

    /// Wall time a notifier call may spend waiting on mail servers.
    pub fn call_budget(&self) -> Duration {
        self.max_timeout * self.max_messages_per_call
    }

    fn is_allowed(&self, host: &str, port: u16) -> bool {
        self.allowed
            .iter()
            .any(|(h, p)| *p == port && h.eq_ignore_ascii_case(host))
    }

    /// Sends one message, blocking on the capability's runtime (never call
    /// it on an async worker); see [`SmtpCapability::send`].
    pub fn execute(&self, server: smtp::Server, msg: smtp::Message) -> Result<(), smtp::SmtpError> {
        self.handle.block_on(self.send(server, msg))
    }

    /// Builds the MIME message and sends it; see the WIT `smtp` interface.
    pub async fn send(
        &self,
        server: smtp::Server,
        msg: smtp::Message,
    ) -> Result<(), smtp::SmtpError> {
        use lettre::AsyncTransport as _;
        use lettre::transport::smtp::authentication::Credentials;
        use lettre::transport::smtp::client::{Tls, TlsParameters};
        use lettre::transport::smtp::extension::ClientId;

        if !self.is_allowed(&server.host, server.port) {
            return Err(smtp::SmtpError::Denied(format!(
                "{}:{} is not an allowed smarthost for this receiver",
                server.host, server.port
            )));
        }
        let email = build_message(msg)?;
        let timeout = server
            .timeout_ms
            .map(|ms| Duration::from_millis(ms.into()))
            .unwrap_or(self.max_timeout)
            .min(self.max_timeout);
        let tls = match server.tls {
            smtp::TlsMode::None => Tls::None,
            mode => {
                let params = TlsParameters::new_rustls(server.host.clone())
                    .map_err(|e| smtp::SmtpError::Connection(format!("tls setup: {e}")))?;
                if mode == smtp::TlsMode::Starttls {
                    Tls::Required(params)
                } else {
                    Tls::Wrapper(params)
                }
            }
        };
        let mut builder =
            lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(&server.host)
                .port(server.port)
                .tls(tls)
                .timeout(Some(timeout));
        if let Some(hello) = &server.hello {
            builder = builder.hello_name(ClientId::Domain(hello.clone()));
        }
        let password = server.password.clone().unwrap_or_default();
        if let Some(user) = &server.username {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        let transport = builder.build();
        let result = tokio::time::timeout(timeout, transport.send(email)).await;
        match result {
            Err(_) => Err(smtp::SmtpError::Timeout),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(classify_smtp(&e, &password)),
        }
    }
}

/// The MIME message: `multipart/alternative` when both bodies are given.
fn build_message(msg: smtp::Message) -> Result<lettre::Message, smtp::SmtpError> {
    use lettre::message::header::{ContentType, HeaderName, HeaderValue};
    use lettre::message::{Mailbox, MultiPart};

    let invalid = smtp::SmtpError::Invalid;
    let from: Mailbox = msg
        .from
        .parse()
        .map_err(|e| invalid(format!("from {:?}: {e}", msg.from)))?;
    if msg.to.is_empty() {
        return Err(invalid("no recipient".into()));
    }
    let mut builder = lettre::Message::builder().from(from).subject(msg.subject);
    for to in &msg.to {
        let mailbox: Mailbox = to.parse().map_err(|e| invalid(format!("to {to:?}: {e}")))?;
        builder = builder.to(mailbox);
    }
    for h in msg.headers {
        if h.value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(invalid(format!(
                "header {}: value must not contain CR, LF or NUL",
                h.name
            )));
        }
        let name = HeaderName::new_from_ascii(h.name.clone())
            .map_err(|_| invalid(format!("invalid header name {:?}", h.name)))?;
        builder = builder.raw_header(HeaderValue::new(name, h.value));
    }
    let built = match (msg.text_body, msg.html_body) {
        (Some(text), Some(html)) => {
            builder.multipart(MultiPart::alternative_plain_html(text, html))
        }
        (Some(text), None) => builder.header(ContentType::TEXT_PLAIN).body(text),
        (None, Some(html)) => builder.header(ContentType::TEXT_HTML).body(html),
        (None, None) => return Err(invalid("no text or html body".into())),
    };
    built.map_err(|e| invalid(e.to_string()))
}

/// Maps lettre's error to the WIT error, without the password.
fn classify_smtp(e: &lettre::transport::smtp::Error, password: &str) -> smtp::SmtpError {
    let scrub = |text: String| {
        if password.is_empty() {
            text
        } else {
            text.replace(password, "<secret>")
        }
    };
    // The server's own text is the error's source; the code is in `status`.
    let text = || {
        scrub(
            std::error::Error::source(e)
                .map(|s| s.to_string())
                .unwrap_or_else(|| e.to_string()),
        )
    };
    let code = e.status().map(u16::from).unwrap_or(0);
    if e.is_timeout() {
        smtp::SmtpError::Timeout
    } else if e.is_permanent() {
        smtp::SmtpError::Rejected((code, text()))
    } else if e.is_transient() {
        smtp::SmtpError::Transient((code, text()))
    } else {
        smtp::SmtpError::Connection(scrub(e.to_string()))
    }
}

impl batch::Host for CallState {
    fn report(&mut self, index: u32, outcome: Result<types::Delivery, types::DeliveryError>) {
        // An index outside the batch is ignored: the call's result list,
        // checked by the caller, is what counts then. Only a first report
        // of a notification earns the next one its time, so a plugin cannot
        // keep a call alive by reporting again.
        if let Some(slot) = self.batch_reports.get_mut(index as usize) {
            if slot.is_none() {
                self.deadline.at = std::time::Instant::now() + self.deadline.step;
            }
            *slot = Some(outcome);
        }
    }
}

impl smtp::Host for CallState {
    async fn send(
        &mut self,
        server: smtp::Server,
        message: smtp::Message,
    ) -> Result<(), smtp::SmtpError> {
        let Some(cap) = self.smtp.clone() else {
            return Err(smtp::SmtpError::Denied(
                "this plugin has no smtp capability".into(),
            ));
        };
        if self.smtp_messages >= cap.max_messages_per_call * self.notifications {
            return Err(smtp::SmtpError::Denied(format!(
                "at most {} messages per notification",
                cap.max_messages_per_call
            )));
        }
        self.smtp_messages += 1;
        // Never the password: host, port, mode and recipients only.
        tracing::debug!(plugin = %self.plugin, host = %server.host, port = server.port, tls = ?server.tls, recipients = message.to.len(), "plugin smtp message");
        cap.send(server, message).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipnet::IpNet;

    fn message() -> smtp::Message {
        smtp::Message {
            from: "Klaxon <klaxon@example.com>".into(),
            to: vec!["oncall@example.com".into()],
            subject: "[FIRING:1] X".into(),
            text_body: Some("text".into()),
            html_body: Some("<p>html</p>".into()),
            headers: vec![],
        }
    }

    fn server(host: &str, port: u16) -> smtp::Server {
        smtp::Server {
            host: host.into(),
            port,
            tls: smtp::TlsMode::None,
            username: Some("u".into()),
            password: Some("hunter2".into()),
            hello: None,
            timeout_ms: Some(500),
        }
    }

    #[test]
    fn smtp_refuses_hosts_other_than_the_smarthost() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let cap = SmtpCapability::new(rt.handle().clone(), vec![("SMTP.example.com".into(), 587)]);
        for (host, port) in [
            ("127.0.0.1", 587),
            ("smtp.example.com", 25),
            ("169.254.169.254", 587),
        ] {
            let err = cap.execute(server(host, port), message()).unwrap_err();
            assert!(
                matches!(err, smtp::SmtpError::Denied(_)),
                "{host}:{port}: {err:?}"
            );
        }
        assert!(cap.is_allowed("smtp.example.com", 587));
    }

    fn get(url: &str) -> http::Request {
        http::Request {
            method: "GET".into(),
            url: url.into(),
            headers: vec![],
            body: vec![],
            timeout_ms: Some(500),
        }
    }

    #[test]
    fn http_refuses_what_the_policy_does_not_allow_naming_only_the_host() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let policy = NetPolicy::new(["hooks.example.com", "10.1.2.3"], vec![]);
        let cap = HttpCapability::new(policy, rt.handle().clone()).expect("client");
        for (url, want) in [
            (
                "https://evil.example.net/services/s3cret",
                "host `evil.example.net` is not allowed for this receiver",
            ),
            (
                "http://169.254.169.254/latest/meta-data/s3cret",
                "host `169.254.169.254` is not allowed",
            ),
            (
                "http://10.1.2.3:8080/s3cret",
                "host `10.1.2.3` (10.1.2.3) is a private address",
            ),
            ("file:///etc/s3cret", "scheme `file` is not allowed"),
        ] {
            match cap.execute(get(url)) {
                Err(http::HttpError::Denied(why)) => {
                    assert!(why.contains(want), "{url}: {why}");
                    assert!(!why.contains("s3cret"), "{url}: {why}");
                }
                other => panic!("{url}: {other:?}"),
            }
        }
        match cap.execute(get("not a url/s3cret")) {
            Err(http::HttpError::InvalidRequest(why)) => assert!(!why.contains("s3cret"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    /// A local server for the client's own behaviour: `/to/{status}/{path}`
    /// redirects with that status to `/{path}` on the same origin, `/cross`
    /// redirects to `localhost` (another origin), `/loop` to itself, `/big`
    /// answers 4 KiB, `/slow` answers after 2 s, and anything else echoes
    /// the method, body and `Authorization` it got.
    async fn local_server() -> std::net::SocketAddr {
        use axum::extract::{Path, Request};
        use axum::http::{StatusCode, header};
        use axum::response::IntoResponse;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new()
            .route(
                "/to/{status}/{path}",
                axum::routing::any(|Path((status, path)): Path<(u16, String)>| async move {
                    let status = StatusCode::from_u16(status).expect("status");
                    (status, [(header::LOCATION, format!("/{path}"))])
                }),
            )
            .route(
                "/cross",
                axum::routing::any(move || async move {
                    let to = format!("http://localhost:{}/echo", addr.port());
                    (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, to)])
                }),
            )
            .route(
                "/loop",
                axum::routing::any(|| async { (StatusCode::FOUND, [(header::LOCATION, "/loop")]) }),
            )
            .route("/big", axum::routing::get(|| async { "x".repeat(4096) }))
            .route(
                "/slow",
                axum::routing::get(|| async {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    "late"
                }),
            )
            .fallback(|req: Request| async move {
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, 1 << 16)
                    .await
                    .unwrap_or_default();
                let sent = |name: header::HeaderName| {
                    parts
                        .headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-")
                };
                format!(
                    "{} {} {} {} {}",
                    parts.method,
                    parts.uri.path(),
                    String::from_utf8_lossy(&body),
                    sent(header::AUTHORIZATION),
                    sent(header::USER_AGENT)
                )
                .into_response()
            });
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        addr
    }

    fn post(url: &str, body: &str) -> http::Request {
        http::Request {
            method: "POST".into(),
            url: url.into(),
            headers: vec![
                http::Header {
                    name: "Authorization".into(),
                    value: "Bearer s3cret".into(),
                },
                http::Header {
                    name: "Content-Type".into(),
                    value: "text/plain".into(),
                },
            ],
            body: body.as_bytes().to_vec(),
            timeout_ms: Some(5_000),
        }
    }

    #[test]
    fn http_follows_redirects_as_browsers_do_and_enforces_its_caps() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let addr = rt.block_on(local_server());
        let loopback: IpNet = "127.0.0.1/32".parse().expect("net");
        let policy = NetPolicy::new(["127.0.0.1", "localhost"], vec![loopback]);
        let mut cap = HttpCapability::new(policy, rt.handle().clone()).expect("client");
        cap.max_response_bytes = 1024;
        let base = format!("http://{addr}");
        let body_of = |r: Result<http::Response, http::HttpError>| {
            let r = r.expect("response");
            assert_eq!(r.status, 200);
            String::from_utf8(r.body).expect("utf-8")
        };
        let agent = concat!("Klaxon/", env!("CARGO_PKG_VERSION"));

        // No redirect: everything as sent, with Klaxon's User-Agent.
        let got = body_of(cap.execute(post(&format!("{base}/echo"), "payload")));
        assert_eq!(got, format!("POST /echo payload Bearer s3cret {agent}"));
        // 307 and 308 keep the method and the body.
        for status in [307, 308] {
            let got = body_of(cap.execute(post(&format!("{base}/to/{status}/echo"), "payload")));
            assert_eq!(
                got,
                format!("POST /echo payload Bearer s3cret {agent}"),
                "{status}"
            );
        }
        // 301, 302 and 303 after a POST turn into a GET without the body.
        for status in [301, 302, 303] {
            let got = body_of(cap.execute(post(&format!("{base}/to/{status}/echo"), "payload")));
            assert_eq!(got, format!("GET /echo  Bearer s3cret {agent}"), "{status}");
        }
        // Another origin does not get the credentials.
        let got = body_of(cap.execute(post(&format!("{base}/cross"), "payload")));
        assert_eq!(got, format!("POST /echo payload - {agent}"));
        // Three redirects are followed, a fourth is refused.
        match cap.execute(get(&format!("{base}/loop"))) {
            Err(http::HttpError::Denied(why)) => assert!(why.contains("redirect"), "{why}"),
            other => panic!("{other:?}"),
        }
        // The response cap and the timeout.
        assert!(matches!(
            cap.execute(get(&format!("{base}/big"))),
            Err(http::HttpError::TooLarge)
        ));
        let mut slow = get(&format!("{base}/slow"));
        slow.timeout_ms = Some(200);
        assert!(matches!(cap.execute(slow), Err(http::HttpError::Timeout)));
        // A header the plugin got wrong is its error, named.
        let mut bad = get(&format!("{base}/echo"));
        bad.headers.push(http::Header {
            name: "X-Evil".into(),
            value: "a\r\nInjected: 1".into(),
        });
        match cap.execute(bad) {
            Err(http::HttpError::InvalidRequest(why)) => assert!(why.contains("X-Evil"), "{why}"),
            other => panic!("{other:?}"),
        }
        // Nothing listening: a connection error naming the cause.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = closed.local_addr().expect("addr").port();
        drop(closed);
        match cap.execute(get(&format!("http://127.0.0.1:{port}/"))) {
            Err(http::HttpError::Connection(why)) => assert!(why.contains("onnect"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn smtp_message_checks() {
        assert!(build_message(message()).is_ok());
        let mut m = message();
        m.from = "not an address".into();
        assert!(matches!(build_message(m), Err(smtp::SmtpError::Invalid(_))));
        let mut m = message();
        m.to.clear();
        assert!(matches!(build_message(m), Err(smtp::SmtpError::Invalid(_))));
        let mut m = message();
        m.text_body = None;
        m.html_body = None;
        assert!(matches!(build_message(m), Err(smtp::SmtpError::Invalid(_))));
        let mut m = message();
        m.headers.push(smtp::Header {
            name: "X-Evil".into(),
            value: "a\r\nBcc: x@y".into(),
        });
        assert!(matches!(build_message(m), Err(smtp::SmtpError::Invalid(_))));
    }
}
