//! Builds the XDP program (ebpf/xdp) for the BPF target with aya-build and leaves the object in
//! OUT_DIR, where src/lib.rs embeds it.
//!
//! The BPF build needs `bpf-linker` and the `rust-src` component; `cargo xtask setup` installs
//! both. It uses the stable toolchain with RUSTC_BOOTSTRAP=1 (aya-build then passes
//! `-Z build-std=core`), so no nightly is needed.

use std::process::Command;

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=PATH");
    let linker = Command::new("bpf-linker").arg("--version").output();
    if !matches!(&linker, Ok(o) if o.status.success()) {
        anyhow::bail!(
            "bpf-linker not found on PATH: it links the XDP program. Run `cargo xtask setup` \
             (it runs `rustup component add rust-src` and `cargo install bpf-linker@0.10.4 --locked`)"
        );
    }
    // Inherited by the nested `cargo build` that aya-build spawns: lets stable rustc take
    // `-Z build-std=core` for the BPF target. The build script is single-threaded here.
    std::env::set_var("RUSTC_BOOTSTRAP", "1");
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../ebpf/xdp");
    aya_build::build_ebpf(
        [aya_build::Package { name: "xacct-ebpf-xdp", root_dir: root, ..Default::default() }],
        aya_build::Toolchain::Custom("stable"),
    )?;
    // aya-build only watches the program's crate; the shared types live next to it.
    println!("cargo:rerun-if-changed={}", concat!(env!("CARGO_MANIFEST_DIR"), "/../../ebpf/common"));
    Ok(())
}
