//! TLS between stations and the centre without a certificate authority.
//!
//! `tasjil-central init` makes a self-signed certificate; the SHA-256 of its DER goes into
//! `centre.pub`, which every station already receives at `tasjil init`. The station accepts exactly
//! that certificate (or one the centre announced as its next, `tls_next_sha256`, in a key rotation
//! signed by the key the station holds): no CA to run in the field, no trust in whatever a captive portal presents, and
//! no certificate-date check (a van's clock may be days off; the pin, not the date, is the trust).
//! Plain HTTP remains for loopback (tests, demo) only.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::canonical::sha256_hex;

/// The crypto provider used on both sides (ring: builds without cmake or extra C toolchains).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Lower-case hex SHA-256 of a certificate's DER: what `centre.pub` pins.
pub fn fingerprint(cert_der: &[u8]) -> String {
    sha256_hex(cert_der)
}

/// Where a refused certificate's fingerprint is left for the caller, to say what was presented.
pub type PresentedSlot = Arc<Mutex<Option<String>>>;

/// Accepts only a certificate whose fingerprint is pinned.
#[derive(Debug)]
struct Pinned {
    fingerprints: Vec<String>,
    refused: PresentedSlot,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = fingerprint(end_entity);
        if self.fingerprints.contains(&presented) {
            Ok(ServerCertVerified::assertion())
        } else {
            let message = format!(
                "the server's certificate (SHA-256 {presented}) is not one this station pins for the centre ({})",
                self.fingerprints.join(", ")
            );
            if let Ok(mut slot) = self.refused.lock() {
                *slot = Some(presented);
            }
            Err(rustls::Error::General(message))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
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
        verify_tls13_signature(
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

/// Client configuration that trusts only the pinned centre certificates (hex SHA-256 of the DER:
/// the current one and any announced next one, [`crate::CentrePublic::tls_pins`]). A refused
/// certificate's fingerprint is left in `refused`.
pub fn client_config(
    pins: &[String],
    refused: PresentedSlot,
) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = provider();
    Ok(
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                fingerprints: pins.iter().map(|p| p.trim().to_ascii_lowercase()).collect(),
                refused,
                provider,
            }))
            .with_no_client_auth(),
    )
}

/// Whether `host` (from a URL) is a loopback address, where plain HTTP is allowed.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in ["127.0.0.1", "127.5.5.5", "[::1]", "::1", "localhost"] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in ["10.0.0.1", "192.168.1.1", "centre.example", "[2001:db8::1]"] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }
}
