//! The control socket against a real speaker, byte by byte: every command's codes and
//! layout as in the BIRD 2.0.12 transcripts (reference/bgp.md §1.3), errors, `restrict`,
//! the BIRD 1.6 layout, a daemon whose speaker is not up yet, and the socket file's life.
//!
//! ```text
//!   node0 (vrouter, ctl socket) ── br ── node1 (vrouter)   iBGP 64512, Mesh_<ip> names
//!   originates 10.244.0.0/26             originates 10.244.1.0/26
//! ```
#![allow(clippy::unwrap_used)]

mod bgp_support;
mod ctl_support;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use bgp::ctl::{CtlError, CtlOptions, Layout, SpeakerBackend};
use bgp::speaker::Shutdown;
use bgp_support::runtime;
use ctl_support::{Client, Pair, TempDir};
use test_support::assert_eventually;

/// Replaces every `hh:mm:ss.mmm` (and `hh:mm:ss`) with `TIME` so layouts compare exactly.
fn mask_times(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    while i < b.len() {
        if i + 8 <= b.len()
            && digits(&b[i..i + 2])
            && b[i + 2] == b':'
            && digits(&b[i + 3..i + 5])
            && b[i + 5] == b':'
            && digits(&b[i + 6..i + 8])
        {
            let ms = i + 12 <= b.len() && b[i + 8] == b'.' && digits(&b[i + 9..i + 12]);
            out.push_str(if ms { "TIME........" } else { "TIME...." });
            i += if ms { 12 } else { 8 };
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

fn requested(
    requests: &tokio::sync::watch::Receiver<Option<Shutdown>>,
    how: Shutdown,
) -> Result<(), String> {
    match *requests.borrow() {
        Some(h) if h == how => Ok(()),
        other => Err(format!(
            "shutdown request is {other:?}, waiting for {how:?}"
        )),
    }
}

#[test]
fn control_socket_speaks_birds_protocol() {
    let pair = Pair::start("ctl-protocol", CtlOptions::default());
    let mode = std::fs::metadata(&pair.socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o660);
    pair.wait_established();
    let peer = pair.peer_name();
    let (ip0, ip1) = (pair.lab.node(0).ip(), pair.lab.node(1).ip());
    let mut c = Client::connect(&pair.socket);
    assert_eq!(c.welcome, "0001 vrouterd 0.1.0 ready.\n");

    // show status
    let status = c.cmd("show status");
    assert!(
        status.starts_with(&format!(
            "1000-vrouterd 0.1.0\n1011-Router ID is {ip0}\n Hostname is "
        )),
        "{status}"
    );
    assert!(status.contains("\n Current server time is 20"), "{status}");
    assert!(status.contains("\n Last reboot on 20"), "{status}");
    assert!(
        status.ends_with("\n0013 Daemon is up and running\n"),
        "{status}"
    );

    // show protocols: BIRD 2 layout, pseudo protocols first, then the session.
    let protocols = mask_times(&c.cmd("show protocols"));
    let expected = format!(
        "2002-Name       Proto      Table      State  Since         Info\n\
         1002-device1    Device     ---        up     TIME........  \n \
         kernel1    Kernel     master4    up     TIME........  \n \
         static1    Static     master4    up     TIME........  \n \
         {peer:<10} BGP        ---        up     TIME........  Established   \n\
         0000 \n"
    );
    assert_eq!(protocols, expected);
    // abbreviations, patterns, all
    assert_eq!(mask_times(&c.cmd("sh pro")), expected);
    let details = c.cmd("show protocols all \"Mesh_*\"");
    assert!(
        details.contains(
            "\n1006-  Description:    node-to-node mesh\n   BGP state:          Established\n"
        ),
        "{details}"
    );
    assert!(details.contains(&format!("\n     Neighbor address: {ip1}\n     Neighbor AS:      64512\n     Local AS:         64512\n     Neighbor ID:      {ip1}\n")), "{details}");
    assert!(
        details
            .contains("\n   Channel ipv4\n     State:          UP\n     Table:          master4\n"),
        "{details}"
    );
    assert!(
        details.contains("\n     Routes:         1 imported, 1 exported, 0 stale\n"),
        "{details}"
    );
    assert!(details.ends_with("\n \n0000 \n"), "{details}");
    assert_eq!(
        c.cmd("show protocols \"nomatch*\""),
        "8003 No protocols match\n"
    );
    assert_eq!(c.cmd("show protocols nosuch"), "8003 No protocols match\n");

    // show route
    let routes = mask_times(&c.cmd("show route"));
    assert_eq!(
        routes,
        format!(
            "1007-Table master4:\n \
             10.244.0.0/26        blackhole [static1 TIME........] * (200)\n \
             10.244.1.0/26        unicast [{peer} TIME........] * (100) [i]\n \
             \tvia {ip1}\n\
             0000 \n"
        )
    );
    let all = c.cmd("show route for 10.244.1.7 all");
    let all = mask_times(&all);
    assert_eq!(
        all,
        format!(
            "1007-Table master4:\n \
             10.244.1.0/26        unicast [{peer} TIME........] * (100) [i]\n \
             \tvia {ip1}\n\
             1008-\tType: BGP univ\n \
             \tSelection: best, decided by only path\n\
             1012-\tBGP.origin: IGP\n \
             \tBGP.as_path: \n \
             \tBGP.next_hop: {ip1}\n \
             \tBGP.local_pref: 100\n\
             0000 \n"
        )
    );
    assert_eq!(
        c.cmd("show route for 192.0.2.1"),
        "8001 Network not found\n"
    );
    assert_eq!(
        c.cmd("show route 10.244.1.0/27"),
        "8001 Network not found\n"
    );
    assert_eq!(
        c.cmd("show route count"),
        "1007-2 of 2 routes for 2 networks in table master4\n \
         0 of 0 routes for 0 networks in table master6\n\
         0014 Total: 2 of 2 routes for 2 networks in 2 tables\n"
    );
    assert_eq!(
        c.cmd(&format!("show route table master4 protocol {peer} count")),
        "1007-1 of 2 routes for 2 networks in table master4\n0000 \n"
    );
    assert_eq!(c.cmd("show route table master6"), "0000 \n");
    assert_eq!(
        c.cmd("show route protocol nosuch"),
        "8003 No protocols match\n"
    );
    assert!(c.cmd("show route table nosuch").starts_with("9001 "));

    // show memory, show interfaces
    let memory = c.cmd("show memory");
    assert!(memory.starts_with("1018-vrouter memory usage\n                   Effective    Overhead\n Routing tables:  "), "{memory}");
    for label in [
        "Route attributes:",
        "Protocols:",
        "Current config:",
        "Standby memory:",
        "Total:",
    ] {
        assert!(memory.contains(&format!("\n {label}")), "{memory}");
    }
    assert!(
        memory.ends_with(" kB\n0000 \n") || memory.ends_with(" MB\n0000 \n"),
        "{memory}"
    );
    let interfaces = c.cmd("show interfaces");
    assert!(interfaces.starts_with("1001-lo "), "{interfaces}");
    assert!(
        interfaces.contains("\n1003-\t127.0.0.1/8 (Preferred, scope host)\n"),
        "{interfaces}"
    );
    assert!(interfaces.ends_with("\n0000 \n"), "{interfaces}");

    // parse errors name the column
    assert_eq!(
        c.cmd("show foo"),
        "9001 syntax error at column 6: unexpected 'foo', expected status, protocols, route, memory, interfaces\n"
    );
    assert_eq!(
        c.cmd("re all"),
        "9001 syntax error at column 1: 're' is ambiguous (restart, reload, restrict)\n"
    );
    c.send_raw(format!("show {}\n", "x".repeat(5000)).as_bytes());
    assert_eq!(c.reply(), "9000 Command too long\n");

    // enable / disable / restart / reload
    assert_eq!(
        c.cmd(&format!("disable {peer}")),
        format!("0009-{peer}: disabled\n0000 \n")
    );
    assert_eq!(
        c.cmd(&format!("disable {peer}")),
        format!("0008-{peer}: already disabled\n0000 \n")
    );
    let down = mask_times(&c.cmd(&format!("show protocols {peer}")));
    assert!(
        down.contains(&format!(
            "1002-{peer:<10} BGP        ---        down   TIME........  \n"
        )),
        "{down}"
    );
    assert!(
        c.cmd(&format!("show protocols all {peer}"))
            .contains("BGP state:          Down\n")
    );
    assert_eq!(
        c.cmd(&format!("reload {peer}")),
        format!("0008-{peer}: already disabled\n0000 \n")
    );
    assert_eq!(
        c.cmd(&format!("enable {peer}")),
        format!("0011-{peer}: enabled\n0000 \n")
    );
    assert_eq!(
        c.cmd(&format!("enable {peer}")),
        format!("0010-{peer}: already enabled\n0000 \n")
    );
    pair.wait_established();
    assert_eq!(
        c.cmd("restart all"),
        format!("0012-{peer}: restarted\n0000 \n")
    );
    pair.wait_established();
    assert_eq!(
        c.cmd(&format!("reload in {peer}")),
        format!("0015-{peer}: reloading\n0000 \n")
    );
    assert_eq!(
        c.cmd("reload out \"Mesh*\""),
        format!("0015-{peer}: reloading\n0000 \n")
    );
    assert_eq!(
        c.cmd(&format!("reload {peer}")),
        format!("0015-{peer}: reloading\n0000 \n")
    );
    assert_eq!(c.cmd("disable nosuch"), "8003 No protocols match\n");
    assert_eq!(
        c.cmd("disable device1"),
        "9002 device1 is not a BGP protocol; only BGP sessions can be controlled\n"
    );
    // the session survives the refreshes with its route
    assert_eventually!(pair.a.route("10.244.1.0/26"));

    // restrict: reads go on, writes are refused
    assert_eq!(c.cmd("restrict"), "0016 Access restricted\n");
    assert_eq!(c.cmd(&format!("disable {peer}")), "8007 Access denied\n");
    assert_eq!(c.cmd("down"), "8007 Access denied\n");
    assert_eq!(c.cmd("graceful restart"), "8007 Access denied\n");
    assert!(
        c.cmd("show status")
            .ends_with("0013 Daemon is up and running\n")
    );
    // another connection is not restricted
    let mut other = Client::connect(&pair.socket);
    let requests = pair.backend.shutdown_requests();
    assert_eq!(
        other.cmd("graceful restart"),
        "0025 Graceful restart requested\n"
    );
    // The request is published once the reply is written.
    assert_eventually!(requested(&requests, Shutdown::Restart));
    assert_eq!(other.cmd("down"), "0007 Shutdown ordered\n");
    assert_eventually!(requested(&requests, Shutdown::Stop));
}

#[test]
fn bird16_layout_and_a_speaker_not_yet_up() {
    let pair = Pair::start(
        "ctl-bird16",
        CtlOptions {
            layout: Layout::Bird16,
            mode: 0o600,
        },
    );
    let mode = std::fs::metadata(&pair.socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    pair.wait_established();
    let peer = pair.peer_name();
    let ip1 = pair.lab.node(1).ip();
    let mut c = Client::connect(&pair.socket);
    let protocols = mask_times(&c.cmd("show protocols"));
    assert!(protocols.starts_with("2002-name     proto    table    state  since       info\n1002-device1  Device   master   up     TIME....    \n"), "{protocols}");
    assert!(
        protocols.contains(&format!(
            "\n {peer} BGP      master   up     TIME....    Established   \n"
        )),
        "{protocols}"
    );
    let routes = mask_times(&c.cmd("show route"));
    assert!(
        routes.contains(&format!(
            "\n 10.244.1.0/26      via {ip1} [{peer} TIME....] * (100/0) [i]\n"
        )),
        "{routes}"
    );

    // A daemon whose speaker has not started: no BGP protocols, empty tables.
    let (_tx, rx) = tokio::sync::watch::channel(None);
    let idle = Arc::new(SpeakerBackend::new("vrouter-reflector", "0.1.0", rx));
    let dir = TempDir::new("ctl-idle");
    let path = dir.join("idle.ctl");
    // A stale socket file (nothing listening) is replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let server = runtime()
        .block_on(bgp::ctl::serve(
            &path,
            CtlOptions::default(),
            Arc::clone(&idle),
        ))
        .unwrap();
    // A live one is not.
    let busy = runtime().block_on(bgp::ctl::serve(
        &path,
        CtlOptions::default(),
        Arc::clone(&idle),
    ));
    assert!(matches!(busy, Err(CtlError::InUse(_))), "{busy:?}");
    let mut c = Client::connect(&path);
    assert_eq!(c.welcome, "0001 vrouter-reflector 0.1.0 ready.\n");
    let status = c.cmd("show status");
    assert!(
        status.contains("1011-Router ID is not known yet\n"),
        "{status}"
    );
    assert!(
        status.ends_with("0013 Daemon is up and running; BGP is waiting for the datastore\n"),
        "{status}"
    );
    let protocols = mask_times(&c.cmd("show protocols"));
    assert!(
        protocols.contains("1002-device1    Device     ---        down   TIME........  \n"),
        "{protocols}"
    );
    assert!(!protocols.contains(" BGP "), "{protocols}");
    assert_eq!(c.cmd("show route"), "0000 \n");
    assert_eq!(c.cmd("disable all"), "8003 No protocols match\n");
    runtime().block_on(server.shutdown());
    assert!(!path.exists(), "socket file removed at shutdown");
    assert!(c.closed());
}
