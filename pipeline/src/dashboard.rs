//! The live dashboard as `demo` and `run` use it: one board fed by the
//! dataflow's completed steps, one hub of numbered states, and the web
//! server (`shopflow-web`) with its metrics exported to `/metrics`.

use anyhow::Context;
use shopflow_connectors::metrics::Metrics;
use shopflow_dataflow::rows::StatName;
use shopflow_dataflow::run::Progress;
use shopflow_web::{Board, Hub, Options, Token, WarehouseCommit};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The environment variable holding the dashboard token (wins over a file).
pub const TOKEN_VAR: &str = "SHOPFLOW_DASHBOARD_TOKEN";

/// Most websocket clients at once (`docs/websocket.md`).
pub const MAX_CLIENTS: u64 = 1_000;

/// A board and its hub, shared by the dataflow thread and the server.
#[derive(Clone)]
pub struct Dashboard {
    board: Arc<Mutex<Board>>,
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    last_publish: Arc<Mutex<Instant>>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The token: `env` (the value of [`TOKEN_VAR`]), else the content of
/// `file`; `None` without either.
pub fn token(env: Option<String>, file: Option<&Path>) -> anyhow::Result<Option<Token>> {
    let text = match (env, file) {
        (Some(t), _) => t,
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the dashboard token file {}", path.display()))?
            .trim_end()
            .to_owned(),
        (None, None) => return Ok(None),
    };
    let ok = (16..=shopflow_web::server::MAX_TOKEN).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_graphic());
    anyhow::ensure!(
        ok,
        "the dashboard token must be 16 to 256 visible ASCII characters (no spaces); generate one with: openssl rand -hex 24"
    );
    Ok(Some(Token(text.into())))
}

impl Dashboard {
    /// A dashboard over an empty board; input counts come from `metrics`
    /// (`shopflow_messages_total`, `shopflow_invalid_total`).
    pub fn new(board: Board, metrics: Arc<Metrics>) -> Dashboard {
        Dashboard {
            board: Arc::new(Mutex::new(board)),
            hub: Arc::new(Hub::new(shopflow_web::hub::RING)),
            metrics,
            last_publish: Arc::new(Mutex::new(Instant::now())),
        }
    }

    /// The board, for the console view and input counts.
    pub fn board(&self) -> std::sync::MutexGuard<'_, Board> {
        self.board.lock().expect("board")
    }

    /// Serves the dashboard on `listen`; `/metrics` renders the metrics
    /// with the dashboard's own counters. Returns the bound address.
    pub fn start(
        &self,
        rt: &tokio::runtime::Runtime,
        listen: SocketAddr,
        token: Option<Token>,
    ) -> anyhow::Result<SocketAddr> {
        if !listen.ip().is_loopback() && token.is_none() {
            tracing::warn!(%listen, "the dashboard is reachable from the network without a token: anyone who can connect sees the shop's figures; set {TOKEN_VAR} or a token file");
        }
        let (hub, metrics) = (self.hub.clone(), self.metrics.clone());
        let options = Options {
            token,
            max_clients: MAX_CLIENTS,
            heartbeat: Duration::from_secs(5),
            metrics: Arc::new(move || {
                export(&hub, &metrics);
                metrics.render()
            }),
        };
        shopflow_web::start(rt, listen, self.hub.clone(), options).with_context(|| {
            format!("cannot serve the dashboard on {listen}: is another shopflow running? Choose another address with --listen (demo) or dashboard.listen (run), or \"\" to turn it off (run)")
        })
    }

    /// Takes a completed step and publishes the new state.
    pub fn absorb(&self, progress: Progress) {
        let mut board = self.board();
        board.absorb(progress);
        for (name, stat) in [
            ("shopflow_live_duplicates", StatName::Duplicates),
            ("shopflow_live_conflicts", StatName::Conflicts),
        ] {
            self.metrics.set(name, &[], board.stat(stat).max(0) as u64);
        }
        self.publish(&mut board);
    }

    /// Records a warehouse commit (shown with the next state).
    pub fn committed(&self, commit: WarehouseCommit) {
        self.board().committed(commit);
    }

    /// Publishes the health figures when no step completed for a second,
    /// so that lag and counters stay current while the stream is quiet.
    pub fn refresh_if_quiet(&self) {
        let mut board = self.board();
        if self.last_publish.lock().expect("clock").elapsed() >= Duration::from_secs(1) {
            self.publish(&mut board);
        }
    }

    /// Closes every websocket (code 1001) and stops the server; waits up
    /// to two seconds for the clients to be told.
    pub fn close(&self) {
        self.hub.close();
        let began = Instant::now();
        while self.hub.stats.clients.load(Ordering::Relaxed) > 0
            && began.elapsed() < Duration::from_secs(2)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn publish(&self, board: &mut Board) {
        let now = now_ms();
        board.set_input(
            self.metrics.total("shopflow_messages_total"),
            self.metrics.by_label("shopflow_invalid_total", "reason"),
        );
        board.note_rate();
        self.hub.publish(board.entries(now), now);
        *self.last_publish.lock().expect("clock") = Instant::now();
    }
}

/// Copies the hub's counters into the metrics registry.
fn export(hub: &Hub, metrics: &Metrics) {
    let s = &hub.stats;
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    metrics.set("shopflow_dashboard_clients", &[], get(&s.clients));
    for (name, value) in [
        ("shopflow_dashboard_connections_total", get(&s.connections)),
        ("shopflow_dashboard_messages_total", get(&s.messages)),
        ("shopflow_dashboard_bytes_total", get(&s.bytes)),
        ("shopflow_dashboard_skips_total", get(&s.skips)),
        ("shopflow_dashboard_dropped_total", get(&s.dropped)),
        ("shopflow_dashboard_states_total", get(&s.published)),
    ] {
        metrics.set_counter(name, value);
    }
    for (why, value) in [
        ("message", get(&s.refused_messages)),
        ("token", get(&s.unauthorized)),
        ("full", get(&s.full)),
    ] {
        metrics.set("shopflow_dashboard_refused_total", &[("why", why)], value);
    }
}
