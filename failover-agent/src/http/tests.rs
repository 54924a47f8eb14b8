//! The endpoint over real sockets: routes, readiness, bad input.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::*;
use crate::control::{EndpointReport, RecordStatus};

struct Running {
    addr: SocketAddr,
    progress: watch::Sender<Progress>,
    phase: watch::Sender<Phase>,
    _status: watch::Sender<Arc<StatusReport>>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn start() -> Running {
    start_with(StatusReport {
        answering: true,
        generated_at: 1.0,
        records: vec![RecordStatus {
            name: "www.example.test.".into(),
            rtype: "A".into(),
            endpoints: vec![EndpointReport {
                address: "192.0.2.10".into(),
                health: "healthy".into(),
                state: "healthy".into(),
                ..EndpointReport::default()
            }],
            ..RecordStatus::default()
        }],
        ..StatusReport::default()
    })
}

fn start_with(status: StatusReport) -> Running {
    let (status_tx, status_rx) = watch::channel(Arc::new(status));
    let (progress, progress_rx) = watch::channel(Progress::default());
    let (phase, phase_rx) = watch::channel(Phase::Starting);
    let listener = bind("127.0.0.1:0".parse().unwrap(), false)
        .unwrap()
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Served {
        metrics: Metrics::new(Sources {
            status: status_rx.clone(),
            kernel: None,
            server: None,
            hooks: None,
        }),
        status: status_rx,
        progress: progress_rx,
        phase: phase_rx,
    };
    let task = tokio::spawn(serve(listener, served));
    Running {
        addr,
        progress,
        phase,
        _status: status_tx,
        task,
    }
}

/// Sends `request` as is and reads until the server closes: (status, whole response).
async fn exchange(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut out))
        .await
        .expect("the server answers and closes")
        .ok();
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_and_readiness() {
    let server = start();
    let addr = server.addr;
    assert_eq!(get(addr, "/healthz").await.0, 200);
    // Not ready before the first round of checks, ready after, not while leaving.
    let (code, body) = get(addr, "/readyz").await;
    assert_eq!(code, 503);
    assert!(body.contains("first round of health checks"), "{body}");
    server.progress.send_modify(|p| p.answering = true);
    assert_eq!(get(addr, "/readyz").await.0, 200);
    server.phase.send_replace(Phase::HandingOver);
    let (code, body) = get(addr, "/readyz").await;
    assert_eq!(code, 503);
    assert!(body.contains("handing over"), "{body}");
    server.phase.send_replace(Phase::Stopping);
    assert!(get(addr, "/readyz").await.1.contains("shutting down"));
    assert_eq!(get(addr, "/healthz").await.0, 200, "alive while leaving");

    let (code, body) = get(addr, "/api/v1/status").await;
    assert_eq!(code, 200);
    assert!(body.contains("application/json"), "{body}");
    let json = body.split("\r\n\r\n").nth(1).unwrap();
    let report: StatusReport = serde_json::from_str(json).unwrap();
    assert_eq!(report.records[0].endpoints[0].address, "192.0.2.10");

    let (code, body) = get(addr, "/").await;
    assert_eq!(code, 200);
    assert!(
        body.contains("/api/v1/status") && body.contains("<script>"),
        "{body}"
    );
    assert!(
        !body.contains("http://") && !body.contains("https://"),
        "nothing from outside"
    );

    let (code, body) = get(addr, "/metrics").await;
    assert_eq!(code, 200);
    assert!(body.contains("text/plain; version=0.0.4"), "{body}");
    assert!(body.contains("failover_endpoint_up{"), "{body}");
    let (code, body) = exchange(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: application/openmetrics-text; version=1.0.0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(code, 200);
    assert!(body.contains("application/openmetrics-text"), "{body}");
    assert!(body.ends_with("# EOF\n"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused() {
    let server = start();
    let addr = server.addr;
    let (code, body) = get(addr, "/nope").await;
    assert_eq!(code, 404);
    assert!(body.contains("/metrics"), "says what is served: {body}");
    assert_eq!(get(addr, "/metrics/extra").await.0, 404);
    for method in ["POST", "PUT", "DELETE"] {
        let (code, body) = exchange(
            addr,
            format!("{method} /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await;
        assert_eq!(code, 405, "{method}: {body}");
        assert!(body.to_ascii_lowercase().contains("allow: get"), "{body}");
    }
    // A head over the limit: 431, and the connection closes.
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(MAX_HEAD_BYTES * 2)
    );
    assert_eq!(exchange(addr, huge.as_bytes()).await.0, 431);
    // A body over the limit: 413 without reading it.
    let (code, _) = exchange(
        addr,
        format!(
            "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            MAX_BODY_BYTES * 100
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(code, 413);
    // Garbage: 400.
    assert_eq!(
        exchange(addr, b"\x16\x03\x01 nonsense\r\n\r\n").await.0,
        400
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_do_not_hold_up_others() {
    let server = start();
    let addr = server.addr;
    // Slowloris: a head that never ends, on every slot.
    let mut slow = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(stream);
    }
    // They are closed after the header timeout (408 or a plain close)...
    let started = Instant::now();
    let mut buf = [0u8; 512];
    let first = &mut slow[0];
    let closed = tokio::time::timeout(HEADER_TIMEOUT * 3, async {
        loop {
            match first.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "a slow client was never cut off");
    assert!(started.elapsed() >= HEADER_TIMEOUT - Duration::from_millis(500));
    // ... and a normal request is served once they are.
    let (code, _) = tokio::time::timeout(HEADER_TIMEOUT * 2, get(addr, "/healthz"))
        .await
        .expect("served after the slow clients were cut off");
    assert_eq!(code, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_of_ten_thousand_endpoints_is_whole() {
    let records = ten_thousand_endpoints();
    let server = start_with(StatusReport {
        records,
        ..StatusReport::default()
    });
    for _ in 0..3 {
        let started = Instant::now();
        let (code, body) = get(server.addr, "/metrics").await;
        eprintln!(
            "scrape of 10,000 endpoints: {} bytes in {:?}",
            body.len(),
            started.elapsed()
        );
        assert_eq!(code, 200);
        let ups = body
            .lines()
            .filter(|l| l.starts_with("failover_endpoint_up{") && l.ends_with(" 1"))
            .count();
        assert_eq!(ups, 10_000);
    }
}

/// 625 records of 16 healthy endpoints each: the size the scrape is
/// measured at.
pub(super) fn ten_thousand_endpoints() -> Vec<RecordStatus> {
    (0..625)
        .map(|r| RecordStatus {
            name: format!("r{r}.bench.test."),
            rtype: "A".into(),
            addresses: vec!["127.1.0.1".into(); 16],
            endpoints: (0..16)
                .map(|e| EndpointReport {
                    address: format!("127.1.{}.{}", r % 256, e + 1),
                    health: "healthy".into(),
                    state: "healthy".into(),
                    ..EndpointReport::default()
                })
                .collect(),
            ..RecordStatus::default()
        })
        .collect()
}
