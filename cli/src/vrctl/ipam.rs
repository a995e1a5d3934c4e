//! `vrctl ipam …` over `datastore::ipam`:
//! - `show [--show-blocks]`: per pool (and per block) addresses total / in use / free, like
//!   `calicoctl ipam show`;
//! - `release --ip X [--ip Y]`: free addresses by hand (a leak `check` found);
//! - `check`: the consistency audit (`datastore::ipam::check`): addresses whose
//!   WorkloadEndpoint no longer exists, blocks affine to a vanished node, stale claims, and
//!   any inconsistency between blocks, affinities and handles.
//!
//! Exit codes: 0 ok; `release` 1 when an address was not allocated; `check` 3 when it found
//! something ([`EXIT_FINDINGS`]).

use std::fmt::Write as _;
use std::net::IpAddr;

use anyhow::Context;
use clap::{Args, Subcommand};
use datastore::ipam::{self, Ipam};

use super::connection::ConnectionArgs;
use super::output::emit;
use super::resources::runtime;

/// Exit code of `vrctl ipam check` when it found problems.
pub const EXIT_FINDINGS: u8 = 3;

/// `vrctl ipam` arguments.
#[derive(Debug, Args)]
pub struct IpamArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: IpamCommand,
}

/// `vrctl ipam` subcommands.
#[derive(Debug, Subcommand)]
pub enum IpamCommand {
    /// Address usage per pool.
    Show {
        /// Also list every block with its node.
        #[arg(long)]
        show_blocks: bool,
    },
    /// Free addresses.
    Release {
        /// The address to free (repeatable).
        #[arg(long = "ip", required = true)]
        ips: Vec<IpAddr>,
    },
    /// Find leaked addresses, orphaned blocks and inconsistencies.
    Check,
}

/// Addresses in a network of prefix length `prefix`.
fn size(ipv4: bool, prefix: u8) -> u128 {
    let bits: u8 = if ipv4 { 32 } else { 128 };
    1u128
        .checked_shl(u32::from(bits.saturating_sub(prefix)))
        .unwrap_or(u128::MAX)
}

/// Runs `vrctl ipam`.
pub fn run(args: IpamArgs, connection: &ConnectionArgs) -> anyhow::Result<u8> {
    runtime()?.block_on(async {
        let store = connection.connect().await?;
        let ipam = Ipam::new(store);
        match args.command {
            IpamCommand::Show { show_blocks } => show(&ipam, show_blocks).await,
            IpamCommand::Release { ips } => release(&ipam, &ips).await,
            IpamCommand::Check => {
                let report = ipam::check(ipam.store()).await?;
                emit(&report.to_string())?;
                Ok(if report.is_clean() { 0 } else { EXIT_FINDINGS })
            }
        }
    })
}

async fn show(ipam: &Ipam, show_blocks: bool) -> anyhow::Result<u8> {
    let pools = ipam.pools().await.context("reading IP pools")?;
    let blocks = ipam.blocks().await.context("reading IPAM blocks")?;
    let mut rows = vec![[
        "GROUPING".to_string(),
        "CIDR".to_string(),
        "IPS TOTAL".to_string(),
        "IPS IN USE".to_string(),
        "IPS FREE".to_string(),
        "NODE".to_string(),
    ]];
    for pool in &pools {
        let Some(cidr) = pool.spec.network() else {
            continue;
        };
        let inside: Vec<_> = blocks
            .iter()
            .filter(|b| cidr.contains(b.cidr.network()))
            .collect();
        let in_use: u128 = inside.iter().map(|b| b.in_use() as u128).sum();
        let total = size(cidr.is_ipv4(), cidr.prefix());
        rows.push([
            "IP Pool".to_string(),
            cidr.to_string(),
            total.to_string(),
            in_use.to_string(),
            (total - in_use).to_string(),
            String::new(),
        ]);
        if show_blocks {
            for block in inside {
                rows.push([
                    "Block".to_string(),
                    block.cidr.to_string(),
                    block.size().to_string(),
                    block.in_use().to_string(),
                    block.free().to_string(),
                    block.affine_node().unwrap_or("-").to_string(),
                ]);
            }
        }
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut text = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(text, "{}", cells.join("  ").trim_end());
    }
    emit(&text)?;
    Ok(0)
}

async fn release(ipam: &Ipam, ips: &[IpAddr]) -> anyhow::Result<u8> {
    let released = ipam.release_ips(ips).await?;
    let mut text = String::new();
    let mut code = 0;
    for ip in ips {
        if released.contains(ip) {
            let _ = writeln!(text, "released {ip}");
        } else {
            let _ = writeln!(text, "{ip} is not allocated");
            code = 1;
        }
    }
    emit(&text)?;
    Ok(code)
}
