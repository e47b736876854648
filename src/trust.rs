//! The root certificates TLS is verified against: the system's store plus `--ca-file`.
//!
//! The system's store as `rustls-native-certs` finds it. No roots are bundled in the binary: they
//! would go stale there (a CA distrusted since the build stays trusted), and a host whose store
//! went missing would quietly verify differently from curl and PHP beside it. With no store at
//! all, a request over https is a configuration error naming the fix. Verification is never
//! switched off: a proxy that inspects TLS gets its CA added (`--ca-file`), not a bypass.

use std::fmt::Write as _;

use rustls_native_certs::CertificateResult;
use ureq::tls::Certificate;

/// The roots found, and where they were looked for (for messages).
pub struct Roots {
    pub certs: Vec<Certificate<'static>>,
    pub source: String,
}

/// The system's roots, read by `rustls_native_certs::load_native_certs`: `SSL_CERT_FILE` (a
/// bundle) and `SSL_CERT_DIR` (`:`-separated directories) when either is set, and then only
/// those, as OpenSSL does; else the distribution's bundle and certificate directories.
pub fn system_roots() -> Roots {
    let file = std::env::var_os("SSL_CERT_FILE");
    let dirs = std::env::var_os("SSL_CERT_DIR");
    describe(
        file.as_deref(),
        dirs.as_deref(),
        rustls_native_certs::load_native_certs(),
    )
}

/// The system's roots as one PEM bundle, for clients that take PEM rather than certificates
/// (Redis over TLS with --ca-file appended): the same roots the HTTPS client trusts.
pub fn system_bundle_pem() -> Vec<u8> {
    to_pem(&rustls_native_certs::load_native_certs().certs)
}

/// DER certificates as PEM blocks (64 base64 characters a line).
fn to_pem<C: AsRef<[u8]>>(certs: &[C]) -> Vec<u8> {
    let mut pem = Vec::new();
    for cert in certs {
        pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        for line in base64(cert.as_ref()).as_bytes().chunks(64) {
            pem.extend_from_slice(line);
            pem.push(b'\n');
        }
        pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
    }
    pem
}

/// What to tell the admin when no root certificate was found (`source`: [`Roots::source`]).
pub fn missing(source: &str) -> String {
    format!(
        "no trusted root certificate to verify TLS with ({source}). Install the ca-certificates \
         package, point SSL_CERT_FILE or SSL_CERT_DIR at a trust store, or give --ca-file"
    )
}

/// The certificates and a description of where they came from: the variables when
/// rustls-native-certs read them (the same rule as its own), how many were found, and every
/// file or directory it could not read.
fn describe(
    file: Option<&std::ffi::OsStr>,
    dirs: Option<&std::ffi::OsStr>,
    found: CertificateResult,
) -> Roots {
    let dirs = dirs.filter(|d| std::env::split_paths(d).any(|p| !p.as_os_str().is_empty()));
    let mut named = Vec::new();
    if let Some(f) = file {
        named.push(format!("SSL_CERT_FILE={}", f.to_string_lossy()));
    }
    if let Some(d) = dirs {
        named.push(format!("SSL_CERT_DIR={}", d.to_string_lossy()));
    }
    let mut source = if named.is_empty() {
        "the system's trust store (SSL_CERT_FILE and SSL_CERT_DIR unset)".to_string()
    } else {
        named.join(", ")
    };
    let _ = write!(source, ": {} certificate(s)", found.certs.len());
    for e in &found.errors {
        let _ = write!(source, "; {e}");
    }
    Roots {
        certs: found
            .certs
            .iter()
            .map(|c| Certificate::from_der(c).to_owned())
            .collect(),
        source,
    }
}

/// Standard base64 with padding (RFC 4648), for PEM.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn nothing_found_says_where_it_looked_and_why() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let found = rustls_native_certs::load_certs_from_paths(Some(&missing), None);
        let roots = describe(Some(missing.as_os_str()), None, found);
        assert!(roots.certs.is_empty());
        let want = format!("SSL_CERT_FILE={}: 0 certificate(s); ", missing.display());
        assert!(roots.source.starts_with(&want), "{}", roots.source);
        // The reason names the file that could not be read.
        assert!(
            roots.source.contains(&format!("'{}'", missing.display())),
            "{}",
            roots.source
        );
        // Set but empty: the file is named, no reason is invented.
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let found = rustls_native_certs::load_certs_from_paths(Some(&empty), None);
        let roots = describe(Some(empty.as_os_str()), Some(OsStr::new("")), found);
        assert_eq!(
            roots.source,
            format!("SSL_CERT_FILE={}: 0 certificate(s)", empty.display())
        );
        let roots = describe(None, Some(OsStr::new(":")), CertificateResult::default());
        assert!(
            roots.source.starts_with("the system's trust store"),
            "{}",
            roots.source
        );
    }

    #[test]
    fn the_pem_bundle_is_what_a_pem_writer_writes() {
        let a = rcgen::generate_simple_self_signed(vec!["a.example".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b.example".into()]).unwrap();
        let pem = to_pem(&[a.cert.der().to_vec(), b.cert.der().to_vec()]);
        let want = format!("{}{}", a.cert.pem(), b.cert.pem()).replace("\r\n", "\n");
        assert_eq!(String::from_utf8(pem).unwrap(), want);
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
    }
}
