//! The kube side of the certificates: the Secret every replica serves from, and the `caBundle` of
//! the ValidatingWebhookConfiguration.
//!
//! Idempotent across replicas: a replica that finds no Secret creates one; if another replica created
//! it first (409 AlreadyExists) it reads and uses that one. Rotation replaces the Secret with the
//! `resourceVersion` it read, so of two replicas rotating at once one wins and the other reads the
//! winner's certificate. The `caBundle` is patched only when it differs.

use std::time::SystemTime;

use k8s_openapi::{
    ByteString,
    api::{admissionregistration::v1::ValidatingWebhookConfiguration, core::v1::Secret},
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;
use tracing::{info, warn};

use super::certs::{self, CertBundle, CertError, NOT_AFTER_ANNOTATION};

/// Where the certificates live and what they are for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookNames {
    /// The namespace of the Secret and the Service.
    pub namespace: String,
    /// The Secret holding the certificates.
    pub secret: String,
    /// The Service the apiserver calls (the certificate's DNS names).
    pub service: String,
    /// The ValidatingWebhookConfiguration whose `caBundle` is kept current.
    pub configuration: String,
}

/// Why the certificates could not be provided.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// An API call failed.
    #[error("{what} {object}: {source}; retrying")]
    Api {
        /// What was being done.
        what: &'static str,
        /// The object.
        object: String,
        /// The kube error.
        #[source]
        source: Box<kube::Error>,
    },
    /// Generation failed.
    #[error(transparent)]
    Cert(#[from] CertError),
    /// Replicas kept replacing the Secret under each other.
    #[error("Secret {0}: still changing after several attempts; retrying later")]
    Contended(String),
}

fn api_error(what: &'static str, object: &str, source: kube::Error) -> BootstrapError {
    BootstrapError::Api {
        what,
        object: object.to_owned(),
        source: Box::new(source),
    }
}

/// Returns the certificate every replica serves, creating or rotating the Secret when needed.
pub async fn ensure_certificate(
    client: Client,
    names: &WebhookNames,
    now: SystemTime,
) -> Result<CertBundle, BootstrapError> {
    let api: Api<Secret> = Api::namespaced(client, &names.namespace);
    let object = format!("{}/{}", names.namespace, names.secret);
    let dns = certs::dns_names(&names.service, &names.namespace);
    for _ in 0..5 {
        let current = api
            .get_opt(&names.secret)
            .await
            .map_err(|e| api_error("get Secret", &object, e))?;
        let Some(mut secret) = current else {
            let bundle = certs::generate(&dns, now, certs::VALIDITY, None)?;
            match api
                .create(&PostParams::default(), &secret_of(names, &bundle))
                .await
            {
                Ok(_) => {
                    info!(secret = %object, "created the webhook certificate");
                    return Ok(bundle);
                }
                // Another replica was first: use its certificate.
                Err(kube::Error::Api(status)) if status.is_already_exists() => continue,
                Err(e) => return Err(api_error("create Secret", &object, e)),
            }
        };
        let data: std::collections::BTreeMap<String, Vec<u8>> = secret
            .data
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        let not_after = secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(NOT_AFTER_ANNOTATION))
            .cloned();
        let (previous_ca, reason) = match certs::from_secret_data(&data, not_after.as_deref()) {
            Ok(bundle) if !bundle.needs_renewal(now, certs::RENEW_BEFORE) => return Ok(bundle),
            Ok(bundle) => (Some(bundle.ca_pem), "expires soon".to_owned()),
            Err(error) => (None, error.to_string()),
        };
        let bundle = certs::generate(&dns, now, certs::VALIDITY, previous_ca.as_deref())?;
        let fresh = secret_of(names, &bundle);
        secret.data = fresh.data;
        secret
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(NOT_AFTER_ANNOTATION.to_owned(), certs::to_secret_data(&bundle).1);
        // `replace` carries the resourceVersion read: a concurrent rotation makes this one 409.
        match api.replace(&names.secret, &PostParams::default(), &secret).await {
            Ok(_) => {
                info!(secret = %object, reason = %reason, "rotated the webhook certificate");
                return Ok(bundle);
            }
            Err(kube::Error::Api(status)) if status.is_conflict() => continue,
            Err(e) => return Err(api_error("update Secret", &object, e)),
        }
    }
    Err(BootstrapError::Contended(object))
}

fn secret_of(names: &WebhookNames, bundle: &CertBundle) -> Secret {
    let (data, not_after) = certs::to_secret_data(bundle);
    Secret {
        metadata: ObjectMeta {
            name: Some(names.secret.clone()),
            namespace: Some(names.namespace.clone()),
            annotations: Some([(NOT_AFTER_ANNOTATION.to_owned(), not_after)].into()),
            labels: Some([("app.kubernetes.io/name".to_owned(), "oxelb".to_owned())].into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data.into_iter().map(|(k, v)| (k, ByteString(v))).collect()),
        ..Default::default()
    }
}

/// Sets `caBundle` of every webhook of the configuration to `ca_pem`, when it differs. Returns
/// whether anything was written.
pub async fn ensure_ca_bundle(
    client: Client,
    names: &WebhookNames,
    ca_pem: &str,
) -> Result<bool, BootstrapError> {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client);
    let object = names.configuration.clone();
    let Some(config) = api
        .get_opt(&names.configuration)
        .await
        .map_err(|e| api_error("get ValidatingWebhookConfiguration", &object, e))?
    else {
        warn!(configuration = %object, "ValidatingWebhookConfiguration not found: Eips are not validated at apply time (kubectl apply -f config/oxelb.yaml installs it)");
        return Ok(false);
    };
    let stale: Vec<String> = config
        .webhooks
        .iter()
        .flatten()
        .filter(|hook| {
            hook.client_config.ca_bundle.as_ref().map(|b| b.0.as_slice()) != Some(ca_pem.as_bytes())
        })
        .map(|hook| hook.name.clone())
        .collect();
    if stale.is_empty() {
        return Ok(false);
    }
    // A strategic merge patch merges `webhooks` by name and touches nothing else.
    let hooks: Vec<_> = stale
        .iter()
        .map(|name| json!({"name": name, "clientConfig": {"caBundle": ByteString(ca_pem.as_bytes().to_vec())}}))
        .collect();
    api.patch(
        &names.configuration,
        &PatchParams::default(),
        &Patch::Strategic(json!({"webhooks": hooks})),
    )
    .await
    .map_err(|e| api_error("patch ValidatingWebhookConfiguration", &object, e))?;
    info!(configuration = %object, webhooks = stale.len(), "caBundle updated");
    Ok(true)
}
