//! FRR: zebra and bgpd (and bfdd), configured and queried through vtysh.

use std::{path::PathBuf, time::Duration};

use serde_json::Value;

use super::common::{Neighbor, START_TIMEOUT};
use crate::lab::{Lab, LabError, Ns, run, wait_until};

/// FRR: zebra (the kernel routes) and bgpd, with their vty sockets in the lab directory.
pub struct Frr {
    ns: Ns,
    dir: PathBuf,
    name: String,
}

/// An FRR `bgpd.conf` for `asn`/`router_id` with `neighbors` (IPv4 and IPv6 unicast activated per
/// the neighbor's family), connect retry 1 s (FRR's default 120 s would stall tests) and no eBGP
/// policy requirement (FRR 8.4 filters eBGP routes otherwise). `extra` goes inside `router bgp`.
pub fn frr_bgpd_conf(asn: u32, router_id: &str, neighbors: &[Neighbor], extra: &str) -> String {
    let mut conf = format!(
        "frr defaults traditional\nhostname {router_id}\nlog stdout informational\n!\nrouter bgp {asn}\n bgp router-id {router_id}\n no bgp ebgp-requires-policy\n no bgp default ipv4-unicast\n bgp bestpath as-path multipath-relax\n"
    );
    for n in neighbors {
        conf.push_str(&format!(
            " neighbor {} remote-as {}\n neighbor {} timers connect 1\n",
            n.address, n.asn, n.address
        ));
        if let Some(password) = &n.password {
            conf.push_str(&format!(" neighbor {} password {password}\n", n.address));
        }
        if let Some(port) = n.port {
            conf.push_str(&format!(" neighbor {} port {port}\n", n.address));
        }
        if n.passive {
            conf.push_str(&format!(" neighbor {} passive\n", n.address));
        }
        if n.graceful_restart {
            conf.push_str(&format!(" neighbor {} graceful-restart\n", n.address));
        }
        if let Some((ms, mult)) = n.bfd {
            conf.push_str(&format!(" neighbor {} bfd profile p{ms}x{mult}\n", n.address));
            // Without a known source, bgpd re-creates its BFD session with the address it learns
            // when BGP comes up: the BFD session flaps once right after BGP is Established.
            if let Some(local) = &n.local_address {
                conf.push_str(&format!(" neighbor {} update-source {local}\n", n.address));
            }
        }
    }
    conf.push_str(extra);
    for (family, v6) in [("ipv4 unicast", false), ("ipv6 unicast", true)] {
        conf.push_str(&format!(
            " address-family {family}\n  maximum-paths 16\n  maximum-paths ibgp 16\n"
        ));
        for n in neighbors.iter().filter(|n| n.address.contains(':') == v6) {
            conf.push_str(&format!("  neighbor {} activate\n", n.address));
        }
        conf.push_str(" exit-address-family\n");
    }
    conf
}

/// An FRR `bfdd.conf` with one profile `p<ms>x<mult>` per BFD setting of `neighbors` (the name
/// [`frr_bgpd_conf`] refers to).
pub fn frr_bfdd_conf(neighbors: &[Neighbor]) -> String {
    let mut conf = String::from("bfd\n");
    let mut seen = Vec::new();
    for (ms, mult) in neighbors.iter().filter_map(|n| n.bfd) {
        if !seen.contains(&(ms, mult)) {
            seen.push((ms, mult));
            conf.push_str(&format!(
                " profile p{ms}x{mult}\n  transmit-interval {ms}\n  receive-interval {ms}\n  detect-multiplier {mult}\n !\n"
            ));
        }
    }
    conf.push_str("!\n");
    conf
}

impl Frr {
    /// Starts zebra and bgpd in `ns` with `bgpd_conf`, and waits until bgpd answers.
    pub fn start(lab: &mut Lab, ns: &Ns, name: &str, bgpd_conf: &str) -> Result<Self, LabError> {
        Self::start_listening(lab, ns, name, bgpd_conf, 179)
    }

    /// As [`start`](Self::start), with bgpd listening on `port` (its `-p`; FRR has no config
    /// statement for it).
    pub fn start_listening(
        lab: &mut Lab,
        ns: &Ns,
        name: &str,
        bgpd_conf: &str,
        port: u16,
    ) -> Result<Self, LabError> {
        Self::start_daemons(lab, ns, name, bgpd_conf, port, None)
    }

    /// As [`start_listening`](Self::start_listening), with FRR's BFD daemon (bfdd) configured
    /// with `bfdd_conf` when given (started between zebra and bgpd, as FRR's init script does).
    pub fn start_daemons(
        lab: &mut Lab,
        ns: &Ns,
        name: &str,
        bgpd_conf: &str,
        port: u16,
        bfdd_conf: Option<&str>,
    ) -> Result<Self, LabError> {
        let dir = lab.dir().join(format!("frr-{name}"));
        lab.write(&format!("frr-{name}/zebra.conf"), "")?;
        lab.write(&format!("frr-{name}/bgpd.conf"), bgpd_conf)?;
        if let Some(conf) = bfdd_conf {
            lab.write(&format!("frr-{name}/bfdd.conf"), conf)?;
        }
        let daemons: &[&str] = if bfdd_conf.is_some() {
            &["zebra", "bfdd", "bgpd"]
        } else {
            &["zebra", "bgpd"]
        };
        // FRR drops privileges to user frr, which must own its directory (LAB-NOTES.md); the lab
        // directory above it is root's 0700 and must let frr through.
        run("chmod", &["0755", &lab.dir().display().to_string()])?;
        run("chown", &["-R", "frr:frr", &dir.display().to_string()])?;
        let d = dir.display().to_string();
        for &daemon in daemons {
            let mut command = ns.command(&format!("/usr/lib/frr/{daemon}"));
            command.args([
                "-u",
                "frr",
                "-g",
                "frr",
                "-f",
                &format!("{d}/{daemon}.conf"),
                "-i",
                &format!("{d}/{daemon}.pid"),
                "-z",
                &format!("{d}/zserv.api"),
                "--vty_socket",
                &d,
            ]);
            if daemon == "bgpd" {
                command.args(["-p", &port.to_string()]);
            }
            lab.spawn(&format!("frr-{name}-{daemon}"), command)?;
            // bgpd and bfdd connect to zebra's socket at start.
            let socket = dir.join(format!("{daemon}.vty"));
            wait_until(
                &format!("FRR {daemon} of {name} to start"),
                START_TIMEOUT,
                Duration::from_millis(50),
                || {
                    if socket.exists() {
                        Ok(())
                    } else {
                        Err(lab.log(&format!("frr-{name}-{daemon}")))
                    }
                },
            )?;
        }
        let frr = Self {
            ns: ns.clone(),
            dir,
            name: name.to_owned(),
        };
        wait_until(
            &format!("FRR {name} to answer vtysh"),
            START_TIMEOUT,
            Duration::from_millis(100),
            || frr.vtysh("show bgp summary").map(drop).map_err(|e| e.to_string()),
        )?;
        Ok(frr)
    }

    /// The router's name in the lab.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace it runs in.
    pub fn ns(&self) -> &Ns {
        &self.ns
    }

    /// Runs one vtysh command over the lab's vty socket.
    pub fn vtysh(&self, command: &str) -> Result<String, LabError> {
        run(
            "vtysh",
            &["--vty_socket", &self.dir.display().to_string(), "-c", command],
        )
    }

    /// Applies `line` inside `router bgp asn` on the running router (as an operator typing it into
    /// `configure terminal`), e.g. `neighbor 198.51.100.2 shutdown`.
    pub fn configure_bgp(&self, asn: u32, line: &str) -> Result<(), LabError> {
        run(
            "vtysh",
            &[
                "--vty_socket",
                &self.dir.display().to_string(),
                "-c",
                "configure terminal",
                "-c",
                &format!("router bgp {asn}"),
                "-c",
                line,
            ],
        )
        .map(drop)
    }

    /// Runs one vtysh command that answers JSON.
    pub fn json(&self, command: &str) -> Result<Value, LabError> {
        let text = self.vtysh(command)?;
        serde_json::from_str(&text).map_err(|e| LabError::Command {
            command: format!("vtysh -c '{command}'"),
            status: "unparsable JSON".into(),
            stderr: format!("{e}: {text}"),
        })
    }

    /// The BGP state of `neighbor` (`Established`, `Active`, ...).
    pub fn neighbor_state(&self, neighbor: &str) -> Result<String, LabError> {
        let value = self.json(&format!("show bgp neighbors {neighbor} json"))?;
        Ok(value[neighbor]["bgpState"]
            .as_str()
            .unwrap_or("unknown")
            .to_owned())
    }

    /// Waits until the session to `neighbor` is Established.
    pub fn wait_established(&self, neighbor: &str, timeout: Duration) -> Result<(), LabError> {
        wait_until(
            &format!("FRR {} session to {neighbor}", self.name),
            timeout,
            Duration::from_millis(100),
            || match self.neighbor_state(neighbor) {
                Ok(state) if state == "Established" => Ok(()),
                Ok(state) => Err(state),
                Err(e) => Err(e.to_string()),
            },
        )
    }

    /// The next hops of `prefix` in FRR's BGP table (empty when absent); multipath gives several.
    pub fn bgp_next_hops(&self, prefix: &str) -> Result<Vec<String>, LabError> {
        let family = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        let value = self.json(&format!("show bgp {family} unicast json"))?;
        let mut hops: Vec<String> = value["routes"][prefix]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|path| path["nexthops"].as_array().cloned().unwrap_or_default())
            .filter(|hop| hop["scope"].as_str() != Some("link-local"))
            .filter_map(|hop| hop["ip"].as_str().map(str::to_owned))
            .collect();
        hops.sort();
        hops.dedup();
        Ok(hops)
    }

    /// The kernel's route to `prefix` in the router's namespace (`ip route show <prefix>`).
    pub fn kernel_route(&self, prefix: &str) -> Result<String, LabError> {
        let family = if prefix.contains(':') { "-6" } else { "-4" };
        self.ns.ip(&[family, "route", "show", prefix])
    }
}
