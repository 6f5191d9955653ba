//! Hold many established TCP connections on loopback in forked child processes.
//!
//! One process may hold at most 20000 files here, so large socket tables are spread over
//! children. The child only makes system calls (no allocation, no locks) between fork and
//! _exit, which keeps fork safe in a multi-threaded test or bench process.
#![allow(dead_code)]

use std::io;
use std::time::Duration;

/// Connections per child: 2 fds each (client and accepted side) plus a few spare.
pub const PER_CHILD: usize = 9000;

/// Children holding connections; they exit when this is dropped.
pub struct Holder {
    children: Vec<(libc::pid_t, libc::c_int)>,
    pub connections: usize,
}

impl Drop for Holder {
    fn drop(&mut self) {
        // Newest first: each child inherited the control pipes of the children forked before
        // it, so an older child only sees EOF once every younger one has exited.
        for (pid, ctl) in self.children.drain(..).rev() {
            // SAFETY: closing our end of the control pipe tells the child to exit; waitpid
            // reaps it.
            unsafe {
                libc::close(ctl);
                let mut status = 0;
                libc::waitpid(pid, &mut status, 0);
            }
        }
    }
}

fn check(rc: libc::c_int, what: &str) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::new(
            io::Error::last_os_error().kind(),
            format!("{what}: {}", io::Error::last_os_error()),
        ))
    } else {
        Ok(rc)
    }
}

/// Open `connections` established TCP connections over 127.0.0.1 (2 sockets each), held by
/// forked children. Returns once all are established.
pub fn hold_tcp(connections: usize) -> io::Result<Holder> {
    let mut holder = Holder {
        children: Vec::new(),
        connections: 0,
    };
    let mut left = connections;
    while left > 0 {
        let n = left.min(PER_CHILD);
        let child = spawn_child(n)?;
        holder.children.push(child);
        holder.connections += n;
        left -= n;
    }
    Ok(holder)
}

fn spawn_child(n: usize) -> io::Result<(libc::pid_t, libc::c_int)> {
    // SAFETY: plain libc calls on local values; the child side only makes system calls.
    unsafe {
        let lfd = check(
            libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0),
            "socket",
        )?;
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let alen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        check(
            libc::bind(lfd, (&addr as *const libc::sockaddr_in).cast(), alen),
            "bind",
        )?;
        check(libc::listen(lfd, 4096), "listen")?;
        let mut bound: libc::sockaddr_in = std::mem::zeroed();
        let mut blen = alen;
        check(
            libc::getsockname(
                lfd,
                (&mut bound as *mut libc::sockaddr_in).cast(),
                &mut blen,
            ),
            "getsockname",
        )?;
        let child = fork_holder(&format!("{n} connections"), || {
            for _ in 0..n {
                let c = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
                // Close with RST when the child exits: no TIME_WAIT left behind to skew the
                // next test or benchmark round.
                let linger = libc::linger {
                    l_onoff: 1,
                    l_linger: 0,
                };
                libc::setsockopt(
                    c,
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&linger as *const libc::linger).cast(),
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                );
                if c < 0
                    || libc::connect(c, (&bound as *const libc::sockaddr_in).cast(), alen) < 0
                    || libc::accept(lfd, std::ptr::null_mut(), std::ptr::null_mut()) < 0
                {
                    return 2;
                }
            }
            libc::close(lfd);
            1
        });
        libc::close(lfd);
        let child = child?;
        // Let the last ACKs land so the table is settled.
        std::thread::sleep(Duration::from_millis(20));
        Ok(child)
    }
}

/// Hold `n` TCP listening sockets on 127.0.0.1 (kernel-chosen ports) in forked children.
pub fn hold_listeners(n: usize) -> io::Result<Holder> {
    let mut holder = Holder {
        children: Vec::new(),
        connections: 0,
    };
    let mut left = n;
    while left > 0 {
        let k = left.min(PER_CHILD);
        holder.children.push(spawn_listener_child(k)?);
        holder.connections += k;
        left -= k;
    }
    Ok(holder)
}

fn spawn_listener_child(n: usize) -> io::Result<(libc::pid_t, libc::c_int)> {
    // SAFETY: as in spawn_child: only system calls in the child.
    unsafe {
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let alen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        fork_holder(&format!("{n} listeners"), || {
            for _ in 0..n {
                let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
                if fd < 0
                    || libc::bind(fd, (&addr as *const libc::sockaddr_in).cast(), alen) < 0
                    || libc::listen(fd, 128) < 0
                {
                    return 2;
                }
            }
            1
        })
    }
}

/// Fork a holder child. `work` runs in the child (system calls only: no allocation, no
/// locks) and returns 1 on success; the child then reports that byte and blocks until the
/// parent closes the control pipe. Returns (pid, write end of the control pipe) once the child
/// has reported success.
unsafe fn fork_holder(
    what: &str,
    work: impl FnOnce() -> u8,
) -> io::Result<(libc::pid_t, libc::c_int)> {
    let mut ready = [0 as libc::c_int; 2];
    let mut ctl = [0 as libc::c_int; 2];
    check(libc::pipe2(ready.as_mut_ptr(), libc::O_CLOEXEC), "pipe")?;
    check(libc::pipe2(ctl.as_mut_ptr(), libc::O_CLOEXEC), "pipe")?;
    let pid = libc::fork();
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        libc::close(ready[0]);
        libc::close(ctl[1]);
        let status = work();
        libc::write(ready[1], (&status as *const u8).cast(), 1);
        let mut b = 0u8;
        // Block until the parent closes its end (or dies).
        while libc::read(ctl[0], (&mut b as *mut u8).cast(), 1) > 0 {}
        libc::_exit(0);
    }
    libc::close(ready[1]);
    libc::close(ctl[0]);
    let mut status = 0u8;
    let r = libc::read(ready[0], (&mut status as *mut u8).cast(), 1);
    libc::close(ready[0]);
    if r != 1 || status != 1 {
        libc::close(ctl[1]);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
        return Err(io::Error::other(format!(
            "socket holder child failed to open {what}"
        )));
    }
    Ok((pid, ctl[1]))
}

/// A process named `name` (prctl, at most 15 bytes: what `ss -p` and the exporter show) that
/// opens one non-blocking TCP connection to each of `targets` and holds them until dropped.
/// Connections that cannot complete (a full accept queue) stay in SYN-SENT.
pub fn hold_clients(name: &str, targets: &[std::net::SocketAddrV4]) -> io::Result<Holder> {
    let mut comm = [0u8; 16];
    for (d, s) in comm.iter_mut().zip(name.bytes().take(15)) {
        *d = s;
    }
    let addrs: Vec<libc::sockaddr_in> = targets
        .iter()
        .map(|t| {
            // SAFETY: sockaddr_in is plain old data; all-zero is valid.
            let mut a: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            a.sin_family = libc::AF_INET as libc::sa_family_t;
            a.sin_port = t.port().to_be();
            a.sin_addr.s_addr = u32::from_ne_bytes(t.ip().octets());
            a
        })
        .collect();
    let alen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: only system calls in the child (the address list was built before the fork).
    let child = unsafe {
        fork_holder(&format!("clients of {name}"), || {
            libc::prctl(libc::PR_SET_NAME, comm.as_ptr() as libc::c_ulong, 0, 0, 0);
            for a in &addrs {
                let c = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0);
                if c < 0 {
                    return 2;
                }
                let rc = libc::connect(c, (a as *const libc::sockaddr_in).cast(), alen);
                if rc < 0 && *libc::__errno_location() != libc::EINPROGRESS {
                    return 2;
                }
            }
            1
        })
    }?;
    Ok(Holder {
        children: vec![child],
        connections: targets.len(),
    })
}

/// A process that joins the network namespace of `ns_path` (setns), listens on 127.0.0.1:`port`
/// and opens `connections` connections to itself; it holds them until dropped. Its
/// /proc/<pid>/net shows that namespace.
pub fn hold_in_netns(ns_path: &str, port: u16, connections: usize) -> io::Result<Holder> {
    let path = std::ffi::CString::new(ns_path).map_err(io::Error::other)?;
    // SAFETY: sockaddr_in is plain old data; all-zero is valid.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    addr.sin_family = libc::AF_INET as libc::sa_family_t;
    addr.sin_port = port.to_be();
    addr.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
    let alen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: only system calls in the child (the path and address were built before).
    let child = unsafe {
        fork_holder(&format!("holder in {ns_path}"), || {
            let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            if fd < 0 || libc::setns(fd, libc::CLONE_NEWNET) < 0 {
                return 2;
            }
            let l = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            if l < 0
                || libc::bind(l, (&addr as *const libc::sockaddr_in).cast(), alen) < 0
                || libc::listen(l, 64) < 0
            {
                return 2;
            }
            for _ in 0..connections {
                let c = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
                if c < 0
                    || libc::connect(c, (&addr as *const libc::sockaddr_in).cast(), alen) < 0
                    || libc::accept(l, std::ptr::null_mut(), std::ptr::null_mut()) < 0
                {
                    return 2;
                }
            }
            1
        })
    }?;
    Ok(Holder {
        children: vec![child],
        connections,
    })
}

impl Holder {
    /// The pids of the holder processes.
    pub fn pids(&self) -> Vec<i32> {
        self.children.iter().map(|(pid, _)| *pid).collect()
    }
}
