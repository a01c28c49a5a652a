//! `shopflow run` and `shopflow topics`: the configuration (file, then
//! `SHOPFLOW_*` variables, then these flags) handed to
//! `shopflow_pipeline::run::run`, which runs the pipeline live from Kafka
//! until SIGINT/SIGTERM; `topics create` makes the missing topics.

use shopflow_connectors::kafka::topics;
use shopflow_pipeline::config::load;
use shopflow_pipeline::shutdown::Shutdown;
use std::path::PathBuf;

/// Arguments of `run`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Configuration: defaults < the TOML file < SHOPFLOW_* variables (docs/configuration.md).\nExample:\n  deploy/local/up.sh\n  shopflow run --config deploy/local/shopflow.toml"
)]
pub struct Args {
    /// TOML configuration file (optional: the defaults suit deploy/local).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Worker threads per process (overrides dataflow.workers).
    #[arg(long)]
    workers: Option<usize>,
    #[command(flatten)]
    cluster: super::ClusterArgs,
}

/// Arguments of `topics`.
#[derive(clap::Args, Debug)]
pub struct TopicsArgs {
    /// `create`: create every topic that is missing (idempotent).
    #[arg(value_parser = ["create"])]
    action: String,
    /// TOML configuration file (its [kafka] section is used).
    #[arg(long)]
    config: Option<PathBuf>,
}

/// Runs `topics create`.
pub fn topics(args: TopicsArgs) -> anyhow::Result<()> {
    let config = load(args.config.as_deref())?;
    let outcomes = topics::create(&config.kafka).map_err(|e| anyhow::anyhow!(e))?;
    for (name, outcome) in outcomes {
        println!(
            "{name}: {}",
            match outcome {
                topics::Outcome::Created => "created",
                topics::Outcome::Existed => "exists",
            }
        );
    }
    Ok(())
}

/// Runs `run`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let mut config = load(args.config.as_deref())?;
    if let Some(w) = args.workers {
        anyhow::ensure!(w > 0, "--workers must be at least 1");
        config.workers = w;
    }
    let cluster = args.cluster.cluster(config.workers, &config.cluster)?;
    let shutdown = Shutdown::install()?;
    shopflow_pipeline::run::run(config, cluster, shutdown)
}
