//! The controller's image against an API server (issue 27): `oxelb-controller.oci.tar`, loaded into
//! a podman store of the test's own, runs with the security settings `config/oxelb.yaml` gives the
//! Deployment's container (read from the manifest: user and group, capabilities, a read-only root
//! filesystem without podman's tmpfs, no privilege escalation) and the manifest's `args`, pointed
//! at the in-memory API (`oxelb_tests::apiserver`) by a kubeconfig mounted read-only. The container
//! shares the host's network (`--network host`) and every address is loopback: the API, the
//! controller's metrics and its webhook. The kubeconfig names a CA, as a pod's configuration does:
//! the image has no system roots, and without one the controller does not start (see
//! [`kubeconfig_with_ca`]).
//!
//! Asserts that the image, as the Deployment runs it,
//! - allocates: a LoadBalancer Service gets an IP of the Eip in `status.loadBalancer.ingress`, and
//!   the Eip's `status.used` names it;
//! - bootstraps its webhook certificate: it creates the Secret `oxelb-system/oxelb-webhook-cert`
//!   and patches the same CA into the `caBundle` of `config/webhook/`'s ValidatingWebhookConfiguration;
//! - serves the webhook over TLS: a client trusting only that CA and checking the Service's DNS
//!   name (as the API server does) posts AdmissionReviews to the manifest's Eip path: an Eip whose
//!   address does not parse and one that overlaps the Eip in the API are refused with messages naming
//!   `spec.address` (and the other Eip: the webhook reads the API's Eips from inside the container), a
//!   valid one is allowed; over TLS 1.2 and 1.3; a client trusting another CA fails its handshake.
//!
//! Needs root, podman and the archives, as `images.rs`: the test command builds them and sets
//! `OXELB_IMAGES_DIR` (then a missing one fails the test); otherwise the test reports that it skips.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Stdio},
    time::Duration,
};

use base64::Engine as _;
use oxelb_tests::{
    apiserver::ApiServer,
    images::{Container, Podman, RUN_LIMITS, archives_or_skip, podman_with},
    lab::{LabError, wait_until},
    scale::free_port,
    webhook_client::{WebhookAnswer, WebhookClientError, post_over_tls},
    workspace_root,
};
use serde_json::{Value, json};

const SYSTEM: &str = "oxelb-system";
const EIPS: &str = "/apis/network.kubesphere.io/v1alpha2/eips";
const SECRET: &str = "/api/v1/namespaces/oxelb-system/secrets";
const CONFIGURATIONS: &str = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations";
/// The Eip the Service draws from (a documentation range: it is only data here).
const POOL: &str = "203.0.113.0/28";
/// Where the kubeconfig is mounted (read-only; the root filesystem is read-only too).
const KUBECONFIG_IN_CONTAINER: &str = "/etc/oxelb/kubeconfig";
/// The longest any one step may take (the image starts in well under a second here).
const WAIT: Duration = Duration::from_secs(60);
const EVERY: Duration = Duration::from_millis(200);

fn fail(what: impl std::fmt::Display) -> LabError {
    LabError::Unexpected(what.to_string())
}

/// The controller's container, run in the foreground by `podman run --rm`; dropping it removes the
/// container (`podman rm --force`) and reaps podman.
struct Running<'a> {
    podman: &'a Podman,
    name: String,
    child: Child,
    log: PathBuf,
}

impl Running<'_> {
    /// The container's output so far (the controller's JSON log lines, podman's errors).
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let _ = self.podman.run(&["rm", "--force", "--time", "0", &self.name]);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the controller's image as the Deployment runs it, against the API of `kubeconfig`,
/// serving metrics and the webhook on the loopback ports given.
fn run_controller<'a>(
    podman: &'a Podman,
    container: &Container,
    kubeconfig: &Path,
    log: PathBuf,
    metrics: SocketAddr,
    webhook: SocketAddr,
) -> Result<Running<'a>, LabError> {
    let name = format!("oxelb-controller-{}", std::process::id());
    let out = std::fs::File::create(&log).map_err(|source| LabError::Io {
        path: log.clone(),
        source,
    })?;
    let err = out.try_clone().map_err(|source| LabError::Io {
        path: log.clone(),
        source,
    })?;
    let mut command = podman.command();
    command.args(["run", "--rm", "--name", &name, "--network", "host"]);
    command.args(RUN_LIMITS);
    command.args(container.run_options());
    command
        .arg("-v")
        .arg(format!("{}:{KUBECONFIG_IN_CONTAINER}:ro", kubeconfig.display()));
    // The Deployment's environment: the downward API's POD_NAME and POD_NAMESPACE; KUBECONFIG
    // instead of the service account a pod would have.
    for env in [
        format!("KUBECONFIG={KUBECONFIG_IN_CONTAINER}"),
        "POD_NAME=oxelb-controller-image-test".to_owned(),
        format!("POD_NAMESPACE={SYSTEM}"),
    ] {
        command.arg("-e").arg(env);
    }
    command.arg(&container.image);
    command.args(&container.args);
    command.args([
        "--metrics-addr".to_owned(),
        metrics.to_string(),
        "--webhook-addr".to_owned(),
        webhook.to_string(),
    ]);
    eprintln!("{command:?}");
    let child = command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|source| LabError::Spawn {
            command: "podman run".to_owned(),
            source,
        })?;
    Ok(Running {
        podman,
        name,
        child,
        log,
    })
}

/// The objects a cluster with oxelb installed has: its namespace, the ValidatingWebhookConfiguration
/// of `config/webhook/` (without `caBundle`), an Eip and a LoadBalancer Service drawing from it.
/// Returns the webhook configuration as the manifest has it.
fn seed(api: &ApiServer) -> Result<Value, LabError> {
    for ns in [SYSTEM, "app"] {
        api.create("/api/v1/namespaces", json!({"metadata": {"name": ns}}))
            .map_err(fail)?;
    }
    let path = workspace_root().join("config/webhook/validatingwebhookconfiguration.yaml");
    let text = std::fs::read_to_string(&path).map_err(|source| LabError::Io {
        path: path.clone(),
        source,
    })?;
    let configuration: Value =
        serde_yaml::from_str(&text).map_err(|e| fail(format!("{}: {e}", path.display())))?;
    api.create(CONFIGURATIONS, configuration.clone()).map_err(fail)?;
    api.create(
        EIPS,
        json!({"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "Eip",
            "metadata": {"name": "pool"}, "spec": {"address": POOL, "protocol": "bgp"}}),
    )
    .map_err(fail)?;
    api.create(
        "/api/v1/namespaces/app/services",
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "app",
                "annotations": {"lb.kubesphere.io/v1alpha1": "openelb", "eip.openelb.kubesphere.io/v1alpha2": "pool"}},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]}}),
    )
    .map_err(fail)?;
    Ok(configuration)
}

fn base64_text(value: &Value) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.as_str()?)
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// An AdmissionReview of an Eip CREATE.
fn eip_review(uid: &str, name: &str, address: &str) -> String {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": uid, "operation": "CREATE",
            "kind": {"group": "network.kubesphere.io", "version": "v1alpha2", "kind": "Eip"},
            "name": name,
            "object": {"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "Eip",
                "metadata": {"name": name}, "spec": {"address": address, "protocol": "bgp"}}}})
    .to_string()
}

/// `response` of an answer, after checking the HTTP status and the uid.
fn response(answer: &WebhookAnswer, uid: &str) -> Value {
    assert!(answer.raw.starts_with("HTTP/1.1 200"), "{}", answer.raw);
    let review = answer
        .json()
        .unwrap_or_else(|| panic!("not JSON: {}", answer.raw));
    assert_eq!(review["response"]["uid"], uid, "{review}");
    review["response"].clone()
}

/// The in-memory API's kubeconfig with a `certificate-authority-data`, as every kubeconfig of a
/// TLS-serving cluster and a pod's in-cluster configuration have. The image has no system CA bundle
/// (`FROM scratch`) and kube's client refuses to start without a CA to trust ("No CA certificates
/// were loaded from the system"), even for a plain-HTTP server like this one, where the CA is unused.
fn kubeconfig_with_ca(api: &ApiServer, ca_pem: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters: [{{name: memory, cluster: {{server: \"http://{}\", certificate-authority-data: {ca}}}}}]\nusers: [{{name: memory, user: {{}}}}]\ncontexts: [{{name: memory, context: {{cluster: memory, user: memory, namespace: default}}}}]\ncurrent-context: memory\n",
        api.addr()
    )
}

/// A CA of the test's own: the "cluster CA" of the kubeconfig, and one that signed nothing the
/// webhook serves.
fn test_ca() -> String {
    let key = rcgen::KeyPair::generate().expect("a key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.self_signed(&key).expect("a self-signed CA").pem()
}

#[test]
fn controller_image_allocates_and_serves_its_webhook_over_tls_against_the_in_memory_api()
-> Result<(), LabError> {
    let test = "controller_image_allocates_and_serves_its_webhook_over_tls_against_the_in_memory_api";
    let Some(archives) = archives_or_skip(test)? else {
        return Ok(());
    };
    let controller_archive: Vec<PathBuf> = archives
        .into_iter()
        .filter(|a| a.ends_with("oxelb-controller.oci.tar"))
        .collect();
    let podman = podman_with(test, &controller_archive)?;
    let container = Container::from_manifest("Deployment", "oxelb-controller")?;
    // The API serves from this runtime's workers while the test's thread waits on podman and polls.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| fail(format!("tokio runtime: {e}")))?;
    let api = runtime
        .block_on(ApiServer::start())
        .map_err(|e| fail(format!("in-memory API: {e}")))?;
    let configuration = seed(&api)?;
    let dir = tempfile::tempdir().map_err(|e| fail(format!("temporary directory: {e}")))?;
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, kubeconfig_with_ca(&api, &test_ca())).map_err(|source| LabError::Io {
        path: kubeconfig.clone(),
        source,
    })?;
    // The container's user (65532) reads it.
    std::fs::set_permissions(&kubeconfig, std::os::unix::fs::PermissionsExt::from_mode(0o644)).map_err(
        |source| LabError::Io {
            path: kubeconfig.clone(),
            source,
        },
    )?;
    let loopback = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let metrics = loopback(free_port().map_err(fail)?);
    let webhook = loopback(free_port().map_err(fail)?);
    let running = run_controller(
        &podman,
        &container,
        &kubeconfig,
        dir.path().join("controller.log"),
        metrics,
        webhook,
    )?;

    let result = (|| -> Result<(), LabError> {
        // Ready: the webhook serves (the controller reports ready only then).
        wait_until("the controller's /readyz", WAIT, EVERY, || {
            if runtime.block_on(oxelb_tests::scale::ready(metrics.port())) {
                Ok(())
            } else {
                Err(running.log().lines().last().unwrap_or("no output").to_owned())
            }
        })?;

        // Allocation, written through the API.
        let ip = wait_until("web's status.loadBalancer.ingress", WAIT, EVERY, || {
            let services = api.list("/api/v1/namespaces/app/services");
            services
                .iter()
                .find_map(|s| s["status"]["loadBalancer"]["ingress"][0]["ip"].as_str())
                .map(str::to_owned)
                .ok_or_else(|| format!("{services:?}"))
        })?;
        let pool: ipnet::IpNet = POOL.parse().expect("the pool parses");
        let address: std::net::IpAddr = ip.parse().map_err(|e| fail(format!("ingress {ip}: {e}")))?;
        assert!(pool.contains(&address), "web got {ip}, outside {POOL}");
        wait_until("the Eip's status.used naming app/web", WAIT, EVERY, || {
            let eips = api.list(EIPS);
            let used = eips
                .first()
                .map(|e| e["status"]["used"].clone())
                .unwrap_or_default();
            (used[&ip]
                .as_str()
                .is_some_and(|holder| holder.contains("app/web")))
            .then_some(())
            .ok_or_else(|| format!("{used}"))
        })?;
        eprintln!("the controller's image allocated {ip} to app/web");

        // The certificate: the Secret's CA is the one patched into the caBundle.
        let ca = wait_until("the webhook certificate Secret", WAIT, EVERY, || {
            api.list(SECRET)
                .iter()
                .find(|s| s["metadata"]["name"] == "oxelb-webhook-cert")
                .and_then(|s| base64_text(&s["data"]["ca.crt"]))
                .ok_or_else(|| "no Secret oxelb-webhook-cert with ca.crt".to_owned())
        })?;
        let bundle = wait_until("the caBundle", WAIT, EVERY, || {
            let configurations = api.list(CONFIGURATIONS);
            let hooks = configurations
                .first()
                .and_then(|c| c["webhooks"].as_array().cloned())
                .unwrap_or_default();
            let bundles: Vec<Option<String>> = hooks
                .iter()
                .map(|h| base64_text(&h["clientConfig"]["caBundle"]))
                .collect();
            match bundles.first() {
                Some(Some(first)) if bundles.iter().all(|b| b.as_ref() == Some(first)) => Ok(first.clone()),
                _ => Err(format!("{hooks:?}")),
            }
        })?;
        assert_eq!(bundle, ca, "the caBundle is the CA of the Secret");

        // The webhook over TLS, at the manifest's Eip path, trusting only that CA.
        let path = configuration["webhooks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h["clientConfig"]["service"]["path"].as_str())
            .find(|p| p.ends_with("-eip"))
            .ok_or_else(|| fail("no Eip webhook path in config/webhook/"))?
            .to_owned();
        let post = |ca: &str, versions: &[&'static rustls::SupportedProtocolVersion], body: &str| {
            runtime.block_on(post_over_tls(webhook, ca, versions, &path, body))
        };
        let tls13: &[&'static rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
        let tls12: &[&'static rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];

        let answer = post(&bundle, tls13, &eip_review("bad", "bad", "not-an-address"))
            .map_err(|e| fail(format!("the webhook over TLS 1.3: {e}")))?;
        assert_eq!(answer.version, Some(rustls::ProtocolVersion::TLSv1_3));
        let refused = response(&answer, "bad");
        let message = refused["status"]["message"].as_str().unwrap_or_default();
        assert_eq!(refused["allowed"], false, "{refused}");
        assert!(message.contains("spec.address"), "{message}");
        eprintln!("an Eip whose address does not parse: {message}");

        let answer = post(
            &bundle,
            tls12,
            &eip_review("overlap", "overlap", "203.0.113.8/29"),
        )
        .map_err(|e| fail(format!("the webhook over TLS 1.2: {e}")))?;
        assert_eq!(answer.version, Some(rustls::ProtocolVersion::TLSv1_2));
        let refused = response(&answer, "overlap");
        let message = refused["status"]["message"].as_str().unwrap_or_default();
        assert_eq!(refused["allowed"], false, "{refused}");
        assert!(
            message.contains("spec.address") && message.contains("pool"),
            "the overlap names the field and the other Eip: {message}"
        );
        eprintln!("an Eip overlapping pool: {message}");

        let answer = post(&bundle, tls13, &eip_review("good", "good", "198.51.100.0/29"))
            .map_err(|e| fail(format!("the webhook over TLS 1.3: {e}")))?;
        let allowed = response(&answer, "good");
        assert_eq!(allowed["allowed"], true, "{allowed}");

        // The server is the one the CA vouches for: a client trusting another CA refuses it.
        match post(
            &test_ca(),
            tls13,
            &eip_review("other", "other", "198.51.100.0/29"),
        ) {
            Err(WebhookClientError::Handshake { source, .. }) => {
                eprintln!("a client trusting another CA: {source}");
            }
            other => panic!("a client trusting another CA got {other:?}"),
        }
        Ok(())
    })();
    if result.is_err() {
        let log = running.log();
        let lines: Vec<&str> = log.lines().collect();
        eprintln!("--- the controller container's log (last 40 lines)");
        for line in &lines[lines.len().saturating_sub(40)..] {
            eprintln!("{line}");
        }
    }
    drop(running);
    result
}
