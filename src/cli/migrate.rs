//! `shopflow migrate`: creates or upgrades the warehouse schema
//! (`shopflow_pipeline::warehouse::migrate`) and reports what it did.

use shopflow_pipeline::config::{RunConfig, load};
use std::path::PathBuf;

/// Arguments of `migrate`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "The password comes from SHOPFLOW_WAREHOUSE_PASSWORD or warehouse.password_file, never the URL.\nExample:\n  shopflow migrate --database-url postgresql://postgres@127.0.0.1:5432/shopflow"
)]
pub struct MigrateArgs {
    /// PostgreSQL URL (overrides warehouse.url of the configuration).
    #[arg(long)]
    database_url: Option<String>,
    /// Schema to migrate (overrides warehouse.schema; default shopflow).
    #[arg(long)]
    schema: Option<String>,
    /// TOML configuration file (its [warehouse] section is used).
    #[arg(long)]
    config: Option<PathBuf>,
}

/// Loads the configuration, then applies `--database-url` and `--schema`.
pub fn load_with_warehouse(
    file: Option<&std::path::Path>,
    database_url: Option<String>,
    schema: Option<String>,
) -> anyhow::Result<RunConfig> {
    let mut config = load(file)?;
    if let Some(url) = database_url {
        config.warehouse.url = url;
    }
    if let Some(schema) = schema {
        config.warehouse.schema = schema;
    }
    Ok(config)
}

/// Runs `migrate`: applies pending migrations, reports what it did.
pub fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let config = load_with_warehouse(args.config.as_deref(), args.database_url, args.schema)?;
    anyhow::ensure!(
        !config.warehouse.url.is_empty(),
        "no warehouse to migrate: pass --database-url or set warehouse.url"
    );
    let applied = shopflow_pipeline::warehouse::migrate(&config.warehouse)?;
    if applied.is_empty() {
        println!("schema {}: up to date", config.warehouse.schema);
    } else {
        for v in applied {
            println!("schema {}: applied V{v:03}", config.warehouse.schema);
        }
    }
    Ok(())
}
