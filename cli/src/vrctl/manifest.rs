//! The `-f FILE|DIR|-` inputs of `vrctl apply/create/replace/delete`: reading them (a
//! directory contributes its `*.yaml`, `*.yml` and `*.json` files in name order, `-` is
//! standard input), parsing every document, and validating every resource with both the
//! datastore's local checks and the policy crate's semantic checks before anything is
//! written. Every error names the input, the document and the object:
//! `FILE: document N (Kind/ns/name): spec.ingress[0].protocol: …`.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use datastore::resource::{DocumentError, Resource, parse_located};
use datastore::resource_store::ResourceError;

/// The name standard input is reported under.
pub const STDIN_NAME: &str = "<stdin>";

/// One input's text and the name its errors are reported under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// The file's path as given (or [`STDIN_NAME`]).
    pub name: String,
    /// Its contents.
    pub text: String,
}

/// A resource and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    /// The input's name.
    pub source: String,
    /// 1-based document number within the input.
    pub document: usize,
    /// The resource, normalized (namespaced kinds carry their namespace).
    pub resource: Resource,
}

fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Reads every `-f` argument; `stdin` is read for `-`.
pub fn read_inputs(paths: &[PathBuf], stdin: &mut dyn Read) -> anyhow::Result<Vec<Input>> {
    let mut inputs = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            stdin
                .read_to_string(&mut text)
                .context("reading standard input")?;
            inputs.push(Input {
                name: STDIN_NAME.to_string(),
                text,
            });
        } else if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading directory {}", path.display()))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && is_manifest(p))
                .collect();
            files.sort();
            if files.is_empty() {
                bail!("{}: no .yaml, .yml or .json files", path.display());
            }
            for file in files {
                inputs.push(read_file(&file)?);
            }
        } else {
            inputs.push(read_file(path)?);
        }
    }
    Ok(inputs)
}

fn read_file(path: &Path) -> anyhow::Result<Input> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow!("{}: cannot read: {e}", path.display()))?;
    Ok(Input {
        name: path.display().to_string(),
        text,
    })
}

fn located_error(source: &str, error: &DocumentError) -> anyhow::Error {
    anyhow!("{source}: {error}")
}

/// Parses every input. With `validate`, each resource also passes
/// [`Resource::validate`] and [`policy::convert::validate_resource`]; the first failure is
/// returned, naming input, document, object and field.
pub fn parse_inputs(inputs: &[Input], validate: bool) -> anyhow::Result<Vec<Located>> {
    let mut out = Vec::new();
    for input in inputs {
        let docs = parse_located(&input.text).map_err(|e| located_error(&input.name, &e))?;
        for (document, mut resource) in docs {
            resource.normalize();
            if validate {
                check(&resource, document).map_err(|e| located_error(&input.name, &e))?;
            }
            out.push(Located {
                source: input.name.clone(),
                document,
                resource,
            });
        }
    }
    if out.is_empty() {
        let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
        bail!("no resources found in {}", names.join(", "));
    }
    Ok(out)
}

/// Both validators, local first, as one located error.
fn check(resource: &Resource, document: usize) -> Result<(), DocumentError> {
    let id = Some(resource.display_id());
    resource.validate().map_err(|e| DocumentError {
        index: document,
        id: id.clone(),
        path: e.path,
        message: e.message,
    })?;
    policy::convert::validate_resource(resource).map_err(|e| DocumentError {
        index: document,
        id,
        path: e.path,
        message: e.detail,
    })
}

/// Adds the input and document to a write error that names one object
/// (`FILE: document N (Kind/ns/name): resource already exists`).
pub fn locate_write_error(located: &[Located], error: ResourceError) -> anyhow::Error {
    let (id, nth) = match &error {
        ResourceError::AlreadyExists { id }
        | ResourceError::NotFound { id }
        | ResourceError::StaleVersion { id, .. }
        | ResourceError::Invalid { id, .. } => (id.clone(), 0),
        // Reported where it appears the second time.
        ResourceError::Duplicate { id } => (id.clone(), 1),
        _ => return anyhow!(error),
    };
    let place = located
        .iter()
        .filter(|l| l.resource.display_id() == id)
        .nth(nth);
    let Some(place) = place else {
        return anyhow!(error);
    };
    let text = error.to_string();
    let detail = text
        .strip_prefix(&format!("{id}: "))
        .unwrap_or(&text)
        .to_string();
    anyhow!(
        "{}: document {} ({id}): {detail}",
        place.source,
        place.document
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(text: &str) -> Vec<Input> {
        vec![Input {
            name: "policies.yaml".into(),
            text: text.into(),
        }]
    }

    const GOOD: &str = "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: a}\nspec:\n  ingress:\n  - {action: Allow, protocol: TCP}\n";

    #[test]
    fn resources_are_located_and_namespaced() {
        let text =
            format!("{GOOD}---\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: web}}\n");
        let located = parse_inputs(&input(&text), true).unwrap();
        assert_eq!(located.len(), 2);
        assert_eq!(located[0].document, 1);
        assert_eq!(
            located[0].resource.meta().namespace.as_deref(),
            Some("default")
        );
        assert_eq!(located[1].document, 3);
        assert_eq!(located[1].source, "policies.yaml");
    }

    #[test]
    fn policy_crate_errors_are_located() {
        let bad = GOOD.replace("protocol: TCP", "protocol: tcp");
        let text = format!("{GOOD}---\n{}", bad.replace("name: a", "name: b"));
        let err = parse_inputs(&input(&text), true).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "policies.yaml: document 2 (NetworkPolicy/default/b): spec.ingress[0].protocol: \"tcp\" is not a valid protocol"
            ),
            "{err}"
        );
        // Without validation (delete -f) only the identity matters.
        assert_eq!(parse_inputs(&input(&text), false).unwrap().len(), 2);
    }

    #[test]
    fn local_validation_runs_first() {
        let text = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/33}\n";
        let err = parse_inputs(&input(text), true).unwrap_err().to_string();
        assert_eq!(
            err,
            "policies.yaml: document 1 (IPPool/p): spec.cidr: \"10.0.0.0/33\" is not a valid CIDR"
        );
    }

    #[test]
    fn empty_input_is_an_error() {
        let err = parse_inputs(&input("---\n"), true).unwrap_err().to_string();
        assert_eq!(err, "no resources found in policies.yaml");
    }

    #[test]
    fn directories_contribute_manifests_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.yaml"), "b").unwrap();
        std::fs::write(dir.path().join("a.json"), "a").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let stdin_path = PathBuf::from("-");
        let mut stdin: &[u8] = b"s";
        let inputs = read_inputs(&[dir.path().to_path_buf(), stdin_path], &mut stdin).unwrap();
        let texts: Vec<&str> = inputs.iter().map(|i| i.text.as_str()).collect();
        assert_eq!(texts, ["a", "b", "s"]);
        assert_eq!(inputs[2].name, STDIN_NAME);
        let empty = tempfile::tempdir().unwrap();
        assert!(read_inputs(&[empty.path().to_path_buf()], &mut stdin).is_err());
    }

    #[test]
    fn write_errors_name_the_document() {
        let located = parse_inputs(&input(GOOD), true).unwrap();
        let err = locate_write_error(
            &located,
            ResourceError::AlreadyExists {
                id: "NetworkPolicy/default/a".into(),
            },
        );
        assert_eq!(
            err.to_string(),
            "policies.yaml: document 1 (NetworkPolicy/default/a): resource already exists"
        );
        let err = locate_write_error(&located, ResourceError::Contended);
        assert!(err.to_string().starts_with("gave up"), "{err}");
    }
}
