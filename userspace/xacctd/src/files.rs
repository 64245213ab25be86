//! What the daemon does to its own process and files: owner of the files it creates
//! (`files_uid`/`files_gid`), its name (`core_proc_name`) and nice value (`proc_priority`).

use anyhow::{Context, Result};
use std::path::Path;

/// Gives `path` the configured owner and group (either may be unset).
pub fn chown(path: &Path, uid: Option<u32>, gid: Option<u32>) -> Result<()> {
    if uid.is_none() && gid.is_none() {
        return Ok(());
    }
    std::os::unix::fs::chown(path, uid, gid).with_context(|| format!("files_uid/files_gid: chown {}", path.display()))
}

/// Names the process (`/proc/PID/comm`, what `ps` and `top` show; the kernel keeps 15 bytes).
pub fn set_process_name(name: &str) {
    let short: String = name.chars().filter(|c| *c != '\0').take(15).collect();
    if let Ok(c) = std::ffi::CString::new(short) {
        if let Err(e) = nix::sys::prctl::set_name(&c) {
            tracing::warn!("core_proc_name {name}: {e}");
        }
    }
}

/// Sets the calling thread's nice value; threads it starts afterwards inherit it.
pub fn set_thread_priority(nice: i32) -> Result<()> {
    let tid = nix::unistd::gettid().as_raw();
    // SAFETY: setpriority only reads its integer arguments. On Linux PRIO_PROCESS with a
    // thread id sets that thread's nice value alone.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("setpriority({nice})"));
    }
    Ok(())
}

/// An interface's index in the daemon's network namespace (0 when there is no such
/// interface). Not read from sysfs, which shows the namespace it was mounted in.
pub fn if_index(name: &str) -> u32 {
    let Ok(c) = std::ffi::CString::new(name) else { return 0 };
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    unsafe { libc::if_nametoindex(c.as_ptr()) }
}
