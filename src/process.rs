//! The process's start and end, as Rust's runtime would do them: `src/main.rs` is entered by the C
//! runtime directly (`#![no_main]`). Rust's own start-up, on Linux, also reads `/proc/self/maps`
//! (glibc's `pthread_getattr_np`, to place a stack guard) and sets up signal handlers and an
//! alternate stack for a stack-overflow message: 13 % of a timer tick's wall time and 109,000
//! instructions (docs/PERFORMANCE.md) for a process that lives two milliseconds. What of it wxtoken
//! needs is here.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;

/// Before anything else.
pub fn start() {
    standard_fds_open();
    // A closed pipe (`wxtoken status | head -0`) is an EPIPE the writers ignore, not a death by
    // SIGPIPE: a monitoring plugin keeps its exit status. Children (hooks) get the default back:
    // std's Command resets SIGPIPE in the child.
    // SAFETY: setting a signal's disposition to SIG_IGN before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// stdin, stdout and stderr must be open: if one were closed, the next file opened would take its
/// number, and a log line written to stderr could land in a token file. A closed one is opened on
/// /dev/null, as Rust's runtime does; abort if even that fails.
fn standard_fds_open() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: poll on an array of three initialised pollfd.
    let polled = loop {
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) };
        if r != -1 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break r != -1;
        }
    };
    for pfd in fds {
        let closed = if polled {
            pfd.revents & libc::POLLNVAL != 0
        } else {
            // Some sandboxes refuse poll: ask each descriptor instead.
            // SAFETY: F_GETFD only reads the descriptor's flags.
            let r = unsafe { libc::fcntl(pfd.fd, libc::F_GETFD) };
            r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EBADF)
        };
        // SAFETY: open of a constant C string; the lowest free descriptor is the closed one.
        if closed && unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) } != pfd.fd {
            std::process::abort();
        }
    }
}

/// The command line, from the C runtime's argv (portable where Rust's `std::env::args` needs
/// Rust's start-up to have seen it).
///
/// # Safety
/// `argv` must hold `argc` pointers to NUL-terminated strings, as the C runtime passes them.
pub unsafe fn args(argc: std::ffi::c_int, argv: *const *const std::ffi::c_char) -> Vec<OsString> {
    let count = usize::try_from(argc).unwrap_or(0);
    (0..count)
        .map(|i| {
            // SAFETY: the caller's promise: argv[i] for i < argc is a C string.
            let arg = unsafe { std::ffi::CStr::from_ptr(*argv.add(i)) };
            OsStr::from_bytes(arg.to_bytes()).to_os_string()
        })
        .collect()
}

/// After everything: what is still buffered for stdout is written (Rust's runtime flushes it at
/// exit), and the exit status as the C runtime takes it.
pub fn finish(code: ExitCode) -> i32 {
    let _ = std::io::stdout().lock().flush();
    // ExitCode has no accessor on stable Rust; every code wxtoken makes comes from a u8.
    (0..=u8::MAX)
        .find(|&n| ExitCode::from(n) == code)
        .map_or(1, i32::from)
}
