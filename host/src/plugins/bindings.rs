//! Host-side bindings generated from `wit/klaxon.wit`, one module per world.
//! The `types` and `log` interfaces are generated once (in `detector`) and
//! shared by the other worlds, so one `log` host implementation serves all.

/// The detector world; owns the shared `types` and `log` bindings.
pub mod detector {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "detector",
    });
}

/// The composite world.
pub mod composite {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "composite",
        with: {
            "klaxon:plugin/types": super::detector::klaxon::plugin::types,
            "klaxon:plugin/log": super::detector::klaxon::plugin::log,
        },
    });
}

/// The notifier world; adds the `http` and `smtp` imports.
pub mod notifier {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "notifier",
        with: {
            "klaxon:plugin/types": super::detector::klaxon::plugin::types,
            "klaxon:plugin/log": super::detector::klaxon::plugin::log,
        },
    });
}

pub use detector::klaxon::plugin::log;
pub use detector::klaxon::plugin::types;
pub use notifier::klaxon::plugin::http;
pub use notifier::klaxon::plugin::smtp;
