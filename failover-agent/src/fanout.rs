//! One sink feeding two: the kernel map and the userspace answer table get
//! every call, each on its own. One failing does not keep the call from the
//! other; the call as a whole then fails (naming the sink) so the agent
//! retries it, and writing the same thing again is harmless for a sink that
//! took it the first time (every call replaces).

use anyhow::{Result, anyhow};
use std::net::IpAddr;

use crate::sink::{AnswerSink, ZoneSoa};

pub struct FanOut<A, B> {
    pub first: A,
    pub second: B,
    /// For error messages, e.g. `["kernel map", "userspace table"]`.
    pub names: [&'static str; 2],
}

impl<A: AnswerSink, B: AnswerSink> FanOut<A, B> {
    pub fn new(first: A, second: B, names: [&'static str; 2]) -> Self {
        FanOut {
            first,
            second,
            names,
        }
    }

    fn both(&mut self, mut call: impl FnMut(&mut dyn AnswerSink) -> Result<()>) -> Result<()> {
        let first = call(&mut self.first);
        let second = call(&mut self.second);
        match (first, second) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(e), Ok(())) => Err(e.context(self.names[0])),
            (Ok(()), Err(e)) => Err(e.context(self.names[1])),
            (Err(a), Err(b)) => Err(anyhow!(
                "{}: {a:#}; {}: {b:#}",
                self.names[0],
                self.names[1]
            )),
        }
    }
}

impl<A: AnswerSink, B: AnswerSink> AnswerSink for FanOut<A, B> {
    fn set_zone(&mut self, zone: u32, soa: &ZoneSoa) -> Result<()> {
        self.both(|sink| sink.set_zone(zone, soa))
    }

    fn publish(
        &mut self,
        name: &str,
        rtype: u16,
        zone: u32,
        ttl: u32,
        addrs: &[IpAddr],
    ) -> Result<()> {
        self.both(|sink| sink.publish(name, rtype, zone, ttl, addrs))
    }

    fn publish_weighted(
        &mut self,
        name: &str,
        rtype: u16,
        zone: u32,
        ttl: u32,
        weighted: &[(IpAddr, u32)],
    ) -> Result<()> {
        self.both(|sink| sink.publish_weighted(name, rtype, zone, ttl, weighted))
    }

    fn publish_nodata(&mut self, name: &str, rtype: u16, zone: u32) -> Result<()> {
        self.both(|sink| sink.publish_nodata(name, rtype, zone))
    }

    fn publish_servfail(&mut self, name: &str, rtype: u16, zone: u32) -> Result<()> {
        self.both(|sink| sink.publish_servfail(name, rtype, zone))
    }

    fn withdraw(&mut self, name: &str, rtype: u16) -> Result<()> {
        self.both(|sink| sink.withdraw(name, rtype))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answers::{AnswerTable, Entry};
    use crate::sink::{RTYPE_A, RTYPE_AAAA, RTYPE_HTTPS};
    use anyhow::bail;

    /// Fails every call.
    struct Broken;

    impl AnswerSink for Broken {
        fn set_zone(&mut self, _: u32, _: &ZoneSoa) -> Result<()> {
            bail!("no zones here")
        }
        fn publish(&mut self, _: &str, _: u16, _: u32, _: u32, _: &[IpAddr]) -> Result<()> {
            bail!("no answer sets here")
        }
        fn publish_weighted(
            &mut self,
            _: &str,
            _: u16,
            _: u32,
            _: u32,
            _: &[(IpAddr, u32)],
        ) -> Result<()> {
            bail!("no weighted sets here")
        }
        fn publish_nodata(&mut self, _: &str, _: u16, _: u32) -> Result<()> {
            bail!("no NODATA here")
        }
        fn publish_servfail(&mut self, _: &str, _: u16, _: u32) -> Result<()> {
            bail!("no SERVFAIL here")
        }
        fn withdraw(&mut self, _: &str, _: u16) -> Result<()> {
            bail!("nothing to withdraw here")
        }
    }

    fn soa() -> ZoneSoa {
        ZoneSoa {
            apex: "t.".into(),
            mname: "ns1.t.".into(),
            rname: "hostmaster.t.".into(),
            serial: 1,
            refresh: 1,
            retry: 1,
            expire: 1,
            minimum: 1,
            negative_ttl: 1,
        }
    }

    #[test]
    fn a_failing_sink_does_not_starve_the_other() {
        let table = AnswerTable::new();
        let mut fan = FanOut::new(Broken, table.clone(), ["kernel map", "userspace table"]);
        let e = fan.set_zone(0, &soa()).unwrap_err();
        assert_eq!(format!("{e:#}"), "kernel map: no zones here");
        let addr: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(fan.publish("www.t.", RTYPE_A, 0, 5, &[addr]).is_err());
        assert!(fan.publish_nodata("www.t.", RTYPE_HTTPS, 0).is_err());
        assert!(
            fan.publish_weighted("w.t.", RTYPE_A, 0, 5, &[(addr, 2)])
                .is_err()
        );
        assert!(fan.publish_servfail("s.t.", RTYPE_A, 0).is_err());
        assert_eq!(
            table.get("w.t.", RTYPE_A),
            Some(Entry::Weighted {
                zone: 0,
                ttl: 5,
                choices: vec![(addr, 2)]
            })
        );
        assert_eq!(
            table.get("s.t.", RTYPE_A),
            Some(Entry::ServFail { zone: 0 })
        );
        assert_eq!(
            table.get("www.t.", RTYPE_A),
            Some(Entry::Answer {
                zone: 0,
                ttl: 5,
                addrs: vec![addr]
            })
        );
        assert_eq!(
            table.get("www.t.", RTYPE_HTTPS),
            Some(Entry::NoData { zone: 0 })
        );
        // Both failing: both reasons, named.
        let mut fan = FanOut::new(AnswerTable::new(), Broken, ["a", "b"]);
        let e = fan
            .publish("www.t.", RTYPE_AAAA, 0, 5, &[addr])
            .unwrap_err();
        let text = format!("{e:#}");
        assert!(
            text.starts_with("a: www.t.: 192.0.2.1 in a type 28"),
            "{text}"
        );
        assert!(text.ends_with("b: no answer sets here"), "{text}");
        // Both fine: Ok.
        let mut fan = FanOut::new(AnswerTable::new(), AnswerTable::new(), ["a", "b"]);
        fan.set_zone(0, &soa()).unwrap();
        fan.publish("www.t.", RTYPE_A, 0, 5, &[addr]).unwrap();
        fan.withdraw("www.t.", RTYPE_A).unwrap();
        assert_eq!(fan.first.get("www.t.", RTYPE_A), None);
    }
}
