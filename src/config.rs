//! `shopflow run` configuration: defaults, then a TOML file, then `SHOPFLOW_*`
//! environment variables. Every knob is listed once in [`KNOBS`] (and in
//! `docs/configuration.md`); every problem is collected and reported at once.

use shopflow_connectors::fx_poller::FxSettings;
use shopflow_connectors::kafka::{KafkaSettings, StartAt};
use shopflow_connectors::lake::LakeSettings;
use shopflow_connectors::warehouse::WarehouseSettings;
use shopflow_dataflow::Settings;
use std::path::{Path, PathBuf};

/// Every configuration key: `section.name`, default as written in TOML, help.
pub const KNOBS: &[(&str, &str, &str)] = &[
    (
        "kafka.brokers",
        "\"127.0.0.1:9092\"",
        "Bootstrap servers, host:port[,host:port…].",
    ),
    (
        "kafka.topic_prefix",
        "\"\"",
        "Prefix of every topic name (isolates environments sharing a cluster).",
    ),
    (
        "kafka.group_id",
        "\"shopflow\"",
        "Consumer group that receives committed offsets (visible to lag tools).",
    ),
    (
        "kafka.event_partitions",
        "4",
        "Partitions of clicks, carts and purchases when `topics create` makes them.",
    ),
    (
        "kafka.replication",
        "1",
        "Replication factor of created topics.",
    ),
    (
        "kafka.start",
        "\"committed\"",
        "Where to start reading: earliest, latest, or committed (earliest when nothing is committed).",
    ),
    (
        "kafka.idle_timeout_ms",
        "2000",
        "A partition at its end and quiet this long stops holding the watermark back.",
    ),
    (
        "kafka.max_in_flight",
        "200000",
        "A worker pauses its partitions while this many records are not complete; resumes below half.",
    ),
    (
        "kafka.batch",
        "1000",
        "Messages read from one partition per poll.",
    ),
    (
        "kafka.event_retention_ms",
        "604800000",
        "Retention of the event topics (7 days).",
    ),
    (
        "kafka.dead_letter_retention_ms",
        "2592000000",
        "Retention of dead_letters (30 days).",
    ),
    (
        "kafka.startup_timeout_ms",
        "60000",
        "How long start-up calls (topic creation and metadata, committed offsets) are retried on retriable broker errors before run stops.",
    ),
    (
        "dataflow.workers",
        "2",
        "Dataflow worker threads; each owns a share of the partitions.",
    ),
    (
        "dataflow.tick_ms",
        "1000",
        "Event-time granularity of the dataflow (must divide a minute).",
    ),
    (
        "dataflow.out_of_orderness_ms",
        "5000",
        "How far the watermark trails the newest event of a partition.",
    ),
    (
        "dataflow.allowed_lateness_ms",
        "300000",
        "How far behind the watermark an event is still applied; later ones are too late.",
    ),
    (
        "dataflow.horizon_ms",
        "600000",
        "How long after a window ends it may still be corrected (at least the allowed lateness).",
    ),
    (
        "dataflow.fx_wait_ms",
        "3600000",
        "How much longer than other records an order stays live, so that one waiting for its FX rate is still priced into its windows when the rate comes late.",
    ),
    (
        "fx.url",
        "\"\"",
        "Base URL of the rates API (Frankfurter format); empty: no poller.",
    ),
    ("fx.interval_ms", "60000", "Time between FX polls."),
    ("fx.timeout_ms", "5000", "Time-out of one FX request."),
    (
        "fx.retries",
        "3",
        "Extra attempts after a failed FX request.",
    ),
    (
        "fx.backoff_ms",
        "500",
        "Wait before the first FX retry; doubled each time, at most 60 s.",
    ),
    (
        "run.exit_when_idle_ms",
        "0",
        "Stop once every partition is at its end and quiet this long (0: run until SIGINT/SIGTERM).",
    ),
    (
        "run.output_csv",
        "\"\"",
        "On stop, write every table as CSV here (keeps all rows in memory: for tests and backfills).",
    ),
    (
        "run.console",
        "true",
        "Show the console view every second (false: a progress log line every 10 s).",
    ),
    (
        "warehouse.url",
        "\"\"",
        "PostgreSQL URL of the warehouse, without the password (postgresql://user@host:port/db); empty: no warehouse.",
    ),
    (
        "warehouse.password_file",
        "\"\"",
        "File holding the warehouse password (SHOPFLOW_WAREHOUSE_PASSWORD overrides it); never put it in the URL or this file.",
    ),
    (
        "warehouse.schema",
        "\"shopflow\"",
        "Schema holding every warehouse table (created by `shopflow migrate`).",
    ),
    (
        "warehouse.retries",
        "5",
        "Attempts of a warehouse transaction that fails with a transient error (lost connection, serialization failure).",
    ),
    (
        "warehouse.backoff_ms",
        "200",
        "Wait before the first warehouse retry; doubled each time, at most 30 s.",
    ),
    (
        "warehouse.commit_interval_ms",
        "1000",
        "Least time between warehouse commits; completed steps in between are coalesced into one transaction (0: every step).",
    ),
    (
        "dashboard.listen",
        "\"127.0.0.1:8080\"",
        "Address of the live dashboard (page, /api/snapshot, /ws, /metrics, /healthz); empty disables it. Loopback by default: to expose it, give an address like 0.0.0.0:8080 and set a token.",
    ),
    (
        "dashboard.token_file",
        "\"\"",
        "File holding the token that /api/* and /ws require (SHOPFLOW_DASHBOARD_TOKEN overrides it; 16 to 256 visible characters); empty: no token.",
    ),
    (
        "lake.url",
        "\"\"",
        "The lake: s3://bucket/prefix or a local directory; empty: no lake. With a warehouse, a restart rebuilds the dataflow state from it.",
    ),
    (
        "lake.s3_endpoint",
        "\"\"",
        "S3-compatible endpoint such as http://127.0.0.1:9000; empty: AWS. Credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, never from this file.",
    ),
    ("lake.s3_region", "\"us-east-1\"", "S3 region."),
    (
        "lake.flush_ms",
        "10000",
        "Write a partition's raw file once its oldest buffered message is this old; offsets commit only after.",
    ),
    (
        "lake.flush_bytes",
        "67108864",
        "Write a partition's raw file once its buffered payloads reach this size (64 MiB).",
    ),
    (
        "lake.retries",
        "5",
        "Extra attempts of a failed lake call (put, get, list).",
    ),
    (
        "lake.backoff_ms",
        "200",
        "Wait before the first lake retry; doubled each time, at most 30 s.",
    ),
    ("lake.timeout_ms", "30000", "Time-out of one lake call."),
    (
        "cluster.processes",
        "1",
        "Processes in the timely cluster (`--processes`); each runs `dataflow.workers` threads. See docs/cluster.md.",
    ),
    (
        "cluster.process",
        "0",
        "This process's index, 0 to processes - 1 (`--process`); process 0 writes the warehouse and serves the dashboard.",
    ),
    (
        "cluster.hostfile",
        "\"\"",
        "File with one host:port per process, in process order (`--hostfile`); empty: 127.0.0.1:2101+i.",
    ),
    (
        "cluster.generation",
        "0",
        "Processes connect only to peers of the same generation (`--generation`; the supervisor raises it on every restart).",
    ),
    (
        "cluster.connect_timeout_ms",
        "60000",
        "How long the processes may take to connect to each other before the start fails.",
    ),
    (
        "metrics.listen",
        "\"127.0.0.1:9464\"",
        "Address of the /metrics and /healthz endpoint; empty disables it.",
    ),
];

/// The `[cluster]` section: the timely cluster's shape.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// See [`KNOBS`].
    pub processes: usize,
    /// See [`KNOBS`].
    pub process: usize,
    /// See [`KNOBS`].
    pub hostfile: Option<PathBuf>,
    /// See [`KNOBS`].
    pub generation: u64,
    /// See [`KNOBS`].
    pub connect_timeout_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            processes: 1,
            process: 0,
            hostfile: None,
            generation: 0,
            connect_timeout_ms: 60_000,
        }
    }
}

/// The whole configuration of `run`.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Kafka.
    pub kafka: KafkaSettings,
    /// Dataflow worker threads (per process).
    pub workers: usize,
    /// The timely cluster.
    pub cluster: ClusterConfig,
    /// Dataflow timing.
    pub dataflow: Settings,
    /// The FX poller.
    pub fx: FxSettings,
    /// The warehouse (disabled when its URL is empty).
    pub warehouse: WarehouseSettings,
    /// The lake (disabled when its URL is empty).
    pub lake: LakeSettings,
    /// See [`KNOBS`].
    pub password_file: Option<PathBuf>,
    /// See [`KNOBS`].
    pub commit_interval_ms: u64,
    /// See [`KNOBS`].
    pub exit_when_idle_ms: u64,
    /// See [`KNOBS`].
    pub output_csv: Option<PathBuf>,
    /// See [`KNOBS`].
    pub console: bool,
    /// See [`KNOBS`].
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// See [`KNOBS`].
    pub dashboard_listen: Option<std::net::SocketAddr>,
    /// See [`KNOBS`].
    pub dashboard_token_file: Option<PathBuf>,
    /// The dashboard token (from `SHOPFLOW_DASHBOARD_TOKEN` or the file).
    pub dashboard_token: Option<shopflow_web::Token>,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            kafka: KafkaSettings::default(),
            workers: 2,
            cluster: ClusterConfig::default(),
            dataflow: Settings::default(),
            fx: FxSettings::default(),
            warehouse: WarehouseSettings {
                schema: "shopflow".into(),
                retries: 5,
                backoff_ms: 200,
                ..WarehouseSettings::default()
            },
            lake: LakeSettings::default(),
            password_file: None,
            commit_interval_ms: 1_000,
            exit_when_idle_ms: 0,
            output_csv: None,
            console: true,
            metrics_listen: Some(([127, 0, 0, 1], 9464).into()),
            dashboard_listen: Some(([127, 0, 0, 1], 8080).into()),
            dashboard_token_file: None,
            dashboard_token: None,
        }
    }
}

/// An optional listen address: empty turns the endpoint off.
fn address(key: &str, text: &str) -> Result<Option<std::net::SocketAddr>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| format!("{key}: expected an address like 127.0.0.1:8080, got {text:?}"))
}

/// The environment variable of a key: `kafka.brokers` → `SHOPFLOW_KAFKA_BROKERS`.
pub fn env_name(key: &str) -> String {
    format!("SHOPFLOW_{}", key.replace('.', "_").to_uppercase())
}

fn num<T: std::str::FromStr>(key: &str, text: &str) -> Result<T, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{key}: expected a whole number, got {text:?}"))
}

impl RunConfig {
    /// Sets one key from its text form.
    fn set(&mut self, key: &str, text: &str) -> Result<(), String> {
        let k = &mut self.kafka;
        match key {
            "kafka.brokers" => k.brokers = text.to_owned(),
            "kafka.topic_prefix" => k.topic_prefix = text.to_owned(),
            "kafka.group_id" => k.group_id = text.to_owned(),
            "kafka.event_partitions" => k.event_partitions = num(key, text)?,
            "kafka.replication" => k.replication = num(key, text)?,
            "kafka.start" => {
                k.start = StartAt::parse(text).ok_or_else(|| {
                    format!("{key}: expected earliest, latest or committed, got {text:?}")
                })?
            }
            "kafka.idle_timeout_ms" => k.idle_timeout_ms = num(key, text)?,
            "kafka.max_in_flight" => k.max_in_flight = num(key, text)?,
            "kafka.batch" => k.batch = num(key, text)?,
            "kafka.event_retention_ms" => k.event_retention_ms = num(key, text)?,
            "kafka.dead_letter_retention_ms" => k.dead_letter_retention_ms = num(key, text)?,
            "kafka.startup_timeout_ms" => k.startup_timeout_ms = num(key, text)?,
            "dataflow.workers" => self.workers = num(key, text)?,
            "dataflow.tick_ms" => self.dataflow.tick_ms = num(key, text)?,
            "dataflow.out_of_orderness_ms" => self.dataflow.out_of_orderness_ms = num(key, text)?,
            "dataflow.allowed_lateness_ms" => self.dataflow.allowed_lateness_ms = num(key, text)?,
            "dataflow.horizon_ms" => self.dataflow.horizon_ms = num(key, text)?,
            "dataflow.fx_wait_ms" => self.dataflow.fx_wait_ms = num(key, text)?,
            "fx.url" => self.fx.url = text.to_owned(),
            "fx.interval_ms" => self.fx.interval_ms = num(key, text)?,
            "fx.timeout_ms" => self.fx.timeout_ms = num(key, text)?,
            "fx.retries" => self.fx.retries = num(key, text)?,
            "fx.backoff_ms" => self.fx.backoff_ms = num(key, text)?,
            "warehouse.url" => self.warehouse.url = text.to_owned(),
            "warehouse.password_file" => {
                self.password_file = (!text.is_empty()).then(|| PathBuf::from(text))
            }
            "warehouse.schema" => self.warehouse.schema = text.to_owned(),
            "warehouse.retries" => self.warehouse.retries = num(key, text)?,
            "warehouse.backoff_ms" => self.warehouse.backoff_ms = num(key, text)?,
            "warehouse.commit_interval_ms" => self.commit_interval_ms = num(key, text)?,
            "lake.url" => self.lake.url = text.to_owned(),
            "lake.s3_endpoint" => self.lake.s3_endpoint = text.to_owned(),
            "lake.s3_region" => self.lake.s3_region = text.to_owned(),
            "lake.flush_ms" => self.lake.flush_ms = num(key, text)?,
            "lake.flush_bytes" => self.lake.flush_bytes = num(key, text)?,
            "lake.retries" => self.lake.retries = num(key, text)?,
            "lake.backoff_ms" => self.lake.backoff_ms = num(key, text)?,
            "lake.timeout_ms" => self.lake.timeout_ms = num(key, text)?,
            "run.exit_when_idle_ms" => self.exit_when_idle_ms = num(key, text)?,
            "run.output_csv" => self.output_csv = (!text.is_empty()).then(|| PathBuf::from(text)),
            "run.console" => {
                self.console = text
                    .parse()
                    .map_err(|_| format!("{key}: expected true or false, got {text:?}"))?
            }
            "cluster.processes" => self.cluster.processes = num(key, text)?,
            "cluster.process" => self.cluster.process = num(key, text)?,
            "cluster.hostfile" => {
                self.cluster.hostfile = (!text.is_empty()).then(|| PathBuf::from(text))
            }
            "cluster.generation" => self.cluster.generation = num(key, text)?,
            "cluster.connect_timeout_ms" => self.cluster.connect_timeout_ms = num(key, text)?,
            "metrics.listen" => self.metrics_listen = address(key, text)?,
            "dashboard.listen" => self.dashboard_listen = address(key, text)?,
            "dashboard.token_file" => {
                self.dashboard_token_file = (!text.is_empty()).then(|| PathBuf::from(text))
            }
            _ => return Err(format!("unknown key {key}; see docs/configuration.md")),
        }
        Ok(())
    }

    /// Loads defaults, then `file` (if any), then the environment (`vars`).
    /// Returns every problem found, not just the first.
    pub fn load(
        file: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<RunConfig, Vec<String>> {
        let mut config = RunConfig::default();
        let mut problems = Vec::new();
        if let Some(path) = file {
            match std::fs::read_to_string(path) {
                Err(e) => problems.push(format!("cannot read {}: {e}", path.display())),
                Ok(text) => match text.parse::<toml::Table>() {
                    Err(e) => problems.push(format!("{} is not valid TOML: {e}", path.display())),
                    Ok(table) => config.apply_toml(&table, &mut problems),
                },
            }
        }
        let sections: Vec<String> = KNOBS
            .iter()
            .filter_map(|k| k.0.split_once('.'))
            .map(|(s, _)| format!("SHOPFLOW_{}_", s.to_uppercase()))
            .collect();
        let mut env_token = None;
        for (name, value) in vars {
            if name == "SHOPFLOW_WAREHOUSE_PASSWORD" {
                config.warehouse.password = Some(value);
                continue;
            }
            if name == crate::cli::DASHBOARD_TOKEN_VAR {
                env_token = Some(value);
                continue;
            }
            match KNOBS.iter().find(|k| env_name(k.0) == name) {
                Some((key, _, _)) => {
                    if let Err(e) = config.set(key, &value) {
                        problems.push(format!("{name}: {e}"));
                    }
                }
                None if sections.iter().any(|s| name.starts_with(s.as_str())) => problems.push(
                    format!("{name} is not a shopflow setting; see docs/configuration.md"),
                ),
                None => {}
            }
        }
        match crate::cli::dashboard_token(env_token, config.dashboard_token_file.as_deref()) {
            Ok(token) => config.dashboard_token = token,
            Err(e) => problems.push(format!("dashboard: {e:#}")),
        }
        if config.warehouse.password.is_none()
            && let Some(path) = &config.password_file
        {
            match std::fs::read_to_string(path) {
                Ok(text) => config.warehouse.password = Some(text.trim_end().to_owned()),
                Err(e) => problems.push(format!(
                    "warehouse.password_file: cannot read {}: {e}",
                    path.display()
                )),
            }
        }
        problems.extend(config.problems());
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems)
        }
    }

    fn apply_toml(&mut self, table: &toml::Table, problems: &mut Vec<String>) {
        for (section, value) in table {
            let Some(inner) = value.as_table() else {
                problems.push(format!(
                    "`{section}` must be a [section]; see docs/configuration.md"
                ));
                continue;
            };
            for (name, value) in inner {
                let key = format!("{section}.{name}");
                let text = match value {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    other => {
                        problems.push(format!("{key}: unsupported value {other:?}; use a string, a whole number or true/false"));
                        continue;
                    }
                };
                if let Err(e) = self.set(&key, &text) {
                    problems.push(e);
                }
            }
        }
    }

    /// Problems with the values themselves.
    fn problems(&self) -> Vec<String> {
        let mut out = self.dataflow.problems();
        if self.workers == 0 {
            out.push("dataflow.workers must be at least 1".into());
        }
        if self.kafka.brokers.trim().is_empty() {
            out.push("kafka.brokers must name at least one broker".into());
        }
        if self.kafka.event_partitions < 1 || self.kafka.replication < 1 {
            out.push("kafka.event_partitions and kafka.replication must be at least 1".into());
        }
        if self.kafka.batch == 0 || self.kafka.max_in_flight == 0 {
            out.push("kafka.batch and kafka.max_in_flight must be at least 1".into());
        }
        if !self.warehouse.url.is_empty() {
            match self.warehouse.url.parse::<postgres::Config>() {
                Err(e) => out.push(format!("warehouse.url is not a PostgreSQL URL: {e}")),
                Ok(c) if c.get_password().is_some() => out.push(
                    "warehouse.url contains a password: set SHOPFLOW_WAREHOUSE_PASSWORD or warehouse.password_file instead".into(),
                ),
                Ok(_) => {}
            }
            if self.warehouse.schema.is_empty() {
                out.push("warehouse.schema must not be empty".into());
            }
        }
        if !self.lake.url.is_empty() {
            if self.lake.flush_ms == 0 || self.lake.flush_bytes == 0 || self.lake.timeout_ms == 0 {
                out.push(
                    "lake.flush_ms, lake.flush_bytes and lake.timeout_ms must be positive".into(),
                );
            }
            if self.lake.url.contains("://")
                && !self.lake.url.starts_with("s3://")
                && !self.lake.url.starts_with("file://")
            {
                out.push(format!(
                    "lake.url must be s3://bucket/prefix, file:///dir or a directory, got {:?}",
                    self.lake.url
                ));
            }
        }
        if !self.fx.url.is_empty() && !self.fx.url.starts_with("http") {
            out.push(format!(
                "fx.url must be an http(s) URL, got {:?}",
                self.fx.url
            ));
        }
        if !self.fx.url.is_empty() && (self.fx.interval_ms == 0 || self.fx.timeout_ms == 0) {
            out.push("fx.interval_ms and fx.timeout_ms must be positive".into());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn file_then_environment_override_defaults() {
        let dir = std::env::temp_dir().join(format!("shopflow-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.toml");
        std::fs::write(
            &path,
            "[kafka]\nbrokers = \"h:1\"\nbatch = 7\n[dataflow]\nworkers = 3\n",
        )
        .unwrap();
        let c = RunConfig::load(
            Some(&path),
            vars(&[("SHOPFLOW_KAFKA_BATCH", "9"), ("SHOPFLOW_BIN", "x")]),
        )
        .unwrap();
        assert_eq!(
            (c.kafka.brokers.as_str(), c.kafka.batch, c.workers),
            ("h:1", 9, 3)
        );
        assert_eq!(c.kafka.group_id, "shopflow");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let dir = std::env::temp_dir().join(format!("shopflow-config-b-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("b.toml");
        std::fs::write(
            &path,
            "[kafka]\nbatch = \"lots\"\nbrokerz = \"x\"\n[dataflow]\ntick_ms = 7\n",
        )
        .unwrap();
        let problems = RunConfig::load(
            Some(&path),
            vars(&[
                ("SHOPFLOW_KAFKA_START", "middle"),
                ("SHOPFLOW_FX_URLS", "x"),
            ]),
        )
        .unwrap_err();
        let text = problems.join("\n");
        for needle in [
            "kafka.batch",
            "kafka.brokerz",
            "tick_ms",
            "SHOPFLOW_KAFKA_START",
            "SHOPFLOW_FX_URLS",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
        assert_eq!(problems.len(), 5, "{text}");
    }

    #[test]
    fn every_knob_is_documented_and_settable() {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
        let doc = std::fs::read_to_string(format!("{dir}/docs/configuration.md")).unwrap();
        for (key, default, _) in KNOBS {
            assert!(
                doc.contains(&format!("`{key}`")),
                "{key} is not in docs/configuration.md"
            );
            let mut c = RunConfig::default();
            c.set(key, default.trim_matches('"'))
                .unwrap_or_else(|e| panic!("{key}: {e}"));
        }
    }
}
