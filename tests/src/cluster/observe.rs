//! What a test observes of a [`LabCluster`] from outside: HTTP from the clients, the router's
//! next hops and BFD sessions, the node answering ARP for a Service IP, and probing through a
//! layer2 failover.

use std::time::Duration;

use super::{Failover, LabCluster, POLL, ProbeLog, WAIT, host_prefix};
use crate::lab::{LabError, Ns, wait_until};

impl LabCluster {
    /// One HTTP GET from `from` to `ip` port 80: the answering node's name.
    pub fn get(&self, from: &Ns, ip: &str) -> Result<String, LabError> {
        let tool = self.bins.lab_tool.display().to_string();
        from.run(&tool, &["get", ip, "--timeout-ms", "1000"])
            .map(|out| out.trim().to_owned())
    }

    /// Waits until `ip` answers HTTP from `from`; the answering node.
    pub fn wait_reachable(&self, from: &Ns, ip: &str) -> Result<String, LabError> {
        wait_until(
            &format!("{ip} to answer HTTP from {}", from.name()),
            WAIT,
            POLL,
            || self.get(from, ip).map_err(|e| e.to_string()),
        )
    }

    /// Waits until `ip` no longer answers HTTP from `from`.
    pub fn wait_unreachable(&self, from: &Ns, ip: &str) -> Result<(), LabError> {
        wait_until(
            &format!("{ip} to stop answering from {}", from.name()),
            WAIT,
            POLL,
            || match self.get(from, ip) {
                Ok(node) => Err(format!("{node} still answers")),
                Err(_) => Ok(()),
            },
        )
    }

    /// The router's BGP next hops for `ip`/32 (or /128).
    pub fn next_hops(&self, ip: &str) -> Result<Vec<String>, LabError> {
        self.router.next_hops(&host_prefix(ip))
    }

    /// Waits until the router (built with BFD) has `sessions` BFD sessions Up.
    pub fn wait_bfd_up(&self, sessions: usize) -> Result<(), LabError> {
        wait_until(
            &format!("{sessions} BFD sessions Up at the router"),
            WAIT,
            POLL,
            || {
                let mut up = 0;
                for node in &self.nodes {
                    let view = self.router.bfd(&node.ip).map_err(|e| e.to_string())?;
                    up += usize::from(view.is_some_and(|v| v.up));
                }
                if up == sessions {
                    Ok(())
                } else {
                    Err(format!("{up} up"))
                }
            },
        )
    }

    /// Waits until the router's kernel route to `ip` has `paths` next hops (zebra installs what
    /// the BGP table holds a moment later; flows hash over the kernel's paths).
    pub fn wait_kernel_paths(&self, ip: &str, paths: usize) -> Result<(), LabError> {
        wait_until(&format!("{paths} kernel paths to {ip}"), WAIT, POLL, || {
            let route = self
                .router
                .kernel_route(&host_prefix(ip))
                .map_err(|e| e.to_string())?
                .unwrap_or_default();
            let n = route
                .matches("nexthop via")
                .count()
                .max(usize::from(route.contains(" via ")));
            if n == paths { Ok(()) } else { Err(route) }
        })
    }

    /// Waits until the router's next hops for `ip` are exactly `want` (sorted node IPs).
    pub fn wait_next_hops(&self, ip: &str, want: &[&str]) -> Result<(), LabError> {
        wait_until(&format!("router next hops {want:?} for {ip}"), WAIT, POLL, || {
            let hops = self.next_hops(ip).map_err(|e| e.to_string())?;
            if hops == want {
                Ok(())
            } else {
                Err(format!("{hops:?}"))
            }
        })
    }

    /// The node whose MAC answers ARP for `ip` on the LAN (exactly one must), waiting for it.
    pub fn layer2_answerer(&self, ip: &str) -> Result<usize, LabError> {
        wait_until(
            &format!("exactly one node answers ARP for {ip}"),
            WAIT,
            Duration::from_millis(200),
            || {
                let (_, text) = self.lan_client.arping("eth0", ip).map_err(|e| e.to_string())?;
                let hits: Vec<usize> = (0..self.nodes.len())
                    .filter(|i| {
                        self.nodes[*i]
                            .ns
                            .mac("eth0")
                            .is_ok_and(|mac| text.contains(&mac.to_lowercase()))
                    })
                    .collect();
                match hits.as_slice() {
                    [one] => Ok(*one),
                    _ => Err(format!("answers from nodes {hits:?}: {}", text.trim())),
                }
            },
        )
    }

    /// Whether any node answers ARP for `ip` (one arping of 1 s).
    pub fn answers_arp(&self, ip: &str) -> Result<bool, LabError> {
        Ok(self.lan_client.arping("eth0", ip)?.0)
    }

    /// Probes `ip` from `from` with an HTTP GET every 10 ms (100 ms timeout) while `act` runs
    /// after one second, for `seconds` in all; returns what the probe saw.
    pub fn probe_while(
        &mut self,
        from: &Ns,
        ip: &str,
        seconds: u64,
        act: impl FnOnce(&mut Self) -> Result<(), LabError>,
    ) -> Result<ProbeLog, LabError> {
        self.probe_while_with_timeout(from, ip, seconds, Duration::from_millis(100), act)
    }

    /// [`Self::probe_while`] with each GET given `timeout`. A test that asserts zero loss uses
    /// a timeout long enough to ride out a stalled process on a loaded machine yet shorter than
    /// TCP's 1 s initial retransmission timeout (RFC 6298 section 2), so a SYN the network drops
    /// still counts as lost, and a missing route fails at once (ICMP unreachable).
    pub fn probe_while_with_timeout(
        &mut self,
        from: &Ns,
        ip: &str,
        seconds: u64,
        timeout: Duration,
        act: impl FnOnce(&mut Self) -> Result<(), LabError>,
    ) -> Result<ProbeLog, LabError> {
        self.probes += 1;
        let log = format!("probe-{}", self.probes);
        let mut probe = from.command(&self.bins.lab_tool.display().to_string());
        let count = (seconds * 100).to_string();
        probe.args([
            "probe",
            ip,
            "--interval-ms",
            "10",
            "--timeout-ms",
            &timeout.as_millis().to_string(),
            "--count",
            &count,
        ]);
        self.lab.spawn(&log, probe)?;
        std::thread::sleep(Duration::from_secs(1));
        act(self)?;
        let want = usize::try_from(seconds * 100).unwrap_or(usize::MAX);
        let text = wait_until(
            &format!("the probe of {ip} to finish"),
            Duration::from_secs(seconds + 30),
            POLL,
            || {
                let text = self.lab.log(&log);
                if text
                    .lines()
                    .filter(|l| l.contains(" ok ") || l.contains(" fail "))
                    .count()
                    >= want
                {
                    Ok(text)
                } else {
                    Err(format!("{} lines", text.lines().count()))
                }
            },
        )?;
        Ok(ProbeLog::parse(&text))
    }

    /// Kills the speaker of the node answering ARP for the layer2 `ip` and takes its LAN link
    /// down (the node is lost), while the LAN client probes `ip`; returns the measured outage.
    pub fn fail_layer2_winner(&mut self, ip: &str) -> Result<Failover, LabError> {
        let first = self.layer2_answerer(ip)?;
        let from = self.wait_reachable(&self.lan_client.clone(), ip)?;
        // Heartbeats settle (every node hears every other) before the node is lost.
        std::thread::sleep(Duration::from_secs(1));
        let lan_client = self.lan_client.clone();
        let log = self.probe_while(&lan_client, ip, 8, |cluster| {
            cluster.kill_speaker(first)?;
            cluster.nodes[first]
                .ns
                .ip(&["link", "set", "eth0", "down"])
                .map(drop)
        })?;
        let to = log.last_answer().unwrap_or_default();
        Ok(Failover {
            from,
            to,
            outage: log.longest_gap(),
            probes: (log.sent(), log.failed()),
        })
    }
}
