//! `shopflow supervise`: launches the processes of a timely cluster and
//! keeps them running as one.
//!
//! A timely cluster cannot lose a process: the others stop too (they exit
//! with status 75, see `shopflow_dataflow::cluster`). So the supervisor
//! treats the processes as one *generation*: when any of them fails, it stops
//! the rest (SIGTERM, then SIGKILL after the grace period), backs off, and
//! starts a new generation, which recovers from the lake and the warehouse.
//! Each generation has its own number, passed to every process, so a stale
//! process of an earlier one can never join it; a generation that does not
//! connect fails by itself within `--connect-timeout` and is retried the same
//! way. SIGINT or SIGTERM stops the processes gracefully (they drain, commit
//! and exit 0) and then the supervisor. If the supervisor itself is killed
//! (SIGKILL), its processes are not: under systemd, `KillMode=control-group`
//! stops them with it (`deploy/cluster/shopflow@.service`).

use super::parse_duration_ms;
use anyhow::{Context, anyhow};
use shopflow_pipeline::shutdown::Shutdown;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// Arguments of `supervise`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  shopflow supervise --processes 2 -- run --config deploy/local/shopflow.toml --workers 1\n  shopflow supervise --processes 2 --hostfile hosts -- replay --input data/gen --output-csv out\n  # one host of a two-host cluster (systemd runs this on each host):\n  shopflow supervise --processes 2 --process 1 --hostfile /etc/shopflow/hostfile -- run --config /etc/shopflow/shopflow.toml\n\nSee docs/cluster.md."
)]
pub struct Args {
    /// Processes in the cluster.
    #[arg(long, default_value_t = 2)]
    processes: usize,
    /// Supervise only this process of the cluster on this host (repeatable);
    /// default: all of them, a cluster on this machine.
    #[arg(long = "process")]
    local: Vec<usize>,
    /// Hostfile (one host:port per process); for a cluster on this machine it
    /// is written if missing, with 127.0.0.1 and ports from --base-port.
    #[arg(long)]
    hostfile: Option<PathBuf>,
    /// First port of a hostfile written for this machine.
    #[arg(long, default_value_t = 2101)]
    base_port: u16,
    /// On one machine, process i of `run` serves /metrics and /healthz on
    /// 127.0.0.1:(this + i), so the processes do not collide (0: leave
    /// metrics.listen as configured).
    #[arg(long, default_value_t = 9464)]
    metrics_port: u16,
    /// Generation of a cluster spread over hosts (all hosts must agree);
    /// on one machine every restart takes a new one by itself.
    #[arg(long, default_value_t = 0)]
    generation: u64,
    /// Restarts before giving up (0: never).
    #[arg(long, default_value_t = 0)]
    max_restarts: u32,
    /// Wait before the first restart; doubled after each quick failure, at most 30 s.
    #[arg(long, default_value = "1s", value_parser = parse_duration_ms)]
    backoff: i64,
    /// How long a stopping process may drain before it is killed.
    #[arg(long, default_value = "90s", value_parser = parse_duration_ms)]
    grace: i64,
    /// What every process runs: `run …` or `replay …`, after `--`.
    #[arg(last = true, required = true, num_args = 1..)]
    command: Vec<String>,
}

/// How one generation ended.
enum Outcome {
    /// Every process exited 0.
    Done,
    /// A stop was requested and the processes drained.
    Stopped,
    /// Process `i` failed.
    Failed(usize, ExitStatus),
}

/// Runs `supervise`.
pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.processes >= 1, "--processes must be at least 1");
    anyhow::ensure!(
        matches!(
            args.command.first().map(String::as_str),
            Some("run" | "replay")
        ),
        "supervise runs `run …` or `replay …` after `--`, got {:?}",
        args.command
    );
    let local: Vec<usize> = if args.local.is_empty() {
        (0..args.processes).collect()
    } else {
        args.local.clone()
    };
    if let Some(&bad) = local.iter().find(|&&i| i >= args.processes) {
        anyhow::bail!(
            "--process {bad} is out of range for --processes {}",
            args.processes
        );
    }
    let whole = local.len() == args.processes;
    let hostfile = hostfile(&args, whole)?;
    let shutdown = Shutdown::install()?;
    let exe = std::env::current_exe().context("cannot find the shopflow executable")?;
    // On one machine, each start takes generations no earlier start used.
    let first = if whole {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    } else {
        args.generation
    };
    let initial = Duration::from_millis(args.backoff.max(0) as u64);
    let grace = Duration::from_millis(args.grace.max(0) as u64);
    let mut backoff = initial;
    let mut restarts = 0;
    for round in 0u64.. {
        let generation = if whole { first + round } else { first };
        let began = Instant::now();
        tracing::info!(generation, processes = ?local, hostfile = %hostfile.display(), "starting the cluster");
        let mut children = Vec::new();
        for &i in &local {
            let metrics = (whole && args.metrics_port != 0 && args.command[0] == "run")
                .then(|| format!("127.0.0.1:{}", usize::from(args.metrics_port) + i));
            let child = spawn(&exe, &args, i, &hostfile, generation, metrics)
                .with_context(|| format!("cannot start process {i}"))?;
            children.push((i, child));
        }
        match watch(&mut children, &shutdown, grace)? {
            Outcome::Done => {
                tracing::info!(generation, "every process finished");
                return Ok(());
            }
            Outcome::Stopped => {
                tracing::info!(generation, "stopped");
                return Ok(());
            }
            Outcome::Failed(i, status) => {
                restarts += 1;
                if args.max_restarts > 0 && restarts > args.max_restarts {
                    return Err(anyhow!(
                        "process {i} failed ({}) and the cluster was restarted {} times already (--max-restarts); see its log above",
                        describe(status),
                        args.max_restarts
                    ));
                }
                if began.elapsed() > Duration::from_secs(60) {
                    backoff = initial; // it ran a while: not a crash loop
                }
                tracing::warn!(process = i, status = %describe(status), generation, next_in = ?backoff, "a process failed: the whole cluster restarts and recovers from the lake and the warehouse");
                if sleep_unless_stopped(backoff, &shutdown) {
                    return Ok(());
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
    unreachable!("the loop returns")
}

/// The hostfile to use: the one given, or one written for this machine.
fn hostfile(args: &Args, whole: bool) -> anyhow::Result<PathBuf> {
    let path = match &args.hostfile {
        Some(p) if p.exists() => return Ok(p.clone()),
        Some(p) => p.clone(),
        None => std::env::temp_dir().join(format!("shopflow-cluster-{}.hosts", std::process::id())),
    };
    anyhow::ensure!(
        whole,
        "the hostfile {} does not exist: a cluster over several hosts needs one listing every process's host:port",
        path.display()
    );
    let text: String = (0..args.processes)
        .map(|i| format!("127.0.0.1:{}\n", usize::from(args.base_port) + i))
        .collect();
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

fn spawn(
    exe: &std::path::Path,
    args: &Args,
    process: usize,
    hostfile: &std::path::Path,
    generation: u64,
    metrics: Option<String>,
) -> std::io::Result<Child> {
    let mut command = Command::new(exe);
    if let Some(listen) = metrics {
        command.env("SHOPFLOW_METRICS_LISTEN", listen);
    }
    command
        .args(&args.command)
        .arg("--processes")
        .arg(args.processes.to_string())
        .arg("--process")
        .arg(process.to_string())
        .arg("--hostfile")
        .arg(hostfile)
        .arg("--generation")
        .arg(generation.to_string());
    command.spawn()
}

/// Waits until every process has exited 0, one has failed (then stops the
/// others), or a stop is requested (then stops all gracefully).
fn watch(
    children: &mut [(usize, Child)],
    shutdown: &Shutdown,
    grace: Duration,
) -> anyhow::Result<Outcome> {
    let mut exited = vec![false; children.len()];
    loop {
        if shutdown.requested() {
            tracing::info!("stopping: every process drains and commits");
            stop_all(children, &mut exited, grace);
            return Ok(Outcome::Stopped);
        }
        for (n, (i, child)) in children.iter_mut().enumerate() {
            if exited[n] {
                continue;
            }
            if let Some(status) = child.try_wait()? {
                exited[n] = true;
                if !status.success() {
                    let failed = Outcome::Failed(*i, status);
                    stop_all(children, &mut exited, grace);
                    return Ok(failed);
                }
            }
        }
        if exited.iter().all(|&e| e) {
            return Ok(Outcome::Done);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGTERM to every process still running; SIGKILL to those still running
/// after `grace`.
fn stop_all(children: &mut [(usize, Child)], exited: &mut [bool], grace: Duration) {
    for (n, (_, child)) in children.iter_mut().enumerate() {
        if !exited[n] {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
    }
    let deadline = Instant::now() + grace;
    loop {
        for (n, (_, child)) in children.iter_mut().enumerate() {
            if !exited[n] && matches!(child.try_wait(), Ok(Some(_))) {
                exited[n] = true;
            }
        }
        if exited.iter().all(|&e| e) {
            return;
        }
        if Instant::now() >= deadline {
            for (n, (i, child)) in children.iter_mut().enumerate() {
                if !exited[n] {
                    tracing::warn!(process = i, "did not stop within the grace period: killed");
                    let _ = child.kill();
                    let _ = child.wait();
                    exited[n] = true;
                }
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sleeps `d`; true if a stop was requested meanwhile.
fn sleep_unless_stopped(d: Duration, shutdown: &Shutdown) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if shutdown.requested() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    shutdown.requested()
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "unknown status".into(),
    }
}
