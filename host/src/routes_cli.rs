//! `klaxon routes show` and `klaxon routes test`: amtool's `config routes`
//! commands over a Klaxon config file, with amtool's output, so routing can
//! be checked offline and in CI. Owns only the commands; the tree, matching
//! and printing live in `route::tree`.

use std::path::Path;

use anyhow::{anyhow, bail};

use crate::route::tree::{RouteTree, parse_matcher};
use crate::store::{Labels, MatchOp};

/// Loads and validates a config file and builds its routing tree.
pub fn load_tree(path: &Path) -> anyhow::Result<RouteTree> {
    let (config, file, text) = crate::cli::load_config(Some(path))?;
    config.validate_static(&file, &text)?;
    let Some(route) = &config.route else {
        bail!("{file}: no routes provided");
    };
    let names = config.receivers.iter().map(|r| r.name.as_str()).collect();
    let intervals = config
        .named_time_intervals()
        .map(|t| t.name.as_str())
        .collect();
    Ok(RouteTree::build(route, &names, &intervals)?)
}

/// `klaxon routes show --config F`: the tree as amtool prints it.
pub fn show(path: &Path) -> anyhow::Result<()> {
    let tree = load_tree(path)?;
    println!("Routing tree:");
    println!("{}", tree.render());
    Ok(())
}

/// `klaxon routes test --config F [--verify.receivers=R1,R2] [--tree]
/// label=value ...`: prints the receivers in tree order; `Ok(false)` when
/// they differ from `verify` (amtool then exits 1).
pub fn test(
    path: &Path,
    verify: Option<&str>,
    show_tree: bool,
    labels: &[String],
) -> anyhow::Result<bool> {
    let tree = load_tree(path)?;
    let labels = parse_labels(labels)?;
    if show_tree {
        println!("Matching routes:");
        println!("{}", tree.render_matching(&labels));
        println!();
    }
    let receivers = tree.receivers_for(&labels).join(",");
    println!("{receivers}");
    match verify {
        Some(want) if !want.is_empty() && want != receivers => {
            println!("WARNING: Expected receivers did not match resolved receivers.");
            Ok(false)
        }
        _ => Ok(true),
    }
}

/// `name=value` arguments (Alertmanager's matcher syntax, `=` only).
fn parse_labels(args: &[String]) -> anyhow::Result<Labels> {
    let mut pairs = Vec::with_capacity(args.len());
    for arg in args {
        let m = parse_matcher(arg).map_err(|e| anyhow!("Failed to parse labels: {e}"))?;
        if m.op() != MatchOp::Equal {
            bail!("Labels must be specified as key=value pairs");
        }
        pairs.push((m.name().to_string(), m.value().to_string()));
    }
    Ok(Labels::new(pairs))
}
