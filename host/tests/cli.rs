//! The `klaxon` binary's offline commands: `check` and `plugin run`.

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
