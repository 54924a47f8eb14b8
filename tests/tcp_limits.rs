//! The TCP connection limits through the real binary: the agent runs in a
//! server namespace with its default `[server]` settings; from the client
//! namespace, one address holds far more idle TCP connections than
//! `tcp_max_connections` and reconnects as fast as they are closed, while
//! another address (another /24) sends DNS queries over TCP, one connection
//! each, as a resolver falling back after a truncated answer does. Asserts
//! that at least 99 % of those queries are answered. Needs root (`cargo
//! xtask test`).

use std::{
    collections::VecDeque,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use failover_tests::{
    AgentConfig, CheckSpec, EndpointSpec, Netns, RecordSpec, ZoneSpec,
    dns::{QueryOptions, build_query},
    in_netns, is_root,
    netns::{CLIENT_ADDR, CLIENT_VETH, DNS_SERVER_ADDR},
};
use hickory_proto::{op::Message, rr::RecordType};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpSocket, TcpStream},
};

const AGENT: &str = env!("CARGO_BIN_EXE_failover-agent-under-test");
const NAME: &str = "www.example.test.";
/// The querying client's address: another /24 than [`CLIENT_ADDR`], on the
/// client veth, routed back by the server namespace.
const QUERIER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
/// At most this many connections the flooder holds at once (the default cap
/// is 256): it keeps every one the agent keeps open.
const HELD: usize = 2_000;
/// At most this many connections opened by the flooder, within [`FLOOD_LIMIT`].
const FLOOD_CONNECTIONS: usize = 100_000;
const FLOOD_LIMIT: Duration = Duration::from_secs(60);
const QUERIES: u16 = 200;
const WAIT: Duration = Duration::from_secs(2);

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("running ip");
    assert!(status.success(), "ip {args:?}: {status}");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn connect_from(source: Ipv4Addr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
    tokio::time::timeout(WAIT, socket.connect(server))
        .await
        .map_err(|_| std::io::ErrorKind::TimedOut)?
}

/// Holds every idle connection from [`CLIENT_ADDR`] the agent keeps open (up
/// to [`HELD`]) and opens new ones as fast as it can, until `stop`, or the
/// count or time bound: the agent's table is always full of them. Returns how many it opened, and whether it was still
/// running when stopped.
fn flood(server: SocketAddr, stop: Arc<AtomicBool>) -> (usize, bool) {
    runtime().block_on(async {
        let deadline = Instant::now() + FLOOD_LIMIT;
        let mut held = VecDeque::new();
        let mut opened = 0;
        while opened < FLOOD_CONNECTIONS
            && Instant::now() < deadline
            && !stop.load(Ordering::Relaxed)
        {
            if let Ok(stream) = connect_from(CLIENT_ADDR, server).await {
                held.push_back(stream);
                opened += 1;
            }
            if opened.is_multiple_of(64) {
                // Forget the connections the agent closed.
                held.retain(|s: &TcpStream| {
                    let mut byte = [0u8; 1];
                    matches!(s.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
                });
            }
            if held.len() > HELD {
                held.pop_front();
            }
        }
        (opened, stop.load(Ordering::Relaxed))
    })
}

/// [`QUERIES`] queries from [`QUERIER`], each on a new connection; how many
/// were answered.
fn query(server: SocketAddr) -> u16 {
    runtime().block_on(async {
        let mut answered = 0;
        for id in 0..QUERIES {
            let asked = async {
                let mut stream = connect_from(QUERIER, server).await.ok()?;
                let wire = build_query(id, NAME, RecordType::A, QueryOptions::default()).ok()?;
                let mut framed = (wire.len() as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(&wire);
                stream.write_all(&framed).await.ok()?;
                let mut len = [0u8; 2];
                stream.read_exact(&mut len).await.ok()?;
                let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
                stream.read_exact(&mut buf).await.ok()?;
                Message::from_vec(&buf).ok()
            };
            if let Ok(Some(m)) = tokio::time::timeout(WAIT, asked).await
                && m.id() == id
                && !m.answers().is_empty()
            {
                answered += 1;
            }
        }
        answered
    })
}

#[test]
fn a_connection_flood_from_one_prefix_does_not_shut_out_another() {
    if !is_root() {
        eprintln!("skipped: needs root (network namespaces)");
        return;
    }
    let mut netns = Netns::new(AGENT).expect("creating the namespaces");
    // The querier's address on the client veth; the server routes it back.
    ip(&[
        "-n",
        &netns.client,
        "addr",
        "add",
        &format!("{QUERIER}/32"),
        "dev",
        CLIENT_VETH,
    ]);
    ip(&[
        "-n",
        &netns.server,
        "route",
        "add",
        &format!("{QUERIER}/32"),
        "via",
        &CLIENT_ADDR.to_string(),
    ]);
    netns
        .start_endpoint((Ipv4Addr::new(192, 0, 2, 10), 80))
        .unwrap();
    let config = AgentConfig::new()
        .zone(
            ZoneSpec::new("example.test.")
                .ttl(30)
                .nameserver("ns1.example.test.", &[IpAddr::V4(DNS_SERVER_ADDR)]),
        )
        .records(vec![
            RecordSpec::new(NAME, "A", "all-healthy", "web")
                .endpoint(EndpointSpec::new(Ipv4Addr::new(192, 0, 2, 10))),
        ])
        .check(
            "web",
            CheckSpec::tcp(80).timing(Duration::from_millis(100), Duration::from_millis(50), 1, 1),
        )
        .to_toml();
    let path = netns.write_config("agent.toml", &config).unwrap();
    netns.start_agent(&path, &[]).unwrap();
    let server = SocketAddr::from((DNS_SERVER_ADDR, 53));
    netns
        .wait_for_server_tcp(server, Duration::from_secs(5))
        .unwrap();
    // Served before the flood (the check has passed).
    let before = Instant::now();
    loop {
        let client = netns.client.clone();
        let ok = in_netns(&client, move || Ok(runtime().block_on(async {
            let asked = async {
                let mut s = connect_from(QUERIER, server).await.ok()?;
                let wire = build_query(1, NAME, RecordType::A, QueryOptions::default()).ok()?;
                let mut framed = (wire.len() as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(&wire);
                s.write_all(&framed).await.ok()?;
                let mut len = [0u8; 2];
                s.read_exact(&mut len).await.ok()?;
                let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
                s.read_exact(&mut buf).await.ok()?;
                Message::from_vec(&buf).ok()
            };
            matches!(tokio::time::timeout(WAIT, asked).await, Ok(Some(m)) if !m.answers().is_empty())
        })))
        .unwrap();
        if ok {
            break;
        }
        assert!(
            before.elapsed() < Duration::from_secs(10),
            "never answered before the flood"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let flooder = std::thread::spawn({
        let client = netns.client.clone();
        let stop = stop.clone();
        move || in_netns(&client, move || Ok(flood(server, stop))).unwrap()
    });
    // The flood fills the table first.
    std::thread::sleep(Duration::from_secs(1));
    let client = netns.client.clone();
    let answered = in_netns(&client, move || Ok(query(server))).unwrap();
    stop.store(true, Ordering::Relaxed);
    let (opened, throughout) = flooder.join().unwrap();
    eprintln!("flood: {opened} connections opened; {answered}/{QUERIES} TCP queries answered");
    let log = netns.agent_log();
    assert!(opened > 1_000, "the flood ran: {opened} connections");
    assert!(throughout, "the flood lasted as long as the queries");
    assert!(
        u32::from(answered) * 100 >= u32::from(QUERIES) * 99,
        "{answered}/{QUERIES} answered; agent log:\n{log}"
    );
    assert!(netns.agent_running().unwrap(), "the agent still runs");
    netns.stop_agent().unwrap();
}
