//! Native test harness: run a plugin the way the host would, under plain `cargo test`.
//!
//! Every `run_*` function goes through the same entry point the Wasm export calls
//! (config text → parse → `check_config` → batch view or conversion → your code →
//! conversion back), so a test exercises config parsing and batch splitting too. Only
//! the last step differs: results are converted back into SDK types, and the result
//! checks the host makes (one output per input) are applied.
//!
//! ```
//! use klaxon_sdk::prelude::*;
//! use klaxon_sdk::testing::{self, TestSeries};
//!
//! struct Last;
//! impl Detector for Last {
//!     type Config = serde_json::Value;
//!     fn info() -> Info { Info::new("last", "0.1.0", "the last sample") }
//!     fn evaluate(_: &serde_json::Value, s: &Series<'_>) -> Output {
//!         let last = s.window.last().map_or(0.0, |(_, v)| v);
//!         Verdict::new(last > 1.0, last, "").into()
//!     }
//! }
//!
//! let out = testing::run_detector::<Last>("{}", &[TestSeries::from_values(&[0.5, 2.0])]).unwrap();
//! assert!(out[0].verdict.firing);
//! ```
//!
//! Notifiers reach HTTP through [`set_http_handler`]; [`take_http_requests`] returns
//! what they sent. Mail goes the same way through [`set_smtp_handler`] and
//! [`take_smtp_messages`]. All, like [`take_logs`], are per thread (one test, one thread).
//!
//! Not built for Wasm.

use crate::bindings::types as wit;
use crate::composite::{Composite, Signal, SignalGroup};
use crate::detector::Detector;
use crate::glue;
use crate::http::{HttpError, Request, Response};
use crate::info::Info;
use crate::log::Level;
use crate::notifier::{Delivery, DeliveryError, Notification, Notifier};
use crate::verdict::Output;

/// Evaluation time [`TestSeries::from_values`] windows end at: 2023-11-14T22:13:20Z.
pub const EVAL_TIME_MS: i64 = 1_700_000_000_000;

/// Sample spacing of [`TestSeries::from_values`]: 15 s, Prometheus' default scrape interval.
pub const STEP_MS: i64 = 15_000;

/// One series for a test batch, built from plain vectors.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TestSeries {
    /// Label pairs; formatted into Prometheus notation (sorted, escaped) as the host does.
    pub labels: Vec<(String, String)>,
    /// Window timestamps (Unix ms).
    pub timestamps_ms: Vec<i64>,
    /// Window values.
    pub values: Vec<f64>,
    /// Baseline timestamps.
    pub baseline_timestamps_ms: Vec<i64>,
    /// Baseline values.
    pub baseline_values: Vec<f64>,
    /// State from the previous evaluation.
    pub state: Option<Vec<u8>>,
}

impl TestSeries {
    /// A series with explicit labels, timestamps and values.
    ///
    /// # Panics
    ///
    /// When `timestamps_ms` and `values` differ in length (a broken test).
    pub fn new(labels: &[(&str, &str)], timestamps_ms: Vec<i64>, values: Vec<f64>) -> Self {
        assert_eq!(
            timestamps_ms.len(),
            values.len(),
            "TestSeries::new: timestamps and values differ in length"
        );
        Self {
            labels: labels
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            timestamps_ms,
            values,
            ..Self::default()
        }
    }

    /// A series labelled `{__name__="test"}` whose samples are [`STEP_MS`] apart,
    /// the last one at [`EVAL_TIME_MS`].
    pub fn from_values(values: &[f64]) -> Self {
        Self::new(
            &[("__name__", "test")],
            steps_ending_at(EVAL_TIME_MS, values.len()),
            values.to_vec(),
        )
    }

    /// Replaces the labels.
    pub fn labels(mut self, labels: &[(&str, &str)]) -> Self {
        self.labels = labels
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        self
    }

    /// Sets the baseline window, timestamps [`STEP_MS`] apart ending one day before
    /// the window's first sample.
    pub fn baseline(mut self, values: &[f64]) -> Self {
        let end = self.timestamps_ms.first().copied().unwrap_or(EVAL_TIME_MS) - 86_400_000;
        self.baseline_timestamps_ms = steps_ending_at(end, values.len());
        self.baseline_values = values.to_vec();
        self
    }

    /// Sets the previous state.
    pub fn state(mut self, state: Vec<u8>) -> Self {
        self.state = Some(state);
        self
    }
}

fn steps_ending_at(end_ms: i64, n: usize) -> Vec<i64> {
    (0..n as i64)
        .map(|i| end_ms - (n as i64 - 1 - i) * STEP_MS)
        .collect()
}

/// Builds the columnar batch the host would send (see [`crate::series`] for the layout):
/// per series, its window and then its baseline, appended to the columns.
pub fn build_batch(series: &[TestSeries], eval_time_ms: i64) -> wit::Batch {
    let total: usize = series
        .iter()
        .map(|s| s.values.len() + s.baseline_values.len())
        .sum();
    let mut timestamps_ms = Vec::with_capacity(total);
    let mut values = Vec::with_capacity(total);
    let mut span = |ts: &[i64], vs: &[f64]| {
        let start = values.len() as u32;
        timestamps_ms.extend_from_slice(ts);
        values.extend_from_slice(vs);
        wit::Span {
            start,
            len: vs.len() as u32,
        }
    };
    let inputs = series
        .iter()
        .map(|s| wit::SeriesInput {
            labels: crate::labels::format(&s.labels),
            window: span(&s.timestamps_ms, &s.values),
            baseline: span(&s.baseline_timestamps_ms, &s.baseline_values),
            state: s.state.clone(),
        })
        .collect();
    wit::Batch {
        series: inputs,
        timestamps_ms,
        values,
        eval_time_ms,
    }
}

/// The plugin's [`Info`].
pub fn info<D: Detector>() -> Info {
    D::info()
}

/// Runs `check-config` on a detector, as the host does when it loads a rule.
pub fn check_detector_config<D: Detector>(config_json: &str) -> Result<(), String> {
    glue::detector_check_config::<D>(config_json.to_owned())
}

/// Runs `evaluate` on a detector at [`EVAL_TIME_MS`], as the host does.
///
/// Besides the plugin's own errors, fails like the host would when the plugin returns
/// a number of outputs different from the number of series.
pub fn run_detector<D: Detector>(
    config_json: &str,
    series: &[TestSeries],
) -> Result<Vec<Output>, String> {
    run_detector_at::<D>(config_json, series, EVAL_TIME_MS)
}

/// [`run_detector`] at a chosen evaluation time.
pub fn run_detector_at<D: Detector>(
    config_json: &str,
    series: &[TestSeries],
    eval_time_ms: i64,
) -> Result<Vec<Output>, String> {
    let batch = build_batch(series, eval_time_ms);
    let outputs = glue::detector_evaluate::<D>(config_json.to_owned(), batch)?;
    expect_one_per_input(outputs, series.len())
}

/// Runs `evaluate` on a detector with a hand-built batch (e.g. to test bad spans).
pub fn run_detector_batch<D: Detector>(
    config_json: &str,
    batch: wit::Batch,
) -> Result<Vec<Output>, String> {
    let n = batch.series.len();
    let outputs = glue::detector_evaluate::<D>(config_json.to_owned(), batch)?;
    expect_one_per_input(outputs, n)
}

/// A group joined on `model_name="fraud"` whose children `C0`, `C1`, ... fire as
/// `firing` says (value 1, no history), judged at `eval_time_ms` with `state`: the
/// input the counting composites' tests share.
pub fn signal_group(firing: &[bool], state: Option<Vec<u8>>, eval_time_ms: i64) -> SignalGroup {
    SignalGroup {
        labels: vec![("model_name".into(), "fraud".into())],
        signals: firing
            .iter()
            .enumerate()
            .map(|(i, &f)| Signal {
                name: format!("C{i}"),
                firing: f,
                value: 1.0,
                since_ms: 0,
                history: vec![],
            })
            .collect(),
        eval_time_ms,
        state,
    }
}

/// Runs `check-config` on a composite.
pub fn check_composite_config<C: Composite>(config_json: &str) -> Result<(), String> {
    glue::composite_check_config::<C>(config_json.to_owned())
}

/// Runs `evaluate` on a composite.
pub fn run_composite<C: Composite>(
    config_json: &str,
    groups: &[SignalGroup],
) -> Result<Vec<Output>, String> {
    let wire = groups.iter().cloned().map(glue::group_to_wit).collect();
    let outputs = glue::composite_evaluate::<C>(config_json.to_owned(), wire)?;
    expect_one_per_input(outputs, groups.len())
}

/// Runs `check-config` on a notifier.
pub fn check_notifier_config<N: Notifier>(config_json: &str) -> Result<(), String> {
    glue::notifier_check_config::<N>(config_json.to_owned())
}

/// Runs `send` on a notifier. HTTP goes to the handler set with [`set_http_handler`].
pub fn run_notifier<N: Notifier>(
    config_json: &str,
    notification: &Notification,
) -> Result<Delivery, DeliveryError> {
    let wire = glue::notification_to_wit(notification.clone());
    glue::delivery_from_wit(glue::notifier_send::<N>(config_json.to_owned(), wire))
}

/// `(name, value)` pairs as notifications carry labels and annotations.
pub fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// A notification of one alert (`HighLatency` on model `fraud-v2`, summary
/// `p99 above 250ms`) with `status`, grouped by `alertname`: the fixture
/// notifier tests start from.
pub fn sample_notification(status: &str) -> Notification {
    Notification {
        receiver: "ml-oncall".into(),
        status: status.into(),
        alerts: vec![crate::notifier::Alert {
            status: status.into(),
            labels: pairs(&[("alertname", "HighLatency"), ("model", "fraud-v2")]),
            annotations: pairs(&[("summary", "p99 above 250ms")]),
            starts_at: "2024-05-01T10:00:00Z".into(),
            ends_at: "0001-01-01T00:00:00Z".into(),
            generator_url: "http://klaxon:9190/rules/high-latency".into(),
            fingerprint: "0123456789abcdef".into(),
        }],
        group_labels: pairs(&[("alertname", "HighLatency")]),
        common_labels: pairs(&[("alertname", "HighLatency"), ("model", "fraud-v2")]),
        common_annotations: pairs(&[("summary", "p99 above 250ms")]),
        external_url: "http://klaxon:9190".into(),
        group_key: "{}:{alertname=\"HighLatency\"}".into(),
        truncated_alerts: 0,
    }
}

/// Runs notifier `N` on `n` with every HTTP request answered by `response`;
/// returns the outcome and the request sent, asserting there was exactly one.
pub fn deliver_once<N: Notifier>(
    config_json: &str,
    n: &Notification,
    response: Result<Response, HttpError>,
) -> (Result<Delivery, DeliveryError>, Request) {
    set_http_handler(move |_| response.clone());
    let result = run_notifier::<N>(config_json, n);
    let mut sent = take_http_requests();
    assert_eq!(sent.len(), 1, "exactly one request");
    (result, sent.remove(0))
}

fn expect_one_per_input(
    outputs: Vec<wit::SeriesOutput>,
    inputs: usize,
) -> Result<Vec<Output>, String> {
    if outputs.len() != inputs {
        return Err(format!(
            "plugin returned {} outputs for {inputs} inputs; the host rejects this",
            outputs.len()
        ));
    }
    Ok(outputs.into_iter().map(glue::output_from_wit).collect())
}

/// Installs the handler that answers [`crate::http::send`] on this thread, replacing
/// any previous one.
///
/// ```
/// use klaxon_sdk::http::{self, Request, Response};
/// klaxon_sdk::testing::set_http_handler(|req| Ok(Response::new(202, req.body.clone())));
/// let resp = http::send(Request::post("https://example.com").body("hi")).unwrap();
/// assert_eq!((resp.status, resp.body), (202, b"hi".to_vec()));
/// ```
pub fn set_http_handler<F>(handler: F)
where
    F: FnMut(&Request) -> Result<Response, HttpError> + 'static,
{
    crate::http::imp::set_handler(Some(Box::new(handler)));
}

/// Removes this thread's HTTP handler: [`crate::http::send`] fails with `Denied` again.
pub fn clear_http_handler() {
    crate::http::imp::set_handler(None);
}

/// Every request sent on this thread since the last call, oldest first.
pub fn take_http_requests() -> Vec<Request> {
    crate::http::imp::take_sent()
}

/// Installs the handler that answers [`crate::smtp::send`] on this thread, replacing
/// any previous one.
pub fn set_smtp_handler<F>(handler: F)
where
    F: FnMut(&crate::smtp::Server, &crate::smtp::Message) -> Result<(), crate::smtp::SmtpError>
        + 'static,
{
    crate::smtp::imp::set_handler(Some(Box::new(handler)));
}

/// Every message sent on this thread since the last call, with its server, oldest first.
pub fn take_smtp_messages() -> Vec<(crate::smtp::Server, crate::smtp::Message)> {
    crate::smtp::imp::take_sent()
}

/// Every record logged on this thread since the last call, oldest first.
pub fn take_logs() -> Vec<(Level, String)> {
    crate::log::imp::take()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;

    /// Echoes what it saw, to check the harness builds batches as documented.
    struct Echo;

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct EchoConfig {
        #[serde(default)]
        fail: bool,
    }

    impl Detector for Echo {
        type Config = EchoConfig;

        fn info() -> Info {
            Info::new("echo", "0.0.0", "test")
        }

        fn check_config(cfg: &EchoConfig) -> Result<(), String> {
            if cfg.fail {
                Err("fail: set".into())
            } else {
                Ok(())
            }
        }

        fn evaluate(_: &EchoConfig, s: &Series<'_>) -> Output {
            let name = s.labels.get("job").unwrap_or_default().into_owned();
            Verdict::new(
                s.state.is_some(),
                stats::sum(s.window.values) + stats::sum(s.baseline.values),
                name,
            )
            .annotate("window", s.window.len().to_string())
            .annotate("baseline", s.baseline.len().to_string())
            .annotate("eval", s.eval_time_ms.to_string())
            .with_state(vec![1])
        }
    }

    #[test]
    fn batch_layout_is_window_then_baseline() {
        let batch = build_batch(
            &[
                TestSeries::new(&[("job", "a")], vec![1, 2], vec![1.0, 2.0]).baseline(&[10.0]),
                TestSeries::new(&[("job", "b")], vec![3], vec![3.0]),
            ],
            7,
        );
        assert_eq!(batch.values, vec![1.0, 2.0, 10.0, 3.0]);
        assert_eq!(batch.series[0].labels, r#"{job="a"}"#);
        assert_eq!(
            (batch.series[0].baseline.start, batch.series[0].baseline.len),
            (2, 1)
        );
        assert_eq!(
            (batch.series[1].window.start, batch.series[1].window.len),
            (3, 1)
        );
        assert_eq!(
            (batch.series[1].baseline.start, batch.series[1].baseline.len),
            (4, 0)
        );
    }

    #[test]
    fn runs_through_the_export_path() {
        let series = [
            TestSeries::new(&[("job", "a")], vec![1, 2], vec![1.0, 2.0]).baseline(&[10.0]),
            TestSeries::from_values(&[5.0]).state(vec![9]),
        ];
        let out = run_detector_at::<Echo>("{}", &series, 42).unwrap();
        assert_eq!(out.len(), 2);
        // 1 + 2 + 10 = 13
        assert_eq!(out[0].verdict.score, 13.0);
        assert_eq!(out[0].verdict.summary, "a");
        assert_eq!(out[0].verdict.annotation("baseline"), Some("1"));
        assert_eq!(out[0].verdict.annotation("eval"), Some("42"));
        assert!(!out[0].verdict.firing);
        assert!(out[1].verdict.firing, "state is handed back");
        assert_eq!(out[1].state, Some(vec![1]));
    }

    #[test]
    fn config_errors_surface_in_both_entry_points() {
        assert!(check_detector_config::<Echo>("{}").is_ok());
        assert_eq!(
            check_detector_config::<Echo>(r#"{"fail":true}"#),
            Err("fail: set".into())
        );
        let err = check_detector_config::<Echo>(r#"{"fial":true}"#).unwrap_err();
        assert!(err.contains("unknown field `fial`"), "{err}");
        let err = run_detector::<Echo>(r#"{"fail":true}"#, &[]).unwrap_err();
        assert_eq!(err, "invalid config: fail: set");
    }

    #[test]
    fn bad_spans_fail_the_call() {
        let mut batch = build_batch(&[TestSeries::from_values(&[1.0])], EVAL_TIME_MS);
        batch.series[0].window.len = 2;
        let err = run_detector_batch::<Echo>("{}", batch).unwrap_err();
        assert!(err.starts_with("series 0: window span"), "{err}");
    }

    /// Fires when every child fires.
    struct AllFiring;

    impl Composite for AllFiring {
        type Config = serde_json::Value;

        fn info() -> Info {
            Info::new("all", "0.0.0", "test")
        }

        fn evaluate(_: &serde_json::Value, g: &SignalGroup) -> Output {
            let n = g.signals.iter().filter(|s| s.firing).count();
            let summary = format!("{n} firing, model {:?}", g.label("model"));
            Verdict::new(n == g.signals.len(), n as f64, summary).into()
        }
    }

    #[test]
    fn composite_round_trip() {
        let signal = |name: &str, firing| Signal {
            name: name.into(),
            firing,
            value: 1.0,
            since_ms: 5,
            history: vec![(1, firing)],
        };
        let group = SignalGroup {
            labels: vec![("model".into(), "fraud".into())],
            signals: vec![signal("a", true), signal("b", false)],
            eval_time_ms: 10,
            state: None,
        };
        let out = run_composite::<AllFiring>("{}", &[group]).unwrap();
        assert!(!out[0].verdict.firing);
        assert_eq!(out[0].verdict.summary, r#"1 firing, model Some("fraud")"#);
        assert!(check_composite_config::<AllFiring>("not json").is_err());
    }

    /// Posts the receiver name; fails permanently on 4xx.
    struct Echoer;

    #[derive(serde::Deserialize)]
    struct EchoerConfig {
        url: String,
    }

    impl Notifier for Echoer {
        type Config = EchoerConfig;

        fn info() -> Info {
            Info::new("echoer", "0.0.0", "test")
        }

        fn send(cfg: &EchoerConfig, n: &Notification) -> Result<Delivery, DeliveryError> {
            let resp = crate::http::send(Request::post(cfg.url.as_str()).body(n.receiver.as_str()))
                .map_err(|e| DeliveryError::retryable(e.to_string()))?;
            match resp.status {
                200..=299 => Ok(Delivery {
                    status_code: resp.status,
                    detail: format!("{} alerts", n.alerts.len()),
                }),
                status => Err(DeliveryError::Permanent(format!("HTTP {status}"))),
            }
        }
    }

    #[test]
    fn notifier_round_trip() {
        let n = Notification {
            receiver: "team".into(),
            alerts: vec![Alert::default()],
            ..Notification::default()
        };
        set_http_handler(|_| Ok(Response::new(201, "")));
        let delivery = run_notifier::<Echoer>(r#"{"url":"http://x"}"#, &n).unwrap();
        assert_eq!(
            (delivery.status_code, delivery.detail.as_str()),
            (201, "1 alerts")
        );
        assert_eq!(take_http_requests()[0].body, b"team");

        set_http_handler(|_| Ok(Response::new(404, "")));
        assert_eq!(
            run_notifier::<Echoer>(r#"{"url":"http://x"}"#, &n),
            Err(DeliveryError::Permanent("HTTP 404".into()))
        );
        set_http_handler(|_| Err(HttpError::Timeout));
        assert!(
            run_notifier::<Echoer>(r#"{"url":"http://x"}"#, &n)
                .unwrap_err()
                .is_retryable()
        );
        let err = run_notifier::<Echoer>("{}", &n).unwrap_err();
        assert_eq!(
            err,
            DeliveryError::Permanent(
                "invalid config: missing field `url` at line 1 column 2".into()
            )
        );
        clear_http_handler();
    }

    #[test]
    fn http_handler_and_logs_are_per_thread() {
        assert!(matches!(
            crate::http::send(Request::get("http://x")),
            Err(HttpError::Denied(_))
        ));
        let mut calls = 0;
        set_http_handler(move |_| {
            calls += 1;
            Ok(Response::new(200 + calls, ""))
        });
        assert_eq!(
            crate::http::send(Request::get("http://a")).unwrap().status,
            201
        );
        assert_eq!(
            crate::http::send(Request::get("http://b")).unwrap().status,
            202
        );
        let sent = take_http_requests();
        assert_eq!(sent.len(), 3);
        assert_eq!(sent[2].url, "http://b");
        clear_http_handler();

        crate::log::warn("careful");
        assert_eq!(take_logs(), vec![(Level::Warn, "careful".to_owned())]);
        assert!(take_logs().is_empty());
    }
}
