//! The `klaxon` subcommands besides `serve`: `check` validates a config file,
//! `plugin run` runs a detector on a batch from a JSON file, `plugin export`
//! writes a plugin's component, `plugin keygen` and `plugin sign` make
//! signatures. Also logging set-up and config loading shared with `serve`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, anyhow, bail};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{Config, DEFAULT_CONFIG};
use crate::plugins::bindings::types::{Batch, SeriesInput, Span};
use crate::plugins::{
    EngineSettings, Plugin, PluginEngine, PluginKind, PluginLimits, PluginSource, stock,
};
use crate::store::Labels;

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,wasmtime=warn,cranelift=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Loads a config file, or the embedded default: (config, file name, text).
pub fn load_config(path: Option<&Path>) -> anyhow::Result<(Config, String, String)> {
    match path {
        Some(path) => {
            let (config, text) = Config::load(path)?;
            Ok((config, path.display().to_string(), text))
        }
        None => {
            let file = "<embedded default>".to_string();
            let config = Config::parse(DEFAULT_CONFIG, &file)?;
            Ok((config, file, DEFAULT_CONFIG.to_string()))
        }
    }
}

/// `klaxon check --config F`.
pub async fn check(path: &Path) -> anyhow::Result<()> {
    let (config, file, text) = load_config(Some(path))?;
    config.validate_static(&file, &text)?;
    // The plugins directory counts when the config names it (`check` has no data dir).
    let manager =
        crate::server::load_plugins_managed(&config, None, config.plugins.dir.clone()).await?;
    crate::server::validate(&config, &file, &text, manager.registry().clone()).await?;
    let rules: usize = config.groups.iter().map(|g| g.rules.len()).sum();
    println!(
        "{file}: OK ({} groups, {rules} rules, {} receivers)",
        config.groups.len(),
        config.receivers.len()
    );
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSeries {
    #[serde(default)]
    labels: BTreeMap<String, String>,
    window: InputWindow,
    #[serde(default)]
    baseline: Option<InputWindow>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputWindow {
    timestamps_ms: Vec<i64>,
    values: Vec<InputValue>,
}

/// A value: a JSON number or one of "NaN", "+Inf", "-Inf", "Inf".
#[derive(Deserialize)]
#[serde(untagged)]
enum InputValue {
    Number(f64),
    Text(String),
}

impl InputValue {
    fn to_f64(&self) -> anyhow::Result<f64> {
        match self {
            InputValue::Number(n) => Ok(*n),
            InputValue::Text(t) => match t.as_str() {
                "NaN" => Ok(f64::NAN),
                "+Inf" | "Inf" => Ok(f64::INFINITY),
                "-Inf" => Ok(f64::NEG_INFINITY),
                other => bail!("value `{other}` is not a number, NaN, +Inf or -Inf"),
            },
        }
    }
}

/// A float for JSON output: full precision, non-finite values as strings.
fn json_f64(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else {
        json!(crate::rules::format_value(v))
    }
}

/// Reads a `plugin run` input file into a columnar batch.
pub fn read_batch(text: &str) -> anyhow::Result<Batch> {
    let input: Vec<InputSeries> =
        serde_json::from_str(text).context("input is not a JSON array of series")?;
    let mut batch = Batch {
        series: Vec::with_capacity(input.len()),
        timestamps_ms: Vec::new(),
        values: Vec::new(),
        eval_time_ms: i64::MIN,
    };
    let push = |batch: &mut Batch, w: &InputWindow, at: String| -> anyhow::Result<Span> {
        if w.timestamps_ms.len() != w.values.len() {
            bail!(
                "{at}: {} timestamps but {} values",
                w.timestamps_ms.len(),
                w.values.len()
            );
        }
        if w.timestamps_ms.windows(2).any(|p| p[0] > p[1]) {
            bail!("{at}.timestamps_ms must be ascending");
        }
        let start = batch.values.len() as u32;
        batch.timestamps_ms.extend_from_slice(&w.timestamps_ms);
        for (i, v) in w.values.iter().enumerate() {
            batch
                .values
                .push(v.to_f64().with_context(|| format!("{at}.values[{i}]"))?);
        }
        Ok(Span {
            start,
            len: w.values.len() as u32,
        })
    };
    for (i, s) in input.iter().enumerate() {
        let window = push(&mut batch, &s.window, format!("[{i}].window"))?;
        let baseline = match &s.baseline {
            Some(b) => push(&mut batch, b, format!("[{i}].baseline"))?,
            None => Span {
                start: batch.values.len() as u32,
                len: 0,
            },
        };
        if let Some(last) = s.window.timestamps_ms.last() {
            batch.eval_time_ms = batch.eval_time_ms.max(*last);
        }
        batch.series.push(SeriesInput {
            labels: Labels::new(s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .to_prom_string(),
            window,
            baseline,
            state: None,
        });
    }
    if batch.eval_time_ms == i64::MIN {
        batch.eval_time_ms = 0;
    }
    Ok(batch)
}

/// `klaxon plugin run NAME_OR_FILE --config JSON --input FILE`.
pub async fn plugin_run(plugin: &str, config: &str, input: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(input)
        .with_context(|| format!("cannot read {}", input.display()))?;
    let batch = read_batch(&text).with_context(|| format!("{}", input.display()))?;
    let config_value: Value = serde_json::from_str(config).context("--config is not valid JSON")?;
    let plugin = plugin.to_string();
    let out = tokio::task::spawn_blocking(move || -> anyhow::Result<Value> {
        let engine = PluginEngine::new(EngineSettings::default())?;
        let limits = PluginLimits::default();
        let loaded = match stock::bytes(&plugin) {
            Some(bytes) if !Path::new(&plugin).exists() => {
                Plugin::load(&engine, Some(&plugin), bytes, PluginSource::Stock, limits)?
            }
            _ => Plugin::load_file(&engine, Path::new(&plugin), limits)?,
        };
        if loaded.info.kind != PluginKind::Detector {
            bail!(
                "`{plugin}` is a {}, `plugin run` runs detectors",
                loaded.info.kind
            );
        }
        let config_text = config_value.to_string();
        loaded.check_config(&config_text)?;
        let outputs = loaded
            .evaluate(&config_text, &batch)
            .map_err(|e| anyhow!("{}: {e}", loaded.info.name))?;
        Ok(Value::Array(
            outputs
                .into_iter()
                .map(|o| {
                    let annotations: serde_json::Map<String, Value> = o
                        .verdict
                        .annotations
                        .into_iter()
                        .map(|l| (l.name, Value::String(l.value)))
                        .collect();
                    json!({
                        "firing": o.verdict.firing,
                        "score": json_f64(o.verdict.score),
                        "summary": o.verdict.summary,
                        "annotations": annotations,
                    })
                })
                .collect(),
        ))
    })
    .await
    .map_err(|e| anyhow!("plugin run panicked: {e}"))??;
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// `klaxon plugin export NAME`: the component bytes to stdout.
pub async fn plugin_export(
    name: &str,
    config: Option<&Path>,
    data_dir: &Path,
    from: Option<&str>,
) -> anyhow::Result<()> {
    use std::io::Write as _;
    let bytes: Vec<u8> = match from {
        Some(base) => {
            crate::server::install_tls_provider();
            let url = format!(
                "{}/api/v1/plugins/{name}/component",
                base.trim_end_matches('/')
            );
            let response = reqwest::get(&url)
                .await
                .with_context(|| format!("cannot reach {url}"))?;
            let status = response.status();
            let body = response.bytes().await.context("reading the component")?;
            if !status.is_success() {
                bail!("{url}: {status}: {}", String::from_utf8_lossy(&body));
            }
            body.to_vec()
        }
        None => local_component(name, config, data_dir)?,
    };
    let mut out = std::io::stdout().lock();
    out.write_all(&bytes).context("writing to stdout")?;
    out.flush().context("writing to stdout")?;
    Ok(())
}

/// A plugin's component from the plugins directory, `plugins.files` or the
/// stock plugins, in the order `serve` lets them win.
fn local_component(name: &str, config: Option<&Path>, data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    let config = match config {
        Some(path) => Some(load_config(Some(path))?.0),
        None => None,
    };
    let dir = match &config {
        Some(c) => crate::server::plugins_dir(c, Some(data_dir)),
        None => Some(data_dir.join("plugins")),
    };
    if let Some(dir) = dir {
        let path = dir.join(format!("{name}.wasm"));
        if path.exists() {
            return std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()));
        }
    }
    if let Some(config) = &config
        && !config.plugins.files.is_empty()
    {
        let engine = PluginEngine::new(EngineSettings::default())?;
        for path in &config.plugins.files {
            let plugin = Plugin::load_file(&engine, path, PluginLimits::default())
                .with_context(|| format!("loading plugin file {}", path.display()))?;
            if plugin.info.name == name {
                return Ok(plugin.bytes.to_vec());
            }
        }
    }
    stock::bytes(name).map(<[u8]>::to_vec).ok_or_else(|| {
        anyhow!("no plugin named `{name}`: not a stock plugin, nor in the plugins directory or plugins.files")
    })
}

/// `klaxon plugin keygen --out FILE`.
pub fn plugin_keygen(out: &Path) -> anyhow::Result<()> {
    use std::io::Write as _;
    let (secret, public) = crate::plugins::signing::generate_key();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(out)
        .with_context(|| format!("cannot create {} (it must not exist yet)", out.display()))?;
    writeln!(file, "{secret}").with_context(|| format!("cannot write {}", out.display()))?;
    println!("secret key written to {}", out.display());
    println!("public key (add it to plugins.trusted_keys): {public}");
    Ok(())
}

/// `klaxon plugin sign FILE --key KEY`: writes `FILE.sig`.
pub fn plugin_sign(file: &Path, key: &Path) -> anyhow::Result<()> {
    let secret = std::fs::read_to_string(key)
        .with_context(|| format!("cannot read the key {}", key.display()))?;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let line = crate::plugins::signing::sign(&secret, &bytes)?;
    let mut sig = file.as_os_str().to_owned();
    sig.push(".sig");
    let sig = std::path::PathBuf::from(sig);
    std::fs::write(&sig, line).with_context(|| format!("cannot write {}", sig.display()))?;
    println!("{}", sig.display());
    Ok(())
}
