//! The expected file (`--collector.listeners.expected=FILE`): what may listen on this host,
//! and (optionally) where it may connect to. Read once at start-up; any problem is a start-up
//! error naming the file and line, so the exporter never runs half-configured.
//!
//! ```yaml
//! listeners:
//!   - protocol: tcp          # tcp, udp or udplite; omitted: any
//!     port: 22               # a port, or a range "8000-8099"
//!   - protocol: udp
//!     port: 53
//!     address: 127.0.0.53    # optional: exactly this address
//!     process: systemd-resolve  # optional: exactly this process name (comm)
//!   - port: 22
//!     remote_networks: [corp, loopback]  # optional: who may connect in (inbound policy)
//! connections:               # optional: outbound connections allowed; each entry allows a
//!   - remote_port: 443       # series when all the fields it gives match (port or range)
//!   - process: chronyd
//!     service: ntp           # the /etc/services name of the remote port
//!   - remote_network: corp   # a name from --collector.connections.networks, or loopback,
//!     protocol: tcp          # link_local, private, multicast, public
//! ```
//!
//! Each section is a policy of its own: without `listeners:` no listener is flagged, without
//! `connections:` no outbound connection is.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::source::inet::Protocol;

/// An inclusive port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

impl std::str::FromStr for PortRange {
    type Err = String;
    /// `80` or `8000-8099`.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad = || format!("invalid port or port range {s:?} (expected 80 or 8000-8099)");
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let first: u16 = a.trim().parse().map_err(|_| bad())?;
        let last: u16 = b.trim().parse().map_err(|_| bad())?;
        if first > last {
            return Err(format!("port range {s:?} ends before it starts"));
        }
        Ok(PortRange { first, last })
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PortRange;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a port (22) or a port range (\"8000-8099\")")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PortRange, E> {
                let p =
                    u16::try_from(v).map_err(|_| E::custom(format!("port {v} out of range")))?;
                Ok(PortRange { first: p, last: p })
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PortRange, E> {
                let p =
                    u16::try_from(v).map_err(|_| E::custom(format!("port {v} out of range")))?;
                Ok(PortRange { first: p, last: p })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PortRange, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ProtocolName {
    Tcp,
    Udp,
    Udplite,
}

impl ProtocolName {
    fn protocol(self) -> Protocol {
        match self {
            ProtocolName::Tcp => Protocol::Tcp,
            ProtocolName::Udp => Protocol::Udp,
            ProtocolName::Udplite => Protocol::UdpLite,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    protocol: Option<ProtocolName>,
    port: PortRange,
    address: Option<IpAddr>,
    process: Option<String>,
    remote_networks: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnection {
    protocol: Option<ProtocolName>,
    process: Option<String>,
    remote_port: Option<PortRange>,
    service: Option<String>,
    remote_network: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    listeners: Option<Vec<RawEntry>>,
    connections: Option<Vec<RawConnection>>,
}

/// One allowed outbound pattern: every field given must match the series.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectionEntry {
    pub protocol: Option<Protocol>,
    pub process: Option<String>,
    pub remote_port: Option<PortRange>,
    pub service: Option<String>,
    pub remote_network: Option<String>,
}

/// An outbound series as the policy sees it (its labels).
#[derive(Debug, Clone, Copy)]
pub struct OutboundKey<'a> {
    pub protocol: Protocol,
    /// None for the `ephemeral` port class.
    pub remote_port: Option<u16>,
    pub service: &'a str,
    pub remote_network: &'a str,
    /// None when the owner is unknown: an entry naming a process does not match it.
    pub process: Option<&'a str>,
}

impl ConnectionEntry {
    pub fn allows(&self, k: &OutboundKey) -> bool {
        self.protocol.is_none_or(|p| p == k.protocol)
            && self.process.as_deref().is_none_or(|p| Some(p) == k.process)
            && self
                .remote_port
                .is_none_or(|r| k.remote_port.is_some_and(|p| r.contains(p)))
            && self.service.as_deref().is_none_or(|s| s == k.service)
            && self
                .remote_network
                .as_deref()
                .is_none_or(|n| n == k.remote_network)
    }
}

/// One allowed listener pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub protocol: Option<Protocol>,
    pub ports: PortRange,
    pub address: Option<IpAddr>,
    pub process: Option<String>,
    /// The remote networks (named networks or built-in classes) allowed to connect to the
    /// listeners this entry allows; None: any.
    pub remote_networks: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpectedListeners {
    /// Allowed listeners; the listener policy is on when `listeners:` is present.
    pub entries: Vec<Entry>,
    pub listeners_policy: bool,
    /// Allowed outbound series; None without a `connections:` section.
    pub connections: Option<Vec<ConnectionEntry>>,
}

impl ExpectedListeners {
    /// Parse the YAML text; `name` is used in error messages (the file path).
    pub fn parse(text: &str, name: &str) -> Result<Self, String> {
        let raw: RawFile = serde_yaml_ng::from_str(text).map_err(|e| match e.location() {
            Some(l) => format!("{name}:{}:{}: {e}", l.line(), l.column()),
            None => format!("{name}: {e}"),
        })?;
        if raw.listeners.is_none() && raw.connections.is_none() {
            return Err(format!(
                "{name}: neither a listeners: nor a connections: section"
            ));
        }
        Ok(ExpectedListeners {
            listeners_policy: raw.listeners.is_some(),
            entries: raw
                .listeners
                .unwrap_or_default()
                .into_iter()
                .map(|e| Entry {
                    protocol: e.protocol.map(ProtocolName::protocol),
                    ports: e.port,
                    address: e.address,
                    process: e.process,
                    remote_networks: e.remote_networks,
                })
                .collect(),
            connections: raw.connections.map(|list| {
                list.into_iter()
                    .map(|c| ConnectionEntry {
                        protocol: c.protocol.map(ProtocolName::protocol),
                        process: c.process,
                        remote_port: c.remote_port,
                        service: c.service,
                        remote_network: c.remote_network,
                    })
                    .collect()
            }),
        })
    }

    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "{}: cannot read expected-listeners file: {e}",
                path.display()
            )
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Does any entry allow this listener? `process` is None when the owner is unknown: an
    /// entry that names a process then does not match.
    pub fn allows(
        &self,
        protocol: Protocol,
        address: IpAddr,
        port: u16,
        process: Option<&str>,
    ) -> bool {
        self.entries
            .iter()
            .any(|e| e.matches(protocol, address, port, process))
    }

    /// Does any entry allow connections from `remote_network` to this listener? (An entry
    /// without `remote_networks` allows every network; a listener no entry allows allows no
    /// inbound connection either.)
    pub fn allows_inbound(
        &self,
        protocol: Protocol,
        address: IpAddr,
        port: u16,
        process: Option<&str>,
        remote_network: &str,
    ) -> bool {
        self.entries.iter().any(|e| {
            e.matches(protocol, address, port, process)
                && e.remote_networks
                    .as_ref()
                    .is_none_or(|n| n.iter().any(|n| n == remote_network))
        })
    }
}

impl Entry {
    fn matches(
        &self,
        protocol: Protocol,
        address: IpAddr,
        port: u16,
        process: Option<&str>,
    ) -> bool {
        self.protocol.is_none_or(|p| p == protocol)
            && self.ports.contains(port)
            && self.address.is_none_or(|a| a == address)
            && self.process.as_deref().is_none_or(|p| Some(p) == process)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "listeners:\n  - protocol: tcp\n    port: 22\n  - port: \"8000-8099\"\n    address: 127.0.0.1\n  - protocol: udp\n    port: 53\n    process: dnsmasq\n";

    #[test]
    fn parses_and_matches() {
        let x = ExpectedListeners::parse(GOOD, "x.yml").unwrap();
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(x.allows(Protocol::Tcp, any, 22, None));
        assert!(!x.allows(Protocol::Udp, any, 22, None));
        assert!(x.allows(Protocol::Udp, lo, 8050, None));
        assert!(!x.allows(Protocol::Tcp, any, 8050, None));
        assert!(x.allows(Protocol::Udp, any, 53, Some("dnsmasq")));
        assert!(!x.allows(Protocol::Udp, any, 53, Some("evil")));
        assert!(!x.allows(Protocol::Udp, any, 53, None));
        assert!(!x.allows(Protocol::Tcp, any, 23, Some("telnetd")));
    }

    #[test]
    fn errors_name_file_and_line() {
        for (text, needle) in [
            (
                "listeners:\n  - protocol: tcp\n    port: 99999\n",
                "x.yml:3:",
            ),
            ("listeners:\n  - protocol: sctp\n    port: 1\n", "x.yml:2:"),
            ("listeners:\n  - port: 10-5\n", "x.yml:2:"),
            ("listeners:\n  - port: 22\n    colour: red\n", "x.yml:3:"),
            (
                "listeners:\n  - port: 22\n    address: example.com\n",
                "x.yml:3:",
            ),
            ("listeners:\n  - protocol: tcp\n", "x.yml:2:"),
            ("listener: []\n", "x.yml:1:"),
            ("connections:\n  - remote_port: 0-x\n", "x.yml:2:"),
            ("connections:\n  - host: evil\n", "x.yml:2:"),
            ("{}\n", "x.yml: neither"),
            ("listeners: [\n", "x.yml:"),
        ] {
            let e = ExpectedListeners::parse(text, "x.yml").unwrap_err();
            assert!(e.starts_with(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn connection_policy() {
        let x = ExpectedListeners::parse(
            "connections:\n  - remote_port: 443\n  - process: chronyd\n    service: ntp\n  - remote_network: corp\n    protocol: tcp\n",
            "x.yml",
        )
        .unwrap();
        assert!(!x.listeners_policy);
        let c = x.connections.unwrap();
        let k = |protocol, port, service, net, process| OutboundKey {
            protocol,
            remote_port: port,
            service,
            remote_network: net,
            process,
        };
        let ok = |key: OutboundKey| c.iter().any(|e| e.allows(&key));
        assert!(ok(k(
            Protocol::Tcp,
            Some(443),
            "https",
            "public",
            Some("curl")
        )));
        assert!(ok(k(Protocol::Udp, Some(443), "", "public", None)));
        assert!(!ok(k(
            Protocol::Tcp,
            Some(6667),
            "ircd",
            "public",
            Some("ircbot")
        )));
        assert!(!ok(k(Protocol::Tcp, None, "", "public", Some("ircbot"))));
        assert!(ok(k(
            Protocol::Udp,
            Some(123),
            "ntp",
            "public",
            Some("chronyd")
        )));
        assert!(!ok(k(Protocol::Udp, Some(123), "ntp", "public", None)));
        assert!(ok(k(Protocol::Tcp, Some(23), "telnet", "corp", None)));
        assert!(!ok(k(Protocol::Udp, Some(23), "telnet", "corp", None)));
    }

    #[test]
    fn ranges() {
        assert_eq!(
            "80".parse::<PortRange>().unwrap(),
            PortRange {
                first: 80,
                last: 80
            }
        );
        assert!("1-65535".parse::<PortRange>().unwrap().contains(443));
        assert!("a-b".parse::<PortRange>().is_err());
        assert!("-1".parse::<PortRange>().is_err());
    }
}
