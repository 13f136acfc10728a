//! End to end through the `dir:` source: the real controller binary on a directory of manifests,
//! observed only through what it writes under `status/` (as speakers in other processes see it).
//! Create, share, release, restart with the same directory: no IP changes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use oxelb_runtime::test_util::{free_port, http_get};
use serde_yaml::Value;

/// Every wait is bounded: the controller decides within milliseconds; the dir source polls every
/// 200 ms.
const WAIT: Duration = Duration::from_secs(20);

/// A running controller, killed when dropped.
struct Controller {
    child: Child,
    addr: SocketAddr,
}

impl Controller {
    fn start(dir: &Path) -> Self {
        Self::start_with(dir, &[])
    }

    fn start_with(dir: &Path, extra: &[&str]) -> Self {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
        let child = Command::new(env!("CARGO_BIN_EXE_oxelb-controller"))
            .args(extra)
            .arg("--source")
            .arg(format!("dir:{}", dir.display()))
            .arg("--metrics-addr")
            .arg(addr.to_string())
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self { child, addr }
    }

    /// SIGTERM, then a bounded wait for a clean exit.
    fn stop(mut self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                assert!(exit.success(), "controller exited with {exit}");
                return;
            }
            assert!(Instant::now() < deadline, "controller did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn service(name: &str, extra_annotations: &str, port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: default\n  annotations:\n    lb.kubesphere.io/v1alpha1: openelb\n{extra_annotations}spec:\n  type: LoadBalancer\n  selector: {{app: {name}}}\n  ports: [{{port: {port}}}]\n"
    )
}

const EIP: &str = "apiVersion: network.kubesphere.io/v1alpha2\nkind: Eip\nmetadata:\n  name: pool\n  annotations: {eip.openelb.kubesphere.io/is-default-eip: \"true\"}\nspec:\n  address: 192.0.2.0/28\n  protocol: layer2\n  interface: eth0\n";

fn overlay(dir: &Path, rel: &str) -> Option<Value> {
    let path: PathBuf = dir.join("status").join(rel);
    serde_yaml::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn ingress(dir: &Path, name: &str) -> Vec<String> {
    overlay(dir, &format!("services.core/default/{name}.yaml"))
        .and_then(|v| {
            v["status"]["loadBalancer"]["ingress"].as_sequence().map(|s| {
                s.iter()
                    .filter_map(|i| i["ip"].as_str().map(str::to_owned))
                    .collect()
            })
        })
        .unwrap_or_default()
}

fn eip_used(dir: &Path) -> Vec<(String, String)> {
    overlay(dir, "eips.network.kubesphere.io/pool.yaml")
        .and_then(|v| {
            v["status"]["used"].as_mapping().map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().unwrap_or("").to_owned(),
                            v.as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// Waits (bounded) until `check` holds; fails with `what` and the last value seen.
async fn eventually<T: std::fmt::Debug>(
    what: &str,
    mut probe: impl FnMut() -> T,
    check: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        let value = probe();
        if check(&value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not reached within {WAIT:?}; last: {value:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn pair(ip: &str, holders: &str) -> (String, String) {
    (ip.to_owned(), holders.to_owned())
}

#[tokio::test]
async fn create_share_release_restart_through_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("eip.yaml"), EIP).unwrap();
    std::fs::write(dir.join("a.yaml"), service("a", "", 80)).unwrap();
    std::fs::write(
        dir.join("b.yaml"),
        service("b", "    eip.openelb.kubesphere.io/v1alpha1: 192.0.2.1\n", 443),
    )
    .unwrap();
    std::fs::write(dir.join("c.yaml"), service("c", "", 80)).unwrap();

    let controller = Controller::start(dir);
    // Create and share: a gets the lowest free IP, b asks for it (other port), c gets the next.
    eventually(
        "a, b and c assigned",
        || (ingress(dir, "a"), ingress(dir, "b"), ingress(dir, "c")),
        |v| !v.0.is_empty() && !v.1.is_empty() && !v.2.is_empty(),
    )
    .await;
    assert_eq!(ingress(dir, "a"), vec!["192.0.2.1"]);
    assert_eq!(ingress(dir, "b"), vec!["192.0.2.1"]);
    assert_eq!(ingress(dir, "c"), vec!["192.0.2.2"]);
    eventually(
        "Eip status.used",
        || eip_used(dir),
        |u| {
            *u == vec![
                pair("192.0.2.1", "default/a;default/b"),
                pair("192.0.2.2", "default/c"),
            ]
        },
    )
    .await;
    let svc = overlay(dir, "services.core/default/a.yaml").unwrap();
    assert_eq!(
        svc["metadata"]["labels"]["eip.openelb.kubesphere.io/v1alpha2"].as_str(),
        Some("pool")
    );
    assert_eq!(
        svc["metadata"]["finalizers"][0].as_str(),
        Some("finalizer.lb.kubesphere.io/v1alpha1")
    );
    let metrics = eventually(
        "pool metrics",
        || metrics_now(&controller),
        |m| m.contains("oxelb_pool_in_use{pool=\"pool\",family=\"ipv4\"} 2"),
    )
    .await;
    assert!(
        metrics.contains("oxelb_pool_size{pool=\"pool\",family=\"ipv4\"} 14"),
        "{metrics}"
    );
    assert!(metrics.contains("oxelb_controller_leader 1"), "{metrics}");

    // Release: the annotation goes, so does the IP.
    std::fs::write(
        dir.join("c.yaml"),
        service("c", "", 80).replace("    lb.kubesphere.io/v1alpha1: openelb\n", "    note: released\n"),
    )
    .unwrap();
    eventually("c released", || ingress(dir, "c"), Vec::is_empty).await;
    eventually(
        "Eip no longer lists c",
        || eip_used(dir),
        |u| *u == vec![pair("192.0.2.1", "default/a;default/b")],
    )
    .await;

    // Restart with the same directory, with a new Service waiting: nobody's IP changes and the new
    // Service gets the released IP, not a held one.
    controller.stop();
    std::fs::write(dir.join("d.yaml"), service("d", "", 80)).unwrap();
    let controller = Controller::start(dir);
    eventually("d assigned", || ingress(dir, "d"), |v| !v.is_empty()).await;
    assert_eq!(ingress(dir, "d"), vec!["192.0.2.2"]);
    assert_eq!(ingress(dir, "a"), vec!["192.0.2.1"]);
    assert_eq!(ingress(dir, "b"), vec!["192.0.2.1"]);

    // Deleting a shared holder keeps the IP for the other.
    std::fs::remove_file(dir.join("a.yaml")).unwrap();
    eventually(
        "a's share released",
        || eip_used(dir),
        |u| *u == vec![pair("192.0.2.1", "default/b"), pair("192.0.2.2", "default/d")],
    )
    .await;
    assert_eq!(ingress(dir, "b"), vec!["192.0.2.1"]);
    controller.stop();
}

/// GETs `path` from a synchronous probe (the probe closures cannot be async): status and body, or
/// `(0, "")` when the controller does not answer.
fn get_now(controller: &Controller, path: &'static str) -> (u16, String) {
    let addr = controller.addr;
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()
            .and_then(|rt| rt.block_on(async { http_get(addr, path).await.ok().map(|r| (r.status, r.body)) }))
            .unwrap_or_default()
    })
    .join()
    .unwrap_or_default()
}

/// The `/metrics` page.
fn metrics_now(controller: &Controller) -> String {
    get_now(controller, "/metrics").1
}

fn finalizers(dir: &Path, rel: &str) -> Vec<String> {
    overlay(dir, rel)
        .and_then(|v| {
            v["metadata"]["finalizers"]
                .as_sequence()
                .map(|s| s.iter().filter_map(|f| f.as_str().map(str::to_owned)).collect())
        })
        .unwrap_or_default()
}

/// The `/readyz` status.
fn ready_now(controller: &Controller) -> u16 {
    get_now(controller, "/readyz").0
}

#[tokio::test]
async fn uninstall_mode_releases_every_finalizer_and_a_reinstall_keeps_the_ips() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("eip.yaml"), EIP).unwrap();
    std::fs::write(dir.join("a.yaml"), service("a", "", 80)).unwrap();
    std::fs::write(dir.join("b.yaml"), service("b", "", 80)).unwrap();
    let controller = Controller::start(dir);
    eventually(
        "a and b assigned and held by finalizers",
        || {
            (
                finalizers(dir, "services.core/default/a.yaml"),
                finalizers(dir, "services.core/default/b.yaml"),
                finalizers(dir, "eips.network.kubesphere.io/pool.yaml"),
            )
        },
        |(a, b, eip)| !a.is_empty() && !b.is_empty() && !eip.is_empty(),
    )
    .await;
    let held = (ingress(dir, "a"), ingress(dir, "b"));
    controller.stop();

    // Uninstall mode: every finalizer goes, nothing else changes, and it says so by turning ready.
    let uninstalling = Controller::start_with(dir, &["--uninstall"]);
    eventually("uninstall mode ready", || ready_now(&uninstalling), |s| *s == 200).await;
    for rel in [
        "services.core/default/a.yaml",
        "services.core/default/b.yaml",
        "eips.network.kubesphere.io/pool.yaml",
    ] {
        assert_eq!(finalizers(dir, rel), Vec::<String>::new(), "{rel}");
    }
    assert_eq!((ingress(dir, "a"), ingress(dir, "b")), held);
    // A Service created now gets no IP and no finalizer: nothing new is held.
    std::fs::write(dir.join("c.yaml"), service("c", "", 80)).unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(ingress(dir, "c").is_empty());
    assert!(finalizers(dir, "services.core/default/c.yaml").is_empty());
    let metrics = metrics_now(&uninstalling);
    assert!(metrics.contains("oxelb_controller_leader 0"), "{metrics}");
    uninstalling.stop();

    // Installed again: the same IPs, adopted from the status left in place; c gets a new one.
    let controller = Controller::start(dir);
    eventually("c assigned", || ingress(dir, "c"), |v| !v.is_empty()).await;
    assert_eq!((ingress(dir, "a"), ingress(dir, "b")), held);
    controller.stop();
}
