use std::ffi::OsString;
use std::io::Write;

use super::*;

fn file(path: &str) -> Origin {
    Origin::File(PathBuf::from(path))
}

fn given(key: Key, origin: Origin, value: &str) -> Sourced {
    Sourced {
        key,
        origin,
        value: value.to_string(),
    }
}

fn resolve_values(values: Vec<Sourced>) -> Result<Config, ConfigError> {
    resolve(
        PathBuf::from(DEFAULT_CONFIG_PATH),
        values,
        Some("Node-1".into()),
    )
}

fn args(list: &[&str]) -> Vec<OsString> {
    std::iter::once("vrouterd")
        .chain(list.iter().copied())
        .map(OsString::from)
        .collect()
}

#[test]
fn names_derive_from_one_table() {
    assert_eq!(Key::EtcdCaFile.flag(), "etcd-ca-file");
    assert_eq!(Key::EtcdCaFile.env(), "VROUTER_ETCD_CA_FILE");
    assert_eq!(Key::EtcdCaFile.file_key(), "etcdCaFile");
    assert_eq!(Key::Ipv4Autodetect.file_key(), "ipv4Autodetect");
    assert_eq!(Key::from_file_key("rrClusterId"), Some(Key::RrClusterId));
    // Every key is a clap argument with the same env variable.
    let command = Cli::command();
    for key in Key::ALL {
        let arg = command
            .get_arguments()
            .find(|a| a.get_id().as_str() == key.arg_id())
            .unwrap_or_else(|| panic!("no clap argument for {key:?}"));
        assert_eq!(arg.get_long(), Some(key.flag()));
        assert_eq!(
            arg.get_env().and_then(|e| e.to_str()),
            Some(key.env().as_str())
        );
    }
}

#[test]
fn defaults_when_nothing_is_given() {
    let config = resolve_values(Vec::new()).unwrap();
    assert_eq!(config.node_name, "node-1", "hostname, lower-cased");
    assert!(matches!(
        config.ipv4,
        AddressChoice::Autodetect(Method::FirstFound)
    ));
    assert_eq!(config.ipv6, AddressChoice::Disabled);
    assert_eq!(
        config.etcd.endpoints,
        vec![DEFAULT_ETCD_ENDPOINT.to_string()]
    );
    assert_eq!(config.etcd.tls, None);
    assert_eq!(config.etcd_start_timeout, None);
    assert_eq!(config.asn, None);
    assert_eq!(config.control_socket, PathBuf::from(DEFAULT_CONTROL_SOCKET));
    assert_eq!(config.ctl_layout, CtlLayout::Bird2);
    assert_eq!(
        config.metrics_listen,
        Some("127.0.0.1:9091".parse().unwrap())
    );
    assert_eq!(config.log_format, LogFormat::Pretty);
    assert_eq!(config.log_level, None);
    assert_eq!(config.secrets_dir, PathBuf::from(DEFAULT_SECRETS_DIR));
    assert!(config.policy);
    assert_eq!(config.backend, Backend::Bgp);
}

#[test]
fn flag_beats_file_and_file_beats_default() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vrouterd.yaml");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(
            b"nodeName: from-file\nasn: 64600\nmetricsListen: 'off'\n\
              etcdEndpoints: [http://10.0.0.1:2379, http://10.0.0.2:2379]\nnoPolicy: true\n",
        )
        .unwrap();
    let path_arg = path.to_str().unwrap();
    let config = load(
        &args(&["--config", path_arg, "--asn", "65001"]),
        Some("host".into()),
    )
    .unwrap();
    assert_eq!(config.asn, Some(65001), "flag beats file");
    assert_eq!(config.node_name, "from-file", "file beats hostname");
    assert_eq!(config.metrics_listen, None);
    assert_eq!(config.etcd.endpoints.len(), 2);
    assert!(!config.policy);
    let asn = config.given.iter().find(|g| g.key == Key::Asn).unwrap();
    assert_eq!(asn.origin, Origin::Flag);
}

#[test]
fn missing_explicit_file_is_an_error_and_missing_default_is_not() {
    let error = load(
        &args(&["--config", "/nonexistent/vrouterd.yaml"]),
        Some("h".into()),
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("/nonexistent/vrouterd.yaml"),
        "{error}"
    );
    let path = Path::new("/nonexistent/default.yaml");
    assert_eq!(read_file(path, false).unwrap(), Vec::new());
}

#[test]
fn errors_name_the_origin_and_the_value() {
    let cases = [
        (
            given(Key::Asn, Origin::Flag, "sixty"),
            "flag --asn: \"sixty\" is not valid",
        ),
        (
            given(Key::Asn, Origin::Env, "0"),
            "environment VROUTER_ASN: \"0\"",
        ),
        (
            given(Key::Ipv4, file("/etc/v.yaml"), "10.0.0.1"),
            "ipv4 in /etc/v.yaml: \"10.0.0.1\" is not valid: the prefix length is missing",
        ),
        (
            given(Key::Ipv4, Origin::Flag, "fd00::1/64"),
            "expected an IPv4 address",
        ),
        (
            given(Key::Ipv6Autodetect, Origin::Flag, "cidr=10.0.0.0/8"),
            "other address family",
        ),
        (
            given(Key::Ipv4Autodetect, Origin::Flag, "interface=(eth"),
            "bad regular expression",
        ),
        (
            given(Key::Ipv4Autodetect, Origin::Flag, "best-guess"),
            "expected first-found",
        ),
        (
            given(Key::MetricsListen, Origin::Flag, "9091"),
            "flag --metrics-listen: \"9091\"",
        ),
        (
            given(Key::EtcdEndpoints, Origin::Env, "10.0.0.1:2379"),
            "environment VROUTER_ETCD_ENDPOINTS: \"10.0.0.1:2379\"",
        ),
        (
            given(Key::EtcdStartTimeout, Origin::Flag, "soon"),
            "flag --etcd-start-timeout",
        ),
        (
            given(Key::CtlLayout, Origin::Flag, "bird3"),
            "expected bird2 or bird1",
        ),
        (
            given(Key::LogFormat, Origin::Flag, "xml"),
            "expected pretty or json",
        ),
        (
            given(Key::RrClusterId, Origin::Flag, "1.2.3"),
            "flag --rr-cluster-id",
        ),
        (
            given(Key::NodeName, Origin::Flag, "Node_1"),
            "flag --node-name: \"Node_1\"",
        ),
        (
            given(Key::NoPolicy, file("/x.yaml"), "maybe"),
            "noPolicy in /x.yaml",
        ),
    ];
    for (value, expected) in cases {
        let error = resolve_values(vec![value.clone()]).unwrap_err();
        assert!(
            error.to_string().contains(expected),
            "{value:?}: {error} does not contain {expected}"
        );
    }
    let cert_only = vec![given(Key::EtcdCertFile, Origin::Flag, "/c.pem")];
    assert!(
        resolve_values(cert_only)
            .unwrap_err()
            .to_string()
            .contains("--etcd-key-file")
    );
}

#[test]
fn bad_files_are_errors_naming_the_file() {
    let path = Path::new("/etc/vrouter/vrouterd.yaml");
    let unknown = parse_file(path, "nodename: x\n").unwrap_err().to_string();
    assert!(unknown.contains("/etc/vrouter/vrouterd.yaml"), "{unknown}");
    assert!(unknown.contains("unknown key \"nodename\""), "{unknown}");
    let nested = parse_file(path, "asn: {value: 1}\n")
        .unwrap_err()
        .to_string();
    assert!(nested.contains("asn: expected a value"), "{nested}");
    assert!(parse_file(path, ": : :\n- [").is_err());
    assert_eq!(parse_file(path, "# only a comment\n").unwrap(), Vec::new());
}

#[test]
fn address_choices() {
    let fixed = resolve_values(vec![
        given(Key::Ipv4, Origin::Flag, "10.1.2.3/24"),
        given(Key::Ipv4Autodetect, Origin::Flag, "can-reach=10.0.0.1"),
        given(Key::Ipv6Autodetect, Origin::Flag, "interface=eth.*"),
    ])
    .unwrap();
    assert_eq!(
        fixed.ipv4.to_string(),
        "10.1.2.3/24",
        "an address beats a method"
    );
    assert_eq!(fixed.ipv6.to_string(), "autodetect interface=eth.*");
    let calico = resolve_values(vec![
        given(Key::Ipv4, Origin::Env, "autodetect"),
        given(
            Key::Ipv4Autodetect,
            Origin::Env,
            "cidr=10.0.0.0/8, 192.168.0.0/16",
        ),
        given(Key::Ipv6, Origin::Env, "none"),
    ])
    .unwrap();
    assert_eq!(
        calico.ipv4.to_string(),
        "autodetect cidr=10.0.0.0/8,192.168.0.0/16"
    );
    assert_eq!(calico.ipv6, AddressChoice::Disabled);
    let off = resolve_values(vec![given(Key::Ipv4Autodetect, Origin::Flag, "none")]).unwrap();
    assert_eq!(off.ipv4, AddressChoice::Disabled);
}

#[test]
fn values_are_parsed() {
    let config = resolve_values(vec![
        given(Key::Asn, Origin::Flag, "1.10"),
        given(Key::RrClusterId, Origin::Flag, "224.0.0.1"),
        given(Key::EtcdStartTimeout, Origin::Flag, "1m30s"),
        given(Key::MetricsListen, Origin::Flag, "[::1]:9100"),
        given(Key::LogLevel, Origin::Flag, "info,bgp=debug"),
        given(Key::CtlLayout, Origin::Flag, "bird1"),
        given(Key::EtcdCaFile, Origin::Flag, "/ca.pem"),
    ])
    .unwrap();
    assert_eq!(config.asn, Some(65546));
    assert_eq!(config.rr_cluster_id, Some(Ipv4Addr::new(224, 0, 0, 1)));
    assert_eq!(config.etcd_start_timeout, Some(Duration::from_secs(90)));
    assert_eq!(config.metrics_listen, Some("[::1]:9100".parse().unwrap()));
    assert_eq!(config.log_level.as_deref(), Some("info,bgp=debug"));
    assert_eq!(config.ctl_layout, CtlLayout::Bird1);
    assert_eq!(
        config.etcd.tls.as_ref().and_then(|t| t.ca_cert.clone()),
        Some(PathBuf::from("/ca.pem"))
    );
}

#[test]
fn networking_backend_values() {
    for (text, backend) in [
        ("bgp", Backend::Bgp),
        ("bird", Backend::Bgp),
        ("vxlan", Backend::Vxlan),
        ("none", Backend::None),
    ] {
        let config =
            resolve_values(vec![given(Key::NetworkingBackend, Origin::Env, text)]).unwrap();
        assert_eq!(config.backend, backend);
    }
    assert!(!Backend::Vxlan.bgp() && Backend::Vxlan.tunnel());
    assert!(!Backend::None.tunnel());
    let error = resolve_values(vec![given(Key::NetworkingBackend, Origin::Flag, "ipip")])
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "flag --networking-backend: \"ipip\" is not valid: expected bgp, vxlan or none"
    );
}

#[test]
fn unknown_flags_are_clap_errors() {
    let error = load(&args(&["--frobnicate"]), Some("h".into())).unwrap_err();
    assert!(matches!(error, ConfigError::Cli(_)));
}

#[test]
fn the_packaged_example_documents_every_key_and_parses() {
    let example = include_str!("../../../packaging/vrouterd.yaml");
    let path = Path::new("packaging/vrouterd.yaml");
    assert_eq!(
        parse_file(path, example).unwrap(),
        Vec::new(),
        "all commented out"
    );
    let uncommented: String = example
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_alphabetic()) => rest,
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let values = parse_file(path, &uncommented).unwrap();
    for key in Key::ALL {
        assert!(
            values.iter().any(|v| v.key == key),
            "{} is not in the example",
            key.file_key()
        );
    }
    let config = resolve(PathBuf::from("x"), values, None).unwrap();
    assert_eq!(config.node_name, "worker-1");
    assert_eq!(config.etcd.endpoints.len(), 2);
}
