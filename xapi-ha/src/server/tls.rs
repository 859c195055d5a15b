//! The agent's TLS identity: a self-signed certificate made at first start
//! (rcgen) and kept in `<data dir>/tls/` (`cert.pem`, `key.pem` mode 0600),
//! served with rustls (ring provider). Its SHA-256 fingerprint is what
//! clients pin (trust on first use, like ssh).

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _};
use sha2::{Digest as _, Sha256};

/// Why the TLS identity could not be made or loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading or writing a file failed.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// The certificate or key is not usable.
    #[error("{0}: {1}")]
    Invalid(PathBuf, String),
    /// Generating the certificate failed.
    #[error("generating the certificate: {0}")]
    Generate(String),
}

/// A loaded identity.
pub struct Identity {
    /// The server configuration for rustls.
    pub config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the certificate's DER, as colon-separated upper-case hex.
    pub fingerprint: String,
}

/// SHA-256 of a certificate's DER as `AB:CD:...`.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Loads the identity in `dir`, first generating it for `names` (the
/// host's name and address) if there is none.
pub fn load_or_create(dir: &Path, names: &[String]) -> Result<Identity, TlsError> {
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if !cert_path.exists() {
        create(dir, &cert_path, &key_path, names)?;
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| TlsError::Invalid(cert_path.clone(), e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Invalid(cert_path.clone(), e.to_string()))?;
    let first = certs
        .first()
        .ok_or_else(|| TlsError::Invalid(cert_path.clone(), "no certificate".into()))?;
    let fingerprint = fingerprint(first.as_ref());
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| TlsError::Invalid(key_path.clone(), e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Invalid(cert_path.clone(), e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Invalid(key_path.clone(), e.to_string()))?;
    Ok(Identity {
        config: Arc::new(config),
        fingerprint,
    })
}

fn create(dir: &Path, cert_path: &Path, key_path: &Path, names: &[String]) -> Result<(), TlsError> {
    std::fs::create_dir_all(dir).map_err(|e| TlsError::Io(dir.to_owned(), e))?;
    let rcgen::CertifiedKey { cert, key_pair } = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    // The key first: a certificate without its key would be kept forever.
    write_file(key_path, key_pair.serialize_pem().as_bytes(), 0o600)?;
    write_file(cert_path, cert.pem().as_bytes(), 0o644)?;
    tracing::info!(cert = %cert_path.display(), fingerprint = %fingerprint(cert.der()), "made a self-signed TLS certificate");
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    let io = |e| TlsError::Io(path.to_owned(), e);
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// What a pinning client saw: the fingerprint of the server's certificate.
pub type Seen = Arc<std::sync::Mutex<Option<String>>>;

/// Accepts the server certificate whose fingerprint is `expected` (any
/// when `None`: trust on first use), and records the one it saw either way.
/// The agents' certificates are self-signed, so the pin, not a CA or the
/// name, authenticates the server.
#[derive(Debug)]
struct PinnedVerifier {
    expected: Option<String>,
    seen: Seen,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let fp = fingerprint(end_entity.as_ref());
        let ok = self.expected.as_ref().is_none_or(|e| *e == fp);
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(fp);
        }
        if ok {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "certificate fingerprint mismatch".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A rustls client configuration (ring provider) that pins the server's
/// certificate to `expected` (any when `None`) and records in `seen` the
/// fingerprint presented.
pub fn pinned_client_config(
    expected: Option<String>,
    seen: Seen,
) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = PinnedVerifier {
        expected,
        seen,
        provider: provider.clone(),
    };
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path(), &["h1".into(), "127.0.0.1".into()]).unwrap();
        let b = load_or_create(dir.path(), &["other".into()]).unwrap();
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_eq!(a.fingerprint.len(), 32 * 3 - 1);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
