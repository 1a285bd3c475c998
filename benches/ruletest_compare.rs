//! `klaxon test rules` against `promtool test rules` (Debian's `prometheus`
//! package) on the same generated files: 100 alerting rules × 1 000 input
//! series over one day at a 1 m evaluation interval, with alert tests at the
//! end of the day that both must pass. Klaxon runs the same code as the CLI
//! (`ruletest::run_files`) in this process; promtool is its own process.
//!
//! Run: `cargo bench --bench ruletest_compare` (`-- --promtool-timeout S`,
//! default 600: promtool is stopped after that long).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

const RULES: usize = 100;
const SERIES: usize = 1_000;
const GROUPS: usize = 10;
const MINUTES: usize = 1_440;

fn main() {
    let promtool = PathBuf::from("/usr/bin/promtool");
    assert!(
        promtool.exists(),
        "/usr/bin/promtool is missing: apt-get install prometheus"
    );
    let dir = tempfile::tempdir().expect("tempdir");

    // Rule i fires for every series of group i % 10 once its value passes
    // 10 × i (the value grows by 1 a minute).
    let mut rules = String::from("groups:\n  - name: bench\n    rules:\n");
    for i in 0..RULES {
        let _ = write!(
            rules,
            "      - alert: Rule{i}\n        expr: bench_metric{{group=\"g{}\"}} > {}\n        for: 5m\n        labels:\n          severity: page\n        annotations:\n          summary: \"{{{{ $labels.instance }}}} at {{{{ $value }}}}\"\n",
            i % GROUPS,
            10 * i
        );
    }
    std::fs::write(dir.path().join("rules.yml"), rules).expect("rules");

    let mut tests = String::from(
        "rule_files:\n  - rules.yml\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n",
    );
    for k in 0..SERIES {
        let _ = writeln!(
            tests,
            "      - series: 'bench_metric{{instance=\"i{k}\", group=\"g{}\"}}'\n        values: '0+1x{MINUTES}'",
            k % GROUPS
        );
    }
    tests.push_str("    alert_rule_test:\n");
    // At the end of the day every rule fires for its 100 series.
    for i in [0, RULES / 2, RULES - 1] {
        let _ = writeln!(
            tests,
            "      - eval_time: {}m\n        alertname: Rule{i}\n        exp_alerts:",
            MINUTES
        );
        for k in (0..SERIES).filter(|k| k % GROUPS == i % GROUPS) {
            let _ = writeln!(
                tests,
                "          - exp_labels: {{ severity: page, instance: i{k}, group: g{} }}\n            exp_annotations: {{ summary: \"i{k} at {MINUTES}\" }}",
                i % GROUPS
            );
        }
    }
    let test_file = dir.path().join("tests.yml");
    std::fs::write(&test_file, tests).expect("tests");

    let started = Instant::now();
    let mut out = String::new();
    let ok = klaxon_host::ruletest::run_files(std::slice::from_ref(&test_file), &mut out);
    let klaxon = started.elapsed();
    assert!(ok, "klaxon test rules failed:\n{out}");
    println!(
        "{RULES} rules × {SERIES} series, {MINUTES} evaluations: klaxon test rules {:.2} s",
        klaxon.as_secs_f64()
    );

    let limit = std::time::Duration::from_secs(arg("--promtool-timeout", 600));
    let started = Instant::now();
    let mut child = Command::new(&promtool)
        .args(["test", "rules"])
        .arg(&test_file)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("run promtool");
    loop {
        if let Some(status) = child.try_wait().expect("wait promtool") {
            let prom = started.elapsed();
            assert!(status.success(), "promtool test rules failed");
            println!(
                "promtool test rules {:.2} s: klaxon is {:.1}× faster",
                prom.as_secs_f64(),
                prom.as_secs_f64() / klaxon.as_secs_f64()
            );
            return;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            println!(
                "promtool test rules did not finish within {} s (stopped): klaxon is more than {:.1}× faster",
                limit.as_secs(),
                limit.as_secs_f64() / klaxon.as_secs_f64()
            );
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
