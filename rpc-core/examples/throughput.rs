//! Throughput of the `dubbo` protocol on loopback, next to a raw tokio echo.
//!
//! Starts a provider and a consumer in one process (one shared connection), then for
//! concurrency 1 and 64 and payloads of 16 B and 4 KiB calls `echo(String) -> String` for a
//! fixed time and prints calls/s, p50 and p99. The raw baseline does the same round trips as
//! length-prefixed echoes on plain tokio TCP, one connection per worker.
//!
//! ```text
//! cargo run --release -p rpc-core --example throughput -- [seconds per case, default 5]
//! ```

use std::sync::Arc;
use std::time::Duration;

use rpc_core::config::keys;
use rpc_core::protocol::Protocol;
use rpc_core::{extension, Invocation, Invoker, Response, Result, ServiceKey, Url, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

struct Echo(Url);

#[async_trait::async_trait]
impl Invoker for Echo {
    fn url(&self) -> &Url {
        &self.0
    }
    async fn invoke(&self, mut inv: Invocation) -> Result<Response> {
        let (s,): (String,) = inv.take_args().decode()?;
        Ok(Response::value(Value::typed(s)))
    }
}

struct Stats {
    calls: usize,
    p50: Duration,
    p99: Duration,
    secs: f64,
}

fn stats(mut lat: Vec<Duration>, secs: f64) -> Stats {
    lat.sort_unstable();
    let at = |q: f64| {
        lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Stats {
        calls: lat.len(),
        p50: at(0.50),
        p99: at(0.99),
        secs,
    }
}

async fn run_rpc(inv: Arc<dyn Invoker>, conc: usize, size: usize, dur: Duration) -> Stats {
    let payload = "x".repeat(size);
    let start = Instant::now();
    let end = start + dur;
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let inv = inv.clone();
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(1 << 16);
            let key = ServiceKey::new("bench.Echo", None, None);
            while Instant::now() < end {
                let t = Instant::now();
                let inv_ = Invocation::new(key.clone(), "echo", Value::typed((payload.clone(),)));
                let r: String = inv
                    .invoke(inv_)
                    .await
                    .expect("call")
                    .into_value()
                    .expect("string");
                assert_eq!(r.len(), payload.len());
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("worker"));
    }
    stats(all, start.elapsed().as_secs_f64())
}

async fn raw_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            s.set_nodelay(true).expect("nodelay");
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let mut len = [0u8; 4];
                    if s.read_exact(&mut len).await.is_err() {
                        return;
                    }
                    buf.resize(u32::from_be_bytes(len) as usize, 0);
                    if s.read_exact(&mut buf).await.is_err() {
                        return;
                    }
                    let mut out = Vec::with_capacity(4 + buf.len());
                    out.extend_from_slice(&len);
                    out.extend_from_slice(&buf);
                    if s.write_all(&out).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

async fn run_raw(port: u16, conc: usize, size: usize, dur: Duration) -> Stats {
    let start = Instant::now();
    let end = start + dur;
    let mut tasks = Vec::new();
    for _ in 0..conc {
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect");
            s.set_nodelay(true).expect("nodelay");
            let mut msg = (size as u32).to_be_bytes().to_vec();
            msg.extend(std::iter::repeat_n(b'x', size));
            let mut back = vec![0u8; msg.len()];
            let mut lat = Vec::with_capacity(1 << 16);
            while Instant::now() < end {
                let t = Instant::now();
                s.write_all(&msg).await.expect("write");
                s.read_exact(&mut back).await.expect("read");
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("worker"));
    }
    stats(all, start.elapsed().as_secs_f64())
}

fn row(name: &str, conc: usize, size: usize, s: &Stats) {
    println!(
        "| {name:<5} | {conc:>4} | {size:>5} B | {:>10.0} | {:>8.1} µs | {:>8.1} µs |",
        s.calls as f64 / s.secs,
        s.p50.as_secs_f64() * 1e6,
        s.p99.as_secs_f64() * 1e6
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let dur = Duration::from_secs(secs);
    let dubbo = extension::get::<dyn Protocol>("dubbo").expect("dubbo");
    let url = Url::parse("dubbo://127.0.0.1:0/bench.Echo").expect("url");
    let exp = dubbo
        .export(url.clone(), Arc::new(Echo(url.clone())))
        .await
        .expect("export");
    let inv = dubbo
        .refer(exp.url().with_param(keys::TIMEOUT, 10_000))
        .await
        .expect("refer");
    let raw = raw_server().await;
    // Warm up connections and allocators.
    run_rpc(inv.clone(), 8, 16, Duration::from_millis(300)).await;

    println!("| kind  | conc | payload |    calls/s |        p50 |        p99 |");
    println!("|-------|------|---------|------------|------------|------------|");
    for conc in [1, 64] {
        for size in [16, 4096] {
            row(
                "rpc",
                conc,
                size,
                &run_rpc(inv.clone(), conc, size, dur).await,
            );
            row("raw", conc, size, &run_raw(raw, conc, size, dur).await);
        }
    }
    exp.unexport().await;
}
