//! The network-namespace lab: hosts made of `ip netns` namespaces joined by veth pairs and bridges,
//! processes started inside them, and everything torn down when the [`Lab`] is dropped (on success,
//! failure or panic).
//!
//! Rules every lab follows (the project's network rule):
//! - traffic only between namespaces the lab made, with addresses from 192.0.2.0/24, 198.51.100.0/24,
//!   203.0.113.0/24 and 2001:db8::/32 ([`assert_documentation_address`] checks each one given);
//! - every wait is bounded ([`wait_until`]);
//! - without root (or without `ip netns`) a lab does not run: [`Lab::new`] returns
//!   [`LabError::Skip`] with the reason, which the test prints.
//!
//! Names: every namespace and interface of a lab starts with a short prefix unique to the lab, so
//! tests run in parallel and a crashed run's leftovers are recognisable (`ip netns list | grep ^ox`).

mod error;
mod host;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

pub use self::{
    error::LabError,
    host::{assert_documentation_address, can_run, output, rss_kib, run, utc_stamp, wait_until, write_file},
};

/// A new lab for `test`, or `None` after reporting on stderr that `test` skips and why. The report
/// is written to the stderr handle directly, past the test harness's output capture, so a skipped
/// lab test is visible in every run (it never passes silently).
pub fn lab_or_skip(test: &str) -> Result<Option<Lab>, LabError> {
    match Lab::new() {
        Ok(lab) => Ok(Some(lab)),
        Err(LabError::Skip(why)) => {
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
            Ok(None)
        }
        Err(other) => Err(other),
    }
}

/// A network namespace of a lab, by its full name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ns {
    name: String,
}

impl Ns {
    /// The namespace's name (`ip netns exec <name> ...`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `program args` inside the namespace; its stdout, or an error with stderr.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<String, LabError> {
        let mut full = vec!["netns", "exec", &self.name, program];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// Runs `program args` inside the namespace and returns the whole output.
    pub fn output(&self, program: &str, args: &[&str]) -> Result<Output, LabError> {
        let mut full = vec!["netns", "exec", &self.name, program];
        full.extend_from_slice(args);
        output("ip", &full)
    }

    /// `ip args` inside the namespace.
    pub fn ip(&self, args: &[&str]) -> Result<String, LabError> {
        self.run("ip", args)
    }

    /// The MAC address of `ifname`.
    pub fn mac(&self, ifname: &str) -> Result<String, LabError> {
        let text = self.ip(&["-br", "link", "show", ifname])?;
        text.split_whitespace()
            .nth(2)
            .map(str::to_owned)
            .ok_or_else(|| LabError::Command {
                command: format!("ip -br link show {ifname}"),
                status: "no MAC in the output".into(),
                stderr: text.clone(),
            })
    }

    /// The kernel's neighbour entry for `ip` (ARP or NDP): its MAC and state (`REACHABLE`,
    /// `STALE`, `FAILED`, ...), or `None` without an entry or a MAC.
    pub fn neighbor(&self, ip: &str) -> Result<Option<(String, String)>, LabError> {
        let text = self.ip(&["neigh", "show", ip])?;
        Ok(text.lines().find_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let mac = words
                .iter()
                .position(|w| *w == "lladdr")
                .and_then(|i| words.get(i + 1))?;
            Some(((*mac).to_owned(), (*words.last()?).to_owned()))
        }))
    }

    /// One `arping` from `ifname` to `ip` (1 s at most): whether a reply came, and the output in
    /// lower case (the replying MAC is in it).
    pub fn arping(&self, ifname: &str, ip: &str) -> Result<(bool, String), LabError> {
        let out = self.output("arping", &["-c", "1", "-w", "1", "-I", ifname, ip])?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_lowercase(),
        ))
    }

    /// The speaker binary `binary` in this namespace on the `dir:` source `dir`, as node `node`,
    /// with `RUST_LOG=log_level`; add flags to the returned command before spawning it. Its
    /// `--state-dir` (the BFD hand-over between a stopped speaker and the next) is
    /// [`Ns::speaker_state_dir`], never the host's `/run/oxelb`.
    pub fn speaker(&self, binary: &str, dir: &Path, node: &str, log_level: &str) -> Command {
        let mut command = self.command(binary);
        command.args([
            "--source",
            &format!("dir:{}", dir.display()),
            "--node-name",
            node,
            "--metrics-addr",
            "127.0.0.1:9641",
            "--state-dir",
            &self.speaker_state_dir(dir).display().to_string(),
        ]);
        command.env("RUST_LOG", log_level);
        command
    }

    /// The state directory of the speaker [`Ns::speaker`] starts here on `dir`: beside `dir`
    /// (in the lab's directory, removed with it), one per namespace.
    pub fn speaker_state_dir(&self, dir: &Path) -> PathBuf {
        dir.parent()
            .unwrap_or(dir)
            .join(format!("speaker-state-{}", self.name))
    }

    /// Sets what kube-proxy in IPVS mode with `strictARP: true` sets on a node: `arp_ignore=1`
    /// (the kernel answers ARP only for addresses on the receiving interface, so Service IPs on
    /// `kube-ipvs0` or `lo` are answered only by the speaker) and `arp_announce=2`.
    pub fn strict_arp(&self) -> Result<(), LabError> {
        self.run(
            "sysctl",
            &[
                "-qw",
                "net.ipv4.conf.all.arp_ignore=1",
                "net.ipv4.conf.all.arp_announce=2",
            ],
        )
        .map(drop)
    }

    /// A `Command` that runs `program` inside the namespace (for long-running processes).
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }
}

static LABS: AtomicU32 = AtomicU32::new(0);

/// A lab: its namespaces, processes and files, all removed on drop.
pub struct Lab {
    prefix: String,
    namespaces: Vec<Ns>,
    children: Vec<(String, Child)>,
    pidfiles: Vec<PathBuf>,
    dir: LabDir,
}

/// Where a lab keeps its files: a temporary directory removed with the lab, or a directory the
/// caller chose (the demo's, which its script removes, also after a crash).
enum LabDir {
    Temporary(tempfile::TempDir),
    Given(PathBuf),
}

impl Lab {
    /// A new, empty lab, or [`LabError::Skip`] when labs cannot run here.
    pub fn new() -> Result<Self, LabError> {
        can_run()?;
        // "ox" + 3 base-36 digits of the pid + 1 of a per-process counter: short enough for
        // interface names (15 bytes) with a suffix, unique among concurrent tests.
        let n = LABS.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("ox{}{}", base36(std::process::id() % 46656, 3), base36(n % 36, 1));
        let dir = tempfile::Builder::new()
            .prefix(&format!("oxelb-lab-{prefix}-"))
            .tempdir()
            .map_err(|source| LabError::Io {
                path: std::env::temp_dir(),
                source,
            })?;
        Ok(Self {
            prefix,
            namespaces: Vec::new(),
            children: Vec::new(),
            pidfiles: Vec::new(),
            dir: LabDir::Temporary(dir),
        })
    }

    /// A lab whose namespaces are named `<prefix>-...` and whose files go to `dir` (created when
    /// missing, left in place on drop): for the demo, whose script finds and removes what a killed
    /// run left by that prefix and directory. [`LabError::Skip`] when labs cannot run here.
    pub fn named(prefix: &str, dir: PathBuf) -> Result<Self, LabError> {
        can_run()?;
        std::fs::create_dir_all(&dir).map_err(|source| LabError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(Self {
            prefix: prefix.to_owned(),
            namespaces: Vec::new(),
            children: Vec::new(),
            pidfiles: Vec::new(),
            dir: LabDir::Given(dir),
        })
    }

    /// The lab's name prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The lab's directory (configuration files, logs, sockets).
    pub fn dir(&self) -> &Path {
        match &self.dir {
            LabDir::Temporary(dir) => dir.path(),
            LabDir::Given(dir) => dir,
        }
    }

    /// Writes a file under the lab's directory and returns its path.
    pub fn write(&self, name: &str, content: &str) -> Result<PathBuf, LabError> {
        let path = self.dir().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| LabError::Io {
                path: parent.to_owned(),
                source,
            })?;
        }
        std::fs::write(&path, content).map_err(|source| LabError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }

    /// Adds a namespace `<prefix>-<name>` with its loopback up.
    pub fn netns(&mut self, name: &str) -> Result<Ns, LabError> {
        let ns = Ns {
            name: format!("{}-{name}", self.prefix),
        };
        run("ip", &["netns", "add", &ns.name])?;
        self.namespaces.push(ns.clone());
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Joins `a` and `b` with a veth pair, `a_if` in `a` and `b_if` in `b`, both up.
    pub fn veth(&mut self, a: &Ns, a_if: &str, b: &Ns, b_if: &str) -> Result<(), LabError> {
        // Created in `a` with the peer moved to `b`: no name ever exists in the root namespace.
        a.ip(&[
            "link",
            "add",
            a_if,
            "type",
            "veth",
            "peer",
            "name",
            b_if,
            "netns",
            b.name(),
        ])?;
        a.ip(&["link", "set", a_if, "up"])?;
        b.ip(&["link", "set", b_if, "up"])?;
        Ok(())
    }

    /// Adds a bridge `name` in `ns`, up.
    pub fn bridge(&mut self, ns: &Ns, name: &str) -> Result<(), LabError> {
        ns.ip(&["link", "add", name, "type", "bridge"])?;
        ns.ip(&["link", "set", name, "up"])?;
        Ok(())
    }

    /// Puts interface `ifname` of `ns` into bridge `bridge` of the same namespace.
    pub fn attach(&mut self, ns: &Ns, ifname: &str, bridge: &str) -> Result<(), LabError> {
        ns.ip(&["link", "set", ifname, "master", bridge])?;
        Ok(())
    }

    /// Adds `cidr` (a documentation address with its prefix) to `ifname` in `ns`.
    pub fn addr(&mut self, ns: &Ns, ifname: &str, cidr: &str) -> Result<(), LabError> {
        assert_documentation_address(cidr)?;
        // IPv6 duplicate address detection would keep the address tentative for a second.
        let mut args = vec!["addr", "add", cidr, "dev", ifname];
        if cidr.contains(':') {
            args.push("nodad");
        }
        ns.ip(&args)?;
        Ok(())
    }

    /// Starts `command` (from [`Ns::command`]); stdout and stderr go to `<dir>/<log>.log`. The process
    /// is killed when the lab is dropped, or by [`stop`](Self::stop).
    pub fn spawn(&mut self, log: &str, mut command: Command) -> Result<u32, LabError> {
        let path = self.dir().join(format!("{log}.log"));
        let file = std::fs::File::create(&path).map_err(|source| LabError::Io {
            path: path.clone(),
            source,
        })?;
        let err = file.try_clone().map_err(|source| LabError::Io {
            path: path.clone(),
            source,
        })?;
        let child = command
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .map_err(|source| LabError::Spawn {
                command: format!("{command:?}"),
                source,
            })?;
        let pid = child.id();
        self.children.push((log.to_owned(), child));
        Ok(pid)
    }

    /// Starts `tcpdump` on `ifname` in `ns`, writing the packets that match `filter` (a pcap filter
    /// expression) whole and as they pass to `<dir>/<log>.pcap`, and waits until it captures.
    /// Read the file with [`crate::pcap::bgp_messages`]; stop it with [`stop`](Self::stop)(`log`).
    pub fn capture(&mut self, log: &str, ns: &Ns, ifname: &str, filter: &str) -> Result<PathBuf, LabError> {
        let path = self.dir().join(format!("{log}.pcap"));
        let mut command = ns.command("tcpdump");
        command
            .args([
                "-i",
                ifname,
                "-n",
                "--immediate-mode",
                "-U",
                "-s",
                "0",
                "-Z",
                "root",
                "-w",
            ])
            .arg(&path)
            .arg(filter);
        self.spawn(log, command)?;
        wait_until(
            &format!("tcpdump {log} to capture"),
            Duration::from_secs(10),
            Duration::from_millis(20),
            || {
                let output = self.log(log);
                if output.contains("listening on") {
                    Ok(())
                } else {
                    Err(output)
                }
            },
        )?;
        Ok(path)
    }

    /// What a process started with [`spawn`](Self::spawn) logged so far.
    pub fn log(&self, log: &str) -> String {
        std::fs::read_to_string(self.dir().join(format!("{log}.log"))).unwrap_or_default()
    }

    /// Registers a pidfile of a daemon that forks (FRR, BIRD): its process is killed on drop.
    pub fn track_pidfile(&mut self, path: PathBuf) {
        self.pidfiles.push(path);
    }

    /// Stops the process started as `log`: SIGTERM, then SIGKILL after `grace`. Returns whether
    /// it was running.
    pub fn stop(&mut self, log: &str, grace: Duration) -> bool {
        let Some(index) = self.children.iter().position(|(name, _)| name == log) else {
            return false;
        };
        let (_, mut child) = self.children.remove(index);
        terminate(&mut child, grace);
        true
    }

    /// Kills the process started as `log` at once (SIGKILL: a crash, no goodbye).
    pub fn kill(&mut self, log: &str) -> bool {
        let Some(index) = self.children.iter().position(|(name, _)| name == log) else {
            return false;
        };
        let (_, mut child) = self.children.remove(index);
        let _ = child.kill();
        let _ = child.wait();
        true
    }
}

fn terminate(child: &mut Child, grace: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn kill_pidfile(path: &Path) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    let Ok(pid) = text.trim().parse::<u32>() else {
        return;
    };
    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    for _ in 0..50 {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            terminate(child, Duration::from_secs(2));
        }
        for path in &self.pidfiles {
            kill_pidfile(path);
        }
        // Deleting a namespace destroys the interfaces in it (and the veth peers elsewhere).
        for ns in self.namespaces.iter().rev() {
            let _ = output("ip", &["netns", "delete", ns.name()]);
        }
        // OXELB_LAB_KEEP=1 keeps the files (configs, every process's log) for a post-mortem.
        if std::env::var_os("OXELB_LAB_KEEP").is_some() {
            let dir = std::mem::replace(&mut self.dir, LabDir::Given(PathBuf::new()));
            if let LabDir::Temporary(dir) = dir {
                eprintln!("lab files kept in {}", dir.keep().display());
            }
        }
    }
}

fn base36(mut n: u32, digits: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = vec![b'0'; digits];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 36) as usize];
        n /= 36;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests;
