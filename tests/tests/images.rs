//! The images users install (issue 27): the OCI archives `images/build.sh` makes (the recipe the
//! `Dockerfile` runs too) load into podman, carry what `config/oxelb.yaml` expects of them, and run
//! the demo's topology (`oxelb_tests::cluster`) as containers: podman as root, each container in
//! its lab namespace (`--network ns:/run/netns/<name>`) with the security settings the manifest
//! gives it, read from the manifest (user and group, capabilities added and dropped,
//! `readOnlyRootFilesystem`, `allowPrivilegeEscalation`).
//!
//! Needs root, podman and the archives: the test command (`tests/run.sh`) builds them and sets
//! `OXELB_IMAGES_DIR`; then a missing archive fails the test. Otherwise each test reports that it
//! skips. podman's store is a directory of the test's own, removed with every container in it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::PathBuf, time::Duration};

use oxelb_tests::{
    cluster::{Binaries, LabCluster},
    images::{Container, LabContainers, RUN_LIMITS, archives_or_skip, podman_with, skip},
    lab::{LabError, lab_or_skip, run, wait_until},
    routers::RouterKind,
    workspace_root,
};

/// The longest a layer2 IP may go unanswered while its speaker stops on SIGTERM: the README's
/// failover figure (a lost node is replaced in about 200 ms) plus one probe timeout (100 ms). A
/// stopping speaker says it is leaving, so the measured figure is the probe's own pace (docs/install.md).
const SIGTERM_HANDOVER_BOUND: Duration = Duration::from_millis(300);

/// The TCP-MD5 password of the lab's BGP sessions.
const MD5_PASSWORD: &str = "oxelb-image-md5";
/// `examples/lab/bgppeer-router.yaml` with the password from the Secret below.
const BGP_PEER_MD5: &str = "apiVersion: network.kubesphere.io/v1alpha2
kind: BgpPeer
metadata: {name: lab-router}
spec:
  conf: {peerAs: 64513, neighborAddress: 192.0.2.1, authPasswordSecret: {name: bgp-auth}}
  gracefulRestart: {enabled: true, restartTime: 60}
  timers: {config: {holdTime: '9', keepaliveInterval: '3', connectRetry: '1'}}
";
const BGP_SECRET: &str = "apiVersion: v1
kind: Secret
metadata: {name: bgp-auth, namespace: oxelb-system}
stringData: {password: oxelb-image-md5}
";

fn containers() -> Result<(Container, Container), LabError> {
    Ok((
        Container::from_manifest("Deployment", "oxelb-controller")?,
        Container::from_manifest("DaemonSet", "oxelb-speaker")?,
    ))
}

/// The lab cluster on `examples/lab/` with the controller and speakers as containers of the
/// images (the speakers as `speaker` says), started; `None` when it cannot run here (reported).
fn cluster(test: &str, speaker: impl FnOnce(Container) -> Container) -> Result<Option<LabCluster>, LabError> {
    let Some(archives) = archives_or_skip(test)? else {
        return Ok(None);
    };
    let Some(lab) = lab_or_skip(test)? else {
        return Ok(None);
    };
    let podman = podman_with(test, &archives)?;
    let (controller, speaker_container) = containers()?;
    let bins = Binaries::for_test(env!("CARGO_BIN_EXE_oxelb-lab"))?;
    // TCP-MD5 on every session: FRR requires the password, the BgpPeer takes it from a Secret.
    let mut cluster = LabCluster::build_router(
        lab,
        bins,
        &workspace_root().join("examples/lab"),
        RouterKind::Frr,
        None,
        Some(MD5_PASSWORD),
    )?;
    cluster.put_object("bgppeer-router.yaml", BGP_PEER_MD5)?;
    cluster.put_object("secret-bgp-auth.yaml", BGP_SECRET)?;
    // The controller runs as the manifest's unprivileged user: it must reach and write the lab's
    // objects directory (its status overlays) as the binary did as root.
    let dir = cluster.lab.dir().display().to_string();
    run("chmod", &["-R", "a+rwX", &dir])?;
    cluster.containers = Some(LabContainers {
        podman,
        controller,
        speaker: speaker(speaker_container),
    });
    cluster.start_all()?;
    Ok(Some(cluster))
}

fn with_logs(cluster: &LabCluster, result: Result<(), LabError>) -> Result<(), LabError> {
    if result.is_err() {
        cluster.dump_logs(40);
    }
    result
}

#[test]
fn images_are_what_the_manifest_runs() -> Result<(), LabError> {
    let test = "images_are_what_the_manifest_runs";
    let Some(archives) = archives_or_skip(test)? else {
        return Ok(());
    };
    let podman = podman_with(test, &archives)?;
    let (controller, speaker) = containers()?;
    for (container, binary) in [(&controller, "/oxelb-controller"), (&speaker, "/oxelb-speaker")] {
        // The manifest's image name is what the archive loaded as (docker.io/ is implied).
        let image = podman.inspect(&container.image)?;
        let config = &image["Config"];
        assert_eq!(
            config["Entrypoint"],
            serde_json::json!([binary]),
            "{}: {config}",
            container.image
        );
        let user = match (container.user, container.group) {
            (Some(u), Some(g)) => format!("{u}:{g}"),
            (Some(u), None) => u.to_string(),
            _ => String::new(),
        };
        // The image's USER is the manifest's runAsUser:runAsGroup (the speaker: root, no USER).
        let image_user = config["User"].as_str().unwrap_or_default();
        if user == "0" {
            assert!(
                image_user.is_empty() || image_user == "0",
                "{}: User {image_user:?}",
                container.image
            );
        } else {
            assert_eq!(image_user, user, "{}", container.image);
        }
        // FROM scratch: one layer, the static binary and nothing else.
        let layers = image["RootFS"]["Layers"].as_array().map_or(0, Vec::len);
        assert_eq!(layers, 1, "{}: {}", container.image, image["RootFS"]);
        let size = image["Size"].as_u64().unwrap_or_default();
        eprintln!(
            "{}: {} bytes ({:.1} MiB), user {image_user:?}",
            container.image,
            size,
            size as f64 / 1048576.0
        );
        // The binary runs with the manifest's settings and no network: it prints its usage.
        let mut args: Vec<String> = vec!["run".into(), "--rm".into(), "--network".into(), "none".into()];
        args.extend(RUN_LIMITS.map(String::from));
        args.extend(container.run_options());
        args.extend([container.image.clone(), "--help".into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let help = podman.run(&args)?;
        assert!(
            help.contains("--source"),
            "{}: --help printed {help}",
            container.image
        );
    }
    Ok(())
}

#[test]
fn images_allocate_answer_arp_announce_bgp_md5_and_hand_over_on_sigterm() -> Result<(), LabError> {
    let test = "images_allocate_answer_arp_announce_bgp_md5_and_hand_over_on_sigterm";
    let Some(mut cluster) = cluster(test, |speaker| speaker)? else {
        return Ok(());
    };
    let result = (|| {
        // The controller's image allocates from the Eips.
        let l2 = cluster.wait_service_ips("default", "web-layer2")?;
        let bgp = cluster.wait_service_ips("default", "web-bgp")?;
        let (l2, bgp) = (l2[0].clone(), bgp[0].clone());
        // The speaker's image answers ARP: the LAN client's kernel resolves the IP and connects.
        let first = cluster.layer2_answerer(&l2)?;
        let lan_client = cluster.lan_client.clone();
        cluster.wait_reachable(&lan_client, &l2)?;
        let neigh = lan_client.ip(&["neigh", "show", &l2])?;
        let mac = cluster.nodes[first].ns.mac("eth0")?.to_lowercase();
        assert!(
            neigh.contains(&mac),
            "the client's kernel resolved {l2} to {neigh}, not node {first}'s {mac}"
        );
        // ... and announces by BGP over TCP-MD5 sessions (FRR requires the password): FRR installs
        // three equal-cost paths.
        cluster.wait_kernel_paths(&bgp, 3)?;
        let routed_client = cluster.routed_client.clone();
        cluster.wait_reachable(&routed_client, &bgp)?;
        // SIGTERM (a rolling update) hands the layer2 IP over within the bound.
        std::thread::sleep(Duration::from_secs(1));
        let log = cluster.probe_while(&lan_client, &l2, 4, |cluster| {
            cluster.stop_speaker(first).map(drop)
        })?;
        let gap = log.longest_gap();
        eprintln!(
            "SIGTERM handover of {l2}: {} of {} GETs failed, longest pause {gap:?}",
            log.failed(),
            log.sent()
        );
        assert!(
            gap <= SIGTERM_HANDOVER_BOUND,
            "longest pause {gap:?} over {SIGTERM_HANDOVER_BOUND:?}"
        );
        let next = cluster.layer2_answerer(&l2)?;
        assert_ne!(next, first, "{l2} is still answered by the stopped node");
        Ok(())
    })();
    with_logs(&cluster, result)
}

#[test]
fn speaker_image_without_net_raw_names_the_capability() -> Result<(), LabError> {
    let test = "speaker_image_without_net_raw_names_the_capability";
    let Some(cluster) = cluster(test, |speaker| speaker.without_capability("NET_RAW"))? else {
        return Ok(());
    };
    let result = (|| {
        cluster.wait_service_ips("default", "web-layer2")?;
        let line = wait_until(
            "a speaker to say why it cannot answer ARP",
            Duration::from_secs(30),
            Duration::from_millis(200),
            || {
                let logs: String = cluster
                    .nodes
                    .iter()
                    .map(|n| cluster.log(&format!("speaker-{}", n.name)))
                    .collect();
                logs.lines()
                    .find(|l| l.contains("cannot open layer2 sockets"))
                    .map(str::to_owned)
                    .ok_or(logs)
            },
        )?;
        eprintln!("the speaker without NET_RAW logged: {line}");
        for needle in ["eth0", "AF_PACKET", "socket failed", "needs CAP_NET_RAW"] {
            assert!(line.contains(needle), "{needle:?} missing from: {line}");
        }
        Ok(())
    })();
    with_logs(&cluster, result)
}

/// One recipe: the Dockerfile's build stage runs images/build.sh, whose one cargo command builds
/// both binaries; the Dockerfile builds nothing itself.
#[test]
fn the_dockerfile_builds_with_the_same_script() {
    let root = workspace_root();
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let script = std::fs::read_to_string(root.join("images/build.sh")).unwrap();
    assert!(
        dockerfile.contains("images/build.sh binaries /out"),
        "the Dockerfile does not run images/build.sh"
    );
    let builds: Vec<&str> = dockerfile.lines().filter(|l| l.contains("cargo build")).collect();
    assert!(builds.is_empty(), "the Dockerfile runs cargo itself: {builds:?}");
    let cargo: Vec<&str> = script
        .lines()
        .filter(|l| l.trim_start().starts_with("build=(cargo build"))
        .collect();
    assert_eq!(cargo.len(), 1, "images/build.sh has one build command: {cargo:?}");
    for flag in [
        "--release",
        "--locked",
        "--target",
        "-p oxelb-controller",
        "-p oxelb-speaker",
    ] {
        assert!(cargo[0].contains(flag), "{flag} missing from {}", cargo[0]);
    }
}

/// Stops the containerd a test started and removes its directory.
struct Containerd(std::process::Child, PathBuf);

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

/// `kind load image-archive` runs `ctr --namespace=k8s.io images import --all-platforms --digests`
/// on each node: a containerd of the test's own (its own root, state and socket) imports both
/// archives under the names the kubelet looks for (`docker.io/` + the manifest's image).
#[test]
fn containerd_imports_the_archives_as_kind_does() -> Result<(), LabError> {
    let test = "containerd_imports_the_archives_as_kind_does";
    let Some(archives) = archives_or_skip(test)? else {
        return Ok(());
    };
    if run("containerd", &["--version"]).is_err() {
        if std::env::var_os("OXELB_IMAGES_DIR").is_some() {
            panic!("{test}: containerd is not installed (apt-get install containerd)");
        }
        skip(test, "containerd is not installed (apt-get install containerd)");
        return Ok(());
    }
    let dir = PathBuf::from(format!("/tmp/oxctr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("containerd.sock").display().to_string();
    let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
    let child = std::process::Command::new("containerd")
        .args(["--root", &dir.join("root").display().to_string()])
        .args(["--state", &dir.join("state").display().to_string()])
        .args(["--address", &socket])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let _containerd = Containerd(child, dir.clone());
    wait_until(
        "containerd to serve",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || run("ctr", &["--address", &socket, "version"]).map_err(|e| e.to_string()),
    )?;
    for archive in &archives {
        let archive = archive.display().to_string();
        run(
            "ctr",
            &[
                "--address",
                &socket,
                "--namespace",
                "k8s.io",
                "images",
                "import",
                "--all-platforms",
                "--digests",
                &archive,
            ],
        )?;
    }
    let names = run(
        "ctr",
        &[
            "--address",
            &socket,
            "--namespace",
            "k8s.io",
            "images",
            "ls",
            "-q",
        ],
    )?;
    let (controller, speaker) = containers()?;
    for container in [controller, speaker] {
        let want = format!("docker.io/{}", container.image);
        assert!(names.lines().any(|l| l == want), "{want} not imported: {names}");
    }
    Ok(())
}
