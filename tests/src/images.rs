//! oxelb's release images (`images/build.sh`: OCI archives) run by podman, as root, with the
//! security settings `config/oxelb.yaml` gives their containers, read from the manifest (never
//! repeated here). [`Podman`] is a podman whose image store is a directory of its own, removed with
//! it (with every container still in it), so a test touches no other image or container of the
//! machine; [`Container`] is one workload's container as the manifest describes it.
//! [`archives_or_skip`] and [`podman_with`] are how each image test starts (or says it skips).

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

use serde_json::Value;

use crate::{
    lab::{LabError, output, run},
    load_documents, workspace_root,
};

/// The controller's and speaker's archives, built by `images/build.sh`.
pub const ARCHIVES: [&str; 2] = ["oxelb-controller.oci.tar", "oxelb-speaker.oci.tar"];

/// `podman run` options every container here takes: resource limits within what a sandboxed
/// machine lets root set (podman's defaults, 1048576 open files and unlimited processes, are
/// refused there and the container would not start).
pub const RUN_LIMITS: [&str; 4] = ["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"];

/// Where `images/build.sh` put the archives: `OXELB_IMAGES_DIR` when set (the test command sets
/// it), else `<workspace>/target/images` (the script's default without `CARGO_TARGET_DIR`).
pub fn archive_dir() -> PathBuf {
    std::env::var_os("OXELB_IMAGES_DIR").map_or_else(|| workspace_root().join("target/images"), PathBuf::from)
}

/// One workload's container as `config/oxelb.yaml` describes it: its image and the security
/// settings podman can apply (`securityContext` of the pod and of the container).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Container {
    /// The image reference (`oxelb/oxelb-controller:v0.1.0`).
    pub image: String,
    /// `runAsUser` (container, else pod).
    pub user: Option<i64>,
    /// `runAsGroup` (container, else pod).
    pub group: Option<i64>,
    /// `capabilities.add`.
    pub cap_add: Vec<String>,
    /// `capabilities.drop`.
    pub cap_drop: Vec<String>,
    /// `readOnlyRootFilesystem`.
    pub read_only: bool,
    /// `allowPrivilegeEscalation` (`None`: not set, Kubernetes' default allows it).
    pub allow_privilege_escalation: Option<bool>,
    /// `args` (after the image's entrypoint).
    pub args: Vec<String>,
}

impl Container {
    /// The first container of the workload `kind`/`name` (`Deployment`/`oxelb-controller`,
    /// `DaemonSet`/`oxelb-speaker`) in `config/oxelb.yaml`.
    pub fn from_manifest(kind: &str, name: &str) -> Result<Self, LabError> {
        let config = workspace_root().join("config");
        let documents = load_documents(&config, &|dir| dir != config)
            .map_err(|e| LabError::Unexpected(format!("reading {}: {e}", config.display())))?;
        let document = documents
            .iter()
            .find(|d| d.path.ends_with("oxelb.yaml") && d.kind() == Some(kind) && d.name() == Some(name))
            .ok_or_else(|| LabError::Unexpected(format!("no {kind} {name} in config/oxelb.yaml")))?;
        Self::from_workload(&document.value)
            .ok_or_else(|| LabError::Unexpected(format!("{kind} {name} has no container with an image")))
    }

    /// The first container of a workload object (Deployment, DaemonSet), `None` without one.
    pub fn from_workload(workload: &Value) -> Option<Self> {
        let pod = &workload["spec"]["template"]["spec"];
        let container = pod["containers"].get(0)?;
        let pod_security = &pod["securityContext"];
        let security = &container["securityContext"];
        let either = |field: &str| security[field].as_i64().or_else(|| pod_security[field].as_i64());
        let strings = |value: &Value| -> Vec<String> {
            value
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        };
        Some(Self {
            image: container["image"].as_str()?.to_owned(),
            user: either("runAsUser"),
            group: either("runAsGroup"),
            cap_add: strings(&security["capabilities"]["add"]),
            cap_drop: strings(&security["capabilities"]["drop"]),
            read_only: security["readOnlyRootFilesystem"].as_bool().unwrap_or(false),
            allow_privilege_escalation: security["allowPrivilegeEscalation"].as_bool(),
            args: strings(&container["args"]),
        })
    }

    /// The same container without the capability `cap` (`NET_RAW`): no longer added, and dropped.
    pub fn without_capability(mut self, cap: &str) -> Self {
        self.cap_add.retain(|c| c != cap);
        if !self.cap_drop.iter().any(|c| c == cap || c == "ALL") {
            self.cap_drop.push(cap.to_owned());
        }
        self
    }

    /// `podman run` options for these settings.
    pub fn run_options(&self) -> Vec<String> {
        let mut options = Vec::new();
        match (self.user, self.group) {
            (Some(user), Some(group)) => options.extend(["--user".into(), format!("{user}:{group}")]),
            (Some(user), None) => options.extend(["--user".into(), user.to_string()]),
            _ => {}
        }
        for cap in &self.cap_drop {
            options.extend(["--cap-drop".into(), cap.clone()]);
        }
        for cap in &self.cap_add {
            options.extend(["--cap-add".into(), cap.clone()]);
        }
        if self.read_only {
            // As Kubernetes: nothing writable, not even the tmpfs podman mounts on /tmp and /run.
            options.extend(["--read-only".into(), "--read-only-tmpfs=false".into()]);
        }
        if self.allow_privilege_escalation == Some(false) {
            options.extend(["--security-opt".into(), "no-new-privileges".into()]);
        }
        options
    }
}

/// Prints that `test` skips, and why (the line every skipping test prints).
pub fn skip(test: &str, why: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// The archives of [`ARCHIVES`] in [`archive_dir`], or `None` after reporting why `test` skips:
/// not root, no podman, an archive missing. With `OXELB_IMAGES_DIR` set (the test command builds
/// the archives and sets it) each of those is an error instead: the test fails.
pub fn archives_or_skip(test: &str) -> Result<Option<Vec<PathBuf>>, LabError> {
    let required = std::env::var_os("OXELB_IMAGES_DIR").is_some();
    let dir = archive_dir();
    let paths: Vec<PathBuf> = ARCHIVES.iter().map(|a| dir.join(a)).collect();
    let why = if run("id", &["-u"]).map(|u| u.trim() != "0").unwrap_or(true) {
        Some("needs root (podman runs the images as root: the speaker with NET_RAW and NET_ADMIN)".to_owned())
    } else if run("podman", &["--version"]).is_err() {
        Some("podman is not installed (apt-get install podman)".to_owned())
    } else {
        paths
            .iter()
            .find(|p| !p.is_file())
            .map(|missing| format!("{} is missing: run `sudo images/build.sh`", missing.display()))
    };
    match why {
        Some(why) if required => Err(LabError::Unexpected(format!(
            "{test}: OXELB_IMAGES_DIR is set but {why}"
        ))),
        Some(why) => {
            skip(test, &why);
            Ok(None)
        }
        None => Ok(Some(paths)),
    }
}

/// A [`Podman`] with a store of its own (under `/tmp`, named after the process) holding the images
/// of `archives`, loaded.
pub fn podman_with(test: &str, archives: &[PathBuf]) -> Result<Podman, LabError> {
    // Short: podman refuses a run root of more than 50 characters.
    static STORES: AtomicU32 = AtomicU32::new(0);
    let n = STORES.fetch_add(1, Ordering::Relaxed);
    let dir = PathBuf::from(format!("/tmp/oxpod-{}-{n}", std::process::id()));
    eprintln!("{test}: podman store {}", dir.display());
    let podman = Podman::new(&dir)?;
    for archive in archives {
        podman.load(archive)?;
    }
    Ok(podman)
}

/// The release images a [`crate::cluster::LabCluster`] runs instead of the binaries: a podman with
/// them loaded, and each workload's container settings (from `config/oxelb.yaml`).
pub struct LabContainers {
    /// The podman holding the images.
    pub podman: Podman,
    /// The controller's container.
    pub controller: Container,
    /// The speakers' container.
    pub speaker: Container,
}

/// A podman (as root) with an image store of its own under a directory, which [`Drop`] removes
/// with every container it still holds.
pub struct Podman {
    root: PathBuf,
    global: Vec<String>,
}

impl Podman {
    /// A podman with its store under `dir` (created; it should be empty).
    pub fn new(dir: &Path) -> Result<Self, LabError> {
        let root = dir.to_path_buf();
        std::fs::create_dir_all(&root).map_err(|source| LabError::Io {
            path: root.clone(),
            source,
        })?;
        let global = vec![
            "--root".to_owned(),
            root.join("storage").display().to_string(),
            "--runroot".to_owned(),
            root.join("run").display().to_string(),
            // vfs: no overlay mounts left behind; the images are a few MiB.
            "--storage-driver".to_owned(),
            "vfs".to_owned(),
            "--cgroup-manager".to_owned(),
            "cgroupfs".to_owned(),
            "--events-backend".to_owned(),
            "file".to_owned(),
            // runc: Debian's crun 1.8 refuses hosts with cgroups v1 and v2 mounted side by side.
            "--runtime".to_owned(),
            "runc".to_owned(),
            "--tmpdir".to_owned(),
            root.join("tmp").display().to_string(),
        ];
        Ok(Self { root, global })
    }

    /// A `podman` command with this store's options.
    pub fn command(&self) -> Command {
        let mut command = Command::new("podman");
        command.args(&self.global);
        command
    }

    /// Runs `podman args` to completion; its stdout.
    pub fn run(&self, args: &[&str]) -> Result<String, LabError> {
        let mut all: Vec<&str> = self.global.iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        run("podman", &all)
    }

    /// Loads an archive (`podman load -i`); the names it loaded.
    pub fn load(&self, archive: &Path) -> Result<String, LabError> {
        self.run(&["load", "-q", "-i", &archive.display().to_string()])
    }

    /// `podman image inspect` of `image`, parsed.
    pub fn inspect(&self, image: &str) -> Result<Value, LabError> {
        let text = self.run(&["image", "inspect", image])?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| LabError::Unexpected(format!("podman image inspect {image}: {e}: {text}")))?;
        value
            .get(0)
            .cloned()
            .ok_or_else(|| LabError::Unexpected(format!("podman image inspect {image}: {text}")))
    }

    /// `podman run --rm --name NAME --network ns:/run/netns/NETNS` with `container`'s settings,
    /// the directories `mounts` at the same paths, the environment and arguments of `binary_command`
    /// (a command [`crate::lab::Ns::command`] built: `ip netns exec NETNS BINARY ARGS...`), for
    /// [`crate::lab::Lab::spawn`]. SIGTERM to it reaches the container (podman proxies signals).
    pub fn run_in_netns(
        &self,
        name: &str,
        netns: &str,
        container: &Container,
        mounts: &[&Path],
        binary_command: &Command,
    ) -> Command {
        let mut command = self.command();
        command.args(["run", "--rm", "--name", name]);
        command.args(RUN_LIMITS);
        command.arg("--network");
        command.arg(format!("ns:/run/netns/{netns}"));
        command.args(container.run_options());
        for mount in mounts {
            command.arg("-v").arg(format!("{0}:{0}", mount.display()));
        }
        for (key, value) in binary_command.get_envs() {
            if let Some(value) = value {
                command
                    .arg("-e")
                    .arg(format!("{}={}", key.to_string_lossy(), value.to_string_lossy()));
            }
        }
        command.arg(&container.image);
        // `ip netns exec NETNS BINARY`: the four arguments before the binary's own.
        command.args(binary_command.get_args().skip(4));
        command
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let mut all: Vec<&str> = self.global.iter().map(String::as_str).collect();
        all.extend_from_slice(&["rm", "--force", "--all", "--time", "0"]);
        let _ = output("podman", &all);
        let mut all: Vec<&str> = self.global.iter().map(String::as_str).collect();
        all.extend_from_slice(&["rmi", "--all", "--force"]);
        let _ = output("podman", &all);
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
