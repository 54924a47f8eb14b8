//! The userspace answer table as a publisher.

use std::sync::Arc;

use anyhow::Result;

use super::Publisher;
use crate::serve::table::{AnswerTable, Entry};
use crate::serve::zones::ZoneTree;

impl Publisher for AnswerTable {
    fn set_zones(&mut self, zones: &Arc<ZoneTree>) -> Result<()> {
        AnswerTable::set_zones(self, zones.clone());
        Ok(())
    }

    fn put(&mut self, name: &str, rtype: u16, entry: &Entry) -> Result<()> {
        AnswerTable::put(self, name, rtype, entry)
    }

    fn withdraw(&mut self, name: &str, rtype: u16) -> Result<()> {
        AnswerTable::withdraw(self, name, rtype)
    }
}
