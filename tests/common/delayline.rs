//! A delay line between the test's namespace and a namespace the test makes, from real parts:
//! two TUN devices (one here, one created inside the namespace) and a forwarder in this
//! process that reads every packet from one, holds it `delay`, drops it with probability
//! `loss` (a deterministic PRNG), and writes it to the other. This kernel has no `sch_netem`,
//! so this is how a test gets a path with a known RTT (2 x delay) and loss. Traffic only goes
//! to the address inside the namespace. The threads stop and both devices go away on drop
//! (a TUN device that is not persistent is deleted when its fd closes).
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::netns::{must, TestNetns};

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;

/// A TUN device named `name` in the calling thread's network namespace.
fn open_tun(name: &str) -> OwnedFd {
    let path = c"/dev/net/tun";
    // SAFETY: open(2) of a device path; the fd is owned below.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    assert!(
        fd >= 0,
        "open /dev/net/tun: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: fresh fd owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // struct ifreq: name[16], then the flags (short) of the union.
    let mut ifr = [0u8; 40];
    assert!(name.len() < 16);
    ifr[..name.len()].copy_from_slice(name.as_bytes());
    ifr[16..18].copy_from_slice(&(IFF_TUN | IFF_NO_PI).to_ne_bytes());
    // SAFETY: TUNSETIFF reads and writes a struct ifreq, which the 40-byte buffer holds.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF as _, ifr.as_mut_ptr()) };
    assert_eq!(
        rc,
        0,
        "TUNSETIFF {name}: {}",
        std::io::Error::last_os_error()
    );
    fd
}

/// xorshift64*: deterministic loss.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

type Queue = Arc<(Mutex<VecDeque<(Instant, Vec<u8>)>>, Condvar)>;

pub struct DelayLine {
    pub host_if: String,
    pub ns_if: String,
    pub host_addr: Ipv4Addr,
    pub ns_addr: Ipv4Addr,
    /// Packets dropped so far (both directions).
    pub dropped: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl DelayLine {
    /// `host_addr` here and `ns_addr` in `ns`, point to point through the line; each packet
    /// is held `delay` in each direction (RTT = 2 x delay) and dropped with probability `loss`.
    pub fn new(
        ns: &TestNetns,
        tag: &str,
        host_addr: Ipv4Addr,
        ns_addr: Ipv4Addr,
        delay: Duration,
        loss: f64,
    ) -> DelayLine {
        let id = std::process::id() % 100_000;
        let host_if = format!("t{tag}{id}h");
        let ns_if = format!("t{tag}{id}n");
        let host_fd = Arc::new(open_tun(&host_if));
        let ns_fd = Arc::new(ns.run(|| open_tun(&ns_if)));
        let (h, n) = (host_addr.to_string(), ns_addr.to_string());
        must("ip", &["addr", "add", &h, "peer", &n, "dev", &host_if]);
        must("ip", &["link", "set", &host_if, "up"]);
        ns.ip(&["addr", "add", &n, "peer", &h, "dev", &ns_if]);
        ns.ip(&["link", "set", &ns_if, "up"]);
        let stop = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let mut threads = Vec::new();
        for (i, (from, to)) in [(&host_fd, &ns_fd), (&ns_fd, &host_fd)]
            .into_iter()
            .enumerate()
        {
            let queue: Queue = Arc::default();
            threads.push(reader(
                from.clone(),
                queue.clone(),
                stop.clone(),
                dropped.clone(),
                delay,
                loss,
                0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1),
            ));
            threads.push(writer(to.clone(), queue, stop.clone()));
        }
        DelayLine {
            host_if,
            ns_if,
            host_addr,
            ns_addr,
            dropped,
            stop,
            threads,
        }
    }
}

fn reader(
    fd: Arc<OwnedFd>,
    queue: Queue,
    stop: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    delay: Duration,
    loss: f64,
    seed: u64,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut rng = Rng(seed);
        let mut buf = vec![0u8; 65536];
        while !stop.load(Ordering::Relaxed) {
            let mut pfd = libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut pfd, 1, 50) } <= 0 {
                continue;
            }
            // SAFETY: read into a buffer of the given length.
            let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                continue;
            }
            if loss > 0.0 && rng.next_f64() < loss {
                dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let (q, cv) = &*queue;
            q.lock()
                .unwrap()
                .push_back((Instant::now() + delay, buf[..n as usize].to_vec()));
            cv.notify_one();
        }
    })
}

fn writer(fd: Arc<OwnedFd>, queue: Queue, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let (q, cv) = &*queue;
        loop {
            let next = {
                let mut g = q.lock().unwrap();
                while g.is_empty() && !stop.load(Ordering::Relaxed) {
                    g = cv.wait_timeout(g, Duration::from_millis(50)).unwrap().0;
                }
                match g.pop_front() {
                    Some(p) => p,
                    None => return, // stopped and drained
                }
            };
            let (due, packet) = next;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            // SAFETY: write of a packet buffer with its length.
            unsafe { libc::write(fd.as_raw_fd(), packet.as_ptr().cast(), packet.len()) };
        }
    })
}

impl Drop for DelayLine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // The fds close with the last Arc (the threads' clones are gone): both TUN devices
        // are deleted by the kernel. In case one was made persistent by someone else:
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.host_if])
            .stderr(std::process::Stdio::null())
            .status();
    }
}
