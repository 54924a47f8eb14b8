//! Agent configurations for the tests, rendered in the agent's TOML format.

use std::{fmt::Write as _, net::Ipv4Addr, time::Duration};

/// One endpoint of the record.
#[derive(Clone, Copy, Debug)]
pub struct EndpointSpec {
    pub address: Ipv4Addr,
    pub priority: u32,
}

/// One zone, one A record, one TCP check: what the e2e tests and the failover
/// benchmark run.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub zone: String,
    pub record: String,
    pub ttl: u32,
    /// `"failover"` or `"all-healthy"`.
    pub policy: String,
    pub endpoints: Vec<EndpointSpec>,
    pub port: u16,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
}

impl AgentConfig {
    /// `www.example.test.` with a failover policy over `endpoints` on `port`.
    pub fn failover(endpoints: &[(Ipv4Addr, u32)], port: u16) -> Self {
        Self {
            zone: "example.test.".into(),
            record: "www.example.test.".into(),
            ttl: 30,
            policy: "failover".into(),
            endpoints: endpoints
                .iter()
                .map(|&(address, priority)| EndpointSpec { address, priority })
                .collect(),
            port,
            interval: Duration::from_millis(300),
            timeout: Duration::from_millis(200),
            rise: 2,
            fall: 3,
        }
    }

    pub fn to_toml(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "[[zone]]\norigin = \"{}\"\nttl = {}\n",
            self.zone, self.ttl
        );
        let _ = writeln!(
            s,
            "[[record]]\nname = \"{}\"\ntype = \"A\"\npolicy = \"{}\"\ncheck = \"probe\"\nendpoints = [",
            self.record, self.policy
        );
        for e in &self.endpoints {
            let _ = writeln!(
                s,
                "  {{ address = \"{}\", priority = {} }},",
                e.address, e.priority
            );
        }
        let _ = writeln!(
            s,
            "]\n\n[checks.probe]\nkind = \"tcp\"\nport = {}\ninterval = \"{}ms\"\n\
             timeout = \"{}ms\"\nrise = {}\nfall = {}",
            self.port,
            self.interval.as_millis(),
            self.timeout.as_millis(),
            self.rise,
            self.fall
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_agent_format() {
        let mut config = AgentConfig::failover(
            &[
                (Ipv4Addr::new(192, 0, 2, 10), 1),
                (Ipv4Addr::new(192, 0, 2, 11), 2),
            ],
            80,
        );
        config.interval = Duration::from_millis(400);
        let toml = config.to_toml();
        assert!(toml.contains("origin = \"example.test.\"\nttl = 30"));
        assert!(toml.contains("{ address = \"192.0.2.11\", priority = 2 },"));
        assert!(toml.contains("interval = \"400ms\"\ntimeout = \"200ms\"\nrise = 2\nfall = 3"));

        // What the agent makes of it is what the tests assume.
        let parsed = failover_agent::config::Config::parse(&toml, "rendered").unwrap();
        let record = &parsed.records[0];
        assert_eq!(record.name, "www.example.test.");
        assert_eq!(record.ttl, 30);
        assert_eq!(record.endpoints.len(), 2);
        assert_eq!(record.endpoints[1].address, Ipv4Addr::new(192, 0, 2, 11));
        assert_eq!(record.endpoints[1].priority, 2);
        assert_eq!(record.check.interval, Duration::from_millis(400));
        assert_eq!(record.check.timeout, Duration::from_millis(200));
        assert_eq!((record.check.rise, record.check.fall), (2, 3));
    }
}
