//! The agent's HTTP endpoint from the tests: a plain HTTP/1.1 client that
//! runs inside a namespace, Debian's Prometheus scraping the agent, and
//! headless Chromium driven over the DevTools protocol.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use crate::{
    Netns, in_netns,
    peers::{Daemon, require_program},
};

/// How long one HTTP exchange may take.
const HTTP_LIMIT: Duration = Duration::from_secs(10);

/// A reply: status code, head (status line and headers) and body.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Reply {
    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// A TCP connection to `addr` made from inside namespace `ns`.
pub fn connect_in(ns: &str, addr: SocketAddr) -> Result<TcpStream> {
    in_netns(ns, move || {
        let stream = TcpStream::connect_timeout(&addr, HTTP_LIMIT)
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_read_timeout(Some(HTTP_LIMIT))?;
        stream.set_write_timeout(Some(HTTP_LIMIT))?;
        Ok(stream)
    })
}

/// Sends `request` (bytes as they go on the wire) to `addr` in `ns` and
/// reads the reply until the server closes.
pub fn exchange(ns: &str, addr: SocketAddr, request: &[u8]) -> Result<Reply> {
    let mut stream = connect_in(ns, addr)?;
    stream.write_all(request)?;
    read_reply(&mut stream).with_context(|| format!("reading the reply from {addr}"))
}

/// One reply: up to its Content-Length, the last chunk, or the close
/// (some servers keep the connection open whatever the request said).
fn read_reply(stream: &mut TcpStream) -> Result<Reply> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    // Where the head ends and what it says of the body, once known.
    let mut framing: Option<(usize, Option<usize>, bool)> = None;
    loop {
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            // A server that resets after its reply (e.g. an unread body).
            Err(e) if !raw.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => 0,
            Err(e) => return Err(e.into()),
        };
        raw.extend_from_slice(&buf[..n]);
        if n == 0 {
            break;
        }
        if framing.is_none()
            && let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n")
        {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            framing = Some((end + 4, length, head.contains("chunked")));
        }
        if let Some((body_at, length, chunked)) = framing
            && (length.is_some_and(|l| raw.len() - body_at >= l)
                || (chunked && raw.ends_with(b"0\r\n\r\n")))
        {
            break;
        }
    }
    parse_reply(&raw)
}

/// `GET path` from `ns`, with an `Accept` header if given.
pub fn get(ns: &str, addr: SocketAddr, path: &str, accept: Option<&str>) -> Result<Reply> {
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n");
    exchange(ns, addr, request.as_bytes()).with_context(|| format!("GET http://{addr}{path}"))
}

fn parse_reply(raw: &[u8]) -> Result<Reply> {
    let text = String::from_utf8_lossy(raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("not an HTTP reply: {text:?}");
    };
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status in {head:?}"))?;
    let mut reply = Reply {
        status,
        head: head.to_string(),
        body: body.to_string(),
    };
    if reply
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        reply.body = dechunk(body)?;
    }
    Ok(reply)
}

fn dechunk(mut body: &str) -> Result<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").context("truncated chunk")?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .with_context(|| format!("bad chunk size {size:?}"))?;
        if size == 0 {
            return Ok(out);
        }
        out.push_str(rest.get(..size).context("truncated chunk")?);
        body = rest.get(size + 2..).context("truncated chunk")?;
    }
}

/// Percent-encodes a query-string value.
pub fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Debian's Prometheus in the server namespace, scraping the agent's
/// `/metrics` every second; stopped by PID on drop.
pub struct Prometheus {
    pub daemon: Daemon,
    /// Its own HTTP API, on the namespace's loopback.
    pub listen: SocketAddr,
    ns: String,
}

impl Prometheus {
    pub fn start(netns: &Netns, target: SocketAddr, listen: SocketAddr) -> Result<Prometheus> {
        let program = require_program("prometheus", "prometheus")?;
        let dir = netns.workdir().join("prometheus");
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: failover\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )?;
        let mut cmd = netns.server_command(&program);
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .arg("--log.level=warn");
        let mut daemon = Daemon::spawn("prometheus", cmd, &dir)?;
        let ns = netns.server.clone();
        daemon
            .wait_ready(|| Ok(get(&ns, listen, "/-/ready", None).is_ok_and(|r| r.status == 200)))?;
        Ok(Prometheus {
            daemon,
            listen,
            ns: netns.server.clone(),
        })
    }

    /// An instant PromQL query: every (labels, value) of the result vector.
    pub fn query(&self, promql: &str) -> Result<Vec<(Value, f64)>> {
        let reply = get(
            &self.ns,
            self.listen,
            &format!("/api/v1/query?query={}", url_encode(promql)),
            None,
        )?;
        let json: Value = serde_json::from_str(&reply.body)
            .with_context(|| format!("Prometheus replied {} {:?}", reply.status, reply.body))?;
        if json["status"] != "success" {
            bail!("query {promql:?}: {json}");
        }
        json["data"]["result"]
            .as_array()
            .context("no result vector")?
            .iter()
            .map(|sample| {
                let value = sample["value"][1]
                    .as_str()
                    .context("no value")?
                    .parse::<f64>()?;
                Ok((sample["metric"].clone(), value))
            })
            .collect()
    }

    /// The one value `promql` gives, if it gives exactly one.
    pub fn value(&self, promql: &str) -> Result<Option<f64>> {
        let result = self.query(promql)?;
        Ok(match result.as_slice() {
            [(_, v)] => Some(*v),
            _ => None,
        })
    }

    /// What Prometheus says of its scrape target: (health, last error).
    pub fn target_health(&self) -> Result<(String, String)> {
        let reply = get(&self.ns, self.listen, "/api/v1/targets", None)?;
        let json: Value = serde_json::from_str(&reply.body)?;
        let target = &json["data"]["activeTargets"][0];
        Ok((
            target["health"].as_str().unwrap_or_default().to_string(),
            target["lastError"].as_str().unwrap_or_default().to_string(),
        ))
    }
}

/// `promtool check metrics` on `text`: its exit success and everything it said.
pub fn promtool_check_metrics(text: &str) -> Result<(bool, String)> {
    let program = require_program("promtool", "prometheus")?;
    let mut child = Command::new(program)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("starting promtool")?;
    child
        .stdin
        .take()
        .context("promtool's stdin")?
        .write_all(text.as_bytes())?;
    let output = child.wait_with_output()?;
    Ok((
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    ))
}

/// Headless Chromium in the server namespace with one tab open on `url`,
/// its DevTools endpoint on the namespace's loopback; stopped by PID on drop.
pub struct Chromium {
    pub daemon: Daemon,
    devtools: SocketAddr,
    ns: String,
}

impl Chromium {
    pub fn start(netns: &Netns, url: &str, devtools_port: u16) -> Result<Chromium> {
        let program = require_program("chromium", "chromium")?;
        let dir = netns.workdir().join("chromium");
        std::fs::create_dir_all(&dir)?;
        let mut cmd = netns.server_command(&program);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1400,900",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg(format!("--remote-debugging-port={devtools_port}"))
        .arg(url);
        let mut daemon = Daemon::spawn("chromium", cmd, &dir)?;
        let devtools = SocketAddr::from(([127, 0, 0, 1], devtools_port));
        let ns = netns.server.clone();
        daemon.wait_ready(|| {
            Ok(get(&ns, devtools, "/json/list", None)
                .is_ok_and(|r| r.status == 200 && r.body.contains("\"page\"")))
        })?;
        Ok(Chromium {
            daemon,
            devtools,
            ns: netns.server.clone(),
        })
    }

    /// A DevTools session on the first tab whose URL starts with `url`.
    pub fn tab(&self, url: &str) -> Result<Tab> {
        let list = get(&self.ns, self.devtools, "/json/list", None)?;
        let targets: Value = serde_json::from_str(&list.body)?;
        let ws = targets
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["type"] == "page" && t["url"].as_str().is_some_and(|u| u.starts_with(url)))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .with_context(|| format!("no tab on {url}: {targets}"))?
            .to_string();
        let stream = connect_in(&self.ns, self.devtools)?;
        let (socket, _) = tungstenite::client(ws.as_str(), stream)
            .map_err(|e| anyhow::anyhow!("DevTools websocket {ws}: {e}"))?;
        Ok(Tab { socket, next: 1 })
    }
}

/// One tab over the DevTools protocol (JSON over a websocket).
pub struct Tab {
    socket: tungstenite::WebSocket<TcpStream>,
    next: u64,
}

impl Tab {
    /// Calls `method` and waits for its result (events in between are skipped).
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        let id = self.next;
        self.next += 1;
        let message = json!({"id": id, "method": method, "params": params}).to_string();
        self.socket
            .send(tungstenite::Message::text(message))
            .with_context(|| format!("sending {method}"))?;
        loop {
            let reply = self
                .socket
                .read()
                .with_context(|| format!("waiting for {method}'s result"))?;
            let tungstenite::Message::Text(text) = reply else {
                continue;
            };
            let value: Value = serde_json::from_str(text.as_str())?;
            if value["id"] != id {
                continue;
            }
            if !value["error"].is_null() {
                bail!("{method}: {}", value["error"]);
            }
            return Ok(value["result"].clone());
        }
    }

    /// Evaluates `expression` in the page and returns its value.
    pub fn eval(&mut self, expression: &str) -> Result<Value> {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        )?;
        if !result["exceptionDetails"].is_null() {
            bail!("{expression}: {}", result["exceptionDetails"]);
        }
        Ok(result["result"]["value"].clone())
    }

    /// A PNG of the tab, written to `path`.
    pub fn screenshot(&mut self, path: &Path) -> Result<PathBuf> {
        use base64::Engine as _;
        let shot = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        )?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().context("no screenshot data")?)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))?;
        Ok(path.to_path_buf())
    }
}
