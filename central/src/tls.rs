//! The centre's side of TLS: its self-signed certificate (made at `tasjil-central init`, pinned by
//! stations through `centre.pub`) and the server configuration that presents it. The station's
//! side (pinning client, loopback rule) is `tasjil_sync::tls`.

/// A new self-signed certificate: `(certificate DER, private key DER)`.
pub fn self_signed() -> Result<(Vec<u8>, Vec<u8>), String> {
    let made = rcgen::generate_simple_self_signed(vec![
        "tasjil-centre".to_string(),
        "localhost".to_string(),
    ])
    .map_err(|e| e.to_string())?;
    Ok((made.cert.der().to_vec(), made.signing_key.serialize_der()))
}

/// Server configuration presenting the centre's certificate.
pub fn server_config(
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
) -> Result<rustls::ServerConfig, rustls::Error> {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    rustls::ServerConfig::builder_with_provider(tasjil_sync::tls::provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![rustls::pki_types::CertificateDer::from(cert_der)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der)),
        )
}
