//! `sneaky`: a notifier that calls a host its receiver did not name, so the
//! host's network sandbox can be tested, or that misbehaves in `send`
//! (loops, exhausts memory, panics), so the host's call limits can be
//! tested on notifiers. A test fixture only: never embed it as a stock
//! plugin.
//!
//! # Config
//!
//! ```json
//! { "url": "https://hooks.example/declared", "target": "http://10.0.0.1/elsewhere" }
//! ```
//!
//! `url` is the destination the receiver declares (the host allows its
//! host); `send` ignores it and sends a `GET` to `target` instead. The
//! outcome is the `http` import's: a refusal becomes a permanent failure
//! carrying the host's reason.
//!
//! `mode` (default `sneak`, the above): `loop` spins forever, `alloc`
//! allocates 1 GiB and writes every page, `panic` panics; the host should
//! interrupt, refuse the memory, or trap, and fail only that delivery.
//! `explode` panics on a notification whose common labels have
//! `explode="true"`, spins forever on one with `explode="loop"`, and POSTs
//! any other's group key (`{"groupKey": …}`) to `target`: one bad
//! notification among several sent in one `send-batch` call, which should
//! fail alone.

use std::hint::black_box;

use klaxon_sdk::prelude::*;
use serde::Deserialize;

/// The plugin.
pub struct Sneaky;

/// Parsed config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The declared destination (unused).
    pub url: String,
    /// Where the plugin really sends.
    pub target: String,
    /// What `send` does.
    #[serde(default)]
    pub mode: Mode,
}

/// What `send` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Call `target`.
    #[default]
    Sneak,
    /// Never return.
    Loop,
    /// Exhaust memory.
    Alloc,
    /// Panic (a trap in Wasm).
    Panic,
    /// Panic on notifications labelled `explode="true"`, spin on
    /// `explode="loop"`, POST the others.
    Explode,
}

/// Bytes `alloc` mode asks for.
pub const ALLOC_BYTES: usize = 1 << 30;

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "sneaky",
  "type": "object",
  "additionalProperties": false,
  "required": ["url", "target"],
  "properties": {
    "url": {"type": "string"},
    "target": {"type": "string"},
    "mode": {"enum": ["sneak", "loop", "alloc", "panic", "explode"], "default": "sneak"}
  }
}"#;

impl Notifier for Sneaky {
    type Config = Config;

    fn info() -> Info {
        Info::new(
            "sneaky",
            env!("CARGO_PKG_VERSION"),
            "Test fixture: calls `target` instead of its declared `url`.",
        )
        .schema(SCHEMA)
    }

    fn send(cfg: &Config, notification: &Notification) -> Result<Delivery, DeliveryError> {
        match cfg.mode {
            Mode::Sneak => {}
            Mode::Explode => return explode_or_post(cfg, notification),
            Mode::Loop => spin(),
            Mode::Alloc => {
                let block = vec![1u8; ALLOC_BYTES];
                return Err(DeliveryError::Permanent(format!(
                    "allocated and touched {} bytes, yet still alive",
                    black_box(&block).len()
                )));
            }
            Mode::Panic => panic!("sneaky: panic requested"),
        }
        match klaxon_sdk::http::send(klaxon_sdk::http::Request::get(cfg.target.clone())) {
            Ok(resp) => Ok(Delivery {
                status_code: resp.status,
                detail: "reached the target".into(),
            }),
            Err(e) => Err(DeliveryError::Permanent(e.to_string())),
        }
    }
}

/// `explode` mode: panics on a notification labelled `explode="true"`,
/// spins on `explode="loop"`, POSTs the group key of any other to `target`.
fn explode_or_post(cfg: &Config, notification: &Notification) -> Result<Delivery, DeliveryError> {
    let explode = notification
        .common_labels
        .iter()
        .find(|(k, _)| k == "explode")
        .map(|(_, v)| v.as_str());
    match explode {
        Some("true") => panic!("sneaky: notification {} explodes", notification.group_key),
        Some("loop") => spin(),
        _ => {}
    }
    let body = serde_json::json!({ "groupKey": notification.group_key }).to_string();
    let request = klaxon_sdk::http::Request::post(cfg.target.clone())
        .header("content-type", "application/json")
        .body(body);
    match klaxon_sdk::http::send(request) {
        Ok(resp) if resp.status < 300 => Ok(Delivery {
            status_code: resp.status,
            detail: "posted".into(),
        }),
        Ok(resp) => Err(DeliveryError::Permanent(format!("HTTP {}", resp.status))),
        Err(e) => Err(DeliveryError::Permanent(e.to_string())),
    }
}

/// Loops forever; `black_box` keeps the optimiser from proving the loop useless.
fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

klaxon_sdk::export_notifier!(Sneaky);
