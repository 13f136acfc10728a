//! A client of the controller's admission webhook as the API server is one: HTTPS, trusting only
//! the CA it is given (the `caBundle`, or `ca.crt` of the Secret `oxelb-webhook-cert`), checking
//! the certificate against the webhook Service's DNS name, one `POST` of an AdmissionReview.
//! Shared by the controller's TLS tests (`controller/tests/webhook_tls.rs`) and the controller
//! image's test (`tests/tests/images_controller.rs`).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use rustls::{
    ClientConfig, ProtocolVersion, RootCertStore, SupportedProtocolVersion,
    pki_types::{CertificateDer, ServerName, pem::PemObject},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The name the API server checks the webhook's certificate against: the Service
/// `oxelb-webhook` in `oxelb-system` (`clientConfig.service` of the ValidatingWebhookConfiguration).
pub const WEBHOOK_SERVER_NAME: &str = "oxelb-webhook.oxelb-system.svc";

/// How long one exchange (connect, handshake, request, answer) may take.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an exchange with the webhook failed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookClientError {
    /// The CA PEM held no usable certificate.
    #[error("CA bundle: {0}")]
    Ca(String),
    /// rustls refused the client configuration.
    #[error("TLS client configuration: {0}")]
    Config(#[from] rustls::Error),
    /// No TCP connection.
    #[error("connect to {addr}: {source}")]
    Connect {
        /// The webhook's address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake failed (an untrusted certificate, a wrong name, no common version).
    #[error("TLS handshake with {addr}: {source}")]
    Handshake {
        /// The webhook's address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Writing the request or reading the answer failed.
    #[error("exchange with {addr}: {source}")]
    Exchange {
        /// The webhook's address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The exchange took longer than [`EXCHANGE_TIMEOUT`].
    #[error("no answer from {0} within {EXCHANGE_TIMEOUT:?}")]
    Timeout(SocketAddr),
}

/// One HTTP answer of the webhook.
#[derive(Clone, Debug)]
pub struct WebhookAnswer {
    /// The TLS version negotiated.
    pub version: Option<ProtocolVersion>,
    /// The whole HTTP/1.1 response (status line, headers, body).
    pub raw: String,
}

impl WebhookAnswer {
    /// The body after the headers, parsed as JSON (`None` when it is not JSON).
    pub fn json(&self) -> Option<serde_json::Value> {
        let (_, body) = self.raw.split_once("\r\n\r\n")?;
        serde_json::from_str(body).ok()
    }
}

/// `POST path` with `body` (JSON) to the webhook at `addr` over TLS limited to `versions`, trusting
/// only the certificates of `ca_pem` and checking the name [`WEBHOOK_SERVER_NAME`].
pub async fn post_over_tls(
    addr: SocketAddr,
    ca_pem: &str,
    versions: &[&'static SupportedProtocolVersion],
    path: &str,
    body: &str,
) -> Result<WebhookAnswer, WebhookClientError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| WebhookClientError::Ca(e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| WebhookClientError::Ca(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(WebhookClientError::Ca("no certificate in the PEM".to_owned()));
    }
    let config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name =
        ServerName::try_from(WEBHOOK_SERVER_NAME).map_err(|e| WebhookClientError::Ca(e.to_string()))?;
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|source| WebhookClientError::Connect { addr, source })?;
        let mut tls = connector
            .connect(name, tcp)
            .await
            .map_err(|source| WebhookClientError::Handshake { addr, source })?;
        let version = tls.get_ref().1.protocol_version();
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {WEBHOOK_SERVER_NAME}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        tls.write_all(request.as_bytes())
            .await
            .map_err(|source| WebhookClientError::Exchange { addr, source })?;
        let mut raw = Vec::new();
        // A server closing without close_notify still gave its whole answer (Connection: close).
        let _ = tls.read_to_end(&mut raw).await;
        Ok(WebhookAnswer {
            version,
            raw: String::from_utf8_lossy(&raw).into_owned(),
        })
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
        .await
        .map_err(|_| WebhookClientError::Timeout(addr))?
}
