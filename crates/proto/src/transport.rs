//! Transport: `http://` or `https://` coordinator URLs. For `https://` the
//! coordinator's certificate is checked against a CA certificate (a PEM file,
//! given by the client's configuration); the URL's host must match the
//! certificate (rustls).

use std::path::Path;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

/// Selects rustls's cryptography (ring) for this process, once; needed because
/// more than one provider is compiled in.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An endpoint for `url`, with TLS checked against `ca` for `https://`.
pub fn endpoint(url: &str, ca: Option<&Path>) -> Result<Endpoint, String> {
    install_crypto();
    let ep = Endpoint::from_shared(url.to_string()).map_err(|e| format!("coordinator url `{url}`: {e}"))?;
    if !url.starts_with("https://") {
        return Ok(ep);
    }
    let ca = ca.ok_or_else(|| format!("{url} uses TLS: set JAGGED_TLS_CA to the PEM file of the CA certificate that signed the coordinator's"))?;
    let pem = std::fs::read(ca).map_err(|e| format!("JAGGED_TLS_CA {}: {e}", ca.display()))?;
    ep.tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem))).map_err(|e| format!("TLS settings for {url}: {e}"))
}
