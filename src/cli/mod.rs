//! The subcommands and their arguments. The pipeline commands (`demo`,
//! `replay`, `run`, `migrate`) check their arguments, turn them into the
//! input of a `shopflow_pipeline` entry point, call it and report the
//! outcome. `generate`, `validate`, `fx-server`, `topics` and `supervise`
//! are small and do their work here; `supervise` manages processes of this
//! binary.

mod demo;
mod fx_server;
mod generate;
mod migrate;
mod produce;
mod replay;
mod run;
mod supervise;
mod validate;

use clap::{Parser, Subcommand};

/// shopflow: real-time e-commerce analytics in one differential dataflow.
///
/// Shops send click, cart and purchase events; shopflow validates them,
/// computes exact facts, dimensions and windowed aggregates, and keeps a
/// warehouse, a lake and a live dashboard up to date. Logs go to stderr;
/// set SHOPFLOW_LOG (for example `debug` or `shopflow=debug`) to change the level.
#[derive(Parser, Debug)]
#[command(name = "shopflow", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the whole pipeline live on a simulated shop, with the dashboard on http://127.0.0.1:8080 (Ctrl-C to stop).
    Demo(demo::Args),
    /// Generate realistic shop traffic (deterministic per seed) into JSON-lines files.
    Generate(generate::Args),
    /// Check JSON-lines files against the event contract and report each rejection.
    Validate(validate::Args),
    /// Run the dataflow over a generated directory and write every table as CSV.
    Replay(replay::Args),
    /// Serve the generator's daily FX rates over HTTP, in the Frankfurter API's format.
    FxServer(fx_server::Args),
    /// Run the pipeline live from Kafka (configuration: file, then SHOPFLOW_* variables).
    Run(run::Args),
    /// Manage the Kafka topics (`topics create`).
    Topics(run::TopicsArgs),
    /// Create or upgrade the warehouse schema in PostgreSQL (idempotent).
    Migrate(migrate::MigrateArgs),
    /// Launch the processes of a timely cluster running `run` or `replay`, and restart them together when one fails.
    Supervise(supervise::Args),
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Validate(args) => validate::run(args),
        Command::FxServer(args) => fx_server::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Run(args) => run::run(args),
        Command::Topics(args) => run::topics(args),
        Command::Migrate(args) => migrate::run(args),
        Command::Supervise(args) => supervise::run(args),
    }
}

/// Parses a duration such as `90s`, `15m`, `2h`, `1d` or `250ms` into milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<i64, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: i64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 90s, 15m, 2h or 1d"))?;
    let per = match unit {
        "ms" => 1,
        "s" | "" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "unknown unit `{unit}` in `{text}`; use ms, s, m, h or d"
            ));
        }
    };
    n.checked_mul(per)
        .ok_or_else(|| format!("`{text}` is too long"))
}

/// The dataflow's timing knobs, shared by `demo` and `replay`.
#[derive(clap::Args, Debug, Clone)]
pub struct DataflowArgs {
    /// Event time is rounded up to this tick (must divide a minute), like 1s or 500ms.
    #[arg(long, default_value = "1s", value_parser = parse_duration_ms)]
    tick: i64,
    /// How far the watermark trails the newest event time.
    #[arg(long, default_value = "5s", value_parser = parse_duration_ms)]
    out_of_orderness: i64,
    /// How far behind the watermark an event is still applied (later: too late).
    #[arg(long, default_value = "5m", value_parser = parse_duration_ms)]
    allowed_lateness: i64,
    /// How long after its window ends a row can still be corrected (>= allowed lateness).
    #[arg(long, default_value = "10m", value_parser = parse_duration_ms)]
    horizon: i64,
    /// How much longer than other records an order stays live, so that one
    /// waiting for its FX rate is still priced into its windows when the rate comes late.
    #[arg(long, default_value = "1h", value_parser = parse_duration_ms)]
    fx_wait: i64,
}

impl DataflowArgs {
    /// The validated settings, or every problem at once.
    pub fn settings(&self) -> anyhow::Result<shopflow_dataflow::Settings> {
        let s = shopflow_dataflow::Settings {
            tick_ms: self.tick,
            out_of_orderness_ms: self.out_of_orderness,
            allowed_lateness_ms: self.allowed_lateness,
            horizon_ms: self.horizon,
            fx_wait_ms: self.fx_wait,
        };
        let problems = s.problems();
        anyhow::ensure!(
            problems.is_empty(),
            "invalid dataflow settings: {}",
            problems.join("; ")
        );
        Ok(s)
    }
}

/// The timely cluster shape (timely's `-n`, `-p`, `-h`; `--workers` is `-w`).
/// Each flag falls back to its `SHOPFLOW_CLUSTER_*` variable, then (for
/// `run` and `replay --from`) to the configuration's `[cluster]` section.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ClusterArgs {
    /// Processes in the cluster (timely's -n; default 1); each runs --workers threads.
    #[arg(long, env = "SHOPFLOW_CLUSTER_PROCESSES")]
    processes: Option<usize>,
    /// This process's index, 0 to --processes - 1 (timely's -p; default 0). Process 0 writes the results.
    #[arg(long, env = "SHOPFLOW_CLUSTER_PROCESS")]
    process: Option<usize>,
    /// File with one host:port per process, in process order (timely's -h); default 127.0.0.1:2101+i.
    #[arg(long, env = "SHOPFLOW_CLUSTER_HOSTFILE")]
    hostfile: Option<std::path::PathBuf>,
    /// Generation of the cluster: processes connect only to peers of the same one (the supervisor raises it on every restart; default 0).
    #[arg(long, env = "SHOPFLOW_CLUSTER_GENERATION")]
    generation: Option<u64>,
    /// How long the processes may take to connect to each other before the start fails (default 60s).
    #[arg(long, value_parser = parse_duration_ms, env = "SHOPFLOW_CLUSTER_CONNECT_TIMEOUT_MS")]
    connect_timeout: Option<i64>,
}

impl ClusterArgs {
    /// The cluster with `workers` threads in each process: these flags over `base`.
    pub fn cluster(
        &self,
        workers: usize,
        base: &shopflow_pipeline::config::ClusterConfig,
    ) -> anyhow::Result<shopflow_dataflow::Cluster> {
        let hostfile = self.hostfile.clone().or_else(|| base.hostfile.clone());
        let mut c = shopflow_dataflow::Cluster::new(
            workers,
            self.processes.unwrap_or(base.processes),
            self.process.unwrap_or(base.process),
            hostfile.as_deref(),
        )
        .map_err(|e| anyhow::anyhow!(e))?;
        c.generation = self.generation.unwrap_or(base.generation);
        let timeout = self
            .connect_timeout
            .map_or(base.connect_timeout_ms, |t| t.max(0) as u64);
        c.connect_timeout = std::time::Duration::from_millis(timeout);
        Ok(c)
    }
}

/// Parses a fraction in `[0, 1]`.
pub fn parse_fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!(
            "`{text}` is not a fraction between 0 and 1, like 0.01"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_fractions() {
        assert_eq!(parse_duration_ms("90s"), Ok(90_000));
        assert_eq!(parse_duration_ms("2h"), Ok(7_200_000));
        assert_eq!(parse_duration_ms("250ms"), Ok(250));
        assert!(parse_duration_ms("2 weeks").is_err());
        assert_eq!(parse_fraction("0.05"), Ok(0.05));
        assert!(parse_fraction("1.5").is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
