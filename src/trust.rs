//! The root certificates TLS connections are verified against: the system's trust store, found the
//! way OpenSSL and `rustls-native-certs` find it, plus `--ca-file`. No roots are bundled in the
//! binary: they would go stale there (a CA distrusted since the build stays trusted), and a host
//! whose store went missing would quietly verify differently from curl and PHP beside it. With no
//! store at all, a request over https is a configuration error naming the fix. Verification is
//! never switched off: a proxy that inspects TLS gets its CA added (`--ca-file`), not a bypass.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use ureq::tls::{Certificate, PemItem};

/// Bundle files, first found wins: what openssl-probe (behind rustls-native-certs) looks for on
/// Linux.
const BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Arch, Gentoo
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // RHEL 7+, CentOS, Fedora
    "/etc/pki/tls/certs/ca-bundle.crt",   // Fedora, RHEL 6
    "/etc/ssl/ca-bundle.pem",             // openSUSE
    "/etc/pki/tls/cacert.pem",            // OpenELEC
    "/etc/ssl/cert.pem",                  // Alpine, macOS
];

/// OpenSSL's hashed directory, read when no bundle exists.
const HASHED_DIR: &str = "/etc/ssl/certs";

/// The roots found, and where they were looked for (for messages).
pub struct Roots {
    pub certs: Vec<Certificate<'static>>,
    pub source: String,
}

/// The system's roots: `SSL_CERT_FILE` (a bundle) and `SSL_CERT_DIR` (OpenSSL hashed directories,
/// `:`-separated) when either is set, and then only those, as rustls-native-certs does; else the
/// first bundle of [`BUNDLES`] that exists; else the certificates in the hashed directory
/// `/etc/ssl/certs`. (Where a distribution ships both, the bundle is generated from the same
/// certificates as the directory: reading both would double the work of a refresh for nothing.)
pub fn system_roots() -> Roots {
    from(
        std::env::var_os("SSL_CERT_FILE"),
        std::env::var_os("SSL_CERT_DIR"),
        BUNDLES,
        HASHED_DIR,
    )
}

/// The system's CA bundle file (PEM) where one exists: `SSL_CERT_FILE`, else the first of
/// [`BUNDLES`]. For clients that take a PEM bundle rather than certificates (Redis over TLS).
pub fn system_bundle() -> Option<PathBuf> {
    std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .into_iter()
        .chain(BUNDLES.iter().map(PathBuf::from))
        .find(|p| p.is_file())
}

/// What to tell the admin when no root certificate was found (`source`: [`Roots::source`]).
pub fn missing(source: &str) -> String {
    format!(
        "no trusted root certificate to verify TLS with ({source}). Install the ca-certificates \
         package, point SSL_CERT_FILE or SSL_CERT_DIR at a trust store, or give --ca-file"
    )
}

fn from(file: Option<OsString>, dirs: Option<OsString>, bundles: &[&str], hashed: &str) -> Roots {
    let mut certs = Vec::new();
    let mut read = Vec::new();
    if file.is_some() || dirs.is_some() {
        if let Some(file) = file {
            read.push(format!(
                "SSL_CERT_FILE={}: {}",
                Path::new(&file).display(),
                read_bundle(Path::new(&file), &mut certs)
            ));
        }
        for dir in dirs.iter().flat_map(std::env::split_paths) {
            if !dir.as_os_str().is_empty() {
                read.push(format!(
                    "SSL_CERT_DIR {}: {}",
                    dir.display(),
                    read_hashed_dir(&dir, &mut certs)
                ));
            }
        }
    } else if let Some(bundle) = bundles.iter().map(Path::new).find(|p| p.is_file()) {
        read.push(format!(
            "{}: {}",
            bundle.display(),
            read_bundle(bundle, &mut certs)
        ));
    } else {
        read.push(format!(
            "none of {} exists; {hashed}: {}",
            bundles.join(", "),
            read_hashed_dir(Path::new(hashed), &mut certs)
        ));
    }
    // A file named twice, or listed in a directory too, counts once.
    certs.sort_by(|a, b| a.der().cmp(b.der()));
    certs.dedup_by(|a, b| a.der() == b.der());
    Roots {
        certs,
        source: read.join("; "),
    }
}

/// Adds the certificates of a PEM file; says how many, or why none.
fn read_bundle(path: &Path, certs: &mut Vec<Certificate<'static>>) -> String {
    match std::fs::read(path) {
        Ok(pem) => {
            let before = certs.len();
            certs.extend(ureq::tls::parse_pem(&pem).filter_map(|item| match item {
                Ok(PemItem::Certificate(c)) => Some(c),
                _ => None,
            }));
            format!("{} certificate(s)", certs.len() - before)
        }
        Err(e) => format!("cannot be read ({e})"),
    }
}

/// Adds the certificates `openssl rehash` (c_rehash) named `HHHHHHHH.N` in `dir`: the names
/// OpenSSL itself looks up. Other files there (Debian keeps the bundle and a `.pem` link per
/// certificate beside them) are the same certificates again.
fn read_hashed_dir(dir: &Path, certs: &mut Vec<Certificate<'static>>) -> String {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => return format!("cannot be read ({e})"),
    };
    let before = certs.len();
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(is_hash_name)
        })
        .collect();
    paths.sort();
    for path in paths {
        read_bundle(&path, certs);
    }
    format!("{} certificate(s) in hashed files", certs.len() - before)
}

fn is_hash_name(name: &str) -> bool {
    name.split_once('.').is_some_and(|(hash, n)| {
        hash.len() == 8
            && hash.bytes().all(|b| b.is_ascii_hexdigit())
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_names() {
        assert!(is_hash_name("9d6523ce.0") && is_hash_name("3513523f.12"));
        // CRLs (.r0), the per-certificate links and the bundle itself are not read.
        for name in [
            "9d6523ce.r0",
            "ca-certificates.crt",
            "ISRG_Root_X1.pem",
            "9d6523c.0",
            "9d6523ce.",
        ] {
            assert!(!is_hash_name(name), "{name}");
        }
    }

    #[test]
    fn nothing_found_says_where_it_looked() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let roots = from(
            None,
            None,
            &["/nonexistent/bundle.crt"],
            missing.to_str().unwrap(),
        );
        assert!(roots.certs.is_empty());
        assert!(
            roots.source.contains("/nonexistent/bundle.crt"),
            "{}",
            roots.source
        );
        assert!(
            roots.source.contains("missing: cannot be read"),
            "{}",
            roots.source
        );
        // Set but empty: only what the variables name is read, never the usual bundles.
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let roots = from(Some(empty.clone().into()), None, BUNDLES, HASHED_DIR);
        assert!(roots.certs.is_empty(), "{}", roots.source);
        assert!(
            roots.source.contains("empty.pem: 0 certificate(s)"),
            "{}",
            roots.source
        );
    }
}
