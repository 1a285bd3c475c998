//! Plugin lifecycle on a running Klaxon: versions uploaded through the API
//! and dropped into the plugins directory go through one load pipeline;
//! refused versions (not a component, another WIT version, a failing
//! self-test, a bad signature) leave the live one in place and say why;
//! rollback and removal; and a detector swapped 100 times while its rule is
//! evaluated continuously, with no failed evaluation and no alert transition.
//!
//! The detector is the `variant` test fixture: its behaviour is a marker in
//! its data segment, patched here to make distinguishable versions.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use klaxon_host::config::Config;
use klaxon_host::plugins::signing;
use klaxon_host::plugins::stock;
use klaxon_host::server::{Server, ServerOptions, start};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const BUILT_MARKER: &str = "KLAXON-VARIANT-FIXTURE=F00000001";

/// The `variant` component with its marker set to `mode` and `n`: firing
/// (`F`) or not (`Q`) with score `n`.
fn variant(mode: char, n: u32) -> Vec<u8> {
    let built = stock::bytes("variant").expect("the variant fixture is embedded");
    let marker = format!("KLAXON-VARIANT-FIXTURE={mode}{n:08}");
    replace_all(built, BUILT_MARKER.as_bytes(), marker.as_bytes(), 1)
}

/// `bytes` with every occurrence of `from` replaced by `to` (same length);
/// asserts there are at least `at_least` occurrences.
fn replace_all(bytes: &[u8], from: &[u8], to: &[u8], at_least: usize) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut out = bytes.to_vec();
    let mut found = 0;
    let mut i = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
            found += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    assert!(
        found >= at_least,
        "{found} occurrences of {:?}",
        String::from_utf8_lossy(from)
    );
    out
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn config(hook: &str, dir: &Path, extra_plugins: &str) -> String {
    format!(
        r#"plugins:
  dir: "{dir}"
{extra_plugins}groups:
  - name: ml
    interval: 50ms
    rules:
      - alert: VariantFires
        query: model_score
        window: 10m
        detector: variant
        config: {{}}
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 50ms
  group_interval: 100ms
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs: [{{ url: "{hook}/hook", allowed_networks: ["127.0.0.1/32"] }}]
"#,
        dir = dir.display()
    )
}

async fn start_with(yaml: &str, data_dir: &Path) -> Server {
    start(ServerOptions {
        listen: "127.0.0.1:0".parse().expect("addr"),
        config: Config::parse(yaml, "lifecycle.yml").expect("config parses"),
        config_file: "lifecycle.yml".into(),
        config_text: yaml.into(),
        config_path: None,
        data_dir: Some(data_dir.to_path_buf()),
    })
    .await
    .expect("klaxon starts")
}

/// Writes `bytes` to `dir/NAME.wasm` the recommended way: a temporary name, then a rename.
fn drop_component(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.wasm.tmp"));
    std::fs::write(&tmp, bytes).expect("write temp component");
    std::fs::rename(&tmp, dir.join(format!("{name}.wasm"))).expect("rename component");
}

struct Harness {
    server: Server,
    base: String,
    client: reqwest::Client,
    dir: PathBuf,
    _data: tempfile::TempDir,
}

impl Harness {
    /// Klaxon with `variant` v1 (firing, score 1) in its plugins directory
    /// and one series for the rule to judge.
    async fn new(hook: &str, extra_plugins: &str, prepare: impl FnOnce(&Path)) -> Self {
        let data = tempfile::tempdir().expect("tempdir");
        let dir = data.path().join("plugins");
        std::fs::create_dir_all(&dir).expect("plugins dir");
        drop_component(&dir, "variant", &variant('F', 1));
        prepare(&dir);
        let yaml = config(hook, &dir, extra_plugins);
        let server = start_with(&yaml, data.path()).await;
        let base = format!("http://{}", server.addr());
        let client = reqwest::Client::new();
        let pushed = push(
            &client,
            &base,
            json!({"series": [{"metric": "model_score", "labels": {"model_name": "fraud"}, "value": 0.5}]}),
        )
        .await;
        assert_eq!(pushed.status(), 204);
        Harness {
            server,
            base,
            client,
            dir,
            _data: data,
        }
    }

    async fn put(&self, name: &str, bytes: Vec<u8>, signature: Option<&str>) -> (u16, Value) {
        let mut req = self
            .client
            .put(format!("{}/api/v1/plugins/{name}", self.base))
            .body(bytes);
        if let Some(sig) = signature {
            req = req.header("x-klaxon-signature", sig.trim());
        }
        let resp = req.send().await.expect("PUT");
        (resp.status().as_u16(), resp.json().await.expect("JSON"))
    }

    async fn post(&self, path: &str) -> (u16, Value) {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .send()
            .await
            .expect("POST");
        (resp.status().as_u16(), resp.json().await.expect("JSON"))
    }

    async fn plugin(&self, name: &str) -> Value {
        let list = get_json(&self.client, &format!("{}/api/v1/plugins", self.base)).await;
        list["data"]
            .as_array()
            .expect("plugin list")
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    }

    async fn live_hash(&self, name: &str) -> String {
        self.plugin(name).await["hash"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn wait_live(&self, name: &str, hash: &str) {
        eventually(
            Duration::from_secs(20),
            &format!("{name} live at {hash}"),
            || async { (self.live_hash(name).await == hash).then_some(()) },
        )
        .await
    }

    async fn rule(&self) -> Value {
        let rules = get_json(&self.client, &format!("{}/api/v1/rules", self.base)).await;
        rules["data"]["groups"][0]["rules"][0].clone()
    }

    /// The alert's value after the first evaluation that started after now.
    async fn value_after_next_evaluation(&self) -> String {
        let after = chrono::Utc::now();
        let rule = eventually(
            Duration::from_secs(10),
            "an evaluation after the swap",
            || async {
                let rule = self.rule().await;
                let last = rule["lastEvaluation"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())?;
                (last > after).then_some(rule)
            },
        )
        .await;
        rule["alerts"][0]["value"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_versions_rollback_and_delete() {
    let (hook, _got) = start_receiver().await;
    let h = Harness::new(&hook, "", |_| {}).await;
    let v1 = variant('F', 1);
    h.wait_live("variant", &sha(&v1)).await;
    assert_eq!(h.value_after_next_evaluation().await, "1");

    // A new version goes live; the response names it and the one it replaced.
    let v2 = variant('F', 2);
    let (status, body) = h.put("variant", v2.clone(), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["hash"], sha(&v2));
    assert_eq!(body["data"]["previous"], sha(&v1));
    assert_eq!(body["data"]["unchanged"], false);
    assert_eq!(h.value_after_next_evaluation().await, "2");
    // The same bytes again change nothing.
    let (status, body) = h.put("variant", v2.clone(), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["unchanged"], true);

    // Refused versions leave v2 live, with the reason.
    let (status, body) = h.put("variant", b"\0asm not really".to_vec(), None).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("cannot compile plugin"),
        "{body}"
    );
    let newer_wit = replace_all(
        &v2,
        b"klaxon:plugin/types@0.1.0",
        b"klaxon:plugin/types@0.9.0",
        1,
    );
    let (status, body) = h.put("variant", newer_wit, None).await;
    assert_eq!(status, 400, "{body}");
    let err = body["error"].as_str().unwrap();
    assert!(
        err.contains("klaxon:plugin@0.9.0") && err.contains("klaxon:plugin@0.1.0"),
        "{err}"
    );
    // A component calling itself another name is refused too.
    let (status, body) = h.put("zscore", v2.clone(), None).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("calls itself `variant`"),
        "{body}"
    );
    assert_eq!(h.live_hash("variant").await, sha(&v2));
    let failure = &h.plugin("zscore").await["lastLoadError"];
    assert_eq!(failure["hash"], sha(&v2), "{failure}");

    // Both versions are kept, v2 live.
    let versions = get_json(
        &h.client,
        &format!("{}/api/v1/plugins/variant/versions", h.base),
    )
    .await;
    let hashes: Vec<&str> = versions["data"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["hash"].as_str().unwrap())
        .collect();
    assert_eq!(hashes, [sha(&v1), sha(&v2)]);
    assert_eq!(versions["data"]["live"], sha(&v2));

    // Rollback to the previous version, then forward again by hash prefix.
    let (status, body) = h.post("/api/v1/plugins/variant/rollback").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["from"], sha(&v2));
    assert_eq!(body["data"]["to"], sha(&v1));
    assert_eq!(h.value_after_next_evaluation().await, "1");
    let prefix = &sha(&v2)[..12];
    let (status, body) = h
        .post(&format!(
            "/api/v1/plugins/variant/rollback?version={prefix}"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["to"], sha(&v2));
    assert_eq!(h.value_after_next_evaluation().await, "2");
    let (status, _) = h
        .post("/api/v1/plugins/variant/rollback?version=0123456789abcdef")
        .await;
    assert_eq!(status, 404);

    // The live component can be exported.
    let exported = h
        .client
        .get(format!("{}/api/v1/plugins/variant/component", h.base))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(sha(&exported), sha(&v2));

    // Health of the live version.
    let p = h.plugin("variant").await;
    let stats = &p["stats"];
    assert!(stats["calls"].as_u64().unwrap() > 0, "{p}");
    assert_eq!(stats["errors"], 0, "{p}");
    assert!(stats["p50_call_micros"].as_f64().unwrap() > 0.0, "{p}");
    assert!(
        stats["p99_call_micros"].as_f64().unwrap() >= stats["p50_call_micros"].as_f64().unwrap()
    );
    assert!(stats["peak_memory_bytes"].as_u64().unwrap() > 0, "{p}");

    // Removal is refused while used, and lists the users.
    let del = |name: &str| {
        h.client
            .delete(format!("{}/api/v1/plugins/{name}", h.base))
            .send()
    };
    let resp = del("variant").await.unwrap();
    assert_eq!(resp.status(), 409);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("rule `VariantFires`"),
        "{body}"
    );
    let resp = del("webhook").await.unwrap();
    assert_eq!(resp.status(), 409);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("receiver `hook`"),
        "{body}"
    );
    let resp = del("console").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(h.plugin("console").await, Value::Null);
    assert_eq!(del("console").await.unwrap().status(), 404);

    // No evaluation failed along the way.
    assert_eq!(h.rule().await["evaluationFailures"], 0);
    h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_versions_are_cached_on_disk_across_restarts() {
    let (hook, _got) = start_receiver().await;
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("plugins");
    std::fs::create_dir_all(&dir).unwrap();
    let v7 = variant('F', 7);
    drop_component(&dir, "variant", &v7);
    let yaml = config(&hook, &dir, "");
    let server = start_with(&yaml, data.path()).await;
    let client = reqwest::Client::new();
    let list = get_json(&client, &format!("http://{}/api/v1/plugins", server.addr())).await;
    let variant = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "variant")
        .unwrap()
        .clone();
    assert_eq!(variant["hash"], sha(&v7));
    assert_eq!(variant["fromCache"], false, "first load compiles");
    let cached: Vec<_> = std::fs::read_dir(data.path().join("plugin-cache"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&sha(&v7)))
        .collect();
    assert_eq!(cached.len(), 1);
    server.shutdown().await;

    let server = start_with(&yaml, data.path()).await;
    let list = get_json(&client, &format!("http://{}/api/v1/plugins", server.addr())).await;
    let variant = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "variant")
        .unwrap()
        .clone();
    assert_eq!(variant["hash"], sha(&v7));
    assert_eq!(
        variant["fromCache"], true,
        "a restart loads the compiled component"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_drops_partial_writes_and_self_tests() {
    let (hook, _got) = start_receiver().await;
    let h = Harness::new(&hook, "", |_| {}).await;
    h.wait_live("variant", &sha(&variant('F', 1))).await;

    // Written under a temporary name and renamed: loaded.
    let v2 = variant('F', 2);
    drop_component(&h.dir, "variant", &v2);
    h.wait_live("variant", &sha(&v2)).await;
    assert_eq!(h.value_after_next_evaluation().await, "2");

    // Half a file written in place and left there: refused (it does not
    // compile), v2 stays live.
    let v3 = variant('F', 3);
    let half = &v3[..v3.len() / 2];
    std::fs::write(h.dir.join("variant.wasm"), half).unwrap();
    let failure = eventually(Duration::from_secs(20), "the half file refused", || async {
        let f = h.plugin("variant").await["lastLoadError"].clone();
        (f["hash"] == sha(half)).then_some(f)
    })
    .await;
    assert!(
        failure["error"]
            .as_str()
            .unwrap()
            .contains("cannot compile"),
        "{failure}"
    );
    assert_eq!(h.live_hash("variant").await, sha(&v2));
    // The rest of the file arrives: the whole component loads.
    std::fs::write(h.dir.join("variant.wasm"), &v3).unwrap();
    h.wait_live("variant", &sha(&v3)).await;
    assert_eq!(h.value_after_next_evaluation().await, "3");

    // A manifest whose self-test the version fails keeps it out.
    let v4 = variant('Q', 4);
    std::fs::write(
        h.dir.join("variant.toml"),
        "[[self_test]]\nname = \"fires on anything\"\nvalues = [1.0, 2.0]\nfiring = true\n",
    )
    .unwrap();
    drop_component(&h.dir, "variant", &v4);
    let failure = eventually(Duration::from_secs(20), "the self-test failure", || async {
        let f = h.plugin("variant").await["lastLoadError"].clone();
        (f["hash"] == sha(&v4)).then_some(f)
    })
    .await;
    let err = failure["error"].as_str().unwrap();
    assert!(
        err.contains("self-test `fires on anything`") && err.contains("expected firing=true"),
        "{err}"
    );
    assert_eq!(h.live_hash("variant").await, sha(&v3));
    // A version that passes it loads, with the manifest's limits.
    let v5 = variant('F', 5);
    std::fs::write(
        h.dir.join("variant.toml"),
        "[limits]\ntimeout = \"250ms\"\n\n[[self_test]]\nname = \"fires on anything\"\nvalues = [1.0, 2.0]\nfiring = true\n",
    )
    .unwrap();
    drop_component(&h.dir, "variant", &v5);
    h.wait_live("variant", &sha(&v5)).await;
    assert_eq!(h.plugin("variant").await["limits"]["timeout"], "250ms");
    assert_eq!(h.plugin("variant").await["lastLoadError"], Value::Null);

    let versions = get_json(
        &h.client,
        &format!("{}/api/v1/plugins/variant/versions", h.base),
    )
    .await;
    let hashes: Vec<&str> = versions["data"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["hash"].as_str().unwrap())
        .collect();
    assert!(!hashes.contains(&sha(half).as_str()) && !hashes.contains(&sha(&v4).as_str()));
    assert_eq!(h.rule().await["evaluationFailures"], 0);
    h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_are_required_when_configured() {
    let (hook, _got) = start_receiver().await;
    let (secret, public) = signing::generate_key();
    let (stranger, _) = signing::generate_key();
    let v1 = variant('F', 1);
    let sig_v1 = signing::sign(&secret, &v1).unwrap();
    let extra = format!("  require_signed: true\n  trusted_keys: [\"{public}\"]\n");
    let h = Harness::new(&hook, &extra, |dir| {
        std::fs::write(dir.join("variant.wasm.sig"), &sig_v1).unwrap();
    })
    .await;
    h.wait_live("variant", &sha(&v1)).await;

    let v2 = variant('F', 2);
    let (status, body) = h.put("variant", v2.clone(), None).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("not signed"),
        "{body}"
    );
    // v1's signature on v2's bytes: tampered.
    let (status, body) = h.put("variant", v2.clone(), Some(&sig_v1)).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("does not match"),
        "{body}"
    );
    let (status, body) = h
        .put(
            "variant",
            v2.clone(),
            Some(&signing::sign(&stranger, &v2).unwrap()),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("not in plugins.trusted_keys"),
        "{body}"
    );
    assert_eq!(h.live_hash("variant").await, sha(&v1));
    let (status, body) = h
        .put(
            "variant",
            v2.clone(),
            Some(&signing::sign(&secret, &v2).unwrap()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["signedBy"], public);

    // The directory: an unsigned drop is refused, its signature then lets it in.
    let v3 = variant('F', 3);
    std::fs::remove_file(h.dir.join("variant.wasm.sig")).unwrap();
    drop_component(&h.dir, "variant", &v3);
    let failure = eventually(
        Duration::from_secs(20),
        "the unsigned drop refused",
        || async {
            let f = h.plugin("variant").await["lastLoadError"].clone();
            (f["hash"] == sha(&v3)).then_some(f)
        },
    )
    .await;
    assert!(
        failure["error"].as_str().unwrap().contains("not signed"),
        "{failure}"
    );
    assert_eq!(h.live_hash("variant").await, sha(&v2));
    std::fs::write(
        h.dir.join("variant.wasm.sig"),
        signing::sign(&secret, &v3).unwrap(),
    )
    .unwrap();
    h.wait_live("variant", &sha(&v3)).await;
    h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_swaps_under_evaluation_fail_nothing_and_change_no_alert() {
    let (hook, got) = start_receiver().await;
    let h = Harness::new(&hook, "", |_| {}).await;
    h.wait_live("variant", &sha(&variant('F', 1))).await;
    // Firing (no `for`), notified once.
    let first = got.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(first[0]["alerts"][0]["status"], "firing");
    let active_at = h.rule().await["alerts"][0]["activeAt"].clone();
    assert!(active_at.is_string());

    for i in 0..100u32 {
        let n = 100 + i;
        let bytes = variant('F', n);
        if i % 2 == 0 {
            let (status, body) = h.put("variant", bytes.clone(), None).await;
            assert_eq!(status, 200, "swap {i}: {body}");
        } else {
            drop_component(&h.dir, "variant", &bytes);
            h.wait_live("variant", &sha(&bytes)).await;
        }
        // The first evaluation that starts after the swap judges with the new version.
        assert_eq!(
            h.value_after_next_evaluation().await,
            n.to_string(),
            "swap {i}"
        );
    }

    let rule = h.rule().await;
    assert_eq!(rule["evaluationFailures"], 0, "{rule}");
    assert_eq!(rule["lastError"], "", "{rule}");
    assert_eq!(rule["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(rule["alerts"][0]["state"], "firing");
    assert_eq!(
        rule["alerts"][0]["activeAt"], active_at,
        "the alert never restarted"
    );
    // No notification beyond the first: no transition happened.
    let all = got.all().await;
    assert_eq!(all.len(), 1, "{all:#?}");
    h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_trapping_on_30_percent_is_rolled_back_and_klaxon_alerts() {
    let (hook, got) = start_receiver().await;
    let h = Harness::new(
        &hook,
        "  auto_rollback: { calls: 60, max_error_rate: 0.1 }\n",
        |_| {},
    )
    .await;
    let v1 = variant('F', 1);
    h.wait_live("variant", &sha(&v1)).await;
    let trapping = variant('T', 2);
    let (status, body) = h.put("variant", trapping.clone(), None).await;
    assert_eq!(status, 200, "{body}");

    let alert = eventually(
        Duration::from_secs(60),
        "KlaxonPluginRolledBack at the webhook",
        || async {
            got.all()
                .await
                .into_iter()
                .flat_map(|b| b["alerts"].as_array().cloned().unwrap_or_default())
                .find(|a| a["labels"]["alertname"] == "KlaxonPluginRolledBack")
        },
    )
    .await;
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["labels"]["plugin"], "variant");
    assert_eq!(alert["labels"]["from"], sha(&trapping));
    assert_eq!(alert["labels"]["to"], sha(&v1));
    assert_eq!(h.live_hash("variant").await, sha(&v1));
    // The trapping version failed evaluations; it is still kept for inspection.
    let versions = get_json(
        &h.client,
        &format!("{}/api/v1/plugins/variant/versions", h.base),
    )
    .await;
    let bad = versions["data"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["hash"] == sha(&trapping))
        .cloned()
        .expect("the trapping version is kept");
    let (calls, traps) = (
        bad["health"]["calls"].as_u64().unwrap(),
        bad["health"]["traps"].as_u64().unwrap(),
    );
    assert!(
        calls >= 60 && traps * 10 > calls,
        "calls {calls}, traps {traps}"
    );
    assert_eq!(h.value_after_next_evaluation().await, "1");
    h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_reports_the_exact_differing_verdicts_then_promotes() {
    let (hook, got) = start_receiver().await;
    let h = Harness::new(&hook, "", |_| {}).await;
    let v1 = variant('F', 1);
    h.wait_live("variant", &sha(&v1)).await;
    // Two more series; the one labelled diff="1" is where the versions disagree.
    let pushed = push(
        &h.client,
        &h.base,
        json!({"series": [
            {"metric": "model_score", "labels": {"model_name": "churn", "diff": "1"}, "value": 0.5},
            {"metric": "model_score", "labels": {"model_name": "ranker"}, "value": 0.5},
        ]}),
    )
    .await;
    assert_eq!(pushed.status(), 204);
    eventually(Duration::from_secs(10), "three firing alerts", || async {
        (h.rule().await["alerts"].as_array().map_or(0, |a| a.len()) == 3).then_some(())
    })
    .await;
    // Routing has told the webhook about all three before the shadow starts.
    eventually(
        Duration::from_secs(10),
        "a notification with three alerts",
        || async {
            got.all()
                .await
                .iter()
                .any(|b| b["alerts"].as_array().map_or(0, |a| a.len()) == 3)
                .then_some(())
        },
    )
    .await;
    let notified_before = got.all().await.len();

    let candidate = variant('D', 2);
    let resp = h
        .client
        .put(format!("{}/api/v1/plugins/variant?mode=shadow", h.base))
        .body(candidate.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"]["hash"], sha(&candidate));
    assert_eq!(
        h.live_hash("variant").await,
        sha(&v1),
        "the live version stays"
    );

    let report = eventually(Duration::from_secs(10), "shadow comparisons", || async {
        let r = get_json(
            &h.client,
            &format!("{}/api/v1/plugins/variant/shadow", h.base),
        )
        .await;
        (r["data"]["calls"].as_u64().unwrap_or(0) >= 5).then_some(r)
    })
    .await;
    let r = &report["data"];
    assert_eq!(r["hash"], sha(&candidate));
    assert_eq!(r["failures"], 0);
    let (calls, compared, agreed) = (
        r["calls"].as_u64().unwrap(),
        r["compared"].as_u64().unwrap(),
        r["agreed"].as_u64().unwrap(),
    );
    assert_eq!(compared, 3 * calls, "{r}");
    assert_eq!(agreed, 2 * calls, "{r}");
    assert!((r["agreementRate"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9);
    let diffs = r["diffs"].as_array().unwrap();
    assert!(!diffs.is_empty());
    for d in diffs {
        assert_eq!(d["rule"], "VariantFires");
        assert_eq!(
            d["labels"], r#"{__name__="model_score",diff="1",model_name="churn"}"#,
            "{d}"
        );
        assert_eq!(d["live"]["firing"], true);
        assert_eq!(d["live"]["summary"], "v1");
        assert_eq!(d["shadow"]["firing"], false);
        assert_eq!(d["shadow"]["summary"], "v2");
    }
    // The shadow changed no alert and sent nothing.
    assert_eq!(h.rule().await["alerts"].as_array().unwrap().len(), 3);
    assert_eq!(got.all().await.len(), notified_before);

    let (status, body) = h.post("/api/v1/plugins/variant/promote").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["to"], sha(&candidate));
    assert_eq!(h.live_hash("variant").await, sha(&candidate));
    let resp = h
        .client
        .get(format!("{}/api/v1/plugins/variant/shadow", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    // Live now, the new version's verdict resolves the seeded series.
    eventually(
        Duration::from_secs(10),
        "the seeded series resolved",
        || async {
            (h.rule().await["alerts"].as_array().map_or(0, |a| a.len()) == 2).then_some(())
        },
    )
    .await;
    h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_file_changes_reload_by_themselves() {
    let data = tempfile::tempdir().expect("tempdir");
    let path = data.path().join("klaxon.yml");
    let yaml = |alert: &str| {
        format!(
            "groups:\n  - name: ml\n    interval: 100ms\n    rules:\n      - alert: {alert}\n        expr: vector(1)\n"
        )
    };
    let first = yaml("First");
    std::fs::write(&path, &first).unwrap();
    let server = start(ServerOptions {
        listen: "127.0.0.1:0".parse().expect("addr"),
        config: Config::parse(&first, "klaxon.yml").expect("config"),
        config_file: path.display().to_string(),
        config_text: first.clone(),
        config_path: Some(path.clone()),
        data_dir: Some(data.path().to_path_buf()),
    })
    .await
    .expect("klaxon starts");
    let client = reqwest::Client::new();
    let rule_name = || async {
        let rules = get_json(&client, &format!("http://{}/api/v1/rules", server.addr())).await;
        rules["data"]["groups"][0]["rules"][0]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(rule_name().await, "First");

    // Replaced the way editors do: a temporary file renamed over it.
    let tmp = data.path().join(".klaxon.yml.swp");
    std::fs::write(&tmp, yaml("Second")).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    eventually(
        Duration::from_secs(20),
        "the edited config in force",
        || async { (rule_name().await == "Second").then_some(()) },
    )
    .await;

    // An invalid edit leaves the running config in force.
    std::fs::write(&path, "groups: [ {").unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(rule_name().await, "Second");
    std::fs::write(&path, yaml("Third")).unwrap();
    eventually(
        Duration::from_secs(20),
        "the next valid edit in force",
        || async { (rule_name().await == "Third").then_some(()) },
    )
    .await;
    server.shutdown().await;
}

/// A version uploaded while Klaxon serves goes live after a quick baseline
/// (Winch) compile; its optimized (Cranelift) build, compiled in the
/// background and cached, then takes its place: same hash, same verdicts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_go_live_quick_then_optimized() {
    let (hook, _got) = start_receiver().await;
    let h = Harness::new(&hook, "", |_| {}).await;
    let v1 = variant('F', 1);
    h.wait_live("variant", &sha(&v1)).await;
    assert_eq!(
        h.plugin("variant").await["tier"],
        "optimized",
        "loaded at start: optimized at once"
    );

    let v2 = variant('F', 2);
    let (status, body) = h.put("variant", v2.clone(), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["hash"], sha(&v2));
    assert_eq!(body["data"]["tier"], "quick", "{body}");
    assert_eq!(h.value_after_next_evaluation().await, "2");

    eventually(
        Duration::from_secs(30),
        "the optimized build of v2 to take over",
        || async {
            let p = h.plugin("variant").await;
            (p["hash"] == sha(&v2) && p["tier"] == "optimized").then_some(())
        },
    )
    .await;
    assert_eq!(h.value_after_next_evaluation().await, "2");
    let versions = get_json(
        &h.client,
        &format!("{}/api/v1/plugins/variant/versions", h.base),
    )
    .await;
    let kept: Vec<_> = versions["data"]["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| (v["hash"].clone(), v["tier"].clone()))
        .collect();
    assert_eq!(
        kept,
        vec![
            (json!(sha(&v1)), json!("optimized")),
            (json!(sha(&v2)), json!("optimized")),
        ]
    );
}

/// What the API makes live is written to the plugins directory, so a restart
/// serves it: an upload, then a rollback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_and_rollbacks_survive_a_restart() {
    let (hook, _got) = start_receiver().await;
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("plugins");
    std::fs::create_dir_all(&dir).unwrap();
    let (v1, v2) = (variant('F', 1), variant('F', 2));
    drop_component(&dir, "variant", &v1);
    let yaml = config(&hook, &dir, "");
    let client = reqwest::Client::new();
    let live_after_restart = |expected: String| {
        let (yaml, data, client) = (yaml.clone(), data.path().to_path_buf(), client.clone());
        async move {
            let server = start_with(&yaml, &data).await;
            let list = get_json(&client, &format!("http://{}/api/v1/plugins", server.addr())).await;
            let live = list["data"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == "variant")
                .unwrap()["hash"]
                .clone();
            server.shutdown().await;
            assert_eq!(live, json!(expected));
        }
    };

    let server = start_with(&yaml, data.path()).await;
    let base = format!("http://{}", server.addr());
    let resp = client
        .put(format!("{base}/api/v1/plugins/variant"))
        .body(v2.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    assert_eq!(
        std::fs::read(dir.join("variant.wasm")).unwrap(),
        v2,
        "the upload is written to the plugins directory"
    );
    server.shutdown().await;
    live_after_restart(sha(&v2)).await;

    let server = start_with(&yaml, data.path()).await;
    let base = format!("http://{}", server.addr());
    // After the restart only v2 is kept; upload v1 again, then roll back to v2.
    let resp = client
        .put(format!("{base}/api/v1/plugins/variant"))
        .body(v1.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = client
        .post(format!("{base}/api/v1/plugins/variant/rollback"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    assert_eq!(std::fs::read(dir.join("variant.wasm")).unwrap(), v2);
    server.shutdown().await;
    live_after_restart(sha(&v2)).await;
}

/// The entry of `name` in `GET /api/v1/plugins`.
async fn listed(client: &reqwest::Client, base: &str, name: &str) -> Value {
    let list = get_json(client, &format!("{base}/api/v1/plugins")).await;
    list["data"]
        .as_array()
        .expect("plugin list")
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_plugins_load_when_a_config_or_an_upload_first_uses_them() {
    let (hook, _got) = start_receiver().await;
    let data = tempfile::tempdir().expect("tempdir");
    let path = data.path().join("klaxon.yml");
    let rules = |extra: &str| {
        format!(
            r#"groups:
  - name: ml
    interval: 50ms
    rules:
      - alert: LatencyHigh
        query: latency
        window: 10m
        detector: threshold
        config: {{ op: ">", value: 1 }}
{extra}route:
  receiver: hook
receivers:
  - name: hook
    webhook_configs: [{{ url: "{hook}/hook", allowed_networks: ["127.0.0.1/32"] }}]
"#
        )
    };
    let first = rules("");
    std::fs::write(&path, &first).expect("write config");
    let server = start(ServerOptions {
        listen: "127.0.0.1:0".parse().expect("addr"),
        config: Config::parse(&first, "klaxon.yml").expect("config"),
        config_file: path.display().to_string(),
        config_text: first.clone(),
        config_path: Some(path.clone()),
        data_dir: Some(data.path().to_path_buf()),
    })
    .await
    .expect("klaxon starts");
    let base = format!("http://{}", server.addr());
    let client = reqwest::Client::new();

    // Every stock plugin is listed; only those the config uses are loaded.
    let list = get_json(&client, &format!("{base}/api/v1/plugins")).await;
    let list = list["data"].as_array().expect("plugin list").clone();
    for (name, bytes) in stock::STOCK {
        let p = list
            .iter()
            .find(|p| p["name"] == *name)
            .unwrap_or_else(|| panic!("stock plugin {name} not listed"));
        assert_eq!(p["hash"], sha(bytes), "{p}");
        assert_eq!(p["source"], "stock", "{p}");
        let used = ["threshold", "webhook"].contains(name);
        assert_eq!(p["loaded"], used, "{p}");
    }
    let zscore = listed(&client, &base, "zscore").await;
    assert_eq!(zscore["kind"], "detector", "{zscore}");
    assert!(zscore["stats"].is_null(), "{zscore}");

    // A reload whose new rule uses zscore loads it; the rule evaluates.
    let second = rules(
        "      - alert: ScoreShift\n        query: score\n        window: 10m\n        detector: zscore\n        config: { threshold: 4 }\n",
    );
    std::fs::write(&path, &second).expect("write config");
    let reloaded = client
        .post(format!("{base}/-/reload"))
        .send()
        .await
        .expect("reload");
    assert_eq!(
        reloaded.status(),
        200,
        "{}",
        reloaded.text().await.unwrap_or_default()
    );
    let zscore = listed(&client, &base, "zscore").await;
    assert_eq!(zscore["loaded"], true, "{zscore}");
    assert_eq!(zscore["hash"], sha(stock::bytes("zscore").expect("zscore")));
    let pushed = push(
        &client,
        &base,
        json!({"series": [{"metric": "score", "labels": {"model_name": "fraud"}, "value": 0.5}]}),
    )
    .await;
    assert_eq!(pushed.status(), 204);
    eventually(
        Duration::from_secs(20),
        "the zscore rule evaluated",
        || async {
            let rules = get_json(&client, &format!("{base}/api/v1/rules")).await;
            let rule = rules["data"]["groups"][0]["rules"]
                .as_array()?
                .iter()
                .find(|r| r["name"] == "ScoreShift")?
                .clone();
            (rule["health"] == "ok").then_some(())
        },
    )
    .await;

    // An upload of a stock plugin not loaded yet goes through the pipeline
    // against the loaded stock version: the same bytes change nothing.
    assert_eq!(listed(&client, &base, "ewma").await["loaded"], false);
    let ewma = stock::bytes("ewma").expect("ewma");
    let resp = client
        .put(format!("{base}/api/v1/plugins/ewma"))
        .body(ewma.to_vec())
        .send()
        .await
        .expect("PUT");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("JSON");
    assert_eq!(body["data"]["unchanged"], true, "{body}");
    assert_eq!(body["data"]["previous"], sha(ewma), "{body}");
    let ewma_listed = listed(&client, &base, "ewma").await;
    assert_eq!(ewma_listed["loaded"], true, "{ewma_listed}");
    server.shutdown().await;
}
