//! The processes a scenario starts: provider processes (this binary in its `provider` role)
//! and, for the ZooKeeper scenarios, a ZooKeeper server of its own. Every one is bound to
//! 127.0.0.1, tracked by PID, and stopped by the harness (its stdin closing stops a provider
//! too, so nothing outlives the harness).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A failure of the harness itself (not a measured outcome).
pub(crate) type Fallible<T> = Result<T, String>;

/// A provider process.
pub(crate) struct ProviderProc {
    /// Its name (`p1`, ...).
    pub(crate) name: String,
    /// The child process.
    pub(crate) child: Child,
    /// The port it serves on.
    pub(crate) port: u16,
    /// Its journal of executed charges.
    pub(crate) journal: PathBuf,
}

impl ProviderProc {
    /// Starts `rpc-chaos provider` registered in `registry`, with extra URL `params`.
    pub(crate) fn start(
        name: &str,
        registry: &str,
        work: &Path,
        params: &[(&str, String)],
    ) -> Fallible<Self> {
        let journal = work.join(format!("journal-{name}.txt"));
        let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
        let mut cmd = Command::new(exe);
        cmd.args(["provider", "--registry", registry, "--name", name])
            .arg("--journal")
            .arg(&journal);
        for (k, v) in params {
            cmd.arg("--param").arg(format!("{k}={v}"));
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start provider {name}: {e}"))?;
        let stdout = child.stdout.take().ok_or("provider has no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| format!("provider {name}: {e}"))?;
        let port = line
            .trim()
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("provider {name} did not start: {line:?}"))?;
        Ok(ProviderProc {
            name: name.to_string(),
            child,
            port,
            journal,
        })
    }

    /// SIGKILL: no unregistration, no drain; calls in flight are cut.
    pub(crate) fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits (bounded) for the graceful shutdown to finish.
    pub(crate) fn terminate(&mut self, within: Duration) -> Fallible<()> {
        signal(self.child.id(), "TERM")?;
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill9();
        Err(format!(
            "{} did not stop within {within:?} of SIGTERM",
            self.name
        ))
    }

    /// Whether the process is still running.
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Resident memory in KiB, from `/proc`.
    pub(crate) fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.child.id())
    }
}

impl Drop for ProviderProc {
    fn drop(&mut self) {
        // Closing stdin asks for a graceful stop; a kill makes sure.
        drop(self.child.stdin.take());
        if matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
            self.kill9();
        }
    }
}

/// Sends `SIG{name}` to `pid` with the system's `kill` command.
pub(crate) fn signal(pid: u32, name: &str) -> Fallible<()> {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .map_err(|e| format!("kill -{name} {pid}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("kill -{name} {pid} failed"))
    }
}

/// Resident memory of process `pid` in KiB.
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A free port on 127.0.0.1 (bound and released).
pub(crate) fn free_port() -> Fallible<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";

/// A ZooKeeper server of the harness's own, stoppable and restartable on the same port and
/// data (to take the registry away under load).
pub(crate) struct Zookeeper {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Zookeeper {
    /// Whether a ZooKeeper server can be started here (Debian's `zookeeper` package and a
    /// Java runtime).
    pub(crate) fn available() -> bool {
        Path::new(ZOOKEEPER_JAR).exists()
            && Command::new("java")
                .arg("-version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    }

    /// Starts one on a free port with its data under `work`.
    pub(crate) fn start(work: &Path) -> Fallible<Self> {
        let dir = work.join("zookeeper");
        std::fs::create_dir_all(dir.join("data")).map_err(|e| format!("zookeeper dir: {e}"))?;
        let port = free_port()?;
        let conf = format!(
            "tickTime=500\nminSessionTimeout=1000\nmaxSessionTimeout=60000\ndataDir={}\n\
             clientPort={port}\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n\
             4lw.commands.whitelist=ruok\n",
            dir.join("data").display()
        );
        std::fs::write(dir.join("zoo.cfg"), conf).map_err(|e| format!("zoo.cfg: {e}"))?;
        let mut zk = Zookeeper {
            dir,
            port,
            child: None,
        };
        zk.resume()?;
        Ok(zk)
    }

    /// `host:port` of the server.
    pub(crate) fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the server (SIGKILL): the registry is gone.
    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port and data; returns once it answers.
    pub(crate) fn resume(&mut self) -> Fallible<()> {
        let log =
            std::fs::File::create(self.dir.join("log")).map_err(|e| format!("zk log: {e}"))?;
        let child = Command::new("java")
            .args(["-Xmx256m", "-cp"])
            .arg(format!("{}:{ZOOKEEPER_JAR}", self.dir.display()))
            .arg("-Dzookeeper.admin.enableServer=false")
            .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
            .arg(self.dir.join("zoo.cfg"))
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start ZooKeeper: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if ruok(self.port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "ZooKeeper did not answer on {} within 30 s",
            self.address()
        ))
    }
}

impl Drop for Zookeeper {
    fn drop(&mut self) {
        self.stop();
    }
}

fn ruok(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let mut reply = [0u8; 4];
    s.write_all(b"ruok").is_ok() && s.read_exact(&mut reply).is_ok() && &reply == b"imok"
}
