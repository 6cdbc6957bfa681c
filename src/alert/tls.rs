//! TLS to the SMTP server, done here rather than by lettre (lettre 0.11 builds its own rustls
//! configuration and cannot take a verifier of ours): a rustls `ClientConfig` that trusts the
//! system's roots plus `email.tls_ca_file`, or, with `email.tls_pin_sha256`, exactly one
//! certificate (`PinnedVerifier`), whatever its CA flag, validity or names. Pinning is what a
//! relay with a self-signed certificate needs: `openssl req -x509` makes certificates with
//! CA:TRUE, which webpki refuses as a server's certificate even when it is trusted
//! (`CaUsedAsEndEntity`). Handshake signatures are always verified, so the server must hold the
//! pinned certificate's private key.
//!
//! Must not: read a file other than the CA file; accept any certificate but the pinned one.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, OtherError, SignatureScheme};
use sha2::{Digest as _, Sha256};

/// The SHA-256 fingerprint of a certificate (of its DER bytes), as `openssl x509 -fingerprint
/// -sha256` prints it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of the DER-encoded certificate `der`.
    pub fn of(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }

    /// Reads a fingerprint written as plain hex (`ab12...`), with colons (`AB:12:...`), or as
    /// openssl's whole line (`sha256 Fingerprint=AB:12:...`); case and surrounding blanks do not
    /// matter.
    pub fn parse(text: &str) -> Result<Fingerprint, String> {
        let text = text.trim();
        let digits = match text.rsplit_once('=') {
            Some((label, digits)) => {
                let label = label.trim().to_ascii_lowercase().replace('-', "");
                if !label.starts_with("sha256") {
                    return Err(format!(
                        "{text:?}: expected a SHA-256 fingerprint (openssl x509 -noout \
                         -fingerprint -sha256), not {}",
                        label.split_whitespace().next().unwrap_or("an unnamed one")
                    ));
                }
                digits.trim()
            }
            None => text,
        };
        let hex: String = digits.chars().filter(|c| *c != ':').collect();
        let mut bytes = [0u8; 32];
        let well_formed = hex.len() == 64
            && hex.chars().all(|c| c.is_ascii_hexdigit())
            && bytes.iter_mut().enumerate().all(|(index, byte)| {
                u8::from_str_radix(&hex[2 * index..2 * index + 2], 16)
                    .map(|value| *byte = value)
                    .is_ok()
            });
        if well_formed {
            Ok(Fingerprint(bytes))
        } else {
            Err(format!(
                "{text:?}: expected a SHA-256 fingerprint: 64 hex digits, plain or in pairs \
                 separated by colons, or openssl's line `sha256 Fingerprint=AB:CD:...`"
            ))
        }
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, byte) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// The server presented another certificate than the pinned one.
#[derive(Debug)]
struct PinMismatch {
    presented: Fingerprint,
}

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the server presented a certificate with SHA-256 fingerprint {}, not the one of \
             email.tls_pin_sha256",
            self.presented
        )
    }
}

impl std::error::Error for PinMismatch {}

/// Accepts exactly the certificate whose SHA-256 fingerprint is pinned, as the server's own
/// (whatever else the chain holds, its CA flag, its validity and its names), and verifies the
/// handshake's signatures with its key.
#[derive(Debug)]
pub struct PinnedVerifier {
    pin: Fingerprint,
    provider: Arc<CryptoProvider>,
}

impl PinnedVerifier {
    /// A verifier of `pin`, verifying signatures with `provider`'s algorithms.
    pub fn new(pin: Fingerprint, provider: Arc<CryptoProvider>) -> PinnedVerifier {
        PinnedVerifier { pin, provider }
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = Fingerprint::of(end_entity.as_ref());
        if presented == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(PinMismatch { presented })),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Whom the client trusts.
#[derive(Clone, Debug)]
pub enum Trust<'a> {
    /// Exactly the certificate with this fingerprint.
    Pinned(Fingerprint),
    /// The system's roots, and the certificates of this PEM file when given.
    Roots(Option<&'a Path>),
}

/// Why a TLS client cannot be made; the text names the file when there is one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TlsSetupError(pub String);

/// The rustls client configuration for `trust` (aws-lc-rs, TLS 1.2 and 1.3).
pub fn client_config(trust: &Trust<'_>) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError(format!("cannot set up TLS: {e}")))?;
    let config = match trust {
        Trust::Pinned(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedVerifier::new(*pin, provider)))
            .with_no_client_auth(),
        Trust::Roots(ca_file) => {
            let mut roots = rustls::RootCertStore::empty();
            // Unreadable system certificates are skipped, as lettre did: the CA file or the
            // rest of the system's may still do.
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
            if let Some(path) = ca_file {
                for certificate in ca_certificates(path)? {
                    roots.add(certificate).map_err(|e| {
                        TlsSetupError(format!(
                            "{}: cannot trust its certificate: {e}",
                            path.display()
                        ))
                    })?;
                }
            }
            if roots.is_empty() {
                return Err(TlsSetupError(
                    "no trusted certificate: the system has none, set email.tls_ca_file or \
                     email.tls_pin_sha256"
                        .into(),
                ));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}

/// The certificates of the PEM file `path`; at least one.
fn ca_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let pem = std::fs::read(path)
        .map_err(|e| TlsSetupError(format!("cannot read {}: {e}", path.display())))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsSetupError(format!("{}: {e}", path.display())))?;
    if certificates.is_empty() {
        return Err(TlsSetupError(format!(
            "{}: no PEM certificate in it",
            path.display()
        )));
    }
    Ok(certificates)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "3f1c5e0b8a2d4e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7";

    #[test]
    fn a_fingerprint_reads_as_hex_with_colons_or_as_openssls_line() {
        let plain = Fingerprint::parse(HEX).expect("plain hex");
        let colons: String = HEX
            .as_bytes()
            .chunks(2)
            .map(|pair| std::str::from_utf8(pair).expect("ascii").to_uppercase())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(Fingerprint::parse(&colons), Ok(plain));
        assert_eq!(
            Fingerprint::parse(&format!("sha256 Fingerprint={colons}\n")),
            Ok(plain)
        );
        assert_eq!(
            Fingerprint::parse(&format!("SHA256 Fingerprint={colons}")),
            Ok(plain)
        );
        assert_eq!(plain.to_string(), colons);
        for bad in [
            "",
            &HEX[..62],
            &format!("{HEX}00"),
            &HEX.replace('3', "g"),
            &format!("sha1 Fingerprint={colons}"),
        ] {
            assert!(Fingerprint::parse(bad).is_err(), "{bad:?}");
        }
        let error = Fingerprint::parse(&format!("sha1 Fingerprint={colons}")).unwrap_err();
        assert!(error.contains("not sha1"), "{error}");
    }

    #[test]
    fn the_pinned_certificate_is_accepted_and_another_is_refused_naming_it() {
        let pinned = b"the pinned certificate's DER";
        let other = b"another certificate";
        let verifier = PinnedVerifier::new(
            Fingerprint::of(pinned),
            Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        );
        let name = ServerName::try_from("relay.example.org").expect("a name");
        let verify = |der: &[u8]| {
            verifier.verify_server_cert(
                &CertificateDer::from(der.to_vec()),
                &[],
                &name,
                &[],
                UnixTime::now(),
            )
        };
        assert!(verify(pinned).is_ok());
        let error = verify(other).expect_err("refused").to_string();
        assert!(
            error.starts_with("invalid peer certificate: ")
                && error.contains(&Fingerprint::of(other).to_string()),
            "{error}"
        );
        assert!(!verifier.supported_verify_schemes().is_empty());
    }

    #[test]
    fn a_ca_file_without_a_certificate_is_refused_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").expect("write");
        let error = client_config(&Trust::Roots(Some(&path))).expect_err("refused");
        assert!(error.0.contains("ca.pem") && error.0.contains("no PEM certificate"));
    }
}
