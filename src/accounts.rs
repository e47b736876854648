//! Users and groups by name and number, through the C library's NSS lookups (LDAP and sssd included).

use std::ffi::{CStr, CString};

/// The first buffer for a lookup; grown on ERANGE (a group with many members needs more).
const FIRST_BUF: usize = 1024;
/// No sane entry is larger: stop growing there rather than allocate without bound.
const MAX_BUF: usize = 1 << 20;

/// Runs a reentrant lookup with a buffer that grows while the C library answers ERANGE. `call`
/// returns the C function's status and whether an entry was found.
fn lookup(mut call: impl FnMut(&mut [libc::c_char]) -> (libc::c_int, bool)) -> bool {
    let mut buf = vec![0 as libc::c_char; FIRST_BUF];
    loop {
        let (rc, found) = call(&mut buf);
        if rc == libc::ERANGE && buf.len() < MAX_BUF {
            buf = vec![0 as libc::c_char; buf.len() * 4];
            continue;
        }
        return rc == 0 && found;
    }
}

/// The gid of a group name, from whatever NSS consults (files, LDAP, sssd...).
pub fn group_id(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    let mut gid = None;
    lookup(|buf| {
        // SAFETY: an all-zero `group` is a valid value for getgrnam_r to overwrite.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::group = std::ptr::null_mut();
        // SAFETY: getgrnam_r fills `grp` with pointers into `buf`, both outliving the call.
        let rc = unsafe {
            libc::getgrnam_r(
                c.as_ptr(),
                &mut grp,
                buf.as_mut_ptr(),
                buf.len(),
                &mut found,
            )
        };
        if rc == 0 && !found.is_null() {
            gid = Some(grp.gr_gid);
        }
        (rc, !found.is_null())
    })
    .then_some(gid)
    .flatten()
}

/// The name of a gid.
pub fn group_name(gid: u32) -> Option<String> {
    let mut name = None;
    lookup(|buf| {
        // SAFETY: an all-zero `group` is a valid value for getgrgid_r to overwrite.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::group = std::ptr::null_mut();
        // SAFETY: getgrgid_r fills `grp` with pointers into `buf`, both outliving the call.
        let rc =
            unsafe { libc::getgrgid_r(gid, &mut grp, buf.as_mut_ptr(), buf.len(), &mut found) };
        if rc == 0 && !found.is_null() {
            // SAFETY: on success gr_name points to a NUL-terminated string in `buf`.
            name = Some(
                unsafe { CStr::from_ptr(grp.gr_name) }
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        (rc, !found.is_null())
    })
    .then_some(name)
    .flatten()
}

/// The name of a uid.
pub fn user_name(uid: u32) -> Option<String> {
    let mut name = None;
    lookup(|buf| {
        // SAFETY: an all-zero `passwd` is a valid value for getpwuid_r to overwrite.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: getpwuid_r fills `pwd` with pointers into `buf`, both outliving the call.
        let rc =
            unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut found) };
        if rc == 0 && !found.is_null() {
            // SAFETY: on success pw_name points to a NUL-terminated string in `buf`.
            name = Some(
                unsafe { CStr::from_ptr(pwd.pw_name) }
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        (rc, !found.is_null())
    })
    .then_some(name)
    .flatten()
}

/// The user's name for messages, else the number (a uid without an entry, e.g. a container's).
pub fn user_or_id(uid: u32) -> String {
    user_name(uid).unwrap_or_else(|| uid.to_string())
}

/// The group's name for messages, else the number.
pub fn group_or_id(gid: u32) -> String {
    group_name(gid).unwrap_or_else(|| gid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_found_both_ways() {
        assert_eq!(group_id("root"), Some(0));
        assert_eq!(group_name(0).as_deref(), Some("root"));
        assert_eq!(user_name(0).as_deref(), Some("root"));
        assert_eq!(user_or_id(0), "root");
        assert_eq!(group_or_id(0), "root");
    }

    #[test]
    fn unknown_names_and_numbers_are_none_or_the_number() {
        assert_eq!(group_id("wxtoken-no-such-group"), None);
        assert_eq!(group_id("bad\0name"), None);
        // Far above any allocated id; 4294967295 is (uid_t)-1, "no change" for chown.
        let id = 4_000_000_123;
        assert_eq!(group_name(id), None);
        assert_eq!(user_name(id), None);
        assert_eq!(user_or_id(id), id.to_string());
        assert_eq!(group_or_id(id), id.to_string());
    }

    #[test]
    fn a_too_small_buffer_is_grown() {
        let mut sizes = Vec::new();
        let ok = lookup(|buf| {
            sizes.push(buf.len());
            if buf.len() < 10_000 {
                (libc::ERANGE, false)
            } else {
                (0, true)
            }
        });
        assert!(ok);
        assert_eq!(sizes, [1024, 4096, 16384]);
    }
}
