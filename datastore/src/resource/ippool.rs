//! `IPPool` (`ippool.go`) and `IPAMConfiguration` (`ipamconfig.go`): the address space IPAM
//! hands out and the cluster-wide IPAM knobs.

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use super::meta::{Condition, NameRule, ObjectMeta};
use super::validation::{Checked, Quoted, ValidationError, parse_cidr};

/// An IP pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpPool {
    /// Metadata (cluster-scoped).
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: IpPoolSpec,
    /// Observed state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<IpPoolStatus>,
}

/// `IPPool.status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpPoolStatus {
    /// Conditions (`Ready`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// `IPPool.spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IpPoolSpec {
    /// The pool's CIDR (network address, no host bits).
    pub cidr: String,
    /// VXLAN encapsulation for traffic between pool addresses on different nodes.
    #[serde(default, rename = "vxlanMode", skip_serializing_if = "Option::is_none")]
    pub vxlan_mode: Option<EncapMode>,
    /// IP-in-IP encapsulation (IPv4 pools only).
    #[serde(default, rename = "ipipMode", skip_serializing_if = "Option::is_none")]
    pub ipip_mode: Option<EncapMode>,
    /// Masquerade traffic from the pool to destinations outside all pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_outgoing: Option<bool>,
    /// No new allocations from this pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Do not advertise the pool's routes over BGP.
    #[serde(
        default,
        rename = "disableBGPExport",
        skip_serializing_if = "Option::is_none"
    )]
    pub disable_bgp_export: Option<bool>,
    /// Prefix length of the per-node blocks (default 26 for IPv4, 122 for IPv6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_size: Option<u8>,
    /// Nodes that may allocate from this pool (selector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<String>,
    /// Namespaces whose pods may allocate from this pool (selector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<String>,
    /// What the addresses may be used for (default `[Workload, Tunnel]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_uses: Vec<AllowedUse>,
    /// Whether IPAM picks this pool automatically or only on explicit request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment_mode: Option<AssignmentMode>,
}

/// Encapsulation mode of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EncapMode {
    /// Never encapsulate.
    Never,
    /// Always encapsulate.
    Always,
    /// Encapsulate only towards nodes in another subnet.
    CrossSubnet,
}

/// Use of a pool's addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AllowedUse {
    /// Workload (pod) addresses.
    Workload,
    /// Tunnel device addresses.
    Tunnel,
    /// Service load-balancer addresses.
    LoadBalancer,
}

/// Pool assignment mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AssignmentMode {
    /// Used by automatic allocation.
    Automatic,
    /// Used only when requested by name/annotation.
    Manual,
}

/// Default IPv4 block prefix length.
pub const DEFAULT_BLOCK_SIZE_V4: u8 = 26;
/// Default IPv6 block prefix length.
pub const DEFAULT_BLOCK_SIZE_V6: u8 = 122;

impl IpPool {
    /// A pool with a name and CIDR, everything else defaulted.
    pub fn new(name: impl Into<String>, cidr: impl Into<String>) -> Self {
        IpPool {
            metadata: ObjectMeta::named(name),
            spec: IpPoolSpec {
                cidr: cidr.into(),
                ..IpPoolSpec::default()
            },
            status: None,
        }
    }

    pub(crate) fn check(&self) -> Checked {
        self.metadata.check(false, NameRule::Subdomain)?;
        self.spec.check()
    }
}

impl IpPoolSpec {
    /// The parsed CIDR, if valid.
    pub fn network(&self) -> Option<IpNetwork> {
        self.cidr.parse().ok()
    }

    /// Block prefix length, defaulted by address family.
    pub fn effective_block_size(&self) -> Option<u8> {
        let net = self.network()?;
        Some(self.block_size.unwrap_or(if net.is_ipv4() {
            DEFAULT_BLOCK_SIZE_V4
        } else {
            DEFAULT_BLOCK_SIZE_V6
        }))
    }

    /// Whether allocation skips this pool.
    pub fn is_disabled(&self) -> bool {
        self.disabled.unwrap_or(false)
    }

    /// Allowed uses, defaulted to `[Workload, Tunnel]` when empty.
    pub fn effective_allowed_uses(&self) -> Vec<AllowedUse> {
        if self.allowed_uses.is_empty() {
            vec![AllowedUse::Workload, AllowedUse::Tunnel]
        } else {
            self.allowed_uses.clone()
        }
    }

    fn check(&self) -> Checked {
        if self.cidr.is_empty() {
            return Err(ValidationError::new("spec.cidr", "is required"));
        }
        let net = parse_cidr("spec.cidr", &self.cidr)?;
        if net.network() != net.ip() {
            return Err(ValidationError::new(
                "spec.cidr",
                format!(
                    "{} has host bits set (the network address is {}/{})",
                    Quoted(&self.cidr),
                    net.network(),
                    net.prefix()
                ),
            ));
        }
        let (range, default) = if net.is_ipv4() {
            (20..=32, DEFAULT_BLOCK_SIZE_V4)
        } else {
            (116..=128, DEFAULT_BLOCK_SIZE_V6)
        };
        let block = self.block_size.unwrap_or(default);
        if !range.contains(&block) {
            return Err(ValidationError::new(
                "spec.blockSize",
                format!(
                    "{block} is out of range for an IPv{} pool ({}..={})",
                    if net.is_ipv4() { 4 } else { 6 },
                    range.start(),
                    range.end()
                ),
            ));
        }
        if net.prefix() > block {
            return Err(ValidationError::new(
                "spec.cidr",
                format!(
                    "{} is smaller than one block (blockSize {block})",
                    Quoted(&self.cidr)
                ),
            ));
        }
        let encap = |m: Option<EncapMode>| m.is_some_and(|m| m != EncapMode::Never);
        if net.is_ipv6() && encap(self.ipip_mode) {
            return Err(ValidationError::new(
                "spec.ipipMode",
                "IP-in-IP is not supported on an IPv6 pool",
            ));
        }
        if encap(self.ipip_mode) && encap(self.vxlan_mode) {
            return Err(ValidationError::new(
                "spec.vxlanMode",
                "ipipMode and vxlanMode cannot both be enabled",
            ));
        }
        Ok(())
    }
}

/// Cluster-wide IPAM settings (`IPAMConfiguration`, name `default`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpamConfiguration {
    /// Metadata (cluster-scoped).
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: IpamConfigurationSpec,
}

/// `IPAMConfiguration.spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IpamConfigurationSpec {
    /// Never borrow addresses from another node's block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict_affinity: Option<bool>,
    /// Most blocks one node may own (0 or absent = unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_blocks_per_host: Option<i32>,
    /// Whether nodes claim new blocks automatically.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_allocate_blocks: Option<bool>,
    /// Keep KubeVirt VM addresses across VM restarts and migrations.
    #[serde(
        default,
        rename = "kubeVirtVMAddressPersistence",
        skip_serializing_if = "Option::is_none"
    )]
    pub kubevirt_vm_address_persistence: Option<EnabledDisabled>,
    /// Seconds a released address rests before reuse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_cooldown_seconds: Option<i32>,
}

/// A Calico `Enabled`/`Disabled` switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EnabledDisabled {
    /// On.
    Enabled,
    /// Off.
    Disabled,
}

impl IpamConfigurationSpec {
    /// `strictAffinity`, default false.
    pub fn strict_affinity(&self) -> bool {
        self.strict_affinity.unwrap_or(false)
    }

    /// `maxBlocksPerHost`, `None` meaning unlimited.
    pub fn max_blocks_per_host(&self) -> Option<u32> {
        self.max_blocks_per_host
            .and_then(|n| u32::try_from(n).ok())
            .filter(|&n| n > 0)
    }
}

impl IpamConfiguration {
    pub(crate) fn check(&self) -> Checked {
        self.metadata.check(false, NameRule::Subdomain)?;
        let non_negative = [
            ("spec.maxBlocksPerHost", self.spec.max_blocks_per_host),
            ("spec.ipCooldownSeconds", self.spec.ip_cooldown_seconds),
        ];
        for (path, value) in non_negative {
            if let Some(n) = value
                && n < 0
            {
                return Err(ValidationError::new(
                    path,
                    format!("{n} must be greater than or equal to 0"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::roundtrip::{assert_invalid, assert_round_trip};
    use super::super::{Kind, Resource};
    use super::*;

    #[test]
    fn calico_docs_ippool_round_trips() {
        let res = assert_round_trip(
            "apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: my.ippool-1
spec:
  cidr: 10.1.0.0/16
  ipipMode: CrossSubnet
  natOutgoing: true
  disabled: false
  nodeSelector: all()
  allowedUses:
    - Workload
    - Tunnel
",
        );
        let Resource::IpPool(pool) = res else {
            panic!("not a pool")
        };
        assert_eq!(pool.spec.effective_block_size(), Some(26));
        assert_eq!(pool.spec.ipip_mode, Some(EncapMode::CrossSubnet));
        assert!(!pool.spec.is_disabled());
    }

    #[test]
    fn every_ippool_field_round_trips() {
        let res = assert_round_trip(
            r#"apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pool-v6
  labels: {env: prod}
  annotations: {note: "x"}
  uid: 4b2c6f5e-1f1e-4c3b-9a58-0d1f3f3f3f3f
  resourceVersion: "1234"
  creationTimestamp: "2025-01-02T03:04:05Z"
  generation: 2
spec:
  cidr: fd00:10:244::/64
  vxlanMode: Always
  ipipMode: Never
  natOutgoing: false
  disabled: true
  disableBGPExport: true
  blockSize: 122
  nodeSelector: zone == 'a'
  namespaceSelector: all()
  allowedUses: [Workload]
  assignmentMode: Automatic
status:
  conditions:
  - type: Ready
    status: "True"
    observedGeneration: 2
    lastTransitionTime: "2025-01-02T03:04:06Z"
    reason: PoolReady
    message: pool is usable
"#,
        );
        assert_eq!(res.kind(), Kind::IpPool);
        assert_eq!(res.meta().resource_version.as_deref(), Some("1234"));
    }

    #[test]
    fn ippool_validation_names_field_and_value() {
        let base = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec:\n";
        let err = assert_invalid(&format!("{base}  cidr: 10.0.0.0/33\n"));
        assert_eq!(
            err.to_string(),
            r#"spec.cidr: "10.0.0.0/33" is not a valid CIDR"#
        );
        let err = assert_invalid(&format!("{base}  cidr: 10.0.0.1/16\n"));
        assert!(err.message.contains("host bits"), "{err}");
        let err = assert_invalid(&format!("{base}  cidr: 10.0.0.0/16\n  blockSize: 19\n"));
        assert_eq!(err.path, "spec.blockSize");
        assert!(err.message.contains("19"), "{err}");
        let err = assert_invalid(&format!("{base}  cidr: fd00::/64\n  blockSize: 26\n"));
        assert_eq!(err.path, "spec.blockSize");
        let err = assert_invalid(&format!("{base}  cidr: 10.0.0.0/28\n"));
        assert!(err.message.contains("smaller than one block"), "{err}");
        let err = assert_invalid(&format!("{base}  cidr: fd00::/64\n  ipipMode: Always\n"));
        assert_eq!(err.path, "spec.ipipMode");
        let err = assert_invalid(&format!(
            "{base}  cidr: 10.0.0.0/16\n  ipipMode: Always\n  vxlanMode: CrossSubnet\n"
        ));
        assert_eq!(err.path, "spec.vxlanMode");
        let err = assert_invalid(
            "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: Pool_1}\nspec: {cidr: 10.0.0.0/16}\n",
        );
        assert_eq!(err.path, "metadata.name");
        for ok in ["10.0.0.0/20", "10.0.0.0/26"] {
            IpPool::new("p", ok).check().unwrap();
        }
        IpPool {
            spec: IpPoolSpec {
                block_size: Some(32),
                ..IpPool::new("p", "10.0.0.0/24").spec
            },
            ..IpPool::new("p", "10.0.0.0/24")
        }
        .check()
        .unwrap();
    }

    #[test]
    fn ipam_configuration_round_trips_and_checks() {
        let res = assert_round_trip(
            "apiVersion: projectcalico.org/v3
kind: IPAMConfiguration
metadata:
  name: default
spec:
  strictAffinity: true
  maxBlocksPerHost: 4
  autoAllocateBlocks: true
  kubeVirtVMAddressPersistence: Enabled
  ipCooldownSeconds: 30
",
        );
        let Resource::IpamConfiguration(cfg) = res else {
            panic!("not ipam config")
        };
        assert!(cfg.spec.strict_affinity());
        assert_eq!(cfg.spec.max_blocks_per_host(), Some(4));
        let err = assert_invalid(
            "apiVersion: projectcalico.org/v3\nkind: IPAMConfiguration\nmetadata: {name: default}\nspec: {strictAffinity: false, maxBlocksPerHost: -1}\n",
        );
        assert_eq!(err.path, "spec.maxBlocksPerHost");
    }
}
