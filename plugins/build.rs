//! Builds the bundled plugins (`guest/`) for wasm32-wasip2 and writes `bundled.rs`, the list the binary embeds. If
//! the target or the build is missing, the list is empty and the build says why in a warning: the server still
//! builds and runs, with its built-in formats only.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Configuration name, crate, and the file cargo writes.
const BUNDLED: [(&str, &str, &str); 2] = [
    (
        "generic",
        "wharf-plugin-generic",
        "wharf_plugin_generic.wasm",
    ),
    ("helm", "wharf-plugin-helm", "wharf_plugin_helm.wasm"),
];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    for watched in [
        "wit",
        "guest/Cargo.toml",
        "guest/Cargo.lock",
        "guest/sdk/src",
        "guest/generic/src",
        "guest/helm/src",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            manifest.join(watched).display()
        );
    }
    let target_dir = out.join("guest-target");
    let built = wasm_target().and_then(|()| build(&manifest.join("guest/Cargo.toml"), &target_dir));
    let mut list = String::from("vec![\n");
    for (name, _, file) in BUNDLED {
        let wasm = target_dir.join("wasm32-wasip2/release").join(file);
        match &built {
            Ok(()) if wasm.is_file() => list.push_str(&format!(
                "    ({name:?}, include_bytes!({:?}) as &[u8]),\n",
                wasm.display().to_string()
            )),
            _ => list.push_str(&format!("    ({name:?}, &[] as &[u8]),\n")),
        }
    }
    list.push_str("]\n");
    if let Err(why) = built {
        println!(
            "cargo:warning=bundled plugins not built ({why}); the server keeps its built-in formats only"
        );
    }
    std::fs::write(out.join("bundled.rs"), list).expect("OUT_DIR is writable");
}

/// Checks that the toolchain has the wasm32-wasip2 standard library. rustup installs it with the toolchain that
/// rust-toolchain.toml names, but not into a toolchain installed before; then the build says how to add it, and
/// adding it makes cargo run this script again.
fn wasm_target() -> Result<(), String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    let lib = Path::new(&sysroot).join("lib/rustlib/wasm32-wasip2");
    println!("cargo:rerun-if-changed={}", lib.display());
    match lib.is_dir() {
        true => Ok(()),
        false => Err(
            "the wasm32-wasip2 target is not installed: `rustup target add wasm32-wasip2`".into(),
        ),
    }
}

fn build(manifest: &Path, target_dir: &Path) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir);
    for (_, krate, _) in BUNDLED {
        command.args(["-p", krate]);
    }
    // The outer build's settings are for the host target, not this one.
    for var in [
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
    ] {
        command.env_remove(var);
    }
    let output = command
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("cargo failed");
    Err(last.trim().to_string())
}
