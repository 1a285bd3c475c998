//! The `klaxon` subcommands besides `serve`: `check` validates a config file,
//! `plugin run` runs a detector on a batch from a JSON file. Also logging
//! set-up and config loading shared with `serve`.

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
    let registry = crate::server::load_plugins(&config, None).await?;
    crate::server::validate(&config, &file, &text, registry).await?;
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
