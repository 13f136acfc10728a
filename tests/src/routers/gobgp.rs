//! GoBGP: `gobgpd`, configured by TOML and queried through its CLI.

use std::time::Duration;

use super::common::{Neighbor, START_TIMEOUT};
use crate::lab::{Lab, LabError, Ns, assert_documentation_address, wait_until};

/// GoBGP: `gobgpd` with its gRPC API on the namespace's own loopback.
pub struct Gobgp {
    ns: Ns,
    name: String,
}

/// The gRPC port of every lab `gobgpd` (each namespace has its own loopback, so they never clash).
pub const GOBGP_API_PORT: &str = "50051";

/// A `gobgpd.toml` for `asn`/`router_id` with `neighbors` (IPv4 and IPv6 unicast).
pub fn gobgp_conf(asn: u32, router_id: &str, neighbors: &[Neighbor], listen_port: i32) -> String {
    let mut conf =
        format!("[global.config]\n  as = {asn}\n  router-id = \"{router_id}\"\n  port = {listen_port}\n");
    for n in neighbors {
        conf.push_str(&format!(
            "\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{}\"\n    peer-as = {}\n",
            n.address, n.asn
        ));
        if let Some(password) = &n.password {
            conf.push_str(&format!("    auth-password = \"{password}\"\n"));
        }
        conf.push_str("  [neighbors.timers.config]\n    connect-retry = 1\n");
        if n.port.is_some() || n.passive || n.local_address.is_some() {
            conf.push_str("  [neighbors.transport.config]\n");
            if let Some(local) = &n.local_address {
                conf.push_str(&format!("    local-address = \"{local}\"\n"));
            }
            if let Some(port) = n.port {
                conf.push_str(&format!("    remote-port = {port}\n"));
            }
            if n.passive {
                conf.push_str("    passive-mode = true\n");
            }
        }
        let family = if n.address.contains(':') {
            "ipv6-unicast"
        } else {
            "ipv4-unicast"
        };
        if n.graceful_restart {
            conf.push_str(
                "  [neighbors.graceful-restart.config]\n    enabled = true\n    restart-time = 120\n",
            );
        }
        conf.push_str(&format!("  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{family}\"\n"));
        if n.graceful_restart {
            conf.push_str("    [neighbors.afi-safis.mp-graceful-restart.config]\n      enabled = true\n");
        }
    }
    conf
}

impl Gobgp {
    /// Starts `gobgpd` in `ns` with `toml` and waits until its API answers.
    pub fn start(lab: &mut Lab, ns: &Ns, name: &str, toml: &str) -> Result<Self, LabError> {
        let path = lab.write(&format!("gobgp-{name}/gobgpd.toml"), toml)?;
        let mut command = ns.command("gobgpd");
        command.args([
            "-f",
            &path.display().to_string(),
            "-p",
            "--api-hosts",
            &format!("127.0.0.1:{GOBGP_API_PORT}"),
            "--pprof-disable",
        ]);
        lab.spawn(&format!("gobgp-{name}"), command)?;
        let gobgp = Self {
            ns: ns.clone(),
            name: name.to_owned(),
        };
        wait_until(
            &format!("gobgpd {name} to answer"),
            START_TIMEOUT,
            Duration::from_millis(100),
            || {
                gobgp
                    .cli(&["global"])
                    .map(drop)
                    .map_err(|e| format!("{e}; log: {}", lab.log(&format!("gobgp-{name}"))))
            },
        )?;
        Ok(gobgp)
    }

    /// Runs the `gobgp` CLI against this daemon (inside its namespace).
    pub fn cli(&self, args: &[&str]) -> Result<String, LabError> {
        let mut full = vec!["-u", "127.0.0.1", "-p", GOBGP_API_PORT];
        full.extend_from_slice(args);
        self.ns.run("gobgp", &full)
    }

    /// Announces `prefix` with `next_hop` and ORIGIN IGP (as the speaker does; the CLI's default,
    /// INCOMPLETE, loses best-path selection to IGP paths and so never forms ECMP with them).
    pub fn announce(&self, prefix: &str, next_hop: &str) -> Result<(), LabError> {
        assert_documentation_address(prefix)?;
        let family = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        self.cli(&[
            "global", "rib", "add", "-a", family, prefix, "nexthop", next_hop, "origin", "igp",
        ])
        .map(drop)
    }

    /// Announces `prefix` without the documentation-range check: only for benchmarks, whose
    /// address sets (thousands of host routes) need RFC 2544's benchmarking range 198.18.0.0/15.
    pub fn announce_from_bench(&self, prefix: &str, next_hop: &str) -> Result<(), LabError> {
        let benchmarking = prefix.starts_with("198.18.") || prefix.starts_with("198.19.");
        if !benchmarking {
            assert_documentation_address(prefix)?;
        }
        self.cli(&[
            "global", "rib", "add", "-a", "ipv4", prefix, "nexthop", next_hop, "origin", "igp",
        ])
        .map(drop)
    }

    /// Withdraws `prefix`.
    pub fn withdraw(&self, prefix: &str) -> Result<(), LabError> {
        let family = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        self.cli(&["global", "rib", "del", "-a", family, prefix])
            .map(drop)
    }

    /// The state of the session to `neighbor` as the CLI prints it (`Establ`, `Active`, ...).
    pub fn neighbor_state(&self, neighbor: &str) -> Result<String, LabError> {
        let text = self.cli(&["neighbor", neighbor])?;
        Ok(text
            .lines()
            .find_map(|l| l.trim().strip_prefix("BGP state = "))
            .map(|s| s.split(',').next().unwrap_or(s).trim().to_owned())
            .unwrap_or_else(|| "unknown".into()))
    }

    /// The router's name in the lab.
    pub fn name(&self) -> &str {
        &self.name
    }
}
