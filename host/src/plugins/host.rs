//! What a plugin instance sees of the host: the per-call state (`CallState`)
//! with its empty WASI context, memory limiter and log budget, and the host
//! implementations of the `log` and `http` imports.
//!
//! Plugin calls must run on a blocking thread (`spawn_blocking`), never on an
//! async worker: WASI's sync bindings and the `http` import block on tokio.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::ResourceLimiter;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{
    HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView,
};

use super::PluginLimits;
use super::bindings::{http, log};

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
}

impl CallState {
    pub(crate) fn new(
        plugin: String,
        limits: &PluginLimits,
        http: Option<Arc<HttpCapability>>,
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
            },
            plugin,
            log_budget: limits.max_log_lines,
            stdout,
            stderr,
            http,
            http_requests: 0,
        }
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
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired as u64 <= self.max_bytes;
        if !ok {
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

/// Outbound HTTP a notifier may use for one receiver: a shared client, a
/// per-request timeout cap, a response size cap and a request count cap.
#[derive(Debug, Clone)]
pub struct HttpCapability {
    client: reqwest::Client,
    handle: tokio::runtime::Handle,
    /// Longest a single request may take.
    pub max_timeout: Duration,
    /// Largest response body read; larger is an error.
    pub max_response_bytes: usize,
    /// Requests one `send` call may make.
    pub max_requests_per_call: u32,
}

impl HttpCapability {
    /// A capability using `client` on the runtime behind `handle`.
    pub fn new(client: reqwest::Client, handle: tokio::runtime::Handle) -> Self {
        Self {
            client,
            handle,
            max_timeout: Duration::from_secs(10),
            max_response_bytes: 1 << 20,
            max_requests_per_call: 3,
        }
    }

    /// Wall time a notifier call may spend waiting on the network.
    pub fn call_budget(&self) -> Duration {
        self.max_timeout * self.max_requests_per_call
    }

    fn execute(&self, req: http::Request) -> Result<http::Response, http::HttpError> {
        let method = reqwest::Method::from_bytes(req.method.as_bytes())
            .map_err(|_| http::HttpError::InvalidRequest(format!("bad method `{}`", req.method)))?;
        let url = reqwest::Url::parse(&req.url)
            .map_err(|e| http::HttpError::InvalidRequest(format!("bad url `{}`: {e}", req.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(http::HttpError::Denied(format!(
                "scheme `{}` is not allowed",
                url.scheme()
            )));
        }
        let timeout = req
            .timeout_ms
            .map(|ms| Duration::from_millis(ms.into()))
            .unwrap_or(self.max_timeout)
            .min(self.max_timeout);
        let mut builder = self
            .client
            .request(method, url)
            .timeout(timeout)
            .body(req.body);
        for h in &req.headers {
            builder = builder.header(h.name.as_str(), h.value.as_str());
        }
        let request = builder
            .build()
            .map_err(|e| http::HttpError::InvalidRequest(e.to_string()))?;
        let client = self.client.clone();
        let max = self.max_response_bytes;
        self.handle.block_on(async move {
            let mut resp = client.execute(request).await.map_err(classify)?;
            let status = resp.status().as_u16();
            let headers = resp
                .headers()
                .iter()
                .map(|(n, v)| http::Header {
                    name: n.as_str().to_string(),
                    value: String::from_utf8_lossy(v.as_bytes()).into_owned(),
                })
                .collect();
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(classify)? {
                if body.len() + chunk.len() > max {
                    return Err(http::HttpError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(http::Response {
                status,
                headers,
                body,
            })
        })
    }
}

fn classify(e: reqwest::Error) -> http::HttpError {
    if e.is_timeout() {
        http::HttpError::Timeout
    } else if e.is_builder() {
        http::HttpError::InvalidRequest(e.to_string())
    } else {
        http::HttpError::Connection(format!("{e}"))
    }
}

impl http::Host for CallState {
    fn send(&mut self, req: http::Request) -> Result<http::Response, http::HttpError> {
        let Some(cap) = self.http.clone() else {
            return Err(http::HttpError::Denied(
                "this plugin has no http capability".into(),
            ));
        };
        if self.http_requests >= cap.max_requests_per_call {
            return Err(http::HttpError::Denied(format!(
                "at most {} requests per call",
                cap.max_requests_per_call
            )));
        }
        self.http_requests += 1;
        tracing::debug!(plugin = %self.plugin, method = %req.method, url = %req.url, "plugin http request");
        cap.execute(req)
    }
}
