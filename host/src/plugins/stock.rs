//! The stock plugins, compiled for `wasm32-wasip2` by `build.rs` and embedded
//! in the binary, so Klaxon runs with no plugin files.

mod generated {
    include!(concat!(env!("OUT_DIR"), "/stock_plugins.rs"));
}

/// (name, component bytes) of every stock plugin: detectors, composites and notifiers.
pub const STOCK: &[(&str, &[u8])] = generated::STOCK;

/// Plugins used by tests only (`misbehave`: loops, allocates, panics, lies on request).
#[doc(hidden)]
pub const FIXTURES: &[(&str, &[u8])] = generated::FIXTURES;

/// The bytes of a stock plugin by name.
pub fn bytes(name: &str) -> Option<&'static [u8]> {
    STOCK
        .iter()
        .chain(FIXTURES)
        .find(|(n, _)| *n == name)
        .map(|(_, b)| *b)
}
