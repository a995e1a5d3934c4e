//! `vrctl apply|create|replace|delete|get`: calicoctl's resource verbs over etcd.
//!
//! Writes go through [`ResourceStore::write`] as **one** etcd transaction for everything the
//! `-f` inputs name, after every resource passed both validators ([`super::manifest`]); so a
//! file with one bad object writes nothing. Reads print through [`super::output`].
//! Errors come back as `anyhow` errors; [`super::connection::exit_code_for`] maps them to exit
//! codes (2 for an unreachable datastore, 1 otherwise).

use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use datastore::resource::{Kind, Resource, display_id};
use datastore::resource_store::{Change, Outcome, ResourceError, ResourceStore, Verb};

use super::connection::ConnectionArgs;
use super::manifest::{Located, locate_write_error, parse_inputs, read_inputs};
use super::output::{Format, emit, render};

/// `-f` inputs of `apply`, `create` and `replace`.
#[derive(Debug, Clone, Args)]
pub struct WriteArgs {
    /// YAML/JSON file, directory of them, or `-` for standard input (repeatable).
    #[arg(
        short = 'f',
        long = "filename",
        required = true,
        value_name = "FILE|DIR|-"
    )]
    pub files: Vec<PathBuf>,
}

/// `vrctl delete` arguments: `-f FILE` or `KIND NAME...`.
#[derive(Debug, Clone, Args)]
pub struct DeleteArgs {
    /// Delete what these files name (their specs are ignored).
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR|-", conflicts_with_all = ["kind", "names"])]
    pub files: Vec<PathBuf>,
    /// Kind (`ippool`, `gnp`, `networkpolicy`, ...).
    #[arg(required_unless_present = "files", requires = "names")]
    pub kind: Option<String>,
    /// Names of the objects.
    pub names: Vec<String>,
    /// Namespace of namespaced kinds.
    #[arg(short = 'n', long, default_value = datastore::resource::DEFAULT_NAMESPACE)]
    pub namespace: String,
}

/// `vrctl get` arguments.
#[derive(Debug, Clone, Args)]
pub struct GetArgs {
    /// Kind (`ippool`, `gnp`, `networkpolicy`, `wep`, `ns`, ...).
    pub kind: String,
    /// One object's name; all objects when absent.
    pub name: Option<String>,
    /// Namespace of namespaced kinds.
    #[arg(short = 'n', long, default_value = datastore::resource::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Every namespace.
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// A single-threaded runtime for one command's datastore calls.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn parse_kind(text: &str) -> anyhow::Result<Kind> {
    Kind::parse_cli(text).ok_or_else(|| {
        anyhow!("unknown resource kind {text:?} (try ippool, node, bgppeer, bgpconfig, networkpolicy, globalnetworkpolicy, networkset, globalnetworkset, tier, profile, workloadendpoint, hostendpoint, felixconfig, ipamconfig, k8snetworkpolicy, namespace)")
    })
}

fn change_word(change: Change) -> &'static str {
    match change {
        Change::Created => "created",
        Change::Updated => "configured",
        Change::Unchanged => "unchanged",
        Change::Deleted => "deleted",
    }
}

/// One line per object (`IPPool/pool1 created`) and a calicoctl-style summary.
fn report(verb: Verb, outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    for o in outcomes {
        out.push_str(&format!("{} {}\n", o.id, change_word(o.change)));
    }
    let past = match verb {
        Verb::Create => "created",
        Verb::Replace => "replaced",
        Verb::Apply => "applied",
        Verb::Delete => "deleted",
    };
    out.push_str(&format!(
        "Successfully {past} {} resource(s)\n",
        outcomes.len()
    ));
    out
}

async fn write(
    connection: &ConnectionArgs,
    verb: Verb,
    located: &[Located],
) -> anyhow::Result<Vec<Outcome>> {
    let store = ResourceStore::new(connection.connect().await?);
    let resources: Vec<Resource> = located.iter().map(|l| l.resource.clone()).collect();
    store.write(verb, &resources).await.map_err(|e| match e {
        ResourceError::Datastore(_) => anyhow!(e),
        other => locate_write_error(located, other),
    })
}

/// `vrctl apply|create|replace -f …`: validates everything, then writes it in one transaction.
pub fn write_files(
    connection: &ConnectionArgs,
    verb: Verb,
    args: &WriteArgs,
) -> anyhow::Result<u8> {
    let inputs = read_inputs(&args.files, &mut std::io::stdin().lock())?;
    let located = parse_inputs(&inputs, true)?;
    let outcomes = runtime()?.block_on(write(connection, verb, &located))?;
    emit(&report(verb, &outcomes))?;
    Ok(0)
}

/// `vrctl delete -f FILE` or `vrctl delete KIND NAME...`, all in one transaction.
pub fn delete(connection: &ConnectionArgs, args: &DeleteArgs) -> anyhow::Result<u8> {
    let outcomes = if args.files.is_empty() {
        let Some(kind) = &args.kind else {
            bail!("give -f FILE or KIND NAME");
        };
        let kind = parse_kind(kind)?;
        runtime()?.block_on(delete_named(connection, kind, &args.namespace, &args.names))?
    } else {
        let inputs = read_inputs(&args.files, &mut std::io::stdin().lock())?;
        let located = parse_inputs(&inputs, false)?;
        runtime()?.block_on(write(connection, Verb::Delete, &located))?
    };
    emit(&report(Verb::Delete, &outcomes))?;
    Ok(0)
}

async fn delete_named(
    connection: &ConnectionArgs,
    kind: Kind,
    namespace: &str,
    names: &[String],
) -> anyhow::Result<Vec<Outcome>> {
    let store = ResourceStore::new(connection.connect().await?);
    let mut doomed = Vec::with_capacity(names.len());
    for name in names {
        let mut resource = store
            .get(kind, Some(namespace), name)
            .await?
            .ok_or_else(|| missing(kind, namespace, name))?;
        // Delete whatever is stored now, not the revision just read.
        resource.meta_mut().resource_version = None;
        doomed.push(resource);
    }
    Ok(store.write(Verb::Delete, &doomed).await?)
}

fn missing(kind: Kind, namespace: &str, name: &str) -> anyhow::Error {
    let namespace = kind.is_namespaced().then_some(namespace);
    anyhow!(ResourceError::NotFound {
        id: display_id(kind, namespace, name),
    })
}

/// `vrctl get KIND [NAME]`: prints a table, YAML or JSON.
pub fn get(connection: &ConnectionArgs, args: &GetArgs) -> anyhow::Result<u8> {
    let kind = parse_kind(&args.kind)?;
    if args.all_namespaces && args.name.is_some() {
        bail!("-A lists every namespace; give -n NAMESPACE to get one object by name");
    }
    let resources = runtime()?.block_on(async {
        let store = ResourceStore::new(connection.connect().await?);
        match &args.name {
            Some(name) => store
                .get(kind, Some(&args.namespace), name)
                .await?
                .map(|r| vec![r])
                .ok_or_else(|| missing(kind, &args.namespace, name)),
            None => {
                let namespace = (!args.all_namespaces).then_some(args.namespace.as_str());
                Ok(store.list(kind, namespace).await?)
            }
        }
    })?;
    emit(&render(args.output, kind, &resources, args.name.is_some()))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lists_each_object_then_a_summary() {
        let outcomes = [
            Outcome {
                id: "IPPool/a".into(),
                change: Change::Created,
                revision: 5,
            },
            Outcome {
                id: "IPPool/b".into(),
                change: Change::Unchanged,
                revision: 3,
            },
        ];
        assert_eq!(
            report(Verb::Apply, &outcomes),
            "IPPool/a created\nIPPool/b unchanged\nSuccessfully applied 2 resource(s)\n"
        );
    }

    #[test]
    fn kinds_are_parsed_or_named_in_the_error() {
        assert_eq!(parse_kind("gnp").unwrap(), Kind::GlobalNetworkPolicy);
        let err = parse_kind("frobnicator").unwrap_err().to_string();
        assert!(
            err.starts_with("unknown resource kind \"frobnicator\""),
            "{err}"
        );
    }

    #[test]
    fn missing_objects_are_named_with_their_namespace_when_namespaced() {
        assert_eq!(
            missing(Kind::NetworkPolicy, "prod", "x").to_string(),
            "NetworkPolicy/prod/x: resource does not exist"
        );
        assert_eq!(
            missing(Kind::IpPool, "prod", "p").to_string(),
            "IPPool/p: resource does not exist"
        );
    }
}
