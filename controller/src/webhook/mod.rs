//! The validating admission webhook: a bad Eip, BgpConf or BgpPeer is refused at `kubectl apply`
//! time with a message naming the field.
//!
//! - [`validate`]: the rules (pure).
//! - [`review`]: AdmissionReview v1 in and out (pure, never panics).
//! - [`certs`]: CA and serving certificate generation, rotation decision (pure).
//! - [`bootstrap`]: the Secret every replica serves from, and the `caBundle` (kube adapter).
//! - [`server`]: HTTPS with rustls, TLS 1.2+ only, certificate swapped on rotation.
//!
//! Every replica serves (the webhook Service selects them all) with the same certificate, read from
//! the Secret `oxelb-webhook-cert`; the controller reports ready only once the webhook serves. The
//! Eip overlap and default checks read the replica's warm Eip index.

pub mod bootstrap;
pub mod certs;
pub mod review;
pub mod server;
pub mod validate;

use std::{net::SocketAddr, time::Duration};

use kube::Client;
use oxelb_crds::v1alpha2::Eip;
use oxelb_runtime::{app::ReadyGate, feed::SharedIndex, shutdown::Shutdown};
use tokio::net::TcpListener;
use tracing::{error, info, warn};

use self::{
    bootstrap::{WebhookNames, ensure_ca_bundle, ensure_certificate},
    server::{CertStore, TlsListener, router, tls_config},
};

/// How often every replica re-reads the Secret (another replica may have rotated it) and checks
/// whether it must rotate.
pub const RELOAD: Duration = Duration::from_secs(600);

/// Retries of the certificate bootstrap: doubling from the first value to the second.
const RETRY: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));

/// Runs the webhook until shutdown: certificate first (retried until the API answers), then serving
/// (which opens `ready`), then a reload every [`RELOAD`].
pub async fn run(
    client: Client,
    names: WebhookNames,
    addr: SocketAddr,
    eips: SharedIndex<Eip>,
    ready: ReadyGate,
    shutdown: Shutdown,
    metrics: crate::metrics::ControllerMetrics,
) {
    let store = CertStore::default();
    let mut delay = RETRY.0;
    let mut current = loop {
        match ensure_certificate(client.clone(), &names, std::time::SystemTime::now()).await {
            Ok(bundle) => break bundle,
            Err(error) => {
                warn!(%error, "webhook certificate not ready; the controller stays unready");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.wait() => return,
                }
                delay = (delay * 2).min(RETRY.1);
            }
        }
    };
    if let Err(error) = store.set(&current) {
        error!(%error, "webhook certificate unusable; the webhook does not serve");
        return;
    }
    metrics.set_webhook_certificate_expiry(current.not_after);
    if let Err(error) = ensure_ca_bundle(client.clone(), &names, &current.ca_pem).await {
        warn!(%error, "caBundle not updated; retried at the next reload");
    }
    let config = match tls_config(store.clone()) {
        Ok(config) => config,
        Err(error) => {
            error!(%error, "webhook TLS configuration refused; the webhook does not serve");
            return;
        }
    };
    let listener = match TcpListener::bind(addr)
        .await
        .and_then(|l| TlsListener::new(l, config))
    {
        Ok(listener) => listener,
        Err(error) => {
            error!(%addr, %error, "--webhook-addr: cannot listen; the webhook does not serve");
            return;
        }
    };
    info!(%addr, "serving the admission webhook (HTTPS)");
    let server = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            axum::serve(listener, router(eips))
                .with_graceful_shutdown(async move { shutdown.wait().await })
                .await
        }
    });
    ready.open();

    loop {
        tokio::select! {
            _ = tokio::time::sleep(RELOAD) => {}
            _ = shutdown.wait() => break,
        }
        match ensure_certificate(client.clone(), &names, std::time::SystemTime::now()).await {
            Ok(bundle) if bundle != current => match store.set(&bundle) {
                Ok(()) => {
                    info!("webhook certificate reloaded");
                    metrics.set_webhook_certificate_expiry(bundle.not_after);
                    current = bundle;
                }
                Err(error) => warn!(%error, "new webhook certificate unusable; serving the previous one"),
            },
            Ok(_) => {}
            Err(error) => warn!(%error, "webhook certificate check failed; serving the current one"),
        }
        if let Err(error) = ensure_ca_bundle(client.clone(), &names, &current.ca_pem).await {
            warn!(%error, "caBundle not updated; retried at the next reload");
        }
    }
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(Ok(Err(error))) => warn!(%error, "webhook server failed"),
        Err(_) => warn!("webhook server did not stop in time"),
        _ => {}
    }
}
