//! The gRPC protocol (`proto/jagged/v1/jagged.proto`), compiled with protox, and
//! the one place errors map to gRPC status codes.
#![deny(missing_docs)]

/// Generated messages, clients and servers.
#[allow(missing_docs, clippy::all)]
pub mod v1 {
    tonic::include_proto!("jagged.v1");
}

pub use v1::*;

/// Errors of the coordinator's services.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is malformed or the spec is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The caller's lease is stale: its work no longer counts.
    #[error("{0}")]
    Stale(String),
    /// The database or another dependency is unavailable; retry later.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or corrupt state.
    #[error("{0}")]
    Internal(String),
}

impl ServiceError {
    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ServiceError::Unavailable(_))
    }
}

impl From<ServiceError> for tonic::Status {
    fn from(e: ServiceError) -> tonic::Status {
        match e {
            ServiceError::Invalid(m) => tonic::Status::invalid_argument(m),
            ServiceError::NotFound(m) => tonic::Status::not_found(m),
            ServiceError::Stale(m) => tonic::Status::failed_precondition(m),
            ServiceError::Unavailable(m) => tonic::Status::unavailable(m),
            ServiceError::Internal(m) => tonic::Status::internal(m),
        }
    }
}

/// Whether a status returned by the coordinator is worth retrying.
pub fn status_is_retryable(s: &tonic::Status) -> bool {
    matches!(
        s.code(),
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown | tonic::Code::ResourceExhausted | tonic::Code::Aborted
    )
}

/// Bearer-token authentication: workers and admin clients present separate
/// tokens (`authorization: Bearer <token>`); the coordinator checks them in
/// constant time. Tokens come from the environment (`JAGGED_WORKER_TOKEN`,
/// `JAGGED_ADMIN_TOKEN`) or from files named by `..._FILE` variables, and are never
/// logged (their `Debug` form is redacted).
pub mod auth {
    use tonic::metadata::{Ascii, MetadataValue};
    use tonic::{Request, Status};

    /// A secret token; its `Debug` form is redacted.
    #[derive(Clone, PartialEq, Eq)]
    pub struct Token(String);

    impl std::fmt::Debug for Token {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Token(<redacted>)")
        }
    }

    impl Token {
        /// A token from its text (surrounding whitespace removed); `None` if empty.
        pub fn new(text: &str) -> Option<Token> {
            let t = text.trim();
            (!t.is_empty()).then(|| Token(t.to_string()))
        }

        /// The token in `var`, or in the file named by `<var>_FILE`; `None` if neither
        /// is set. Errors name the variable or file, never the token.
        pub fn from_env(var: &str) -> Result<Option<Token>, String> {
            if let Ok(v) = std::env::var(var) {
                return Token::new(&v).map(Some).ok_or_else(|| format!("{var} is set but empty"));
            }
            match std::env::var(format!("{var}_FILE")) {
                Ok(path) => Token::from_file(std::path::Path::new(&path)).map(Some),
                Err(_) => Ok(None),
            }
        }

        /// The token in a file.
        pub fn from_file(path: &std::path::Path) -> Result<Token, String> {
            let text = std::fs::read_to_string(path).map_err(|e| format!("token file {}: {e}", path.display()))?;
            Token::new(&text).ok_or_else(|| format!("token file {} is empty", path.display()))
        }

        /// The token's text (for handing it to a child process).
        pub fn expose(&self) -> &str {
            &self.0
        }
    }

    /// Constant-time equality of two byte strings.
    fn same(a: &[u8], b: &[u8]) -> bool {
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// Server side: refuses requests without the right token (none required when
    /// `None`).
    #[derive(Clone, Debug)]
    pub struct RequireToken(pub Option<Token>);

    impl tonic::service::Interceptor for RequireToken {
        fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
            let Some(want) = &self.0 else { return Ok(req) };
            let got = req.metadata().get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
            match got {
                Some(t) if same(t.as_bytes(), want.0.as_bytes()) => Ok(req),
                Some(_) => Err(Status::unauthenticated("wrong token")),
                None => Err(Status::unauthenticated("a bearer token is required")),
            }
        }
    }

    /// Client side: adds the token to every request (nothing when `None`).
    #[derive(Clone, Debug)]
    pub struct WithToken(Option<MetadataValue<Ascii>>);

    impl WithToken {
        /// Wraps an optional token; errors if it cannot be sent as a header.
        pub fn new(token: Option<&Token>) -> Result<WithToken, String> {
            match token {
                None => Ok(WithToken(None)),
                Some(t) => format!("Bearer {}", t.0)
                    .parse()
                    .map(|v| WithToken(Some(v)))
                    .map_err(|_| "the token holds characters a header cannot carry".to_string()),
            }
        }
    }

    impl tonic::service::Interceptor for WithToken {
        fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
            if let Some(v) = &self.0 {
                req.metadata_mut().insert("authorization", v.clone());
            }
            Ok(req)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use tonic::service::Interceptor;

        #[test]
        fn tokens_are_checked_and_never_shown() {
            let t = Token::new(" s3cret \n").unwrap();
            assert_eq!(format!("{t:?}"), "Token(<redacted>)");
            let mut server = RequireToken(Some(t.clone()));
            let mut client = WithToken::new(Some(&t)).unwrap();
            assert!(server.call(client.call(Request::new(())).unwrap()).is_ok());
            assert_eq!(server.call(Request::new(())).unwrap_err().code(), tonic::Code::Unauthenticated);
            let other = Token::new("s3creT").unwrap();
            let mut wrong = WithToken::new(Some(&other)).unwrap();
            assert_eq!(server.call(wrong.call(Request::new(())).unwrap()).unwrap_err().code(), tonic::Code::Unauthenticated);
            assert!(RequireToken(None).call(Request::new(())).is_ok());
            assert!(Token::new("  ").is_none());
            assert!(same(b"abc", b"abc") && !same(b"abc", b"abd") && !same(b"abc", b"ab"));
        }
    }
}

/// Transport: `http://` or `https://` coordinator URLs. For `https://` the
/// coordinator's certificate is checked against the CA certificate in the PEM
/// file that `JAGGED_TLS_CA` names (rustls; the URL's host must match the
/// certificate).
pub mod transport {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

    /// Selects rustls's cryptography (ring) for this process, once; needed because
    /// more than one provider is compiled in.
    pub fn install_crypto() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }

    /// An endpoint for `url`, with TLS for `https://`.
    pub fn endpoint(url: &str) -> Result<Endpoint, String> {
        install_crypto();
        let ep = Endpoint::from_shared(url.to_string()).map_err(|e| format!("coordinator url `{url}`: {e}"))?;
        if !url.starts_with("https://") {
            return Ok(ep);
        }
        let ca = std::env::var("JAGGED_TLS_CA")
            .map_err(|_| format!("{url} uses TLS: set JAGGED_TLS_CA to the PEM file of the CA certificate that signed the coordinator's"))?;
        let pem = std::fs::read(&ca).map_err(|e| format!("JAGGED_TLS_CA {ca}: {e}"))?;
        ep.tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem))).map_err(|e| format!("TLS settings for {url}: {e}"))
    }
}
