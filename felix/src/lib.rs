//! Felix-style node agent: turns the datastore into kernel state on one node.
//!
//! Pipeline (design.md §5): syncer → `calc` (pure) → sequencer → managers → drivers
//! (`driver/` is the only code that talks to netlink and nftables).

pub mod nft;
