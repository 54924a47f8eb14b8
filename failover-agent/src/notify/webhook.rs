//! `kind = "webhook"`: each event POSTed as JSON, one at a time in order,
//! with retries and exponential backoff. hyper's pooled client over rustls
//! with ring (no OpenSSL), so a burst reuses one connection.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::Request;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue, USER_AGENT};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use log::{debug, warn};
use rustls::{ClientConfig, RootCertStore};

use super::Delivery;
use super::queue::{HookCounters, Queue};
use crate::config::notify::{MAX_BACKOFF, Webhook};

/// How much of a response body is read (then the connection is reused).
const RESPONSE_LIMIT: usize = 64 * 1024;

/// Sends one event: the client, the request's fixed parts, the retry policy.
pub(super) struct Sender {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    url: hyper::Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
    retries: u32,
    backoff: Duration,
}

impl Sender {
    pub(super) fn new(settings: &Webhook, timeout: Duration) -> Result<Sender> {
        let url: hyper::Uri = settings.url.parse().context("the url")?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        match &settings.ca_file {
            Some((_, certs)) => {
                roots.add_parsable_certificates(certs.iter().cloned());
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let tls = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS setup")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(1)
            .build(connector);
        let mut headers = vec![(
            USER_AGENT,
            HeaderValue::from_static(concat!("failover-agent/", env!("CARGO_PKG_VERSION"))),
        )];
        for (name, value) in &settings.headers {
            headers.push((
                HeaderName::from_bytes(name.as_bytes()).context("a header name")?,
                HeaderValue::from_str(value).context("a header value")?,
            ));
        }
        Ok(Sender {
            client,
            url,
            headers,
            timeout,
            retries: settings.retries,
            backoff: settings.backoff,
        })
    }

    /// One POST of `json`: Ok on a 2xx response, else why not.
    async fn attempt(&self, json: &str) -> Result<(), String> {
        let mut request = Request::post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::copy_from_slice(json.as_bytes())))
            .map_err(|e| e.to_string())?;
        for (name, value) in &self.headers {
            request.headers_mut().insert(name.clone(), value.clone());
        }
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| error_chain(&e))?;
            let status = response.status();
            // Read (a bounded part of) the body so the connection is reused.
            let _ = Limited::new(response.into_body(), RESPONSE_LIMIT)
                .collect()
                .await;
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("HTTP {}", status.as_u16()))
            }
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "no response within {}",
                humantime::format_duration(self.timeout)
            )),
        }
    }

    /// The wait before retry `n` (1-based): backoff, doubled each time,
    /// at most [`MAX_BACKOFF`].
    fn wait_before(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n - 1).unwrap_or(u32::MAX);
        self.backoff.saturating_mul(factor).min(MAX_BACKOFF)
    }
}

/// Delivers the queue's events until the hook is closed.
pub(super) async fn deliver(
    sender: Sender,
    label: String,
    queue: Arc<Queue>,
    counters: Arc<HookCounters>,
) {
    while let Some(delivery) = queue.pop().await {
        send(&sender, &label, &delivery, &queue, &counters).await;
    }
}

async fn send(
    sender: &Sender,
    label: &str,
    delivery: &Delivery,
    queue: &Queue,
    counters: &HookCounters,
) {
    let kind = delivery.event.kind();
    let mut last = String::new();
    for attempt in 0..=sender.retries {
        if attempt > 0 {
            let wait = sender.wait_before(attempt);
            debug!(
                "notify {label}: {kind} event: attempt {attempt} failed ({last}); retrying in {}",
                humantime::format_duration(wait)
            );
            tokio::time::sleep(wait).await;
            if queue.is_closed() {
                // Replaced by a reload: its new settings may be the fix.
                counters.failed.fetch_add(1, Ordering::Relaxed);
                warn!(
                    "notify {label}: {kind} event not delivered ({last}); the hook was removed by a reload"
                );
                return;
            }
            counters.retried.fetch_add(1, Ordering::Relaxed);
        }
        match sender.attempt(&delivery.json).await {
            Ok(()) => {
                counters.delivered.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(e) => last = e,
        }
    }
    counters.failed.fetch_add(1, Ordering::Relaxed);
    warn!(
        "notify {label}: {kind} event not delivered after {} attempts: {last}",
        sender.retries + 1
    );
}

/// An error and its causes ("client error (Connect): tcp connect error:
/// Connection refused"): hyper's own message alone says little.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
