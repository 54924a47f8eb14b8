//! One publisher feeding two: the kernel maps and the userspace table get
//! every value, each on its own. One failing does not keep the value from
//! the other; the call as a whole then fails (naming the publisher) so the
//! publication retries it, and writing the same value again is harmless
//! for the one that took it (every call replaces).

use std::sync::Arc;

use anyhow::{Result, anyhow};

use super::Publisher;
use crate::serve::table::Entry;
use crate::serve::zones::ZoneTree;

pub struct Both<A, B> {
    pub first: A,
    pub second: B,
    /// For error messages, e.g. `["kernel map", "userspace table"]`.
    pub names: [&'static str; 2],
}

impl<A: Publisher, B: Publisher> Both<A, B> {
    pub fn new(first: A, second: B, names: [&'static str; 2]) -> Self {
        Both {
            first,
            second,
            names,
        }
    }

    fn both(&mut self, mut call: impl FnMut(&mut dyn Publisher) -> Result<()>) -> Result<()> {
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

impl<A: Publisher, B: Publisher> Publisher for Both<A, B> {
    fn set_zones(&mut self, zones: &Arc<ZoneTree>) -> Result<()> {
        self.both(|target| target.set_zones(zones))
    }

    fn put(&mut self, name: &str, rtype: u16, entry: &Entry) -> Result<()> {
        self.both(|target| target.put(name, rtype, entry))
    }

    fn withdraw(&mut self, name: &str, rtype: u16) -> Result<()> {
        self.both(|target| target.withdraw(name, rtype))
    }

    fn tick(&mut self) -> Result<()> {
        self.both(|target| target.tick())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::dns::rr::{RTYPE_A, RTYPE_AAAA, RTYPE_HTTPS};
    use crate::policy::Answer;
    use crate::serve::table::AnswerTable;
    use anyhow::bail;
    use std::net::IpAddr;

    /// Fails every call.
    struct Broken;

    impl Publisher for Broken {
        fn set_zones(&mut self, _: &Arc<ZoneTree>) -> Result<()> {
            bail!("no zones here")
        }
        fn put(&mut self, _: &str, _: u16, _: &Entry) -> Result<()> {
            bail!("no entries here")
        }
        fn withdraw(&mut self, _: &str, _: u16) -> Result<()> {
            bail!("nothing to withdraw here")
        }
    }

    fn zones() -> Arc<ZoneTree> {
        let text = "[[zone]]\norigin = \"t.\"\n[[record]]\nname = \"www.t.\"\ntype = \"A\"\npolicy = \"failover\"\ncheck = \"c\"\nendpoints = [{ address = \"192.0.2.1\" }]\n[checks.c]\nkind = \"icmp\"\n";
        let config = Config::parse(text, "test.toml").unwrap();
        Arc::new(ZoneTree::new(&config))
    }

    #[test]
    fn a_failing_publisher_does_not_starve_the_other() {
        let table = AnswerTable::new();
        let mut both = Both::new(Broken, table.clone(), ["kernel map", "userspace table"]);
        let e = both.set_zones(&zones()).unwrap_err();
        assert_eq!(format!("{e:#}"), "kernel map: no zones here");
        let addr: IpAddr = "192.0.2.1".parse().unwrap();
        let answer = Entry::new(0, 5, Answer::Addrs(vec![addr]));
        let weighted = Entry::new(0, 5, Answer::Weighted(vec![(addr, 2)]));
        let servfail = Entry::new(0, 5, Answer::ServFail);
        assert!(both.put("www.t.", RTYPE_A, &answer).is_err());
        assert!(both.put("www.t.", RTYPE_HTTPS, &Entry::nodata(0)).is_err());
        assert!(both.put("w.t.", RTYPE_A, &weighted).is_err());
        assert!(both.put("s.t.", RTYPE_A, &servfail).is_err());
        assert_eq!(table.get("w.t.", RTYPE_A), Some(weighted));
        assert_eq!(table.get("s.t.", RTYPE_A), Some(servfail));
        assert_eq!(table.get("www.t.", RTYPE_A), Some(answer.clone()));
        assert_eq!(table.get("www.t.", RTYPE_HTTPS), Some(Entry::nodata(0)));
        // Both failing: both reasons, named.
        let mut both = Both::new(AnswerTable::new(), Broken, ["a", "b"]);
        both.set_zones(&zones()).unwrap_err();
        let e = both.put("www.t.", RTYPE_AAAA, &answer).unwrap_err();
        let text = format!("{e:#}");
        assert!(
            text.starts_with("a: www.t.: 192.0.2.1 does not belong in a type 28"),
            "{text}"
        );
        assert!(text.ends_with("b: no entries here"), "{text}");
        // Both fine: Ok.
        let mut both = Both::new(AnswerTable::new(), AnswerTable::new(), ["a", "b"]);
        both.set_zones(&zones()).unwrap();
        both.put("www.t.", RTYPE_A, &answer).unwrap();
        both.withdraw("www.t.", RTYPE_A).unwrap();
        assert_eq!(both.first.get("www.t.", RTYPE_A), None);
    }
}
