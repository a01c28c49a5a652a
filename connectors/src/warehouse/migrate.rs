//! Versioned migrations (`sql/V*.sql`), applied by `shopflow migrate`.
//!
//! Each migration runs in its own transaction inside the configured schema
//! and is recorded in `schema_migrations` with a checksum of its text. A
//! migration already recorded is skipped, so re-running is a no-op. One that
//! changed after it was applied is an error: a new migration must be added
//! instead. A transaction-scoped advisory lock keeps two migrators apart.

use super::{WarehouseSettings, connect, quote_ident};
use shopflow_model::Currency;

/// Every migration: version, name, SQL text.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "star_schema",
        include_str!("../../../sql/V001__star_schema.sql"),
    ),
    (
        2,
        "pipeline_runs",
        include_str!("../../../sql/V002__pipeline_runs.sql"),
    ),
];

/// FNV-1a of the text, as hex: enough to notice an edited migration.
pub fn checksum(text: &str) -> String {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// Applies every pending migration; returns the versions applied now.
pub fn migrate(settings: &WarehouseSettings) -> Result<Vec<i32>, String> {
    let mut client = connect(settings)?;
    let schema = quote_ident(&settings.schema);
    let mut applied = Vec::new();
    for &(version, name, sql) in MIGRATIONS {
        let mut tx = client
            .transaction()
            .map_err(|e| format!("cannot start a migration transaction: {e}"))?;
        tx.batch_execute(&format!(
            "SELECT pg_advisory_xact_lock(7406251); \
             CREATE SCHEMA IF NOT EXISTS {schema}; \
             SET LOCAL search_path TO {schema}; \
             CREATE TABLE IF NOT EXISTS schema_migrations ( \
                 version integer PRIMARY KEY, name text NOT NULL, \
                 checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        ))
        .map_err(|e| format!("cannot prepare schema {}: {e}", settings.schema))?;
        let sum = checksum(sql);
        let row = tx
            .query_opt(
                "SELECT checksum FROM schema_migrations WHERE version = $1",
                &[&version],
            )
            .map_err(|e| format!("cannot read schema_migrations: {e}"))?;
        match row {
            Some(r) if r.get::<_, String>(0) == sum => continue,
            Some(_) => {
                return Err(format!(
                    "migration V{version:03}__{name} changed after it was applied to schema {}; add a new migration instead of editing an applied one",
                    settings.schema
                ));
            }
            None => {}
        }
        tx.batch_execute(sql)
            .map_err(|e| format!("migration V{version:03}__{name} failed: {e}"))?;
        if version == 1 {
            for c in Currency::ALL {
                tx.execute(
                    "INSERT INTO dim_currency (currency_code, name) VALUES ($1, $2) \
                     ON CONFLICT (currency_code) DO NOTHING",
                    &[&c.code(), &c.name()],
                )
                .map_err(|e| format!("cannot seed dim_currency: {e}"))?;
            }
        }
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            &[&version, &name, &sum],
        )
        .map_err(|e| format!("cannot record migration V{version:03}: {e}"))?;
        tx.commit()
            .map_err(|e| format!("migration V{version:03}__{name} did not commit: {e}"))?;
        applied.push(version);
    }
    Ok(applied)
}
