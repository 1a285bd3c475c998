//! The `export_*!` macros: one call turns a trait implementation into the component's
//! exports.
//!
//! Each macro implements the world's wit-bindgen `Guest` trait on a hidden type by
//! delegating to `glue`, then invokes the world's wit-bindgen export macro. That part
//! only exists on `wasm32`: natively the macro just checks the trait bound, so plugin
//! crates (`crate-type = ["cdylib", "rlib"]`) build and unit-test on the host, and
//! several plugins can be linked into one test binary without clashing exports.

/// Exports a [`Detector`](crate::Detector) as the component's `detector` world.
///
/// Call it once per plugin crate, at the crate root or in any module:
///
/// ```ignore
/// klaxon_sdk::export_detector!(MyCheck);
/// ```
#[macro_export]
macro_rules! export_detector {
    ($detector:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct KlaxonDetectorExport;

            impl $crate::__private::detector::Guest for KlaxonDetectorExport {
                fn info() -> $crate::__private::wit_types::PluginInfo {
                    $crate::__private::detector_info::<$detector>()
                }

                fn check_config(
                    config: ::std::string::String,
                ) -> ::std::result::Result<(), ::std::string::String> {
                    $crate::__private::detector_check_config::<$detector>(config)
                }

                fn evaluate(
                    config: ::std::string::String,
                    batch: $crate::__private::wit_types::Batch,
                ) -> ::std::result::Result<
                    ::std::vec::Vec<$crate::__private::wit_types::SeriesOutput>,
                    ::std::string::String,
                > {
                    $crate::__private::detector_evaluate::<$detector>(config, batch)
                }
            }

            $crate::__private::detector::export_detector_world!(
                KlaxonDetectorExport with_types_in $crate::__private::detector
            );
        };

        #[cfg(not(target_arch = "wasm32"))]
        const _: fn() = || {
            fn is_detector<D: $crate::Detector>() {}
            is_detector::<$detector>();
        };
    };
}

/// Exports a [`Composite`](crate::Composite) as the component's `composite` world.
#[macro_export]
macro_rules! export_composite {
    ($composite:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct KlaxonCompositeExport;

            impl $crate::__private::composite::Guest for KlaxonCompositeExport {
                fn info() -> $crate::__private::wit_types::PluginInfo {
                    $crate::__private::composite_info::<$composite>()
                }

                fn check_config(
                    config: ::std::string::String,
                ) -> ::std::result::Result<(), ::std::string::String> {
                    $crate::__private::composite_check_config::<$composite>(config)
                }

                fn evaluate(
                    config: ::std::string::String,
                    groups: ::std::vec::Vec<$crate::__private::wit_types::SignalGroup>,
                ) -> ::std::result::Result<
                    ::std::vec::Vec<$crate::__private::wit_types::SeriesOutput>,
                    ::std::string::String,
                > {
                    $crate::__private::composite_evaluate::<$composite>(config, groups)
                }
            }

            $crate::__private::composite::export_composite_world!(
                KlaxonCompositeExport with_types_in $crate::__private::composite
            );
        };

        #[cfg(not(target_arch = "wasm32"))]
        const _: fn() = || {
            fn is_composite<C: $crate::Composite>() {}
            is_composite::<$composite>();
        };
    };
}

/// Exports a [`Notifier`](crate::Notifier) as the component's `batch-notifier`
/// world: `send`, and `send-batch` sending each notification in turn.
#[macro_export]
macro_rules! export_notifier {
    ($notifier:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct KlaxonNotifierExport;

            impl $crate::__private::notifier::Guest for KlaxonNotifierExport {
                fn info() -> $crate::__private::wit_types::PluginInfo {
                    $crate::__private::notifier_info::<$notifier>()
                }

                fn check_config(
                    config: ::std::string::String,
                ) -> ::std::result::Result<(), ::std::string::String> {
                    $crate::__private::notifier_check_config::<$notifier>(config)
                }

                fn send(
                    config: ::std::string::String,
                    notification: $crate::__private::wit_types::Notification,
                ) -> ::std::result::Result<
                    $crate::__private::wit_types::Delivery,
                    $crate::__private::wit_types::DeliveryError,
                > {
                    $crate::__private::notifier_send::<$notifier>(config, notification)
                }

                fn send_batch(
                    config: ::std::string::String,
                    notifications: ::std::vec::Vec<$crate::__private::wit_types::Notification>,
                ) -> ::std::vec::Vec<
                    ::std::result::Result<
                        $crate::__private::wit_types::Delivery,
                        $crate::__private::wit_types::DeliveryError,
                    >,
                > {
                    $crate::__private::notifier_send_batch::<$notifier>(config, notifications)
                }
            }

            // `notifier_exports` routes wit-bindgen's macro to
            // `__klaxon_notifier_core_exports!` below, keeping its custom section.
            $crate::__private::notifier::export_notifier_world!(
                KlaxonNotifierExport with_types_in $crate::__private::notifier_exports
            );
        };

        #[cfg(not(target_arch = "wasm32"))]
        const _: fn() = || {
            fn is_notifier<N: $crate::Notifier>() {}
            is_notifier::<$notifier>();
        };
    };
}

/// The notifier's core Wasm exports, in place of wit-bindgen's
/// `__export_world_batch_notifier_cabi!`.
///
/// wit-bindgen names a world-level export's core symbol after the function, and the
/// notifier world exports `send`: with Rust's `export_name` that is also the linker
/// symbol, which collides with wasi-libc's socket `send` (duplicate symbol in
/// `wasm-component-ld`, rust-lang/rust#98969). These exports use the component model's
/// standard name mangling instead (`cm32p2||send`, `cm32p2||send_post`, see
/// WebAssembly/component-model#378), which wit-component maps to the same WIT
/// functions and which no C library defines. The bodies are wit-bindgen's own
/// lifting/lowering functions, so only the names differ.
///
/// Tied to wit-bindgen 0.61's generated macro shape: `export_notifier_world!` calls
/// `<types path>::__export_world_batch_notifier_cabi!($ty with_types_in <types path>)`; the
/// SDK passes `__private::notifier_exports` as that path, where this macro is
/// re-exported under the expected name.
#[doc(hidden)]
#[macro_export]
macro_rules! __klaxon_notifier_core_exports {
    ($ty:ident with_types_in $($path_to_types:tt)*) => {
        const _: () = {
            #[unsafe(export_name = "cm32p2||info")]
            unsafe extern "C" fn export_info() -> *mut u8 {
                unsafe { $crate::__private::notifier::_export_info_cabi::<$ty>() }
            }
            #[unsafe(export_name = "cm32p2||info_post")]
            unsafe extern "C" fn post_return_info(arg0: *mut u8) {
                unsafe { $crate::__private::notifier::__post_return_info::<$ty>(arg0) }
            }
            #[unsafe(export_name = "cm32p2||check-config")]
            unsafe extern "C" fn export_check_config(arg0: *mut u8, arg1: usize) -> *mut u8 {
                unsafe { $crate::__private::notifier::_export_check_config_cabi::<$ty>(arg0, arg1) }
            }
            #[unsafe(export_name = "cm32p2||check-config_post")]
            unsafe extern "C" fn post_return_check_config(arg0: *mut u8) {
                unsafe { $crate::__private::notifier::__post_return_check_config::<$ty>(arg0) }
            }
            #[unsafe(export_name = "cm32p2||send")]
            unsafe extern "C" fn export_send(arg0: *mut u8) -> *mut u8 {
                unsafe { $crate::__private::notifier::_export_send_cabi::<$ty>(arg0) }
            }
            #[unsafe(export_name = "cm32p2||send_post")]
            unsafe extern "C" fn post_return_send(arg0: *mut u8) {
                unsafe { $crate::__private::notifier::__post_return_send::<$ty>(arg0) }
            }
            #[unsafe(export_name = "cm32p2||send-batch")]
            unsafe extern "C" fn export_send_batch(
                arg0: *mut u8,
                arg1: usize,
                arg2: *mut u8,
                arg3: usize,
            ) -> *mut u8 {
                unsafe {
                    $crate::__private::notifier::_export_send_batch_cabi::<$ty>(
                        arg0, arg1, arg2, arg3,
                    )
                }
            }
            #[unsafe(export_name = "cm32p2||send-batch_post")]
            unsafe extern "C" fn post_return_send_batch(arg0: *mut u8) {
                unsafe { $crate::__private::notifier::__post_return_send_batch::<$ty>(arg0) }
            }
        };
    };
}
