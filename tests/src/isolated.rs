//! Providers on runtimes of their own, so a test can kill one: its runtime is dropped with
//! every task on it (calls in the middle of running, connections, the accept loop), without
//! unregistering or draining — what a killed process leaves behind, within one test process.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rpc_core::bootstrap::ProviderBuilder;

/// The longest a provider thread lives if its test forgets to kill it.
const MAX_LIFETIME: Duration = Duration::from_secs(300);

/// A provider running on its own runtime thread; see the [module docs](self).
pub struct IsolatedProvider {
    port: u16,
    kill: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl IsolatedProvider {
    /// Starts the provider `build` makes on a new two-thread runtime; returns once it serves.
    pub fn start(build: impl FnOnce() -> ProviderBuilder + Send + 'static) -> IsolatedProvider {
        let (port_tx, port_rx) = mpsc::channel();
        let (kill_tx, kill_rx) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("provider runtime");
            let running = rt.block_on(build().start()).expect("provider starts");
            let _ = port_tx.send(running.port().expect("port"));
            let _ = kill_rx.recv_timeout(MAX_LIFETIME);
            // A kill: no unregistering, no drain. The registration stays behind, as a killed
            // process's does until its session or lease runs out.
            std::mem::forget(running);
            drop(rt);
        });
        let port = port_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("provider started within 30 s");
        IsolatedProvider {
            port,
            kill: Some(kill_tx),
            thread: Some(thread),
        }
    }

    /// The port it serves on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills it: every task of its runtime is dropped where it stands; returns when done.
    pub fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(k) = self.kill.take() {
            let _ = k.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for IsolatedProvider {
    fn drop(&mut self) {
        self.stop();
    }
}
