//! Graceful shutdown: SIGINT (Ctrl-C) and SIGTERM set one flag that long-running
//! work polls, so files are flushed and summaries written before exit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A flag raised by SIGINT or SIGTERM.
#[derive(Clone, Default)]
pub struct Shutdown(Arc<AtomicBool>);

impl Shutdown {
    /// True once a signal has arrived.
    pub fn requested(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Raises the flag (as a signal would).
    pub fn request(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Waits for SIGINT or SIGTERM on the current tokio runtime, then raises the flag.
    pub async fn wait_for_signal(self) {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = ctrl_c => {},
                        _ = term.recv() => {},
                    }
                }
                Err(_) => {
                    let _ = ctrl_c.await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested; finishing up");
        self.request();
    }

    /// Starts a background thread that raises the flag on a signal.
    pub fn install() -> anyhow::Result<Shutdown> {
        let flag = Shutdown::default();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let waiter = flag.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || runtime.block_on(waiter.wait_for_signal()))?;
        Ok(flag)
    }
}
