//! Builds the stock plugins (and the test fixture plugins) for
//! `wasm32-wasip2` and embeds them: the host binary runs with no files.
//!
//! A nested `cargo build` with its own target directory (so it never waits on
//! the outer build's lock), the `plugin` profile (LTO, opt-level 3, stripped).

use std::env;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

/// (plugin name, crate name) of every embedded stock plugin.
const STOCK: &[(&str, &str)] = &[
    ("threshold", "klaxon-plugin-threshold"),
    ("zscore", "klaxon-plugin-zscore"),
    ("mad", "klaxon-plugin-mad"),
    ("ewma", "klaxon-plugin-ewma"),
    ("cusum", "klaxon-plugin-cusum"),
    ("page_hinkley", "klaxon-plugin-page-hinkley"),
    ("adwin", "klaxon-plugin-adwin"),
    ("seasonal", "klaxon-plugin-seasonal"),
    ("holt_winters", "klaxon-plugin-holt-winters"),
    ("rate_of_change", "klaxon-plugin-rate-of-change"),
    ("exhaustion", "klaxon-plugin-exhaustion"),
    ("all", "klaxon-plugin-all"),
    ("any", "klaxon-plugin-any"),
    ("k_of_n", "klaxon-plugin-k-of-n"),
    ("sequence", "klaxon-plugin-sequence"),
    ("webhook", "klaxon-plugin-webhook"),
    ("slack", "klaxon-plugin-slack"),
    ("pagerduty", "klaxon-plugin-pagerduty"),
    ("opsgenie", "klaxon-plugin-opsgenie"),
    ("msteams", "klaxon-plugin-msteams"),
    ("email", "klaxon-plugin-email"),
    ("console", "klaxon-plugin-console"),
    ("psi", "klaxon-plugin-psi"),
    ("ks", "klaxon-plugin-ks"),
    ("jensen_shannon", "klaxon-plugin-jensen-shannon"),
    ("wasserstein", "klaxon-plugin-wasserstein"),
    ("chi_square", "klaxon-plugin-chi-square"),
    ("null_rate", "klaxon-plugin-null-rate"),
    ("freshness", "klaxon-plugin-freshness"),
    ("absent", "klaxon-plugin-absent"),
    ("knn", "klaxon-plugin-knn"),
];

/// Plugins only tests use.
const FIXTURES: &[(&str, &str)] = &[
    ("misbehave", "klaxon-plugin-misbehave"),
    ("sneaky", "klaxon-plugin-sneaky"),
    ("variant", "klaxon-plugin-variant"),
    ("plain", "klaxon-plugin-plain-notifier"),
];

/// Shadow stack of the stock plugins, in bytes.
const PLUGIN_STACK_BYTES: u32 = 256 << 10;

fn main() {
    let manifest =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest
        .parent()
        .expect("host/ is inside the workspace")
        .to_path_buf();
    for dir in ["wit", "sdk", "plugins"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("plugins");

    println!("cargo:rerun-if-env-changed=KLAXON_NO_PLUGINS");
    if env::var_os("KLAXON_NO_PLUGINS").is_some() {
        // Host development without the plugin toolchain: embed nothing.
        let empty = "pub const STOCK: &[(&str, &[u8])] = &[];\npub const FIXTURES: &[(&str, &[u8])] = &[];\n";
        std::fs::write(out.join("stock_plugins.rs"), empty).expect("cannot write stock_plugins.rs");
        return;
    }

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--target",
            "wasm32-wasip2",
            "--profile",
            "plugin",
            "--target-dir",
        ])
        .arg(&target_dir);
    for (_, krate) in STOCK.iter().chain(FIXTURES) {
        cmd.args(["-p", krate]);
    }
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_LLVM_COV",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    // 256 KiB of shadow stack instead of Rust's 1 MiB default: the stock
    // plugins never recurse deeply, and every byte of a plugin's linear
    // memory is zeroed when its pool slot is reused after a call.
    cmd.env(
        "CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS",
        format!("-Clink-arg=-zstack-size={PLUGIN_STACK_BYTES}"),
    );
    let status = cmd.status().expect("cannot run cargo for the plugins");
    if !status.success() {
        panic!(
            "building the stock plugins for wasm32-wasip2 failed (is the target installed? `rustup target add wasm32-wasip2`)"
        );
    }

    let wasm_dir = target_dir.join("wasm32-wasip2").join("plugin");
    let mut code = String::new();
    for (list, items) in [("STOCK", STOCK), ("FIXTURES", FIXTURES)] {
        writeln!(code, "pub const {list}: &[(&str, &[u8])] = &[").unwrap();
        for (name, krate) in items {
            let file = wasm_dir.join(format!("{}.wasm", krate.replace('-', "_")));
            let dest = out.join(format!("{name}.wasm"));
            std::fs::copy(&file, &dest)
                .unwrap_or_else(|e| panic!("cannot copy {}: {e}", file.display()));
            writeln!(
                code,
                "    ({name:?}, include_bytes!({:?})),",
                dest.display().to_string()
            )
            .unwrap();
        }
        writeln!(code, "];").unwrap();
    }
    std::fs::write(out.join("stock_plugins.rs"), code).expect("cannot write stock_plugins.rs");
}
