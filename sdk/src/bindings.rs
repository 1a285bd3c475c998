//! Generated bindings for the three worlds of `wit/klaxon.wit`.
//!
//! Owns nothing but `wit_bindgen::generate!` output. Plugin authors never see these
//! types: the rest of the SDK converts them to its own. Only `glue` and the
//! `export_*!` macros reach in here.
//!
//! The `types` and `log` interfaces are generated once, with the detector world, and
//! shared with the other two worlds through `with`, so the SDK converts one set of
//! types rather than three. Each world gets a public export macro; wit-bindgen then
//! emits the world's exports in the custom section only where that macro expands
//! (in the plugin crate), so a plugin exports exactly one world.

/// The `detector` world, plus every type of the `types` interface.
// Generated lifting code for `evaluate` takes the flattened batch as 9 arguments.
#[allow(clippy::too_many_arguments)]
pub mod detector {
    wit_bindgen::generate!({
        world: "detector",
        path: "../wit",
        generate_unused_types: true,
        pub_export_macro: true,
        export_macro_name: "export_detector_world",
    });
}

/// The `composite` world.
pub mod composite {
    wit_bindgen::generate!({
        world: "composite",
        path: "../wit",
        with: {
            "klaxon:plugin/types@0.1.0": crate::bindings::detector::klaxon::plugin::types,
            "klaxon:plugin/log@0.1.0": crate::bindings::detector::klaxon::plugin::log,
        },
        pub_export_macro: true,
        export_macro_name: "export_composite_world",
    });
}

/// The `batch-notifier` world: the `notifier` world (which adds the `http`
/// and `smtp` imports) plus `send-batch`.
pub mod notifier {
    wit_bindgen::generate!({
        world: "batch-notifier",
        path: "../wit",
        with: {
            "klaxon:plugin/types@0.1.0": crate::bindings::detector::klaxon::plugin::types,
            "klaxon:plugin/log@0.1.0": crate::bindings::detector::klaxon::plugin::log,
        },
        pub_export_macro: true,
        export_macro_name: "export_notifier_world",
    });
}

/// The `log` import.
pub use detector::klaxon::plugin::log as wit_log;
/// The shared `types` interface.
pub use detector::klaxon::plugin::types;
/// The `batch` import (batch-notifier world only).
pub use notifier::klaxon::plugin::batch as wit_batch;
/// The `http` import (notifier world only).
pub use notifier::klaxon::plugin::http as wit_http;
/// The `smtp` import (notifier world only).
pub use notifier::klaxon::plugin::smtp as wit_smtp;
