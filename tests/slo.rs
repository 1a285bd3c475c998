//! End to end: SLO burn-rate alerts. A real Klaxon on an ephemeral port, 7
//! hours of request counters pushed with explicit timestamps, a real local
//! webhook receiver.
//!
//! Three SLOs at 99.9 % (error budget 0.1 %), counters sampled every minute:
//! - `fast`: 0.05 % errors, then 10 % for the last 70 minutes: burn rate 100
//!   over 1h and 5m, so the page alert (14.4 over 1h and 5m) fires;
//! - `slow`: 0.2 % errors all along: burn rate 2 everywhere, so no page
//!   (needs 14.4 or 6), but the ticket (1 over 3d and 6h) fires;
//! - `steady`: 0.05 % errors all along: burn rate 0.5, nothing fires, and
//!   `/api/v1/slos` reports hand-computed numbers: every burn rate 0.5, the
//!   budget half consumed, exhausted in 0.5 × 30d / 0.5 = 30 days.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// One sample a minute over the last `minutes` minutes, ending now:
/// (timestamp ms, total, errors) with `total` growing by 1000 a minute and
/// `errors` by `errors_per_minute(minutes_before_now)`.
fn counters(
    end_ms: i64,
    minutes: i64,
    errors_per_minute: impl Fn(i64) -> f64,
) -> (Vec<Value>, Vec<Value>) {
    let (mut total, mut errors) = (1_000_000.0, 10_000.0);
    let (mut t_out, mut e_out) = (Vec::new(), Vec::new());
    for i in 0..=minutes {
        let ago = minutes - i;
        let ts = end_ms - ago * 60_000;
        if i > 0 {
            total += 1000.0;
            errors += errors_per_minute(ago);
        }
        t_out.push(json!([ts, total]));
        e_out.push(json!([ts, errors]));
    }
    (t_out, e_out)
}

fn close(got: &Value, want: f64) -> bool {
    got.as_f64()
        .is_some_and(|g| (g - want).abs() <= 1e-9 * want.abs().max(1.0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_fires_on_a_fast_burn_not_on_a_slow_one() {
    let (receiver, received) = start_receiver().await;
    let slo = |name: &str| {
        format!(
            r#"
  - name: {name}
    service: {name}-api
    objective: 99.9
    sli:
      errors: 'requests_errors_total{{service="{name}"}}'
      total: 'requests_total{{service="{name}"}}'
    labels: {{ team: sre }}
    severities: {{ page: critical, ticket: warning }}"#
        )
    };
    let yaml = format!(
        r#"
global:
  evaluation_interval: 1s
limits:
  max_sample_age: 8h
store:
  retention: 8h
slos:{}{}{}
route:
  receiver: hook
  group_by: [alertname, slo, severity, long_window]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 4h
receivers:
  - name: hook
    webhook_configs: [{{ url: "{receiver}/hook", allowed_networks: ["127.0.0.1/32"] }}]
"#,
        slo("fast"),
        slo("slow"),
        slo("steady")
    );
    let server = start_klaxon(&yaml).await;
    let base = format!("http://{}", server.addr());
    let client = reqwest::Client::new();

    let now = now_ms();
    let minutes = 7 * 60;
    let mut series = Vec::new();
    for (name, per_minute) in [
        (
            "fast",
            Box::new(|ago: i64| if ago < 70 { 100.0 } else { 0.5 }) as Box<dyn Fn(i64) -> f64>,
        ),
        ("slow", Box::new(|_| 2.0)),
        ("steady", Box::new(|_| 0.5)),
    ] {
        let (total, errors) = counters(now, minutes, per_minute);
        series.push(
            json!({"metric": "requests_total", "labels": {"service": name}, "samples": total}),
        );
        series.push(json!({"metric": "requests_errors_total", "labels": {"service": name}, "samples": errors}));
    }
    let resp = push(&client, &base, json!({ "series": series })).await;
    assert_eq!(resp.status(), 204);

    // The fast burn pages; the slow burn files a ticket.
    let key = |n: &Value| {
        let a = &n["alerts"][0]["labels"];
        (
            a["slo"].as_str().unwrap_or("").to_owned(),
            a["severity"].as_str().unwrap_or("").to_owned(),
            a["long_window"].as_str().unwrap_or("").to_owned(),
        )
    };
    let got = eventually(
        Duration::from_secs(20),
        "a fast page and a slow ticket",
        || async {
            let all = received.all().await;
            let keys: Vec<_> = all.iter().map(key).collect();
            let has = |k: (&str, &str, &str)| {
                keys.contains(&(k.0.to_owned(), k.1.to_owned(), k.2.to_owned()))
            };
            (has(("fast", "critical", "1h")) && has(("slow", "warning", "3d"))).then_some(all)
        },
    )
    .await;
    let page = got
        .iter()
        .find(|n| key(n) == ("fast".into(), "critical".into(), "1h".into()))
        .expect("the page");
    let a = &page["alerts"][0];
    assert_eq!(a["status"], "firing");
    assert_eq!(
        a["labels"],
        json!({"alertname": "ErrorBudgetBurn", "slo": "fast", "service": "fast-api",
               "severity": "critical", "long_window": "1h", "short_window": "5m", "team": "sre"})
    );
    let ann = &a["annotations"];
    assert_eq!(ann["burn_rate"], "100.00", "{ann:#}");
    assert_eq!(ann["burn_rate_short"], "100.00", "{ann:#}");
    assert_eq!(ann["burn_rate_threshold"], "14.4");
    // Over the 7 h held: (350 × 0.5 + 70 × 100) errors / 420 000 requests
    // = 1.708 %, 17.08 times the budget.
    assert_eq!(ann["budget_consumed"], "1708.33%", "{ann:#}");
    assert_eq!(ann["time_to_exhaustion"], "now", "{ann:#}");

    // Every SLO group evaluates each second; exactly these alerts fire:
    // fast: both pages (6h burn = (290 × 0.5 + 70 × 100) / 360 000 / 0.001
    // = 19.8 > 6, 30m = 100) and both tickets; slow: the 3d ticket only
    // (2 < 3 for the 1d one).
    let expected: Vec<(String, String)> = [
        ("fast", "1d"),
        ("fast", "1h"),
        ("fast", "3d"),
        ("fast", "6h"),
        ("slow", "3d"),
    ]
    .iter()
    .map(|(s, w)| (s.to_string(), w.to_string()))
    .collect();
    eventually(
        Duration::from_secs(10),
        "exactly the expected alerts",
        || async {
            let alerts = get_json(&client, &format!("{base}/api/v1/alerts")).await;
            let mut f: Vec<(String, String)> = alerts["data"]["alerts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|a| {
                    (
                        a["labels"]["slo"].as_str().unwrap_or("").to_owned(),
                        a["labels"]["long_window"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect();
            f.sort();
            (f == expected).then_some(())
        },
    )
    .await;
    let rules = get_json(&client, &format!("{base}/api/v1/rules")).await;
    for g in rules["data"]["groups"].as_array().expect("groups") {
        for r in g["rules"].as_array().expect("rules") {
            assert_eq!(r["health"], "ok", "{r:#}");
        }
    }
    assert!(
        !received.all().await.iter().any(|n| {
            let k = key(n);
            k.0 == "slow" && k.1 == "critical" || k.0 == "steady"
        }),
        "no page for the slow burn, nothing for the steady one"
    );

    // /api/v1/slos against hand-computed numbers.
    let status = get_json(&client, &format!("{base}/api/v1/slos")).await;
    let list = status["data"].as_array().expect("slo list");
    assert_eq!(list.len(), 3);
    let steady = list.iter().find(|s| s["name"] == "steady").expect("steady");
    assert_eq!(steady["objective"], 99.9);
    assert_eq!(steady["period"], "4w2d");
    assert!(close(&steady["errorBudget"], 0.001), "{steady:#}");
    let s = &steady["series"][0];
    assert_eq!(steady["series"].as_array().map(Vec::len), Some(1));
    for w in ["5m", "30m", "1h", "2h", "6h", "1d", "3d"] {
        assert!(close(&s["burnRates"][w], 0.5), "{w}: {s:#}");
    }
    assert!(close(&s["budgetConsumed"], 0.5), "{s:#}");
    assert!(close(&s["budgetRemaining"], 0.5), "{s:#}");
    assert_eq!(s["timeToExhaustion"], "4w2d");
    let slow = list.iter().find(|s| s["name"] == "slow").expect("slow");
    let s = &slow["series"][0];
    for w in ["5m", "1h", "3d"] {
        assert!(close(&s["burnRates"][w], 2.0), "{w}: {s:#}");
    }
    assert!(close(&s["budgetRemaining"], -1.0), "{s:#}");
    assert_eq!(s["timeToExhaustion"], "now");
    server.shutdown().await;
}

#[test]
fn slo_errors_name_the_field() {
    let yaml = "slos:\n  - name: a\n    service: a\n    objective: 99.9\n    sli: { errors: x_total, total: y_total }\n  - name: b\n    service: b\n    objective: 120\n    sli: { errors: x_total, total: y_total }\n";
    let config = klaxon_host::config::Config::parse(yaml, "s.yml").expect("parses");
    let e = config.validate_static("s.yml", yaml).unwrap_err();
    assert_eq!(e.line, 6, "{e}");
    assert!(
        e.reason
            .starts_with("slos[1] (b): objective: must be a percentage"),
        "{e}"
    );
    let yaml = yaml.replace("objective: 120", "objective: 99").replace(
        "sli: { errors: x_total, total: y_total }\n  - name: b",
        "sli: { errors: 'rate(x_total[5m])', total: y_total }\n  - name: b",
    );
    let config = klaxon_host::config::Config::parse(&yaml, "s.yml").expect("parses");
    let e = config.validate_static("s.yml", &yaml).unwrap_err();
    assert_eq!(e.line, 2, "{e}");
    assert!(e.reason.starts_with("slos[0] (a): sli.errors:"), "{e}");
}
