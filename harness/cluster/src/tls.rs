//! Certificates for sgsim's TLS endpoints: a fresh CA per API server (and one for the pod API
//! gateway), and the serving certificates it signs. Keys live only in memory; nothing is written.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// Names of the `kubernetes` Service that in-cluster clients use as the server name.
pub const SERVICE_NAMES: [&str; 4] = [
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

/// Errors of generating certificates or building a TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Generating a key or certificate failed.
    #[error("generating the {what} failed")]
    Cert {
        /// Which key or certificate.
        what: &'static str,
        /// The cause.
        #[source]
        source: rcgen::Error,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration refused")]
    Config(#[from] rustls::Error),
}

fn cert(what: &'static str) -> impl FnOnce(rcgen::Error) -> TlsError {
    move |source| TlsError::Cert { what, source }
}

/// A certificate authority: its certificate (PEM) and the key that signs serving certificates.
pub struct Ca {
    pem: String,
    params: CertificateParams,
    key: KeyPair,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

impl Ca {
    /// A new self-signed CA whose common name is `common_name`.
    pub fn new(common_name: &str) -> Result<Ca, TlsError> {
        let key = KeyPair::generate().map_err(cert("CA key"))?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert("CA certificate"))?;
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = params.self_signed(&key).map_err(cert("CA certificate"))?;
        Ok(Ca {
            pem: ca.pem(),
            params,
            key,
        })
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A server configuration (HTTP/1.1 by ALPN) with a fresh key and a certificate this CA signs
    /// for `names` (DNS names and IP addresses; common name `kube-apiserver`).
    pub fn server_config(&self, names: Vec<String>) -> Result<rustls::ServerConfig, TlsError> {
        let key = KeyPair::generate().map_err(cert("serving key"))?;
        let mut params = CertificateParams::new(names).map_err(cert("serving certificate"))?;
        params.distinguished_name.push(DnType::CommonName, "kube-apiserver");
        let issuer = Issuer::from_params(&self.params, &self.key);
        let signed = params.signed_by(&key, &issuer).map_err(cert("serving certificate"))?;
        let chain = vec![signed.der().clone()];
        let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key_der)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// A client configuration that trusts only the CA certificate `ca_pem` (HTTP/1.1 by ALPN): what
/// a kubeconfig's `certificate-authority-data` gives a client.
pub fn client_config(ca_pem: &str) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    for der in CertificateDer::pem_slice_iter(ca_pem.as_bytes()).flatten() {
        roots.add(der)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn handshake(server_ca: &Ca, client_ca: &Ca, name: &str) -> Result<String, std::io::Error> {
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(
            server_ca
                .server_config(vec!["127.0.0.1".into(), "localhost".into()])
                .unwrap(),
        ));
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(client_ca.pem()).unwrap()));
        let (a, b) = tokio::io::duplex(16 * 1024);
        let server = tokio::spawn(async move {
            let mut s = acceptor.accept(a).await?;
            s.write_all(b"hello").await?;
            s.shutdown().await
        });
        let name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
        let mut c = connector.connect(name, b).await?;
        let mut got = String::new();
        c.read_to_string(&mut got).await?;
        server.await.unwrap()?;
        Ok(got)
    }

    #[tokio::test]
    async fn only_a_client_trusting_the_ca_completes_the_handshake() {
        let ca = Ca::new("test-ca").unwrap();
        assert!(ca.pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(handshake(&ca, &ca, "127.0.0.1").await.unwrap(), "hello");
        assert_eq!(handshake(&ca, &ca, "localhost").await.unwrap(), "hello");
        // Another CA, or a name the certificate does not carry: refused.
        let other = Ca::new("other-ca").unwrap();
        assert!(handshake(&ca, &other, "127.0.0.1").await.is_err());
        assert!(handshake(&ca, &ca, "example.invalid").await.is_err());
    }
}
