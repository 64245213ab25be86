//! Private network namespaces for live-capture tests: a thread of its own unshares one (and
//! the processes it starts live in it), so veth pairs and routes vanish with the thread.

use std::process::Command;

/// Runs a command that must succeed.
pub fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("spawn {args:?}: {e}"));
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Runs `f` on a thread in a new network namespace with `lo` up; false (after
/// `root_or_skip`) when it cannot be made.
pub fn in_own_namespace(f: impl FnOnce() + Send + 'static) -> bool {
    if !xacct_perf::root_or_skip("a network namespace") {
        return false;
    }
    let h = std::thread::Builder::new()
        .name("netns".into())
        .spawn(move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
            // Before any interface exists, so none sends IPv6 noise.
            let _ = std::fs::write("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
            let _ = std::fs::write("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
            sh(&["ip", "link", "set", "lo", "up"]);
            f()
        })
        .expect("spawn netns thread");
    if let Err(panic) = h.join() {
        std::panic::resume_unwind(panic);
    }
    true
}

/// A veth pair `a`–`b`, both up.
pub fn veth(a: &str, b: &str) {
    sh(&["ip", "link", "add", a, "type", "veth", "peer", "name", b]);
    sh(&["ip", "link", "set", a, "up"]);
    sh(&["ip", "link", "set", b, "up"]);
}

/// An interface's index in this thread's namespace (sysfs shows the one it was mounted in).
pub fn ifindex(dev: &str) -> u32 {
    let n = xacctd::files::if_index(dev);
    assert!(n != 0, "no interface {dev}");
    n
}
