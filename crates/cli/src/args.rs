//! Flags and settings more than one role shares: where PostgreSQL and the
//! object store are, and bearer tokens from the environment.

use anyhow::{Context, Result};
use clap::Args;
use jagged_proto::auth::Token;

/// Where PostgreSQL is.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct DbArg {
    /// PostgreSQL URL.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
}

/// Where models, images and results are.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct StoreArg {
    /// Object store: a local folder, `file:///abs/path` or `s3://bucket/prefix`.
    #[arg(long, env = "JAGGED_STORE", default_value = "jagged-store")]
    pub store: String,
}

impl StoreArg {
    /// Opens the object store.
    pub fn open(&self) -> Result<std::sync::Arc<dyn object_store::ObjectStore>> {
        jagged_artifacts::open_store(&self.store).with_context(|| format!("opening the object store {}", self.store))
    }
}

/// The token in the environment variable `var`, or in the file that `<var>_FILE`
/// names; `None` if neither is set. Tokens are taken from the environment or a
/// file, never from flags (which other users of the machine can read in the
/// process list). Errors name the variable or file, never the token.
pub fn token(var: &str) -> Result<Option<Token>> {
    if let Ok(v) = std::env::var(var) {
        return Token::new(&v).map(Some).with_context(|| format!("{var} is set but empty"));
    }
    match std::env::var(format!("{var}_FILE")) {
        Ok(path) => Token::from_file(std::path::Path::new(&path)).map(Some).map_err(anyhow::Error::msg),
        Err(_) => Ok(None),
    }
}

/// A PostgreSQL URL with its password hidden, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Connects to PostgreSQL (migrating first when asked); a malformed URL is
/// refused before any connection, saying what a good one looks like.
pub async fn connect_db(url: &str, migrate: bool) -> Result<jagged_store::Store> {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "postgres" | "postgresql") => {}
        Ok(u) => anyhow::bail!("DATABASE_URL (--database-url) has scheme `{}`; expected postgres://user:password@host:port/database", u.scheme()),
        Err(e) => anyhow::bail!("DATABASE_URL (--database-url) is not a URL ({e}); expected postgres://user:password@host:port/database"),
    }
    let store = jagged_store::Store::connect(url, 16).await.map_err(|e| anyhow::anyhow!("connecting to PostgreSQL at {}: {e}", redact(url)))?;
    if migrate {
        store.migrate().await?;
    }
    Ok(store)
}
