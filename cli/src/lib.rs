//! Operator CLIs: `vrctl` (calicoctl-compatible resource CLI over etcd) and `vrouterc`
//! (birdc-like shell over the control socket). The binaries are added by their issues.
