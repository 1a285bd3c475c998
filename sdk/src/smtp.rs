//! Outbound mail for notifiers, through the host.
//!
//! In Wasm, [`send`] calls the host's `smtp` import: the host builds the MIME message,
//! allows only the receiver's configured smarthost, caps the time and talks SMTP (with
//! STARTTLS or implicit TLS, and AUTH). Only the notifier world imports `smtp`.
//!
//! Natively, [`send`] goes to a per-thread test transport installed with
//! [`crate::testing::set_smtp_handler`], like [`crate::http`]. Without a handler it
//! fails with [`SmtpError::Denied`].

use std::fmt;

/// Transport security.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// Plain SMTP.
    None,
    /// Plain connect, then STARTTLS, which must succeed.
    #[default]
    StartTls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
}

/// Where and how to connect. Not `Debug`: it holds the password.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Server {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Transport security.
    pub tls: TlsMode,
    /// AUTH user name, when authenticating.
    pub username: Option<String>,
    /// AUTH password.
    pub password: Option<String>,
    /// Name sent in EHLO; the host's default when `None`.
    pub hello: Option<String>,
    /// Whole-transaction timeout; the host caps it. `None`: the host's default.
    pub timeout_ms: Option<u32>,
}

/// The message to send.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// Envelope sender and `From` header.
    pub from: String,
    /// Envelope recipients and `To` header.
    pub to: Vec<String>,
    /// `Subject` header.
    pub subject: String,
    /// `text/plain` part.
    pub text_body: Option<String>,
    /// `text/html` part.
    pub html_body: Option<String>,
    /// Extra headers, in order.
    pub headers: Vec<(String, String)>,
}

/// Why a message was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmtpError {
    /// The host refused the destination.
    Denied(String),
    /// No answer within the timeout.
    Timeout,
    /// Connection, TLS or protocol failure.
    Connection(String),
    /// The server refused permanently (5xx).
    Rejected(u16, String),
    /// The server refused for now (4xx).
    Transient(u16, String),
    /// The message is malformed.
    Invalid(String),
}

impl fmt::Display for SmtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Denied(why) => write!(f, "destination denied: {why}"),
            Self::Timeout => f.write_str("timed out"),
            Self::Connection(why) => write!(f, "connection failed: {why}"),
            Self::Rejected(code, text) => write!(f, "rejected: {code} {text}"),
            Self::Transient(code, text) => write!(f, "temporarily refused: {code} {text}"),
            Self::Invalid(why) => write!(f, "invalid message: {why}"),
        }
    }
}

impl std::error::Error for SmtpError {}

/// Sends `message` through `server` and waits for the final reply.
pub fn send(server: &Server, message: &Message) -> Result<(), SmtpError> {
    imp::send(server, message)
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::{Message, Server, SmtpError, TlsMode};
    use crate::bindings::wit_smtp as wit;

    pub(super) fn send(server: &Server, message: &Message) -> Result<(), SmtpError> {
        let server = wit::Server {
            host: server.host.clone(),
            port: server.port,
            tls: match server.tls {
                TlsMode::None => wit::TlsMode::None,
                TlsMode::StartTls => wit::TlsMode::Starttls,
                TlsMode::Tls => wit::TlsMode::Tls,
            },
            username: server.username.clone(),
            password: server.password.clone(),
            hello: server.hello.clone(),
            timeout_ms: server.timeout_ms,
        };
        let message = wit::Message {
            from: message.from.clone(),
            to: message.to.clone(),
            subject: message.subject.clone(),
            text_body: message.text_body.clone(),
            html_body: message.html_body.clone(),
            headers: message
                .headers
                .iter()
                .map(|(name, value)| wit::Header {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
        };
        wit::send(&server, &message).map_err(|e| match e {
            wit::SmtpError::Denied(why) => SmtpError::Denied(why),
            wit::SmtpError::Timeout => SmtpError::Timeout,
            wit::SmtpError::Connection(why) => SmtpError::Connection(why),
            wit::SmtpError::Rejected((code, text)) => SmtpError::Rejected(code, text),
            wit::SmtpError::Transient((code, text)) => SmtpError::Transient(code, text),
            wit::SmtpError::Invalid(why) => SmtpError::Invalid(why),
        })
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod imp {
    use std::cell::RefCell;

    use super::{Message, Server, SmtpError};

    /// The test transport: answers a message in place of the host.
    pub(crate) type Handler = Box<dyn FnMut(&Server, &Message) -> Result<(), SmtpError>>;

    thread_local! {
        static HANDLER: RefCell<Option<Handler>> = const { RefCell::new(None) };
        static SENT: RefCell<Vec<(Server, Message)>> = const { RefCell::new(Vec::new()) };
    }

    pub(super) fn send(server: &Server, message: &Message) -> Result<(), SmtpError> {
        SENT.with(|s| s.borrow_mut().push((server.clone(), message.clone())));
        let Some(mut handler) = HANDLER.with(|h| h.borrow_mut().take()) else {
            return Err(SmtpError::Denied(
                "no test SMTP handler: call klaxon_sdk::testing::set_smtp_handler first".into(),
            ));
        };
        let result = handler(server, message);
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

    pub(crate) fn take_sent() -> Vec<(Server, Message)> {
        SENT.with(|s| std::mem::take(&mut *s.borrow_mut()))
    }
}
