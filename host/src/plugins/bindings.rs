//! Host-side bindings generated from `wit/klaxon.wit`, one module per world.
//! The `types` and `log` interfaces are generated once (in `detector`) and
//! shared by the other worlds, so one `log` host implementation serves all.
//!
//! The notifier world is bound asynchronously: its `http` and `smtp`
//! imports are `async` host functions awaiting the network on the caller's
//! tokio runtime, and its exports are called with `*_async` (the guest runs
//! on a wasmtime fiber, so a delivery waiting on its receiver holds no
//! thread). Detectors and composites stay synchronous.

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

/// The notifier world; adds the `http` and `smtp` imports (async on the
/// host side, blocking as the guest sees them).
pub mod notifier {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "notifier",
        imports: {
            "klaxon:plugin/http.send": async,
            "klaxon:plugin/smtp.send": async,
        },
        exports: { default: async },
        with: {
            "klaxon:plugin/types": super::detector::klaxon::plugin::types,
            "klaxon:plugin/log": super::detector::klaxon::plugin::log,
        },
    });
}

/// The batch-notifier world: the notifier world plus `send-batch`. Its
/// imports are the notifier world's, bound once by that world's linker
/// functions; a component exporting `send-batch` is called through these
/// bindings for batches and through [`notifier`]'s for the rest.
pub mod batch_notifier {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "batch-notifier",
        exports: { default: async },
        with: {
            "klaxon:plugin/types": super::detector::klaxon::plugin::types,
            "klaxon:plugin/log": super::detector::klaxon::plugin::log,
            "klaxon:plugin/http": super::notifier::klaxon::plugin::http,
            "klaxon:plugin/smtp": super::notifier::klaxon::plugin::smtp,
        },
    });
}

pub use batch_notifier::klaxon::plugin::batch;
pub use detector::klaxon::plugin::log;
pub use detector::klaxon::plugin::types;
pub use notifier::klaxon::plugin::http;
pub use notifier::klaxon::plugin::smtp;
