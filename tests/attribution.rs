//! Listener owner attribution without repeated walks of /proc/*/fd: an owner that can never
//! be found (here: a listening socket whose only reference is in flight in a unix socket's
//! queue, held by no process) is remembered and causes no further walk, however many walk
//! intervals pass; a listener that appears later is still attributed; and the binary walks
//! once at start-up so that its first scrape is already served from the cache.
//!
//! Only listeners on 127.0.0.77 are looked at (`--collector.listeners.address-include`), so
//! listeners that other programs open meanwhile cannot trigger walks of their own.

mod common;

use std::net::TcpListener;
use std::os::fd::{AsRawFd, IntoRawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::sample;
use netstat_exporter::config::Config;
use netstat_exporter::metrics::encode_text;
use netstat_exporter::scrape::Scraper;

const ADDR: &str = "127.0.0.77";

/// A listener that no process holds: its fd is sent over a unix socket pair and closed; the
/// kernel keeps the socket alive in the pair's queue (the pair is returned to keep it so).
fn orphan_listener() -> (UnixStream, UnixStream, u16) {
    let l = TcpListener::bind((ADDR, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    let (a, b) = UnixStream::pair().unwrap();
    let fd = l.into_raw_fd();
    // SAFETY: a sendmsg with one SCM_RIGHTS control message built in a properly sized and
    // aligned buffer; every pointer refers to a live local.
    unsafe {
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let space = libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) as usize;
        let mut cbuf = vec![0u64; space.div_ceil(8)];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as _;
        std::ptr::copy_nonoverlapping(
            (&fd as *const libc::c_int).cast::<u8>(),
            libc::CMSG_DATA(cmsg),
            std::mem::size_of::<libc::c_int>(),
        );
        assert_eq!(libc::sendmsg(a.as_raw_fd(), &msg, 0), 1, "sendmsg");
        libc::close(fd);
    }
    (a, b, port)
}

fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(text, name, labels).unwrap_or_else(|| panic!("{name} {labels:?} missing:\n{text}"))
}

fn own_comm() -> String {
    std::fs::read_to_string("/proc/self/comm")
        .unwrap()
        .trim_end()
        .to_string()
}

#[test]
fn an_unresolvable_owner_never_causes_another_walk_and_new_listeners_are_still_found() {
    if !common::require_root() {
        return;
    }
    let (_a, _b, orphan_port) = orphan_listener();
    let config = Config::from_args([
        "netstat_exporter",
        "--collector.disable-defaults",
        "--collector.listeners",
        "--collector.listeners.walk-interval=100ms",
        "--collector.listeners.address-include=127\\.0\\.0\\.77",
    ])
    .unwrap();
    let scraper = Scraper::from_config(&config).unwrap();
    scraper.warm_up();
    let scrape = || encode_text(&scraper.scrape(None));
    let port = orphan_port.to_string();
    let text = scrape();
    let info = [("port", port.as_str()), ("process", "unknown")];
    assert_eq!(value(&text, "netstat_listener_info", &info), 1.0);
    assert_eq!(value(&text, "netstat_listener_owner_walks_total", &[]), 1.0);
    assert_eq!(value(&text, "netstat_listener_owner_unresolved", &[]), 1.0);

    // Ten walk intervals: the unresolvable owner is not looked for again.
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(120));
        let text = scrape();
        assert_eq!(
            value(&text, "netstat_listener_owner_walks_total", &[]),
            1.0,
            "a known-unresolvable owner caused a walk:\n{text}"
        );
    }

    // A new listener still gets its walk and its owner.
    let l = TcpListener::bind((ADDR, 0)).unwrap();
    let new_port = l.local_addr().unwrap().port().to_string();
    std::thread::sleep(Duration::from_millis(120));
    let text = scrape();
    let comm = own_comm();
    assert_eq!(
        value(
            &text,
            "netstat_listener_info",
            &[("port", new_port.as_str()), ("process", comm.as_str())]
        ),
        1.0
    );
    assert_eq!(value(&text, "netstat_listener_owner_walks_total", &[]), 2.0);
    assert_eq!(value(&text, "netstat_listener_owner_unresolved", &[]), 1.0);
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(120));
        let text = scrape();
        assert_eq!(value(&text, "netstat_listener_owner_walks_total", &[]), 2.0);
        assert_eq!(
            value(
                &text,
                "netstat_listener_info",
                &[("port", new_port.as_str()), ("process", comm.as_str())]
            ),
            1.0
        );
    }
    drop(l);
}

#[test]
fn the_binary_walks_at_start_up_so_the_first_scrape_is_served_from_the_cache() {
    if !common::require_root() {
        return;
    }
    let l = TcpListener::bind((ADDR, 0)).unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let e = common::Exporter::start(&[
        "--collector.disable-defaults",
        "--collector.listeners",
        "--collector.listeners.address-include=127\\.0\\.0\\.77",
    ]);
    let text = e.get("/metrics").text();
    let comm = own_comm();
    assert_eq!(
        value(
            &text,
            "netstat_listener_info",
            &[("port", port.as_str()), ("process", comm.as_str())]
        ),
        1.0
    );
    // The walk happened before the first request; the first scrape verified the cached owner.
    assert_eq!(value(&text, "netstat_listener_owner_walks_total", &[]), 1.0);
    assert!(
        value(
            &text,
            "netstat_listener_owner_lookups_total",
            &[("result", "cached")]
        ) >= 1.0,
        "{text}"
    );
    drop(l);
}
