//! Remote network classes for outbound connections: named networks from
//! `--collector.connections.networks=FILE`, else a built-in class.
//!
//! ```yaml
//! networks:
//!   lab: ["10.213.9.0/24"]
//!   corp: ["10.0.0.0/8", "fd00::/8"]
//! ```
//!
//! The longest matching prefix among the named networks wins; an address no named network
//! holds gets its built-in class: `loopback`, `link_local`, `private` (RFC 1918,
//! 100.64.0.0/10 shared address space, fc00::/7 unique local), `multicast`, or `public`.
//! IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are classified as the IPv4 address.
//!
//! Prefix parsing and matching are a few dozen lines, written here rather than pulling in a
//! CIDR crate; both are fuzzed (tests/it/fuzz_parsers.rs).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;

/// Built-in classes, in label order after the named networks.
pub const BUILTIN: [&str; 5] = ["loopback", "link_local", "private", "multicast", "public"];

/// An IPv4 or IPv6 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    /// The address as 128 bits (IPv4 in the low 32 bits), host bits cleared.
    bits: u128,
    len: u8,
    v4: bool,
}

impl Prefix {
    /// `10.0.0.0/8`, `fd00::/8`, or a bare address (a /32 or /128).
    pub fn parse(s: &str) -> Result<Prefix, String> {
        let s = s.trim();
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or prefix (e.g. 10.0.0.0/8)"))?;
        let (raw, max, v4) = match addr {
            IpAddr::V4(a) => (u128::from(u32::from(a)), 32u8, true),
            IpAddr::V6(a) => (u128::from(a), 128u8, false),
        };
        let len = match len {
            None => max,
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0 to {max}"))?,
        };
        let bits = raw & Self::mask(len, max);
        Ok(Prefix { bits, len, v4 })
    }

    fn mask(len: u8, max: u8) -> u128 {
        if len == 0 {
            return 0;
        }
        let all: u128 = if max == 32 {
            u128::from(u32::MAX)
        } else {
            u128::MAX
        };
        all & !((1u128 << (max - len)).wrapping_sub(1) & all)
    }

    /// Does the prefix hold `addr` (already unmapped, see [`unmap`])?
    pub fn contains(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(a) if self.v4 => {
                u128::from(u32::from(a)) & Self::mask(self.len, 32) == self.bits
            }
            IpAddr::V6(a) if !self.v4 => u128::from(a) & Self::mask(self.len, 128) == self.bits,
            _ => false,
        }
    }
}

/// `::ffff:a.b.c.d` as `a.b.c.d`; every other address unchanged.
pub fn unmap(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => addr,
        },
        v4 => v4,
    }
}

/// The built-in class of an (unmapped) address: an index into [`BUILTIN`].
pub fn builtin_class(addr: IpAddr) -> usize {
    match unmap(addr) {
        IpAddr::V4(a) => {
            let o = a.octets();
            if a.is_loopback() {
                0
            } else if a.is_link_local() {
                1
            } else if a.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64) {
                2
            } else if a.is_multicast() || a.is_broadcast() {
                3
            } else {
                4
            }
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            if a.is_loopback() {
                0
            } else if (s[0] & 0xffc0) == 0xfe80 {
                1
            } else if (s[0] & 0xfe00) == 0xfc00 {
                2
            } else if a.is_multicast() {
                3
            } else {
                4
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    networks: BTreeMap<String, Vec<String>>,
}

/// Named networks and the classifier.
#[derive(Debug, Clone, Default)]
pub struct Networks {
    /// Names, in label order (sorted).
    names: Vec<String>,
    /// (prefix, index into names), longest prefixes first.
    prefixes: Vec<(Prefix, usize)>,
}

impl Networks {
    /// Parse the YAML text; `name` names the file in error messages (`FILE:LINE:COL: ...`).
    pub fn parse(text: &str, name: &str) -> Result<Networks, String> {
        let raw: RawFile = serde_yaml_ng::from_str(text).map_err(|e| match e.location() {
            Some(l) => format!("{name}:{}:{}: {e}", l.line(), l.column()),
            None => format!("{name}: {e}"),
        })?;
        let mut names = Vec::new();
        let mut prefixes = Vec::new();
        for (i, (net, list)) in raw.networks.into_iter().enumerate() {
            let valid = !net.is_empty()
                && net
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
            if !valid {
                return Err(format!(
                    "{name}: network name {net:?}: use letters, digits, '_', '-' and '.'"
                ));
            }
            if BUILTIN.contains(&net.as_str()) || net == "other" {
                return Err(format!(
                    "{name}: network name {net:?} is a built-in class; pick another name"
                ));
            }
            if list.is_empty() {
                return Err(format!("{name}: network {net:?} has no prefix"));
            }
            for p in &list {
                let prefix =
                    Prefix::parse(p).map_err(|e| format!("{name}: network {net:?}: {e}"))?;
                prefixes.push((prefix, i));
            }
            names.push(net);
        }
        prefixes.sort_by_key(|p| std::cmp::Reverse(p.0.len));
        Ok(Networks { names, prefixes })
    }

    pub fn load(path: &Path) -> Result<Networks, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read networks file: {e}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Number of label values: named networks, then the built-in classes.
    pub fn len(&self) -> usize {
        self.names.len() + BUILTIN.len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The class of `addr`: an index for [`Networks::name`].
    pub fn classify(&self, addr: IpAddr) -> usize {
        let addr = unmap(addr);
        for (p, i) in &self.prefixes {
            if p.contains(addr) {
                return *i;
            }
        }
        self.names.len() + builtin_class(addr)
    }

    /// The label value of a class index.
    pub fn name(&self, i: usize) -> &str {
        match self.names.get(i) {
            Some(n) => n,
            None => BUILTIN
                .get(i - self.names.len())
                .copied()
                .unwrap_or("public"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn builtin_classes() {
        let n = Networks::default();
        for (a, class) in [
            ("127.0.0.1", "loopback"),
            ("::1", "loopback"),
            ("::ffff:127.0.0.1", "loopback"),
            ("169.254.1.1", "link_local"),
            ("fe80::1", "link_local"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.32.0.1", "public"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "private"),
            ("100.128.0.1", "public"),
            ("fd12::1", "private"),
            ("::ffff:10.0.0.1", "private"),
            ("224.0.0.251", "multicast"),
            ("ff02::fb", "multicast"),
            ("8.8.8.8", "public"),
            ("2001:db8::1", "public"),
        ] {
            assert_eq!(n.name(n.classify(ip(a))), class, "{a}");
        }
    }

    #[test]
    fn longest_named_prefix_wins() {
        let n = Networks::parse(
            "networks:\n  corp: [\"10.0.0.0/8\", \"fd00::/8\"]\n  lab: [\"10.213.9.0/24\"]\n  dns: [\"10.213.9.53\"]\n",
            "n.yml",
        )
        .unwrap();
        assert_eq!(n.name(n.classify(ip("10.213.9.53"))), "dns");
        assert_eq!(n.name(n.classify(ip("10.213.9.54"))), "lab");
        assert_eq!(n.name(n.classify(ip("::ffff:10.213.9.1"))), "lab");
        assert_eq!(n.name(n.classify(ip("10.9.9.9"))), "corp");
        assert_eq!(n.name(n.classify(ip("fd00::5"))), "corp");
        assert_eq!(n.name(n.classify(ip("fc01::5"))), "private");
        assert_eq!(n.name(n.classify(ip("127.0.0.1"))), "loopback");
        assert_eq!(n.len(), 3 + BUILTIN.len());
    }

    #[test]
    fn prefixes() {
        assert!(Prefix::parse("0.0.0.0/0").unwrap().contains(ip("1.2.3.4")));
        assert!(!Prefix::parse("0.0.0.0/0").unwrap().contains(ip("::1")));
        assert!(Prefix::parse("::/0").unwrap().contains(ip("::1")));
        assert!(Prefix::parse("10.1.2.3/8")
            .unwrap()
            .contains(ip("10.200.0.1")));
        assert!(Prefix::parse("10.0.0.0/31")
            .unwrap()
            .contains(ip("10.0.0.1")));
        assert!(!Prefix::parse("10.0.0.0/32")
            .unwrap()
            .contains(ip("10.0.0.1")));
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "example.com/8",
            "1.2.3.4/-1",
            "",
        ] {
            assert!(Prefix::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_name_file_and_line() {
        for (text, needle) in [
            (
                "networks:\n  lab: [\"10.0.0.0/33\"]\n",
                "n.yml: network \"lab\"",
            ),
            ("networks:\n  lab: 10.0.0.0/8\n", "n.yml:2:"),
            ("networks:\n  private: [\"10.0.0.0/8\"]\n", "built-in"),
            ("networks:\n  lab: []\n", "no prefix"),
            ("network: {}\n", "n.yml:1:"),
            ("networks:\n  \"a b\": [\"10.0.0.0/8\"]\n", "network name"),
        ] {
            let e = Networks::parse(text, "n.yml").unwrap_err();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }
}
