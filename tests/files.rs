//! Hostile and unwritable files: whatever is found at an output, lock or ticket path, and however
//! the directory fails, the run ends within `--max-time` with a clear error, leaves what it found
//! untouched and, when it cannot write, has called nothing upstream. Runs that share a directory
//! serialize on its one lock.

mod common;
mod fake;

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use common::*;

/// Well past every `--max-time` used here: reaching it means the run hung.
const HUNG: Duration = Duration::from_secs(20);

fn c_path(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Special {
    Fifo,
    LinkToFile,
    Dangling,
    LinkToDevZero,
    Directory,
    Device,
}

impl Special {
    const ALL: [Special; 6] = [
        Special::Fifo,
        Special::LinkToFile,
        Special::Dangling,
        Special::LinkToDevZero,
        Special::Directory,
        Special::Device,
    ];

    /// What the error must say was found.
    fn said(self) -> &'static str {
        match self {
            Special::Fifo => "is a FIFO",
            Special::LinkToFile | Special::Dangling | Special::LinkToDevZero => {
                "is a symbolic link; wxtoken neither follows nor replaces links"
            }
            Special::Directory => "is a directory",
            Special::Device => "is a character device",
        }
    }

    /// Puts one at `path`; `scratch` holds link targets. False when this system cannot make one
    /// (a device node needs root).
    fn plant(self, path: &Path, scratch: &Path) -> bool {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        match self {
            Special::Fifo => {
                // SAFETY: a valid C string.
                assert_eq!(unsafe { libc::mkfifo(c_path(path).as_ptr(), 0o644) }, 0);
            }
            Special::LinkToFile => {
                fs::write(scratch.join("precious"), "precious").unwrap();
                std::os::unix::fs::symlink(scratch.join("precious"), path).unwrap();
            }
            Special::Dangling => {
                std::os::unix::fs::symlink(scratch.join("nowhere"), path).unwrap();
            }
            Special::LinkToDevZero => std::os::unix::fs::symlink("/dev/zero", path).unwrap(),
            Special::Directory => {
                fs::create_dir(path).unwrap();
                fs::write(path.join("inside"), "x").unwrap();
            }
            Special::Device => {
                // SAFETY: a valid C string; (1, 3) is /dev/null's number.
                let rc = unsafe {
                    libc::mknod(
                        c_path(path).as_ptr(),
                        libc::S_IFCHR | 0o644,
                        libc::makedev(1, 3),
                    )
                };
                if rc != 0 {
                    return false;
                }
            }
        }
        true
    }

    #[track_caller]
    fn assert_intact(self, path: &Path, scratch: &Path) {
        let meta = fs::symlink_metadata(path).expect("the special file was removed");
        let t = meta.file_type();
        match self {
            Special::Fifo => assert!(t.is_fifo(), "the FIFO was replaced"),
            Special::LinkToFile => {
                assert_eq!(fs::read_link(path).unwrap(), scratch.join("precious"));
                assert_eq!(
                    fs::read_to_string(scratch.join("precious")).unwrap(),
                    "precious"
                );
            }
            Special::Dangling => {
                assert_eq!(fs::read_link(path).unwrap(), scratch.join("nowhere"));
                assert!(
                    !scratch.join("nowhere").exists(),
                    "the link's target was created"
                );
            }
            Special::LinkToDevZero => {
                assert_eq!(fs::read_link(path).unwrap(), Path::new("/dev/zero"))
            }
            Special::Directory => assert!(t.is_dir() && path.join("inside").exists()),
            Special::Device => assert!(t.is_char_device()),
        }
    }
}

/// Where the special file sits.
#[derive(Clone, Copy, Debug)]
enum Place {
    /// The .json state, no token yet: found when the run prepares, before the token fetch.
    State,
    /// A .txt output beside a fresh .json: found when the fresh state is rendered.
    ExtraOutput,
    /// The ticket file, fresh token: found before the ticket fetch.
    Ticket,
    /// The ticket file, no token yet: found before the token fetch.
    TicketNoToken,
}

#[test]
fn special_files_are_refused_untouched_before_any_call() {
    let mut tried = 0;
    for place in [
        Place::State,
        Place::ExtraOutput,
        Place::Ticket,
        Place::TicketNoToken,
    ] {
        for special in Special::ALL {
            let case = format!("{special:?} at {place:?}");
            let fake = FakeWeChat::start();
            let site = Site::new();
            let txt = site.state_dir().join("access_token.txt");
            let ticket = site.state_dir().join("jsapi_ticket.json");
            let mut cmd = site.refresh(&fake);
            cmd.args(&["--max-time", "3"]);
            let (path, calls_before) = match place {
                Place::State => (site.out.clone(), 0),
                Place::ExtraOutput => {
                    site.refresh(&fake).run().expect(0);
                    cmd.add("--out", txt.to_str().unwrap());
                    (txt, 1)
                }
                Place::Ticket => {
                    site.refresh(&fake).run().expect(0);
                    cmd.args(&["--ticket", "jsapi"]);
                    (ticket, 1)
                }
                Place::TicketNoToken => {
                    cmd.args(&["--ticket", "jsapi"]);
                    (ticket, 0)
                }
            };
            if !special.plant(&path, site.dir.path()) {
                show(&format!(
                    "SKIPPED {case}: cannot create it here (needs root)"
                ));
                continue;
            }
            let b = cmd.run_bounded(HUNG);
            assert!(!b.killed, "{case}: still running after {HUNG:?}");
            assert_eq!(
                b.run.code, 73,
                "{case}: exit status; stderr:\n{}",
                b.run.stderr
            );
            assert!(
                b.run.elapsed < Duration::from_secs(5),
                "{case}: took {:?} with --max-time 3",
                b.run.elapsed
            );
            b.run
                .stderr_has(&format!("{} {}", path.display(), special.said()));
            assert_eq!(fake.token_calls(), calls_before, "{case}: token fetched");
            assert_eq!(fake.ticket_calls(), 0, "{case}: ticket fetched");
            special.assert_intact(&path, site.dir.path());
            assert!(
                !site.listing().iter().any(|n| n.ends_with(".tmp")),
                "{case}: temp file left: {:?}",
                site.listing()
            );
            tried += 1;
            fault(
                "filesystem",
                &format!("{special:?} at the {place:?} path"),
                &format!(
                    "exit 73 \"{}\" in {:.1} s (--max-time 3), left untouched, no fetch",
                    special.said().split(';').next().unwrap(),
                    b.run.elapsed.as_secs_f64()
                ),
            );
        }
    }
    show(&format!("special files: {tried} cases"));
}

#[test]
fn a_link_to_dev_zero_is_not_read() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    fs::create_dir_all(site.state_dir()).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &site.out).unwrap();
    let b = site
        .refresh(&fake)
        .args(&["--max-time", "3"])
        .run_bounded(HUNG);
    show(&format!(
        "link to /dev/zero: exit {}, {:?}, peak RSS {} KiB",
        b.run.code, b.run.elapsed, b.max_rss_kib
    ));
    assert!(!b.killed);
    b.run.expect(73).stderr_has("is a symbolic link");
    // Before: read_to_end on /dev/zero until the address-space limit aborted the process.
    assert!(b.max_rss_kib < 64 * 1024, "peak RSS {} KiB", b.max_rss_kib);
    assert_eq!(fake.token_calls(), 0);
    assert_eq!(fs::read_link(&site.out).unwrap(), Path::new("/dev/zero"));
    fault(
        "filesystem",
        "token file is a symlink to /dev/zero",
        &format!(
            "exit 73 without reading it (peak RSS {} KiB), link kept, 0 calls",
            b.max_rss_kib
        ),
    );
}

/// A regular file that is too big is treated like a corrupt one: it cannot be a file wxtoken
/// wrote and no reader can use it, so it is replaced by a good token (but never read).
#[test]
fn an_oversized_state_file_is_replaced_without_being_read() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    fs::create_dir_all(site.state_dir()).unwrap();
    fs::File::create(&site.out)
        .unwrap()
        .set_len(100 << 20)
        .unwrap();
    let b = site.refresh(&fake).run_bounded(HUNG);
    show(&format!(
        "100 MB sparse state file: exit {}, {:?}, peak RSS {} KiB",
        b.run.code, b.run.elapsed, b.max_rss_kib
    ));
    b.run
        .expect(0)
        .stderr_has("is 104857600 bytes, more than 64 KiB");
    assert!(
        b.max_rss_kib < 64 * 1024,
        "the file was read: peak RSS {} KiB",
        b.max_rss_kib
    );
    assert_eq!(fake.token_calls(), 1);
    assert!(fake.is_valid(&site.token()));
    assert!(fs::metadata(&site.out).unwrap().len() < 4096);
}

/// The lock is opened without following links: a dangling one would otherwise create its target
/// (as root, anywhere); a FIFO or a directory there is refused within --max-time.
#[test]
fn the_lock_file_must_be_a_regular_file() {
    for special in [Special::Dangling, Special::Fifo, Special::Directory] {
        let fake = FakeWeChat::start();
        let site = Site::new();
        let lock = site.state_dir().join(".wxtoken.lock");
        special.plant(&lock, site.dir.path());
        // Also where the lock used to be, so the old code shows the same hole.
        let old_lock = site.state_dir().join("access_token.json.lock");
        std::os::unix::fs::symlink(site.dir.path().join("old-target"), &old_lock).unwrap();
        let b = site
            .refresh(&fake)
            .args(&["--max-time", "3"])
            .run_bounded(HUNG);
        assert!(!b.killed, "{special:?}: hung");
        b.run
            .expect(73)
            .stderr_has(&format!("{} {}", lock.display(), special.said()));
        special.assert_intact(&lock, site.dir.path());
        assert!(!site.dir.path().join("old-target").exists());
        assert_eq!(fake.token_calls(), 0, "{special:?}");
        assert!(!site.out.exists());
        fault(
            "filesystem",
            &format!("{special:?} at the lock file path"),
            "exit 73 naming the lock, left untouched, link not followed, 0 calls",
        );
    }
}

fn wait_all(children: Vec<std::process::Child>) -> Vec<(Option<i32>, String)> {
    children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
        .collect()
}

/// The same two outputs in either order: one lock (the directory's), so one upstream call, and
/// no run deletes another's temp file as "stale".
#[test]
fn runs_into_one_directory_serialize_whatever_their_out_order() {
    let fake = FakeWeChat::start();
    fake.script(vec![Behaviour::Delay(300, Box::new(Behaviour::Normal))]);
    let site = Site::new();
    let d = site.state_dir();
    let (a, b) = (d.join("a.json"), d.join("b.json"));
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let children: Vec<_> = (0..40)
        .map(|i| {
            let (first, second) = if i % 2 == 0 { (a, b) } else { (b, a) };
            site.refresh(&fake)
                .args(&["--max-time", "30", "--out", first])
                .add("--out", second)
                .spawn()
        })
        .collect();
    for (code, stderr) in wait_all(children) {
        assert_eq!(code, Some(0), "{stderr}");
    }
    assert_eq!(fake.token_calls(), 1, "40 runs, one directory: one call");
    assert_eq!(fs::read(a).unwrap(), fs::read(b).unwrap());
    assert_eq!(site.listing(), [".wxtoken.lock", "a.json", "b.json"]);
    fault(
        "concurrency",
        "40 runs writing two files of one directory, in both orders",
        "all exit 0, 1 upstream call, both files identical, no temp file",
    );

    // One directory spelled two ways is one lock, taken once (flock twice would wait on itself).
    let twice = d.join(".").join("b.txt");
    site.refresh(&fake)
        .args(&["--max-time", "3", "--out", a])
        .add("--out", twice.to_str().unwrap())
        .run()
        .expect(0);
}

/// Outputs in two directories: every run takes both locks in the same order, whatever the order
/// of its --out, so crossing runs neither deadlock nor both fetch.
#[test]
fn runs_over_two_directories_take_the_locks_in_one_order() {
    let fake = FakeWeChat::start();
    fake.script(vec![Behaviour::Delay(300, Box::new(Behaviour::Normal))]);
    let site = Site::new();
    let a = site.dir.path().join("one").join("a.json");
    let b = site.dir.path().join("two").join("b.json");
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let children: Vec<_> = (0..20)
        .map(|i| {
            let (first, second) = if i % 2 == 0 { (a, b) } else { (b, a) };
            site.refresh(&fake)
                .args(&["--max-time", "30", "--out", first])
                .add("--out", second)
                .spawn()
        })
        .collect();
    for (code, stderr) in wait_all(children) {
        assert_eq!(code, Some(0), "{stderr}");
    }
    assert_eq!(fake.token_calls(), 1);
    assert_eq!(fs::read(a).unwrap(), fs::read(b).unwrap());
    for dir in ["one", "two"] {
        assert!(site.dir.path().join(dir).join(".wxtoken.lock").is_file());
    }
    fault(
        "concurrency",
        "20 runs over two directories, outputs in both orders",
        "no deadlock: all exit 0, 1 upstream call, files identical",
    );
}

/// Disk full: the temp file's space is reserved before the fetch, so the run fails having
/// fetched nothing (with the legacy API a fetch alone would kill the token the file holds).
#[test]
fn a_full_disk_fails_before_any_call() {
    let site = Site::new();
    let mnt = site.dir.path().join("full");
    let Some(_full) = Tmpfs::mount(&mnt, "64k") else {
        return;
    };
    let fake = FakeWeChat::start();
    let out = mnt.join("access_token.json");
    let out_s = out.to_str().unwrap();
    site.refresh(&fake)
        .args(&["--out", out_s, "--api", "legacy"])
        .run()
        .expect(0);
    let before = fs::read(&out).unwrap();
    let status = std::process::Command::new("dd")
        .args(["if=/dev/zero", "bs=4k", "count=64"])
        .arg(format!("of={}", mnt.join("filler").display()))
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "dd should have filled the file system");
    let run = site
        .refresh(&fake)
        .args(&["--out", out_s, "--api", "legacy", "--force"])
        .run();
    run.expect(73)
        .stderr_has(out_s)
        .stderr_has("No space left on device");
    assert_eq!(
        fake.token_calls(),
        1,
        "the run fetched a token it could not write"
    );
    assert_eq!(fs::read(&out).unwrap(), before);
    let v: serde_json::Value = serde_json::from_slice(&before).unwrap();
    assert!(fake.is_valid(v["access_token"].as_str().unwrap()));
    let mut names: Vec<_> = fs::read_dir(&mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != ".wxtoken-state.json" && n != "requests")
        .collect();
    names.sort();
    assert_eq!(names, [".wxtoken.lock", "access_token.json", "filler"]);
    fault(
        "filesystem",
        "disk full (64 KiB tmpfs filled by dd), --force",
        "exit 73 \"No space left on device\" before any fetch, old valid file kept, no temp file",
    );
}

/// A directory the service user cannot write (an admin's chmod, a wrong owner): 73 before any
/// call. Run as an unprivileged user, since root writes anywhere.
#[test]
fn a_read_only_directory_fails_before_any_call() {
    const NOBODY: u32 = 65534;
    let fake = FakeWeChat::start();
    let site = Site::new();
    let dir = site.state_dir();
    fs::create_dir_all(&dir).unwrap();
    let root = is_root();
    if root {
        fs::set_permissions(site.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        for p in [&site.secret, &dir] {
            std::os::unix::fs::chown(p, Some(NOBODY), Some(NOBODY)).unwrap();
        }
    }
    let run = |cmd: &Cmd| {
        let c = if root {
            cmd.command_as(NOBODY)
        } else {
            cmd.command()
        };
        run_bounded(c, HUNG)
    };
    let mut cmd = site.refresh(&fake);
    cmd.args(&["--api", "legacy"]);
    run(&cmd).run.expect(0);
    let before = fs::read(&site.out).unwrap();
    if root {
        assert_eq!(fs::metadata(&site.out).unwrap().uid(), NOBODY);
    }

    fs::set_permissions(&dir, fs::Permissions::from_mode(0o555)).unwrap();
    cmd.arg("--force");
    let b = run(&cmd);
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    b.run
        .expect(73)
        .stderr_has(&format!("cannot write {}", site.out.display()))
        .stderr_has("Permission denied");
    assert_eq!(
        fake.token_calls(),
        1,
        "the run fetched a token it could not write"
    );
    assert_eq!(fs::read(&site.out).unwrap(), before);
    assert_eq!(site.listing(), [".wxtoken.lock", "access_token.json"]);
    fault(
        "filesystem",
        "permission denied: directory mode 0555 (run as nobody)",
        "exit 73 \"Permission denied\" before any fetch, old file kept",
    );
}
