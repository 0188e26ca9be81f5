//! Cost accounting: device-seconds (busy time of the execution provider) spent
//! by a sweep's attempts, by model, worker and outcome, and the estimated cost
//! from prices per device-hour by device kind.
//!
//! Every attempt counts as spent: committed ones (`done`) and those that
//! failed, were handed back by a stopping worker or were abandoned by a worker
//! that vanished (charged the busy time its last heartbeat reported), the last
//! three shown apart as `lost`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Price per device-hour by device kind (`cpu`, `cuda`), in the user's currency.
pub type Prices = BTreeMap<String, f64>;

/// How an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// Committed.
    Done,
    /// Reported an error.
    Failed,
    /// Handed back by a stopping worker.
    HandedBack,
    /// Its worker vanished; the lease expired.
    Abandoned,
}

impl Outcome {
    /// The name used in the database and in `cost.csv`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Failed => "failed",
            Outcome::HandedBack => "handed_back",
            Outcome::Abandoned => "abandoned",
        }
    }

    /// The outcome named `s`.
    pub fn parse(s: &str) -> Option<Outcome> {
        [Outcome::Done, Outcome::Failed, Outcome::HandedBack, Outcome::Abandoned].into_iter().find(|o| o.as_str() == s)
    }
}

/// What one (model, worker, outcome) group of a sweep's attempts spent.
#[derive(Clone, Debug, PartialEq)]
pub struct SpentLine {
    /// Index into the sweep's models.
    pub model_idx: usize,
    /// The worker's id (0: not known).
    pub worker_id: i64,
    /// The worker's name.
    pub worker: String,
    /// The worker's device (`cpu`, `cuda:0`).
    pub device: String,
    /// How the attempts ended.
    pub outcome: Outcome,
    /// Attempts in the group.
    pub attempts: i64,
    /// Seconds the execution provider was busy.
    pub busy_seconds: f64,
    /// Wall seconds the attempts took on their workers.
    pub wall_seconds: f64,
    /// Inferences committed (0 for attempts that did not commit).
    pub inferences: i64,
}

/// The kind a device is priced by: `cuda:1` is `cuda`.
pub fn device_kind(device: &str) -> &str {
    device.split(':').next().unwrap_or(device)
}

/// Sums over some of a sweep's attempts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    /// Busy seconds of committed attempts.
    pub busy_done: f64,
    /// Busy seconds of attempts that failed, were handed back or abandoned.
    pub busy_lost: f64,
    /// Wall seconds of all attempts.
    pub wall: f64,
    /// Attempts.
    pub attempts: i64,
    /// Inferences committed.
    pub inferences: i64,
    /// Estimated cost of all attempts; `None` when a device kind used has no price.
    pub cost: Option<f64>,
}

impl Totals {
    /// Sums `lines` and prices them.
    pub fn of<'a>(lines: impl IntoIterator<Item = &'a SpentLine>, prices: &Prices) -> Totals {
        let mut t = Totals { cost: Some(0.0), ..Default::default() };
        for l in lines {
            if l.outcome == Outcome::Done {
                t.busy_done += l.busy_seconds;
            } else {
                t.busy_lost += l.busy_seconds;
            }
            t.wall += l.wall_seconds;
            t.attempts += l.attempts;
            t.inferences += l.inferences;
            t.cost = match (t.cost, prices.get(device_kind(&l.device))) {
                (Some(c), Some(per_hour)) => Some(c + l.busy_seconds / 3600.0 * per_hour),
                (Some(c), None) if l.busy_seconds == 0.0 => Some(c),
                _ => None,
            };
        }
        t
    }

    /// Inferences per busy second of committed attempts (0 when none).
    pub fn per_device_second(&self) -> f64 {
        if self.busy_done > 0.0 {
            self.inferences as f64 / self.busy_done
        } else {
            0.0
        }
    }
}

/// `cost.csv`: one row per (model, worker, outcome) group, then per model, per
/// worker and for the whole sweep (scope `attempts`, `model`, `worker`,
/// `sweep`); busy seconds split into `busy_seconds` (committed) and
/// `lost_busy_seconds` (failed, handed back, abandoned). `models` names the
/// sweep's models by index. Cost is empty where a device kind has no price.
pub fn csv(lines: &[SpentLine], models: &[String], prices: &Prices) -> String {
    let mut out = String::from(
        "scope,model,worker,device,outcome,attempts,busy_seconds,lost_busy_seconds,wall_seconds,inferences,inferences_per_device_second,estimated_cost\n",
    );
    let name = |i: usize| models.get(i).cloned().unwrap_or_else(|| format!("model[{i}]"));
    let mut row = |scope: &str, model: &str, worker: &str, device: &str, outcome: &str, t: &Totals| {
        let cost = t.cost.map(|c| format!("{c:.6}")).unwrap_or_default();
        let _ = writeln!(
            out,
            "{scope},{},{},{},{outcome},{},{:.6},{:.6},{:.6},{},{:.3},{cost}",
            field(model),
            field(worker),
            field(device),
            t.attempts,
            t.busy_done,
            t.busy_lost,
            t.wall,
            t.inferences,
            t.per_device_second()
        );
    };
    for l in lines {
        row("attempts", &name(l.model_idx), &l.worker, &l.device, l.outcome.as_str(), &Totals::of([l], prices));
    }
    let mut by_model: BTreeMap<usize, Vec<&SpentLine>> = BTreeMap::new();
    let mut by_worker: BTreeMap<(i64, &str, &str), Vec<&SpentLine>> = BTreeMap::new();
    for l in lines {
        by_model.entry(l.model_idx).or_default().push(l);
        by_worker.entry((l.worker_id, &l.worker, &l.device)).or_default().push(l);
    }
    for (m, ls) in &by_model {
        row("model", &name(*m), "", "", "all", &Totals::of(ls.iter().copied(), prices));
    }
    for ((_, w, d), ls) in &by_worker {
        row("worker", "", w, d, "all", &Totals::of(ls.iter().copied(), prices));
    }
    row("sweep", "", "", "", "all", &Totals::of(lines, prices));
    out
}

/// A CSV field, quoted when it needs to be.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Parses `kind=price` (price per device-hour), as `--price cuda=2.5` gives it.
pub fn parse_price(s: &str) -> Result<(String, f64), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("`{s}`: expected KIND=PRICE_PER_HOUR, e.g. cuda=2.50"))?;
    let v: f64 = v.trim().parse().map_err(|_| format!("`{s}`: `{v}` is not a number"))?;
    if !(v.is_finite() && v >= 0.0) || k.trim().is_empty() {
        return Err(format!("`{s}`: expected a device kind and a price of zero or more"));
    }
    Ok((k.trim().to_string(), v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(model_idx: usize, worker_id: i64, device: &str, outcome: Outcome, busy: f64, inferences: i64) -> SpentLine {
        SpentLine {
            model_idx,
            worker_id,
            worker: format!("w{worker_id}"),
            device: device.into(),
            outcome,
            attempts: 1,
            busy_seconds: busy,
            wall_seconds: busy + 1.0,
            inferences,
        }
    }

    #[test]
    fn totals_split_done_from_lost_and_price_by_device_kind() {
        let lines = vec![
            line(0, 1, "cuda:0", Outcome::Done, 3600.0, 1000),
            line(0, 2, "cpu", Outcome::Done, 1800.0, 100),
            line(1, 1, "cuda:1", Outcome::Abandoned, 360.0, 0),
            line(1, 2, "cpu", Outcome::Failed, 36.0, 0),
        ];
        let prices: Prices = [("cuda".to_string(), 2.0), ("cpu".to_string(), 0.1)].into();
        let t = Totals::of(&lines, &prices);
        assert_eq!(t.busy_done, 5400.0);
        assert_eq!(t.busy_lost, 396.0);
        assert_eq!(t.wall, 5400.0 + 396.0 + 4.0);
        assert_eq!(t.attempts, 4);
        assert_eq!(t.inferences, 1100);
        // cuda: (3600 + 360) s at 2/h = 2.2; cpu: (1800 + 36) s at 0.1/h = 0.051
        assert!((t.cost.unwrap() - 2.251).abs() < 1e-12, "{:?}", t.cost);
        assert!((t.per_device_second() - 1100.0 / 5400.0).abs() < 1e-12);
        // A kind without a price leaves the cost unknown, unless it was never busy.
        let only_cuda: Prices = [("cuda".to_string(), 2.0)].into();
        assert_eq!(Totals::of(&lines, &only_cuda).cost, None);
        let idle = vec![line(0, 1, "cuda:0", Outcome::Done, 3600.0, 10), line(0, 2, "cpu", Outcome::HandedBack, 0.0, 0)];
        assert_eq!(Totals::of(&idle, &only_cuda).cost, Some(2.0));
    }

    #[test]
    fn csv_rows_per_group_model_worker_and_sweep_add_up() {
        let lines = vec![
            line(0, 1, "cpu", Outcome::Done, 10.0, 100),
            line(1, 1, "cpu", Outcome::Done, 20.0, 300),
            line(1, 2, "cpu", Outcome::Abandoned, 5.0, 0),
        ];
        let prices: Prices = [("cpu".to_string(), 3.6)].into();
        let text = csv(&lines, &["a".into(), "b,c".into()], &prices);
        let rows: Vec<&str> = text.lines().collect();
        assert_eq!(rows[0].split(',').count(), 12);
        assert_eq!(rows[1], "attempts,a,w1,cpu,done,1,10.000000,0.000000,11.000000,100,10.000,0.010000");
        assert_eq!(rows[3], "attempts,\"b,c\",w2,cpu,abandoned,1,0.000000,5.000000,6.000000,0,0.000,0.005000");
        assert_eq!(rows[4], "model,a,,,all,1,10.000000,0.000000,11.000000,100,10.000,0.010000");
        assert_eq!(rows[5], "model,\"b,c\",,,all,2,20.000000,5.000000,27.000000,300,15.000,0.025000");
        assert_eq!(rows[6], "worker,,w1,cpu,all,2,30.000000,0.000000,32.000000,400,13.333,0.030000");
        assert_eq!(rows[7], "worker,,w2,cpu,all,1,0.000000,5.000000,6.000000,0,0.000,0.005000");
        assert_eq!(rows[8], "sweep,,,,all,3,30.000000,5.000000,38.000000,400,13.333,0.035000");
        assert_eq!(rows.len(), 9);
    }

    #[test]
    fn prices_parse_kind_and_price_per_hour() {
        assert_eq!(parse_price("cuda=2.5"), Ok(("cuda".into(), 2.5)));
        assert!(parse_price("cuda").unwrap_err().contains("KIND=PRICE"));
        assert!(parse_price("cuda=x").unwrap_err().contains("not a number"));
        assert!(parse_price("cuda=-1").is_err());
        assert_eq!(device_kind("cuda:3"), "cuda");
        assert_eq!(device_kind("cpu"), "cpu");
        for o in [Outcome::Done, Outcome::Failed, Outcome::HandedBack, Outcome::Abandoned] {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
        }
    }
}
