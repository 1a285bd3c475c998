//! `plain`: a notifier built for the plain `notifier` world with wit-bindgen
//! alone, as a component built before the `batch-notifier` world (or
//! without the SDK) is: it exports `send` and no `send-batch`, and imports
//! no `batch`. A test fixture only, so the host's one-notification-per-call
//! path stays tested; never embed it as a stock plugin.
//!
//! Config: `{"url": "http://…"}`. `send` POSTs `{"groupKey": …}` to `url`:
//! 2xx is delivered, anything else a retryable failure.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({
        world: "notifier",
        path: "../../wit",
        export_macro_name: "export_plain_world",
    });

    /// Where the world's export macro finds its core exports: ours (see
    /// [`__plain_core_exports`](crate::__plain_core_exports)).
    pub(crate) mod core_exports {
        pub(crate) use crate::__plain_core_exports as __export_world_notifier_cabi;
    }

    use klaxon::plugin::http;
    // The world's `use` brings `Delivery`, `DeliveryError`, `Notification`
    // and `PluginInfo` in.
    use klaxon::plugin::types::{PluginKind, RetryableError};

    struct Plain;

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Config {
        url: String,
    }

    fn parse(config: &str) -> Result<Config, String> {
        serde_json::from_str(config).map_err(|e| format!("config: {e}"))
    }

    impl Guest for Plain {
        fn info() -> PluginInfo {
            PluginInfo {
                name: "plain".into(),
                version: "0.1.0".into(),
                kind: PluginKind::Notifier,
                description: "Test fixture: a plain-world notifier (no send-batch).".into(),
                config_schema:
                    r#"{"type":"object","required":["url"],"properties":{"url":{"type":"string"}}}"#
                        .into(),
            }
        }

        fn check_config(config: String) -> Result<(), String> {
            parse(&config).map(|_| ())
        }

        fn send(config: String, notification: Notification) -> Result<Delivery, DeliveryError> {
            let config = parse(&config).map_err(DeliveryError::Permanent)?;
            let body = serde_json::json!({ "groupKey": notification.group_key }).to_string();
            let retryable = |reason: String| {
                DeliveryError::Retryable(RetryableError {
                    reason,
                    retry_after_ms: None,
                })
            };
            let response = http::send(&http::Request {
                method: "POST".into(),
                url: config.url,
                headers: vec![http::Header {
                    name: "content-type".into(),
                    value: "application/json".into(),
                }],
                body: body.into_bytes(),
                timeout_ms: None,
            })
            .map_err(|e| retryable(format!("{e:?}")))?;
            if (200..300).contains(&response.status) {
                Ok(Delivery {
                    status_code: response.status,
                    detail: String::new(),
                })
            } else {
                Err(retryable(format!("status {}", response.status)))
            }
        }
    }

    export_plain_world!(Plain with_types_in crate::component::core_exports);
}

/// The core exports, under the component model's standard mangled names
/// (`cm32p2||send`…) instead of wit-bindgen's plain ones: a plain `send`
/// symbol collides with wasi-libc's socket `send` at link time (the SDK
/// does the same; see its `export.rs`). The bodies are wit-bindgen's.
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
#[macro_export]
macro_rules! __plain_core_exports {
    ($ty:ident with_types_in $($path_to_types:tt)*) => {
        const _: () = {
            #[unsafe(export_name = "cm32p2||info")]
            unsafe extern "C" fn export_info() -> *mut u8 {
                unsafe { $crate::component::_export_info_cabi::<$ty>() }
            }
            #[unsafe(export_name = "cm32p2||info_post")]
            unsafe extern "C" fn post_return_info(arg0: *mut u8) {
                unsafe { $crate::component::__post_return_info::<$ty>(arg0) }
            }
            #[unsafe(export_name = "cm32p2||check-config")]
            unsafe extern "C" fn export_check_config(arg0: *mut u8, arg1: usize) -> *mut u8 {
                unsafe { $crate::component::_export_check_config_cabi::<$ty>(arg0, arg1) }
            }
            #[unsafe(export_name = "cm32p2||check-config_post")]
            unsafe extern "C" fn post_return_check_config(arg0: *mut u8) {
                unsafe { $crate::component::__post_return_check_config::<$ty>(arg0) }
            }
            #[unsafe(export_name = "cm32p2||send")]
            unsafe extern "C" fn export_send(arg0: *mut u8) -> *mut u8 {
                unsafe { $crate::component::_export_send_cabi::<$ty>(arg0) }
            }
            #[unsafe(export_name = "cm32p2||send_post")]
            unsafe extern "C" fn post_return_send(arg0: *mut u8) {
                unsafe { $crate::component::__post_return_send::<$ty>(arg0) }
            }
        };
    };
}
