//! Bearer-token authentication: workers and admin clients present separate
//! tokens (`authorization: Bearer <token>`); the coordinator checks them in
//! constant time. Tokens are given by each role's configuration (flags, the
//! environment, or files) and are never logged (their `Debug` form is redacted).

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

    /// The token in a file.
    pub fn from_file(path: &std::path::Path) -> Result<Token, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("token file {}: {e}", path.display()))?;
        Token::new(&text).ok_or_else(|| format!("token file {} is empty", path.display()))
    }

    /// Whether `text` is this token (in constant time).
    pub fn matches(&self, text: &str) -> bool {
        same(text.as_bytes(), self.0.as_bytes())
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
