//! Benchmarks, each run side by side with its baseline in the same run (`ip -batch`,
//! `nft -f`, BIRD); `make bench` prints the ratios recorded in BENCHMARKS.md.

use std::path::PathBuf;
use std::process::Command;

/// The packages whose binaries a lab runs (vrouterd, vrouter-cni/-ipam, vrctl, vrouter-reflector).
pub const LAB_PACKAGES: &[&str] = &["node", "cni", "cli", "reflector"];

/// Builds the release binaries of `packages` (a no-op when fresh) and returns the release
/// directory they are in, checking that `expect` (one of the binaries) is there. Benchmarks
/// that start the real binaries (lab, CNI) call this first.
pub fn release_binaries(packages: &[&str], expect: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut command = Command::new(cargo);
    command.args(["build", "--release", "--bins"]);
    for package in packages {
        command.args(["-p", package]);
    }
    let status = command.status().expect("run cargo build for the binaries");
    assert!(status.success(), "building the binaries failed");
    // target/release/deps/<bench> → target/release
    let exe = std::env::current_exe().expect("current exe");
    let target = exe
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "target"))
        .expect("running from a target directory")
        .join("release");
    assert!(target.join(expect).is_file(), "{}", target.display());
    target
}
