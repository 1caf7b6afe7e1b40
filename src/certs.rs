//! Certificates for installing the webhook without cert-manager: a CA, a
//! serving certificate for the webhook Service's DNS names signed by it, and
//! the two Kubernetes objects that carry them (the TLS Secret the pods mount
//! and the caBundle of the MutatingWebhookConfiguration).
//!
//! Pure apart from key generation: the clock is passed in, nothing is read or
//! written here (`cli::certs` does the files).

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PublicKeyData,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde_json::json;
use std::collections::BTreeMap;
use thiserror::Error;
use time::{Duration, OffsetDateTime};

/// Certificates are valid from this long before they are made, so a node
/// whose clock is a little behind still accepts them.
pub const CLOCK_SKEW: Duration = Duration::hours(1);

pub const DEFAULT_CA_VALIDITY_DAYS: u32 = 3650;
pub const DEFAULT_VALIDITY_DAYS: u32 = 365;

#[derive(Debug, Error)]
pub enum CertError {
    #[error("cannot generate a key")]
    Key(#[source] rcgen::Error),
    #[error("cannot sign the {what} certificate")]
    Sign { what: &'static str, source: rcgen::Error },
    #[error("invalid DNS name {name:?}")]
    DnsName { name: String, source: rcgen::Error },
    #[error("invalid DNS name {0:?}: Service and namespace names are lowercase RFC 1123 labels")]
    InvalidDnsName(String),
    #[error("the CA certificate is not PEM-encoded X.509: {0}")]
    CaCertParse(String),
    #[error("the CA key is not a PEM-encoded PKCS#8 key")]
    CaKeyParse(#[source] rcgen::Error),
    #[error("the CA key does not belong to the CA certificate (their public keys differ)")]
    CaKeyMismatch,
    #[error("the CA certificate is not a CA (no basicConstraints CA:TRUE)")]
    NotCa,
    #[error("the CA expires on {ca_not_after}, before the serving certificate would ({not_after}): rotate the CA first, or pass a shorter --validity-days")]
    CaExpiresFirst {
        ca_not_after: OffsetDateTime,
        not_after: OffsetDateTime,
    },
    #[error("the CA is not valid yet, or no longer: valid from {not_before} to {not_after}")]
    CaNotValidNow {
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    },
    #[error("{0} is not a PEM certificate bundle (no CERTIFICATE block)")]
    NotPemBundle(String),
    #[error("validity must be at least one day")]
    ZeroValidity,
}

/// Where the webhook is reached: `service.namespace.svc` (the name the API
/// server dials) and the cluster-domain form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRef {
    pub service: String,
    pub namespace: String,
    pub cluster_domain: String,
}

impl ServiceRef {
    /// The DNS names of the Service, most specific last. The first is the one
    /// the API server uses for `clientConfig.service`.
    pub fn dns_names(&self) -> Vec<String> {
        let svc = format!("{}.{}.svc", self.service, self.namespace);
        let mut names = vec![svc.clone()];
        if !self.cluster_domain.is_empty() {
            names.push(format!("{svc}.{}", self.cluster_domain.trim_matches('.')));
        }
        names
    }
}

/// A CA that can sign serving certificates.
pub struct Ca {
    pub cert_pem: String,
    /// `None` for a CA passed in (its key stays where it is).
    pub key_pem: Option<String>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// A new self-signed CA (ECDSA P-256), valid for `days` from `now`.
    pub fn generate(common_name: &str, days: u32, now: OffsetDateTime) -> Result<Ca, CertError> {
        if days == 0 {
            return Err(CertError::ZeroValidity);
        }
        let key = KeyPair::generate().map_err(CertError::Key)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = now - CLOCK_SKEW;
        params.not_after = now + Duration::days(days.into());
        let cert = params
            .self_signed(&key)
            .map_err(|source| CertError::Sign { what: "CA", source })?;
        Ok(Ca {
            cert_pem: cert.pem(),
            key_pem: Some(key.serialize_pem()),
            not_before: params.not_before,
            not_after: params.not_after,
            issuer: Issuer::new(params, key),
        })
    }

    /// An existing CA, to renew the serving certificate without changing the
    /// caBundle. Checks that the key belongs to the certificate, that it is a
    /// CA and that it is valid at `now`.
    pub fn load(cert_pem: &str, key_pem: &str, now: OffsetDateTime) -> Result<Ca, CertError> {
        let key = KeyPair::from_pem(key_pem).map_err(CertError::CaKeyParse)?;
        let der =
            first_certificate_der(cert_pem).ok_or_else(|| CertError::CaCertParse("no CERTIFICATE block".into()))?;
        let (_, x509) = x509_parser::parse_x509_certificate(&der).map_err(|e| CertError::CaCertParse(e.to_string()))?;
        if x509.public_key().subject_public_key.data.as_ref() != key.der_bytes() {
            return Err(CertError::CaKeyMismatch);
        }
        if !x509.is_ca() {
            return Err(CertError::NotCa);
        }
        let not_before = x509.validity().not_before.to_datetime();
        let not_after = x509.validity().not_after.to_datetime();
        if now < not_before || now > not_after {
            return Err(CertError::CaNotValidNow { not_before, not_after });
        }
        let issuer =
            Issuer::from_ca_cert_der(&der.clone().into(), key).map_err(|e| CertError::CaCertParse(e.to_string()))?;
        Ok(Ca {
            cert_pem: pem_certificate(&der),
            key_pem: None,
            not_before,
            not_after,
            issuer,
        })
    }

    /// A serving certificate (ECDSA P-256, serverAuth) for `dns_names`, valid
    /// for `days` from `now`. The first name is also the subject CN.
    pub fn issue_serving(&self, dns_names: &[String], days: u32, now: OffsetDateTime) -> Result<Serving, CertError> {
        if days == 0 {
            return Err(CertError::ZeroValidity);
        }
        let not_after = now + Duration::days(days.into());
        if not_after > self.not_after {
            return Err(CertError::CaExpiresFirst {
                ca_not_after: self.not_after,
                not_after,
            });
        }
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|source| CertError::DnsName {
            name: String::new(),
            source,
        })?;
        for name in dns_names {
            if !is_dns_name(name) {
                return Err(CertError::InvalidDnsName(name.clone()));
            }
            let dns = name.clone().try_into().map_err(|source| CertError::DnsName {
                name: name.clone(),
                source,
            })?;
            params.subject_alt_names.push(rcgen::SanType::DnsName(dns));
        }
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(first) = dns_names.first() {
            params.distinguished_name.push(DnType::CommonName, first.as_str());
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - CLOCK_SKEW;
        params.not_after = not_after;
        let key = KeyPair::generate().map_err(CertError::Key)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(|source| CertError::Sign {
            what: "serving",
            source,
        })?;
        Ok(Serving {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            not_after,
        })
    }
}

/// A serving certificate and its key.
#[derive(Debug, Clone)]
pub struct Serving {
    pub cert_pem: String,
    pub key_pem: String,
    pub not_after: OffsetDateTime,
}

/// The caBundle: the CA, then any extra CAs still to be trusted (the old CA
/// during a CA rotation). Each extra is checked to hold a certificate.
pub fn ca_bundle(ca_pem: &str, extras: &[(String, String)]) -> Result<String, CertError> {
    let mut bundle: String = pem_blocks(ca_pem).concat();
    for (origin, pem) in extras {
        if !pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(CertError::NotPemBundle(origin.clone()));
        }
        for block in pem_blocks(pem) {
            if !bundle.contains(&block) {
                bundle.push_str(&block);
            }
        }
    }
    Ok(bundle)
}

/// The `kubernetes.io/tls` Secret the webhook pods mount at /tls.
pub fn secret_yaml(name: &str, namespace: &str, serving: &Serving, ca_pem: &str) -> String {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([
                ("app.kubernetes.io/name".to_string(), "secure-defaults".to_string()),
                (
                    "app.kubernetes.io/managed-by".to_string(),
                    "secure-defaults-certs".to_string(),
                ),
            ])),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".to_string()),
        data: Some(BTreeMap::from([
            ("ca.crt".to_string(), ByteString(ca_pem.as_bytes().to_vec())),
            ("tls.crt".to_string(), ByteString(serving.cert_pem.as_bytes().to_vec())),
            ("tls.key".to_string(), ByteString(serving.key_pem.as_bytes().to_vec())),
        ])),
        ..Secret::default()
    };
    // k8s-openapi's Serialize adds apiVersion and kind; it cannot fail on this value.
    let mut yaml = String::from("# Generated by `secure-defaults certs`. Holds a private key: do not commit it.\n");
    yaml.push_str(&serde_yaml::to_string(&secret).expect("a Secret serializes"));
    yaml
}

/// A strategic-merge patch that sets the caBundle of each of `webhooks` in
/// the MutatingWebhookConfiguration `config_name`. Usable as a kustomize
/// patch and with `kubectl patch mutatingwebhookconfiguration NAME --patch-file`.
pub fn webhook_patch_yaml(config_name: &str, webhooks: &[String], bundle_pem: &str) -> String {
    let ca_bundle = base64_encode(bundle_pem.as_bytes());
    let entries: Vec<_> = webhooks
        .iter()
        .map(|name| json!({"name": name, "clientConfig": { "caBundle": ca_bundle }}))
        .collect();
    let patch = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": { "name": config_name },
        "webhooks": entries,
    });
    let mut yaml =
        String::from("# Generated by `secure-defaults certs`: the CA bundle the API server trusts for the webhook.\n");
    yaml.push_str(&serde_yaml::to_string(&patch).expect("JSON serializes as YAML"));
    yaml
}

pub fn base64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A lowercase RFC 1123 DNS name: dot-separated labels of `a-z0-9-`, 1 to 63
/// characters each, neither starting nor ending with `-`; 253 characters at most.
fn is_dns_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// The CERTIFICATE blocks of `text`, in order, each in the canonical form
/// (64-column base64, `\n` line ends); other blocks are skipped.
fn pem_blocks(text: &str) -> Vec<String> {
    CertificateDer::pem_slice_iter(text.as_bytes())
        .filter_map(Result::ok)
        .map(|der| pem_certificate(&der))
        .collect()
}

/// The DER of the first CERTIFICATE block of a PEM text.
fn first_certificate_der(text: &str) -> Option<Vec<u8>> {
    let der = CertificateDer::pem_slice_iter(text.as_bytes()).next()?.ok()?;
    Some(der.to_vec())
}

fn pem_certificate(der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new("CERTIFICATE", der), config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn service() -> ServiceRef {
        ServiceRef {
            service: "secure-defaults".into(),
            namespace: "secure-defaults".into(),
            cluster_domain: "cluster.local".into(),
        }
    }

    fn der(pem: &str) -> Vec<u8> {
        first_certificate_der(pem).expect("a CERTIFICATE block")
    }

    fn dns_sans(cert: &X509Certificate) -> Vec<String> {
        let san = cert.subject_alternative_name().unwrap().expect("a SAN extension");
        san.value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some(d.to_string()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn service_dns_names() {
        assert_eq!(
            service().dns_names(),
            [
                "secure-defaults.secure-defaults.svc",
                "secure-defaults.secure-defaults.svc.cluster.local"
            ]
        );
        let no_domain = ServiceRef {
            cluster_domain: String::new(),
            ..service()
        };
        assert_eq!(no_domain.dns_names(), ["secure-defaults.secure-defaults.svc"]);
    }

    #[test]
    fn serving_certificate_chains_to_the_ca_and_names_the_service() {
        let ca = Ca::generate("secure-defaults-ca", 3650, now()).unwrap();
        let serving = ca.issue_serving(&service().dns_names(), 365, now()).unwrap();

        let ca_der = der(&ca.cert_pem);
        let (_, ca_x509) = parse_x509_certificate(&ca_der).unwrap();
        let leaf_der = der(&serving.cert_pem);
        let (_, leaf) = parse_x509_certificate(&leaf_der).unwrap();

        assert!(ca_x509.is_ca());
        ca_x509.verify_signature(None).expect("the CA is self-signed");
        leaf.verify_signature(Some(ca_x509.public_key()))
            .expect("the serving certificate is signed by the CA");
        assert_eq!(leaf.issuer(), ca_x509.subject());
        assert!(!leaf.is_ca());
        assert_eq!(
            dns_sans(&leaf),
            [
                "secure-defaults.secure-defaults.svc",
                "secure-defaults.secure-defaults.svc.cluster.local"
            ]
        );
        let eku = leaf.extended_key_usage().unwrap().expect("extendedKeyUsage");
        assert!(eku.value.server_auth);

        // A certificate from another CA does not verify against this one.
        let other = Ca::generate("other", 10, now()).unwrap();
        let other_der = der(&other.cert_pem);
        let (_, other_x509) = parse_x509_certificate(&other_der).unwrap();
        assert!(leaf.verify_signature(Some(other_x509.public_key())).is_err());
    }

    #[test]
    fn validity_periods_follow_the_days_asked() {
        let t = now();
        let ca = Ca::generate("ca", 3650, t).unwrap();
        let serving = ca.issue_serving(&service().dns_names(), 30, t).unwrap();
        let leaf_der = der(&serving.cert_pem);
        let (_, leaf) = parse_x509_certificate(&leaf_der).unwrap();
        let not_after = leaf.validity().not_after.to_datetime();
        let not_before = leaf.validity().not_before.to_datetime();
        assert!(
            (not_after - (t + Duration::days(30))).abs() < Duration::seconds(2),
            "{not_after}"
        );
        assert!(not_before < t, "valid from before now, for clock skew: {not_before}");
        let ca_der = der(&ca.cert_pem);
        let (_, ca_x509) = parse_x509_certificate(&ca_der).unwrap();
        let ca_days = (ca_x509.validity().not_after.to_datetime() - t).whole_days();
        assert!((3649..=3650).contains(&ca_days), "{ca_days}");
    }

    #[test]
    fn a_loaded_ca_signs_certificates_that_chain_to_the_same_ca() {
        let t = now();
        let original = Ca::generate("ca", 3650, t).unwrap();
        let loaded = Ca::load(&original.cert_pem, original.key_pem.as_deref().unwrap(), t).unwrap();
        assert_eq!(
            der(&loaded.cert_pem),
            der(&original.cert_pem),
            "the bundle does not change"
        );
        assert!(loaded.key_pem.is_none());
        let serving = loaded.issue_serving(&service().dns_names(), 365, t).unwrap();
        let ca_der = der(&original.cert_pem);
        let (_, ca_x509) = parse_x509_certificate(&ca_der).unwrap();
        let leaf_der = der(&serving.cert_pem);
        let (_, leaf) = parse_x509_certificate(&leaf_der).unwrap();
        leaf.verify_signature(Some(ca_x509.public_key())).unwrap();
        assert_eq!(leaf.issuer(), ca_x509.subject());
    }

    #[test]
    fn loading_a_ca_with_the_wrong_key_is_refused() {
        let t = now();
        let a = Ca::generate("a", 10, t).unwrap();
        let b = Ca::generate("b", 10, t).unwrap();
        let err = Ca::load(&a.cert_pem, b.key_pem.as_deref().unwrap(), t).unwrap_err();
        assert!(matches!(err, CertError::CaKeyMismatch), "{err}");
    }

    #[test]
    fn a_serving_certificate_cannot_be_used_as_ca() {
        let t = now();
        let ca = Ca::generate("ca", 3650, t).unwrap();
        let serving = ca.issue_serving(&service().dns_names(), 365, t).unwrap();
        let err = Ca::load(&serving.cert_pem, &serving.key_pem, t).unwrap_err();
        assert!(matches!(err, CertError::NotCa), "{err}");
    }

    #[test]
    fn serving_certificate_may_not_outlive_its_ca() {
        let t = now();
        let ca = Ca::generate("ca", 30, t).unwrap();
        let err = ca.issue_serving(&service().dns_names(), 365, t).unwrap_err();
        assert!(matches!(err, CertError::CaExpiresFirst { .. }), "{err}");
        assert!(err.to_string().contains("--validity-days"), "{err}");
    }

    #[test]
    fn an_expired_ca_is_refused() {
        let t = now();
        let ca = Ca::generate("ca", 10, t).unwrap();
        let later = t + Duration::days(11);
        let err = Ca::load(&ca.cert_pem, ca.key_pem.as_deref().unwrap(), later).unwrap_err();
        assert!(matches!(err, CertError::CaNotValidNow { .. }), "{err}");
    }

    #[test]
    fn zero_days_is_refused() {
        assert!(matches!(Ca::generate("ca", 0, now()), Err(CertError::ZeroValidity)));
    }

    #[test]
    fn invalid_dns_name_is_named() {
        let ca = Ca::generate("ca", 10, now()).unwrap();
        for bad in ["bad name.svc", "Upper.svc", "-dash.svc", "a..svc", ""] {
            let err = ca.issue_serving(&[bad.to_string()], 1, now()).unwrap_err();
            assert!(matches!(err, CertError::InvalidDnsName(_)), "{bad}: {err}");
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
        assert!(is_dns_name("secure-defaults.secure-defaults.svc.cluster.local"));
    }

    #[test]
    fn secret_yaml_parses_as_a_tls_secret_holding_the_pems() {
        let ca = Ca::generate("ca", 3650, now()).unwrap();
        let serving = ca.issue_serving(&service().dns_names(), 365, now()).unwrap();
        let yaml = secret_yaml("secure-defaults-tls", "secure-defaults", &serving, &ca.cert_pem);
        let value: serde_json::Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(value["apiVersion"], "v1");
        assert_eq!(value["kind"], "Secret");
        let secret: Secret = serde_json::from_value(value).unwrap();
        assert_eq!(secret.metadata.name.as_deref(), Some("secure-defaults-tls"));
        assert_eq!(secret.metadata.namespace.as_deref(), Some("secure-defaults"));
        assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
        let data = secret.data.unwrap();
        assert_eq!(data["tls.crt"].0, serving.cert_pem.as_bytes());
        assert_eq!(data["tls.key"].0, serving.key_pem.as_bytes());
        assert_eq!(data["ca.crt"].0, ca.cert_pem.as_bytes());
        assert_eq!(data.len(), 3);
    }

    #[test]
    fn webhook_patch_carries_the_bundle_in_base64() {
        let bundle = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let yaml = webhook_patch_yaml(
            "secure-defaults",
            &[
                "pods.secure-defaults.io".to_string(),
                "workloads.secure-defaults.io".to_string(),
            ],
            bundle,
        );
        let value: serde_json::Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(value["kind"], "MutatingWebhookConfiguration");
        assert_eq!(value["metadata"]["name"], "secure-defaults");
        assert_eq!(value["webhooks"][0]["name"], "pods.secure-defaults.io");
        let b64 = value["webhooks"][0]["clientConfig"]["caBundle"].as_str().unwrap();
        let decoded = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
        assert_eq!(decoded, bundle.as_bytes());
        assert_eq!(value["webhooks"][1]["name"], "workloads.secure-defaults.io");
        assert_eq!(value["webhooks"][1]["clientConfig"]["caBundle"], b64);
    }

    #[test]
    fn ca_bundle_appends_extra_cas_once() {
        let t = now();
        let new = Ca::generate("new", 10, t).unwrap();
        let old = Ca::generate("old", 10, t).unwrap();
        let bundle = ca_bundle(
            &new.cert_pem,
            &[
                ("old.crt".into(), old.cert_pem.clone()),
                ("again".into(), old.cert_pem.clone()),
            ],
        )
        .unwrap();
        assert_eq!(pem_blocks(&bundle).len(), 2);
        assert!(bundle.starts_with(new.cert_pem.trim_end()));
        let err = ca_bundle(&new.cert_pem, &[("junk.txt".into(), "nope".into())]).unwrap_err();
        assert!(err.to_string().contains("junk.txt"), "{err}");
    }
}
