//! The sequencer: between `calc` and the managers. Coalesces per key (only the latest state
//! of an endpoint or route is passed on, however often it changed), orders a flush so that
//! nothing becomes reachable before it is filtered, and holds every deletion back until the
//! datastore's first InSync (calico.md §1.1 EventSequencer; design.md §5).
//!
//! Flush order:
//! 1. policy (IP sets, then chains: one [`Output::Policy`] carries both, and the nftables
//!    dataplane writes sets before the chains that reference them in one atomic batch);
//! 2. endpoint additions and updates;
//! 3. the VTEP state ([`Output::Vtep`]: VXLAN device and remote VTEPs; before the routes
//!    through it, calico.md §1.1 "VTEP adds before route adds");
//! 4. route additions and updates;
//! 5. route removals, then endpoint removals (reverse order), only once in sync.
//!
//! The VTEP state is one whole value (the newest wins); the VTEP driver itself holds back
//! removing stale VTEP entries until InSync and runs after route removals are applied.
//!
//! Before the first InSync the datastore listing is incomplete: "absent" may only mean "not
//! listed yet", so removals stay queued (a later update for the same key replaces them).

use std::collections::BTreeMap;

use ipnetwork::IpNetwork;
use policy::model::EndpointId;

use crate::calc::vxlan::VxlanDesired;
use crate::calc::{LocalEndpoint, Output, PolicyDesired, RouteDesire};

/// Coalescing, ordering and the in-sync gate.
#[derive(Debug, Default)]
pub struct Sequencer {
    policy: Option<Box<PolicyDesired>>,
    vtep: Option<VxlanDesired>,
    endpoints: BTreeMap<EndpointId, Option<LocalEndpoint>>,
    routes: BTreeMap<IpNetwork, Option<RouteDesire>>,
    in_sync: bool,
}

impl Sequencer {
    /// An empty sequencer, not in sync.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues one change; a later change for the same key replaces it.
    pub fn push(&mut self, output: Output) {
        match output {
            Output::Policy(mut p) => {
                // Coalesced: the newest state, with the changes of the one it replaces.
                if let Some(previous) = self.policy.take() {
                    let newer = std::mem::take(&mut p.changes);
                    p.changes = previous.changes;
                    p.changes.merge(newer);
                }
                self.policy = Some(p);
            }
            Output::Endpoint { id, endpoint } => {
                self.endpoints.insert(id, endpoint);
            }
            Output::Route { dst, target } => {
                self.routes.insert(dst, target);
            }
            Output::Vtep(v) => self.vtep = Some(v),
        }
    }

    /// The datastore has been listed completely once: removals may flow from now on.
    pub fn set_in_sync(&mut self) {
        self.in_sync = true;
    }

    /// True after [`Sequencer::set_in_sync`].
    pub fn in_sync(&self) -> bool {
        self.in_sync
    }

    /// Number of queued changes (including held removals).
    pub fn pending(&self) -> usize {
        usize::from(self.policy.is_some())
            + usize::from(self.vtep.is_some())
            + self.endpoints.len()
            + self.routes.len()
    }

    /// Takes what may be applied now, in dependency order. Held removals stay queued.
    pub fn flush(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        if let Some(p) = self.policy.take() {
            out.push(Output::Policy(p));
        }
        let endpoints = std::mem::take(&mut self.endpoints);
        let routes = std::mem::take(&mut self.routes);
        let mut endpoint_removals = Vec::new();
        for (id, endpoint) in endpoints {
            match endpoint {
                Some(ep) => out.push(Output::Endpoint {
                    id,
                    endpoint: Some(ep),
                }),
                None => endpoint_removals.push(id),
            }
        }
        if let Some(v) = self.vtep.take() {
            out.push(Output::Vtep(v));
        }
        let mut route_removals = Vec::new();
        for (dst, target) in routes {
            match target {
                Some(t) => out.push(Output::Route {
                    dst,
                    target: Some(t),
                }),
                None => route_removals.push(dst),
            }
        }
        if self.in_sync {
            out.extend(
                route_removals
                    .into_iter()
                    .map(|dst| Output::Route { dst, target: None }),
            );
            out.extend(
                endpoint_removals
                    .into_iter()
                    .map(|id| Output::Endpoint { id, endpoint: None }),
            );
        } else {
            self.routes
                .extend(route_removals.into_iter().map(|dst| (dst, None)));
            self.endpoints
                .extend(endpoint_removals.into_iter().map(|id| (id, None)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(name: &str) -> LocalEndpoint {
        LocalEndpoint {
            id: EndpointId::new("ns", name),
            iface: format!("vr{name}"),
            nets: vec![],
            mac: None,
        }
    }

    fn route(dst: &str, target: Option<RouteDesire>) -> Output {
        Output::Route {
            dst: dst.parse().unwrap(),
            target,
        }
    }

    fn describe(outputs: &[Output]) -> Vec<String> {
        outputs
            .iter()
            .map(|o| match o {
                Output::Policy(_) => "policy".to_string(),
                Output::Endpoint { id, endpoint } => {
                    format!(
                        "ep {} {}",
                        id.name,
                        if endpoint.is_some() { "+" } else { "-" }
                    )
                }
                Output::Route { dst, target } => {
                    format!("route {dst} {}", if target.is_some() { "+" } else { "-" })
                }
                Output::Vtep(_) => "vtep".to_string(),
            })
            .collect()
    }

    fn policy() -> Output {
        let model = policy::Model::new(policy::ModelParts::default()).unwrap();
        Output::Policy(Box::new(PolicyDesired::new(
            policy::compile::compile(&model),
            vec![],
        )))
    }

    #[test]
    fn coalesces_per_key_latest_wins() {
        let mut s = Sequencer::new();
        s.set_in_sync();
        s.push(route("10.0.0.1/32", Some(RouteDesire::Blackhole)));
        s.push(route(
            "10.0.0.1/32",
            Some(RouteDesire::Workload("vra".into())),
        ));
        s.push(route("10.0.0.2/32", Some(RouteDesire::Blackhole)));
        s.push(route("10.0.0.2/32", None));
        let out = s.flush();
        assert_eq!(
            describe(&out),
            ["route 10.0.0.1/32 +", "route 10.0.0.2/32 -"]
        );
        match &out[0] {
            Output::Route { target, .. } => {
                assert_eq!(target, &Some(RouteDesire::Workload("vra".into())));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(s.pending(), 0);
        assert!(s.flush().is_empty());
    }

    #[test]
    fn flushes_policy_then_endpoints_then_routes_then_removals_in_reverse() {
        let mut s = Sequencer::new();
        s.set_in_sync();
        s.push(route("10.0.0.9/32", None));
        s.push(Output::Endpoint {
            id: EndpointId::new("ns", "gone"),
            endpoint: None,
        });
        s.push(route(
            "10.0.0.1/32",
            Some(RouteDesire::Workload("vra".into())),
        ));
        s.push(Output::Endpoint {
            id: EndpointId::new("ns", "a"),
            endpoint: Some(ep("a")),
        });
        s.push(policy());
        s.push(Output::Vtep(VxlanDesired::default()));
        assert_eq!(
            describe(&s.flush()),
            [
                "policy",
                "ep a +",
                "vtep",
                "route 10.0.0.1/32 +",
                "route 10.0.0.9/32 -",
                "ep gone -"
            ]
        );
    }

    #[test]
    fn removals_wait_for_in_sync() {
        let mut s = Sequencer::new();
        s.push(route("10.0.0.9/32", None));
        s.push(route("10.0.0.1/32", Some(RouteDesire::Blackhole)));
        s.push(Output::Endpoint {
            id: EndpointId::new("ns", "gone"),
            endpoint: None,
        });
        assert_eq!(describe(&s.flush()), ["route 10.0.0.1/32 +"]);
        assert_eq!(s.pending(), 2, "removals held");
        assert!(s.flush().is_empty(), "still held");
        s.set_in_sync();
        assert_eq!(describe(&s.flush()), ["route 10.0.0.9/32 -", "ep gone -"]);
        assert_eq!(s.pending(), 0);
    }

    #[test]
    fn a_held_removal_is_cancelled_by_a_later_update() {
        let mut s = Sequencer::new();
        s.push(route("10.0.0.9/32", None));
        assert!(s.flush().is_empty());
        s.push(route("10.0.0.9/32", Some(RouteDesire::Blackhole)));
        assert_eq!(describe(&s.flush()), ["route 10.0.0.9/32 +"]);
        s.set_in_sync();
        assert!(s.flush().is_empty());
    }
}
