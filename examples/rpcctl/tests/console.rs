//! The web console in a real browser: three provider processes and a consumer on the embedded
//! registry, `rpcctl console` in front of them, and headless Chromium driven over its
//! DevTools protocol. The page must list the service and its three providers, show non-zero
//! calls/s, answer a test call, take a provider offline so the consumer stops calling it,
//! refuse bad input with a message, and write and remove rules. Screenshots are saved under
//! `target/console-screenshots/`.
//!
//! This file has its own `main` (no test harness) because the same binary also runs the
//! provider processes: started with `CONSOLE_TEST_ROLE=provider`, it serves a Greeter until
//! its standard input closes.
//!
//! Without Chromium (`/usr/bin/chromium`, or `RPC_TEST_CHROMIUM`) the test says so and
//! passes; the test script installs it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rpc_core::bootstrap::{Consumer, Provider};
use rpc_core::config::keys;
use rpc_examples::{GreeterClient, GreeterServer, SignedGreeter};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "console-test-token-1234";
/// The whole test ends within this, whatever happens.
const BUDGET: Duration = Duration::from_secs(180);

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    if std::env::var("CONSOLE_TEST_ROLE").as_deref() == Ok("provider") {
        return provider_process();
    }
    // `cargo test -- --list` and filters: this file has one test, named `console`.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("console: test");
        return ExitCode::SUCCESS;
    }
    if let Some(filter) = args.iter().find(|a| !a.starts_with('-')) {
        if !"console".contains(filter.as_str()) {
            return ExitCode::SUCCESS;
        }
    }
    let chromium =
        std::env::var("RPC_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        eprintln!(
            "console: SKIPPED: no Chromium at {chromium} (scripts/install-deps.sh installs it)"
        );
        return ExitCode::SUCCESS;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    match rt.block_on(async { tokio::time::timeout(BUDGET, run(&chromium)).await }) {
        Ok(Ok(())) => {
            println!("console ... ok");
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("console ... FAILED: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("console ... FAILED: not done within {BUDGET:?}");
            ExitCode::FAILURE
        }
    }
}

/// A provider process: a Greeter answering "... from $CONSOLE_TEST_NAME" until standard
/// input closes (the test ended or died) or ten minutes pass.
fn provider_process() -> ExitCode {
    let registry = std::env::var("CONSOLE_TEST_REGISTRY").expect("CONSOLE_TEST_REGISTRY");
    let name = std::env::var("CONSOLE_TEST_NAME").expect("CONSOLE_TEST_NAME");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let running = Provider::builder()
            .without_env()
            .application("console-demo")
            .registry(&registry)
            .expect("registry")
            .host("127.0.0.1")
            .protocol("dubbo", 0)
            .param(keys::SHUTDOWN_WAIT, 0)
            .expect("key")
            .service(GreeterServer::new(SignedGreeter { name }))
            .start()
            .await
            .expect("provider");
        println!("port {}", running.port().expect("port"));
        let stdin_closed = tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        });
        let _ = tokio::time::timeout(Duration::from_secs(600), stdin_closed).await;
        running.shutdown().await;
    });
    ExitCode::SUCCESS
}

/// Child processes, killed (by PID) when the test ends however it ends.
#[derive(Default)]
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Reads lines of `from` until one starts with `prefix`; the rest of the line.
fn wait_line(from: impl Read + Send + 'static, prefix: &'static str) -> Result<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(from)
            .lines()
            .map_while(std::result::Result::ok)
        {
            if !sent {
                if let Some(rest) = line.split_once(prefix).map(|(_, r)| r.to_string()) {
                    let _ = tx.send(rest);
                    sent = true;
                }
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .map_err(|_| format!("no line with {prefix:?} within 60 s"))
}

fn screenshots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(|p| p.join("console-screenshots"))
        .unwrap_or_else(|| PathBuf::from("console-screenshots"));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// Which provider answered the consumer's calls, with when.
type Answers = Arc<Mutex<Vec<(Instant, String)>>>;

async fn run(chromium: &str) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("rpc-console-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let registry = format!(
        "local://{}?poll=50&lease=1500&cache.file={}",
        dir.display(),
        dir.join("cache.json").display()
    );
    let _ = std::fs::remove_dir_all(screenshots_dir());
    let mut children = Children::default();

    // Three provider processes.
    let mut providers = HashMap::new();
    for name in ["p1", "p2", "p3"] {
        let mut child = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
            .env("CONSOLE_TEST_ROLE", "provider")
            .env("CONSOLE_TEST_REGISTRY", &registry)
            .env("CONSOLE_TEST_NAME", name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start provider {name}: {e}"))?;
        let out = child.stdout.take().ok_or("no stdout")?;
        children.0.push(child);
        let port = wait_line(out, "port ")?;
        providers.insert(name, format!("127.0.0.1:{}", port.trim()));
    }

    // A consumer calling all the time.
    let client: GreeterClient = Consumer::builder()
        .without_env()
        .application("console-consumer")
        .registry(&registry)
        .map_err(|e| e.to_string())?
        .build()
        .await
        .map_err(|e| e.to_string())?
        .reference()
        .await
        .map_err(|e| e.to_string())?;
    let answers: Answers = Default::default();
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let load = {
        let (answers, failures) = (answers.clone(), failures.clone());
        tokio::spawn(async move {
            let end = Instant::now() + BUDGET;
            while Instant::now() < end {
                match client.greet("ann".into()).await {
                    Ok(Ok(text)) => {
                        let who = text.rsplit(' ').next().unwrap_or("").to_string();
                        answers.lock().expect("answers").push((Instant::now(), who));
                    }
                    Ok(Err(e)) => failures.lock().expect("failures").push(format!("{e:?}")),
                    Err(e) => failures.lock().expect("failures").push(e.to_string()),
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    // The console.
    let mut console = Command::new(env!("CARGO_BIN_EXE_rpcctl"))
        .args([
            "--registry",
            &registry,
            "console",
            "--listen",
            "127.0.0.1:0",
        ])
        .env("RPC_CONSOLE_TOKEN", TOKEN)
        .env_remove("RPC_REGISTRY")
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the console: {e}"))?;
    let out = console.stdout.take().ok_or("no stdout")?;
    children.0.push(console);
    let line = wait_line(out, "console listening on ")?;
    let base = line
        .split_whitespace()
        .next()
        .ok_or("no address")?
        .trim_end_matches('/')
        .to_string();
    let console_addr = base.trim_start_matches("http://").to_string();

    // What the console refuses without a browser: a foreign Host, a write without the token.
    let (status, _) = http(&console_addr, "GET /api/info", "evil.example:80", "").await?;
    check(status == 421, format!("a foreign Host got {status}"))?;
    let (status, body) = http(
        &console_addr,
        "POST /api/weight",
        &console_addr,
        r#"{"interface":"org.example.Greeter","address":"127.0.0.1:1","weight":0}"#,
    )
    .await?;
    check(
        status == 403 && body.contains("admin token"),
        format!("a write without the token got {status} {body}"),
    )?;
    let big = format!(r#"{{"interface":"{}"}}"#, "x".repeat(20_000));
    let (status, _) = http(&console_addr, "POST /api/override", &console_addr, &big).await?;
    check(status == 413, format!("an oversized body got {status}"))?;

    // The browser.
    let profile = dir.join("chromium-profile");
    let mut browser = Command::new(chromium)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--window-size=1600,1200",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {chromium}: {e}"))?;
    let err = browser.stderr.take().ok_or("no stderr")?;
    children.0.push(browser);
    let ws = wait_line(err, "DevTools listening on ")?;
    let mut page = Page::open(ws.trim(), &format!("{base}/")).await?;
    let shots = screenshots_dir();

    // The service and its three providers.
    page.wait(
        "the service, its version and its three providers",
        "document.querySelector('#services li')?.textContent.includes('org.example.Greeter') \
         && document.querySelector('#services li .keys')?.textContent === '1.0.0' \
         && document.querySelectorAll('#providers tbody tr.online').length === 3",
    )
    .await?;
    for addr in providers.values() {
        let listed: bool = page
            .eval(&format!(
                "!!document.querySelector('#providers tr[data-address=\"{addr}\"]')"
            ))
            .await?
            .as_bool()
            .unwrap_or(false);
        check(listed, format!("provider {addr} is not listed"))?;
    }
    page.wait(
        "the consumer",
        "[...document.querySelectorAll('#consumers td')].some(td => td.textContent === 'console-consumer')",
    )
    .await?;
    page.wait(
        "the methods",
        "document.getElementById('methods').textContent.includes('greet(name: String)')",
    )
    .await?;

    // Live metrics: non-zero calls/s in the table and a drawn line.
    page.wait(
        "non-zero calls/s for every provider",
        "[...document.querySelectorAll('#providers tbody tr.online .rate')]\
            .every(td => Number(td.textContent) > 0)",
    )
    .await?;
    page.wait(
        "charts with lines",
        "document.querySelectorAll('#charts .chart').length === 3 && \
         [...document.querySelectorAll('#charts polyline.line-rate')]\
            .every(l => l.getAttribute('points').split(' ').length >= 2)",
    )
    .await?;
    page.screenshot(&shots.join("1-fleet.png")).await?;

    // A test call without the token is refused with a message; with it, answered.
    page.eval(
        "document.getElementById('call-args').value = '[\"ann\"]'; \
         document.getElementById('call-method').value = 'greet'; \
         document.getElementById('call-go').click(); true",
    )
    .await?;
    page.wait(
        "the refusal of a call without the token",
        "document.getElementById('message').textContent.includes('admin token')",
    )
    .await?;
    page.eval(
        "document.getElementById('token').value = 'not-the-token'; \
         document.getElementById('call-go').click(); true",
    )
    .await?;
    page.wait(
        "the refusal of a wrong token",
        "document.getElementById('message').textContent.includes('the admin token is wrong')",
    )
    .await?;
    page.eval(&format!(
        "document.getElementById('token').value = '{TOKEN}'; \
         document.getElementById('call-go').click(); true"
    ))
    .await?;
    page.wait(
        "the test call's answer",
        "/hello ann, from p[123]/.test(document.getElementById('call-result').textContent)",
    )
    .await?;
    // Bad input gets a message on the page.
    page.eval(
        "document.getElementById('call-args').value = '{\"not\": \"an array\"}'; \
         document.getElementById('call-go').click(); true",
    )
    .await?;
    page.wait(
        "the message about arguments that are not an array",
        "document.getElementById('message').textContent.includes('must be a JSON array')",
    )
    .await?;
    page.eval(
        "document.getElementById('call-args').value = '[\"ann\"]'; \
         document.getElementById('call-method').replaceChildren(new Option('nosuch', 'nosuch')); \
         document.getElementById('call-go').click(); true",
    )
    .await?;
    page.wait(
        "the provider's answer to an unknown method",
        "document.getElementById('call-result').textContent.includes('failed') && \
         document.getElementById('call-result').textContent.includes('nosuch')",
    )
    .await?;
    page.screenshot(&shots.join("2-test-call.png")).await?;

    // Offline: p1 leaves the registry, and the consumer stops calling it.
    let p1 = providers["p1"].clone();
    page.eval(&format!(
        "document.querySelector('#providers tr[data-address=\"{p1}\"] button.offline').click(); true"
    ))
    .await?;
    page.wait(
        "p1 shown offline",
        &format!(
            "document.querySelector('#providers tr[data-address=\"{p1}\"] td.state')?.textContent === 'offline'"
        ),
    )
    .await?;
    let gone = Instant::now();
    // The consumer's directory follows the registry within its poll; then no call goes to p1.
    stops_calling(&answers, "p1", gone).await?;
    page.screenshot(&shots.join("3-offline.png")).await?;
    // The console's test calls are not consumers of the service: only the test's is listed.
    let consumers = page
        .eval("[...document.querySelectorAll('#consumers tbody tr')].map(r => r.textContent)")
        .await?;
    check(
        consumers.as_array().map(Vec::len) == Some(1),
        format!("consumers listed: {consumers}"),
    )?;
    page.eval(&format!(
        "document.querySelector('#providers tr[data-address=\"{p1}\"] button.online').click(); true"
    ))
    .await?;
    page.wait(
        "p1 back online",
        &format!(
            "document.querySelector('#providers tr[data-address=\"{p1}\"] td.state')?.textContent === 'online'"
        ),
    )
    .await?;
    let back = Instant::now();
    calls_again(&answers, "p1", back).await?;

    // A weight of 0 for p2 through the page: listed as a rule, then removed.
    let p2 = providers["p2"].clone();
    page.eval(&format!(
        "const row = document.querySelector('#providers tr[data-address=\"{p2}\"]'); \
         row.querySelector('input.weight').value = 'heavy'; row.querySelector('button.set-weight').click(); true"
    ))
    .await?;
    page.wait(
        "the message about a weight that is not a number",
        "document.getElementById('message').textContent.includes('whole number')",
    )
    .await?;
    page.eval(&format!(
        "const row2 = document.querySelector('#providers tr[data-address=\"{p2}\"]'); \
         row2.querySelector('input.weight').value = '0'; row2.querySelector('button.set-weight').click(); true"
    ))
    .await?;
    page.wait(
        "the weight rule in force",
        "[...document.querySelectorAll('#rules li')].some(li => li.textContent.includes('weight=0'))",
    )
    .await?;
    let drained = Instant::now();
    stops_calling(&answers, "p2", drained).await?;

    // A timeout override and a condition rule through the forms; a malformed rule refused.
    page.eval(
        "document.getElementById('override-timeout').value = 'soon'; \
         document.querySelector('#override-form button').click(); true",
    )
    .await?;
    page.wait(
        "the message about a timeout that is not a number",
        "document.getElementById('message').textContent.includes('milliseconds')",
    )
    .await?;
    page.eval(
        "document.getElementById('override-timeout').value = '2500'; \
         document.querySelector('#override-form button').click(); true",
    )
    .await?;
    page.wait(
        "the timeout override in force",
        "[...document.querySelectorAll('#rules li')].some(li => li.textContent.includes('timeout=2500'))",
    )
    .await?;
    page.eval(
        "document.getElementById('route-rule').value = 'host = => =>'; \
         document.querySelector('#route-form button').click(); true",
    )
    .await?;
    page.wait(
        "the refusal of a malformed condition rule",
        "document.getElementById('message').className === 'error' && \
         document.getElementById('message').textContent.length > 0 && \
         ![...document.querySelectorAll('#rules li')].some(li => li.textContent.includes('host = => =>'))",
    )
    .await?;
    page.eval(
        "document.getElementById('route-rule').value = 'method = greet => host = 127.0.0.1'; \
         document.querySelector('#route-form button').click(); true",
    )
    .await?;
    page.wait(
        "the condition rule in force",
        "[...document.querySelectorAll('#rules li')].some(li => li.textContent.includes('host = 127.0.0.1'))",
    )
    .await?;
    page.screenshot(&shots.join("4-rules.png")).await?;

    // Every rule removed through its button: nothing is left in force.
    for _ in 0..3 {
        page.eval("document.querySelector('#rules button.remove-rule')?.click(); true")
            .await?;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    page.wait(
        "no rule left",
        "document.querySelectorAll('#rules button.remove-rule').length === 0",
    )
    .await?;
    let restored = Instant::now();
    calls_again(&answers, "p2", restored).await?;

    load.abort();
    let failures = failures.lock().expect("failures").clone();
    check(
        failures.is_empty(),
        format!(
            "{} calls failed, first: {:?}",
            failures.len(),
            failures.first()
        ),
    )?;
    println!(
        "console: {} calls, screenshots in {}",
        answers.lock().expect("answers").len(),
        shots.display()
    );
    drop(children);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn check(ok: bool, what: String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(what)
    }
}

/// Waits until the consumer's calls stop reaching provider `who` after a change made at
/// `since` (its directory follows the registry within its poll; a window of at least 50
/// answers from 1.5 s after the change must hold none from `who`).
async fn stops_calling(answers: &Answers, who: &str, since: Instant) -> Result<()> {
    let from = since + Duration::from_millis(1500);
    wait_until(
        &format!("the consumer to stop calling {who}"),
        Duration::from_secs(10),
        || {
            let a = answers.lock().expect("answers");
            let window: Vec<&String> = a
                .iter()
                .filter(|(t, _)| *t > from)
                .map(|(_, w)| w)
                .collect();
            window.len() >= 50 && !window.iter().any(|w| *w == who)
        },
    )
    .await
}

/// Waits until provider `who` answers a consumer call again after `since`.
async fn calls_again(answers: &Answers, who: &str, since: Instant) -> Result<()> {
    wait_until(
        &format!("the consumer to call {who} again"),
        Duration::from_secs(10),
        || {
            answers
                .lock()
                .expect("answers")
                .iter()
                .any(|(t, w)| *t > since && w == who)
        },
    )
    .await
}

async fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) -> Result<()> {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if done() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("waited {within:?} for {what}"))
}

/// One HTTP/1.1 request on a new connection: (status, body).
async fn http(addr: &str, request_line: &str, host: &str, body: &str) -> Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to the console: {e}"))?;
    let text = format!(
        "{request_line} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(text.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {answer:?}"))?;
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((status, body))
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A page of the browser, driven over the DevTools protocol (the four commands this test
/// needs: open a target, attach to it, evaluate script, take a screenshot).
struct Page {
    socket: Socket,
    session: String,
    next_id: u64,
}

impl Page {
    async fn open(browser_ws: &str, url: &str) -> Result<Page> {
        let (socket, _) = tokio_tungstenite::connect_async(browser_ws)
            .await
            .map_err(|e| format!("cannot reach the browser at {browser_ws}: {e}"))?;
        let mut page = Page {
            socket,
            session: String::new(),
            next_id: 0,
        };
        let target = page
            .command("Target.createTarget", json!({ "url": url }), false)
            .await?;
        let id = target["targetId"]
            .as_str()
            .ok_or("no targetId")?
            .to_string();
        let attached = page
            .command(
                "Target.attachToTarget",
                json!({ "targetId": id, "flatten": true }),
                false,
            )
            .await?;
        page.session = attached["sessionId"]
            .as_str()
            .ok_or("no sessionId")?
            .to_string();
        Ok(page)
    }

    async fn command(&mut self, method: &str, params: Value, in_page: bool) -> Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if in_page {
            message["sessionId"] = json!(self.session);
        }
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .map_err(|e| format!("{method}: {e}"))?;
        loop {
            let next = tokio::time::timeout(Duration::from_secs(30), self.socket.next())
                .await
                .map_err(|_| format!("{method}: no answer within 30 s"))?;
            let Some(Ok(Message::Text(text))) = next else {
                match next {
                    Some(Ok(_)) => continue,
                    other => return Err(format!("{method}: the browser went away: {other:?}")),
                }
            };
            let answer: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            if answer["id"].as_u64() != Some(id) {
                continue; // an event
            }
            if let Some(err) = answer.get("error") {
                return Err(format!("{method}: {err}"));
            }
            return Ok(answer["result"].clone());
        }
    }

    /// Evaluates `expression` in the page; its value.
    async fn eval(&mut self, expression: &str) -> Result<Value> {
        let r = self
            .command(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
                true,
            )
            .await?;
        if let Some(e) = r.get("exceptionDetails") {
            return Err(format!("script failed: {expression}: {e}"));
        }
        Ok(r["result"]["value"].clone())
    }

    /// Waits up to 20 s for `condition` to be true in the page.
    async fn wait(&mut self, what: &str, condition: &str) -> Result<()> {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if self.eval(&format!("!!({condition})")).await?.as_bool() == Some(true) {
                return Ok(());
            }
            if Instant::now() > end {
                let message = self
                    .eval("document.getElementById('message')?.textContent")
                    .await
                    .unwrap_or_default();
                let _ = self.screenshot(&screenshots_dir().join("failed.png")).await;
                return Err(format!(
                    "the page did not show {what} within 20 s (message line: {message})"
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn screenshot(&mut self, path: &Path) -> Result<()> {
        use base64::Engine as _;
        let shot = self
            .command("Page.captureScreenshot", json!({ "format": "png" }), true)
            .await?;
        let data = shot["data"].as_str().ok_or("no screenshot data")?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| e.to_string())?;
        std::fs::write(path, png).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}
