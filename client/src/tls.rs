//! The TLS settings every connection of the agent uses: to the host (HTTPS and WSS) and to the
//! package archive (the Arch Linux Archive is HTTPS-only).
//!
//! Roots are the system's trust store (`/etc/ssl/certs` on Arch, kept by `ca-certificates`)
//! plus, optionally, the CA of a host with a private certificate (`ca_cert` in the config).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Why the TLS settings could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The extra CA file could not be read or holds no certificate.
    #[error("cannot read the CA certificate {path}: {reason}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Client TLS settings: the system's roots, plus `extra_ca` when given.
pub fn client_config(extra_ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    // Unreadable entries of the system store are skipped, as curl and pacman skip them.
    let system = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(system.certs);
    if let Some(path) = extra_ca {
        let failed = |reason: String| TlsError::CaFile {
            path: path.to_owned(),
            reason,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| failed(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| failed(e.to_string()))?;
        if certs.is_empty() {
            return Err(failed("no CERTIFICATE block".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| failed(e.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// An HTTP client that verifies servers against `tls`.
pub fn http_client(
    tls: &Arc<rustls::ClientConfig>,
    builder: reqwest::ClientBuilder,
) -> reqwest::Client {
    builder
        .use_preconfigured_tls((**tls).clone())
        .build()
        .expect("a rustls client config is accepted by reqwest's rustls backend")
}
