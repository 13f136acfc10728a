//! oxelb controller: allocates IPs from Eip pools to LoadBalancer Services.
//!
//! This is the start-up: flags, logging, metrics/health server, the object source, and an index
//! per kind the controller reads (Services, Namespaces, Eips). Allocation comes in later work and
//! reads these indexes.

pub mod inputs;

use clap::Parser;
use k8s_openapi::api::core::v1::{Namespace, Service};
use oxelb_crds::v1alpha2::Eip;
use oxelb_runtime::{
    app::{App, AppError},
    cli::CommonArgs,
    feed::SharedIndex,
};
use prometheus_client::registry::Registry;

/// Default `--metrics-addr` of the controller (a Deployment: any port of the pod is free).
pub const DEFAULT_METRICS_ADDR: &str = "0.0.0.0:8080";

/// The component name in Events and logs.
pub const COMPONENT: &str = "oxelb-controller";

/// The controller's flags.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "oxelb-controller",
    version,
    about = "oxelb controller: allocates LoadBalancer IPs from Eip pools"
)]
pub struct Args {
    /// Flags shared with the speaker.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// The objects the controller reads.
#[derive(Clone)]
pub struct Indexes {
    /// All Services.
    pub services: SharedIndex<Service>,
    /// All Namespaces (Eips bound by `namespaces` / `namespaceSelector` match their names and labels).
    pub namespaces: SharedIndex<Namespace>,
    /// All Eips (network.kubesphere.io/v1alpha2).
    pub eips: SharedIndex<Eip>,
}

/// Starts the indexes of every kind the controller reads.
pub fn watch_all(app: &mut App) -> Indexes {
    Indexes {
        services: app.index::<Service>(),
        namespaces: app.index::<Namespace>(),
        eips: app.index::<Eip>(),
    }
}

/// Runs the controller until SIGTERM/SIGINT.
pub async fn run(args: Args) -> Result<(), AppError> {
    let mut app = App::start(&args.common, Registry::default()).await?;
    let _indexes = watch_all(&mut app);
    app.run().await
}
