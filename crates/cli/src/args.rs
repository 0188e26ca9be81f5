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

/// A `--price KIND=PRICE_PER_HOUR` value.
pub fn price(s: &str) -> Result<(String, f64), String> {
    jagged_domain::cost::parse_price(s)
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

/// Parses a duration: `90` or `90s` (seconds), `500ms`, `5m`, `2h`.
pub fn duration(text: &str) -> std::result::Result<std::time::Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: f64 = n.parse().map_err(|_| format!("`{text}` is not a duration (e.g. 90s, 500ms, 5m, 2h)"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (ms, s, m or h)")),
    };
    if !secs.is_finite() || secs > 1e9 {
        return Err(format!("`{text}` is too long"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::duration;
    use std::time::Duration;

    #[test]
    fn durations_take_the_units_people_write() {
        assert_eq!(duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(duration("5 min").unwrap_err(), "`5 min`: unknown unit ` min` (ms, s, m or h)");
        assert!(duration("soon").unwrap_err().contains("is not a duration"));
    }
}
