//! [`Lab`]: a ready-made multi-node underlay — one switch namespace with a bridge and N node
//! namespaces, each with an `eth0` on the bridge and an IPv4 + IPv6 address.
//!
//! ```text
//!            switch ns (br0)
//!           /     |      \
//!   node 0 eth0  node 1  … node n-1
//!   10.S.T.1/24  .2        .n        (fd00:76:S:T::1/64 …)
//! ```
//!
//! The subnet `10.S.T.0/24` is chosen per process (S = 100 + pid % 100) and per lab (T counts
//! up), so labs of parallel tests use different subnets even though their namespaces never
//! see each other. Pod/workload prefixes in tests should avoid 10.100.0.0/14–10.199.0.0/16:
//! 10.244.0.0/16 or 192.168.0.0/16 are safe.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Deref;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{HarnessError, Result};
use crate::link::Bridge;
use crate::netns::Netns;

static LAB_COUNTER: AtomicU32 = AtomicU32::new(0);

/// The interface name every lab node uses for its uplink.
pub const NODE_DEV: &str = "eth0";

/// Prefix length of the lab's IPv4 subnet.
pub const PREFIX_LEN: u8 = 24;

/// Prefix length of the lab's IPv6 subnet.
pub const PREFIX_LEN6: u8 = 64;

/// Most nodes one lab holds (host numbers 1..=250).
pub const MAX_NODES: usize = 250;

/// One node of a [`Lab`]: its namespace plus its underlay addresses. Derefs to [`Netns`], so
/// `lab.node(0).exec(&[...])` works directly.
#[derive(Debug, Clone)]
pub struct Node {
    ns: Netns,
    index: usize,
    ip: Ipv4Addr,
    ip6: Ipv6Addr,
}

impl Node {
    /// The node's namespace.
    pub fn ns(&self) -> &Netns {
        &self.ns
    }

    /// Position in the lab (0-based).
    pub fn index(&self) -> usize {
        self.index
    }

    /// IPv4 address on `eth0`.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// IPv6 address on `eth0`.
    pub fn ip6(&self) -> Ipv6Addr {
        self.ip6
    }

    /// Uplink interface name (always [`NODE_DEV`]).
    pub fn dev(&self) -> &str {
        NODE_DEV
    }
}

impl Deref for Node {
    type Target = Netns;
    fn deref(&self) -> &Netns {
        &self.ns
    }
}

/// A switched underlay of node namespaces. Everything is removed when the lab is dropped
/// (clones of node namespaces held elsewhere keep just those namespaces alive).
#[derive(Debug)]
pub struct Lab {
    bridge: Bridge,
    nodes: Vec<Node>,
    net: [u8; 3],
    net6: [u16; 4],
}

impl Lab {
    /// Builds a switch namespace with bridge `br0` and `n` nodes attached to it.
    pub fn star(n: usize) -> Result<Self> {
        let id = LAB_COUNTER.fetch_add(1, Ordering::Relaxed);
        // Both values are < 256 by construction.
        let s = u8::try_from(100 + std::process::id() % 100).unwrap_or(100);
        let t = u8::try_from(id % 256).unwrap_or(0);
        let switch = Netns::new("sw")?;
        let bridge = Bridge::new(&switch, "br0")?;
        let mut lab = Self {
            bridge,
            nodes: Vec::with_capacity(n),
            net: [10, s, t],
            net6: [0xfd00, 0x76, u16::from(s), u16::from(t)],
        };
        for _ in 0..n {
            lab.add_node()?;
        }
        Ok(lab)
    }

    /// Adds one more node to the bridge and returns it.
    pub fn add_node(&mut self) -> Result<&Node> {
        let index = self.nodes.len();
        if index >= MAX_NODES {
            return Err(HarnessError::Invalid {
                what: "lab size".to_string(),
                reason: format!("at most {MAX_NODES} nodes"),
            });
        }
        let host = u8::try_from(index + 1).unwrap_or(u8::MAX);
        let [a, b, c] = self.net;
        let ip = Ipv4Addr::new(a, b, c, host);
        let [w, x, y, z] = self.net6;
        let ip6 = Ipv6Addr::new(w, x, y, z, 0, 0, 0, u16::from(host));
        let ns = Netns::new(&format!("n{index}"))?;
        self.bridge.attach(&ns, NODE_DEV)?;
        ns.add_addr(NODE_DEV, &format!("{ip}/{PREFIX_LEN}"))?;
        ns.add_addr(NODE_DEV, &format!("{ip6}/{PREFIX_LEN6}"))?;
        self.nodes.push(Node { ns, index, ip, ip6 });
        Ok(&self.nodes[index])
    }

    /// Node `index`. Panics if out of range, like slice indexing.
    pub fn node(&self, index: usize) -> &Node {
        &self.nodes[index]
    }

    /// All nodes, in creation order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The switch namespace holding the bridge.
    pub fn switch(&self) -> &Netns {
        self.bridge.netns()
    }

    /// The bridge every node is attached to.
    pub fn bridge(&self) -> &Bridge {
        &self.bridge
    }

    /// The lab's IPv4 subnet, e.g. `10.142.3.0/24`.
    pub fn subnet(&self) -> String {
        let [a, b, c] = self.net;
        format!("{a}.{b}.{c}.0/{PREFIX_LEN}")
    }

    /// The lab's IPv6 subnet, e.g. `fd00:76:8e:3::/64`.
    pub fn subnet6(&self) -> String {
        let [w, x, y, z] = self.net6;
        format!("{}/{PREFIX_LEN6}", Ipv6Addr::new(w, x, y, z, 0, 0, 0, 0))
    }
}
