//! BIRD 2, configured by `bird.conf` and queried through `birdc`.

use std::{path::PathBuf, process::Command, time::Duration};

use super::common::{Neighbor, START_TIMEOUT};
use crate::lab::{Lab, LabError, Ns, run, wait_until};

/// BIRD 2, in the foreground, with its control socket in the lab directory.
pub struct Bird {
    ns: Ns,
    ctl: PathBuf,
    name: String,
}

/// A `bird.conf` with device and kernel protocols (BIRD needs both to install routes) and one BGP
/// protocol per neighbor, importing and exporting everything.
pub fn bird_conf(asn: u32, router_id: &str, local: &str, neighbors: &[Neighbor], extra: &str) -> String {
    let mut conf = format!(
        "router id {router_id};\nprotocol device {{}}\nprotocol kernel {{ ipv4 {{ export all; }}; merge paths on; }}\nprotocol kernel {{ ipv6 {{ export all; }}; merge paths on; }}\n{extra}\n"
    );
    for (i, n) in neighbors.iter().enumerate() {
        let channel = if n.address.contains(':') { "ipv6" } else { "ipv4" };
        let mut options = String::new();
        if let Some(password) = &n.password {
            options.push_str(&format!("  password \"{password}\";\n"));
        }
        if n.passive {
            options.push_str("  passive on;\n");
        }
        let port = n.port.map(|p| format!(" port {p}")).unwrap_or_default();
        conf.push_str(&format!(
            "protocol bgp peer{i} {{\n  local {local} as {asn};\n  neighbor {}{port} as {};\n  connect retry time 1;\n{options}  {channel} {{ import all; export all; }};\n}}\n",
            n.address, n.asn
        ));
    }
    conf
}

impl Bird {
    /// Starts `bird -f` in `ns` with `conf` and waits until `birdc` answers.
    pub fn start(lab: &mut Lab, ns: &Ns, name: &str, conf: &str) -> Result<Self, LabError> {
        let path = lab.write(&format!("bird-{name}/bird.conf"), conf)?;
        let ctl = lab.dir().join(format!("bird-{name}/bird.ctl"));
        let mut command: Command = ns.command("bird");
        command.args([
            "-f",
            "-c",
            &path.display().to_string(),
            "-s",
            &ctl.display().to_string(),
        ]);
        lab.spawn(&format!("bird-{name}"), command)?;
        let bird = Self {
            ns: ns.clone(),
            ctl,
            name: name.to_owned(),
        };
        wait_until(
            &format!("BIRD {name} to answer"),
            START_TIMEOUT,
            Duration::from_millis(100),
            || {
                bird.birdc(&["show", "status"])
                    .map(drop)
                    .map_err(|e| format!("{e}; log: {}", lab.log(&format!("bird-{name}"))))
            },
        )?;
        Ok(bird)
    }

    /// Runs `birdc` on this router's control socket.
    pub fn birdc(&self, args: &[&str]) -> Result<String, LabError> {
        let ctl = self.ctl.display().to_string();
        let mut full = vec!["-s", ctl.as_str()];
        full.extend_from_slice(args);
        run("birdc", &full)
    }

    /// Whether BGP protocol `peer<index>` is Established.
    pub fn established(&self, index: usize) -> Result<bool, LabError> {
        Ok(self
            .birdc(&["show", "protocols", &format!("peer{index}")])?
            .contains("Established"))
    }

    /// The kernel's route to `prefix` in the router's namespace.
    pub fn kernel_route(&self, prefix: &str) -> Result<String, LabError> {
        let family = if prefix.contains(':') { "-6" } else { "-4" };
        self.ns.ip(&[family, "route", "show", prefix])
    }

    /// The router's name in the lab.
    pub fn name(&self) -> &str {
        &self.name
    }
}
