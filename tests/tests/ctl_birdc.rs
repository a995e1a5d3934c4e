//! The real `birdc` (Debian `bird2`) as a client of vrouter's control socket:
//! `birdc -s <socket> show protocols` and `show route` print what a BIRD operator expects.
#![allow(clippy::unwrap_used)]

mod bgp_support;
mod ctl_support;

use std::process::Command;

use bgp::ctl::CtlOptions;
use ctl_support::Pair;

const BIRDC: &str = "/usr/sbin/birdc";

/// Runs birdc; its output, and whether it exited 0 (it does not after an error reply).
fn birdc_status(socket: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(BIRDC)
        .arg("-s")
        .arg(socket)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{BIRDC} (package bird2, `make deps`): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (out.status.success(), format!("{stdout}{stderr}"))
}

fn birdc(socket: &std::path::Path, args: &[&str]) -> String {
    let (ok, out) = birdc_status(socket, args);
    assert!(ok, "birdc {args:?} failed: {out}");
    out
}

#[test]
fn birdc_shows_protocols_and_routes() {
    let pair = Pair::start("ctl-birdc", CtlOptions::default());
    pair.wait_established();
    let peer = pair.peer_name();
    let ip1 = pair.lab.node(1).ip();

    let protocols = birdc(&pair.socket, &["show", "protocols"]);
    let lines: Vec<&str> = protocols.lines().collect();
    // birdc prints the banner, then the reply with codes stripped.
    assert!(lines.contains(&"vrouterd 0.1.0 ready."), "{protocols}");
    assert!(
        lines.contains(&"Name       Proto      Table      State  Since         Info"),
        "{protocols}"
    );
    let row = lines
        .iter()
        .find(|l| l.starts_with(&peer))
        .unwrap_or_else(|| panic!("no {peer} row in:\n{protocols}"));
    let fields: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(fields[1..4], ["BGP", "---", "up"], "{row}");
    assert_eq!(fields[5], "Established", "{row}");
    assert!(
        lines.iter().any(|l| l.starts_with("device1    Device")),
        "{protocols}"
    );
    assert!(
        !protocols.contains("1002-") && !protocols.contains("0000"),
        "codes stripped: {protocols}"
    );

    let routes = birdc(&pair.socket, &["show", "route"]);
    let lines: Vec<&str> = routes.lines().collect();
    assert!(lines.contains(&"Table master4:"), "{routes}");
    let row = lines
        .iter()
        .find(|l| l.starts_with("10.244.1.0/26"))
        .unwrap_or_else(|| panic!("no learned route in:\n{routes}"));
    assert!(row.contains(&format!("unicast [{peer} ")), "{row}");
    assert!(row.ends_with("] * (100) [i]"), "{row}");
    assert!(lines.contains(&format!("\tvia {ip1}").as_str()), "{routes}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("10.244.0.0/26        blackhole [static1 ")),
        "{routes}"
    );

    // Abbreviated commands, as BIRD users type them, and an error.
    let all = birdc(&pair.socket, &["sh", "ro", "for", "10.244.1.1", "all"]);
    assert!(all.contains("\tBGP.origin: IGP"), "{all}");
    assert!(
        all.contains("\tSelection: best, decided by only path"),
        "{all}"
    );
    let (ok, missing) = birdc_status(&pair.socket, &["show", "route", "for", "192.0.2.1"]);
    assert!(!ok && missing.contains("Network not found"), "{missing}");
    // birdc -r sends `restrict` first: writes are refused.
    let (ok, denied) = birdc_status(&pair.socket, &["-r", "disable", "all"]);
    assert!(!ok && denied.contains("Access denied"), "{denied}");
    let status = birdc(&pair.socket, &["show", "status"]);
    assert!(status.contains("Daemon is up and running"), "{status}");
}
