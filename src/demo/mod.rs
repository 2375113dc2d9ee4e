//! `keyrotor demo`: the real controller rotating a key on the in-memory
//! Kubernetes API while simulated pods serve traffic. Each pod loads a Secret
//! change after its own kubelet delay (or at once when nudged) and reports the
//! revision like the reporter sidecar; presenters call verifiers all the time,
//! and a client outside the cluster, which never reports, moves to a new key
//! late. Then the same pods and traffic under a naive overwrite-in-place
//! rotation, for comparison.

mod error;
pub mod naive;
mod pods;
mod run;

use std::time::Duration;

pub use error::Error;
pub use run::{Outcome, run_keyrotor};

/// Demo settings (flags of `keyrotor demo`).
#[derive(Clone, Debug, clap::Args)]
pub struct DemoArgs {
    /// Rotation cycles per strategy.
    #[arg(long, default_value_t = 3)]
    pub cycles: u32,
    /// Verifier pods and presenter pods (each).
    #[arg(long, default_value_t = 3)]
    pub pods: usize,
    /// Shortest kubelet refresh delay, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub min_delay_ms: u64,
    /// Longest kubelet refresh delay, in milliseconds (real kubelets: up to ~90 s).
    #[arg(long, default_value_t = 4000)]
    pub max_delay_ms: u64,
    /// Minimum grace period, in seconds.
    #[arg(long, default_value_t = 2)]
    pub grace: u64,
    /// Touch pods after each Secret write so they refresh at once.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub nudge: bool,
    /// Seed for delays and traffic: the same seed gives the same pods and calls.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Skip the naive overwrite comparison.
    #[arg(long)]
    pub no_naive: bool,
}

impl DemoArgs {
    fn delays(&self) -> (Duration, Duration) {
        let lo = self.min_delay_ms.min(self.max_delay_ms);
        (
            Duration::from_millis(lo),
            Duration::from_millis(self.max_delay_ms.max(lo)),
        )
    }
}

/// Runs both strategies and prints the timeline and a side-by-side summary.
pub async fn print(args: DemoArgs) -> Result<(), Error> {
    let (lo, hi) = args.delays();
    println!("keyrotor demo: the real controller on an in-memory Kubernetes API");
    println!(
        "{} verifier + {} presenter pods, kubelet delays {}-{} ms (seed {}), nudge {}, minimum grace {} s, {} cycles\n",
        args.pods,
        args.pods,
        lo.as_millis(),
        hi.as_millis(),
        args.seed,
        if args.nudge { "on" } else { "off" },
        args.grace,
        args.cycles
    );
    let ours = run_keyrotor(&args, |line| println!("{line}")).await?;
    let naive = if args.no_naive {
        None
    } else {
        println!("\nnaive overwrite-in-place, same pods and traffic:");
        Some(naive::run(&args, ours.mean_cycle(), |line| println!("{line}")).await?)
    };
    println!("\n{}", summary(&ours, naive.as_ref()));
    if ours.rejected > 0 {
        return Err(Error::Rejected(ours.rejected));
    }
    Ok(())
}

fn summary(ours: &Outcome, naive: Option<&Outcome>) -> String {
    let dash = "-".to_string();
    let col =
        |f: &dyn Fn(&Outcome) -> String| (f(ours), naive.map(f).unwrap_or_else(|| dash.clone()));
    let rows: Vec<(&str, (String, String))> = vec![
        ("rotations completed", col(&|o| o.rotations.to_string())),
        ("requests sent", col(&|o| o.requests.to_string())),
        ("requests rejected", col(&|o| o.rejected.to_string())),
        (
            "  of which from the outside client",
            col(&|o| o.rejected_outside.to_string()),
        ),
        (
            "time per cycle (mean)",
            col(&|o| format!("{:.1} s", o.mean_cycle().as_secs_f64())),
        ),
        (
            "  staging (verifiers confirm)",
            (secs(ours.staging), dash.clone()),
        ),
        (
            "  promoting (presenters, grace, quiet)",
            (secs(ours.promoting), dash.clone()),
        ),
    ];
    let mut out = format!("{:<40}{:>12}{:>18}\n", "", "keyrotor", "naive overwrite");
    for (label, (a, b)) in rows {
        out.push_str(&format!("{label:<40}{a:>12}{b:>18}\n"));
    }
    out
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.1} s", d.as_secs_f64()))
}
