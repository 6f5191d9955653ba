//! `--web.config.file`: TLS, basic auth and extra response headers, in the format of the
//! Prometheus exporter-toolkit (the file node_exporter and the other official exporters read),
//! so that an existing file works unchanged.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt          # relative paths are relative to this file
//!   key_file: server.key
//!   client_auth_type: RequireAndVerifyClientCert
//!   client_ca_file: ca.crt
//!   min_version: TLS12
//! basic_auth_users:
//!   prometheus: $2y$10$...          # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\n')
//! http_server_config:
//!   headers:
//!     X-Content-Type-Options: nosniff
//! ```
//!
//! The file and the certificates it names are re-read when they change (polled) or on SIGHUP;
//! a new file that does not load keeps the old configuration in force and the log says why.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use axum::http::{HeaderName, HeaderValue};
use base64::Engine as _;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{ring as ring_provider, CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use serde::Deserialize;
use subtle::ConstantTimeEq;

// ---------------------------------------------------------------------------------------------
// The file as written (exporter-toolkit field names). Unknown keys are errors naming the key.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    tls_server_config: Option<TlsFileConfig>,
    #[serde(default)]
    http_server_config: Option<HttpFileConfig>,
    #[serde(default)]
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFileConfig {
    #[serde(default)]
    cert_file: Option<String>,
    #[serde(default)]
    key_file: Option<String>,
    /// Inline PEM certificate (exporter-toolkit >= 0.11).
    #[serde(default)]
    cert: Option<String>,
    /// Inline PEM key.
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    client_auth_type: Option<String>,
    #[serde(default)]
    client_ca_file: Option<String>,
    /// Inline PEM client CA bundle.
    #[serde(default)]
    client_ca: Option<String>,
    #[serde(default)]
    min_version: Option<String>,
    #[serde(default)]
    max_version: Option<String>,
    #[serde(default)]
    cipher_suites: Option<Vec<String>>,
    #[serde(default)]
    prefer_server_cipher_suites: Option<bool>,
    #[serde(default)]
    curve_preferences: Option<Vec<String>>,
    #[serde(default)]
    client_allowed_sans: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFileConfig {
    /// Accepted for compatibility; the exporter serves HTTP/1.1 only.
    #[serde(default)]
    http2: Option<bool>,
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
}

// ---------------------------------------------------------------------------------------------
// The validated configuration.

/// One basic-auth user: the name is kept as a SHA-256 digest for a constant-time lookup.
struct User {
    name_digest: [u8; 32],
    hash: String,
}

/// A validated web configuration. `Default` is the configuration without a file: plain HTTP,
/// no authentication, no extra headers.
#[derive(Default)]
pub struct WebConfig {
    tls: Option<Arc<ServerConfig>>,
    users: Vec<User>,
    /// A valid bcrypt hash verified against for unknown users, so that the response time does
    /// not tell which user names exist.
    dummy_hash: OnceLock<String>,
    dummy_cost: u32,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Files whose change triggers a reload: the config file and the PEM files it names.
    watched: Vec<PathBuf>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.len())
            .field("headers", &self.headers)
            .field("watched", &self.watched)
            .finish()
    }
}

/// Headers that `http_server_config.headers` may set, with the values allowed (None: any),
/// exactly as exporter-toolkit allows them.
/// Highest bcrypt cost accepted in `basic_auth_users`.
pub const MAX_BCRYPT_COST: u32 = 17;

const ALLOWED_HEADERS: &[(&str, Option<&[&str]>)] = &[
    ("Strict-Transport-Security", None),
    ("X-Content-Type-Options", Some(&["nosniff"])),
    ("X-Frame-Options", Some(&["deny", "sameorigin"])),
    ("X-XSS-Protection", None),
    ("Content-Security-Policy", None),
];

impl WebConfig {
    /// Read and validate `path`. Errors are one line naming the file and the problem.
    pub fn load(path: &Path) -> Result<WebConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read web config {}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut cfg = Self::from_yaml(&text, base)
            .map_err(|e| format!("invalid web config {}: {e}", path.display()))?;
        cfg.watched.insert(0, path.to_path_buf());
        Ok(cfg)
    }

    /// Parse and validate the YAML text; relative file names are taken from `base`. Never
    /// panics on any input (fuzzed in tests/it/fuzz_parsers.rs).
    pub fn from_yaml(text: &str, base: &Path) -> Result<WebConfig, String> {
        let file: FileConfig = if text.trim().is_empty() {
            FileConfig::default()
        } else {
            serde_yaml_ng::from_str::<Option<FileConfig>>(text)
                .map_err(|e| e.to_string())?
                .unwrap_or_default()
        };
        let mut cfg = WebConfig::default();
        if let Some(users) = file.basic_auth_users {
            let mut max_cost = 4;
            for (name, hash) in users {
                let parts: bcrypt::HashParts = hash.parse().map_err(|_| {
                    format!(
                        "basic_auth_users.{name}: not a bcrypt hash ($2y$, $2b$ or $2a$, cost, 53 characters)"
                    )
                })?;
                if parts.get_cost() < 4 {
                    return Err(format!(
                        "basic_auth_users.{name}: bcrypt cost {} is below 4",
                        parts.get_cost()
                    ));
                }
                // Beyond this one verification takes many seconds (htpasswd stops at 17): a
                // request could hold a thread that long.
                if parts.get_cost() > MAX_BCRYPT_COST {
                    return Err(format!(
                        "basic_auth_users.{name}: bcrypt cost {} is above {MAX_BCRYPT_COST}",
                        parts.get_cost()
                    ));
                }
                max_cost = max_cost.max(parts.get_cost());
                cfg.users.push(User {
                    name_digest: sha256(name.as_bytes()),
                    hash,
                });
            }
            cfg.dummy_cost = max_cost;
        }
        if let Some(http) = file.http_server_config {
            let _ = http.http2;
            for (name, value) in http.headers.unwrap_or_default() {
                let Some((_, allowed)) = ALLOWED_HEADERS.iter().find(|(n, _)| *n == name) else {
                    return Err(format!(
                        "http_server_config.headers: header {name:?} can not be configured (allowed: {})",
                        ALLOWED_HEADERS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                    ));
                };
                if let Some(allowed) = allowed {
                    if !allowed.contains(&value.as_str()) {
                        return Err(format!(
                            "http_server_config.headers.{name}: invalid value {value:?} (allowed: {})",
                            allowed.join(", ")
                        ));
                    }
                }
                let v = HeaderValue::from_str(&value).map_err(|_| {
                    format!("http_server_config.headers.{name}: invalid header value")
                })?;
                // The names above are valid header names.
                if let Ok(n) = HeaderName::from_bytes(name.as_bytes()) {
                    cfg.headers.push((n, v));
                }
            }
        }
        if let Some(tls) = file.tls_server_config {
            if let Some((server, files)) = build_tls(&tls, base)? {
                cfg.tls = Some(Arc::new(server));
                cfg.watched.extend(files);
            }
        }
        Ok(cfg)
    }

    /// The rustls configuration when TLS is on.
    pub fn tls(&self) -> Option<Arc<ServerConfig>> {
        self.tls.clone()
    }

    pub fn auth_required(&self) -> bool {
        !self.users.is_empty()
    }

    /// Extra response headers from `http_server_config.headers`.
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }

    /// Files whose change triggers a reload.
    pub fn watched_files(&self) -> &[PathBuf] {
        &self.watched
    }

    /// Check an `Authorization` header value. Blocking (bcrypt): call off the async workers.
    /// The user is looked up in constant time over all users and an unknown user is verified
    /// against a dummy hash, so timing tells neither which users exist nor how far a name
    /// matched.
    fn verify_basic(&self, authorization: Option<&[u8]>, cache: &AuthCache) -> bool {
        if self.users.is_empty() {
            return true;
        }
        let Some((user, pass)) = authorization.and_then(decode_basic) else {
            return false;
        };
        let digest = sha256(&user);
        let mut found: Option<&User> = None;
        for u in &self.users {
            if bool::from(u.name_digest.ct_eq(&digest)) {
                found = Some(u);
            }
        }
        let hash = match found {
            Some(u) => u.hash.as_str(),
            // Same cost as the most expensive real hash: unknown users take as long.
            None => self.dummy_hash.get_or_init(|| {
                bcrypt::hash_with_salt(b"netstat_exporter", self.dummy_cost, [7u8; 16])
                    .map(|h| h.to_string())
                    .unwrap_or_default()
            }),
        };
        let mut key_input = Vec::with_capacity(user.len() + hash.len() + pass.len() + 2);
        key_input.extend_from_slice(&user);
        key_input.push(0);
        key_input.extend_from_slice(hash.as_bytes());
        key_input.push(0);
        key_input.extend_from_slice(&pass);
        let key = sha256(&key_input);
        if found.is_some() && cache.contains(&key) {
            return true;
        }
        let ok = bcrypt::verify(&pass, hash).unwrap_or(false) && found.is_some();
        if ok {
            cache.insert(key);
        }
        ok
    }
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// `Basic base64(user:pass)` -> (user, pass).
fn decode_basic(value: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let colon = raw.iter().position(|&b| b == b':')?;
    Some((raw[..colon].to_vec(), raw[colon + 1..].to_vec()))
}

/// Successful verifications, keyed by SHA-256(user, hash, password), so that a scraper with
/// the right password costs one bcrypt per configuration, not one per scrape. Bounded.
#[derive(Default)]
struct AuthCache(Mutex<HashSet<[u8; 32]>>);

const AUTH_CACHE_MAX: usize = 256;

impl AuthCache {
    fn contains(&self, k: &[u8; 32]) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).contains(k)
    }
    fn insert(&self, k: [u8; 32]) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if s.len() >= AUTH_CACHE_MAX {
            s.clear();
        }
        s.insert(k);
    }
    fn clear(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

// ---------------------------------------------------------------------------------------------
// TLS

fn resolve(base: &Path, file: &str) -> PathBuf {
    let p = Path::new(file);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// PEM bytes and the file they were read from (None: inline).
type Pem = (Vec<u8>, Option<PathBuf>);

/// PEM bytes from an inline value or a file. Returns (bytes, file read if any).
fn pem_source(
    field_inline: &str,
    inline: &Option<String>,
    field_file: &str,
    file: &Option<String>,
    base: &Path,
) -> Result<Option<Pem>, String> {
    match (nonempty(inline), nonempty(file)) {
        (Some(_), Some(_)) => Err(format!(
            "tls_server_config: {field_inline} and {field_file} are mutually exclusive"
        )),
        (Some(pem), None) => Ok(Some((pem.as_bytes().to_vec(), None))),
        (None, Some(f)) => {
            let path = resolve(base, f);
            let bytes = std::fs::read(&path).map_err(|e| {
                format!(
                    "tls_server_config.{field_file}: cannot read {}: {e}",
                    path.display()
                )
            })?;
            Ok(Some((bytes, Some(path))))
        }
        (None, None) => Ok(None),
    }
}

fn certs_from_pem(what: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls_server_config.{what}: bad PEM: {e:?}"))?;
    if certs.is_empty() {
        return Err(format!(
            "tls_server_config.{what}: no CERTIFICATE block found"
        ));
    }
    Ok(certs)
}

fn tls_version(field: &str, v: Option<&str>) -> Result<Option<u8>, String> {
    // 2 = TLS 1.2, 3 = TLS 1.3; TLS 1.0/1.1 are below what rustls speaks.
    match v {
        None | Some("") => Ok(None),
        Some("TLS10") => Ok(Some(0)),
        Some("TLS11") => Ok(Some(1)),
        Some("TLS12") => Ok(Some(2)),
        Some("TLS13") => Ok(Some(3)),
        Some(other) => Err(format!(
            "tls_server_config.{field}: unknown TLS version {other:?} (TLS10, TLS11, TLS12, TLS13)"
        )),
    }
}

/// Build the rustls server config, or None when the section turns nothing on (as
/// exporter-toolkit: an empty `tls_server_config` means plain HTTP).
fn build_tls(
    t: &TlsFileConfig,
    base: &Path,
) -> Result<Option<(ServerConfig, Vec<PathBuf>)>, String> {
    let nothing = nonempty(&t.cert_file).is_none()
        && nonempty(&t.key_file).is_none()
        && nonempty(&t.cert).is_none()
        && nonempty(&t.key).is_none()
        && nonempty(&t.client_auth_type).is_none()
        && nonempty(&t.client_ca_file).is_none()
        && nonempty(&t.client_ca).is_none();
    if nothing {
        return Ok(None);
    }
    if t.client_allowed_sans
        .as_ref()
        .is_some_and(|v| !v.is_empty())
    {
        return Err(
            "tls_server_config.client_allowed_sans is not supported by netstat_exporter (issue a dedicated client CA instead)"
                .into(),
        );
    }
    let mut files = Vec::new();
    let (cert_pem, cert_path) = pem_source("cert", &t.cert, "cert_file", &t.cert_file, base)?
        .ok_or("tls_server_config: missing cert_file (or cert)")?;
    let (key_pem, key_path) = pem_source("key", &t.key, "key_file", &t.key_file, base)?
        .ok_or("tls_server_config: missing key_file (or key)")?;
    files.extend(cert_path.clone());
    files.extend(key_path.clone());
    let certs = certs_from_pem("cert_file", &cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| format!("tls_server_config.key_file: no usable private key: {e:?}"))?;

    let provider = tls_provider(t)?;
    let versions = tls_versions(t)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    let builder = match client_verifier(t, base, &provider, &mut files)? {
        None => builder.with_no_client_auth(),
        Some(v) => builder.with_client_cert_verifier(v),
    };
    let mut server = builder.with_single_cert(certs, key).map_err(|e| {
        format!("tls_server_config: certificate and key do not make a usable pair: {e}")
    })?;
    server.ignore_client_order = t.prefer_server_cipher_suites.unwrap_or(true);
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some((server, files)))
}

/// The crypto provider: ring, narrowed by `cipher_suites` and `curve_preferences`.
fn tls_provider(t: &TlsFileConfig) -> Result<Arc<CryptoProvider>, String> {
    let mut provider: CryptoProvider = ring_provider::default_provider();
    if let Some(names) = t.cipher_suites.as_ref().filter(|v| !v.is_empty()) {
        // As in Go, cipher_suites configures TLS 1.2 suites; TLS 1.3 suites stay.
        let mut chosen: Vec<_> = provider
            .cipher_suites
            .iter()
            .filter(|s| s.tls13().is_some())
            .copied()
            .collect();
        for name in names {
            let want = if name.ends_with("CHACHA20_POLY1305") {
                format!("{name}_SHA256")
            } else {
                name.clone()
            };
            let found = provider
                .cipher_suites
                .iter()
                .find(|s| s.tls13().is_none() && format!("{:?}", s.suite()) == want)
                .copied()
                .ok_or_else(|| {
                    format!(
                        "tls_server_config.cipher_suites: {name:?} is not supported (supported: {})",
                        provider
                            .cipher_suites
                            .iter()
                            .filter(|s| s.tls13().is_none())
                            .map(|s| format!("{:?}", s.suite()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?;
            if !chosen.iter().any(|s| s.suite() == found.suite()) {
                chosen.push(found);
            }
        }
        provider.cipher_suites = chosen;
    }
    if let Some(curves) = t.curve_preferences.as_ref().filter(|v| !v.is_empty()) {
        let mut groups = Vec::new();
        for c in curves {
            let g = match c.as_str() {
                "X25519" => ring_provider::kx_group::X25519,
                "CurveP256" => ring_provider::kx_group::SECP256R1,
                "CurveP384" => ring_provider::kx_group::SECP384R1,
                other => {
                    return Err(format!(
                        "tls_server_config.curve_preferences: {other:?} is not supported (X25519, CurveP256, CurveP384)"
                    ))
                }
            };
            groups.push(g);
        }
        provider.kx_groups = groups;
    }
    Ok(Arc::new(provider))
}

/// The protocol versions from `min_version` and `max_version` (TLS 1.2 and 1.3 by default).
fn tls_versions(
    t: &TlsFileConfig,
) -> Result<&'static [&'static rustls::SupportedProtocolVersion], String> {
    let min = tls_version("min_version", t.min_version.as_deref())?.unwrap_or(2);
    let max = tls_version("max_version", t.max_version.as_deref())?.unwrap_or(3);
    if max < 2 {
        return Err(
            "tls_server_config.max_version: TLS10 and TLS11 are not supported (TLS12, TLS13)"
                .into(),
        );
    }
    if min > max {
        return Err("tls_server_config: min_version is above max_version".into());
    }
    static TLS12: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
    static TLS13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
    static BOTH: [&rustls::SupportedProtocolVersion; 2] =
        [&rustls::version::TLS13, &rustls::version::TLS12];
    // TLS10/TLS11 as a minimum: rustls starts at TLS 1.2, which is stricter.
    Ok(match (min.max(2), max) {
        (2, 2) => &TLS12,
        (3, _) => &TLS13,
        _ => &BOTH,
    })
}

/// The client certificate verifier of `client_auth_type` with the CA of `client_ca_file` (or
/// `client_ca`, whose file is added to `files`); None: no client certificate asked for.
fn client_verifier(
    t: &TlsFileConfig,
    base: &Path,
    provider: &Arc<CryptoProvider>,
    files: &mut Vec<PathBuf>,
) -> Result<Option<Arc<dyn ClientCertVerifier>>, String> {
    let auth = t.client_auth_type.as_deref().unwrap_or("");
    let ca = pem_source(
        "client_ca",
        &t.client_ca,
        "client_ca_file",
        &t.client_ca_file,
        base,
    )?;
    let roots = match &ca {
        Some((pem, path)) => {
            files.extend(path.clone());
            let mut roots = RootCertStore::empty();
            for c in certs_from_pem("client_ca_file", pem)? {
                roots
                    .add(c)
                    .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
            }
            Some(Arc::new(roots))
        }
        None => None,
    };
    match auth {
        "" | "NoClientCert" | "RequestClientCert" => Ok(None),
        "RequireAnyClientCert" => Ok(Some(Arc::new(AnyClientCert {
            algorithms: provider.signature_verification_algorithms,
        }))),
        "VerifyClientCertIfGiven" | "RequireAndVerifyClientCert" => {
            let roots = roots.ok_or_else(|| {
                format!(
                    "tls_server_config: client_auth_type {auth} needs client_ca_file (or client_ca)"
                )
            })?;
            let mut b = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
            if auth == "VerifyClientCertIfGiven" {
                b = b.allow_unauthenticated();
            }
            let v = b
                .build()
                .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
            Ok(Some(v))
        }
        other => Err(format!(
            "tls_server_config.client_auth_type: unknown {other:?} (NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert)"
        )),
    }
}

/// `RequireAnyClientCert`: a client certificate must be presented (and its handshake signature
/// must be valid) but it is not checked against a CA, as in Go.
#[derive(Debug)]
struct AnyClientCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

// ---------------------------------------------------------------------------------------------
// The configuration in force, reloadable.

/// Identity of a watched file: a change of any of these means "read it again".
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(Option<(u64, u64, i64, i64, u64)>);

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    Stamp(
        std::fs::metadata(path)
            .ok()
            .map(|m| (m.dev(), m.ino(), m.mtime(), m.mtime_nsec(), m.size())),
    )
}

/// The web configuration in force. Without `--web.config.file` it is the default (plain HTTP,
/// no auth) and never changes.
pub struct WebRuntime {
    path: Option<PathBuf>,
    current: RwLock<Arc<WebConfig>>,
    stamps: Mutex<Vec<(PathBuf, Stamp)>>,
    cache: AuthCache,
}

impl WebRuntime {
    pub fn disabled() -> WebRuntime {
        WebRuntime {
            path: None,
            current: RwLock::new(Arc::new(WebConfig::default())),
            stamps: Mutex::new(Vec::new()),
            cache: AuthCache::default(),
        }
    }

    /// Load `path` at startup: any problem is an error (the exporter does not start).
    pub fn load(path: &Path) -> Result<WebRuntime, String> {
        let cfg = WebConfig::load(path)?;
        let stamps = Self::stamps_of(path, &cfg);
        Ok(WebRuntime {
            path: Some(path.to_path_buf()),
            current: RwLock::new(Arc::new(cfg)),
            stamps: Mutex::new(stamps),
            cache: AuthCache::default(),
        })
    }

    /// From `--web.config.file` if given.
    pub fn from_option(path: Option<&Path>) -> Result<WebRuntime, String> {
        match path {
            Some(p) => Self::load(p),
            None => Ok(Self::disabled()),
        }
    }

    fn stamps_of(path: &Path, cfg: &WebConfig) -> Vec<(PathBuf, Stamp)> {
        let mut files = vec![path.to_path_buf()];
        files.extend(cfg.watched.iter().cloned());
        files.dedup();
        files
            .into_iter()
            .map(|f| {
                let s = stamp(&f);
                (f, s)
            })
            .collect()
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn current(&self) -> Arc<WebConfig> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Re-read the file now (SIGHUP). A file that does not load keeps the configuration in
    /// force; the log says why. Returns true when a new configuration was installed.
    pub fn reload(&self, why: &str) -> bool {
        let Some(path) = &self.path else {
            return false;
        };
        match WebConfig::load(path) {
            Ok(cfg) => {
                *self.stamps.lock().unwrap_or_else(|p| p.into_inner()) =
                    Self::stamps_of(path, &cfg);
                tracing::info!(
                    file = %path.display(),
                    reason = why,
                    tls = cfg.tls.is_some(),
                    users = cfg.users.len(),
                    "web config reloaded"
                );
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(cfg);
                self.cache.clear();
                true
            }
            Err(e) => {
                // Remember what we saw so that a broken file is reported once, not every poll.
                let mut stamps = self.stamps.lock().unwrap_or_else(|p| p.into_inner());
                for (f, s) in stamps.iter_mut() {
                    *s = stamp(f);
                }
                tracing::error!(reason = why, error = %e, "web config not reloaded; keeping the previous one");
                false
            }
        }
    }

    /// Reload when the file or a certificate it names changed since the last (attempted) load.
    pub fn reload_if_changed(&self) -> bool {
        if self.path.is_none() {
            return false;
        }
        let changed = {
            let stamps = self.stamps.lock().unwrap_or_else(|p| p.into_inner());
            stamps.iter().any(|(f, s)| stamp(f) != *s)
        };
        changed && self.reload("file changed")
    }

    /// Check an `Authorization` header against `basic_auth_users`. Blocking (bcrypt).
    pub fn check_auth(&self, cfg: &WebConfig, authorization: Option<&[u8]>) -> bool {
        cfg.verify_basic(authorization, &self.cache)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<WebConfig, String> {
        WebConfig::from_yaml(s, Path::new("/nonexistent"))
    }

    #[test]
    fn empty_and_null_files_are_plain_http() {
        for s in ["", "\n", "---\n", "{}", "null"] {
            let c = parse(s).unwrap();
            assert!(c.tls().is_none() && !c.auth_required(), "{s:?}");
        }
        let c = parse("tls_server_config: {}\nbasic_auth_users: {}\n").unwrap();
        assert!(c.tls().is_none() && !c.auth_required());
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = parse("tls_server_config:\n  cert_fil: x\n").unwrap_err();
        assert!(e.contains("cert_fil"), "{e}");
        let e = parse("basic_auth: {}\n").unwrap_err();
        assert!(e.contains("basic_auth"), "{e}");
        let e = parse("http_server_config:\n  headerz: {}\n").unwrap_err();
        assert!(e.contains("headerz"), "{e}");
    }

    #[test]
    fn bad_hash_names_the_user() {
        let e = parse("basic_auth_users:\n  alice: plaintext\n").unwrap_err();
        assert!(e.contains("basic_auth_users.alice"), "{e}");
    }

    #[test]
    fn headers_as_exporter_toolkit_allows() {
        let c = parse("http_server_config:\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=31536000\n").unwrap();
        assert_eq!(c.headers().len(), 2);
        let e = parse("http_server_config:\n  headers:\n    Set-Cookie: a\n").unwrap_err();
        assert!(e.contains("Set-Cookie"), "{e}");
        let e = parse("http_server_config:\n  headers:\n    X-Frame-Options: allow\n").unwrap_err();
        assert!(e.contains("X-Frame-Options"), "{e}");
    }

    #[test]
    fn tls_problems_name_the_field() {
        let e = parse("tls_server_config:\n  cert_file: a.crt\n").unwrap_err();
        assert!(e.contains("cert_file"), "{e}");
        let e = parse(
            "tls_server_config:\n  client_allowed_sans: [a]\n  cert_file: a\n  key_file: b\n",
        )
        .unwrap_err();
        assert!(e.contains("client_allowed_sans"), "{e}");
    }

    #[test]
    fn basic_auth_verification() {
        let hash = bcrypt::hash_with_salt("secret", 4, [1u8; 16])
            .unwrap()
            .to_string();
        let c = parse(&format!("basic_auth_users:\n  alice: '{hash}'\n")).unwrap();
        let cache = AuthCache::default();
        let b = |u: &str, p: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        };
        assert!(c.verify_basic(Some(b("alice", "secret").as_bytes()), &cache));
        assert!(
            c.verify_basic(Some(b("alice", "secret").as_bytes()), &cache),
            "cached"
        );
        assert!(!c.verify_basic(Some(b("alice", "wrong").as_bytes()), &cache));
        assert!(!c.verify_basic(Some(b("bob", "secret").as_bytes()), &cache));
        assert!(!c.verify_basic(None, &cache));
        assert!(!c.verify_basic(Some(b"Bearer x"), &cache));
        assert!(!c.verify_basic(Some(b"Basic !!!"), &cache));
    }
}
