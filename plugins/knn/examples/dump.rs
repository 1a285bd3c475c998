//! Debug: per-record score of one NAB file (not part of the plugin).
use klaxon_sdk::testing::{TestSeries, run_detector_at};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let text = std::fs::read_to_string(&args[1]).unwrap();
    let cfg = args.get(2).cloned().unwrap_or("{}".into());
    let win: usize = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(1152);
    let vals: Vec<f64> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().trim().parse().unwrap())
        .collect();
    let ts: Vec<i64> = (0..vals.len() as i64).map(|i| i * 300_000).collect();
    let mut state = None;
    for i in 0..vals.len() {
        let from = (i + 1).saturating_sub(win);
        let mut s = TestSeries::new(
            &[("__name__", "x")],
            ts[from..=i].to_vec(),
            vals[from..=i].to_vec(),
        );
        s.state = state.take();
        let out = run_detector_at::<klaxon_plugin_knn::Knn>(&cfg, &[s], ts[i])
            .unwrap()
            .remove(0);
        state = out.state.clone();
        println!(
            "{i} {} {} {:.3} {}",
            vals[i],
            out.verdict.firing as u8,
            out.verdict.score,
            out.verdict.annotation("distance").unwrap_or("-")
        );
    }
}
