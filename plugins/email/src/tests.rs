//! Unit tests of the email plugin: subject and bodies, config checks, TLS
//! selection and outcome mapping, through the SDK's native test transport.

use super::*;
use klaxon_sdk::testing::{self, pairs};

fn alert(model: &str, status: &str) -> Alert {
    Alert {
        status: status.into(),
        labels: pairs(&[
            ("alertname", "ScoreDrift"),
            ("model", model),
            ("model_version", "v3"),
            ("severity", "critical"),
        ]),
        annotations: pairs(&[
            ("summary", "score drift <high>"),
            ("value", "4.1"),
            ("threshold", "3"),
            ("runbook_url", "https://runbooks.example.com/drift"),
        ]),
        starts_at: "2024-05-01T10:00:00Z".into(),
        ends_at: "0001-01-01T00:00:00Z".into(),
        generator_url: "http://klaxon:9190/rules".into(),
        fingerprint: "c0ffee00c0ffee00".into(),
    }
}

/// A firing group of two alerts: grouped by alertname, common model and severity.
fn notification() -> Notification {
    Notification {
        receiver: "oncall".into(),
        status: "firing".into(),
        alerts: vec![alert("fraud", "firing"), alert("fraud", "firing")],
        group_labels: pairs(&[("alertname", "ScoreDrift")]),
        common_labels: pairs(&[
            ("alertname", "ScoreDrift"),
            ("severity", "critical"),
            ("model", "fraud"),
            ("model_version", "v3"),
        ]),
        common_annotations: vec![],
        external_url: "http://klaxon:9190".into(),
        group_key: "{}:{alertname=\"ScoreDrift\"}".into(),
        truncated_alerts: 0,
    }
}

const BASE: &str =
    r#"{"to":"oncall@example.com","from":"klaxon@example.com","smarthost":"smtp.example.com:587"}"#;

fn cfg(json: &str) -> Config {
    serde_json::from_str(json).unwrap()
}

#[test]
fn subject_matches_alertmanager_default() {
    // Group label values, then the other common labels' values, each ordered
    // by label name.
    assert_eq!(
        default_subject(&notification()),
        "[FIRING:2] ScoreDrift (fraud v3 critical)"
    );
    let mut n = notification();
    n.status = "resolved".into();
    for a in &mut n.alerts {
        a.status = "resolved".into();
    }
    n.common_labels = n.group_labels.clone();
    // No firing count when resolved; the space before the `if` stays.
    assert_eq!(default_subject(&n), "[RESOLVED] ScoreDrift ");
    // One of two firing.
    let mut n = notification();
    n.alerts[1].status = "resolved".into();
    assert!(default_subject(&n).starts_with("[FIRING:1] ScoreDrift "));
}

#[test]
fn bodies_answer_the_on_call_questions() {
    let msg = message(&cfg(BASE), &notification()).unwrap();
    let text = msg.text_body.unwrap();
    let html = msg.html_body.unwrap();
    for needle in [
        "ScoreDrift on model fraud (version v3)",
        "value 4.1 vs threshold 3",
        "2024-05-01T10:00:00Z",
        "https://runbooks.example.com/drift",
    ] {
        assert!(text.contains(needle), "text lacks {needle}: {text}");
        assert!(html.contains(needle), "html lacks {needle}: {html}");
    }
    assert!(html.contains(r#"<a href="https://runbooks.example.com/drift">"#));
    assert!(html.contains("score drift &lt;high&gt;"), "escaped: {html}");
    assert_eq!(msg.to, vec!["oncall@example.com"]);
    assert_eq!(msg.subject, "[FIRING:2] ScoreDrift (fraud v3 critical)");
}

#[test]
fn user_templates() {
    let c = cfg(r#"{"to":"a@x, B <b@y>","from":"k@x","smarthost":"h:25",
        "headers":{"Subject":"{{ .Status | toUpper }} {{ .GroupLabels.alertname }} {{ len .Alerts }}","X-Team":"ml"},
        "text":"{{ range .Alerts }}{{ .Labels.model }};{{ end }}","html":""}"#);
    let msg = message(&c, &notification()).unwrap();
    assert_eq!(msg.subject, "FIRING ScoreDrift 2");
    assert_eq!(msg.text_body.as_deref(), Some("fraud;fraud;"));
    assert_eq!(msg.html_body, None);
    assert_eq!(msg.headers, vec![("X-Team".to_owned(), "ml".to_owned())]);
    assert_eq!(msg.to, vec!["a@x", "B <b@y>"]);
}

#[test]
fn tls_mode_from_config() {
    let server = |json: &str| cfg(json).server().unwrap();
    let s = server(BASE);
    assert_eq!(
        (s.host.as_str(), s.port, s.tls),
        ("smtp.example.com", 587, TlsMode::StartTls)
    );
    assert_eq!(s.hello.as_deref(), Some("localhost"));
    let s = server(
        r#"{"to":"a@x","from":"k@x","smarthost":"smtp.example.com:465","require_tls":false}"#,
    );
    assert_eq!(
        s.tls,
        TlsMode::Tls,
        "465 is implicit TLS whatever require_tls says"
    );
    let s = server(r#"{"to":"a@x","from":"k@x","smarthost":"127.0.0.1:2525","require_tls":false}"#);
    assert_eq!(s.tls, TlsMode::None);
    let s = server(
        r#"{"to":"a@x","from":"k@x","smarthost":"[::1]:25","auth_username":"u","auth_password":"p","hello":"me"}"#,
    );
    assert_eq!((s.host.as_str(), s.tls), ("::1", TlsMode::StartTls));
    assert_eq!(
        (
            s.username.as_deref(),
            s.password.as_deref(),
            s.hello.as_deref()
        ),
        (Some("u"), Some("p"), Some("me"))
    );
}

#[test]
fn config_checks() {
    let check = testing::check_notifier_config::<Email>;
    assert!(check(BASE).is_ok());
    assert!(check(r#"{"to":"a@x","from":"k@x","smarthost":"h:25","auth_identity":"id","tls_config":{"insecure_skip_verify":false},"send_resolved":true}"#).is_ok());
    for (json, expected) in [
        (r#"{}"#, "missing field `to`"),
        (r#"{"to":"a@x","from":"k@x"}"#, "smarthost: required"),
        (
            r#"{"to":"a@x","from":"k@x","smarthost":"h"}"#,
            "smarthost: \"h\" is not host:port",
        ),
        (r#"{"to":"a@x","smarthost":"h:25"}"#, "from: required"),
        (
            r#"{"to":" , ","from":"k@x","smarthost":"h:25"}"#,
            "to: at least one recipient",
        ),
        (
            r#"{"to":"nobody","from":"k@x","smarthost":"h:25"}"#,
            "to: \"nobody\" is not an email address",
        ),
        (
            r#"{"to":"a@x","from":"k@x","smarthost":"h:25","tls_config":{"insecure_skip_verify":true}}"#,
            "insecure_skip_verify: not supported",
        ),
        (
            r#"{"to":"a@x","from":"k@x","smarthost":"h:25","tls_config":{"ca_file":"/x"}}"#,
            "unknown field `ca_file`",
        ),
        (
            r#"{"to":"a@x","from":"k@x","smarthost":"h:25","auth_password_file":"/x"}"#,
            "unknown field `auth_password_file`",
        ),
        (
            r#"{"to":"a@x","from":"k@x","smarthost":"h:25","headers":{"To":"x@y"}}"#,
            "headers.To: set by the plugin",
        ),
        (
            r#"{"to":"a@x","from":"k@x","smarthost":"h:25","headers":{"Subject":"{{ .Status"}}"#,
            "headers.Subject:",
        ),
        (
            r#"{"to":"a@x","from":"k@x","smarthost":"h:25","html":"","text":""}"#,
            "",
        ),
    ] {
        match check(json) {
            Err(err) => assert!(err.contains(expected), "{json}: {err}"),
            Ok(()) => assert!(
                message(&cfg(json), &notification()).is_err(),
                "{json} should be refused"
            ),
        }
    }
}

#[test]
fn outcomes() {
    let run = |answer: Result<(), SmtpError>| {
        testing::set_smtp_handler(move |_, _| answer.clone());
        let r = testing::run_notifier::<Email>(
            r#"{"to":"a@x","from":"k@x","smarthost":"h:25","auth_username":"u","auth_password":"hunter2"}"#,
            &notification(),
        );
        let sent = testing::take_smtp_messages();
        assert_eq!(sent.len(), 1);
        r
    };
    assert_eq!(run(Ok(())).unwrap().status_code, 250);
    for (answer, retryable) in [
        (SmtpError::Transient(451, "try later".into()), true),
        (SmtpError::Timeout, true),
        (SmtpError::Connection("reset".into()), true),
        (SmtpError::Rejected(550, "no such user".into()), false),
        (SmtpError::Denied("not allowed".into()), false),
        (SmtpError::Invalid("bad from".into()), false),
    ] {
        let err = run(Err(answer.clone())).unwrap_err();
        assert_eq!(err.is_retryable(), retryable, "{answer:?}");
    }
    // A server echoing the password does not put it in the delivery log.
    let err = run(Err(SmtpError::Rejected(535, "bad password hunter2".into()))).unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn password_stays_out_of_config_errors() {
    let err = testing::check_notifier_config::<Email>(
        r#"{"to":"a@x","from":"k@x","smarthost":"h:25","auth_password":"hunter2"}"#,
    )
    .unwrap_err();
    assert!(err.contains("auth_password: needs auth_username") && !err.contains("hunter2"));
}

#[test]
fn schema_is_json() {
    let schema: serde_json::Value = serde_json::from_str(&Email::info().config_schema).unwrap();
    assert_eq!(schema["required"], serde_json::json!(["to"]));
}
