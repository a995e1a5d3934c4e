//! The evaluator: decides a flow in both directions — egress of the source endpoint, ingress of
//! the destination endpoint — and explains the verdict with the deciding tier, policy and rule
//! index (or the default that applied). The dataplane must produce exactly these verdicts.
//!
//! Semantics (Calico): tiers in order; within a tier the policies selecting the endpoint in that
//! direction, in order; first matching rule of a policy decides (`Allow`/`Deny`), `Pass` skips to
//! the next tier, `Log` continues. If policies applied in a tier and none decided, the tier's
//! default action applies (end-of-tier deny, or pass). After the tiers, the endpoint's profiles
//! (`kns.<ns>` allows everything, hence "no policy selects it: default allow"); if no profile
//! decides, the packet is dropped. A selector matches an address when it selects the endpoint
//! owning it or a network set containing it (IP-set semantics).

use std::fmt;
use std::net::IpAddr;

use crate::model::{Direction, EndpointId, EntityRef, Model, PolicyId};
use crate::rule::{Action, EntityMatch, IpVersion, PortMatch, Protocol, Rule};

/// One end of a flow.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Peer {
    /// A workload endpoint by id.
    Endpoint(EndpointId),
    /// An address (which may still belong to an endpoint in the model).
    Addr(IpAddr),
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Endpoint(id) => id.fmt(f),
            Peer::Addr(a) => a.fmt(f),
        }
    }
}

/// A flow to decide.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Flow {
    /// Source.
    pub src: Peer,
    /// Destination.
    pub dst: Peer,
    /// IP protocol.
    pub protocol: Protocol,
    /// Source port, if known (rules with source ports never match an unknown one).
    pub src_port: Option<u16>,
    /// Destination port (for port-carrying protocols).
    pub dst_port: Option<u16>,
    /// ICMP type and code (for ICMP flows).
    pub icmp: Option<(u8, Option<u8>)>,
}

impl Flow {
    /// A TCP/UDP/SCTP-style flow to `dst_port`.
    pub fn new(src: Peer, dst: Peer, protocol: Protocol, dst_port: Option<u16>) -> Flow {
        Flow {
            src,
            dst,
            protocol,
            src_port: None,
            dst_port,
            icmp: None,
        }
    }
}

/// The outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Delivered.
    Allow,
    /// Dropped.
    Deny,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
        })
    }
}

/// What decided one direction.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// A policy rule with a terminal action.
    PolicyRule {
        /// Tier of the policy.
        tier: String,
        /// The policy.
        policy: PolicyId,
        /// Index of the rule in the direction's rule list.
        rule: usize,
        /// `Allow` or `Deny`.
        action: Action,
    },
    /// Policies applied in a tier, none decided, and the tier's default is deny.
    EndOfTier {
        /// The tier.
        tier: String,
        /// The policies that applied in it.
        policies: Vec<PolicyId>,
    },
    /// A profile rule decided (with `policies_applied == false` this is the
    /// "no policy selects it" default).
    ProfileRule {
        /// The profile.
        profile: String,
        /// Index of the rule.
        rule: usize,
        /// `Allow` or `Deny`.
        action: Action,
        /// Whether any policy applied (and passed) before the profiles were reached.
        policies_applied: bool,
    },
    /// No profile decided: drop.
    NoProfileMatched {
        /// The profiles consulted (missing ones included).
        profiles: Vec<String>,
        /// Whether any policy applied (and passed) before the profiles were reached.
        policies_applied: bool,
    },
}

/// The verdict for one direction at one endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectionVerdict {
    /// Ingress (at the destination) or egress (at the source).
    pub direction: Direction,
    /// The endpoint whose policy decided.
    pub endpoint: EndpointId,
    /// The result.
    pub verdict: Verdict,
    /// Why.
    pub decision: Decision,
    /// Non-terminal events on the way (`Log` rules, `Pass`, passing tiers, missing profiles).
    pub notes: Vec<String>,
}

/// The verdict for a flow.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowVerdict {
    /// Allowed only when both directions allow.
    pub verdict: Verdict,
    /// Source address used.
    pub src_addr: IpAddr,
    /// Destination address used.
    pub dst_addr: IpAddr,
    /// Egress verdict at the source (`None`: the source is not a workload endpoint).
    pub egress: Option<DirectionVerdict>,
    /// Ingress verdict at the destination (`None`: the destination is not a workload endpoint).
    pub ingress: Option<DirectionVerdict>,
}

/// Why a flow could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvaluateError {
    /// The flow names an endpoint the model does not have.
    #[error("no workload endpoint {0} in the model")]
    UnknownEndpoint(EndpointId),
    /// The two ends share no IP version.
    #[error("{src} and {dst} have no IP version in common")]
    NoCommonIpVersion {
        /// Source.
        src: Peer,
        /// Destination.
        dst: Peer,
    },
}

/// One end of a packet, resolved.
struct Side {
    addr: IpAddr,
    port: Option<u16>,
    covering: Vec<EntityRef>,
}

/// A resolved packet.
struct Packet {
    protocol: Protocol,
    version: IpVersion,
    icmp: Option<(u8, Option<u8>)>,
    src: Side,
    dst: Side,
}

fn endpoint_addrs(model: &Model, i: usize) -> Vec<IpAddr> {
    model.endpoints()[i].nets.iter().map(|n| n.ip()).collect()
}

/// Picks addresses for both ends: explicit addresses as given, endpoint addresses of a common
/// IP version (IPv4 preferred).
fn resolve(
    model: &Model,
    flow: &Flow,
) -> Result<(IpAddr, Option<usize>, IpAddr, Option<usize>), EvaluateError> {
    let candidates = |peer: &Peer| -> Result<(Vec<IpAddr>, Option<usize>), EvaluateError> {
        match peer {
            Peer::Endpoint(id) => {
                let i = model
                    .endpoint_index(id)
                    .ok_or_else(|| EvaluateError::UnknownEndpoint(id.clone()))?;
                Ok((endpoint_addrs(model, i), Some(i)))
            }
            Peer::Addr(a) => Ok((vec![*a], model.endpoint_by_addr(a))),
        }
    };
    let (src_addrs, src_ep) = candidates(&flow.src)?;
    let (dst_addrs, dst_ep) = candidates(&flow.dst)?;
    for version in [IpVersion::V4, IpVersion::V6] {
        let s = src_addrs.iter().find(|a| IpVersion::of(a) == version);
        let d = dst_addrs.iter().find(|a| IpVersion::of(a) == version);
        if let (Some(s), Some(d)) = (s, d) {
            return Ok((*s, src_ep, *d, dst_ep));
        }
    }
    Err(EvaluateError::NoCommonIpVersion {
        src: flow.src.clone(),
        dst: flow.dst.clone(),
    })
}

impl Model {
    /// Decides `flow` and explains the verdict.
    pub fn evaluate(&self, flow: &Flow) -> Result<FlowVerdict, EvaluateError> {
        let (src_addr, src_ep, dst_addr, dst_ep) = resolve(self, flow)?;
        let packet = Packet {
            protocol: flow.protocol,
            version: IpVersion::of(&src_addr),
            icmp: flow.icmp,
            src: Side {
                addr: src_addr,
                port: flow.src_port,
                covering: self.entities_covering(&src_addr),
            },
            dst: Side {
                addr: dst_addr,
                port: flow.dst_port,
                covering: self.entities_covering(&dst_addr),
            },
        };
        let egress = src_ep.map(|i| self.evaluate_direction(i, Direction::Egress, &packet));
        let ingress = dst_ep.map(|i| self.evaluate_direction(i, Direction::Ingress, &packet));
        let denied = [&egress, &ingress]
            .iter()
            .any(|d| d.as_ref().is_some_and(|d| d.verdict == Verdict::Deny));
        Ok(FlowVerdict {
            verdict: if denied {
                Verdict::Deny
            } else {
                Verdict::Allow
            },
            src_addr,
            dst_addr,
            egress,
            ingress,
        })
    }

    fn evaluate_direction(
        &self,
        ep: usize,
        direction: Direction,
        packet: &Packet,
    ) -> DirectionVerdict {
        let endpoint = self.endpoints()[ep].id.clone();
        let labels = self.endpoint_labels(ep);
        let mut notes = Vec::new();
        let mut policies_applied = false;
        let done = |verdict, decision, notes| DirectionVerdict {
            direction,
            endpoint: endpoint.clone(),
            verdict,
            decision,
            notes,
        };

        for tp in self.tiers() {
            let tier = &tp.tier.name;
            let mut applied = Vec::new();
            let mut passed = false;
            'policies: for policy in tp
                .policies
                .iter()
                .filter(|p| p.applies(direction) && p.selector.matches(labels))
            {
                applied.push(policy.id.clone());
                for (index, rule) in policy.rules(direction).iter().enumerate() {
                    if !self.rule_matches(rule, packet) {
                        continue;
                    }
                    match rule.action {
                        Action::Allow | Action::Deny => {
                            let decision = Decision::PolicyRule {
                                tier: tier.clone(),
                                policy: policy.id.clone(),
                                rule: index,
                                action: rule.action,
                            };
                            return done(final_verdict(rule.action), decision, notes);
                        }
                        Action::Pass => {
                            notes.push(format!(
                                "tier {tier}: {} {direction} rule {index} passes to the next tier",
                                policy.id
                            ));
                            passed = true;
                            break 'policies;
                        }
                        Action::Log => notes.push(format!(
                            "tier {tier}: {} {direction} rule {index} logs",
                            policy.id
                        )),
                    }
                }
            }
            if applied.is_empty() {
                continue;
            }
            policies_applied = true;
            if !passed {
                match tp.tier.default_action {
                    crate::model::TierDefaultAction::Deny => {
                        return done(
                            Verdict::Deny,
                            Decision::EndOfTier {
                                tier: tier.clone(),
                                policies: applied,
                            },
                            notes,
                        );
                    }
                    crate::model::TierDefaultAction::Pass => {
                        notes.push(format!(
                            "tier {tier}: no rule matched, tier default action passes"
                        ));
                    }
                }
            }
        }

        let profiles = self.endpoint_profiles(ep);
        for name in profiles {
            let Some(profile) = self.profiles().get(name) else {
                notes.push(format!("profile {name} does not exist"));
                continue;
            };
            for (index, rule) in profile.rules(direction).iter().enumerate() {
                if !self.rule_matches(rule, packet) {
                    continue;
                }
                match rule.action {
                    Action::Allow | Action::Deny => {
                        let decision = Decision::ProfileRule {
                            profile: name.clone(),
                            rule: index,
                            action: rule.action,
                            policies_applied,
                        };
                        return done(final_verdict(rule.action), decision, notes);
                    }
                    Action::Pass => break,
                    Action::Log => {
                        notes.push(format!("profile {name} {direction} rule {index} logs"))
                    }
                }
            }
        }
        done(
            Verdict::Deny,
            Decision::NoProfileMatched {
                profiles: profiles.to_vec(),
                policies_applied,
            },
            notes,
        )
    }

    /// True when `rule` matches the packet.
    fn rule_matches(&self, rule: &Rule, packet: &Packet) -> bool {
        if rule.ip_version.is_some_and(|v| v != packet.version)
            || rule.protocol.is_some_and(|p| p != packet.protocol)
            || rule.not_protocol.is_some_and(|p| p == packet.protocol)
        {
            return false;
        }
        if let Some(m) = &rule.icmp
            && !packet.icmp.is_some_and(|(t, c)| m.matches(t, c))
        {
            return false;
        }
        if let Some(m) = &rule.not_icmp
            && packet.icmp.is_some_and(|(t, c)| m.matches(t, c))
        {
            return false;
        }
        self.side_matches(&rule.source, &packet.src, packet.protocol)
            && self.side_matches(&rule.destination, &packet.dst, packet.protocol)
    }

    fn selects(&self, selector: &crate::Selector, covering: &[EntityRef]) -> bool {
        covering
            .iter()
            .any(|e| selector.matches(self.entity_labels(*e)))
    }

    /// A named port matches when an entity owning the address (and selected by the side's
    /// selector, if any) declares a port of that name with the packet's protocol and port.
    fn named_port_matches(
        &self,
        m: &EntityMatch,
        name: &str,
        side: &Side,
        protocol: Protocol,
    ) -> bool {
        let Some(port) = side.port else { return false };
        side.covering.iter().any(|e| {
            m.selector
                .as_ref()
                .is_none_or(|s| s.matches(self.entity_labels(*e)))
                && self
                    .entity_ports(*e)
                    .iter()
                    .any(|p| p.name == name && p.protocol == protocol && p.port == port)
        })
    }

    fn port_list_matches(
        &self,
        ports: &[PortMatch],
        m: &EntityMatch,
        side: &Side,
        protocol: Protocol,
        selector_ok: bool,
    ) -> bool {
        ports.iter().any(|p| match p {
            PortMatch::Range { .. } => {
                selector_ok && side.port.is_some_and(|port| p.contains(port))
            }
            PortMatch::Named(name) => self.named_port_matches(m, name, side, protocol),
        })
    }

    fn side_matches(&self, m: &EntityMatch, side: &Side, protocol: Protocol) -> bool {
        if !m.nets.is_empty() && !m.nets.iter().any(|n| n.contains(side.addr)) {
            return false;
        }
        if m.not_nets.iter().any(|n| n.contains(side.addr)) {
            return false;
        }
        if m.not_selector
            .as_ref()
            .is_some_and(|s| self.selects(s, &side.covering))
        {
            return false;
        }
        if self.port_list_matches(&m.not_ports, m, side, protocol, true) {
            return false;
        }
        let selector_ok = m
            .selector
            .as_ref()
            .is_none_or(|s| self.selects(s, &side.covering));
        if m.ports.is_empty() {
            selector_ok
        } else {
            self.port_list_matches(&m.ports, m, side, protocol, selector_ok)
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::PolicyRule {
                tier,
                policy,
                rule,
                action,
            } => {
                write!(f, "tier {tier}, {policy}, rule {rule} ({action})")
            }
            Decision::EndOfTier { tier, policies } => {
                let names: Vec<String> = policies.iter().map(ToString::to_string).collect();
                write!(
                    f,
                    "end of tier {tier}: default deny (policies applied: {})",
                    names.join(", ")
                )
            }
            Decision::ProfileRule {
                profile,
                rule,
                action,
                policies_applied,
            } => {
                if !policies_applied && *action == Action::Allow && rule == &0 {
                    write!(f, "no policy selects it: default allow (profile {profile})")
                } else if *policies_applied {
                    write!(
                        f,
                        "policies passed; profile {profile}, rule {rule} ({action})"
                    )
                } else {
                    write!(
                        f,
                        "no policy selects it; profile {profile}, rule {rule} ({action})"
                    )
                }
            }
            Decision::NoProfileMatched {
                profiles,
                policies_applied,
            } => {
                let why = if *policies_applied {
                    "policies passed"
                } else {
                    "no policy selects it"
                };
                if profiles.is_empty() {
                    write!(f, "{why} and it has no profiles: default deny")
                } else {
                    write!(
                        f,
                        "{why} and no profile allowed it ({}): default deny",
                        profiles.join(", ")
                    )
                }
            }
        }
    }
}

impl fmt::Display for DirectionVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let place = match self.direction {
            Direction::Egress => "egress from",
            Direction::Ingress => "ingress to",
        };
        write!(
            f,
            "{place} {}: {} by {}",
            self.endpoint, self.verdict, self.decision
        )?;
        for note in &self.notes {
            write!(f, "\n    note: {note}")?;
        }
        Ok(())
    }
}

impl fmt::Display for FlowVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.verdict)?;
        match &self.egress {
            Some(d) => writeln!(f, "  {d}")?,
            None => writeln!(
                f,
                "  egress: source {} is not a workload endpoint: no egress policy",
                self.src_addr
            )?,
        }
        match &self.ingress {
            Some(d) => write!(f, "  {d}"),
            None => write!(
                f,
                "  ingress: destination {} is not a workload endpoint: no ingress policy",
                self.dst_addr
            ),
        }
    }
}

/// The verdict of a rule that decides (`Allow` or `Deny`).
fn final_verdict(action: Action) -> Verdict {
    if action == Action::Allow {
        Verdict::Allow
    } else {
        Verdict::Deny
    }
}

#[cfg(test)]
#[path = "evaluate_tests.rs"]
mod tests;
