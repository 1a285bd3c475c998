//! Write Klaxon plugins in Rust.
//!
//! A plugin is a WebAssembly component the Klaxon host loads at run time. With this
//! crate, a plugin author writes a config struct and one type, implements one trait
//! and calls one macro:
//!
//! ```
//! use klaxon_sdk::prelude::*;
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Config {
//!     limit: f64,
//! }
//!
//! struct AboveLimit;
//!
//! impl Detector for AboveLimit {
//!     type Config = Config;
//!
//!     fn info() -> Info {
//!         Info::new("above-limit", "0.1.0", "Fires when the latest sample exceeds `limit`.")
//!             .schema(r#"{"type":"object","properties":{"limit":{"type":"number"}},"required":["limit"]}"#)
//!     }
//!
//!     fn evaluate(cfg: &Config, series: &Series<'_>) -> Output {
//!         match series.window.last_finite() {
//!             Some((_, last)) => Verdict::new(last > cfg.limit, last, format!("last={last}")).into(),
//!             None => Verdict::ok(0.0, "no samples").into(),
//!         }
//!     }
//! }
//!
//! klaxon_sdk::export_detector!(AboveLimit);
//! ```
//!
//! Build it with `cargo build --target wasm32-wasip2 --release` (crate type `cdylib`):
//! the `.wasm` file is the component. The same crate also builds natively (make it
//! `["cdylib", "rlib"]`), where the export macros compile to nothing and [`testing`]
//! runs the plugin through the exact code path the Wasm export uses.
//!
//! # Layout
//!
//! - [`detector`]: the [`Detector`] trait, for plugins that judge metric series.
//! - [`composite`]: the [`Composite`] trait and the child signals it combines.
//! - [`notifier`]: the [`Notifier`] trait, the notification it delivers and its outcome
//!   ([`export_notifier!`] exports the `batch-notifier` world: `send`, and `send-batch`
//!   calling [`Notifier::send`] for each notification of a batch in turn).
//! - [`series`]: the columnar evaluation [`Batch`] and the per-series view over it.
//! - [`labels`]: lazy parsing and formatting of Prometheus label notation.
//! - [`verdict`]: what a detector or composite returns ([`Verdict`], [`Output`]).
//! - [`info`]: how a plugin presents itself ([`Info`]).
//! - [`stats`]: NaN-aware statistics shared by detectors, written for Wasm speed.
//! - [`format`](mod@format): compact number formatting for summaries.
//! - [`log`]: the host's log, or stderr natively.
//! - [`http`]: outbound HTTP through the host, or a test transport natively.
//! - [`smtp`]: outbound mail through the host, or a test transport natively.
//! - [`testing`]: native harness running plugins as the host would (not built for Wasm).
//! - [`alloc`]: the plugins' allocator, a bump arena in front of talc.
//! - `config` (private): reading the JSON config text into the author's type.
//! - `glue` (hidden): conversion between wit-bindgen types and the SDK's, and the
//!   generic entry points the `export_*!` macros and [`testing`] both call.
//! - `bindings` (hidden): wit-bindgen output for the three worlds of `klaxon.wit`.
//!
//! Nothing but `glue`, `log`, `http`, `smtp` and the macros may touch `bindings`.

#![warn(missing_docs)]

#[doc(hidden)]
pub mod bindings;

/// Plugins built with the SDK allocate from a bump arena, then talc (see
/// [`alloc`]), rather than with wasi-libc's dlmalloc: a notifier
/// delivering a batch spent two fifths of its own time in dlmalloc's
/// `malloc` and `free`, and a third of it still in talc (the
/// host lowers each string of a notification into a fresh allocation, and
/// the glue and payloads allocate more). A plugin that declares its own
/// `#[global_allocator]` turns the SDK's `allocator` feature (on by
/// default) off.
#[cfg(all(
    feature = "allocator",
    target_family = "wasm",
    not(target_feature = "atomics")
))]
#[global_allocator]
static ALLOCATOR: alloc::PluginAllocator<talc::wasm::WasmDynamicTalc> =
    alloc::PluginAllocator::new(talc::wasm::new_wasm_dynamic_allocator());
pub mod alloc;
pub mod composite;
mod config;
pub mod detector;
mod export;
pub mod format;
#[doc(hidden)]
pub mod glue;
pub mod http;
pub mod info;
pub mod labels;
pub mod log;
pub mod notifier;
pub mod series;
pub mod smtp;
pub mod stats;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
pub mod verdict;

pub use composite::{Composite, FiringCount, HoldDown, Signal, SignalGroup};
pub use detector::Detector;
pub use info::Info;
pub use labels::Labels;
pub use notifier::{Alert, Delivery, DeliveryError, Notification, Notifier};
pub use series::{Batch, Series, Window};
pub use verdict::{Output, Verdict};

/// Everything a plugin usually needs, in one `use`.
pub mod prelude {
    pub use crate::format::{format_value, push_value};
    pub use crate::{
        Alert, Batch, Composite, Delivery, DeliveryError, Detector, FiringCount, HoldDown, Info,
        Labels, Notification, Notifier, Output, Series, Signal, SignalGroup, Verdict, Window, http,
        log, stats,
    };
}

/// Not public API: what the `export_*!` macros expand to needs these paths.
#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::{composite, detector, notifier};
    pub use crate::glue::*;

    /// Stands in for the notifier bindings module inside wit-bindgen's export macro,
    /// so that the core exports come from `__klaxon_notifier_core_exports!`.
    pub mod notifier_exports {
        pub use crate::__klaxon_notifier_core_exports as __export_world_batch_notifier_cabi;
    }
}
