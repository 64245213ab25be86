//! Link options for the BPF object (nothing on the host, where this crate is an empty binary).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("bpf") {
        // bpf-linker passes `--bpf-expand-memcpy-in-order` to LLVM by default, which turns off
        // LLVM's inline expansion of every memset and memmove: zeroing the 56-byte flow key then
        // becomes a call to a byte-at-a-time loop (~280 instructions per packet). Without it,
        // LLVM emits a few 8-byte stores. (The in-order expansion only matters to JITs that
        // pattern-match memcpy sequences, which the kernel's do not need.)
        println!("cargo:rustc-link-arg=--disable-expand-memcpy-in-order");
        // Packet reads of 2, 4 and 8 bytes at any offset instead of byte by byte (x86 and arm64
        // JITs handle misaligned loads; the verifier allows them on packet pointers where the
        // architecture does). Stack writes must still be aligned: the shared types are laid out
        // so that every field's stores are.
        println!("cargo:rustc-link-arg=--cpu-features=+allows-misaligned-mem-access");
    }
}
