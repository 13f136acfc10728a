//! BgpConf `listenAddresses`: the speaker listens on every address listed (not only the first),
//! each on `listenPort`. The speaker binary on a `dir:` source; routers are stood in for by plain
//! TCP connects (a connection from an address that is no BgpPeer is accepted, then closed).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    net::{SocketAddr, TcpStream},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use oxelb_runtime::test_util::free_port;

const WAIT: Duration = Duration::from_secs(20);

struct Speaker(Child);

impl Drop for Speaker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn every_listen_address_accepts() {
    let port = free_port().unwrap();
    let objects = format!(
        "apiVersion: v1\nkind: Node\nmetadata: {{name: n1}}\n---\n\
         apiVersion: network.kubesphere.io/v1alpha2\nkind: BgpConf\nmetadata: {{name: default}}\n\
         spec: {{as: 64512, listenPort: {port}, listenAddresses: ['127.0.0.1', '::1']}}\n---\n\
         apiVersion: network.kubesphere.io/v1alpha2\nkind: BgpPeer\nmetadata: {{name: router}}\n\
         spec: {{conf: {{peerAs: 65001, neighborAddress: 192.0.2.1}}, transport: {{passiveMode: true}}}}\n"
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("objects.yaml"), objects).unwrap();
    let node = dir.join("status/nodes.core/n1.yaml");
    std::fs::create_dir_all(node.parent().unwrap()).unwrap();
    std::fs::write(
        node,
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\nstatus:\n  conditions: [{type: Ready, status: 'True'}]\n  addresses: [{type: InternalIP, address: 192.0.2.11}]\n",
    )
    .unwrap();
    let metrics = free_port().unwrap();
    let _speaker = Speaker(
        Command::new(env!("CARGO_BIN_EXE_oxelb-speaker"))
            .args([
                "--source",
                &format!("dir:{}", dir.display()),
                "--metrics-addr",
                &format!("127.0.0.1:{metrics}"),
                "--node-name",
                "n1",
            ])
            .arg("--state-dir")
            .arg(dir.join("state"))
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    for ip in ["127.0.0.1", "::1"] {
        let addr = SocketAddr::new(ip.parse().unwrap(), port);
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nothing accepts on {addr} within {WAIT:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
