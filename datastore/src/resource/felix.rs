//! `FelixConfiguration` (`felixconfig.go`): node-agent settings, `default` for the cluster and
//! `node.<name>` per node.
//!
//! Every field of Calico's `FelixConfigurationSpec` is modelled (so strict parsing accepts any
//! valid Calico file); each is optional, and settings vrouter does not implement are stored
//! and printed unchanged. Enumerated values and durations stay strings (`"90s"`, `"Auto"`).
//! Field names and json spellings follow Calico exactly; see Calico's FelixConfiguration
//! reference for the meaning of each setting.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::meta::{NameRule, ObjectMeta};
use super::numorstring::{Dscp, Port};
use super::validation::{Checked, ValidationError, parse_ip_or_cidr};

/// Felix configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FelixConfiguration {
    /// Metadata (cluster-scoped; `default` or `node.<name>`).
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: FelixConfigurationSpec,
}

/// A failsafe port: protocol, port and optional peer network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtoPort {
    /// `TCP`, `UDP` or `SCTP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Port number.
    pub port: u16,
    /// Only for peers in this CIDR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<String>,
}

/// Health-check timeout override for one reporter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthTimeoutOverride {
    /// Reporter name.
    pub name: String,
    /// Timeout (Go duration).
    pub timeout: String,
}

/// A range of routing-table ids.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteTableIdRange {
    /// First id.
    pub min: i64,
    /// Last id.
    pub max: i64,
}

/// eBPF conntrack timeouts (Go durations or `Auto`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BpfConntrackTimeouts {
    /// Grace period for new entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_grace_period: Option<String>,
    /// TCP SYN sent.
    #[serde(
        default,
        rename = "tcpSynSent",
        skip_serializing_if = "Option::is_none"
    )]
    pub tcp_syn_sent: Option<String>,
    /// TCP established.
    #[serde(
        default,
        rename = "tcpEstablished",
        skip_serializing_if = "Option::is_none"
    )]
    pub tcp_established: Option<String>,
    /// TCP FINs seen.
    #[serde(
        default,
        rename = "tcpFinsSeen",
        skip_serializing_if = "Option::is_none"
    )]
    pub tcp_fins_seen: Option<String>,
    /// TCP reset seen.
    #[serde(
        default,
        rename = "tcpResetSeen",
        skip_serializing_if = "Option::is_none"
    )]
    pub tcp_reset_seen: Option<String>,
    /// UDP.
    #[serde(
        default,
        rename = "udpTimeout",
        skip_serializing_if = "Option::is_none"
    )]
    pub udp_timeout: Option<String>,
    /// Other protocols.
    #[serde(
        default,
        rename = "genericTimeout",
        skip_serializing_if = "Option::is_none"
    )]
    pub generic_timeout: Option<String>,
    /// ICMP.
    #[serde(
        default,
        rename = "icmpTimeout",
        skip_serializing_if = "Option::is_none"
    )]
    pub icmp_timeout: Option<String>,
}

/// `FelixConfiguration.spec`: every Felix setting, in Calico's order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FelixConfigurationSpec {
    /// `nodeSelector` (Felix `NodeSelector`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<String>,
    /// `useInternalDataplaneDriver` (Felix `UseInternalDataplaneDriver`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_internal_dataplane_driver: Option<bool>,
    /// `dataplaneDriver` (Felix `DataplaneDriver`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataplane_driver: Option<String>,
    /// `dataplaneWatchdogTimeout` (Felix `DataplaneWatchdogTimeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataplane_watchdog_timeout: Option<String>,
    /// `ipv6Support` (Felix `IPv6Support`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_support: Option<bool>,
    /// `routeRefreshInterval` (Felix `RouteRefreshInterval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_refresh_interval: Option<String>,
    /// `interfaceRefreshInterval` (Felix `InterfaceRefreshInterval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_refresh_interval: Option<String>,
    /// `iptablesRefreshInterval` (Felix `IptablesRefreshInterval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iptables_refresh_interval: Option<String>,
    /// `iptablesPostWriteCheckInterval` (Felix `IptablesPostWriteCheckInterval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iptables_post_write_check_interval: Option<String>,
    /// `iptablesLockProbeInterval` (Felix `IptablesLockProbeInterval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iptables_lock_probe_interval: Option<String>,
    /// `featureDetectOverride` (Felix `FeatureDetectOverride`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_detect_override: Option<String>,
    /// `featureGates` (Felix `FeatureGates`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_gates: Option<String>,
    /// `ipsetsRefreshInterval` (Felix `IpsetsRefreshInterval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipsets_refresh_interval: Option<String>,
    /// `maxIpsetSize` (Felix `MaxIpsetSize`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ipset_size: Option<i64>,
    /// `iptablesBackend` (Felix `IptablesBackend`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iptables_backend: Option<String>,
    /// `xdpRefreshInterval` (Felix `XDPRefreshInterval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xdp_refresh_interval: Option<String>,
    /// `netlinkTimeout` (Felix `NetlinkTimeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netlink_timeout: Option<String>,
    /// `metadataAddr` (Felix `MetadataAddr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_addr: Option<String>,
    /// `metadataPort` (Felix `MetadataPort`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_port: Option<i64>,
    /// `openstackRegion` (Felix `OpenstackRegion`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openstack_region: Option<String>,
    /// `interfacePrefix` (Felix `InterfacePrefix`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_prefix: Option<String>,
    /// `interfaceExclude` (Felix `InterfaceExclude`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_exclude: Option<String>,
    /// `chainInsertMode` (Felix `ChainInsertMode`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_insert_mode: Option<String>,
    /// `defaultEndpointToHostAction` (Felix `DefaultEndpointToHostAction`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_endpoint_to_host_action: Option<String>,
    /// `iptablesFilterAllowAction` (Felix `IptablesFilterAllowAction`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iptables_filter_allow_action: Option<String>,
    /// `iptablesMangleAllowAction` (Felix `IptablesMangleAllowAction`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iptables_mangle_allow_action: Option<String>,
    /// `iptablesFilterDenyAction` (Felix `IptablesFilterDenyAction`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iptables_filter_deny_action: Option<String>,
    /// `logPrefix` (Felix `LogPrefix`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_prefix: Option<String>,
    /// `logActionRateLimit` (Felix `LogActionRateLimit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_action_rate_limit: Option<String>,
    /// `logActionRateLimitBurst` (Felix `LogActionRateLimitBurst`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_action_rate_limit_burst: Option<i64>,
    /// `logFilePath` (Felix `LogFilePath`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_file_path: Option<String>,
    /// `logSeverityFile` (Felix `LogSeverityFile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_severity_file: Option<String>,
    /// `logSeverityScreen` (Felix `LogSeverityScreen`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_severity_screen: Option<String>,
    /// `logSeveritySys` (Felix `LogSeveritySys`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_severity_sys: Option<String>,
    /// `logDebugFilenameRegex` (Felix `LogDebugFilenameRegex`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_debug_filename_regex: Option<String>,
    /// `ipipEnabled` (Felix `IPIPEnabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipip_enabled: Option<bool>,
    /// `ipipMTU` (Felix `IPIPMTU`).
    #[serde(default, rename = "ipipMTU", skip_serializing_if = "Option::is_none")]
    pub ipip_mtu: Option<i64>,
    /// `vxlanEnabled` (Felix `VXLANEnabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vxlan_enabled: Option<bool>,
    /// `vxlanMTU` (Felix `VXLANMTU`).
    #[serde(default, rename = "vxlanMTU", skip_serializing_if = "Option::is_none")]
    pub vxlan_mtu: Option<i64>,
    /// `vxlanMTUV6` (Felix `VXLANMTUV6`).
    #[serde(
        default,
        rename = "vxlanMTUV6",
        skip_serializing_if = "Option::is_none"
    )]
    pub vxlan_mtu_v6: Option<i64>,
    /// `vxlanPort` (Felix `VXLANPort`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vxlan_port: Option<i64>,
    /// `vxlanVNI` (Felix `VXLANVNI`).
    #[serde(default, rename = "vxlanVNI", skip_serializing_if = "Option::is_none")]
    pub vxlan_vni: Option<i64>,
    /// `allowVXLANPacketsFromWorkloads` (Felix `AllowVXLANPacketsFromWorkloads`).
    #[serde(
        default,
        rename = "allowVXLANPacketsFromWorkloads",
        skip_serializing_if = "Option::is_none"
    )]
    pub allow_vxlan_packets_from_workloads: Option<bool>,
    /// `allowIPIPPacketsFromWorkloads` (Felix `AllowIPIPPacketsFromWorkloads`).
    #[serde(
        default,
        rename = "allowIPIPPacketsFromWorkloads",
        skip_serializing_if = "Option::is_none"
    )]
    pub allow_ipip_packets_from_workloads: Option<bool>,
    /// `reportingInterval` (Felix `ReportingInterval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporting_interval: Option<String>,
    /// `reportingTTL` (Felix `ReportingTTL`).
    #[serde(
        default,
        rename = "reportingTTL",
        skip_serializing_if = "Option::is_none"
    )]
    pub reporting_ttl: Option<String>,
    /// `endpointReportingEnabled` (Felix `EndpointReportingEnabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_reporting_enabled: Option<bool>,
    /// `endpointReportingDelay` (Felix `EndpointReportingDelay`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_reporting_delay: Option<String>,
    /// `endpointStatusPathPrefix` (Felix `EndpointStatusPathPrefix`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_status_path_prefix: Option<String>,
    /// `iptablesMarkMask` (Felix `IptablesMarkMask`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iptables_mark_mask: Option<i64>,
    /// `disableConntrackInvalidCheck` (Felix `DisableConntrackInvalidCheck`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_conntrack_invalid_check: Option<bool>,
    /// `healthEnabled` (Felix `HealthEnabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_enabled: Option<bool>,
    /// `healthHost` (Felix `HealthHost`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_host: Option<String>,
    /// `healthPort` (Felix `HealthPort`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_port: Option<i64>,
    /// `healthTimeoutOverrides` (Felix `HealthTimeoutOverrides`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health_timeout_overrides: Vec<HealthTimeoutOverride>,
    /// `prometheusMetricsEnabled` (Felix `PrometheusMetricsEnabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_metrics_enabled: Option<bool>,
    /// `prometheusMetricsHost` (Felix `PrometheusMetricsHost`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_metrics_host: Option<String>,
    /// `prometheusMetricsPort` (Felix `PrometheusMetricsPort`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_metrics_port: Option<i64>,
    /// `prometheusGoMetricsEnabled` (Felix `PrometheusGoMetricsEnabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_go_metrics_enabled: Option<bool>,
    /// `prometheusProcessMetricsEnabled` (Felix `PrometheusProcessMetricsEnabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_process_metrics_enabled: Option<bool>,
    /// `prometheusWireGuardMetricsEnabled` (Felix `PrometheusWireGuardMetricsEnabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_wire_guard_metrics_enabled: Option<bool>,
    /// `prometheusMetricsCAFile` (Felix `PrometheusMetricsCAFile`).
    #[serde(
        default,
        rename = "prometheusMetricsCAFile",
        skip_serializing_if = "Option::is_none"
    )]
    pub prometheus_metrics_ca_file: Option<String>,
    /// `prometheusMetricsCertFile` (Felix `PrometheusMetricsCertFile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_metrics_cert_file: Option<String>,
    /// `prometheusMetricsKeyFile` (Felix `PrometheusMetricsKeyFile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_metrics_key_file: Option<String>,
    /// `prometheusMetricsClientAuth` (Felix `PrometheusMetricsClientAuth`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_metrics_client_auth: Option<String>,
    /// `failsafeInboundHostPorts` (Felix `FailsafeInboundHostPorts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failsafe_inbound_host_ports: Option<Vec<ProtoPort>>,
    /// `failsafeOutboundHostPorts` (Felix `FailsafeOutboundHostPorts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failsafe_outbound_host_ports: Option<Vec<ProtoPort>>,
    /// `kubeNodePortRanges` (Felix `KubeNodePortRanges`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_node_port_ranges: Option<Vec<Port>>,
    /// `policySyncPathPrefix` (Felix `PolicySyncPathPrefix`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_sync_path_prefix: Option<String>,
    /// `usageReportingEnabled` (Felix `UsageReportingEnabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_reporting_enabled: Option<bool>,
    /// `usageReportingInitialDelay` (Felix `UsageReportingInitialDelay`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_reporting_initial_delay: Option<String>,
    /// `usageReportingInterval` (Felix `UsageReportingInterval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_reporting_interval: Option<String>,
    /// `natPortRange` (Felix `NATPortRange`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_port_range: Option<Port>,
    /// `natOutgoingAddress` (Felix `NATOutgoingAddress`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_outgoing_address: Option<String>,
    /// `natOutgoingExclusions` (Felix `NATOutgoingExclusions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_outgoing_exclusions: Option<String>,
    /// `deviceRouteSourceAddress` (Felix `DeviceRouteSourceAddress`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_route_source_address: Option<String>,
    /// `deviceRouteSourceAddressIPv6` (Felix `DeviceRouteSourceAddressIPv6`).
    #[serde(
        default,
        rename = "deviceRouteSourceAddressIPv6",
        skip_serializing_if = "Option::is_none"
    )]
    pub device_route_source_address_ipv6: Option<String>,
    /// `deviceRouteProtocol` (Felix `DeviceRouteProtocol`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_route_protocol: Option<i64>,
    /// `removeExternalRoutes` (Felix `RemoveExternalRoutes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_external_routes: Option<bool>,
    /// `programClusterRoutes` (Felix `ProgramClusterRoutes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program_cluster_routes: Option<String>,
    /// `ipForwarding` (Felix `IPForwarding`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_forwarding: Option<String>,
    /// `externalNodesList` (Felix `ExternalNodesCIDRList`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_nodes_list: Option<Vec<String>>,
    /// `debugMemoryProfilePath` (Felix `DebugMemoryProfilePath`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug_memory_profile_path: Option<String>,
    /// `debugDisableLogDropping` (Felix `DebugDisableLogDropping`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug_disable_log_dropping: Option<bool>,
    /// `debugSimulateCalcGraphHangAfter` (Felix `DebugSimulateCalcGraphHangAfter`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug_simulate_calc_graph_hang_after: Option<String>,
    /// `debugSimulateDataplaneHangAfter` (Felix `DebugSimulateDataplaneHangAfter`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug_simulate_dataplane_hang_after: Option<String>,
    /// `debugSimulateDataplaneApplyDelay` (Felix `DebugSimulateDataplaneApplyDelay`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug_simulate_dataplane_apply_delay: Option<String>,
    /// `debugHost` (Felix `DebugHost`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug_host: Option<String>,
    /// `debugPort` (Felix `DebugPort`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug_port: Option<i64>,
    /// `iptablesNATOutgoingInterfaceFilter` (Felix `IptablesNATOutgoingInterfaceFilter`).
    #[serde(
        default,
        rename = "iptablesNATOutgoingInterfaceFilter",
        skip_serializing_if = "Option::is_none"
    )]
    pub iptables_nat_outgoing_interface_filter: Option<String>,
    /// `sidecarAccelerationEnabled` (Felix `SidecarAccelerationEnabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sidecar_acceleration_enabled: Option<bool>,
    /// `xdpEnabled` (Felix `XDPEnabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xdp_enabled: Option<bool>,
    /// `genericXDPEnabled` (Felix `GenericXDPEnabled`).
    #[serde(
        default,
        rename = "genericXDPEnabled",
        skip_serializing_if = "Option::is_none"
    )]
    pub generic_xdp_enabled: Option<bool>,
    /// `nftablesMode` (Felix `NFTablesMode`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nftables_mode: Option<String>,
    /// `nftablesFlowTableOffload` (Felix `NFTablesFlowTableOffload`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nftables_flow_table_offload: Option<String>,
    /// `nftablesFlowTableDataIfacePattern` (Felix `NFTablesFlowTableDataIfacePattern`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nftables_flow_table_data_iface_pattern: Option<String>,
    /// `nftablesRefreshInterval` (Felix `NftablesRefreshInterval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nftables_refresh_interval: Option<String>,
    /// `nftablesFilterAllowAction` (Felix `NftablesFilterAllowAction`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nftables_filter_allow_action: Option<String>,
    /// `nftablesMangleAllowAction` (Felix `NftablesMangleAllowAction`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nftables_mangle_allow_action: Option<String>,
    /// `nftablesFilterDenyAction` (Felix `NftablesFilterDenyAction`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nftables_filter_deny_action: Option<String>,
    /// `nftablesMarkMask` (Felix `NftablesMarkMask`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nftables_mark_mask: Option<i64>,
    /// `bpfEnabled` (Felix `BPFEnabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_enabled: Option<bool>,
    /// `bpfOverlayHostSourceIP` (Felix `BPFOverlayHostSourceIP`).
    #[serde(
        default,
        rename = "bpfOverlayHostSourceIP",
        skip_serializing_if = "Option::is_none"
    )]
    pub bpf_overlay_host_source_ip: Option<String>,
    /// `bpfDisableUnprivileged` (Felix `BPFDisableUnprivileged`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_disable_unprivileged: Option<bool>,
    /// `bpfJITHardening` (Felix `BPFJITHardening`).
    #[serde(
        default,
        rename = "bpfJITHardening",
        skip_serializing_if = "Option::is_none"
    )]
    pub bpf_jit_hardening: Option<String>,
    /// `bpfLogLevel` (Felix `BPFLogLevel`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_log_level: Option<String>,
    /// `bpfConntrackLogLevel` (Felix `BPFConntrackLogLevel`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_conntrack_log_level: Option<String>,
    /// `bpfConntrackMode` (Felix `BPFConntrackCleanupMode`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_conntrack_mode: Option<String>,
    /// `bpfConntrackTimeouts` (Felix `BPFConntrackTimeouts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_conntrack_timeouts: Option<BpfConntrackTimeouts>,
    /// `bpfIPFragTimeout` (Felix `BPFIPFragTimeout`).
    #[serde(
        default,
        rename = "bpfIPFragTimeout",
        skip_serializing_if = "Option::is_none"
    )]
    pub bpf_ip_frag_timeout: Option<String>,
    /// `bpfLogFilters` (Felix `BPFLogFilters`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_log_filters: Option<BTreeMap<String, String>>,
    /// `bpfCTLBLogFilter` (Felix `BPFCTLBLogFilter`).
    #[serde(
        default,
        rename = "bpfCTLBLogFilter",
        skip_serializing_if = "Option::is_none"
    )]
    pub bpf_ctlb_log_filter: Option<String>,
    /// `bpfDataIfacePattern` (Felix `BPFDataIfacePattern`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_data_iface_pattern: Option<String>,
    /// `bpfL3IfacePattern` (Felix `BPFL3IfacePattern`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_l3_iface_pattern: Option<String>,
    /// `bpfConnectTimeLoadBalancingEnabled` (Felix `BPFConnectTimeLoadBalancingEnabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_connect_time_load_balancing_enabled: Option<bool>,
    /// `bpfConnectTimeLoadBalancing` (Felix `BPFConnectTimeLoadBalancing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_connect_time_load_balancing: Option<String>,
    /// `bpfHostNetworkedNATWithoutCTLB` (Felix `BPFHostNetworkedNATWithoutCTLB`).
    #[serde(
        default,
        rename = "bpfHostNetworkedNATWithoutCTLB",
        skip_serializing_if = "Option::is_none"
    )]
    pub bpf_host_networked_nat_without_ctlb: Option<String>,
    /// `bpfExternalServiceMode` (Felix `BPFExternalServiceMode`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_external_service_mode: Option<String>,
    /// `bpfDSROptoutCIDRs` (Felix `BPFDSROptoutCIDRs`).
    #[serde(
        default,
        rename = "bpfDSROptoutCIDRs",
        skip_serializing_if = "Option::is_none"
    )]
    pub bpf_dsr_optout_cidrs: Option<Vec<String>>,
    /// `bpfExtToServiceConnmark` (Felix `BPFExtToServiceConnmark`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_ext_to_service_connmark: Option<i64>,
    /// `bpfKubeProxyIptablesCleanupEnabled` (Felix `BPFKubeProxyIptablesCleanupEnabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_kube_proxy_iptables_cleanup_enabled: Option<bool>,
    /// `bpfKubeProxyMinSyncPeriod` (Felix `BPFKubeProxyMinSyncPeriod`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_kube_proxy_min_sync_period: Option<String>,
    /// `bpfKubeProxyHealthzPort` (Felix `BPFKubeProxyHealthzPort`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_kube_proxy_healthz_port: Option<i64>,
    /// `bpfPSNATPorts` (Felix `BPFPSNATPorts`).
    #[serde(
        default,
        rename = "bpfPSNATPorts",
        skip_serializing_if = "Option::is_none"
    )]
    pub bpf_psnat_ports: Option<Port>,
    /// `bpfMapSizeNATFrontend` (Felix `BPFMapSizeNATFrontend`).
    #[serde(
        default,
        rename = "bpfMapSizeNATFrontend",
        skip_serializing_if = "Option::is_none"
    )]
    pub bpf_map_size_nat_frontend: Option<i64>,
    /// `bpfMapSizeNATBackend` (Felix `BPFMapSizeNATBackend`).
    #[serde(
        default,
        rename = "bpfMapSizeNATBackend",
        skip_serializing_if = "Option::is_none"
    )]
    pub bpf_map_size_nat_backend: Option<i64>,
    /// `bpfMapSizeNATAffinity` (Felix `BPFMapSizeNATAffinity`).
    #[serde(
        default,
        rename = "bpfMapSizeNATAffinity",
        skip_serializing_if = "Option::is_none"
    )]
    pub bpf_map_size_nat_affinity: Option<i64>,
    /// `bpfMapSizeRoute` (Felix `BPFMapSizeRoute`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_map_size_route: Option<i64>,
    /// `bpfMapSizeConntrack` (Felix `BPFMapSizeConntrack`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_map_size_conntrack: Option<i64>,
    /// `bpfMapSizePerCpuConntrack` (Felix `BPFMapSizePerCPUConntrack`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_map_size_per_cpu_conntrack: Option<i64>,
    /// `bpfMapSizeConntrackScaling` (Felix `BPFMapSizeConntrackScaling`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_map_size_conntrack_scaling: Option<String>,
    /// `bpfMapSizeConntrackCleanupQueue` (Felix `BPFMapSizeConntrackCleanupQueue`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_map_size_conntrack_cleanup_queue: Option<i64>,
    /// `bpfMapSizeIPSets` (Felix `BPFMapSizeIPSets`).
    #[serde(
        default,
        rename = "bpfMapSizeIPSets",
        skip_serializing_if = "Option::is_none"
    )]
    pub bpf_map_size_ip_sets: Option<i64>,
    /// `bpfMapSizeIfState` (Felix `BPFMapSizeIfState`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_map_size_if_state: Option<i64>,
    /// `bpfHostConntrackBypass` (Felix `BPFHostConntrackBypass`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_host_conntrack_bypass: Option<bool>,
    /// `bpfIPFragmentReassemblyEnabled` (Felix `BPFIPFragmentReassemblyEnabled`).
    #[serde(
        default,
        rename = "bpfIPFragmentReassemblyEnabled",
        skip_serializing_if = "Option::is_none"
    )]
    pub bpf_ip_fragment_reassembly_enabled: Option<bool>,
    /// `bpfEnforceRPF` (Felix `BPFEnforceRPF`).
    #[serde(
        default,
        rename = "bpfEnforceRPF",
        skip_serializing_if = "Option::is_none"
    )]
    pub bpf_enforce_rpf: Option<String>,
    /// `bpfPolicyDebugEnabled` (Felix `BPFPolicyDebugEnabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_policy_debug_enabled: Option<bool>,
    /// `bpfForceTrackPacketsFromIfaces` (Felix `BPFForceTrackPacketsFromIfaces`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_force_track_packets_from_ifaces: Option<Vec<String>>,
    /// `bpfDisableGROForIfaces` (Felix `BPFDisableGROForIfaces`).
    #[serde(
        default,
        rename = "bpfDisableGROForIfaces",
        skip_serializing_if = "Option::is_none"
    )]
    pub bpf_disable_gro_for_ifaces: Option<String>,
    /// `bpfExcludeCIDRsFromNAT` (Felix `BPFExcludeCIDRsFromNAT`).
    #[serde(
        default,
        rename = "bpfExcludeCIDRsFromNAT",
        skip_serializing_if = "Option::is_none"
    )]
    pub bpf_exclude_cidrs_from_nat: Option<Vec<String>>,
    /// `bpfExportBufferSizeMB` (Felix `BPFExportBufferSizeMB`).
    #[serde(
        default,
        rename = "bpfExportBufferSizeMB",
        skip_serializing_if = "Option::is_none"
    )]
    pub bpf_export_buffer_size_mb: Option<i64>,
    /// `istioAmbientMode` (Felix `IstioAmbientMode`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub istio_ambient_mode: Option<String>,
    /// `istioDSCPMark` (Felix `IstioDSCPMark`).
    #[serde(
        default,
        rename = "istioDSCPMark",
        skip_serializing_if = "Option::is_none"
    )]
    pub istio_dscp_mark: Option<Dscp>,
    /// `cgroupV2Path` (Felix `CgroupV2Path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_v2_path: Option<String>,
    /// `flowLogsPolicyEvaluationMode` (Felix `FlowLogsPolicyEvaluationMode`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_logs_policy_evaluation_mode: Option<String>,
    /// `bpfRedirectToPeer` (Felix `BPFRedirectToPeer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_redirect_to_peer: Option<String>,
    /// `bpfAttachType` (Felix `BPFAttachType`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_attach_type: Option<String>,
    /// `flowLogsFlushInterval` (Felix `FlowLogsFlushInterval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_logs_flush_interval: Option<String>,
    /// `flowLogsCollectorDebugTrace` (Felix `FlowLogsCollectorDebugTrace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_logs_collector_debug_trace: Option<bool>,
    /// `flowLogsGoldmaneServer` (Felix `FlowLogsGoldmaneServer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_logs_goldmane_server: Option<String>,
    /// `flowLogsLocalReporter` (Felix `FlowLogsLocalReporter`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_logs_local_reporter: Option<String>,
    /// `bpfProfiling` (Felix `BPFProfiling`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_profiling: Option<String>,
    /// `routeSource` (Felix `RouteSource`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_source: Option<String>,
    /// `routeTableRanges` (Felix `RouteTableRanges`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_table_ranges: Option<Vec<RouteTableIdRange>>,
    /// `routeTableRange` (Felix `RouteTableRange`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_table_range: Option<RouteTableIdRange>,
    /// `routeSyncDisabled` (Felix `RouteSyncDisabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_sync_disabled: Option<bool>,
    /// `ipv4NormalRoutePriority` (Felix `IPv4NormalRoutePriority`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_normal_route_priority: Option<i64>,
    /// `ipv4ElevatedRoutePriority` (Felix `IPv4ElevatedRoutePriority`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_elevated_route_priority: Option<i64>,
    /// `ipv6NormalRoutePriority` (Felix `IPv6NormalRoutePriority`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_normal_route_priority: Option<i64>,
    /// `ipv6ElevatedRoutePriority` (Felix `IPv6ElevatedRoutePriority`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_elevated_route_priority: Option<i64>,
    /// `liveMigrationRouteConvergenceTime` (Felix `LiveMigrationRouteConvergenceTime`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_migration_route_convergence_time: Option<String>,
    /// `wireguardEnabled` (Felix `WireguardEnabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wireguard_enabled: Option<bool>,
    /// `wireguardEnabledV6` (Felix `WireguardEnabledV6`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wireguard_enabled_v6: Option<bool>,
    /// `wireguardThreadingEnabled` (Felix `WireguardThreadingEnabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wireguard_threading_enabled: Option<bool>,
    /// `wireguardListeningPort` (Felix `WireguardListeningPort`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wireguard_listening_port: Option<i64>,
    /// `wireguardListeningPortV6` (Felix `WireguardListeningPortV6`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wireguard_listening_port_v6: Option<i64>,
    /// `wireguardRoutingRulePriority` (Felix `WireguardRoutingRulePriority`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wireguard_routing_rule_priority: Option<i64>,
    /// `wireguardInterfaceName` (Felix `WireguardInterfaceName`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wireguard_interface_name: Option<String>,
    /// `wireguardInterfaceNameV6` (Felix `WireguardInterfaceNameV6`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wireguard_interface_name_v6: Option<String>,
    /// `wireguardMTU` (Felix `WireguardMTU`).
    #[serde(
        default,
        rename = "wireguardMTU",
        skip_serializing_if = "Option::is_none"
    )]
    pub wireguard_mtu: Option<i64>,
    /// `wireguardMTUV6` (Felix `WireguardMTUV6`).
    #[serde(
        default,
        rename = "wireguardMTUV6",
        skip_serializing_if = "Option::is_none"
    )]
    pub wireguard_mtu_v6: Option<i64>,
    /// `wireguardHostEncryptionEnabled` (Felix `WireguardHostEncryptionEnabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wireguard_host_encryption_enabled: Option<bool>,
    /// `wireguardKeepAlive` (Felix `WireguardPersistentKeepAlive`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wireguard_keep_alive: Option<String>,
    /// `awsSrcDstCheck` (Felix `AWSSrcDstCheck`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_src_dst_check: Option<String>,
    /// `serviceLoopPrevention` (Felix `ServiceLoopPrevention`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_loop_prevention: Option<String>,
    /// `workloadSourceSpoofing` (Felix `WorkloadSourceSpoofing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_source_spoofing: Option<String>,
    /// `mtuIfacePattern` (Felix `MTUIfacePattern`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu_iface_pattern: Option<String>,
    /// `floatingIPs` (Felix `FloatingIPs`).
    #[serde(
        default,
        rename = "floatingIPs",
        skip_serializing_if = "Option::is_none"
    )]
    pub floating_ips: Option<String>,
    /// `localSubnetL2Reachability` (Felix `LocalSubnetL2Reachability`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_subnet_l2_reachability: Option<String>,
    /// `localSubnetL2ReachabilityRefreshInterval` (Felix `LocalSubnetL2ReachabilityRefreshInterval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_subnet_l2_reachability_refresh_interval: Option<String>,
    /// `windowsManageFirewallRules` (Felix `WindowsManageFirewallRules`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows_manage_firewall_rules: Option<String>,
    /// `goGCThreshold` (Felix `GoGCThreshold`).
    #[serde(
        default,
        rename = "goGCThreshold",
        skip_serializing_if = "Option::is_none"
    )]
    pub go_gc_threshold: Option<i64>,
    /// `goMemoryLimitMB` (Felix `GoMemoryLimitMB`).
    #[serde(
        default,
        rename = "goMemoryLimitMB",
        skip_serializing_if = "Option::is_none"
    )]
    pub go_memory_limit_mb: Option<i64>,
    /// `goMaxProcs` (Felix `GoMaxProcs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub go_max_procs: Option<i64>,
    /// `requireMTUFile` (Felix `RequireMTUFile`).
    #[serde(
        default,
        rename = "requireMTUFile",
        skip_serializing_if = "Option::is_none"
    )]
    pub require_mtu_file: Option<bool>,
    /// `bpfMaglevMaxEndpointsPerService` (Felix `BPFMaglevMaxEndpointsPerService`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_maglev_max_endpoints_per_service: Option<i64>,
    /// `bpfMaglevMaxServices` (Felix `BPFMaglevMaxServices`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_maglev_max_services: Option<i64>,
}

/// Default VXLAN network identifier.
pub const DEFAULT_VXLAN_VNI: u32 = 4096;
/// Default VXLAN UDP port.
pub const DEFAULT_VXLAN_PORT: u16 = 4789;
/// Largest 24-bit VXLAN network identifier (RFC 7348 §5).
const MAX_VXLAN_VNI: i64 = 0xff_ffff;

impl FelixConfigurationSpec {
    /// `vxlanVNI`, defaulted.
    pub fn effective_vxlan_vni(&self) -> u32 {
        self.vxlan_vni
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(DEFAULT_VXLAN_VNI)
    }

    /// `vxlanPort`, defaulted.
    pub fn effective_vxlan_port(&self) -> u16 {
        self.vxlan_port
            .and_then(|v| u16::try_from(v).ok())
            .unwrap_or(DEFAULT_VXLAN_PORT)
    }
}

fn check_range(path: &str, value: Option<i64>, range: std::ops::RangeInclusive<i64>) -> Checked {
    match value {
        Some(v) if !range.contains(&v) => Err(ValidationError::new(
            path,
            format!("{v} is out of range ({}..={})", range.start(), range.end()),
        )),
        _ => Ok(()),
    }
}

fn check_proto_ports(field: &str, ports: Option<&Vec<ProtoPort>>) -> Checked {
    for (i, p) in ports.into_iter().flatten().enumerate() {
        if let Some(proto) = &p.protocol
            && !matches!(proto.as_str(), "TCP" | "UDP" | "SCTP")
        {
            return Err(ValidationError::new(
                format!("spec.{field}[{i}].protocol"),
                format!("{proto:?} is not TCP, UDP or SCTP"),
            ));
        }
        if let Some(net) = &p.net {
            parse_ip_or_cidr(&format!("spec.{field}[{i}].net"), net)?;
        }
    }
    Ok(())
}

impl FelixConfiguration {
    pub(crate) fn check(&self) -> Checked {
        self.metadata.check(false, NameRule::Subdomain)?;
        let spec = &self.spec;
        check_range("spec.vxlanVNI", spec.vxlan_vni, 1..=MAX_VXLAN_VNI)?;
        for (path, port) in [
            ("spec.vxlanPort", spec.vxlan_port),
            ("spec.healthPort", spec.health_port),
            ("spec.prometheusMetricsPort", spec.prometheus_metrics_port),
            ("spec.wireguardListeningPort", spec.wireguard_listening_port),
            (
                "spec.wireguardListeningPortV6",
                spec.wireguard_listening_port_v6,
            ),
        ] {
            check_range(path, port, 1..=65535)?;
        }
        for (path, mtu) in [
            ("spec.vxlanMTU", spec.vxlan_mtu),
            ("spec.vxlanMTUV6", spec.vxlan_mtu_v6),
            ("spec.ipipMTU", spec.ipip_mtu),
            ("spec.wireguardMTU", spec.wireguard_mtu),
            ("spec.wireguardMTUV6", spec.wireguard_mtu_v6),
        ] {
            check_range(path, mtu, 0..=65535)?;
        }
        check_proto_ports(
            "failsafeInboundHostPorts",
            spec.failsafe_inbound_host_ports.as_ref(),
        )?;
        check_proto_ports(
            "failsafeOutboundHostPorts",
            spec.failsafe_outbound_host_ports.as_ref(),
        )?;
        if let Some(range) = &spec.route_table_range
            && (range.min < 1 || range.max > 250 || range.min > range.max)
        {
            return Err(ValidationError::new(
                "spec.routeTableRange",
                format!(
                    "{}-{} is not within 1-250 with min <= max",
                    range.min, range.max
                ),
            ));
        }
        for (i, range) in spec.route_table_ranges.iter().flatten().enumerate() {
            if range.min < 1 || range.min > range.max || range.max > i64::from(u32::MAX) {
                return Err(ValidationError::new(
                    format!("spec.routeTableRanges[{i}]"),
                    format!("{}-{} is not a valid table id range", range.min, range.max),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Resource;
    use super::super::roundtrip::{assert_invalid, assert_round_trip};
    use super::*;

    #[test]
    fn calico_default_felix_configuration_round_trips() {
        let Resource::FelixConfiguration(cfg) = assert_round_trip(
            "apiVersion: projectcalico.org/v3
kind: FelixConfiguration
metadata:
  name: default
spec:
  ipv6Support: false
  ipipMTU: 1400
  chainInsertMode: Append
  logSeverityScreen: Info
  reportingInterval: 0s
  vxlanEnabled: true
  vxlanVNI: 4097
  vxlanPort: 4790
  bpfLogLevel: \"\"
  floatingIPs: Disabled
  failsafeInboundHostPorts:
  - protocol: TCP
    port: 22
  - protocol: UDP
    port: 68
  - protocol: TCP
    port: 179
    net: 10.0.0.0/8
  failsafeOutboundHostPorts: []
  kubeNodePortRanges: [\"30000:32767\"]
  natPortRange: 32768:65535
  healthTimeoutOverrides:
  - name: InternalDataplaneMainLoop
    timeout: 30s
  routeTableRange: {min: 1, max: 250}
  routeTableRanges: [{min: 1, max: 250}, {min: 1000, max: 2000}]
  bpfConntrackTimeouts: {tcpEstablished: 1h, udpTimeout: Auto}
  bpfLogFilters: {all: tcp}
  istioDSCPMark: 23
  wireguardMTUV6: 1400
  deviceRouteSourceAddressIPv6: \"fd00::1\"
  bpfDSROptoutCIDRs: [10.0.0.0/8]
",
        ) else {
            panic!("not a felix configuration")
        };
        assert_eq!(cfg.spec.effective_vxlan_vni(), 4097);
        assert_eq!(cfg.spec.effective_vxlan_port(), 4790);
        assert_eq!(cfg.spec.failsafe_outbound_host_ports, Some(vec![]));
        assert_eq!(
            cfg.spec.nat_port_range,
            Some(Port::Text("32768:65535".into()))
        );
        assert_eq!(cfg.spec.istio_dscp_mark, Some(Dscp::Number(23)));
        assert_eq!(
            cfg.spec.bpf_log_filters.as_ref().map(BTreeMap::len),
            Some(1)
        );
    }

    #[test]
    fn defaults_and_checks() {
        assert_eq!(
            FelixConfigurationSpec::default().effective_vxlan_vni(),
            DEFAULT_VXLAN_VNI
        );
        let head = "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: node.worker-1}\nspec:\n";
        let err = assert_invalid(&format!("{head}  vxlanVNI: 16777216\n"));
        assert_eq!(err.path, "spec.vxlanVNI");
        let err = assert_invalid(&format!("{head}  vxlanPort: 0\n"));
        assert_eq!(err.path, "spec.vxlanPort");
        let err = assert_invalid(&format!(
            "{head}  failsafeInboundHostPorts: [{{protocol: ICMP, port: 1}}]\n"
        ));
        assert_eq!(err.path, "spec.failsafeInboundHostPorts[0].protocol");
        let err = assert_invalid(&format!("{head}  routeTableRange: {{min: 10, max: 5}}\n"));
        assert_eq!(err.path, "spec.routeTableRange");
    }

    #[test]
    fn unknown_felix_setting_is_rejected_by_name() {
        let err = super::super::parse_documents(
            "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: default}\nspec: {vxlanVni: 1}\n",
        )
        .unwrap_err();
        assert_eq!(err.path, "spec.vxlanVni");
        assert!(err.message.contains("unknown field \"vxlanVni\""), "{err}");
    }
}
