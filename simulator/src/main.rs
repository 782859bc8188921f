//! `ringmesh-sim`: for now, a narrated demo of a few nodes doing Noise
//! handshakes and exchanging encrypted messages in virtual time.

use std::process::ExitCode;

use ringmesh_sim::demo::{DemoConfig, run};

fn main() -> ExitCode {
    let config = DemoConfig::default();
    println!(
        "ringmesh demo: {} nodes in a line, {:?} links, seed {}",
        config.nodes, config.latency, config.seed
    );
    match run(&config) {
        Ok(report) => {
            print!("{}", report.log);
            if report.delivered == report.sent {
                ExitCode::SUCCESS
            } else {
                eprintln!("some messages were not delivered");
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}
