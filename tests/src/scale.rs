//! The scale benchmark's driver: the real controller (a leader and a standby) and a speaker,
//! started as processes against an in-process [`ApiServer`], then N Services created as fast as
//! the API takes them. It measures what issue 16 names: each process's RSS and CPU seconds, the
//! time from the last create to the last IP, the API requests per allocation, and the speaker's
//! idle CPU; and checks the outcome (every Service one distinct IP, the Eip status agreeing).
//!
//! Addresses: Services get IPs from 198.18.0.0/15 (RFC 2544's benchmarking range); processes
//! listen on loopback only. Every process is stopped when the run ends, however it ends.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::apiserver::ApiServer;

/// Namespaces the Services are spread over.
const NAMESPACES: usize = 50;
/// The oxelb processes' namespace.
const SYSTEM: &str = "oxelb-system";

/// What one run measured.
#[derive(Clone, Debug, Default)]
pub struct ScaleReport {
    /// Services created.
    pub services: usize,
    /// Seconds from the first create to the last.
    pub create_seconds: f64,
    /// Seconds from the last create to the moment every Service held an IP.
    pub last_ip_after_last_create: f64,
    /// The leader's RSS (MiB) once every Service held an IP.
    pub leader_rss_mib: f64,
    /// The leader's CPU seconds over the whole run (start, sync, allocation).
    pub leader_cpu_seconds: f64,
    /// The standby's RSS (MiB).
    pub standby_rss_mib: f64,
    /// The speaker's RSS (MiB).
    pub speaker_rss_mib: f64,
    /// The speaker's CPU seconds over the whole run.
    pub speaker_cpu_seconds: f64,
    /// The speaker's CPU seconds over [`ScaleOptions::idle`] with nothing changing.
    pub speaker_idle_cpu_seconds: f64,
    /// The leader's CPU seconds over the same idle window.
    pub leader_idle_cpu_seconds: f64,
    /// Service writes (metadata and status patches) per allocation.
    pub service_writes_per_allocation: f64,
    /// Eip status writes in all.
    pub eip_status_writes: u64,
    /// Every write request of the controller (Services, Eips, Events) per allocation.
    pub writes_per_allocation: f64,
    /// Distinct IPs held by the Services (must equal `services`).
    pub distinct_ips: usize,
    /// Entries in the Eip's `status.used`: every Service's, unless the status was truncated to
    /// fit `--eip-status-max-bytes` (issue 28).
    pub eip_used: usize,
    /// The Eip's `status.usage` (must equal `services`, truncated or not).
    pub eip_usage: u64,
    /// The Eip's `status.usedTruncated`.
    pub eip_used_truncated: bool,
    /// Eip status writes the API refused for size (`500 etcdserver: request is too large`, or
    /// `413`) over the run.
    pub eip_status_too_large: u64,
    /// Lists of Services after start-up (watches that had to list again, e.g. after 410 Gone).
    pub service_relists: u64,
    /// CPU seconds of this process (the in-memory API server and the creates) over the run.
    pub api_cpu_seconds: f64,
}

/// How to run.
#[derive(Clone, Debug)]
pub struct ScaleOptions {
    /// Where `oxelb-controller` and `oxelb-speaker` are.
    pub bin_dir: PathBuf,
    /// Services (and EndpointSlices, one per Service) to create.
    pub services: usize,
    /// How long to wait for the last IP.
    pub deadline: Duration,
    /// The idle window after the last IP.
    pub idle: Duration,
    /// Cut every open watch halfway through the creates and hold new ones until the rest are
    /// created and the API's history is dropped: every watch resumes from a version that is gone,
    /// gets 410 Gone and lists again.
    pub compact_midway: bool,
    /// The API's object size limit (`None`: unlimited); etcd's default is
    /// [`ETCD_DEFAULT_OBJECT_LIMIT`](crate::apiserver::ETCD_DEFAULT_OBJECT_LIMIT).
    pub object_size_limit: Option<usize>,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    /// A binary is missing or would not start.
    #[error("{what}: {detail}")]
    Process {
        /// Which process.
        what: String,
        /// What went wrong.
        detail: String,
    },
    /// The API server could not start.
    #[error("API server: {0}")]
    Api(String),
    /// Something did not happen in time.
    #[error("timed out: {0}")]
    Timeout(String),
}

/// A child process killed on drop.
pub struct Proc {
    name: String,
    child: Child,
}

impl Proc {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SIGTERM by pid first (a clean stop), then SIGKILL if it lingers.
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = &self.name;
    }
}

/// RSS in MiB from `/proc/PID/status`.
pub fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// User plus system CPU seconds from `/proc/PID/stat` (clock ticks of 1/100 s, Linux's USER_HZ).
pub fn cpu_seconds(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may hold spaces) start after the last ')'.
            let rest = s.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        })
        .unwrap_or(0.0)
}

/// A free loopback TCP port.
pub fn free_port() -> Result<u16, ScaleError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| ScaleError::Api(format!("no free loopback port: {e}")))
}

/// Starts `binary` with `args` against `kubeconfig`, its stderr in `log`.
pub fn spawn(
    name: &str,
    binary: &Path,
    args: &[String],
    kubeconfig: &Path,
    log: &Path,
) -> Result<Proc, ScaleError> {
    let out = std::fs::File::create(log).map_err(|e| ScaleError::Process {
        what: name.into(),
        detail: format!("log file {}: {e}", log.display()),
    })?;
    let wrapper: Vec<String> = std::env::var("OXELB_SCALE_WRAP")
        .ok()
        .filter(|_| name == "leader")
        .map(|w| w.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    let mut command = match wrapper.split_first() {
        Some((program, rest)) => {
            let mut command = Command::new(program);
            command.args(rest).arg(binary);
            command
        }
        None => Command::new(binary),
    };
    // `OXELB_SCALE_ENV="K=V K2=V2"`: extra environment for every oxelb process (and not for this
    // one, which serves the API), e.g. another allocator by `LD_PRELOAD` or malloc tunables.
    let extra_env: Vec<(String, String)> = std::env::var("OXELB_SCALE_ENV")
        .ok()
        .map(|e| {
            e.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let child = command
        .args(args)
        .envs(extra_env)
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(out)
        .spawn()
        .map_err(|e| ScaleError::Process {
            what: name.into(),
            detail: format!(
                "{}: {e} (build it: cargo build --release -p oxelb-controller -p oxelb-speaker)",
                binary.display()
            ),
        })?;
    Ok(Proc {
        name: name.into(),
        child,
    })
}

/// Whether the process serving metrics on `port` answers `/readyz` with 200.
pub async fn ready(port: u16) -> bool {
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if stream
        .write_all(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut buf)).await;
    buf.starts_with(b"HTTP/1.0 200") || buf.starts_with(b"HTTP/1.1 200")
}

/// Polls `check` every 50 ms until it holds, or fails after `deadline`.
pub async fn wait_for(
    what: &str,
    deadline: Duration,
    mut check: impl AsyncFnMut() -> bool,
) -> Result<(), ScaleError> {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if check().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(ScaleError::Timeout(what.to_owned()))
}

/// A Service as `kubectl apply` leaves it on a 1.28 apiserver: defaulted spec, the last-applied
/// annotation and managedFields (the parts the binaries must not keep); every other one has
/// `externalTrafficPolicy: Local`, so the speaker looks up their endpoints.
fn service(i: usize) -> (String, Value) {
    let ns = format!("ns{}", i % NAMESPACES);
    let name = format!("svc{i}");
    let applied = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "annotations": {"lb.kubesphere.io/v1alpha1": "openelb"}},
        "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}});
    let value = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns,
            "annotations": {"lb.kubesphere.io/v1alpha1": "openelb",
                "kubectl.kubernetes.io/last-applied-configuration": applied.to_string()},
            "managedFields": [{"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "v1",
                "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}, "f:lb.kubesphere.io/v1alpha1": {}}},
                    "f:spec": {"f:allocateLoadBalancerNodePorts": {}, "f:externalTrafficPolicy": {}, "f:internalTrafficPolicy": {},
                        "f:ports": {".": {}, "k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}, "f:protocol": {}, "f:targetPort": {}}},
                        "f:selector": {}, "f:sessionAffinity": {}, "f:type": {}}}}]},
        "spec": {"type": "LoadBalancer", "selector": {"app": name},
            "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP", "nodePort": 30000 + (i % 2768)}],
            "clusterIP": format!("10.96.{}.{}", (i / 250) % 250, i % 250 + 1),
            "clusterIPs": [format!("10.96.{}.{}", (i / 250) % 250, i % 250 + 1)],
            "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "sessionAffinity": "None",
            "externalTrafficPolicy": if i.is_multiple_of(2) { "Local" } else { "Cluster" },
            "internalTrafficPolicy": "Cluster", "allocateLoadBalancerNodePorts": true},
        "status": {"loadBalancer": {}}});
    (format!("/api/v1/namespaces/{ns}/services"), value)
}

/// One EndpointSlice of Service `i` with three ready endpoints on the three nodes.
fn endpoint_slice(i: usize) -> (String, Value) {
    let ns = format!("ns{}", i % NAMESPACES);
    let name = format!("svc{i}");
    let endpoints: Vec<Value> = (0..3)
        .map(|n| json!({"addresses": [format!("10.244.{n}.{}", i % 250 + 1)], "nodeName": format!("node-{n}"),
            "conditions": {"ready": true, "serving": true, "terminating": false},
            "targetRef": {"kind": "Pod", "namespace": ns, "name": format!("{name}-{n}"), "uid": "00000000-0000-4000-8000-000000000000"}}))
        .collect();
    let value = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{name}-abcde"), "namespace": ns,
            "labels": {"kubernetes.io/service-name": name, "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
        "addressType": "IPv4", "endpoints": endpoints, "ports": [{"name": "", "port": 8080, "protocol": "TCP"}]});
    (
        format!("/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"),
        value,
    )
}

fn seed(api: &ApiServer) -> Result<(), ScaleError> {
    let err = ScaleError::Api;
    for ns in std::iter::once(SYSTEM.to_owned()).chain((0..NAMESPACES).map(|n| format!("ns{n}"))) {
        api.create(
            "/api/v1/namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .map_err(err)?;
    }
    for n in 0..3 {
        api.create(
            "/api/v1/nodes",
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": format!("node-{n}"), "labels": {"kubernetes.io/hostname": format!("node-{n}")}},
                "status": {"addresses": [{"type": "InternalIP", "address": format!("198.51.100.{}", n + 1)}],
                    "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-01-01T00:00:00Z"}]}}),
        )
        .map_err(err)?;
    }
    api.create(
        "/apis/network.kubesphere.io/v1alpha2/eips",
        json!({"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "Eip",
            "metadata": {"name": "bench", "annotations": {"eip.openelb.kubesphere.io/is-default-eip": "true"}},
            "spec": {"address": "198.18.0.0/15", "protocol": "bgp"}}),
    )
    .map_err(ScaleError::Api)?;
    Ok(())
}

fn ingress_ip(service: &Value) -> Option<String> {
    service["status"]["loadBalancer"]["ingress"][0]["ip"]
        .as_str()
        .map(str::to_owned)
}

/// Runs the benchmark once.
pub async fn run(options: &ScaleOptions) -> Result<ScaleReport, ScaleError> {
    let api = ApiServer::start()
        .await
        .map_err(|e| ScaleError::Api(e.to_string()))?;
    api.set_object_size_limit(options.object_size_limit);
    seed(&api)?;
    let dir = tempfile::tempdir().map_err(|e| ScaleError::Api(e.to_string()))?;
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, api.kubeconfig()).map_err(|e| ScaleError::Api(e.to_string()))?;
    let controller_bin = options.bin_dir.join("oxelb-controller");
    let speaker_bin = options.bin_dir.join("oxelb-speaker");
    let controller_args = |identity: &str, port: u16| -> Vec<String> {
        [
            "--source=kube",
            "--webhook=false",
            "--lease-namespace",
            SYSTEM,
            "--webhook-namespace",
            SYSTEM,
            "--identity",
            identity,
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    };
    let wait = Duration::from_secs(60);
    let leader_port = free_port()?;
    let leader = spawn(
        "leader",
        &controller_bin,
        &controller_args("leader", leader_port),
        &kubeconfig,
        &dir.path().join("leader.log"),
    )?;
    wait_for("the leader's /readyz", wait, async || ready(leader_port).await).await?;
    wait_for("the leader to hold the Lease", wait, async || {
        api.list(&format!(
            "/apis/coordination.k8s.io/v1/namespaces/{SYSTEM}/leases"
        ))
        .first()
        .is_some_and(|l| l["spec"]["holderIdentity"] == "leader")
    })
    .await?;
    let standby_port = free_port()?;
    let standby = spawn(
        "standby",
        &controller_bin,
        &controller_args("standby", standby_port),
        &kubeconfig,
        &dir.path().join("standby.log"),
    )?;
    let speaker_port = free_port()?;
    let speaker = spawn(
        "speaker",
        &speaker_bin,
        &[
            "--source=kube".to_owned(),
            "--node-name=node-0".to_owned(),
            format!("--namespace={SYSTEM}"),
            format!("--metrics-addr=127.0.0.1:{speaker_port}"),
        ],
        &kubeconfig,
        &dir.path().join("speaker.log"),
    )?;
    wait_for("the standby's and speaker's /readyz", wait, async || {
        ready(standby_port).await && ready(speaker_port).await
    })
    .await?;
    let requests_before = api.requests();
    let api_cpu_before = cpu_seconds(std::process::id());

    // Create as fast as the API takes them, yielding now and then so the server serves watches.
    let n = options.services;
    let first_create = Instant::now();
    for i in 0..n {
        let (path, slice) = endpoint_slice(i);
        api.insert(&path, slice).map_err(ScaleError::Api)?;
        let (path, svc) = service(i);
        api.insert(&path, svc).map_err(ScaleError::Api)?;
        if i % 100 == 99 {
            tokio::task::yield_now().await;
        }
        if options.compact_midway && i == n / 2 {
            api.hold_watches(true);
            api.drop_watches();
        }
    }
    if options.compact_midway {
        // Every watch resumes from before the compaction: 410 Gone, then a new list.
        api.compact();
        api.hold_watches(false);
    }
    let last_create = Instant::now();
    let all_assigned = async || {
        let (all, assigned) = api.tally("/api/v1/services", |s| ingress_ip(s).is_some());
        all == n && assigned == n
    };
    let start = Instant::now();
    while !all_assigned().await {
        if start.elapsed() > options.deadline {
            let (_, done) = api.tally("/api/v1/services", |s| ingress_ip(s).is_some());
            return Err(ScaleError::Timeout(format!(
                "{done} of {n} Services hold an IP after {:?} (logs: {})",
                options.deadline,
                dir.keep().display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let last_ip = last_create.elapsed().as_secs_f64();
    // Let the Eip status and last Events land, then measure.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (leader_cpu, speaker_cpu) = (cpu_seconds(leader.pid()), cpu_seconds(speaker.pid()));
    let api_cpu_seconds = cpu_seconds(std::process::id()) - api_cpu_before;
    tokio::time::sleep(options.idle).await;
    let requests = api.requests();
    let writes = |verb: &str, resource: &str| -> u64 {
        let key = (verb.to_owned(), resource.to_owned());
        requests.get(&key).copied().unwrap_or(0) - requests_before.get(&key).copied().unwrap_or(0)
    };
    let service_writes = writes("patch", "/api/v1/services") + writes("patch/status", "/api/v1/services");
    let eip_status_writes = writes("patch/status", "/apis/network.kubesphere.io/v1alpha2/eips");
    let eip_status_too_large = api
        .too_large()
        .iter()
        .filter(|((verb, resource), _)| verb.ends_with("/status") && resource.ends_with("/eips"))
        .map(|(_, count)| count)
        .sum();
    let all_writes: u64 = requests
        .iter()
        .filter(|((verb, resource), _)| {
            !matches!(verb.as_str(), "list" | "watch" | "get") && !resource.contains("leases")
        })
        .map(|(key, count)| count - requests_before.get(key).copied().unwrap_or(0))
        .sum();
    let services = api.list("/api/v1/services");
    let distinct: BTreeSet<String> = services.iter().filter_map(ingress_ip).collect();
    let eip = api
        .list("/apis/network.kubesphere.io/v1alpha2/eips")
        .into_iter()
        .next()
        .unwrap_or_default();
    let eip_used = eip["status"]["used"].as_object().map_or(0, |u| u.len());
    let eip_usage = eip["status"]["usage"].as_u64().unwrap_or(0);
    let eip_used_truncated = eip["status"]["usedTruncated"] == true;
    let report = ScaleReport {
        services: n,
        create_seconds: (last_create - first_create).as_secs_f64(),
        last_ip_after_last_create: last_ip,
        leader_rss_mib: rss_mib(leader.pid()),
        leader_cpu_seconds: leader_cpu,
        standby_rss_mib: rss_mib(standby.pid()),
        speaker_rss_mib: rss_mib(speaker.pid()),
        speaker_cpu_seconds: speaker_cpu,
        speaker_idle_cpu_seconds: cpu_seconds(speaker.pid()) - speaker_cpu,
        leader_idle_cpu_seconds: cpu_seconds(leader.pid()) - leader_cpu,
        service_writes_per_allocation: service_writes as f64 / n.max(1) as f64,
        eip_status_writes,
        writes_per_allocation: all_writes as f64 / n.max(1) as f64,
        distinct_ips: distinct.len(),
        eip_used,
        eip_usage,
        eip_used_truncated,
        eip_status_too_large,
        service_relists: writes("list", "/api/v1/services"),
        api_cpu_seconds,
    };
    drop((speaker, standby, leader));
    Ok(report)
}
