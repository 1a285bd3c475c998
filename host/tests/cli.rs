//! The `klaxon` binary's offline commands: `check`, `plugin run` and `test rules`.

use std::process::Command;

fn klaxon() -> Command {
    Command::new(env!("CARGO_BIN_EXE_klaxon"))
}

#[test]
fn check_accepts_a_good_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.yml");
    std::fs::write(
        &path,
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        query: 'up{job=\"x\"}'\n        window: 5m\n        detector: threshold\n        config: { op: \">\", value: 1 }\n",
    )
    .unwrap();
    let out = klaxon()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK (1 groups, 1 rules, 0 receivers)"));
}

#[test]
fn check_names_file_line_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yml");
    let cases = [
        // (config, line, reason fragment)
        (
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        query: up\n        window: 5m\n        detector: nope\n",
            4,
            "no plugin named `nope`",
        ),
        (
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        query: up\n        window: 5m\n        detector: threshold\n        config: { op: \"~\", value: 1 }\n",
            4,
            "op",
        ),
        (
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        query: up\n        window: five\n        detector: threshold\n",
            6,
            "duration",
        ),
        (
            "route:\n  receiver: missing\nreceivers:\n  - name: r\n",
            2,
            "undefined receiver",
        ),
    ];
    for (text, line, reason) in cases {
        std::fs::write(&path, text).unwrap();
        let out = klaxon()
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        let want = format!("{}:{line}:", path.display());
        assert!(err.contains(&want), "expected `{want}` in: {err}");
        assert!(err.contains(reason), "expected `{reason}` in: {err}");
    }
}

#[test]
fn plugin_run_prints_verdicts_at_full_precision() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("batch.json");
    std::fs::write(
        &input,
        r#"[{"labels":{"model_name":"a"},"window":{"timestamps_ms":[1,2,3],"values":[0.1,0.2,0.30000000000000004]}},
            {"labels":{"model_name":"b"},"window":{"timestamps_ms":[1,2],"values":[0.5,"NaN"]}}]"#,
    )
    .unwrap();
    let out = klaxon()
        .args([
            "plugin",
            "run",
            "threshold",
            "--config",
            r#"{"op":">","value":0.25,"reduce":"max"}"#,
            "--input",
        ])
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["firing"], true);
    assert_eq!(v[0]["score"], 0.30000000000000004);
    assert_eq!(v[1]["firing"], true);
    assert_eq!(v[1]["score"], 0.5);
    assert!(v[0]["summary"].as_str().is_some());
}

#[test]
fn plugin_run_rejects_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("batch.json");
    std::fs::write(&input, r#"[{"window":{"timestamps_ms":[1],"values":[1]}}]"#).unwrap();
    let out = klaxon()
        .args([
            "plugin",
            "run",
            "zscore",
            "--config",
            r#"{"threshold":"high"}"#,
            "--input",
        ])
        .arg(&input)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("threshold"));
}

fn examples_rules() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/rules")
}

#[test]
fn test_rules_passes_promtool_format_tests() {
    let out = klaxon()
        .args(["test", "rules"])
        .arg(examples_rules().join("tests.yml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Unit Testing:  ") && stdout.contains("  SUCCESS"),
        "{stdout}"
    );
}

#[test]
fn test_rules_reports_a_wrong_expectation_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        examples_rules().join("alerts.yml"),
        dir.path().join("alerts.yml"),
    )
    .unwrap();
    let tests = std::fs::read_to_string(examples_rules().join("tests.yml"))
        .unwrap()
        .replace(
            "amount is null 0.3 of the time",
            "amount is null 0.4 of the time",
        )
        .replace(
            "value: 50\n          - labels: 'go_goroutines{job=\"node_exporter\"",
            "value: 51\n          - labels: 'go_goroutines{job=\"node_exporter\"",
        );
    let path = dir.path().join("tests.yml");
    std::fs::write(&path, tests).unwrap();
    let out = klaxon()
        .args(["test", "rules"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("  FAILED:"), "{stdout}");
    // The alert test names the alert, the time, and both sides.
    assert!(
        stdout.contains("alertname: FeatureNullRateHigh, time: 33m"),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#"Annotations:{summary="amount is null 0.4 of the time"}"#),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#"Annotations:{summary="amount is null 0.3 of the time"}"#),
        "{stdout}"
    );
    // The expression test too.
    assert!(
        stdout.contains(r#"expr: "go_goroutines > 5", time: 4m"#),
        "{stdout}"
    );
}
