//! Builds the built-in plugins (and the sandbox-test plugin) in `plugins/` and the Rust example
//! robot in `examples/rust-robot` for `wasm32-wasip2`
//! and puts the components in `OUT_DIR`, where the host embeds them. Installs the target with
//! rustup first when it is missing, so a fresh checkout builds with plain `cargo build`.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
const PLUGINS: [&str; 11] = [
    "set_field",
    "move_to_stage",
    "add_comment",
    "create_linked_item",
    "create_task",
    "start_process",
    "hostile",
    "noop",
    "keyword_trigger",
    "bp_step_doubler",
    "set_deadline",
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir.parent().expect("host/ has a parent").to_path_buf();
    for watched in ["plugins", "sdk", "wit", "examples/rust-robot"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target_dir = root.join("target").join("plugins");
    ensure_target();
    build(&root.join("plugins").join("Cargo.toml"), &target_dir);
    build(&root.join("examples").join("rust-robot").join("Cargo.toml"), &target_dir);
    for name in PLUGINS {
        let built = target_dir.join(TARGET).join("release").join(format!("{name}.wasm"));
        copy(&built, &out_dir.join(format!("{name}.wasm")));
    }
}

/// Builds a crate or workspace for the wasm target into the shared plugin target folder.
fn build(manifest: &Path, target_dir: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--locked", "--target", TARGET, "--manifest-path"])
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .status()
        .expect("running cargo for the plugins");
    assert!(status.success(), "building {} for {TARGET} failed", manifest.display());
}

fn copy(from: &Path, to: &Path) {
    if let Err(e) = std::fs::copy(from, to) {
        panic!("copying {} to {}: {e}", from.display(), to.display());
    }
}

/// Adds the wasm32-wasip2 target with rustup when the toolchain lacks it.
fn ensure_target() {
    let sysroot = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| PathBuf::from(s.trim()));
    let installed = sysroot.is_some_and(|s| s.join("lib").join("rustlib").join(TARGET).exists());
    if !installed {
        let status = Command::new("rustup").args(["target", "add", TARGET]).status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "the {TARGET} target is missing and `rustup target add {TARGET}` failed; install it and build again"
        );
    }
}
