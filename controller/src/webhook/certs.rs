//! The webhook's certificates: a CA and a serving certificate generated in-process (no cert-manager,
//! no extra Job or image), kept in one Secret that every replica serves from, and rotated before
//! they expire.
//!
//! Generation and the rotation decision take the time as a value (no clock inside); the kube side is
//! in [`super::bootstrap`].
//!
//! Rotation keeps the previous CA in the bundle (`ca.crt` holds the new CA, then the old one), so the
//! apiserver trusts both the replicas that already serve the new certificate and those that have not
//! reloaded yet.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The Secret's keys (`kubernetes.io/tls` plus the CA bundle).
pub const CERT_KEY: &str = "tls.crt";
/// The private key of the serving certificate.
pub const PRIVATE_KEY_KEY: &str = "tls.key";
/// The CA bundle the apiserver trusts (PEM, newest CA first).
pub const CA_KEY: &str = "ca.crt";
/// The annotation holding when the serving certificate expires (seconds since the Unix epoch).
pub const NOT_AFTER_ANNOTATION: &str = "oxelb.io/webhook-cert-not-after";

/// How long a generated CA and serving certificate are valid.
pub const VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// Rotate when less than this is left.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Why certificates could not be generated or read.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen refused (should not happen with our parameters).
    #[error("cannot generate the webhook certificate ({0}); the webhook does not serve")]
    Generate(#[from] rcgen::Error),
    /// A time outside what X.509 can express.
    #[error("time {0:?} cannot be written into a certificate")]
    Time(SystemTime),
    /// The Secret lacks a key or holds something unreadable.
    #[error("Secret key {key}: {problem}; the certificate is generated again")]
    Secret {
        /// The data key.
        key: &'static str,
        /// What is wrong.
        problem: String,
    },
}

/// A serving certificate, its key, and the CA bundle that verifies it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertBundle {
    /// The serving certificate (PEM).
    pub cert_pem: String,
    /// Its private key (PEM, PKCS#8).
    pub key_pem: String,
    /// The CA bundle (PEM; the current CA first, possibly the previous one after it).
    pub ca_pem: String,
    /// When the serving certificate expires.
    pub not_after: SystemTime,
}

impl CertBundle {
    /// Whether it must be replaced at `now` (less than `renew_before` left).
    pub fn needs_renewal(&self, now: SystemTime, renew_before: Duration) -> bool {
        match self.not_after.duration_since(now) {
            Ok(left) => left < renew_before,
            Err(_) => true, // already expired
        }
    }
}

/// The DNS names the apiserver uses for the webhook Service `service` in `namespace`.
pub fn dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_owned(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

fn offset(time: SystemTime) -> Result<time::OffsetDateTime, CertError> {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_err(|_| CertError::Time(time))?
        .as_secs();
    let secs = i64::try_from(secs).map_err(|_| CertError::Time(time))?;
    time::OffsetDateTime::from_unix_timestamp(secs).map_err(|_| CertError::Time(time))
}

/// Generates a new CA and a serving certificate for `names`, valid from `now` (minus an hour, for
/// clocks slightly behind) for `validity`. `previous_ca_pem` (the bundle being replaced) is kept after
/// the new CA.
pub fn generate(
    names: &[String],
    now: SystemTime,
    validity: Duration,
    previous_ca_pem: Option<&str>,
) -> Result<CertBundle, CertError> {
    let not_before = offset(now.checked_sub(Duration::from_secs(3600)).unwrap_or(now))?;
    let not_after_time = now.checked_add(validity).ok_or(CertError::Time(now))?;
    let not_after = offset(not_after_time)?;

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "oxelb webhook CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.not_before = not_before;
    ca_params.not_after = not_after;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names.to_vec())?;
    params
        .distinguished_name
        .push(DnType::CommonName, names.first().cloned().unwrap_or_default());
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.not_before = not_before;
    params.not_after = not_after;
    let cert = params.signed_by(&key, &issuer)?;

    let mut ca_pem = ca_cert.pem();
    if let Some(previous) = previous_ca_pem {
        // Keep only the newest previous CA: the bundle is "new, then the one before".
        if let Some(first) = first_pem_block(previous) {
            ca_pem.push_str(first);
        }
    }
    Ok(CertBundle {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        ca_pem,
        not_after: not_after_time,
    })
}

/// The first `-----BEGIN ...-----` .. `-----END ...-----` block of a PEM text, with its newline.
fn first_pem_block(pem: &str) -> Option<&str> {
    let start = pem.find("-----BEGIN")?;
    let end_marker = pem[start..].find("-----END")? + start;
    let end = pem[end_marker..]
        .find('\n')
        .map_or(pem.len(), |i| end_marker + i + 1);
    Some(&pem[start..end])
}

/// Reads a bundle from a Secret's data and the not-after annotation.
pub fn from_secret_data(
    data: &std::collections::BTreeMap<String, Vec<u8>>,
    not_after: Option<&str>,
) -> Result<CertBundle, CertError> {
    let text = |key: &'static str| -> Result<String, CertError> {
        let bytes = data.get(key).ok_or(CertError::Secret {
            key,
            problem: "missing".into(),
        })?;
        let text = String::from_utf8(bytes.clone()).map_err(|_| CertError::Secret {
            key,
            problem: "not UTF-8 PEM".into(),
        })?;
        if !text.contains("-----BEGIN") {
            return Err(CertError::Secret {
                key,
                problem: "not PEM".into(),
            });
        }
        Ok(text)
    };
    let not_after = not_after
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(|secs| UNIX_EPOCH + Duration::from_secs(secs))
        .ok_or(CertError::Secret {
            key: CERT_KEY,
            problem: format!("annotation {NOT_AFTER_ANNOTATION} missing or not a number"),
        })?;
    Ok(CertBundle {
        cert_pem: text(CERT_KEY)?,
        key_pem: text(PRIVATE_KEY_KEY)?,
        ca_pem: text(CA_KEY)?,
        not_after,
    })
}

/// The Secret data and the not-after annotation value of a bundle.
pub fn to_secret_data(bundle: &CertBundle) -> (std::collections::BTreeMap<String, Vec<u8>>, String) {
    let data = [
        (CERT_KEY.to_owned(), bundle.cert_pem.clone().into_bytes()),
        (PRIVATE_KEY_KEY.to_owned(), bundle.key_pem.clone().into_bytes()),
        (CA_KEY.to_owned(), bundle.ca_pem.clone().into_bytes()),
    ]
    .into();
    let secs = bundle
        .not_after
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    (data, secs.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    #[test]
    fn generates_a_bundle_that_round_trips_through_a_secret() {
        let bundle = generate(&dns_names("oxelb-webhook", "oxelb-system"), now(), VALIDITY, None).unwrap();
        assert!(bundle.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(bundle.key_pem.contains("PRIVATE KEY"));
        assert_eq!(bundle.ca_pem.matches("BEGIN CERTIFICATE").count(), 1);
        assert_eq!(bundle.not_after, now() + VALIDITY);
        let (data, not_after) = to_secret_data(&bundle);
        assert_eq!(from_secret_data(&data, Some(&not_after)).unwrap(), bundle);
    }

    #[test]
    fn renewal_window() {
        let bundle = generate(&["x".into()], now(), VALIDITY, None).unwrap();
        assert!(!bundle.needs_renewal(now(), RENEW_BEFORE));
        assert!(!bundle.needs_renewal(
            now() + VALIDITY - RENEW_BEFORE - Duration::from_secs(1),
            RENEW_BEFORE
        ));
        assert!(bundle.needs_renewal(
            now() + VALIDITY - RENEW_BEFORE + Duration::from_secs(1),
            RENEW_BEFORE
        ));
        assert!(
            bundle.needs_renewal(now() + VALIDITY + VALIDITY, RENEW_BEFORE),
            "expired"
        );
    }

    #[test]
    fn rotation_keeps_exactly_the_previous_ca() {
        let first = generate(&["x".into()], now(), VALIDITY, None).unwrap();
        let second = generate(&["x".into()], now(), VALIDITY, Some(&first.ca_pem)).unwrap();
        assert_eq!(second.ca_pem.matches("BEGIN CERTIFICATE").count(), 2);
        assert!(second.ca_pem.ends_with(&first.ca_pem));
        let third = generate(&["x".into()], now(), VALIDITY, Some(&second.ca_pem)).unwrap();
        assert_eq!(
            third.ca_pem.matches("BEGIN CERTIFICATE").count(),
            2,
            "never grows past two"
        );
        assert!(
            !third.ca_pem.contains(first.ca_pem.trim()),
            "the oldest CA is dropped"
        );
    }

    #[test]
    fn unreadable_secrets_are_errors_not_panics() {
        let mut data = std::collections::BTreeMap::new();
        assert!(from_secret_data(&data, Some("1")).is_err());
        data.insert(CERT_KEY.into(), vec![0xff, 0xfe]);
        data.insert(PRIVATE_KEY_KEY.into(), b"-----BEGIN PRIVATE KEY-----".to_vec());
        data.insert(CA_KEY.into(), b"-----BEGIN CERTIFICATE-----".to_vec());
        assert!(matches!(
            from_secret_data(&data, Some("1")),
            Err(CertError::Secret { key: CERT_KEY, .. })
        ));
        data.insert(CERT_KEY.into(), b"-----BEGIN CERTIFICATE-----".to_vec());
        assert!(from_secret_data(&data, None).is_err());
        assert!(from_secret_data(&data, Some("soon")).is_err());
        assert!(from_secret_data(&data, Some("1")).is_ok());
    }
}
