//! A webhook receiver for the notify tests: a small HTTP/1.1 server on
//! tokio, on loopback (or inside a test's namespace), plain or over TLS,
//! that records every request body in arrival order and answers 503 to the
//! first N requests, 200 after; or never answers at all (a dead receiver
//! that accepts).

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context as _, Result};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _};
use tokio::io::{
    AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, BufReader,
};
use tokio_rustls::TlsAcceptor;

use crate::{certs::SelfSigned, in_netns};

/// What the receiver does with a request.
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// 503 to the first `n` requests, 200 to the others.
    FailFirst(usize),
    /// Reads the request and never answers (holds the connection).
    Hang,
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Received {
    /// Lowercased header names and their values.
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The status it was answered with (none: never answered).
    pub status: Option<u16>,
}

pub struct WebhookReceiver {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WebhookReceiver {
    /// On 127.0.0.1, any free port.
    pub fn start(behaviour: Behaviour) -> Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding")?;
        Self::serve(listener, behaviour, None)
    }

    /// On 127.0.0.1, over TLS with `cert` (made for 127.0.0.1).
    pub fn start_tls(behaviour: Behaviour, cert: &SelfSigned) -> Result<Self> {
        let chain = CertificateDer::pem_file_iter(&cert.cert)
            .context("reading the certificate")?
            .collect::<Result<Vec<_>, _>>()
            .context("parsing the certificate")?;
        let key = PrivateKeyDer::from_pem_file(&cert.key).context("reading the key")?;
        let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding")?;
        Self::serve(
            listener,
            behaviour,
            Some(TlsAcceptor::from(Arc::new(config))),
        )
    }

    /// On 127.0.0.1 of the network namespace `ns`, any free port.
    pub fn start_in_netns(ns: &str, behaviour: Behaviour) -> Result<Self> {
        let listener = in_netns(ns, || {
            std::net::TcpListener::bind("127.0.0.1:0").context("binding in the namespace")
        })?;
        Self::serve(listener, behaviour, None)
    }

    fn serve(
        listener: std::net::TcpListener,
        behaviour: Behaviour,
        tls: Option<TlsAcceptor>,
    ) -> Result<Self> {
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let log = received.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                let accept = async {
                    while let Ok((stream, _)) = listener.accept().await {
                        let (log, tls) = (log.clone(), tls.clone());
                        tokio::spawn(async move {
                            match tls {
                                Some(tls) => {
                                    // A failed handshake is the client's
                                    // refusal: nothing is recorded.
                                    if let Ok(stream) = tls.accept(stream).await {
                                        connection(stream, behaviour, log).await;
                                    }
                                }
                                None => connection(stream, behaviour, log).await,
                            }
                        });
                    }
                };
                tokio::select! {
                    () = accept => {}
                    _ = stopped => {}
                }
            });
            // Dropping the runtime closes every connection still open.
        });
        Ok(WebhookReceiver {
            addr,
            received,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/PATH`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The bodies answered 200, parsed, in order.
    pub fn accepted(&self) -> Vec<serde_json::Value> {
        self.received()
            .iter()
            .filter(|r| r.status == Some(200))
            .map(|r| serde_json::from_str(&r.body).expect("a JSON body"))
            .collect()
    }

    /// Waits until `enough` holds for the requests received (bounded).
    pub fn wait_for(
        &self,
        limit: Duration,
        enough: impl Fn(&[Received]) -> bool,
    ) -> Result<Vec<Received>> {
        let found = crate::poll_until(limit, Duration::from_millis(20), || {
            let received = self.received();
            Ok(enough(&received).then_some(received))
        })?;
        found.with_context(|| {
            format!(
                "the receiver did not get what was expected within {limit:?}; it got:\n{:#?}",
                self.received()
            )
        })
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves one connection: requests one after another (keep-alive).
async fn connection(
    stream: impl AsyncRead + AsyncWrite,
    behaviour: Behaviour,
    log: Arc<Mutex<Vec<Received>>>,
) {
    let (read, mut write) = tokio::io::split(stream);
    let mut read = BufReader::new(read);
    loop {
        let mut headers = Vec::new();
        let mut line = String::new();
        // The request line, then headers up to the empty line.
        match read.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        loop {
            line.clear();
            match read.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let text = line.trim_end();
            if text.is_empty() {
                break;
            }
            if let Some((name, value)) = text.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
            }
        }
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; length.min(1 << 20)];
        if read.read_exact(&mut body).await.is_err() {
            return;
        }
        let body = String::from_utf8_lossy(&body).into_owned();
        let status = {
            let mut log = log.lock().unwrap();
            let status = match behaviour {
                Behaviour::FailFirst(n) if log.len() < n => Some(503),
                Behaviour::FailFirst(_) => Some(200),
                Behaviour::Hang => None,
            };
            log.push(Received {
                headers,
                body,
                status,
            });
            status
        };
        let Some(status) = status else {
            // Hold the connection, silent, until the receiver stops.
            std::future::pending::<()>().await;
            return;
        };
        let reason = if status == 200 {
            "OK"
        } else {
            "Service Unavailable"
        };
        let response = format!("HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\n\r\n");
        if write.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}
