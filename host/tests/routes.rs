//! `klaxon routes show|test` (amtool's `config routes`) and `klaxon check`
//! on routing-tree errors, through the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn klaxon() -> Command {
    Command::new(env!("CARGO_BIN_EXE_klaxon"))
}

const CONFIG: &str = r#"route:
  receiver: default
  group_by: [alertname]
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
      continue: true
      routes:
        - matchers: [team=ml]
          receiver: ml-pager
    - match: { team: ml }
      receiver: ml
    - match_re: { model_name: 'fraud.*' }
      receiver: fraud
      group_by: ['...']
receivers:
  - name: default
  - name: pager
  - name: ml-pager
  - name: ml
  - name: fraud
"#;

fn write(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("am.yml");
    std::fs::write(&path, text).unwrap();
    path
}

fn run(args: &[&str], config: &Path) -> Output {
    let mut cmd = klaxon();
    cmd.args(&args[..2])
        .arg("--config")
        .arg(config)
        .args(&args[2..]);
    cmd.output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn routes_show_prints_the_tree_like_amtool() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), CONFIG);
    let out = run(&["routes", "show"], &path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout(&out),
        "Routing tree:\n.\n└── default-route  receiver: default  grouping: [alertname]\n    ├── {severity=\"critical\"}  continue: true  receiver: pager  grouping: [alertname]\n    │   └── {team=\"ml\"}  receiver: ml-pager  grouping: [alertname]\n    ├── {team=\"ml\"}  receiver: ml  grouping: [alertname]\n    └── {model_name=~\"^(?:fraud.*)$\"}  receiver: fraud  grouping: [...]\n\n"
    );
}

#[test]
fn routes_show_prints_time_intervals_on_routes_that_have_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"time_intervals:
  - name: office
    time_intervals:
      - times: [{start_time: '09:00', end_time: '17:00'}]
        weekdays: ['monday:friday']
        location: Europe/Berlin
mute_time_intervals:
  - name: weekends
    time_intervals:
      - weekdays: ['saturday', 'sunday']
route:
  receiver: default
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
      mute_time_intervals: [weekends]
      active_time_intervals: [office]
      routes:
        - matchers: [team=ml]
receivers:
  - name: default
  - name: pager
"#;
    let path = write(dir.path(), config);
    let out = run(&["routes", "show"], &path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The child inherits neither list, as in Alertmanager.
    assert_eq!(
        stdout(&out),
        "Routing tree:\n.\n└── default-route  receiver: default\n    └── {severity=\"critical\"}  receiver: pager  mute_time_intervals: [weekends]  active_time_intervals: [office]\n        └── {team=\"ml\"}  receiver: pager\n\n"
    );
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
}

#[test]
fn routes_test_prints_receivers_in_tree_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), CONFIG);
    let cases: &[(&[&str], &str)] = &[
        (&["alertname=A"], "default"),
        (&["severity=critical"], "pager"),
        (&["severity=critical", "team=ml"], "ml-pager,ml"),
        (
            &["severity=\"critical\"", "model_name=fraud-v2"],
            "pager,fraud",
        ),
        (&["model_name=fraud-v2", "team=ml"], "ml"),
        (&[], "default"),
    ];
    for (labels, want) in cases {
        let mut args = vec!["routes", "test"];
        args.extend_from_slice(labels);
        let out = run(&args, &path);
        assert!(
            out.status.success(),
            "{labels:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(stdout(&out), format!("{want}\n"), "{labels:?}");
        // --verify.receivers with the same list passes.
        let verify = format!("--verify.receivers={want}");
        let mut args = vec!["routes", "test", verify.as_str()];
        args.extend_from_slice(labels);
        let out = run(&args, &path);
        assert!(
            out.status.success(),
            "{labels:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn routes_test_verify_mismatch_fails_with_amtools_warning() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), CONFIG);
    let out = run(
        &[
            "routes",
            "test",
            "--verify.receivers=pager",
            "severity=critical",
            "team=ml",
        ],
        &path,
    );
    assert!(!out.status.success());
    assert_eq!(
        stdout(&out),
        "ml-pager,ml\nWARNING: Expected receivers did not match resolved receivers.\n"
    );
    // Order matters, as in amtool.
    let out = run(
        &[
            "routes",
            "test",
            "--verify.receivers",
            "ml,ml-pager",
            "severity=critical",
            "team=ml",
        ],
        &path,
    );
    assert!(!out.status.success());
}

#[test]
fn routes_test_tree_shows_the_matching_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), CONFIG);
    let out = run(
        &["routes", "test", "--tree", "severity=critical", "team=ml"],
        &path,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout(&out),
        "Matching routes:\n.\n└── default-route\n    ├── {severity=\"critical\"}\n    │   └── {team=\"ml\"}  receiver: ml-pager  grouping: [alertname]\n    └── {team=\"ml\"}  receiver: ml  grouping: [alertname]\n\n\nml-pager,ml\n"
    );
}

#[test]
fn routes_test_rejects_non_equality_labels() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), CONFIG);
    let out = run(&["routes", "test", "team=~ml"], &path);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("Labels must be specified as key=value pairs")
    );
    let out = run(&["routes", "test", "team"], &path);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("Failed to parse labels: bad matcher format: team")
    );
}

#[test]
fn check_reports_routing_errors_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, usize, &str)] = &[
        (
            "route:\n  receiver: a\n  routes:\n    - matchers: [x=y]\n      receiver: b\nreceivers:\n  - name: a\n",
            5,
            "undefined receiver \"b\" used in route",
        ),
        (
            "route:\n  receiver: a\nreceivers:\n  - name: a\n  - name: a\n",
            5,
            "notification config name \"a\" is not unique",
        ),
        (
            "route:\n  receiver: a\n  continue: true\nreceivers:\n  - name: a\n",
            3,
            "cannot have continue in root route",
        ),
        (
            "route:\n  receiver: a\n  match: {x: y}\nreceivers:\n  - name: a\n",
            3,
            "root route must not have any matchers",
        ),
        (
            "route:\n  group_by: [x]\nreceivers:\n  - name: a\n",
            1,
            "root route must specify a default receiver",
        ),
        (
            "route:\n  receiver: a\n  routes:\n    - match: {x: y}\n      group_interval: 0s\nreceivers:\n  - name: a\n",
            5,
            "group_interval cannot be zero",
        ),
        (
            "route:\n  receiver: a\n  repeat_interval: 0s\nreceivers:\n  - name: a\n",
            3,
            "repeat_interval cannot be zero",
        ),
        (
            "route:\n  receiver: a\n  routes:\n    - group_by: ['...', x]\nreceivers:\n  - name: a\n",
            4,
            "cannot have wildcard group_by (`...`) and other other labels at the same time",
        ),
        (
            "route:\n  receiver: a\n  routes:\n    - matchers:\n        - 'x=\"y'\nreceivers:\n  - name: a\n",
            5,
            "matcher value contains unescaped double quote",
        ),
        (
            "route:\n  receiver: a\n  routes:\n    - receiver: a\n      active_time_intervals: [nights]\nreceivers:\n  - name: a\n",
            5,
            "undefined time interval \"nights\" used in route",
        ),
        (
            "time_intervals:\n  - name: nights\nroute:\n  receiver: a\n  routes:\n    - receiver: a\n      mute_time_intervals:\n        - nights\n        - weekends\nreceivers:\n  - name: a\n",
            9,
            "undefined time interval \"weekends\" used in route",
        ),
        (
            "time_intervals:\n  - name: nights\nroute:\n  receiver: a\n  mute_time_intervals: [nights]\nreceivers:\n  - name: a\n",
            5,
            "root route must not have any mute time intervals",
        ),
        (
            "time_intervals:\n  - name: nights\n    time_intervals:\n      - weekdays: ['friday:monday']\nroute:\n  receiver: a\nreceivers:\n  - name: a\n",
            4,
            "start day cannot be before end day",
        ),
        (
            "time_intervals:\n  - name: nights\n  - name: nights\nroute:\n  receiver: a\nreceivers:\n  - name: a\n",
            3,
            "time interval \"nights\" is not unique",
        ),
    ];
    for (text, line, reason) in cases {
        let path = write(dir.path(), text);
        let out = klaxon()
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        let want = format!("{}:{line}: ", path.display());
        assert!(err.contains(&want), "expected `{want}` in: {err}");
        assert!(err.contains(reason), "expected `{reason}` in: {err}");
        // `routes` commands refuse the same config the same way.
        let out = run(&["routes", "show"], &path);
        assert!(!out.status.success(), "{text}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(reason));
    }
}
