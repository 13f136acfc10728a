//! Layer2 failover with heartbeats (IPv4, and IPv6-only: [`Family`]): three nodes run the speaker,
//! a client pings the Service IP every 10 ms, the winning node is killed (speaker process and
//! link); another node takes over and the client's pings resume. Prints the measured outage. Each node holds the IP on `lo` with
//! `arp_ignore=1` (what kube-proxy's IPVS mode with strictARP does): its kernel answers the pings
//! but never ARP, so only the speaker decides who is reached. Needs root; skips otherwise.
//!
//! Long because it holds eleven scenarios (three-node and two-node failover, partitions, hand-over,
//! bad heartbeats, IPv6-only) over one topology and one set of observers (`answering`,
//! `until_answered_by`, `foreign_claims`); one file keeps them in one test binary, which links once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::Path, time::Duration};

use oxelb_tests::lab::{Lab, LabError, Ns, lab_or_skip, wait_until};

const WAIT: Duration = Duration::from_secs(20);

fn write(dir: &Path, rel: &str, body: &str) {
    oxelb_tests::lab::write_file(dir, rel, body).unwrap();
}

/// The lab's nodes (name, namespace), the client, and the objects directory.
pub type Topology = (Vec<(String, Ns)>, Ns, std::path::PathBuf);

/// Three nodes and a client on one switch, a speaker on each node.
pub fn topology(lab: &mut Lab) -> Result<Topology, LabError> {
    let (nodes, client, dir) = network(lab, 3)?;
    for (name, ns) in &nodes {
        lab.spawn(&format!("speaker-{name}"), speaker(ns, &dir, name))?;
    }
    Ok((nodes, client, dir))
}

/// The speaker of node `name` (in `ns`), with the lab's heartbeat key; default timing.
pub fn speaker(ns: &Ns, dir: &Path, name: &str) -> std::process::Command {
    let mut command = ns.speaker(env!("CARGO_BIN_EXE_oxelb-speaker"), dir, name, "info");
    command.args([
        "--heartbeat-key-file",
        &dir.join("..").join("heartbeat.key").display().to_string(),
    ]);
    command
}

/// The address family of a lab's node network and Service IP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// 192.0.2.0/24, Service IP 192.0.2.50.
    V4,
    /// IPv6 only: 2001:db8::/64, Service IP 2001:db8::42.
    V6,
}

impl Family {
    /// The Service IP.
    pub fn service_ip(self) -> &'static str {
        match self {
            Family::V4 => "192.0.2.50",
            Family::V6 => "2001:db8::42",
        }
    }

    /// Node `i`'s address, without and with its prefix length.
    fn node(self, i: usize) -> (String, String) {
        match self {
            Family::V4 => (format!("192.0.2.1{i}"), format!("192.0.2.1{i}/24")),
            Family::V6 => (format!("2001:db8::1{i}"), format!("2001:db8::1{i}/64")),
        }
    }

    /// What answers for the Service IP, as the client's ARP (IPv4) or NDP (IPv6) probe prints it.
    fn probe(self, client: &Ns) -> Result<String, LabError> {
        match self {
            Family::V4 => client.arping("eth0", self.service_ip()).map(|(_, text)| text),
            Family::V6 => client
                .output(
                    "ndisc6",
                    &["-1", "-r", "2", "-w", "300", self.service_ip(), "eth0"],
                )
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned()),
        }
    }
}

/// `count` nodes (up to 9) and a client on one switch, with the objects (one layer2 Service at
/// 192.0.2.50, held by every node on `lo` under strictARP), but no speaker yet: the same network
/// serves oxelb and the keepalived anchor of the benchmark.
pub fn network(lab: &mut Lab, count: usize) -> Result<Topology, LabError> {
    network_of(lab, count, Family::V4)
}

/// [`network`] in `family`: with [`Family::V6`] the nodes' only addresses (and InternalIPs) are
/// IPv6, and so is the Service IP (the kernel answers NS only for addresses of the receiving
/// interface, so the IP on `lo` needs no strictARP).
pub fn network_of(lab: &mut Lab, count: usize, family: Family) -> Result<Topology, LabError> {
    let switch = lab.netns("sw")?;
    lab.bridge(&switch, "lan")?;
    let dir = lab.dir().join("objects");
    let (pool, client_ip, host) = match family {
        Family::V4 => ("192.0.2.48/28", "192.0.2.100/24", "/32"),
        Family::V6 => ("2001:db8::40/124", "2001:db8::100/64", "/128"),
    };
    let ip = family.service_ip();
    let mut objects = format!(
        "apiVersion: network.kubesphere.io/v1alpha2\nkind: Eip\nmetadata: {{name: l2}}\nspec: {{address: '{pool}', protocol: layer2, interface: eth0}}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: default, annotations: {{lb.kubesphere.io/v1alpha1: openelb}}}}\nspec: {{type: LoadBalancer, ports: [{{port: 80}}]}}\n",
    );
    let mut nodes = Vec::new();
    for i in 1..=count {
        let name = format!("n{i}");
        let ns = lab.netns(&name)?;
        let port = format!("lan-{name}");
        lab.veth(&switch, &port, &ns, "eth0")?;
        lab.attach(&switch, &port, "lan")?;
        let (address, cidr) = family.node(i);
        lab.addr(&ns, "eth0", &cidr)?;
        if family == Family::V4 {
            ns.strict_arp()?;
        }
        lab.addr(&ns, "lo", &format!("{ip}{host}"))?;
        objects.push_str(&format!(
            "---\napiVersion: v1\nkind: Node\nmetadata: {{name: {name}}}\n"
        ));
        write(
            &dir,
            &format!("status/nodes.core/{name}.yaml"),
            &format!(
                "apiVersion: v1\nkind: Node\nmetadata: {{name: {name}}}\nstatus: {{conditions: [{{type: Ready, status: 'True'}}], addresses: [{{type: InternalIP, address: '{address}'}}]}}\n"
            ),
        );
        nodes.push((name, ns));
    }
    let client = lab.netns("client")?;
    lab.veth(&switch, "lan-c", &client, "eth0")?;
    lab.attach(&switch, "lan-c", "lan")?;
    lab.addr(&client, "eth0", client_ip)?;
    write(&dir, "objects.yaml", &objects);
    write(
        &dir,
        "status/services.core/default/web.yaml",
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: default, finalizers: [finalizer.lb.kubesphere.io/v1alpha1]}}\nstatus: {{loadBalancer: {{ingress: [{{ip: '{ip}'}}]}}}}\n"
        ),
    );
    std::fs::write(dir.join("..").join("heartbeat.key"), b"lab-shared-secret").unwrap();
    Ok((nodes, client, dir))
}

/// The node whose MAC the client resolves 192.0.2.50 to.
pub fn winner(nodes: &[(String, Ns)], client: &Ns) -> Result<usize, LabError> {
    winner_of(nodes, client, Family::V4)
}

/// The one node whose MAC answers the client's ARP (IPv4) or NDP (IPv6) probe for the Service IP.
pub fn winner_of(nodes: &[(String, Ns)], client: &Ns, family: Family) -> Result<usize, LabError> {
    wait_until(
        "one node answers for the Service IP",
        WAIT,
        Duration::from_millis(200),
        || {
            let text = family.probe(client).map_err(|e| e.to_string())?.to_lowercase();
            let hits: Vec<usize> = (0..nodes.len())
                .filter(|i| {
                    nodes[*i]
                        .1
                        .mac("eth0")
                        .is_ok_and(|mac| text.contains(&mac.to_lowercase()))
                })
                .collect();
            match hits.as_slice() {
                [one] => Ok(*one),
                _ => Err(format!("answers from {hits:?}: {text}")),
            }
        },
    )
}

/// The longest gap between successive ping replies, from `ping -D` output.
pub fn longest_gap(log: &str) -> Option<Duration> {
    let times: Vec<f64> = log
        .lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse().ok())
        .collect();
    times
        .windows(2)
        .map(|w| w[1] - w[0])
        .fold(None, |m: Option<f64>, g| Some(m.map_or(g, |m| m.max(g))))
        .map(Duration::from_secs_f64)
}

#[test]
fn killing_the_winner_moves_the_ip_and_pings_resume() -> Result<(), LabError> {
    let Some(mut lab) = lab_or_skip("killing_the_winner_moves_the_ip_and_pings_resume")? else {
        return Ok(());
    };
    let (nodes, client, _dir) = topology(&mut lab)?;
    let first = winner(&nodes, &client)?;
    // Give heartbeats time to settle, then ping every 10 ms for 6 s.
    std::thread::sleep(Duration::from_secs(1));
    ping(&mut lab, &client, 400, "ping")?;
    std::thread::sleep(Duration::from_secs(2));
    let (name, ns) = &nodes[first];
    lab.kill(&format!("speaker-{name}"));
    ns.ip(&["link", "set", "eth0", "down"])?;
    let second = winner(&nodes, &client)?;
    assert_ne!(second, first, "the dead node still answers");
    let gap = ping_gap(&lab, "ping")?;
    println!("failover: the client's pings paused for {} ms", gap.as_millis());
    // Functional bound only (detection is 200 ms): the figure itself is for the benchmark.
    assert!(gap < Duration::from_secs(5), "pings did not resume: {gap:?}");
    let survivors: Vec<String> = (0..nodes.len())
        .filter(|i| *i != first)
        .map(|i| lab.log(&format!("speaker-{}", nodes[i].0)))
        .collect();
    assert!(
        survivors.iter().any(|l| l.contains("announcing from this node")),
        "{survivors:?}"
    );
    Ok(())
}

#[test]
fn a_partitioned_winner_goes_silent_and_exactly_one_other_node_answers() -> Result<(), LabError> {
    let Some(mut lab) = lab_or_skip("a_partitioned_winner_goes_silent_and_exactly_one_other_node_answers")?
    else {
        return Ok(());
    };
    let (nodes, client, _dir) = topology(&mut lab)?;
    let first = winner(&nodes, &client)?;
    std::thread::sleep(Duration::from_secs(1));
    // Cut the winner off from the other nodes both ways (blackhole routes; its link stays up, so the
    // client still reaches it): no heartbeats cross the cut.
    let winner_ip = format!("192.0.2.1{}/32", first + 1);
    for (i, (_, other)) in nodes.iter().enumerate().filter(|(i, _)| *i != first) {
        nodes[first]
            .1
            .ip(&["route", "add", "blackhole", &format!("192.0.2.1{}/32", i + 1)])?;
        other.ip(&["route", "add", "blackhole", &winner_ip])?;
    }
    // It sees 1 of 3 (no majority) and stops; the other two see 2 of 3 and one of them takes over.
    std::thread::sleep(Duration::from_secs(1));
    let second = winner(&nodes, &client)?;
    assert_ne!(second, first, "the partitioned node still answers");
    let log = lab.log(&format!("speaker-{}", nodes[first].0));
    assert!(log.contains("lost standing"), "{log}");
    Ok(())
}

fn endpoints_on(node: &str) -> String {
    format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: web-x, namespace: default, labels: {{kubernetes.io/service-name: web}}}}\naddressType: IPv4\nendpoints: [{{addresses: [198.51.100.7], nodeName: {node}, conditions: {{ready: true}}}}]\n"
    )
}

#[test]
fn with_traffic_policy_local_the_ip_follows_the_ready_endpoint() -> Result<(), LabError> {
    let Some(mut lab) = lab_or_skip("with_traffic_policy_local_the_ip_follows_the_ready_endpoint")? else {
        return Ok(());
    };
    let (nodes, client, dir) = topology(&mut lab)?;
    // Make the Service Local, with its one endpoint on n2.
    let objects = std::fs::read_to_string(dir.join("objects.yaml"))
        .unwrap()
        .replace(
            "spec: {type: LoadBalancer, ports: [{port: 80}]}",
            "spec: {type: LoadBalancer, externalTrafficPolicy: Local, ports: [{port: 80}]}",
        );
    write(&dir, "objects.yaml", &objects);
    write(&dir, "endpoints.yaml", &endpoints_on("n2"));
    let index = |name: &str| nodes.iter().position(|(n, _)| n == name).unwrap();
    wait_until(
        "n2 answers (its endpoint)",
        WAIT,
        Duration::from_millis(200),
        || {
            let who = winner(&nodes, &client).map_err(|e| e.to_string())?;
            if who == index("n2") {
                Ok(())
            } else {
                Err(format!("{} answers", nodes[who].0))
            }
        },
    )?;
    // The endpoint moves to n3: so does the IP.
    write(&dir, "endpoints.yaml", &endpoints_on("n3"));
    wait_until(
        "n3 answers after the endpoint moved",
        WAIT,
        Duration::from_millis(200),
        || {
            let who = winner(&nodes, &client).map_err(|e| e.to_string())?;
            if who == index("n3") {
                Ok(())
            } else {
                Err(format!("{} answers", nodes[who].0))
            }
        },
    )?;
    Ok(())
}

#[test]
fn a_missing_interface_is_an_event_on_the_eip_not_a_crash() -> Result<(), LabError> {
    let Some(mut lab) = lab_or_skip("a_missing_interface_is_an_event_on_the_eip_not_a_crash")? else {
        return Ok(());
    };
    let (nodes, client, dir) = topology(&mut lab)?;
    winner(&nodes, &client)?;
    let objects = std::fs::read_to_string(dir.join("objects.yaml"))
        .unwrap()
        .replace("interface: eth0", "interface: eth9");
    write(&dir, "objects.yaml", &objects);
    wait_until("InterfaceMissing Event", WAIT, Duration::from_millis(200), || {
        let events = std::fs::read_to_string(dir.join("status/events.yaml")).unwrap_or_default();
        if events.contains("InterfaceMissing") && events.contains("eth9") {
            Ok(())
        } else {
            Err(events)
        }
    })?;
    // Nobody answers now, and every speaker still runs.
    let (answered, _) = client.arping("eth0", "192.0.2.50")?;
    assert!(!answered);
    for (name, _) in &nodes {
        assert!(
            !lab.log(&format!("speaker-{name}")).contains("panicked"),
            "{name} crashed"
        );
    }
    Ok(())
}

#[test]
fn a_one_way_partition_leaves_exactly_one_answerer() -> Result<(), LabError> {
    let Some(mut lab) = lab_or_skip("a_one_way_partition_leaves_exactly_one_answerer")? else {
        return Ok(());
    };
    let (nodes, client, _dir) = topology(&mut lab)?;
    let first = winner(&nodes, &client)?;
    std::thread::sleep(Duration::from_secs(1));
    // The winner can no longer send to the other nodes, but still hears them: they stop hearing it
    // and elect another node; it must notice that they no longer hear it, and go silent.
    for (i, _) in nodes.iter().enumerate().filter(|(i, _)| *i != first) {
        nodes[first]
            .1
            .ip(&["route", "add", "blackhole", &format!("192.0.2.1{}/32", i + 1)])?;
    }
    std::thread::sleep(Duration::from_secs(1));
    let second = winner(&nodes, &client)?;
    assert_ne!(second, first, "the winner that is not heard still answers");
    Ok(())
}

/// Runs `ping` from the client at the Service IP every 10 ms, `count` times, as `log`.
pub fn ping(lab: &mut Lab, client: &Ns, count: u32, log: &str) -> Result<(), LabError> {
    let mut ping = client.command("ping");
    ping.args([
        "-D",
        "-i",
        "0.01",
        "-c",
        &count.to_string(),
        "-W",
        "1",
        "192.0.2.50",
    ]);
    lab.spawn(log, ping)?;
    Ok(())
}

/// The outage a loss at `at` (Unix seconds, as `ping -D` prints) caused: the longest pause between
/// successive replies among those that end after `at` and start within 1 s of it; and the jitter
/// floor: the longest pause in the second before `at` (what the loaded machine alone causes).
pub fn outage_at(log: &str, at: f64) -> Option<(Duration, Duration)> {
    let times: Vec<f64> = log
        .lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse().ok())
        .collect();
    let widest = |keep: &dyn Fn(f64, f64) -> bool| {
        times
            .windows(2)
            .filter(|w| keep(w[0], w[1]))
            .map(|w| w[1] - w[0])
            .fold(None, |m: Option<f64>, g| Some(m.map_or(g, |m| m.max(g))))
    };
    let outage = widest(&|a, b| b > at && a < at + 1.0)?;
    let floor = widest(&|a, b| b <= at && a >= at - 1.0).unwrap_or(0.0);
    Some((Duration::from_secs_f64(outage), Duration::from_secs_f64(floor)))
}

/// Now, in Unix seconds (to compare with `ping -D`'s timestamps).
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Waits for `ping` (started as `log`) to finish; returns the longest pause between its replies.
pub fn ping_gap(lab: &Lab, log: &str) -> Result<Duration, LabError> {
    wait_until("ping finished", WAIT, Duration::from_millis(100), || {
        let out = lab.log(log);
        if out.contains("packets transmitted") {
            Ok(())
        } else {
            Err(out.lines().last().unwrap_or("").to_owned())
        }
    })?;
    let out = lab.log(log);
    longest_gap(&out).ok_or_else(|| LabError::Unexpected(format!("no ping replies:\n{out}")))
}

#[test]
fn a_stopping_winner_hands_over_before_it_goes() -> Result<(), LabError> {
    let Some(mut lab) = lab_or_skip("a_stopping_winner_hands_over_before_it_goes")? else {
        return Ok(());
    };
    let (nodes, client, _dir) = topology(&mut lab)?;
    let first = winner(&nodes, &client)?;
    std::thread::sleep(Duration::from_secs(1));
    ping(&mut lab, &client, 300, "ping")?;
    std::thread::sleep(Duration::from_secs(1));
    // A rolling update: SIGTERM, the process exits, then the node goes (link down).
    let (name, ns) = &nodes[first];
    assert!(lab.stop(&format!("speaker-{name}"), Duration::from_secs(5)));
    ns.ip(&["link", "set", "eth0", "down"])?;
    let second = winner(&nodes, &client)?;
    assert_ne!(second, first, "the stopped node still answers");
    let gap = ping_gap(&lab, "ping")?;
    println!(
        "graceful hand-over: the client's pings paused for {} ms",
        gap.as_millis()
    );
    assert!(gap < Duration::from_secs(5), "pings did not resume: {gap:?}");
    let log = lab.log(&format!("speaker-{name}"));
    assert!(log.contains("told the peers this speaker is leaving"), "{log}");
    let survivor = lab.log(&format!("speaker-{}", nodes[second].0));
    assert!(survivor.contains("peer is leaving"), "{survivor}");
    Ok(())
}

/// Two nodes with speakers, node n(i+1) learning every change `delays[i]` ms late (skewed views,
/// as separate watches of a real apiserver); once both have settled, returns them (n1, n2), the
/// client and the objects directory.
fn two_nodes(lab: &mut Lab, delays: [u64; 2]) -> Result<Topology, LabError> {
    let (nodes, client, dir) = network(lab, 2)?;
    for (i, (name, ns)) in nodes.iter().enumerate() {
        let mut command = speaker(ns, &dir, name);
        command.env("OXELB_DIR_DELAY_MS", delays[i].to_string());
        lab.spawn(&format!("speaker-{name}"), command)?;
    }
    winner(&nodes, &client)?;
    all_settled(lab, &nodes)?;
    Ok((nodes, client, dir))
}

/// Waits until every node's speaker has settled its view of the peers (it has standing, which
/// needs a majority heard, or the two-node tie-break).
fn all_settled(lab: &Lab, nodes: &[(String, Ns)]) -> Result<(), LabError> {
    for (name, _) in nodes {
        wait_until(
            &format!("{name} settles"),
            WAIT,
            Duration::from_millis(100),
            || {
                let log = lab.log(&format!("speaker-{name}"));
                if log.contains("view of the peers settled") {
                    Ok(())
                } else {
                    Err(log)
                }
            },
        )?;
    }
    Ok(())
}

/// An IP of the lab's pool (192.0.2.48/28) that the rendezvous election gives to `node` between
/// n1 and n2, put on both nodes' `lo` (strictARP: only speakers answer ARP for it) and given to
/// Service `default/web` in place of 192.0.2.50.
fn ip_won_by(lab: &mut Lab, nodes: &[(String, Ns)], dir: &Path, node: &str) -> Result<String, LabError> {
    use oxelb_speaker_core::election::weight;
    let other = if node == "n1" { "n2" } else { "n1" };
    let ip = (49u8..=62)
        .map(|last| std::net::IpAddr::from([192, 0, 2, last]))
        .find(|ip| weight(node, *ip) > weight(other, *ip))
        .ok_or_else(|| LabError::Unexpected(format!("no IP of the pool is won by {node}")))?
        .to_string();
    for (_, ns) in nodes {
        lab.addr(ns, "lo", &format!("{ip}/32"))?;
    }
    write(
        dir,
        "status/services.core/default/web.yaml",
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: default, finalizers: [finalizer.lb.kubesphere.io/v1alpha1]}}\nstatus: {{loadBalancer: {{ingress: [{{ip: '{ip}'}}]}}}}\n"
        ),
    );
    Ok(ip)
}

/// Which nodes answer one ARP probe for `ip` now (no waiting).
fn answering(nodes: &[(String, Ns)], client: &Ns, ip: &str) -> Result<Vec<usize>, LabError> {
    let (_, text) = client.arping("eth0", ip)?;
    Ok((0..nodes.len())
        .filter(|i| {
            nodes[*i]
                .1
                .mac("eth0")
                .is_ok_and(|mac| text.contains(&mac.to_lowercase()))
        })
        .collect())
}

/// Waits until exactly node `who` answers for `ip`; returns how long that took.
fn until_answered_by(
    nodes: &[(String, Ns)],
    client: &Ns,
    ip: &str,
    who: usize,
) -> Result<Duration, LabError> {
    let started = std::time::Instant::now();
    wait_until(
        &format!("{} answers {ip}", nodes[who].0),
        WAIT,
        Duration::from_millis(20),
        || match answering(nodes, client, ip).map_err(|e| e.to_string())? {
            hits if hits == [who] => Ok(()),
            hits => Err(format!("answers from {hits:?}")),
        },
    )?;
    Ok(started.elapsed())
}

/// Waits until exactly one node (any) answers for `ip`.
fn until_one_answers(nodes: &[(String, Ns)], client: &Ns, ip: &str) -> Result<(), LabError> {
    wait_until(
        &format!("one answerer for {ip}"),
        WAIT,
        Duration::from_millis(100),
        || match answering(nodes, client, ip).map_err(|e| e.to_string())? {
            hits if hits.len() == 1 => Ok(()),
            hits => Err(format!("answers from {hits:?}")),
        },
    )
}

/// For `probes` ARP probes in a row, `ip` is answered by exactly node `who`.
fn stays_answered_by(
    nodes: &[(String, Ns)],
    client: &Ns,
    ip: &str,
    who: usize,
    probes: usize,
) -> Result<(), LabError> {
    for probe in 0..probes {
        let hits = answering(nodes, client, ip)?;
        if hits != [who] {
            return Err(LabError::Unexpected(format!(
                "probe {probe}: {ip} answered by {hits:?}, not only {}",
                nodes[who].0
            )));
        }
    }
    Ok(())
}

/// The lines where a speaker saw another MAC claim an IP it answers for (two answerers).
fn foreign_claims(lab: &Lab, nodes: &[(String, Ns)]) -> Vec<String> {
    nodes
        .iter()
        .flat_map(|(name, _)| {
            lab.log(&format!("speaker-{name}"))
                .lines()
                .filter(|l| l.contains("another MAC claims"))
                .map(|l| format!("{name}: {l}"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Cuts the heartbeats between n1 and n2 both ways (blackhole routes; both still reach the client
/// and the objects directory, the lab's apiserver).
fn cut_heartbeats(nodes: &[(String, Ns)], verb: &str) -> Result<(), LabError> {
    nodes[0].1.ip(&["route", verb, "blackhole", "192.0.2.12/32"])?;
    nodes[1].1.ip(&["route", verb, "blackhole", "192.0.2.11/32"])?;
    Ok(())
}

/// A clean partition of two nodes whose object views are skewed (n2 learns changes 150 ms late),
/// during which a new Service appears: n1 (the smaller name, reaching the apiserver) answers every
/// IP, n2 none, and at no moment do two nodes answer (no speaker sees another MAC claim its IP).
/// Then the partition heals, and the larger-named n2 dies: n1 answers everything.
#[test]
fn two_nodes_a_clean_partition_leaves_exactly_one_answerer() -> Result<(), LabError> {
    let Some(mut lab) = lab_or_skip("two_nodes_a_clean_partition_leaves_exactly_one_answerer")? else {
        return Ok(());
    };
    let (nodes, client, dir) = two_nodes(&mut lab, [0, 150])?;
    // Both renew their Lease (the lab's apiserver is the directory).
    for name in ["n1", "n2"] {
        let lease = dir.join(format!(".leases/oxelb-system/oxelb-speaker-{name}.yaml"));
        wait_until(
            &format!("{name}'s Lease"),
            WAIT,
            Duration::from_millis(100),
            || std::fs::read_to_string(&lease).map_err(|e| e.to_string()),
        )?;
    }
    cut_heartbeats(&nodes, "add")?;
    // A new Service under the partition, learnt by n2 150 ms after n1.
    for (_, ns) in &nodes {
        lab.addr(ns, "lo", "192.0.2.51/32")?;
    }
    let objects = std::fs::read_to_string(dir.join("objects.yaml")).unwrap();
    write(
        &dir,
        "objects.yaml",
        &format!(
            "{objects}---\napiVersion: v1\nkind: Service\nmetadata: {{name: web2, namespace: default, annotations: {{lb.kubesphere.io/v1alpha1: openelb}}}}\nspec: {{type: LoadBalancer, ports: [{{port: 81}}]}}\n"
        ),
    );
    write(
        &dir,
        "status/services.core/default/web2.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web2, namespace: default, finalizers: [finalizer.lb.kubesphere.io/v1alpha1]}\nstatus: {loadBalancer: {ingress: [{ip: '192.0.2.51'}]}}\n",
    );
    for ip in ["192.0.2.50", "192.0.2.51"] {
        until_answered_by(&nodes, &client, ip, 0)?;
    }
    for ip in ["192.0.2.50", "192.0.2.51"] {
        stays_answered_by(&nodes, &client, ip, 0, 10)?;
    }
    let log = lab.log("speaker-n2");
    assert!(log.contains("lost standing"), "{log}");
    // Healed: one answerer per IP again, handed over explicitly.
    cut_heartbeats(&nodes, "del")?;
    for ip in ["192.0.2.50", "192.0.2.51"] {
        until_one_answers(&nodes, &client, ip)?;
    }
    // The larger-named n2 dies: n1 keeps its IPs and takes n2's after the detection time and the
    // grace, with no Lease to wait for.
    lab.kill("speaker-n2");
    nodes[1].1.ip(&["link", "set", "eth0", "down"])?;
    for ip in ["192.0.2.50", "192.0.2.51"] {
        until_answered_by(&nodes, &client, ip, 0)?;
    }
    let claims = foreign_claims(&lab, &nodes);
    assert!(claims.is_empty(), "two answerers at some moment: {claims:#?}");
    Ok(())
}

/// The smaller-named node of two dies (process and link): the survivor cannot tell a death from a
/// partition until n1's Lease expires, then answers. Prints the time from the kill to the
/// survivor's first answer and the client's ping outage, over a few rounds.
#[test]
fn two_nodes_the_smaller_node_dies_and_the_survivor_answers_once_its_lease_expired() -> Result<(), LabError> {
    const ROUNDS: usize = 3;
    let Some(mut lab) =
        lab_or_skip("two_nodes_the_smaller_node_dies_and_the_survivor_answers_once_its_lease_expired")?
    else {
        return Ok(());
    };
    let (nodes, client, dir) = two_nodes(&mut lab, [0, 0])?;
    let ip = ip_won_by(&mut lab, &nodes, &dir, "n1")?;
    let mut figures = Vec::new();
    for round in 0..ROUNDS {
        if round > 0 {
            // n1 back: link up, a new speaker process.
            nodes[0].1.ip(&["link", "set", "eth0", "up"])?;
            lab.spawn(&format!("speaker-n1-{round}"), speaker(&nodes[0].1, &dir, "n1"))?;
        }
        until_answered_by(&nodes, &client, &ip, 0)?;
        std::thread::sleep(Duration::from_secs(1));
        let log = format!("ping-{round}");
        let mut ping = client.command("ping");
        ping.args(["-D", "-i", "0.01", "-c", "500", "-W", "1", &ip]);
        lab.spawn(&log, ping)?;
        std::thread::sleep(Duration::from_secs(1));
        let at = unix_now();
        lab.kill(
            if round == 0 {
                "speaker-n1".to_owned()
            } else {
                format!("speaker-n1-{round}")
            }
            .as_str(),
        );
        nodes[0].1.ip(&["link", "set", "eth0", "down"])?;
        let took = until_answered_by(&nodes, &client, &ip, 1)?;
        ping_gap(&lab, &log)?;
        let (outage, floor) = outage_at(&lab.log(&log), at)
            .ok_or_else(|| LabError::Unexpected(format!("no ping replies:\n{}", lab.log(&log))))?;
        println!(
            "two-node failover, smaller node killed (round {}): pings paused {} ms (jitter floor {} ms); the survivor answered an ARP probe (1 s granularity) {} ms after the kill",
            round + 1,
            outage.as_millis(),
            floor.as_millis(),
            took.as_millis()
        );
        figures.push(outage);
        // Functional bound only: Lease duration (2 s) + a renew period and a request + the
        // machine's load; the figure is printed.
        assert!(outage < Duration::from_secs(5), "round {round}: {outage:?}");
    }
    figures.sort();
    println!(
        "two-node failover, smaller node killed: outage min {} ms, median {} ms, max {} ms over {ROUNDS} rounds",
        figures[0].as_millis(),
        figures[ROUNDS / 2].as_millis(),
        figures[ROUNDS - 1].as_millis()
    );
    let survivor = lab.log("speaker-n2");
    assert!(survivor.contains("peer's Lease expired"), "{survivor}");
    let claims = foreign_claims(&lab, &nodes);
    assert!(claims.is_empty(), "two answerers at some moment: {claims:#?}");
    Ok(())
}

/// n1 (the smaller name, answering) loses both the apiserver (its Lease writes fail: the lab puts a
/// directory where its temporary Lease file goes) and its peer (heartbeats cut): it goes silent,
/// and n2 takes over once n1's Lease expired; never two answer.
#[test]
fn two_nodes_a_node_cut_from_the_apiserver_and_its_peer_goes_silent() -> Result<(), LabError> {
    let Some(mut lab) = lab_or_skip("two_nodes_a_node_cut_from_the_apiserver_and_its_peer_goes_silent")?
    else {
        return Ok(());
    };
    let (nodes, client, dir) = two_nodes(&mut lab, [0, 150])?;
    let ip = ip_won_by(&mut lab, &nodes, &dir, "n1")?;
    until_answered_by(&nodes, &client, &ip, 0)?;
    let blocker = dir.join(".leases/oxelb-system/oxelb-speaker-n1.yaml.tmp");
    std::fs::create_dir_all(blocker.join("cut")).unwrap();
    cut_heartbeats(&nodes, "add")?;
    let took = until_answered_by(&nodes, &client, &ip, 1)?;
    println!(
        "two nodes, n1 cut from the apiserver and from n2: n2 answered an ARP probe (1 s granularity) {} ms later",
        took.as_millis()
    );
    stays_answered_by(&nodes, &client, &ip, 1, 10)?;
    let cut = lab.log("speaker-n1");
    assert!(cut.contains("lease renewal failed"), "{cut}");
    assert!(cut.contains("lost standing"), "{cut}");
    // Back: n1 renews again, the heartbeats flow: one answerer.
    std::fs::remove_dir_all(&blocker).unwrap();
    cut_heartbeats(&nodes, "del")?;
    until_one_answers(&nodes, &client, &ip)?;
    let claims = foreign_claims(&lab, &nodes);
    assert!(claims.is_empty(), "two answerers at some moment: {claims:#?}");
    Ok(())
}

/// Sends `datagram` from `from` to `to` (UDP 9643) with the system's python3 (the test process is
/// not inside the lab's namespaces).
fn send_udp(from: &Ns, to: &str, datagram: &[u8]) -> Result<(), LabError> {
    let hex: String = datagram.iter().map(|b| format!("{b:02x}")).collect();
    let script = format!(
        "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(bytes.fromhex('{hex}'), ('{to}', 9643))"
    );
    from.run("python3", &["-c", &script]).map(drop)
}

#[test]
fn bad_heartbeats_and_a_flapping_peer_leave_one_answerer_and_name_the_peer() -> Result<(), LabError> {
    use oxelb_speaker_core::liveness::{Heartbeat, HeartbeatKey, encode};
    let Some(mut lab) =
        lab_or_skip("bad_heartbeats_and_a_flapping_peer_leave_one_answerer_and_name_the_peer")?
    else {
        return Ok(());
    };
    let (nodes, client, _dir) = topology(&mut lab)?;
    let first = winner(&nodes, &client)?;
    std::thread::sleep(Duration::from_secs(1));
    // From the client: a heartbeat claiming to be n2 under another key, truncated ones, an
    // oversized one, garbage; each at every node.
    let forged = Heartbeat {
        node: "n2".into(),
        incarnation: u64::MAX,
        seq: 1,
        serving: ["l2".to_owned()].into(),
        hears: std::collections::BTreeSet::new(),
        view: Some(0),
        leaving: true,
    };
    let wrong_key = encode(&forged, &HeartbeatKey::new(b"not the lab's key")).unwrap();
    let mut bad: Vec<Vec<u8>> = vec![wrong_key.clone(), vec![0u8; 1500], b"OXHB".to_vec()];
    bad.extend(
        (1..wrong_key.len())
            .step_by(7)
            .map(|cut| wrong_key[..cut].to_vec()),
    );
    for i in 1..=3 {
        for datagram in &bad {
            send_udp(&client, &format!("192.0.2.1{i}"), datagram)?;
        }
    }
    // The peer n3 flaps every 50 ms for 3 s: its link to n1 and n2 comes and goes.
    for step in 0..60 {
        let verb = if step % 2 == 0 { "add" } else { "del" };
        for other in ["192.0.2.11/32", "192.0.2.12/32"] {
            nodes[2].1.ip(&["route", verb, "blackhole", other])?;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    // Nothing forged was believed (the forged "n2 leaving" would have moved n2's IPs), nobody
    // crashed, one node answers, and the wrong key is logged with the peer it claimed to be.
    let now = winner(&nodes, &client)?;
    for (name, _) in &nodes {
        let log = lab.log(&format!("speaker-{name}"));
        assert!(!log.contains("panicked"), "{name} panicked:\n{log}");
        assert!(
            !log.contains("another MAC claims"),
            "{name} saw two answerers:\n{log}"
        );
        assert!(
            !log.contains("peer is leaving"),
            "{name} believed a forgery:\n{log}"
        );
        assert!(
            log.lines().any(|l| l.contains("heartbeat ignored")
                && l.contains("heartbeat from \"n2\" fails authentication")),
            "{name} did not name the claimed peer:\n{log}"
        );
    }
    println!("winner before: n{}, after: n{}", first + 1, now + 1);
    Ok(())
}

/// IPv6-only node network: heartbeats cross it (a speaker answers only with the standing a majority
/// of live peers gives it), and a lost answerer is replaced, as the client's NDP shows.
#[test]
fn ipv6_only_nodes_heartbeat_and_fail_over() -> Result<(), LabError> {
    let Some(mut lab) = lab_or_skip("ipv6_only_nodes_heartbeat_and_fail_over")? else {
        return Ok(());
    };
    let (nodes, client, dir) = network_of(&mut lab, 3, Family::V6)?;
    for (name, ns) in &nodes {
        lab.spawn(&format!("speaker-{name}"), speaker(ns, &dir, name))?;
    }
    let first = winner_of(&nodes, &client, Family::V6)?;
    // Settling needs standing, which needs a majority heard: heartbeats crossed IPv6.
    all_settled(&lab, &nodes)?;
    std::thread::sleep(Duration::from_secs(1));
    let (name, ns) = &nodes[first];
    lab.kill(&format!("speaker-{name}"));
    ns.ip(&["link", "set", "eth0", "down"])?;
    let second = winner_of(&nodes, &client, Family::V6)?;
    assert_ne!(second, first, "the lost node still answers");
    Ok(())
}
