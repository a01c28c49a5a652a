//! `shopflow run` configuration: defaults, then a TOML file, then `SHOPFLOW_*`
//! environment variables. Every knob is listed once in [`KNOBS`] (and in
//! `docs/configuration.md`); every problem is collected and reported at once.
//! `run` takes it whole; `migrate`, `topics` and `replay --from` read their
//! sections of it.

mod knobs;

pub use knobs::KNOBS;

use anyhow::anyhow;
use shopflow_connectors::fx_poller::FxSettings;
use shopflow_connectors::kafka::{KafkaSettings, StartAt};
use shopflow_connectors::lake::LakeSettings;
use shopflow_connectors::warehouse::WarehouseSettings;
use shopflow_dataflow::Settings;
use std::path::{Path, PathBuf};

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

/// Loads the configuration from `file` (if any) and the process's
/// environment, or fails with every problem listed.
pub fn load(file: Option<&Path>) -> anyhow::Result<RunConfig> {
    RunConfig::load(file, std::env::vars()).map_err(|problems| {
        anyhow!(
            "the configuration has {} problem(s):\n  - {}",
            problems.len(),
            problems.join("\n  - ")
        )
    })
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
            if name == crate::dashboard::TOKEN_VAR {
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
        match crate::dashboard::token(env_token, config.dashboard_token_file.as_deref()) {
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
        let doc = std::fs::read_to_string(format!("{dir}/../docs/configuration.md")).unwrap();
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
