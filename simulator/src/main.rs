//! `ringmesh-sim`: for now, a narrated demo of the overlay in virtual time:
//! nodes join through a bootstrap node over Noise, flood, and detect a crash.

use std::process::ExitCode;

use ringmesh_sim::demo::{DemoConfig, run};

fn main() -> ExitCode {
    let config = DemoConfig::default();
    println!(
        "ringmesh demo: {} nodes, {:?} links, seed {}",
        config.nodes, config.latency, config.seed
    );
    match run(&config) {
        Ok(report) => {
            print!("{}", report.log);
            if report.ok() {
                ExitCode::SUCCESS
            } else {
                eprintln!("the run broke an invariant (see above)");
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}
