//! The `email` stock notifier end to end: alerts posted to a running Klaxon
//! (`POST /api/v2/alerts`) are routed to an `email_configs` receiver and sent
//! through the host's `smtp` capability to a tiny SMTP server written here
//! (plain SMTP, no TLS). The test checks the envelope, the subject and both
//! bodies, AUTH PLAIN, a 451 that is retried, a 550 that is not, and that a
//! required STARTTLS the server does not offer sends nothing in clear.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Mutex;

/// One message as the server saw it.
#[derive(Debug, Clone, Default)]
struct Mail {
    from: String,
    rcpt: Vec<String>,
    /// Decoded `AUTH PLAIN` credentials (`authzid\0user\0password`).
    auth: Option<String>,
    data: String,
}

/// What the server recorded: every DATA transaction, whatever its reply.
#[derive(Clone, Default)]
struct Mailbox {
    mails: Arc<Mutex<Vec<Mail>>>,
}

/// A minimal SMTP server on 127.0.0.1: answers the final DATA of the n-th
/// message with `replies[n]` (250 once they run out). Returns its port.
async fn smtp_server(replies: Vec<&'static str>) -> (u16, Mailbox) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind smtp");
    let port = listener.local_addr().expect("addr").port();
    let mailbox = Mailbox::default();
    let replies = Arc::new(replies);
    let mb = mailbox.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let mb = mb.clone();
            let replies = replies.clone();
            tokio::spawn(async move {
                let _ = session(sock, mb, replies).await;
            });
        }
    });
    (port, mailbox)
}

async fn session(
    sock: tokio::net::TcpStream,
    mb: Mailbox,
    replies: Arc<Vec<&'static str>>,
) -> std::io::Result<()> {
    let (r, mut w) = sock.into_split();
    let mut lines = BufReader::new(r).lines();
    w.write_all(b"220 test.local ESMTP ready\r\n").await?;
    let mut mail = Mail::default();
    let mut auth = None;
    while let Some(line) = lines.next_line().await? {
        let upper = line.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            "250-test.local\r\n250-AUTH PLAIN\r\n250 8BITMIME".into()
        } else if upper.starts_with("HELO") {
            "250 test.local".into()
        } else if upper.starts_with("AUTH PLAIN ") {
            auth = line.get("AUTH PLAIN ".len()..).map(decode_base64);
            "235 2.7.0 Authentication successful".into()
        } else if upper.starts_with("MAIL FROM:") {
            mail = Mail {
                from: angle(&line),
                auth: auth.clone(),
                ..Mail::default()
            };
            "250 OK".into()
        } else if upper.starts_with("RCPT TO:") {
            mail.rcpt.push(angle(&line));
            "250 OK".into()
        } else if upper == "DATA" {
            w.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                .await?;
            while let Some(l) = lines.next_line().await? {
                if l == "." {
                    break;
                }
                mail.data.push_str(l.strip_prefix('.').unwrap_or(&l));
                mail.data.push('\n');
            }
            let mut mails = mb.mails.lock().await;
            let n = mails.len();
            mails.push(std::mem::take(&mut mail));
            replies.get(n).copied().unwrap_or("250 OK queued").into()
        } else if upper == "RSET" || upper == "NOOP" {
            "250 OK".into()
        } else if upper == "QUIT" {
            w.write_all(b"221 Bye\r\n").await?;
            return Ok(());
        } else {
            "502 Command not implemented".into()
        };
        w.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
    Ok(())
}

/// The address between `<` and `>`.
fn angle(line: &str) -> String {
    let start = line.find('<').map_or(0, |i| i + 1);
    let end = line.rfind('>').unwrap_or(line.len());
    line.get(start..end).unwrap_or_default().to_string()
}

fn decode_base64(s: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.trim().bytes().filter(|&c| c != b'=') {
        let Some(v) = ALPHABET.iter().position(|&a| a == c) else {
            continue;
        };
        bits = (bits << 6) | v as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Undoes quoted-printable soft line breaks and `=XX` escapes, enough to
/// search the decoded parts for text.
fn unfold_qp(s: &str) -> String {
    let joined = s.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn config(port: u16, extra: &str) -> String {
    format!(
        r#"
global:
  smtp_smarthost: "127.0.0.1:{port}"
  smtp_from: "Klaxon <klaxon@example.com>"
  smtp_require_tls: false
notify:
  initial_backoff: 100ms
  max_backoff: 500ms
  give_up_after: 30s
route:
  receiver: mail
  group_by: [alertname]
  group_wait: 100ms
  group_interval: 1h
  repeat_interval: 1h
receivers:
  - name: mail
    email_configs:
      - to: "oncall@example.com, ml-team@example.com"
        {extra}
"#
    )
}

async fn post_alert(base: &str) {
    let alerts = json!([{
        "labels": {
            "alertname": "ScoreDrift",
            "model": "fraud-detector",
            "model_version": "v7",
            "severity": "critical"
        },
        "annotations": {
            "summary": "prediction score drifted",
            "value": "4.2",
            "threshold": "3",
            "runbook_url": "https://runbooks.example.com/score-drift"
        },
        "generatorURL": "http://prometheus.example.com/graph"
    }]);
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v2/alerts"))
        .json(&alerts)
        .send()
        .await
        .expect("POST /api/v2/alerts");
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
}

async fn delivery_log(base: &str) -> Vec<Value> {
    get_json(
        &reqwest::Client::new(),
        &format!("{base}/api/v1/notifications"),
    )
    .await["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn wait_log(base: &str, outcome: &str) -> Vec<Value> {
    eventually(Duration::from_secs(20), outcome, || async {
        let l = delivery_log(base).await;
        l.iter().any(|e| e["outcome"] == outcome).then_some(l)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_is_mailed_with_subject_bodies_and_auth() {
    let (port, mailbox) = smtp_server(vec![]).await;
    let server = start_klaxon(&config(
        port,
        r#"auth_username: klaxon
        auth_password: "hunter2-secret"
        hello: klaxon.test"#,
    ))
    .await;
    let base = format!("http://{}", server.addr());
    post_alert(&base).await;
    let log = wait_log(&base, "delivered").await;
    let mails = mailbox.mails.lock().await.clone();
    assert_eq!(mails.len(), 1, "{mails:#?}");
    let mail = &mails[0];
    assert_eq!(mail.from, "klaxon@example.com");
    assert_eq!(mail.rcpt, ["oncall@example.com", "ml-team@example.com"]);
    assert_eq!(
        mail.auth.as_deref(),
        Some("\0klaxon\0hunter2-secret"),
        "AUTH PLAIN"
    );
    let data = unfold_qp(&mail.data);
    assert!(
        data.lines()
            .any(|l| l == "Subject: [FIRING:1] ScoreDrift (fraud-detector v7 critical)"),
        "{data}"
    );
    assert!(data.contains("multipart/alternative"), "{data}");
    assert!(data.contains("Content-Type: text/plain"), "{data}");
    assert!(data.contains("Content-Type: text/html"), "{data}");
    // Both parts: what broke, how bad, the runbook (a link in HTML).
    for needle in [
        "ScoreDrift on model fraud-detector (version v7)",
        "value 4.2 vs threshold 3",
        "Runbook:     https://runbooks.example.com/score-drift",
        r#"<a href="https://runbooks.example.com/score-drift">"#,
    ] {
        assert!(data.contains(needle), "lacks {needle:?}: {data}");
    }
    // The password reached the server and nowhere else.
    assert!(!data.contains("hunter2"));
    assert!(
        !serde_json::to_string(&log)
            .unwrap_or_default()
            .contains("hunter2")
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_451_is_retried_until_accepted() {
    let (port, mailbox) = smtp_server(vec!["451 4.3.0 try again later"]).await;
    let server = start_klaxon(&config(port, "")).await;
    let base = format!("http://{}", server.addr());
    post_alert(&base).await;
    let log = wait_log(&base, "delivered").await;
    let outcomes: Vec<&str> = log.iter().filter_map(|e| e["outcome"].as_str()).collect();
    assert_eq!(outcomes, ["retrying", "delivered"], "{log:#?}");
    assert!(
        log[0]["detail"].as_str().unwrap_or("").contains("451"),
        "{}",
        log[0]
    );
    assert_eq!(mailbox.mails.lock().await.len(), 2);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_550_is_not_retried() {
    let (port, mailbox) = smtp_server(vec!["550 5.1.1 mailbox unavailable"]).await;
    let server = start_klaxon(&config(port, "")).await;
    let base = format!("http://{}", server.addr());
    post_alert(&base).await;
    let log = wait_log(&base, "failed").await;
    assert!(
        log[0]["detail"].as_str().unwrap_or("").contains("550"),
        "{}",
        log[0]
    );
    // No retry follows a permanent failure.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(mailbox.mails.lock().await.len(), 1);
    assert_eq!(delivery_log(&base).await.len(), 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_starttls_is_never_downgraded_to_plain() {
    // The server offers no STARTTLS; `require_tls: true` must not send in clear.
    let (port, mailbox) = smtp_server(vec![]).await;
    let server = start_klaxon(&config(port, "require_tls: true")).await;
    let base = format!("http://{}", server.addr());
    post_alert(&base).await;
    let log = wait_log(&base, "retrying").await;
    assert!(log.iter().all(|e| e["outcome"] != "delivered"), "{log:#?}");
    assert!(mailbox.mails.lock().await.is_empty());
    server.shutdown().await;
}
