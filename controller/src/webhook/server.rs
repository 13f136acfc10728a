//! The HTTPS server of the webhook: TLS 1.2 and 1.3 only (rustls), a certificate that can be swapped
//! while serving (rotation), and one POST path per kind.

use std::{
    net::SocketAddr,
    sync::{Arc, RwLock},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};
use oxelb_crds::v1alpha2::Eip;
use oxelb_runtime::feed::SharedIndex;
use rustls::{
    ServerConfig,
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tracing::{debug, warn};

use super::{
    certs::CertBundle,
    review::{Kind, review},
};

/// A TLS handshake that takes longer than this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the server could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The certificate or key PEM could not be read.
    #[error("webhook certificate: {0}")]
    Pem(String),
    /// rustls refused the key or configuration.
    #[error("webhook TLS: {0}")]
    Tls(#[from] rustls::Error),
}

/// The serving certificate, swappable while serving (every replica reloads it from the Secret).
#[derive(Clone, Debug, Default)]
pub struct CertStore {
    current: Arc<RwLock<Option<Arc<CertifiedKey>>>>,
}

impl CertStore {
    /// Serves `bundle` from now on.
    pub fn set(&self, bundle: &CertBundle) -> Result<(), ServerError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(bundle.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| ServerError::Pem(format!("tls.crt: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(bundle.key_pem.as_bytes())
            .map_err(|e| ServerError::Pem(format!("tls.key: {e}")))?;
        let signer = rustls::crypto::ring::sign::any_supported_type(&key)?;
        let certified = Arc::new(CertifiedKey::new(chain, signer));
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(certified);
        Ok(())
    }

    /// Whether a certificate is loaded.
    pub fn is_loaded(&self) -> bool {
        self.current.read().unwrap_or_else(|e| e.into_inner()).is_some()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The rustls configuration: TLS 1.3 and 1.2 only, HTTP/1.1, the certificate from `store`.
pub fn tls_config(store: CertStore) -> Result<ServerConfig, ServerError> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(store));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The routes: one POST path per kind; the Eip path reads the other Eips from `eips`.
pub fn router(eips: SharedIndex<Eip>) -> Router {
    let route = |kind: Kind| {
        post(
            move |State(eips): State<SharedIndex<Eip>>, body: Bytes| async move { handle(kind, &eips, &body) },
        )
    };
    Router::new()
        .route(Kind::Eip.path(), route(Kind::Eip))
        .route(Kind::BgpConf.path(), route(Kind::BgpConf))
        .route(Kind::BgpPeer.path(), route(Kind::BgpPeer))
        .with_state(eips)
}

fn handle(kind: Kind, eips: &SharedIndex<Eip>, body: &[u8]) -> Response {
    let others = || {
        let index = eips.read().unwrap_or_else(|e| e.into_inner());
        index.iter().map(|(_, eip)| eip.clone()).collect()
    };
    match review(kind, body, &others) {
        Ok(answer) => {
            if answer.pointer("/response/allowed") == Some(&serde_json::Value::Bool(false)) {
                let message = answer
                    .pointer("/response/status/message")
                    .and_then(|m| m.as_str())
                    .unwrap_or("");
                tracing::info!(kind = ?kind, message, "admission refused");
            }
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                answer.to_string(),
            )
                .into_response()
        }
        Err(error) => {
            warn!(kind = ?kind, %error, "unreadable admission request");
            (StatusCode::BAD_REQUEST, error.to_string()).into_response()
        }
    }
}

/// A TLS listener for `axum::serve`: handshakes run in their own tasks (a slow client never holds
/// up the others) and finished connections are handed over.
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    _acceptor: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Accepts on `listener` with `config`.
    pub fn new(listener: TcpListener, config: ServerConfig) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let (tx, ready) = mpsc::channel(64);
        let task = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        warn!(%error, "webhook accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(error)) => debug!(%peer, %error, "webhook TLS handshake failed"),
                        Err(_) => debug!(%peer, "webhook TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self {
            local,
            ready,
            _acceptor: task,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self._acceptor.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The acceptor task only ends when aborted, with the listener: wait forever.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
