//! Where the data plane lives in bpffs so it outlives the agent:
//! `/sys/fs/bpf/failover/v<LAYOUT_VERSION>/<iface>/` holds the maps (by
//! name) and the XDP link (`link`). The directory itself is the agent's lock
//! (an exclusive `flock` for the agent's lifetime: bpffs holds no regular
//! files), so two agents never write the same maps.

use std::fs::File;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context as _, Result, bail};
use failover_common::LAYOUT_VERSION;

/// Where bpffs is mounted.
pub const BPFFS: &str = "/sys/fs/bpf";
/// Our part of it.
pub const PIN_ROOT: &str = "/sys/fs/bpf/failover";
/// The pinned XDP link's file name in a pin directory.
pub const LINK: &str = "link";
/// `statfs` magic of bpffs.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// The map layout this process pins under: [`LAYOUT_VERSION`], unless a
/// test build plays the next release ([`play_layout`]).
static LAYOUT: AtomicU32 = AtomicU32::new(LAYOUT_VERSION);

/// The map layout version this process pins its data plane under.
pub fn layout() -> u32 {
    LAYOUT.load(Ordering::Relaxed)
}

/// Makes this process pin under map layout `version` instead of
/// [`LAYOUT_VERSION`]: only for the test build that plays an upgrade to a
/// changed layout (its maps then live in a directory of their own, as a
/// real layout change would have them). Call before anything is pinned.
pub fn play_layout(version: u32) {
    LAYOUT.store(version, Ordering::Relaxed);
}

/// The pin directory of `iface` under `root` for this build's map layout.
pub fn pin_dir(root: &Path, iface: &str) -> PathBuf {
    pin_dir_in(root, layout(), iface)
}

/// The pin directory of `iface` for map layout `version` under `root`.
pub fn pin_dir_in(root: &Path, version: u32, iface: &str) -> PathBuf {
    root.join(format!("v{version}")).join(iface)
}

/// Makes sure `root` lies on bpffs: for the default [`PIN_ROOT`], mounts
/// bpffs at [`BPFFS`] unless it is mounted there already (as init systems
/// do at boot); another root must be on bpffs, or bpffs is mounted there.
pub fn ensure_bpffs(root: &Path) -> Result<()> {
    let mount_point = if root == Path::new(PIN_ROOT) {
        Path::new(BPFFS)
    } else {
        root
    };
    if is_bpffs(mount_point) {
        return Ok(());
    }
    std::fs::create_dir_all(mount_point)
        .with_context(|| format!("creating {}", mount_point.display()))?;
    if is_bpffs(mount_point) {
        return Ok(());
    }
    let source = c"bpf";
    let target = std::ffi::CString::new(mount_point.as_os_str().as_encoded_bytes())
        .context("a path with a NUL byte")?;
    // SAFETY: every pointer is a NUL-terminated string that outlives the call;
    // the data argument may be null.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            source.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| {
            format!(
                "mounting bpffs at {} (mount -t bpf bpf {})",
                mount_point.display(),
                mount_point.display()
            )
        });
    }
    log::info!("mounted bpffs at {}", mount_point.display());
    Ok(())
}

fn is_bpffs(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs writes into the zeroed struct; `c` is NUL-terminated.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == BPF_FS_MAGIC
    }
}

/// The pin directories of `iface` under `root` for map layouts other than
/// this build's.
pub fn other_layouts(root: &Path, iface: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir(root) else {
        return out;
    };
    for version in dir.flatten() {
        let name = version.file_name();
        if name.to_string_lossy() == format!("v{}", layout()) {
            continue;
        }
        let path = version.path().join(iface);
        if path.is_dir() {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Removes the pin directories under `root` (any layout) whose pinned XDP
/// link the kernel reports detached (its interface was deleted, in any
/// network namespace), or that hold the maps but no link (an agent died
/// before attaching, e.g. a takeover that failed half-way). Directories
/// another agent holds are left alone. Returns those removed.
pub fn remove_orphans(root: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(versions) = std::fs::read_dir(root) else {
        return removed;
    };
    for version in versions.flatten() {
        let Ok(ifaces) = std::fs::read_dir(version.path()) else {
            continue;
        };
        for iface in ifaces.flatten() {
            let dir = iface.path();
            let link = dir.join(LINK);
            // The counters: pinned by every layout (record maps changed names).
            let unattached = !link.exists() && dir.join(failover_common::MAP_COUNTERS).exists();
            if !unattached && link_ifindex(&link) != Some(0) {
                continue;
            }
            let Ok(lock) = Lock::take(&dir) else {
                continue;
            };
            match remove_dir(&dir) {
                Ok(()) => removed.push(dir),
                Err(e) => log::warn!("removing the orphaned pins {}: {e:#}", dir.display()),
            }
            drop(lock);
        }
    }
    removed
}

/// The interface index of the XDP link pinned at `path` (0: detached, its
/// interface gone); `None` if there is none or it is not an XDP link.
fn link_ifindex(path: &Path) -> Option<u32> {
    const BPF_OBJ_GET: libc::c_long = 7;
    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    const BPF_LINK_TYPE_XDP: u32 = 6;
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // union bpf_attr, zeroed past the fields used.
    let mut attr = [0u64; 16];
    attr[0] = c.as_ptr() as u64;
    // SAFETY: the bpf syscall reads `attr` (a valid, zeroed buffer of the
    // size passed) and the NUL-terminated path it points to.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET,
            attr.as_mut_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel just gave us this descriptor.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
    // struct bpf_link_info: type, id, prog_id, then (8-aligned) the
    // per-type union; for XDP its first field is ifindex.
    #[repr(C)]
    struct InfoAttr {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
        _zero: [u64; 14],
    }
    let mut info = [0u64; 16];
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of_val(&info) as u32,
        info: info.as_mut_ptr() as u64,
        _zero: [0; 14],
    };
    // SAFETY: the kernel writes at most info_len bytes into `info`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            &mut attr as *mut InfoAttr,
            std::mem::size_of::<InfoAttr>(),
        )
    };
    if rc != 0 || info[0] as u32 != BPF_LINK_TYPE_XDP {
        return None;
    }
    Some(info[2] as u32)
}

/// An exclusive lock on a pin directory, held until dropped.
#[derive(Debug)]
pub struct Lock {
    dir: File,
}

impl Lock {
    /// Creates `dir` if needed and locks it; fails at once if another
    /// process holds it.
    pub fn take(dir: &Path) -> Result<Lock> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let file = File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                bail!(
                    "another agent runs the data plane pinned at {} (two agents never write the same maps): stop it first",
                    dir.display()
                );
            }
            return Err(e).with_context(|| format!("locking {}", dir.display()));
        }
        Ok(Lock { dir: file })
    }

    /// The lock another agent handed over (its descriptor of `dir`, sent
    /// with SCM_RIGHTS): the same open file, so the same lock, with no
    /// instant where nobody holds it. Fails unless it is `dir`'s.
    pub fn from_handover(fd: OwnedFd, dir: &Path) -> Result<Lock> {
        let file = File::from(fd);
        let got = file.metadata().context("reading the lock handed over")?;
        let want = std::fs::metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
        if (got.dev(), got.ino()) != (want.dev(), want.ino()) {
            bail!("the lock handed over is not {}'s", dir.display());
        }
        Ok(Lock { dir: file })
    }

    /// Another descriptor of the locked directory, to hand over: whoever
    /// holds any of them holds the lock.
    pub fn share(&self) -> Result<OwnedFd> {
        Ok(self
            .dir
            .try_clone()
            .context("copying the pin directory's lock")?
            .into())
    }
}

/// Whether an agent holds `dir`'s lock (an agent runs that data plane).
pub fn held(dir: &Path) -> Result<bool> {
    let file = File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    // SAFETY: flock on a descriptor we own; the lock goes with it.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(false);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        return Ok(true);
    }
    Err(e).with_context(|| format!("locking {}", dir.display()))
}

/// Removes every pin in `dir`, then `dir` and its parent (the version
/// directory) and the root if they are left empty. Removing the link's
/// pin detaches the program once no process holds the link any more.
pub fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry?;
                std::fs::remove_file(entry.path())
                    .with_context(|| format!("removing {}", entry.path().display()))?;
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    }
    std::fs::remove_dir(dir).with_context(|| format!("removing {}", dir.display()))?;
    // Only empty directories go; another interface's stay.
    let mut parent = dir.parent();
    for _ in 0..2 {
        let Some(p) = parent else { break };
        if std::fs::remove_dir(p).is_err() {
            break;
        }
        parent = p.parent();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pin_directory_carries_the_layout_and_the_interface() {
        assert_eq!(
            pin_dir(Path::new(PIN_ROOT), "eth0"),
            PathBuf::from(format!("/sys/fs/bpf/failover/v{LAYOUT_VERSION}/eth0"))
        );
    }

    #[test]
    fn a_lock_handed_over_is_the_same_lock() {
        let root =
            std::env::temp_dir().join(format!("failover-pin-handover-{}", std::process::id()));
        let a = pin_dir_in(&root, 1, "a");
        let b = pin_dir_in(&root, 1, "b");
        let lock = Lock::take(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        // Refused for another directory.
        let e = Lock::from_handover(lock.share().unwrap(), &b).unwrap_err();
        assert!(format!("{e:#}").contains("not"), "{e:#}");
        assert!(held(&a).unwrap() && !held(&b).unwrap());
        let successor = Lock::from_handover(lock.share().unwrap(), &a).unwrap();
        // The first holder lets go: the successor still holds it.
        drop(lock);
        assert!(Lock::take(&a).is_err());
        drop(successor);
        drop(Lock::take(&a).unwrap());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn removal_takes_the_empty_parents_and_a_lock_is_exclusive() {
        let root = std::env::temp_dir().join(format!("failover-pin-test-{}", std::process::id()));
        let a = pin_dir_in(&root, 1, "a");
        let b = pin_dir_in(&root, 1, "b");
        let lock = Lock::take(&a).unwrap();
        // flock is per open file: a second open in this process conflicts too.
        assert!(Lock::take(&a).is_err());
        drop(lock);
        Lock::take(&b).unwrap();
        std::fs::write(a.join("RECORDS"), b"").unwrap();
        remove_dir(&a).unwrap();
        assert!(!a.exists() && b.exists());
        remove_dir(&b).unwrap();
        assert!(!root.join("v1").exists());
        std::fs::remove_dir(&root).ok();
    }
}
