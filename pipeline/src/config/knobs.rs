//! The list of every configuration key, its default and its help text: the
//! one place `RunConfig` parsing, the environment variable names and
//! `docs/configuration.md` (checked by a test) agree on.

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
