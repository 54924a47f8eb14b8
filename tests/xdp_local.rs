//! The kernel answers only queries for this host's DNS service, from a real
//! client over the veth: hand-made frames for a hot name that the stack
//! would drop (another destination address or MAC, a bad or missing UDP
//! checksum, the server's own address as source) get no answer from XDP,
//! while the same query addressed right does. Needs root
//! (`cargo xtask test`).

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddrV4},
    time::Duration,
};

use failover_tests::{
    AgentConfig, CheckSpec, Netns,
    dig::{UDP, dig_until},
    is_root,
    netns::{DNS_SERVER_ADDR, ENDPOINT_ADDRS},
    packets::{self, Query, UdpChecksum},
};

const AGENT: &str = env!("CARGO_BIN_EXE_failover-agent-under-test");
const WWW: &str = "www.example.test.";

/// What XDP sends back for `query` (a reply addressed to the client), if
/// anything, within half a second.
fn exchange(netns: &Netns, query: &Query) -> Option<Vec<u8>> {
    netns
        .client_raw_exchange(query.frame(), Duration::from_millis(500), |f| {
            f.len() >= 12 && f[0..6] == packets::CLIENT_MAC && f[12..14] != [0x08, 0x06]
        })
        .expect("raw exchange")
}

#[test]
fn xdp_answers_only_queries_for_this_hosts_dns_service() {
    assert!(
        is_root(),
        "needs root (namespaces, veth, XDP): run `cargo xtask test`"
    );
    let mut netns = Netns::new(AGENT).expect("creating the namespaces");
    let endpoint = ENDPOINT_ADDRS[0];
    netns
        .start_endpoint(SocketAddrV4::new(endpoint, 80))
        .expect("starting the endpoint");
    let config = AgentConfig::failover(30, &[(endpoint, 1)], CheckSpec::tcp(80));
    let path = netns.write_config("agent.toml", &config.to_toml()).unwrap();
    netns.start_agent(&path, &[]).expect("starting the agent");
    dig_until(&netns, WWW, &[UDP], "with its endpoint", |d| {
        d.addrs() == [endpoint]
    });

    let right = Query::a(WWW);
    let reply = exchange(&netns, &right).expect("an answer to a query addressed right");
    let answer = packets::check_answer(&right, &reply).expect("a good answer");
    assert_eq!(answer.addrs, [IpAddr::V4(endpoint)]);

    let mut foreign_ip = Query::a(WWW);
    foreign_ip.dst_ip = Some(Ipv4Addr::new(203, 0, 113, 99).into());
    let mut foreign_mac = Query::a(WWW);
    foreign_mac.dst_mac = Some([0x02, 0, 0, 0, 0x99, 0x99]);
    let bad_checksum = Query::a(WWW).with_udp_checksum(UdpChecksum::Value(0x1234));
    let zero_v6 = Query::a(WWW).v6().with_udp_checksum(UdpChecksum::Zero);
    let mut own_source = Query::a(WWW);
    own_source.src_ip = Some(DNS_SERVER_ADDR.into());
    for (what, query) in [
        ("another destination address", &foreign_ip),
        ("another destination MAC", &foreign_mac),
        ("a bad UDP checksum", &bad_checksum),
        ("an IPv6 zero checksum", &zero_v6),
        ("the server's own address as source", &own_source),
    ] {
        assert_eq!(exchange(&netns, query), None, "{what}: answered");
    }

    netns.stop_agent().expect("stopping the agent");
    let counters = netns.kernel_counters();
    assert!(counters["pass_not_for_us"] >= 2, "{counters:?}");
    assert!(counters["pass_bad_checksum"] >= 2, "{counters:?}");
}
