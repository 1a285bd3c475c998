//! Shared pieces of the end-to-end tests: a real local webhook receiver, a
//! Klaxon host on an ephemeral port, and HTTP helpers.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;
use std::process::Child;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use klaxon_host::config::Config;
use klaxon_host::server::{Server, ServerOptions, start};
use serde_json::Value;
use tokio::sync::Mutex;

/// What the receiver got: every request body, in arrival order.
#[derive(Clone, Default)]
pub struct Received {
    pub bodies: Arc<Mutex<Vec<Value>>>,
}

impl Received {
    pub async fn all(&self) -> Vec<Value> {
        self.bodies.lock().await.clone()
    }

    /// Waits until at least `n` requests arrived, or panics after `within`.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let got = self.all().await;
            if got.len() >= n {
                return got;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "expected {n} notifications within {within:?}, got {}: {got:#?}",
                    got.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A local webhook receiver answering 200 to `POST /hook`. Returns its base URL.
pub async fn start_receiver() -> (String, Received) {
    start_slow_receiver(Duration::ZERO).await
}

/// Like [`start_receiver`], answering each POST `delay` after it arrived
/// (the body is recorded when it is answered).
pub async fn start_slow_receiver(delay: Duration) -> (String, Received) {
    let received = Received::default();
    async fn hook(
        State((r, delay)): State<(Received, Duration)>,
        Json(body): Json<Value>,
    ) -> StatusCode {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        r.bodies.lock().await.push(body);
        StatusCode::OK
    }
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state((received.clone(), delay));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let addr = listener.local_addr().expect("receiver addr");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("receiver serves");
    });
    (format!("http://{addr}"), received)
}

/// Writes the test fixture plugin `name` (`misbehave`, `sneaky`, …) into
/// `dir` as `NAME.wasm`, as a user's plugin file would be; its path.
pub fn fixture_file(dir: &std::path::Path, name: &str) -> PathBuf {
    let (_, bytes) = klaxon_host::plugins::stock::FIXTURES
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("fixture {name} built"));
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, bytes).expect("write fixture");
    path
}

/// Starts Klaxon with `yaml` on 127.0.0.1:0.
pub async fn start_klaxon(yaml: &str) -> Server {
    let config = Config::parse(yaml, "test.yml").expect("test config parses");
    start(ServerOptions {
        listen: "127.0.0.1:0".parse().expect("addr"),
        config,
        config_file: "test.yml".into(),
        config_text: yaml.into(),
        config_path: None,
        data_dir: None,
    })
    .await
    .expect("klaxon starts")
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

pub async fn push(client: &reqwest::Client, base: &str, body: Value) -> reqwest::Response {
    client
        .post(format!("{base}/api/v1/push"))
        .json(&body)
        .send()
        .await
        .expect("push request")
}

pub async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    client
        .get(url)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON body")
}

/// Polls `f` until it returns `Some`, or panics after `within` with `what`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A program from a Debian package, at `/usr/bin/<name>` unless `env`
/// points elsewhere; panics with the install command when it is missing.
pub fn debian_bin(name: &str, env: &str, package: &str) -> PathBuf {
    let path = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("/usr/bin/{name}")));
    assert!(
        path.is_file(),
        "{} is missing: this test needs it. Install it with \
         `apt-get install -y {package}` (as .ci/run does) or point {env} at one.",
        path.display()
    );
    path
}

/// A running outside process, killed when dropped (also on a panic, when
/// its log is printed).
pub struct Process {
    pub child: Child,
    pub log: PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- {} log ---\n{log}", self.log.display());
        }
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
