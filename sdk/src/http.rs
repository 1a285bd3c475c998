//! Outbound HTTP for notifiers, through the host.
//!
//! In Wasm, [`send`] calls the host's `http` import: the host checks the receiver's
//! allow-list, applies (and caps) the timeout and caps the response size. Only the
//! notifier world imports `http`; a detector that calls [`send`] will not link.
//!
//! Natively, [`send`] goes to a per-thread test transport installed with
//! [`crate::testing::set_http_handler`], so notifier logic runs under plain
//! `cargo test` with no network. Without a handler it fails with
//! [`HttpError::Denied`].

use std::fmt;

/// An outbound request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// `GET`, `POST`, `PUT`...
    pub method: String,
    /// Absolute `http` or `https` URL.
    pub url: String,
    /// Header pairs, sent in order.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Vec<u8>,
    /// Per-request timeout; the host caps it. `None`: the host's default.
    pub timeout_ms: Option<u32>,
}

impl Request {
    /// A request with no headers or body.
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            url: url.into(),
            ..Self::default()
        }
    }

    /// A `POST` request.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new("POST", url)
    }

    /// A `GET` request.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Adds `Authorization: Basic base64(username:password)`.
    pub fn basic_auth(self, username: &str, password: &str) -> Self {
        let token = base64(format!("{username}:{password}").as_bytes());
        self.header("Authorization", format!("Basic {token}"))
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the timeout.
    pub fn timeout_ms(mut self, timeout_ms: u32) -> Self {
        self.timeout_ms = Some(timeout_ms);
        self
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// A response, whatever its status.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Header pairs as received.
    pub headers: Vec<(String, String)>,
    /// Body, possibly cut by the host's size cap.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with a status and body and no headers (handy in tests).
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The host refused the destination (not allowed, private address...).
    Denied(String),
    /// No answer within the timeout.
    Timeout,
    /// Connection or protocol failure.
    Connection(String),
    /// The request itself is malformed (bad URL, method, header).
    InvalidRequest(String),
    /// The response exceeded the host's size cap.
    TooLarge,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Denied(why) => write!(f, "destination denied: {why}"),
            Self::Timeout => f.write_str("timed out"),
            Self::Connection(why) => write!(f, "connection failed: {why}"),
            Self::InvalidRequest(why) => write!(f, "invalid request: {why}"),
            Self::TooLarge => f.write_str("response too large"),
        }
    }
}

impl std::error::Error for HttpError {}

/// Sends `request` and waits for the response.
pub fn send(request: Request) -> Result<Response, HttpError> {
    imp::send(request)
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Standard base64 with padding (RFC 4648 §4), for `Authorization: Basic`.
pub fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextet = |shift: u32| char::from(ALPHABET[((n >> shift) & 0x3f) as usize]);
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if chunk.len() > 1 { sextet(6) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(0) } else { '=' });
    }
    out
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::{HttpError, Request, Response};
    use crate::bindings::wit_http as wit;

    pub(super) fn send(request: Request) -> Result<Response, HttpError> {
        let request = wit::Request {
            method: request.method,
            url: request.url,
            headers: request
                .headers
                .into_iter()
                .map(|(name, value)| wit::Header { name, value })
                .collect(),
            body: request.body,
            timeout_ms: request.timeout_ms,
        };
        match wit::send(&request) {
            Ok(r) => Ok(Response {
                status: r.status,
                headers: r.headers.into_iter().map(|h| (h.name, h.value)).collect(),
                body: r.body,
            }),
            Err(wit::HttpError::Denied(why)) => Err(HttpError::Denied(why)),
            Err(wit::HttpError::Timeout) => Err(HttpError::Timeout),
            Err(wit::HttpError::Connection(why)) => Err(HttpError::Connection(why)),
            Err(wit::HttpError::InvalidRequest(why)) => Err(HttpError::InvalidRequest(why)),
            Err(wit::HttpError::TooLarge) => Err(HttpError::TooLarge),
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod imp {
    use std::cell::RefCell;

    use super::{HttpError, Request, Response};

    /// The test transport: answers a request in place of the host.
    pub(crate) type Handler = Box<dyn FnMut(&Request) -> Result<Response, HttpError>>;

    thread_local! {
        static HANDLER: RefCell<Option<Handler>> = const { RefCell::new(None) };
        static SENT: RefCell<Vec<Request>> = const { RefCell::new(Vec::new()) };
    }

    pub(super) fn send(request: Request) -> Result<Response, HttpError> {
        SENT.with(|s| s.borrow_mut().push(request.clone()));
        // Take the handler out while it runs, so a handler that sends is not a
        // re-entrant borrow; it is put back unless the handler replaced itself.
        let Some(mut handler) = HANDLER.with(|h| h.borrow_mut().take()) else {
            return Err(HttpError::Denied(
                "no test HTTP handler: call klaxon_sdk::testing::set_http_handler first".into(),
            ));
        };
        let result = handler(&request);
        HANDLER.with(|h| {
            let mut slot = h.borrow_mut();
            if slot.is_none() {
                *slot = Some(handler);
            }
        });
        result
    }

    pub(crate) fn set_handler(handler: Option<Handler>) {
        HANDLER.with(|h| *h.borrow_mut() = handler);
    }

    pub(crate) fn take_sent() -> Vec<Request> {
        SENT.with(|s| std::mem::take(&mut *s.borrow_mut()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        // RFC 4648 §10 test vectors.
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    #[test]
    fn basic_auth_header() {
        // base64("Aladdin:open sesame"), the example of RFC 7617 §2.
        let r = Request::post("http://x").basic_auth("Aladdin", "open sesame");
        assert_eq!(
            r.header_value("authorization"),
            Some("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
        );
    }
}
