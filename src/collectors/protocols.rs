//! Collector `protocols` (being implemented; see the issue).

use crate::config::Config;

use super::{Collected, Collector};

pub struct ProtocolsCollector {}

impl ProtocolsCollector {
    pub fn new(_config: &Config) -> Self {
        ProtocolsCollector {}
    }
}

impl Collector for ProtocolsCollector {
    fn name(&self) -> &'static str {
        "protocols"
    }

    fn collect(&self) -> Collected {
        Collected::default()
    }
}
