//! The key the speakers share for their layer2 heartbeats: the controller makes sure the Secret
//! `oxelb-system/oxelb-speaker-heartbeat` exists (32 random bytes under `key`), and the speaker
//! DaemonSet mounts it. Idempotent across replicas: a losing create (409 AlreadyExists) means
//! another replica made it, and an existing Secret is never changed (speakers read it at start).

use k8s_openapi::{ByteString, api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::ObjectMeta};
use kube::{Api, Client, api::PostParams};
use ring::rand::{SecureRandom, SystemRandom};

/// The Secret's data key.
pub const KEY: &str = "key";

/// Why the Secret could not be ensured (retried by the caller).
#[derive(Debug, thiserror::Error)]
pub enum HeartbeatKeyError {
    /// The system's random source failed.
    #[error("cannot generate the speakers' heartbeat key (no system randomness)")]
    Random,
    /// The API refused.
    #[error("Secret {secret}: {source}; retrying")]
    Api {
        /// namespace/name.
        secret: String,
        /// The kube error.
        #[source]
        source: Box<kube::Error>,
    },
}

/// Creates the Secret `namespace/name` with a fresh random key unless it exists. Returns whether
/// this call created it.
pub async fn ensure(client: Client, namespace: &str, name: &str) -> Result<bool, HeartbeatKeyError> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let secret = format!("{namespace}/{name}");
    let err = |source| HeartbeatKeyError::Api {
        secret: secret.clone(),
        source: Box::new(source),
    };
    if api.get_opt(name).await.map_err(err)?.is_some() {
        return Ok(false);
    }
    let mut key = vec![0u8; 32];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| HeartbeatKeyError::Random)?;
    let object = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some([("app.kubernetes.io/name".to_owned(), "oxelb".to_owned())].into()),
            ..Default::default()
        },
        data: Some([(KEY.to_owned(), ByteString(key))].into()),
        ..Default::default()
    };
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.is_already_exists() => Ok(false),
        Err(error) => Err(err(error)),
    }
}
