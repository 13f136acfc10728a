//! Layer2 failover benchmark (issue 4's figure): N = 20 runs of the failover lab (three nodes with
//! heartbeats, a client pinging the Service IP every 10 ms, the winning node killed: speaker process
//! and link). Prints every outage (the longest pause between the client's ping replies) and p50/p99.
//! Target: p50 <= 0.5 s, p99 <= 1 s. Needs root (network namespaces); prints why it skips otherwise.
//!
//! `cargo bench -p oxelb-speaker --bench failover`. Addresses: 192.0.2.0/24 only, inside the lab.

use std::time::Duration;

#[path = "../tests/layer2_failover_lab.rs"]
#[allow(dead_code, unused_imports)]
mod failover_lab;

use oxelb_tests::lab::{LabError, lab_or_skip, wait_until};

const RUNS: usize = 20;

fn one_run() -> Result<Option<Duration>, LabError> {
    let Some(mut lab) = lab_or_skip("failover benchmark")? else {
        return Ok(None);
    };
    let (nodes, client, _dir) = failover_lab::topology(&mut lab)?;
    let first = failover_lab::winner(&nodes, &client)?;
    std::thread::sleep(Duration::from_secs(1));
    let mut ping = client.command("ping");
    ping.args(["-D", "-i", "0.01", "-c", "400", "-W", "1", "192.0.2.50"]);
    lab.spawn("ping", ping)?;
    std::thread::sleep(Duration::from_secs(1));
    let (name, ns) = &nodes[first];
    lab.kill(&format!("speaker-{name}"));
    ns.ip(&["link", "set", "eth0", "down"])?;
    wait_until(
        "ping finished",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || {
            let log = lab.log("ping");
            if log.contains("packets transmitted") {
                Ok(())
            } else {
                Err(String::new())
            }
        },
    )?;
    Ok(failover_lab::longest_gap(&lab.log("ping")))
}

fn main() -> Result<(), LabError> {
    let mut outages = Vec::new();
    for run in 1..=RUNS {
        match one_run()? {
            None => return Ok(()),
            Some(gap) => {
                println!("run {run:>2}: outage {:>5} ms", gap.as_millis());
                outages.push(gap);
            }
        }
    }
    outages.sort();
    let pick = |q: f64| outages[((outages.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "failover over {} runs: p50 {} ms, p99 {} ms, max {} ms (target p50 <= 500, p99 <= 1000)",
        outages.len(),
        pick(0.5).as_millis(),
        pick(0.99).as_millis(),
        outages.last().map_or(0, |d| d.as_millis())
    );
    Ok(())
}
