//! The admin client's configuration: where the coordinator is and how to reach
//! it, from flags and the environment.

use anyhow::Result;
use clap::Args;
use jagged_client::ClientConfig;
use std::path::PathBuf;

/// How `jagged sweep ...` reaches the coordinator.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct ClientArgs {
    /// Coordinator URL (`https://` checks its certificate against --tls-ca).
    #[arg(long, env = "JAGGED_COORDINATOR", default_value = "http://127.0.0.1:7070")]
    pub coordinator: String,
    /// PEM file of the CA that signed the coordinator's certificate (for `https://`).
    #[arg(long, env = "JAGGED_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
}

impl ClientArgs {
    /// The client configuration, with the admin token from `JAGGED_ADMIN_TOKEN`
    /// (or the file `JAGGED_ADMIN_TOKEN_FILE` names).
    pub fn config(&self) -> Result<ClientConfig> {
        Ok(ClientConfig { coordinator: self.coordinator.clone(), token: crate::args::token("JAGGED_ADMIN_TOKEN")?, tls_ca: self.tls_ca.clone() })
    }
}
