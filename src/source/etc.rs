//! `<rootfs>/etc/services` and `<rootfs>/etc/passwd`: port and user names without any
//! resolver (no NSS, no DNS, no LDAP): the files are read as text.
//!
//! Written by hand: two `split` loops; no crate parses these files without going through libc's
//! NSS (which may contact the network).

use std::collections::HashMap;
use std::path::Path;

use super::SourceError;

/// (port, "tcp" | "udp") -> service name: the first name listed for that port wins, as
/// `getservbyport(3)` answers.
pub type Services = HashMap<(u16, String), String>;

/// uid -> user name: the first entry for a uid wins, as `getpwuid(3)` answers.
pub type Users = HashMap<u32, String>;

/// Read a whole small text file. A missing file is `Ok(None)`: minimal containers often
/// have no /etc/services, and names are then simply empty.
fn read_text(path: &Path, source: &str) -> Result<Option<String>, SourceError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SourceError::file(source, path, format!("cannot read: {e}"))),
    }
}

/// Parse services(5): `name port/protocol [aliases ...] [# comment]`.
pub fn parse_services(text: &str, path: &Path, errors: &mut Vec<SourceError>) -> Services {
    let mut out = Services::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(name), Some(port_proto)) = (fields.next(), fields.next()) else {
            errors.push(SourceError::line(
                "etc/services",
                path,
                i + 1,
                format!("expected \"name port/protocol\", found {line:?}"),
            ));
            continue;
        };
        let parsed = port_proto
            .split_once('/')
            .and_then(|(p, proto)| Some((p.parse::<u16>().ok()?, proto)));
        match parsed {
            Some((port, proto)) if !proto.is_empty() => {
                out.entry((port, proto.to_ascii_lowercase()))
                    .or_insert_with(|| name.to_string());
            }
            _ => errors.push(SourceError::line(
                "etc/services",
                path,
                i + 1,
                format!("bad port/protocol {port_proto:?}"),
            )),
        }
    }
    out
}

/// Parse passwd(5): `name:password:uid:gid:gecos:home:shell`.
pub fn parse_passwd(text: &str, path: &Path, errors: &mut Vec<SourceError>) -> Users {
    let mut out = Users::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(':').collect();
        // NIS compat lines ("+", "+@group", "-user") carry no uid: skip them silently.
        if fields[0].starts_with(['+', '-']) {
            continue;
        }
        match (
            fields.len(),
            fields.get(2).and_then(|u| u.parse::<u32>().ok()),
        ) {
            (7, Some(uid)) if !fields[0].is_empty() => {
                out.entry(uid).or_insert_with(|| fields[0].to_string());
            }
            _ => errors.push(SourceError::line(
                "etc/passwd",
                path,
                i + 1,
                "expected 7 colon-separated fields with a numeric uid",
            )),
        }
    }
    out
}

pub fn read_services(rootfs: &Path, errors: &mut Vec<SourceError>) -> Services {
    let path = rootfs.join("etc/services");
    match read_text(&path, "etc/services") {
        Ok(Some(t)) => parse_services(&t, &path, errors),
        Ok(None) => Services::new(),
        Err(e) => {
            errors.push(e);
            Services::new()
        }
    }
}

pub fn read_users(rootfs: &Path, errors: &mut Vec<SourceError>) -> Users {
    let path = rootfs.join("etc/passwd");
    match read_text(&path, "etc/passwd") {
        Ok(Some(t)) => parse_passwd(&t, &path, errors),
        Ok(None) => Users::new(),
        Err(e) => {
            errors.push(e);
            Users::new()
        }
    }
}

/// A parsed file and what its parse reported, kept while the file is unchanged (same inode,
/// size and modification time), so that every namespace of a scrape, and every scrape, does
/// not parse /etc/services again.
#[derive(Debug, Default)]
pub struct Cached<T> {
    slot: std::sync::Mutex<Option<Entry<T>>>,
}

/// The file's stamp, what was parsed, and the parse's errors.
type Entry<T> = (Stamp, std::sync::Arc<T>, Vec<SourceError>);

type Stamp = (u64, u64, std::time::SystemTime);

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.len(), m.modified().ok()?))
}

impl<T> Cached<T> {
    /// The parsed file: from the cache while the file is unchanged, else from `read`. Its
    /// errors are reported again on every call.
    pub fn get(
        &self,
        path: &Path,
        errors: &mut Vec<SourceError>,
        read: impl FnOnce(&mut Vec<SourceError>) -> T,
    ) -> std::sync::Arc<T> {
        let now = stamp(path);
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some(now), Some((then, value, errs))) = (now, slot.as_ref()) {
            if *then == now {
                errors.extend(errs.iter().cloned());
                return value.clone();
            }
        }
        let mut errs = Vec::new();
        let value = std::sync::Arc::new(read(&mut errs));
        errors.extend(errs.iter().cloned());
        *slot = now.map(|n| (n, value.clone(), errs));
        value
    }
}

/// `<rootfs>/etc/services`, parsed once per change.
pub fn services_cached(
    cache: &Cached<Services>,
    rootfs: &Path,
    errors: &mut Vec<SourceError>,
) -> std::sync::Arc<Services> {
    cache.get(&rootfs.join("etc/services"), errors, |e| {
        read_services(rootfs, e)
    })
}

/// `<rootfs>/etc/passwd`, parsed once per change.
pub fn users_cached(
    cache: &Cached<Users>,
    rootfs: &Path,
    errors: &mut Vec<SourceError>,
) -> std::sync::Arc<Users> {
    cache.get(&rootfs.join("etc/passwd"), errors, |e| {
        read_users(rootfs, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services() {
        let mut errors = Vec::new();
        let s = parse_services(
            "# comment\n\ntelnet\t\t23/tcp\nsmtp 25/tcp mail # SMTP\nsmtp2 25/tcp\ndomain 53/udp\nbroken\nbad 99999/tcp\nx 1/\n",
            Path::new("/etc/services"),
            &mut errors,
        );
        assert_eq!(
            s.get(&(23, "tcp".into())).map(String::as_str),
            Some("telnet")
        );
        assert_eq!(s.get(&(25, "tcp".into())).map(String::as_str), Some("smtp"));
        assert_eq!(
            s.get(&(53, "udp".into())).map(String::as_str),
            Some("domain")
        );
        assert_eq!(s.get(&(53, "tcp".into())), None);
        let lines: Vec<_> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![Some(7), Some(8), Some(9)]);
        assert!(errors[0].to_string().starts_with("/etc/services:7: "));
    }

    #[test]
    fn passwd() {
        let mut errors = Vec::new();
        let u = parse_passwd(
            "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534::/:/usr/sbin/nologin\ndup:x:0:0::/:/bin/sh\n+@nis\nbad:x:zz:0::/:\nshort:x:1\n",
            Path::new("/etc/passwd"),
            &mut errors,
        );
        assert_eq!(u.get(&0).map(String::as_str), Some("root"));
        assert_eq!(u.get(&65534).map(String::as_str), Some("nobody"));
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].line, Some(5));
    }

    #[test]
    fn missing_files_are_empty_not_errors() {
        let mut errors = Vec::new();
        assert!(read_services(Path::new("/nonexistent"), &mut errors).is_empty());
        assert!(read_users(Path::new("/nonexistent"), &mut errors).is_empty());
        assert!(errors.is_empty());
    }
}
