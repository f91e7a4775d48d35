//! Builds the built-in plugins (and the test plugins) in `plugins/` and the Rust example robot
//! in `examples/rust-robot`, and puts the components in `OUT_DIR`, where the host embeds them.
//!
//! Plugins that need no WASI are built for `wasm32-unknown-unknown` and made components here
//! (`wit-component`, what `wasm-tools component new` runs): Rust's standard library built for
//! `wasm32-wasip2` imports 14 WASI interfaces into every component whether it uses them or not,
//! and the host resolves every import at every fresh instance, a third of a trivial robot's
//! cost. They are linked with [`CORE_INITIAL_MEMORY`] of initial memory, which the SDK's
//! allocator uses before it grows the memory: a memory that grew is protected again when the
//! host reuses it for the next instance, which costs more than the whole call.
//!
//! The sandbox-test plugin prints, so it and the example (which shows integrators the plain
//! `cargo build --target wasm32-wasip2`) are built for `wasm32-wasip2`. Installs missing
//! targets with rustup first, so a fresh checkout builds with plain `cargo build`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Target of the plugins that use WASI.
const WASI_TARGET: &str = "wasm32-wasip2";
/// Target of the plugins that need no WASI (made components by this script).
const CORE_TARGET: &str = "wasm32-unknown-unknown";
/// Initial memory of the plugins built for [`CORE_TARGET`]: the 1 MiB stack, the data, and
/// about 1 MiB of heap.
const CORE_INITIAL_MEMORY: &str = "-Clink-arg=--initial-memory=2097152";
/// Packages of `plugins/` built for [`CORE_TARGET`].
const CORE_PLUGINS: [&str; 9] = [
    "set-field",
    "move-to-stage",
    "add-comment",
    "create-linked-item",
    "create-task",
    "start-process",
    "noop",
    "keyword-trigger",
    "bp-step-doubler",
];
/// Packages of `plugins/` built for [`WASI_TARGET`].
const WASI_PLUGINS: [&str; 1] = ["hostile"];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir.ancestors().nth(2).expect("host/builtins/ has a grandparent").to_path_buf();
    for watched in ["plugins", "sdk", "wit", "examples/rust-robot"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target_dir = root.join("target").join("plugins");
    let plugins = root.join("plugins").join("Cargo.toml");
    ensure_target(CORE_TARGET);
    ensure_target(WASI_TARGET);
    build(&plugins, &CORE_PLUGINS, CORE_TARGET, &target_dir);
    build(&plugins, &WASI_PLUGINS, WASI_TARGET, &target_dir);
    build(&root.join("examples").join("rust-robot").join("Cargo.toml"), &[], WASI_TARGET, &target_dir);
    for package in CORE_PLUGINS {
        let module = built(&target_dir, CORE_TARGET, package);
        let bytes = std::fs::read(&module).unwrap_or_else(|e| panic!("reading {}: {e}", module.display()));
        let component = wit_component::ComponentEncoder::default()
            .module(&bytes)
            .and_then(|encoder| encoder.validate(true).encode())
            .unwrap_or_else(|e| panic!("making a component of {}: {e:#}", module.display()));
        let to = out_dir.join(module.file_name().expect("a built module has a file name"));
        std::fs::write(&to, component).unwrap_or_else(|e| panic!("writing {}: {e}", to.display()));
    }
    for package in WASI_PLUGINS.into_iter().chain(["set-deadline"]) {
        let component = built(&target_dir, WASI_TARGET, package);
        copy(&component, &out_dir.join(component.file_name().expect("a built component has a file name")));
    }
}

/// Where cargo puts the `.wasm` of `package` built for `target`.
fn built(target_dir: &Path, target: &str, package: &str) -> PathBuf {
    target_dir.join(target).join("release").join(format!("{}.wasm", package.replace('-', "_")))
}

/// Builds `packages` of a workspace (all of a crate when empty) for `target` into the shared
/// plugin target folder.
fn build(manifest: &Path, packages: &[&str], target: &str, target_dir: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--locked", "--target", target, "--manifest-path"])
        .arg(manifest)
        .args(packages.iter().flat_map(|package| ["--package", package]))
        .arg("--target-dir")
        .arg(target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", if target == CORE_TARGET { CORE_INITIAL_MEMORY } else { "" })
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .status()
        .expect("running cargo for the plugins");
    assert!(status.success(), "building {} for {target} failed", manifest.display());
}

fn copy(from: &Path, to: &Path) {
    if let Err(e) = std::fs::copy(from, to) {
        panic!("copying {} to {}: {e}", from.display(), to.display());
    }
}

/// Adds `target` with rustup when the toolchain lacks it.
fn ensure_target(target: &str) {
    let sysroot = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| PathBuf::from(s.trim()));
    let installed = sysroot.is_some_and(|s| s.join("lib").join("rustlib").join(target).exists());
    if !installed {
        let status = Command::new("rustup").args(["target", "add", target]).status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "the {target} target is missing and `rustup target add {target}` failed; install it and build again"
        );
    }
}
