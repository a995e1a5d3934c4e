//! Layer-2 plumbing between namespaces: veth pairs ([`veth_pair`]) and a Linux bridge
//! ([`Bridge`]) that node namespaces attach to, forming a small switched underlay.
//!
//! Both ends of a veth are created directly inside their target namespaces, so interface
//! names only have to be unique per namespace: every node can call its uplink `eth0`, and
//! nothing ever appears in the host's own namespace.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{HarnessError, Result};
use crate::netns::{MAX_IFNAME_LEN, Netns, check_ifname};

/// Creates a veth pair with end `a_dev` in `a` and end `b_dev` in `b`, and sets both up.
/// `a` and `b` may be the same namespace (then the names must differ).
pub fn veth_pair(a: &Netns, a_dev: &str, b: &Netns, b_dev: &str) -> Result<()> {
    check_ifname(a_dev)?;
    check_ifname(b_dev)?;
    // `ip -n A link add X type veth peer name Y netns B`: X is created in A, Y in B.
    a.ip(&[
        "link",
        "add",
        a_dev,
        "type",
        "veth",
        "peer",
        "name",
        b_dev,
        "netns",
        b.name(),
    ])?;
    a.set_up(a_dev)?;
    b.set_up(b_dev)
}

/// A Linux bridge inside a namespace; nodes join it with [`Bridge::attach`].
///
/// The bridge lives as long as its namespace (the `Bridge` value keeps a clone of it).
#[derive(Debug)]
pub struct Bridge {
    ns: Netns,
    name: String,
    next_port: AtomicU32,
}

/// Longest bridge name, leaving room for `-NNNNN` port suffixes within 15 bytes.
const MAX_BRIDGE_NAME_LEN: usize = 9;

impl Bridge {
    /// Creates bridge `name` (at most 9 bytes) in `ns` and sets it up. STP stays off, so
    /// attached ports forward at once.
    pub fn new(ns: &Netns, name: &str) -> Result<Self> {
        check_ifname(name)?;
        if name.len() > MAX_BRIDGE_NAME_LEN {
            return Err(HarnessError::Invalid {
                what: format!("bridge name {name:?}"),
                reason: format!("longer than {MAX_BRIDGE_NAME_LEN} bytes (ports need a suffix)"),
            });
        }
        ns.ip(&["link", "add", name, "type", "bridge", "stp_state", "0"])?;
        ns.set_up(name)?;
        Ok(Self {
            ns: ns.clone(),
            name: name.to_string(),
            next_port: AtomicU32::new(0),
        })
    }

    /// The namespace the bridge lives in.
    pub fn netns(&self) -> &Netns {
        &self.ns
    }

    /// The bridge's interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Connects `node` to the bridge: a veth whose end `dev` (e.g. `eth0`) is in `node`, and
    /// whose other end, a generated port `{bridge}-{n}`, is enslaved to the bridge. Both ends
    /// are up. Returns the port name.
    pub fn attach(&self, node: &Netns, dev: &str) -> Result<String> {
        let n = self.next_port.fetch_add(1, Ordering::Relaxed);
        let port = format!("{}-{n}", self.name);
        if port.len() > MAX_IFNAME_LEN {
            return Err(HarnessError::Invalid {
                what: format!("bridge port {port:?}"),
                reason: "too many ports for this bridge name".to_string(),
            });
        }
        veth_pair(&self.ns, &port, node, dev)?;
        self.ns.ip(&["link", "set", &port, "master", &self.name])?;
        Ok(port)
    }

    /// Names of the ports currently enslaved to the bridge.
    pub fn ports(&self) -> Result<Vec<String>> {
        let out = self.ns.ip(&["-o", "link", "show", "master", &self.name])?;
        // Lines look like `12: br0-0@if11: <BROADCAST,...> ...`.
        Ok(out
            .lines()
            .filter_map(|line| line.split(": ").nth(1))
            .map(|name| name.split('@').next().unwrap_or(name).to_string())
            .collect())
    }
}
