//! The warehouse: PostgreSQL star schema, migrations and the transactional sink.
//!
//! - [`migrate`]: versioned migrations from `sql/`, applied idempotently.
//! - [`sink`]: applies each completed step of the dataflow in one transaction.

pub mod migrate;
pub mod sink;

use postgres::{Client, NoTls};
use std::fmt;
use std::time::Duration;

/// How to reach the warehouse.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct WarehouseSettings {
    /// `postgresql://user@host:port/db` (no password in it); empty: no warehouse.
    pub url: String,
    /// The password, from `SHOPFLOW_WAREHOUSE_PASSWORD` or `warehouse.password_file`.
    pub password: Option<String>,
    /// The schema holding every table.
    pub schema: String,
    /// Attempts of a transaction that fails with a transient error.
    pub retries: u32,
    /// Wait before the first retry (ms), doubled each time, at most 30 s.
    pub backoff_ms: u64,
}

impl fmt::Debug for WarehouseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WarehouseSettings")
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("schema", &self.schema)
            .field("retries", &self.retries)
            .field("backoff_ms", &self.backoff_ms)
            .finish()
    }
}

/// Whether a database error is worth retrying: lost connections,
/// serialization failures, deadlocks, and a server that is starting or
/// shutting down. Everything else is permanent.
pub fn is_transient(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => {
            let c = code.code();
            c == "40001" || c == "40P01" || c.starts_with("08") || c == "57P01" || c == "57P03"
        }
        // No SQLSTATE: an I/O or protocol error on the connection.
        None => true,
    }
}

/// Opens a connection with the session set up for the sink: UTC, the schema
/// first on the search path.
pub fn connect(settings: &WarehouseSettings) -> Result<Client, String> {
    let mut config: postgres::Config = settings
        .url
        .parse()
        .map_err(|e| format!("warehouse.url is not a PostgreSQL URL: {e}"))?;
    if let Some(password) = &settings.password {
        config.password(password);
    }
    config.connect_timeout(Duration::from_secs(10));
    config.application_name("shopflow");
    let mut client = config.connect(NoTls).map_err(|e| {
        format!(
            "cannot connect to the warehouse at {}: {e}; is PostgreSQL up (deploy/local/status.sh)?",
            settings.url
        )
    })?;
    client
        .batch_execute(&format!(
            "SET TIME ZONE 'UTC'; SET client_min_messages TO warning; SET search_path TO {}",
            quote_ident(&settings.schema)
        ))
        .map_err(|e| format!("cannot set up the warehouse session: {e}"))?;
    Ok(client)
}

/// A quoted SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
