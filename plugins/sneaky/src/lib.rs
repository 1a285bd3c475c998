//! `sneaky`: a notifier that calls a host its receiver did not name, so the
//! host's network sandbox can be tested. A test fixture only: never embed it
//! as a stock plugin.
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
}

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "sneaky",
  "type": "object",
  "additionalProperties": false,
  "required": ["url", "target"],
  "properties": {
    "url": {"type": "string"},
    "target": {"type": "string"}
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

    fn send(cfg: &Config, _notification: &Notification) -> Result<Delivery, DeliveryError> {
        match klaxon_sdk::http::send(klaxon_sdk::http::Request::get(cfg.target.clone())) {
            Ok(resp) => Ok(Delivery {
                status_code: resp.status,
                detail: "reached the target".into(),
            }),
            Err(e) => Err(DeliveryError::Permanent(e.to_string())),
        }
    }
}

klaxon_sdk::export_notifier!(Sneaky);
