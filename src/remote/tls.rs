//! TLS for TCP connections (the `tls` feature): rustls with the `ring`
//! provider, certificates and keys read from PEM files. The protocol inside
//! is unchanged; the token is still required beyond loopback (TLS keeps it
//! secret on the way, it does not replace it).

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::error::{Error, Result};

/// A server's certificate chain and private key.
#[derive(Clone)]
pub struct TlsIdentity {
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsIdentity(<certificate and key>)")
    }
}

/// What a client trusts: the root certificates a server's chain must lead
/// to, and the name the server's certificate must carry.
#[derive(Clone)]
pub struct TlsTrust {
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTrust")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

fn tls_error(what: &str, path: &Path, error: impl std::fmt::Display) -> Error {
    Error::invalid_argument(format!("{what} {}: {error}", path.display()))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| tls_error("cannot read certificates from", path, e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| tls_error("cannot read certificates from", path, e))?;
    if certificates.is_empty() {
        return Err(tls_error(
            "no certificate in",
            path,
            "expected PEM CERTIFICATE blocks",
        ));
    }
    Ok(certificates)
}

impl TlsIdentity {
    /// The chain in `certificate_chain` (PEM, the server's certificate
    /// first) and the private key in `private_key` (PEM: PKCS#8, PKCS#1 or
    /// SEC1).
    pub fn from_pem_files(
        certificate_chain: impl AsRef<Path>,
        private_key: impl AsRef<Path>,
    ) -> Result<Self> {
        let chain = certificates(certificate_chain.as_ref())?;
        let key_path = private_key.as_ref();
        let key = PrivateKeyDer::from_pem_file(key_path)
            .map_err(|e| tls_error("cannot read a private key from", key_path, e))?;
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .and_then(|builder| builder.with_no_client_auth().with_single_cert(chain, key))
            .map_err(|e| tls_error("cannot use the certificate and key of", key_path, e))?;
        Ok(TlsIdentity {
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    pub(crate) fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }
}

impl TlsTrust {
    /// Trusts the certificates in `roots` (PEM) and expects the server's
    /// certificate to be for `server_name` (a DNS name or an IP address).
    pub fn from_pem_file(roots: impl AsRef<Path>, server_name: &str) -> Result<Self> {
        let path = roots.as_ref();
        let mut store = RootCertStore::empty();
        for certificate in certificates(path)? {
            store
                .add(certificate)
                .map_err(|e| tls_error("cannot trust a certificate of", path, e))?;
        }
        let server_name = ServerName::try_from(server_name.to_owned()).map_err(|e| {
            Error::invalid_argument(format!("{server_name:?} is not a server name: {e}"))
        })?;
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("cannot trust", path, e))?
            .with_root_certificates(store)
            .with_no_client_auth();
        Ok(TlsTrust {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }

    /// Runs the TLS handshake on `stream`.
    pub(crate) async fn connect<S>(&self, stream: S) -> Result<tokio_rustls::client::TlsStream<S>>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        self.connector
            .connect(self.server_name.clone(), stream)
            .await
            .map_err(|e| Error::Protocol {
                message: format!("the TLS handshake with the server failed: {e}"),
            })
    }
}
