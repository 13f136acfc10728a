//! `oxelb-lab`: the small helpers of the demo lab and the end-to-end tests, run inside the lab's
//! network namespaces.
//!
//! - `oxelb-lab proxy --node NAME --objects DIR [--port 80] [--dev kube-ipvs0]`: stands in for
//!   kube-proxy in IPVS mode on one node. Every 100 ms it reads the Service IPs the controller
//!   wrote under `DIR/status/services.core/` and keeps exactly those on the dummy device `--dev`
//!   (created when missing), so the node's kernel accepts traffic for them; it answers HTTP on
//!   every address with the node's name. Like kube-proxy it never answers ARP: the node's
//!   `arp_ignore=1` keeps the kernel silent and only the speaker announces.
//! - `oxelb-lab get IP [--port 80] [--timeout-ms 1000]`: one HTTP GET; prints the body (the
//!   answering node's name) and exits 0, or prints the error and exits 1.
//! - `oxelb-lab probe IP [--port 80] [--interval-ms 10] [--timeout-ms 100] [--count N]`: a GET
//!   every interval, one line per attempt: `<ms since start> ok <node>` or `<ms> fail <error>`.

use std::{
    collections::BTreeSet,
    io::{Read, Write},
    net::{IpAddr, SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    time::{Duration, Instant},
};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("proxy") => proxy(&Flags::parse(&args[1..])),
        Some("get") => get_once(&Flags::parse(&args[1..])),
        Some("probe") => probe(&Flags::parse(&args[1..])),
        _ => Err("usage: oxelb-lab proxy|get|probe ... (see the module docs)".to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("oxelb-lab: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `--name value` flags and positional words.
struct Flags {
    positional: Vec<String>,
    named: Vec<(String, String)>,
}

impl Flags {
    fn parse(args: &[String]) -> Self {
        let mut positional = Vec::new();
        let mut named = Vec::new();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            match arg.strip_prefix("--") {
                Some(name) => named.push((name.to_owned(), it.next().cloned().unwrap_or_default())),
                None => positional.push(arg.clone()),
            }
        }
        Self { positional, named }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.named
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn number(&self, name: &str, default: u64) -> Result<u64, String> {
        self.get(name).map_or(Ok(default), |v| {
            v.parse().map_err(|e| format!("--{name} {v}: {e}"))
        })
    }

    fn target(&self) -> Result<SocketAddr, String> {
        let ip: IpAddr = self
            .positional
            .first()
            .ok_or("the target IP is missing")?
            .parse()
            .map_err(|e| format!("target IP: {e}"))?;
        let port = u16::try_from(self.number("port", 80)?).map_err(|e| format!("--port: {e}"))?;
        Ok(SocketAddr::new(ip, port))
    }
}

fn proxy(flags: &Flags) -> Result<(), String> {
    let node = flags.get("node").ok_or("--node is missing")?.to_owned();
    let objects = PathBuf::from(flags.get("objects").ok_or("--objects is missing")?);
    let port = u16::try_from(flags.number("port", 80)?).map_err(|e| format!("--port: {e}"))?;
    // kube-proxy's IPVS mode keeps Service IPs on the dummy device kube-ipvs0. Kernels without the
    // dummy module (some sandboxes) cannot make one; `lo` behaves the same here: with
    // arp_ignore=1 the kernel never answers ARP on eth0 for an address on another device.
    let mut dev = flags.get("dev").unwrap_or("kube-ipvs0").to_owned();
    if !run_ok("ip", &["link", "show", &dev]) && !run_ok("ip", &["link", "add", &dev, "type", "dummy"]) {
        eprintln!("oxelb-lab proxy: cannot create the dummy device {dev}; using lo");
        dev = "lo".to_owned();
    }
    // `[::]` with IPV6_V6ONLY off (Linux's default) accepts IPv4 too.
    let listener = TcpListener::bind(("::", port)).map_err(|e| format!("bind [::]:{port}: {e}"))?;
    std::thread::spawn(move || sync_loop(&objects, &dev));
    eprintln!("oxelb-lab proxy: node {node} answers HTTP on port {port}");
    for stream in listener.incoming().flatten() {
        let node = node.clone();
        std::thread::spawn(move || answer(stream, &node));
    }
    Ok(())
}

/// Keeps the Service IPs on `dev` equal to those in the controller's status files.
fn sync_loop(objects: &Path, dev: &str) {
    let mut on_device: BTreeSet<IpAddr> = BTreeSet::new();
    loop {
        let wanted = service_ips(&objects.join("status/services.core"));
        for ip in wanted.difference(&on_device) {
            let cidr = host_cidr(*ip);
            if run_ok("ip", &["addr", "replace", &cidr, "dev", dev]) {
                eprintln!("oxelb-lab proxy: + {cidr} on {dev}");
            }
        }
        for ip in on_device.difference(&wanted) {
            let cidr = host_cidr(*ip);
            if run_ok("ip", &["addr", "del", &cidr, "dev", dev]) {
                eprintln!("oxelb-lab proxy: - {cidr} on {dev}");
            }
        }
        on_device = wanted;
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn host_cidr(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}/32"),
        IpAddr::V6(v6) => format!("{v6}/128"),
    }
}

/// Every `status.loadBalancer.ingress[].ip` in the Service status files under `dir`.
fn service_ips(dir: &Path) -> BTreeSet<IpAddr> {
    let mut ips = BTreeSet::new();
    let Ok(namespaces) = std::fs::read_dir(dir) else {
        return ips;
    };
    for namespace in namespaces.flatten() {
        let Ok(files) = std::fs::read_dir(namespace.path()) else {
            continue;
        };
        for file in files.flatten() {
            let path = file.path();
            if path.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let Ok(doc) = serde_yaml::from_str::<serde_yaml::Value>(&text) else {
                continue;
            };
            let ingress = doc["status"]["loadBalancer"]["ingress"].as_sequence().cloned();
            for entry in ingress.unwrap_or_default() {
                if let Some(ip) = entry["ip"].as_str().and_then(|s| s.parse().ok()) {
                    ips.insert(ip);
                }
            }
        }
    }
    ips
}

/// Answers one HTTP/1.0 request with the node's name.
fn answer(mut stream: TcpStream, node: &str) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let body = format!("{node}\n");
    let _ = write!(
        stream,
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// One GET of `/` on `target`; the body, trimmed.
fn get(target: SocketAddr, timeout: Duration) -> Result<String, String> {
    let mut stream = TcpStream::connect_timeout(&target, timeout).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    write!(stream, "GET / HTTP/1.0\r\nHost: {target}\r\n\r\n").map_err(|e| format!("send: {e}"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| format!("read: {e}"))?;
    let (head, body) = response.split_once("\r\n\r\n").ok_or("no HTTP response")?;
    if !head.starts_with("HTTP/1.0 200") {
        return Err(format!("unexpected response: {head}"));
    }
    Ok(body.trim().to_owned())
}

fn get_once(flags: &Flags) -> Result<(), String> {
    let target = flags.target()?;
    let timeout = Duration::from_millis(flags.number("timeout-ms", 1000)?);
    let body = get(target, timeout)?;
    println!("{body}");
    Ok(())
}

fn probe(flags: &Flags) -> Result<(), String> {
    let target = flags.target()?;
    let interval = Duration::from_millis(flags.number("interval-ms", 10)?);
    let timeout = Duration::from_millis(flags.number("timeout-ms", 100)?);
    let count = flags.number("count", 1000)?;
    let start = Instant::now();
    let mut out = std::io::stdout().lock();
    for i in 0..count {
        let at = start.elapsed().as_millis();
        let line = match get(target, timeout) {
            Ok(node) => format!("{at} ok {node}"),
            Err(error) => format!("{at} fail {error}"),
        };
        writeln!(out, "{line}").map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())?;
        // Fixed rate: the next attempt starts at (i + 1) * interval, or at once when late.
        let next = interval * u32::try_from(i + 1).unwrap_or(u32::MAX);
        if let Some(wait) = next.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    Ok(())
}

fn run_ok(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}
