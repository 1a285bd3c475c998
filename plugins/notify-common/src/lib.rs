//! What Klaxon's stock notifier plugins (`slack`, `pagerduty`, `opsgenie`, `msteams`)
//! share, so that no plugin carries a copy of another's code.
//!
//! # Layout
//!
//! - [`template`]: Alertmanager's template data model, functions and default
//!   templates (`default.tmpl`), rendered with `gotmpl`.
//! - `gotime` (private): Go's `time.Format` layouts for the model's timestamps.
//! - this file: one delivery attempt and its outcome ([`post_json`], [`outcome`]),
//!   config checks every plugin makes ([`check_url`], [`check_header_value`]) and
//!   Alertmanager's small helpers ([`group_key_hash`], [`truncate_runes`],
//!   [`split_list`]).
//!
//! Never imports a plugin crate: plugins depend on this, not the reverse.

mod gotime;
pub mod template;

use klaxon_sdk::http::{self, HttpError, Request, Response};
use klaxon_sdk::{Delivery, DeliveryError};
use sha2::{Digest, Sha256};

pub use template::{Renderer, Templates};

/// `User-Agent` of every request.
pub const USER_AGENT: &str = "Klaxon/0.1";

/// Bytes of an error response's body quoted in the delivery error.
const BODY_SNIPPET_BYTES: usize = 200;

/// Sends `req` and maps the result to the delivery outcome:
///
/// - 2xx → delivered, with `detail` in the delivery log;
/// - 429 and 5xx → retryable, with the delay from `Retry-After` when it is in
///   delta-seconds (an HTTP-date is ignored);
/// - any other status → permanent, with the status and the first 200 bytes of the body;
/// - timeout or connection failure → retryable; destination denied, invalid request or
///   response too large → permanent.
pub fn send(req: Request, detail: &str) -> Result<(Delivery, Response), DeliveryError> {
    match http::send(req) {
        Ok(resp) => outcome(&resp, detail).map(|d| (d, resp)),
        Err(e) => Err(transport_error(e)),
    }
}

/// A `POST` of a JSON body with Klaxon's `User-Agent`.
pub fn post_json(url: &str, body: Vec<u8>) -> Request {
    Request::post(url)
        .header("Content-Type", "application/json")
        .header("User-Agent", USER_AGENT)
        .body(body)
}

/// Maps a response to the delivery outcome (see [`send`]).
pub fn outcome(resp: &Response, detail: &str) -> Result<Delivery, DeliveryError> {
    let status = resp.status;
    if resp.is_success() {
        return Ok(Delivery {
            status_code: status,
            detail: format!("HTTP {status}: {detail}"),
        });
    }
    let reason = match body_snippet(&resp.body) {
        snippet if snippet.is_empty() => format!("HTTP {status}"),
        snippet => format!("HTTP {status}: {snippet}"),
    };
    if status == 429 || (500..600).contains(&status) {
        Err(DeliveryError::Retryable {
            reason,
            retry_after_ms: resp.header_value("Retry-After").and_then(retry_after_ms),
        })
    } else {
        Err(DeliveryError::Permanent(reason))
    }
}

/// A request that got no response: timeouts and broken connections are worth another
/// attempt, a refused or malformed request is not.
pub fn transport_error(e: HttpError) -> DeliveryError {
    match e {
        HttpError::Timeout | HttpError::Connection(_) => DeliveryError::retryable(e.to_string()),
        HttpError::Denied(_) | HttpError::InvalidRequest(_) | HttpError::TooLarge => {
            DeliveryError::Permanent(e.to_string())
        }
    }
}

/// `Retry-After` in delta-seconds, as ms; an HTTP-date gives `None`.
pub fn retry_after_ms(value: &str) -> Option<u64> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // All digits but too long for u64: wait as long as we can say.
    let seconds = value.parse::<u64>().unwrap_or(u64::MAX);
    Some(seconds.saturating_mul(1000))
}

/// The body's first bytes as one line of text, marked with `…` when cut.
pub fn body_snippet(body: &[u8]) -> String {
    let cut = body.len() > BODY_SNIPPET_BYTES;
    let head = &body[..body.len().min(BODY_SNIPPET_BYTES)];
    let text = match std::str::from_utf8(head) {
        Ok(text) => text.to_owned(),
        // A character split by the cut is dropped rather than shown as U+FFFD.
        Err(e) if cut && e.error_len().is_none() => {
            String::from_utf8_lossy(&head[..e.valid_up_to()]).into_owned()
        }
        Err(_) => String::from_utf8_lossy(head).into_owned(),
    };
    let mut line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned();
    if cut {
        line.push('…');
    }
    line
}

/// Checks an `http(s)://` URL in config field `field` without quoting it: service
/// URLs often embed a token.
pub fn check_url(field: &str, url: &str) -> Result<(), String> {
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .ok_or_else(|| format!("{field}: must start with http:// or https://"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.starts_with(':') || authority.ends_with('@') {
        return Err(format!("{field}: has no host"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{field}: must not contain whitespace or control characters"
        ));
    }
    Ok(())
}

/// Checks that a secret bound for a header cannot split it.
pub fn check_header_value(field: &str, value: &str) -> Result<(), String> {
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(format!("{field}: must not contain CR, LF or NUL"));
    }
    Ok(())
}

/// Alertmanager's `notify.Key.Hash`: the SHA-256 of the group key, in lower-case hex.
/// PagerDuty's `dedup_key` and Opsgenie's `alias`, so that the resolve of a group
/// closes the incident its trigger opened.
pub fn group_key_hash(group_key: &str) -> String {
    let digest = Sha256::digest(group_key.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
        hex.push(char::from(b"0123456789abcdef"[usize::from(byte & 0xf)]));
    }
    hex
}

/// Alertmanager's `notify.TruncateInRunes`: at most `n` characters, the last one `…`
/// when cut. Returns the text and whether it was cut.
pub fn truncate_runes(s: &str, n: usize) -> (String, bool) {
    if s.chars().count() <= n {
        return (s.to_owned(), false);
    }
    if n <= 3 {
        return (s.chars().take(n).collect(), true);
    }
    let mut out: String = s.chars().take(n - 1).collect();
    out.push('…');
    (out, true)
}

/// Alertmanager's `safeSplit`: `s` split on `sep`, empty items dropped, each trimmed.
pub fn split_list(s: &str, sep: char) -> Vec<String> {
    s.trim()
        .split(sep)
        .filter(|item| !item.is_empty())
        .map(|item| item.trim().to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_key_hash_is_sha256_hex() {
        // sha256("") and sha256("abc"), FIPS 180-2 test vectors.
        assert_eq!(
            group_key_hash(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            group_key_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate_runes("héllo", 5), ("héllo".into(), false));
        assert_eq!(truncate_runes("héllo", 4), ("hél…".into(), true));
        assert_eq!(truncate_runes("héllo", 2), ("hé".into(), true));
    }

    #[test]
    fn split_list_drops_empty_items() {
        assert_eq!(split_list(" a, b ,,c ", ','), ["a", "b", "c"]);
        assert!(split_list("", ',').is_empty());
    }

    #[test]
    fn outcomes() {
        let ok = outcome(&Response::new(202, ""), "sent").unwrap();
        assert_eq!(ok.detail, "HTTP 202: sent");
        let e = outcome(&Response::new(429, "slow").header("Retry-After", "7"), "").unwrap_err();
        assert_eq!(
            e,
            DeliveryError::Retryable {
                reason: "HTTP 429: slow".into(),
                retry_after_ms: Some(7000)
            }
        );
        let e = outcome(&Response::new(400, "bad\nkey"), "").unwrap_err();
        assert_eq!(e, DeliveryError::Permanent("HTTP 400: bad key".into()));
        assert!(transport_error(HttpError::Timeout).is_retryable());
        assert!(!transport_error(HttpError::TooLarge).is_retryable());
        assert_eq!(retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        let long = "x".repeat(300);
        assert_eq!(body_snippet(long.as_bytes()).chars().count(), 201);
    }

    #[test]
    fn url_checks_never_quote_the_url() {
        let e = check_url("api_url", "ftp://secret-token@h").unwrap_err();
        assert_eq!(e, "api_url: must start with http:// or https://");
        assert!(check_url("api_url", "https://hooks.slack.com/services/T/B/x").is_ok());
        assert_eq!(
            check_url("url", "https:///x").unwrap_err(),
            "url: has no host"
        );
    }
}
