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

/// Borrowed forms of the WIT `notification` record and the records in it,
/// lowered into a plugin's memory straight from the host's own text: the
/// generated [`types::Notification`] owns every string, so building one
/// took a fresh allocation per label. Field names and order are the WIT's;
/// wasmtime checks them against the component's types when a call looks
/// its export up.
pub mod borrowed {
    use wasmtime::component::{ComponentType, Lower};

    /// WIT `label`.
    #[derive(ComponentType, Lower, Debug, Clone, Copy)]
    #[component(record)]
    pub struct Label<'a> {
        pub name: &'a str,
        pub value: &'a str,
    }

    /// WIT `alert`.
    #[derive(ComponentType, Lower, Debug, Clone, Copy)]
    #[component(record)]
    pub struct Alert<'a> {
        pub status: &'a str,
        pub labels: &'a [Label<'a>],
        pub annotations: &'a [Label<'a>],
        #[component(name = "starts-at")]
        pub starts_at: &'a str,
        #[component(name = "ends-at")]
        pub ends_at: &'a str,
        #[component(name = "generator-url")]
        pub generator_url: &'a str,
        pub fingerprint: &'a str,
    }

    /// WIT `notification`.
    #[derive(ComponentType, Lower, Debug, Clone, Copy)]
    #[component(record)]
    pub struct Notification<'a> {
        pub receiver: &'a str,
        pub status: &'a str,
        pub alerts: &'a [Alert<'a>],
        #[component(name = "group-labels")]
        pub group_labels: &'a [Label<'a>],
        #[component(name = "common-labels")]
        pub common_labels: &'a [Label<'a>],
        #[component(name = "common-annotations")]
        pub common_annotations: &'a [Label<'a>],
        #[component(name = "external-url")]
        pub external_url: &'a str,
        #[component(name = "group-key")]
        pub group_key: &'a str,
        #[component(name = "truncated-alerts")]
        pub truncated_alerts: u32,
    }
}
