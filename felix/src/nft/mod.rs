//! The nftables policy dataplane: the policy engine's compiled ruleset rendered into table
//! `inet vrouter` and kept there.
//!
//! | module | owns |
//! |---|---|
//! | `layout` | names, the fail-closed skeleton (base chains, `iifname`/`oifname` verdict-map dispatch, failsafe ports) and rendering helpers (pure) |
//! | `rendered` | [`PolicyState`] → table content, kept and updated per change: per-endpoint and per-policy chains, named sets (pure) |
//! | `rules` | a policy's or profile's compiled rules → nft rules: family and port variants, the conditions its jumps check instead (pure) |
//! | `spec` | the nft objects as data, their `nft` text form, rule comments (pure) |
//! | `plan` | the delta between wanted and present content, ordered for one batch (pure) |
//! | `wire` | libnftnl messages for batches (`unsafe` FFI) |
//! | `dump` | dump requests and reply parsers: the read path (`unsafe` FFI) |
//! | `netlink` | the netlink socket: one `sendmsg` per batch, dumps (`unsafe` FFI) |
//! | `dataplane` | [`PolicyDataplane`]: adopt, apply, resync, rebuild |
//! | `nat` | outbound NAT (`natOutgoing`): chain `vr-nat-postrouting`, pool and node sets, [`NatDataplane`] |
//!
//! Fail closed: the base chains drop traffic from or to any `vr*` interface that is not in
//! the dispatch maps, and they are never removed, so filtering stays when the agent exits.
//! The chain semantics are those of `policy::evaluate` (see `layout` for the mark bits).

mod dataplane;
mod dump;
mod encode;
mod layout;
mod nat;
mod netlink;
mod plan;
mod rendered;
mod rules;
mod spec;
mod wire;

pub use dataplane::{ApplyReport, PolicyDataplane};
pub use layout::{MARK_ACCEPT, MARK_PASS, PolicyState};
pub use nat::{NatCounters, NatDataplane, NatReport, NatState};

/// Why the dataplane could not program or read the kernel.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// A socket operation failed.
    #[error("netlink {what}: {source}")]
    Socket {
        /// The operation.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The kernel rejected a message.
    #[error("kernel rejected {what}: {}", std::io::Error::from_raw_os_error(*errno))]
    Kernel {
        /// The message (or request) it rejected.
        what: String,
        /// Positive errno.
        errno: i32,
    },
    /// A message could not be built.
    #[error("cannot encode nftables message: {0}")]
    Encode(String),
    /// A kernel reply could not be parsed.
    #[error("cannot decode nftables {0} from the kernel")]
    Decode(String),
}

/// Renders the table content for `state` as an `nft -f` script (the same objects the
/// dataplane programs over netlink): for debugging, and for comparing against `nft` itself.
pub fn nft_script(state: &PolicyState) -> String {
    rendered::render(state).to_nft_text(crate::ownership::NFT_TABLE)
}
