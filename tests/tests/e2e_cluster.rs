//! The end-to-end lane against a real cluster: runs only when `OXELB_E2E_KUBECONFIG` names the
//! kubeconfig of a disposable cluster (kind, k3s, ...); otherwise it reports that it skips.
//!
//! It applies `config/crd/`, runs the controller binary locally against the cluster (webhook off,
//! its Lease in the test's namespace) and checks the controller's outcomes through the API, as the
//! namespace lab does through `dir:`: allocation into Service status and Eip status, no IP change
//! across a controller restart, an Eip disabled, release on deletion with the finalizer removed.
//! Speakers announce from cluster nodes (hostNetwork), so they are not run from here: reachability
//! against a cluster is the job of `tests/kind/` (needs Docker).
//!
//! Everything is created in a namespace `oxelb-e2e-<pid>` plus one Eip `oxelb-e2e-<pid>`
//! (203.0.113.240/29, a documentation range), all deleted at the end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::core::v1::{Namespace, Service},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, Config,
    api::{DeleteParams, Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use oxelb_crds::v1alpha2::Eip;
use oxelb_tests::workspace_root;
use serde_json::json;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const WAIT: Duration = Duration::from_secs(60);

struct Controller(Child);

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_controller(kubeconfig: &str, namespace: &str) -> Result<Controller> {
    let dir = PathBuf::from(env!("CARGO_BIN_EXE_oxelb-lab"));
    let binary = dir.with_file_name("oxelb-controller");
    let child = Command::new(&binary)
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "info")
        .args([
            "--source",
            "kube",
            "--webhook",
            "false",
            "--lease-namespace",
            namespace,
        ])
        .args(["--identity", "oxelb-e2e", "--metrics-addr", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| {
            format!(
                "{}: {e} (build it: cargo build -p oxelb-controller)",
                binary.display()
            )
        })?;
    Ok(Controller(child))
}

async fn wait_for<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> Result<T> {
    let start = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return Ok(value);
        }
        if start.elapsed() > WAIT {
            return Err(format!("timed out after {WAIT:?} waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn ingress(api: &Api<Service>, name: &str) -> Vec<String> {
    api.get_opt(name)
        .await
        .ok()
        .flatten()
        .and_then(|s| s.status?.load_balancer?.ingress)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|i| i.ip)
        .collect()
}

fn service(name: &str, pool: &str) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "annotations": {
            "lb.kubesphere.io/v1alpha1": "openelb",
            "eip.openelb.kubesphere.io/v1alpha2": pool}},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]}
    }))
    .expect("a valid Service")
}

#[tokio::test]
async fn controller_outcomes_on_a_real_cluster() -> Result<()> {
    let Ok(kubeconfig) = std::env::var("OXELB_E2E_KUBECONFIG") else {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED controller_outcomes_on_a_real_cluster: set OXELB_E2E_KUBECONFIG to the kubeconfig of a disposable cluster to run it"
        );
        return Ok(());
    };
    let config =
        Config::from_custom_kubeconfig(Kubeconfig::read_from(&kubeconfig)?, &KubeConfigOptions::default())
            .await?;
    let client = Client::try_from(config)?;
    let apply = PatchParams::apply("oxelb-e2e").force();

    // The CRDs, as `kubectl apply -f config/crd` would.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for entry in std::fs::read_dir(workspace_root().join("config/crd"))? {
        let path = entry?.path();
        let crd: CustomResourceDefinition = serde_yaml::from_str(&std::fs::read_to_string(&path)?)?;
        let name = crd.metadata.name.clone().ok_or("a CRD without a name")?;
        crds.patch(&name, &apply, &Patch::Apply(&crd)).await?;
        wait_for(&format!("CRD {name} established"), async || {
            let crd = crds.get(&name).await.ok()?;
            crd.status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(())
        })
        .await?;
    }

    let id = std::process::id();
    let ns_name = format!("oxelb-e2e-{id}");
    let pool = format!("oxelb-e2e-{id}");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns_name}}))?,
        )
        .await?;
    let eips: Api<Eip> = Api::all(client.clone());
    let eip: Eip = serde_json::from_value(json!({
        "apiVersion": "network.kubesphere.io/v1alpha2", "kind": "Eip",
        "metadata": {"name": pool},
        "spec": {"address": "203.0.113.240/29", "protocol": "bgp"}
    }))?;
    eips.create(&PostParams::default(), &eip).await?;
    let services: Api<Service> = Api::namespaced(client.clone(), &ns_name);
    services
        .create(&PostParams::default(), &service("first", &pool))
        .await?;

    let outcome = async {
        let mut controller = start_controller(&kubeconfig, &ns_name)?;
        let first = wait_for("first's IP", async || {
            Some(ingress(&services, "first").await).filter(|i| !i.is_empty())
        })
        .await?;
        assert!(first[0].starts_with("203.0.113.24"), "first got {first:?}");
        wait_for("the Eip's status.used listing first", async || {
            let used = eips.get(&pool).await.ok()?.status?.used?;
            used.values()
                .any(|v| v.contains(&format!("{ns_name}/first")))
                .then_some(())
        })
        .await?;

        // Restart: a Service created while the controller is down gets a new IP; first keeps its.
        drop(controller);
        services
            .create(&PostParams::default(), &service("second", &pool))
            .await?;
        controller = start_controller(&kubeconfig, &ns_name)?;
        let second = wait_for("second's IP", async || {
            Some(ingress(&services, "second").await).filter(|i| !i.is_empty())
        })
        .await?;
        assert_ne!(second, first);
        assert_eq!(
            ingress(&services, "first").await,
            first,
            "first moved across the restart"
        );

        // Disable: nothing new from the pool; what it gave stays.
        eips.patch(
            &pool,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"disable": true}})),
        )
        .await?;
        services
            .create(&PostParams::default(), &service("third", &pool))
            .await?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            ingress(&services, "third").await.is_empty(),
            "a disabled Eip gave an IP"
        );
        assert_eq!(ingress(&services, "first").await, first);

        // Release on deletion: the finalizer goes, and so does the Service.
        services.delete("first", &DeleteParams::default()).await?;
        wait_for("first deleted (finalizer removed)", async || {
            services.get_opt("first").await.ok()?.is_none().then_some(())
        })
        .await?;
        wait_for("the Eip's status.used without first", async || {
            let used = eips.get(&pool).await.ok()?.status?.used.unwrap_or_default();
            (!used.values().any(|v| v.contains(&format!("{ns_name}/first")))).then_some(())
        })
        .await?;
        for name in ["second", "third"] {
            services.delete(name, &DeleteParams::default()).await?;
        }
        wait_for("every Service released", async || {
            services
                .list(&Default::default())
                .await
                .ok()?
                .items
                .is_empty()
                .then_some(())
        })
        .await?;
        drop(controller);
        Ok::<(), Box<dyn std::error::Error>>(())
    }
    .await;

    // Clean up whatever happened. Finalizers need the controller, which is gone: strip them so
    // nothing is left behind (a namespace would otherwise hang in Terminating).
    for svc in services
        .list(&Default::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        if let Some(name) = svc.metadata.name {
            let strip = Patch::Merge(json!({"metadata": {"finalizers": null}}));
            let _ = services.patch(&name, &PatchParams::default(), &strip).await;
        }
    }
    let _ = eips
        .patch(
            &pool,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await;
    let _ = eips.delete(&pool, &DeleteParams::default()).await;
    let _ = namespaces.delete(&ns_name, &DeleteParams::default()).await;
    outcome
}
