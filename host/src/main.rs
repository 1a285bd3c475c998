//! The `klaxon` binary: parses the command line and starts things.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use klaxon_host::{cli, server};

#[derive(Parser)]
#[command(
    name = "klaxon",
    version,
    about = "Alert engine for ML systems in production"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run Klaxon: ingest, evaluate rules, route and notify.
    Serve {
        /// Address of the HTTP API.
        #[arg(long, default_value = "127.0.0.1:9190", env = "KLAXON_LISTEN")]
        listen: SocketAddr,
        /// Configuration file (YAML); the embedded default when absent.
        #[arg(long, env = "KLAXON_CONFIG")]
        config: Option<PathBuf>,
        /// Directory for compiled-plugin cache and state.
        #[arg(long, default_value = "data", env = "KLAXON_DATA_DIR")]
        data_dir: PathBuf,
        /// Log as JSON lines instead of text.
        #[arg(long)]
        log_json: bool,
    },
    /// Validate a configuration file; exits non-zero with file, line and reason.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
    /// Work with plugins.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Show or test the routing tree (amtool's `config routes`).
    Routes {
        #[command(subcommand)]
        command: RoutesCommand,
    },
    /// Unit-test rules offline.
    Test {
        #[command(subcommand)]
        command: TestCommand,
    },
    /// Make API tokens (`server.auth.tokens`).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Generate a random token; prints it and the config entry holding its hash.
    New {
        /// The token's name in the config.
        #[arg(long, default_value = "my-token")]
        name: String,
        /// Scopes, comma-separated: push, read, write, admin.
        #[arg(long, default_value = "read")]
        scopes: String,
    },
    /// Print the SHA-256 of the token read from standard input (for `sha256:`).
    Hash,
}

#[derive(Subcommand)]
enum TestCommand {
    /// Run Prometheus rule unit-test files (promtool's `test rules` format).
    Rules {
        /// Test files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum RoutesCommand {
    /// Print the routing tree.
    Show {
        #[arg(long, alias = "config.file")]
        config: PathBuf,
    },
    /// Print the receivers an alert with the given labels is routed to.
    Test {
        #[arg(long, alias = "config.file")]
        config: PathBuf,
        /// Expected receivers, comma-separated in tree order; exit 1 if they differ.
        #[arg(long = "verify.receivers")]
        verify_receivers: Option<String>,
        /// Also print the matching routes as a tree.
        #[arg(long)]
        tree: bool,
        /// Labels of the alert, `name=value`.
        labels: Vec<String>,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Run a detector on a batch and print its verdicts as JSON.
    Run {
        /// A stock plugin's name, or a component file (`.wasm`).
        plugin: String,
        /// The detector's config as JSON.
        #[arg(long, default_value = "{}")]
        config: String,
        /// JSON file: `[{"labels":{..},"window":{"timestamps_ms":[..],"values":[..]},"baseline":{..}}]`.
        #[arg(long)]
        input: PathBuf,
    },
    /// Write a plugin's component to stdout (`klaxon plugin export NAME > NAME.wasm`):
    /// a stock plugin, one in the plugins directory or `plugins.files`, or,
    /// with `--from`, the live version in a running Klaxon.
    Export {
        /// The plugin's name.
        name: String,
        /// Config file whose `plugins.files` and `plugins.dir` are searched.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory whose `plugins/` is searched (as `serve` uses it).
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
        /// Base URL of a running Klaxon to fetch the live version from.
        #[arg(long)]
        from: Option<String>,
    },
    /// Create an Ed25519 signing key; prints the public key for `plugins.trusted_keys`.
    Keygen {
        /// Where to write the secret key (refuses to overwrite).
        #[arg(long, default_value = "klaxon-plugin.key")]
        out: PathBuf,
    },
    /// Sign a component: writes `FILE.sig` beside it.
    Sign {
        /// The component file.
        file: PathBuf,
        /// The secret key file from `klaxon plugin keygen`.
        #[arg(long, default_value = "klaxon-plugin.key")]
        key: PathBuf,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let json_logs = matches!(args.command, Command::Serve { log_json: true, .. });
    cli::init_tracing(json_logs);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match args.command {
            Command::Serve {
                listen,
                config,
                data_dir,
                ..
            } => {
                let config_path = config.clone();
                let (config, config_file, config_text) = cli::load_config(config.as_deref())?;
                let server = server::start(server::ServerOptions {
                    listen,
                    config,
                    config_file,
                    config_text,
                    config_path,
                    data_dir: Some(data_dir),
                })
                .await?;
                server.run_until_signal().await;
                Ok(())
            }
            Command::Check { config } => cli::check(&config).await,
            Command::Plugin {
                command:
                    PluginCommand::Run {
                        plugin,
                        config,
                        input,
                    },
            } => cli::plugin_run(&plugin, &config, &input).await,
            Command::Plugin {
                command:
                    PluginCommand::Export {
                        name,
                        config,
                        data_dir,
                        from,
                    },
            } => cli::plugin_export(&name, config.as_deref(), &data_dir, from.as_deref()).await,
            Command::Plugin {
                command: PluginCommand::Keygen { out },
            } => cli::plugin_keygen(&out),
            Command::Plugin {
                command: PluginCommand::Sign { file, key },
            } => cli::plugin_sign(&file, &key),
            Command::Routes {
                command: RoutesCommand::Show { config },
            } => klaxon_host::routes_cli::show(&config),
            Command::Routes {
                command:
                    RoutesCommand::Test {
                        config,
                        verify_receivers,
                        tree,
                        labels,
                    },
            } => {
                if klaxon_host::routes_cli::test(
                    &config,
                    verify_receivers.as_deref(),
                    tree,
                    &labels,
                )? {
                    Ok(())
                } else {
                    Err(anyhow::anyhow!("expected receivers did not match"))
                }
            }
            Command::Token {
                command: TokenCommand::New { name, scopes },
            } => {
                let scopes: Vec<&str> = scopes.split(',').map(str::trim).collect();
                if let Some(bad) = scopes
                    .iter()
                    .find(|s| !["push", "read", "write", "admin"].contains(s))
                {
                    return Err(anyhow::anyhow!(
                        "unknown scope `{bad}`: use push, read, write or admin"
                    ));
                }
                let scopes = scopes.join(", ");
                let token = klaxon_host::api::auth::generate_token();
                let hash = klaxon_host::api::auth::hash_token(&token);
                println!("token: {token}");
                println!("# config (keep the token secret; only its hash goes here):");
                println!("server:\n  auth:\n    tokens:\n      - name: {name}\n        sha256: {hash}\n        scopes: [{scopes}]");
                Ok(())
            }
            Command::Token {
                command: TokenCommand::Hash,
            } => {
                let mut token = String::new();
                std::io::stdin().read_line(&mut token)?;
                if token.trim().is_empty() {
                    return Err(anyhow::anyhow!("no token on standard input"));
                }
                println!("{}", klaxon_host::api::auth::hash_token(&token));
                Ok(())
            }
            Command::Test {
                command: TestCommand::Rules { files },
            } => {
                let mut out = String::new();
                let ok = klaxon_host::ruletest::run_files(&files, &mut out);
                print!("{out}");
                if ok {
                    Ok(())
                } else {
                    Err(anyhow::anyhow!("some rule tests failed"))
                }
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
