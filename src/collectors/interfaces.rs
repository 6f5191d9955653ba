//! Collector `interfaces` (being implemented; see the issue).

use crate::config::Config;

use super::{Collected, Collector};

pub struct InterfacesCollector {}

impl InterfacesCollector {
    pub fn new(_config: &Config) -> Self {
        InterfacesCollector {}
    }
}

impl Collector for InterfacesCollector {
    fn name(&self) -> &'static str {
        "interfaces"
    }

    fn collect(&self) -> Collected {
        Collected::default()
    }
}
