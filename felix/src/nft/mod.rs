//! nftables policy dataplane: table `inet vrouter`, verdict-map dispatch to per-endpoint
//! chains, named sets for selectors (owned by the nftables engineer; filled in separately).
