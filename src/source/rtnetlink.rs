//! Link attributes over rtnetlink (`RTM_GETLINK` dump, what `ip link` uses): flags, MTU,
//! carrier, operational state, hardware address and type of every device of the namespace the
//! socket is opened in. `<sysfs>/class/net` shows only the namespace that mounted that sysfs,
//! so this is how another namespace's interfaces get their attributes (the thread that reads
//! them has entered the namespace).
//!
//! Hand-written on `libc` like the sock_diag reader (`netlink.rs`): a handful of fixed-layout
//! structures, decoded in place.

use std::collections::HashMap;
use std::io;
use std::os::fd::AsRawFd;

use super::netdev::SysAttrs;
use super::netlink::open_netlink;

const NETLINK_ROUTE: libc::c_int = 0;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_HDRLEN: usize = 16;
/// `struct ifinfomsg`.
const IFINFOMSG_LEN: usize = 16;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_OPERSTATE: u16 = 16;
const IFLA_PROMISCUITY: u16 = 30;
const IFLA_CARRIER: u16 = 33;
const IFF_PROMISC: u32 = 0x100;

/// The kernel's operational states (`IF_OPER_*`), named as sysfs `operstate` names them.
const OPERSTATES: [&str; 7] = [
    "unknown",
    "notpresent",
    "down",
    "lowerlayerdown",
    "testing",
    "dormant",
    "up",
];

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_ne_bytes([b[off], b[off + 1]])
}
fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Decode one `RTM_NEWLINK` payload (ifinfomsg + attributes) into (name, attributes).
/// `flags` is the device's flags with `PROMISC` set when its promiscuity count is not zero,
/// the effective state that sysfs `flags` shows (so tcpdump shows up, as on the host).
pub fn decode_link(msg: &[u8]) -> Result<(String, SysAttrs), String> {
    if msg.len() < IFINFOMSG_LEN {
        return Err(format!("ifinfomsg of {} bytes", msg.len()));
    }
    let arp_type = u16_at(msg, 2);
    let mut flags = u32_at(msg, 8);
    let mut attrs = SysAttrs {
        arp_type: Some(arp_type),
        ..SysAttrs::default()
    };
    let mut name = None;
    let mut off = IFINFOMSG_LEN;
    while off + 4 <= msg.len() {
        let len = usize::from(u16_at(msg, off));
        let kind = u16_at(msg, off + 2) & 0x3fff;
        if len < 4 || off + len > msg.len() {
            return Err(format!("attribute length {len} at offset {off}"));
        }
        let data = &msg[off + 4..off + len];
        match kind {
            IFLA_IFNAME => {
                let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
                name = Some(String::from_utf8_lossy(&data[..end]).into_owned());
            }
            IFLA_MTU if data.len() >= 4 => attrs.mtu = Some(u64::from(u32_at(data, 0))),
            IFLA_OPERSTATE if !data.is_empty() => {
                attrs.operstate = Some(
                    OPERSTATES
                        .get(usize::from(data[0]))
                        .copied()
                        .unwrap_or("unknown")
                        .to_string(),
                )
            }
            IFLA_CARRIER if !data.is_empty() => attrs.carrier = Some(data[0] != 0),
            IFLA_PROMISCUITY if data.len() >= 4 && u32_at(data, 0) > 0 => flags |= IFF_PROMISC,
            IFLA_ADDRESS if !data.is_empty() => {
                attrs.address = Some(
                    data.iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<Vec<_>>()
                        .join(":"),
                )
            }
            _ => {}
        }
        off += (len + 3) & !3;
    }
    attrs.flags = Some(flags);
    let name = name.ok_or("link without IFLA_IFNAME")?;
    // Like sysfs, carrier is only known on an up device.
    if flags & 0x1 == 0 {
        attrs.carrier = None;
    }
    Ok((name, attrs))
}

/// Dump every link of the calling thread's network namespace.
pub fn links() -> io::Result<HashMap<String, SysAttrs>> {
    let fd = open_netlink(NETLINK_ROUTE)?;
    let mut req = [0u8; NLMSG_HDRLEN + IFINFOMSG_LEN];
    let total = req.len() as u32;
    req[0..4].copy_from_slice(&total.to_ne_bytes());
    req[4..6].copy_from_slice(&RTM_GETLINK.to_ne_bytes());
    req[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    req[NLMSG_HDRLEN] = libc::AF_UNSPEC as u8;
    // SAFETY: valid fd and request buffer.
    let rc = unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = HashMap::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: buf is a valid writable buffer of the given length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let n = n as usize;
        if n == 0 {
            return Err(io::Error::other("empty read before NLMSG_DONE"));
        }
        let mut off = 0;
        while off + NLMSG_HDRLEN <= n {
            let len = u32_at(&buf, off) as usize;
            let kind = u16_at(&buf, off + 4);
            if len < NLMSG_HDRLEN || off + len > n {
                return Err(io::Error::other(format!("message length {len}")));
            }
            let payload = &buf[off + NLMSG_HDRLEN..off + len];
            off += (len + 3) & !3;
            match kind {
                NLMSG_DONE => return Ok(out),
                NLMSG_ERROR => {
                    let err = if payload.len() >= 4 {
                        -(u32_at(payload, 0) as i32)
                    } else {
                        libc::EINVAL
                    };
                    if err != 0 {
                        return Err(io::Error::from_raw_os_error(err));
                    }
                }
                RTM_NEWLINK => {
                    let (name, attrs) = decode_link(payload).map_err(io::Error::other)?;
                    out.insert(name, attrs);
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(data);
        while a.len() % 4 != 0 {
            a.push(0);
        }
        a
    }

    #[test]
    fn decodes_a_link_and_effective_promisc() {
        let mut m = vec![0u8; IFINFOMSG_LEN];
        m[2..4].copy_from_slice(&1u16.to_ne_bytes()); // ARPHRD_ETHER
        m[8..12].copy_from_slice(&(0x1u32 | 0x40 | 0x1000).to_ne_bytes());
        m.extend(attr(IFLA_IFNAME, b"veth0\0"));
        m.extend(attr(IFLA_MTU, &1500u32.to_ne_bytes()));
        m.extend(attr(IFLA_OPERSTATE, &[6]));
        m.extend(attr(IFLA_CARRIER, &[1]));
        m.extend(attr(IFLA_PROMISCUITY, &1u32.to_ne_bytes()));
        m.extend(attr(IFLA_ADDRESS, &[2, 0, 0xa, 0xd5, 7, 1]));
        let (name, a) = decode_link(&m).unwrap();
        assert_eq!(name, "veth0");
        assert_eq!(a.mtu, Some(1500));
        assert_eq!(a.operstate.as_deref(), Some("up"));
        assert_eq!(a.carrier, Some(true));
        assert_eq!(a.flags.unwrap() & IFF_PROMISC, IFF_PROMISC);
        assert_eq!(a.address.as_deref(), Some("02:00:0a:d5:07:01"));
        assert_eq!(a.arp_type, Some(1));
    }

    #[test]
    fn rejects_garbage() {
        assert!(decode_link(&[0u8; 3]).is_err());
        let mut m = vec![0u8; IFINFOMSG_LEN];
        m.extend_from_slice(&[200, 0, 3, 0]);
        assert!(decode_link(&m).is_err());
        assert!(decode_link(&[0u8; IFINFOMSG_LEN]).is_err(), "no name");
    }

    #[test]
    fn dumps_this_namespace() {
        let links = links().unwrap();
        let lo = &links["lo"];
        assert_eq!(lo.arp_type, Some(772));
        assert!(lo.mtu.unwrap() > 0);
    }
}
