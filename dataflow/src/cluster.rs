//! The shape of a timely cluster, and how its processes find each other.
//!
//! One process with `W` worker threads, or `N` processes of `W` workers each
//! exchanging data over TCP (timely's `-n/-p/-h/-w`). Timely's own
//! connection set-up retries forever and lets any process that dials in
//! join; here every connection starts with a handshake (the cluster's size,
//! the dialling process's index and the cluster *generation*) and the whole
//! set-up has a deadline. So a stale process of an earlier generation never
//! joins a new one, and a wrong hostfile or an unreachable peer ends the
//! start with a message that names the peer, instead of waiting forever.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use timely::communication::allocator::zero_copy::initialize::initialize_networking_from_sockets;
use timely::communication::allocator::{AllocatorBuilder, ProcessBuilder};
use timely::communication::initialize::{Hooks, WorkerGuards};
use timely::worker::Worker;

/// The first port of a cluster without a hostfile: process `i` listens on
/// `127.0.0.1:2101+i`, as timely does.
pub const BASE_PORT: u16 = 2101;

/// Bytes that open every handshake: "shopflow cluster, version 1".
const MAGIC: [u8; 8] = *b"SHFLCL01";

/// One stream per process, in process order (`None` for this one).
type Sockets = Vec<Option<TcpStream>>;

/// The shape of a run: how many processes, which one this is, how many
/// workers each, and where every process listens.
#[derive(Clone, Debug)]
pub struct Cluster {
    /// Worker threads per process.
    pub workers: usize,
    /// This process's index, `0..processes`.
    pub process: usize,
    /// `host:port` of every process, in process order (one entry: no network).
    pub addresses: Vec<String>,
    /// Processes of one generation connect only to each other; a supervisor
    /// raises it on every restart.
    pub generation: u64,
    /// How long the processes may take to connect to each other.
    pub connect_timeout: Duration,
    /// Sockets made by [`Cluster::connect`] ahead of [`Cluster::execute`].
    connected: Option<Arc<Mutex<Option<Sockets>>>>,
}

impl From<usize> for Cluster {
    /// One process with `workers` threads.
    fn from(workers: usize) -> Cluster {
        Cluster::single(workers)
    }
}

impl Cluster {
    /// One process with `workers` threads.
    pub fn single(workers: usize) -> Cluster {
        Cluster {
            workers: workers.max(1),
            process: 0,
            addresses: vec![format!("127.0.0.1:{BASE_PORT}")],
            generation: 0,
            connect_timeout: Duration::from_secs(60),
            connected: None,
        }
    }

    /// `processes` processes of `workers` threads, this one `process`; the
    /// peers' addresses from `hostfile` (the first `processes` lines of
    /// `host:port`, blank lines and `#` comments skipped) or, without one,
    /// `127.0.0.1:2101+i`.
    pub fn new(
        workers: usize,
        processes: usize,
        process: usize,
        hostfile: Option<&Path>,
    ) -> Result<Cluster, String> {
        if processes == 0 {
            return Err("--processes must be at least 1".into());
        }
        if process >= processes {
            return Err(format!(
                "--process {process} is out of range: with --processes {processes} it must be 0 to {}",
                processes - 1
            ));
        }
        let addresses = match hostfile {
            Some(path) => read_hostfile(path, processes)?,
            None => (0..processes)
                .map(|i| format!("127.0.0.1:{}", usize::from(BASE_PORT) + i))
                .collect(),
        };
        Ok(Cluster {
            workers: workers.max(1),
            process,
            addresses,
            ..Cluster::single(workers)
        })
    }

    /// The same cluster as another generation (not yet connected).
    pub fn generation(&self, generation: u64) -> Cluster {
        Cluster {
            generation,
            connected: None,
            ..self.clone()
        }
    }

    /// Number of processes.
    pub fn processes(&self) -> usize {
        self.addresses.len()
    }

    /// Number of workers in the whole cluster.
    pub fn peers(&self) -> usize {
        self.processes() * self.workers
    }

    /// Whether this process is the one that writes results (process 0).
    pub fn is_leader(&self) -> bool {
        self.process == 0
    }

    /// Connects to every other process now (within the deadline), for a
    /// later [`Cluster::execute`]; returns process 0's `token`, which every
    /// process learns in the handshake (`run` shares process 0's run start
    /// this way). A single process returns its own.
    pub fn connect(&mut self, token: u64) -> Result<u64, String> {
        if self.processes() == 1 {
            return Ok(token);
        }
        let (sockets, token) = self.sockets(token)?;
        self.connected = Some(Arc::new(Mutex::new(Some(sockets))));
        Ok(token)
    }

    /// Starts this process's workers running `func`, after connecting to
    /// every other process of the cluster (within the deadline), unless
    /// [`Cluster::connect`] did already.
    pub fn execute<T, F>(&self, func: F) -> Result<WorkerGuards<T>, String>
    where
        T: Send + 'static,
        F: Fn(&mut Worker) -> T + Send + Sync + 'static,
    {
        if self.processes() == 1 {
            return timely::execute(timely::Config::process(self.workers), func);
        }
        exit_when_a_peer_is_lost();
        let ready = self
            .connected
            .as_ref()
            .and_then(|c| c.lock().expect("sockets").take());
        let sockets = match ready {
            Some(sockets) => sockets,
            None => self.sockets(0)?.0,
        };
        let hooks = Hooks::default();
        let local = ProcessBuilder::new_typed_vector(
            self.workers,
            hooks.refill.clone(),
            hooks.spill.clone(),
        );
        let (builders, guard) =
            initialize_networking_from_sockets(local, sockets, self.process, self.workers, hooks)
                .map_err(|e| format!("cannot start the cluster's network threads: {e}"))?;
        tracing::info!(
            process = self.process,
            processes = self.processes(),
            workers = self.workers,
            generation = self.generation,
            "cluster connected"
        );
        timely::execute::execute_from(
            builders.into_iter().map(AllocatorBuilder::Tcp).collect(),
            Box::new(guard),
            timely::WorkerConfig::default(),
            func,
        )
    }

    /// One socket per other process, in process order (`None` for this one),
    /// and process 0's token: this process dials every lower index (process
    /// 0 first, which answers with its token) and accepts every higher one.
    fn sockets(&self, token: u64) -> Result<(Vec<Option<TcpStream>>, u64), String> {
        let me = self.process;
        let deadline = Instant::now() + self.connect_timeout;
        let own = &self.addresses[me];
        let listener = TcpListener::bind(own).map_err(|e| {
            format!(
                "process {me} cannot listen on {own} (line {} of the hostfile): {e}; check that this host is that line's host and that the port is free",
                me + 1
            )
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("cannot configure the listener on {own}: {e}"))?;
        let mut sockets: Vec<Option<TcpStream>> = (0..self.processes()).map(|_| None).collect();
        let mut token = token;
        for (peer, socket) in sockets.iter_mut().enumerate().take(me) {
            let (stream, theirs) = self.dial(peer, deadline)?;
            *socket = Some(stream);
            token = theirs;
        }
        while let Some(missing) = (me + 1..self.processes()).find(|&p| sockets[p].is_none()) {
            if Instant::now() >= deadline {
                return Err(self.not_connected(missing));
            }
            match listener.accept() {
                Ok((stream, from)) => match self.admit(stream, token) {
                    Ok((peer, stream)) if sockets[peer].is_none() => sockets[peer] = Some(stream),
                    Ok((peer, _)) => {
                        tracing::warn!(%from, peer, "a second connection from the same process; refused")
                    }
                    Err(why) => tracing::warn!(%from, %why, "refused a connection"),
                },
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => return Err(format!("accepting cluster connections on {own}: {e}")),
            }
        }
        Ok((sockets, token))
    }

    /// Dials process `peer` until it answers the handshake (with its token)
    /// or the deadline passes.
    fn dial(&self, peer: usize, deadline: Instant) -> Result<(TcpStream, u64), String> {
        let address = &self.addresses[peer];
        let mut last = String::from("no attempt");
        while Instant::now() < deadline {
            let resolved = address
                .to_socket_addrs()
                .map_err(|e| format!("cannot resolve {address}: {e}"));
            let attempt = resolved.and_then(|mut addrs| {
                let addr = addrs
                    .next()
                    .ok_or_else(|| format!("{address} resolves to nothing"))?;
                let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
                    .map_err(|e| e.to_string())?;
                stream.set_nodelay(true).map_err(|e| e.to_string())?;
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .map_err(|e| e.to_string())?;
                stream
                    .write_all(&self.hello(self.process))
                    .map_err(|e| e.to_string())?;
                let mut answer = [0u8; 9];
                stream
                    .read_exact(&mut answer[..1])
                    .map_err(|e| format!("no answer to the handshake: {e}"))?;
                match answer[0] {
                    1 => {
                        stream
                            .read_exact(&mut answer[1..])
                            .map_err(|e| format!("an incomplete answer to the handshake: {e}"))?;
                        stream.set_read_timeout(None).map_err(|e| e.to_string())?;
                        let token = u64::from_le_bytes(answer[1..].try_into().expect("8 bytes"));
                        Ok((stream, token))
                    }
                    _ => Err("it refused the handshake (another cluster size or generation: a stale process?)".into()),
                }
            });
            match attempt {
                Ok(stream) => return Ok(stream),
                Err(why) => last = why,
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(format!(
            "{}; the last attempt said: {last}",
            self.not_connected(peer)
        ))
    }

    /// Reads a dialling peer's handshake and answers it: the peer's index if
    /// it belongs to this cluster and generation.
    fn admit(&self, mut stream: TcpStream, token: u64) -> Result<(usize, TcpStream), String> {
        stream
            .set_nonblocking(false)
            .and_then(|_| stream.set_nodelay(true))
            .and_then(|_| stream.set_read_timeout(Some(Duration::from_secs(5))))
            .map_err(|e| e.to_string())?;
        let mut hello = [0u8; 32];
        stream
            .read_exact(&mut hello)
            .map_err(|e| format!("incomplete handshake: {e}"))?;
        let peer = u64::from_le_bytes(hello[24..32].try_into().expect("8 bytes")) as usize;
        let valid = peer > self.process && peer < self.processes() && hello == self.hello(peer);
        if !valid {
            let _ = stream.write_all(&[0]);
            return Err(format!(
                "handshake from a process of another cluster or generation (this is generation {} of {} processes)",
                self.generation,
                self.processes()
            ));
        }
        let mut answer = [1u8; 9];
        answer[1..].copy_from_slice(&token.to_le_bytes());
        stream.write_all(&answer).map_err(|e| e.to_string())?;
        stream.set_read_timeout(None).map_err(|e| e.to_string())?;
        Ok((peer, stream))
    }

    /// The handshake process `from` sends: magic, cluster size, generation, index.
    fn hello(&self, from: usize) -> [u8; 32] {
        let mut out = [0u8; 32];
        out[..8].copy_from_slice(&MAGIC);
        out[8..16].copy_from_slice(&(self.processes() as u64).to_le_bytes());
        out[16..24].copy_from_slice(&self.generation.to_le_bytes());
        out[24..32].copy_from_slice(&(from as u64).to_le_bytes());
        out
    }

    fn not_connected(&self, peer: usize) -> String {
        format!(
            "process {} of {} could not connect to process {peer} at {} within {} s: check that process {peer} is running with --process {peer}, the same --processes and hostfile (line {} is its address), and that {} is reachable from this host",
            self.process,
            self.processes(),
            self.addresses[peer],
            self.connect_timeout.as_secs(),
            peer + 1,
            self.addresses[peer]
        )
    }
}

/// Makes the process exit (status 75) when a network thread of the cluster
/// fails: a timely cluster cannot go on without one of its processes, and
/// its workers would otherwise wait forever. A supervisor then restarts the
/// whole cluster, which recovers from the lake and the warehouse.
fn exit_when_a_peer_is_lost() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let network = std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("timely:send") || n.starts_with("timely:recv"));
            if network {
                tracing::error!(%info, "lost the connection to another process of the cluster: exiting so that the whole cluster restarts (docs/cluster.md)");
                std::process::exit(EXIT_PEER_LOST);
            }
            previous(info);
        }));
    });
}

/// The exit status of a process that lost a peer.
pub const EXIT_PEER_LOST: i32 = 75;

/// The first `processes` addresses of a hostfile.
fn read_hostfile(path: &Path, processes: usize) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the hostfile {}: {e}", path.display()))?;
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    if lines.len() < processes {
        return Err(format!(
            "the hostfile {} lists {} address(es) but --processes is {processes}: add one host:port line per process, in process order",
            path.display(),
            lines.len()
        ));
    }
    for (i, line) in lines.iter().take(processes).enumerate() {
        let port = line.rsplit_once(':').map(|(_, p)| p.parse::<u16>());
        if !matches!(port, Some(Ok(_))) {
            return Err(format!(
                "line {} of the hostfile {} is {line:?}: expected host:port (process {i}'s address)",
                i + 1,
                path.display()
            ));
        }
    }
    Ok(lines.into_iter().take(processes).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostfiles_are_checked_line_by_line() {
        let dir = std::env::temp_dir().join(format!("shopflow-hostfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("hosts");
        std::fs::write(
            &file,
            "# the cluster\nnode-a:2101\n\nnode-b:2101\nnode-c:2101\n",
        )
        .unwrap();
        let c = Cluster::new(2, 2, 1, Some(&file)).unwrap();
        assert_eq!(c.addresses, ["node-a:2101", "node-b:2101"]);
        assert_eq!((c.peers(), c.is_leader()), (4, false));
        let err = Cluster::new(1, 4, 0, Some(&file)).unwrap_err();
        assert!(
            err.contains("lists 3 address(es) but --processes is 4"),
            "{err}"
        );
        std::fs::write(&file, "node-a\n").unwrap();
        let err = Cluster::new(1, 1, 0, Some(&file)).unwrap_err();
        assert!(err.contains("expected host:port"), "{err}");
        assert!(
            Cluster::new(1, 2, 2, None)
                .unwrap_err()
                .contains("out of range")
        );
        assert_eq!(
            Cluster::new(1, 2, 0, None).unwrap().addresses,
            ["127.0.0.1:2101", "127.0.0.1:2102"]
        );
    }

    #[test]
    fn handshakes_name_the_generation() {
        let a = Cluster::new(1, 2, 0, None).unwrap();
        let b = Cluster {
            generation: 1,
            ..a.clone()
        };
        assert_ne!(a.hello(1), b.hello(1));
        assert_eq!(a.hello(1)[24..], 1u64.to_le_bytes());
    }
}
