//! The agent's Prometheus metrics (`vrouter_felix_*`, style §8.3), labelled by the
//! dataplane part they measure (`routes`, `sysctl`, `policy`), and the outbound NAT counters
//! (`vrouter_nat_*`, labelled by address family). The node daemon serves the
//! [`prometheus_client::registry::Registry`] they are registered in.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label set: which part of the dataplane.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Part {
    /// `routes`, `sysctl` or `policy`.
    pub part: String,
}

impl Part {
    /// The label for `part`.
    pub fn new(part: &str) -> Self {
        Self {
            part: part.to_string(),
        }
    }
}

/// Label set: address family (`ipv4`, `ipv6`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IpFamily {
    /// `ipv4` or `ipv6`.
    pub family: String,
}

impl IpFamily {
    /// The label for `family`.
    pub fn new(family: &str) -> Self {
        Self {
            family: family.to_string(),
        }
    }
}

type HistogramFamily = Family<Part, Histogram, fn() -> Histogram>;

fn apply_histogram() -> Histogram {
    // 50 µs … ~1.6 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// The agent's metrics; clones share the same values.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Time one `apply` of a dataplane part took.
    pub apply_seconds: HistogramFamily,
    /// Kernel state a resync found drifted and repaired.
    pub resync_repairs: Family<Part, Counter>,
    /// Kernel requests that failed.
    pub kernel_errors: Family<Part, Counter>,
    /// Datastore updates the calculation consumed.
    pub datastore_updates: Counter,
    /// Pod connections masqueraded by the `natOutgoing` rule (its nft counter: a nat chain
    /// sees only the first packet of each connection).
    pub nat_outgoing_connections: Family<IpFamily, Counter>,
    /// Bytes of those connections' first packets (the same nft counter's bytes).
    pub nat_outgoing_first_packet_bytes: Family<IpFamily, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh metrics, all zero.
    pub fn new() -> Self {
        Self {
            apply_seconds: Family::new_with_constructor(apply_histogram),
            resync_repairs: Family::default(),
            kernel_errors: Family::default(),
            datastore_updates: Counter::default(),
            nat_outgoing_connections: Family::default(),
            nat_outgoing_first_packet_bytes: Family::default(),
        }
    }

    /// Registers every metric under the `vrouter_felix` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let sub = registry.sub_registry_with_prefix("vrouter_felix");
        sub.register(
            "apply_seconds",
            "Time one apply of a dataplane part took",
            self.apply_seconds.clone(),
        );
        sub.register(
            "resync_repairs",
            "Kernel state a periodic resync found drifted and repaired",
            self.resync_repairs.clone(),
        );
        sub.register(
            "kernel_errors",
            "Kernel requests that failed",
            self.kernel_errors.clone(),
        );
        sub.register(
            "datastore_updates",
            "Datastore updates consumed by the calculation",
            self.datastore_updates.clone(),
        );
        let nat = registry.sub_registry_with_prefix("vrouter_nat");
        nat.register(
            "outgoing_connections",
            "Pod connections masqueraded by IPPool natOutgoing",
            self.nat_outgoing_connections.clone(),
        );
        nat.register(
            "outgoing_first_packet_bytes",
            "Bytes of the first packets of masqueraded pod connections",
            self.nat_outgoing_first_packet_bytes.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_encode_with_the_crate_prefix() {
        let metrics = Metrics::new();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics
            .apply_seconds
            .get_or_create(&Part::new("routes"))
            .observe(0.002);
        metrics
            .resync_repairs
            .get_or_create(&Part::new("routes"))
            .inc_by(3);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("vrouter_felix_resync_repairs_total{part=\"routes\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("vrouter_felix_apply_seconds_count{part=\"routes\"} 1"),
            "{text}"
        );
        metrics
            .nat_outgoing_connections
            .get_or_create(&IpFamily::new("ipv4"))
            .inc_by(2);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("vrouter_nat_outgoing_connections_total{family=\"ipv4\"} 2"),
            "{text}"
        );
    }
}
