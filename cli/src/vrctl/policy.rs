//! `vrctl policy …`: `selector` (evaluate a selector against labels and print its canonical
//! form) and `test` (decide a flow against a model and explain the verdict).
//!
//! Exit codes: `selector` 0 (match or no match) / 1 (parse error); `test` 0 allow, 3 deny,
//! 1 error.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand};
use datastore::resource::Kind;
use datastore::resource_store::ResourceStore;
use policy::convert::model_from_resources;
use policy::model::{EndpointId, Labels};
use policy::rule::Protocol;
use policy::{Flow, Model, Peer, Selector, Verdict};

use super::connection::ConnectionArgs;
use super::resources::runtime;

/// Exit code for a denied flow.
pub const EXIT_DENY: u8 = 3;

/// `vrctl policy` arguments.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: PolicyCommand,
}

/// `vrctl policy` subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Evaluate a Calico selector against a label set and print its canonical form.
    Selector {
        /// The selector, e.g. `app == "web" && has(tier)`.
        expr: String,
        /// Labels as `k=v,k2=v2`.
        #[arg(long, default_value = "")]
        labels: String,
    },
    /// Decide a flow and explain the verdict (exit 0 allow, 3 deny, 1 error).
    Test(TestArgs),
}

/// `vrctl policy test` arguments.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Source: `<namespace>/<endpoint>` or an IP address.
    #[arg(long)]
    pub from: String,
    /// Destination: `<namespace>/<endpoint>` or an IP address.
    #[arg(long)]
    pub to: String,
    /// Protocol: TCP, UDP, SCTP, ICMP, ICMPv6 or a number.
    #[arg(long, default_value = "TCP")]
    pub protocol: String,
    /// Destination port.
    #[arg(long)]
    pub port: Option<u16>,
    /// Source port.
    #[arg(long)]
    pub src_port: Option<u16>,
    /// ICMP type.
    #[arg(long)]
    pub icmp_type: Option<u8>,
    /// ICMP code.
    #[arg(long)]
    pub icmp_code: Option<u8>,
    /// Model YAML files (Namespaces, WorkloadEndpoints, NetworkSets, policies, `kind: List`,
    /// multi-document). Without `-f` the model is read from the datastore.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<PathBuf>,
}

/// Runs a `vrctl policy` command, printing to stdout; returns the process exit code.
/// `connection` is used only when the model comes from the datastore.
pub fn run(args: PolicyArgs, connection: &ConnectionArgs) -> anyhow::Result<u8> {
    match args.command {
        PolicyCommand::Selector { expr, labels } => {
            let selector = Selector::parse(&expr)?;
            let labels = parse_labels(&labels)?;
            let verdict = if selector.matches(&labels) {
                "match"
            } else {
                "no match"
            };
            println!("{verdict}\ncanonical: {}", selector.canonical());
            Ok(0)
        }
        PolicyCommand::Test(t) => test(&t, connection),
    }
}

/// Parses `k=v,k2=v2`.
pub fn parse_labels(text: &str) -> anyhow::Result<Labels> {
    let mut out = Labels::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| anyhow!("label {pair:?} is not key=value"))?;
        if !policy::selector::is_valid_label(k) {
            bail!("{k:?} is not a valid label key");
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

fn peer(text: &str) -> anyhow::Result<Peer> {
    if let Ok(addr) = text.parse::<IpAddr>() {
        return Ok(Peer::Addr(addr));
    }
    match text.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(Peer::Endpoint(EndpointId::new(ns, name)))
        }
        _ => bail!("{text:?} is neither <namespace>/<name> nor an IP address"),
    }
}

fn load_files(files: &[PathBuf]) -> anyhow::Result<Model> {
    let mut resources = Vec::new();
    for f in files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        let docs = datastore::resource::parse_and_validate_documents(&text)
            .map_err(|e| anyhow!("{}: {e}", f.display()))?;
        resources.extend(docs);
    }
    Ok(model_from_resources(&resources)?)
}

/// The kinds a flow decision depends on.
const MODEL_KINDS: [Kind; 9] = [
    Kind::Namespace,
    Kind::WorkloadEndpoint,
    Kind::NetworkSet,
    Kind::GlobalNetworkSet,
    Kind::Tier,
    Kind::Profile,
    Kind::NetworkPolicy,
    Kind::GlobalNetworkPolicy,
    Kind::K8sNetworkPolicy,
];

/// Reads every resource the model needs from the datastore (all namespaces).
fn load_datastore(connection: &ConnectionArgs) -> anyhow::Result<Model> {
    let resources = runtime()?.block_on(async {
        let store = ResourceStore::new(connection.connect().await?);
        let mut resources = Vec::new();
        for kind in MODEL_KINDS {
            resources.extend(store.list(kind, None).await?);
        }
        anyhow::Ok(resources)
    })?;
    Ok(model_from_resources(&resources)?)
}

fn test(t: &TestArgs, connection: &ConnectionArgs) -> anyhow::Result<u8> {
    let model = if t.files.is_empty() {
        load_datastore(connection)?
    } else {
        load_files(&t.files)?
    };
    let protocol = Protocol::parse(&t.protocol)?;
    if protocol.supports_ports() && t.port.is_none() {
        bail!("--port is required for {protocol}");
    }
    let flow = Flow {
        src: peer(&t.from)?,
        dst: peer(&t.to)?,
        protocol,
        src_port: t.src_port,
        dst_port: t.port,
        icmp: t.icmp_type.map(|ty| (ty, t.icmp_code)),
    };
    let verdict = model.evaluate(&flow)?;
    println!("{verdict}");
    Ok(if verdict.verdict == Verdict::Allow {
        0
    } else {
        EXIT_DENY
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_peers_parse() {
        let l = parse_labels("app=web, tier=db,empty=").expect("labels");
        assert_eq!(l.get("app").map(String::as_str), Some("web"));
        assert_eq!(l.get("empty").map(String::as_str), Some(""));
        assert!(parse_labels("novalue").is_err());
        assert!(parse_labels("bad key=v").is_err());
        assert_eq!(
            peer("10.0.0.1").expect("ip"),
            Peer::Addr("10.0.0.1".parse().expect("addr"))
        );
        assert_eq!(
            peer("ns/pod").expect("ep"),
            Peer::Endpoint(EndpointId::new("ns", "pod"))
        );
        assert!(peer("nope").is_err());
        assert!(peer("a/b/c").is_err());
    }
}
