//! `vrctl bgp decode <hex>|-`: one BGP message as JSON — type, fields, path attributes and
//! NLRI; for malformed input the RFC 7606 disposition and the NOTIFICATION (code, subcode,
//! data) the speaker would send. Bad hex is an error (exit 1); a malformed message is a
//! successful decode whose JSON says so (exit 0).
//!
//! UPDATEs depend on the session: `--two-octet-as`, `--ebgp` and `--add-path` describe it
//! (default: 4-octet AS, iBGP, no ADD-PATH — a Calico mesh session).

use std::io::Read;

use anyhow::{Context, bail};
use bgp::wire::{
    AsPathSegment, Capability, CodecContext, Family, FamilySet, Message, MessageError, Nlri,
    Notification, PathAttributes, Update, decode_message,
};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::output::emit;

/// `vrctl bgp …`.
#[derive(Debug, Args)]
pub struct BgpArgs {
    #[command(subcommand)]
    command: BgpCommand,
}

#[derive(Debug, Subcommand)]
enum BgpCommand {
    /// Decode one BGP message given as hex (or `-` to read hex from standard input).
    Decode(DecodeArgs),
}

/// `vrctl bgp decode`.
#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// The message in hex (spaces, colons and a 0x prefix are ignored), or `-` for stdin.
    hex: String,
    /// The session uses 2-octet AS numbers (no 4-octet AS capability).
    #[arg(long)]
    two_octet_as: bool,
    /// The session is eBGP (selects the RFC 7606 eBGP branches).
    #[arg(long)]
    ebgp: bool,
    /// The sender includes ADD-PATH path identifiers (both families).
    #[arg(long)]
    add_path: bool,
}

/// Runs a `vrctl bgp` command; returns the exit code.
pub fn run(args: BgpArgs) -> anyhow::Result<u8> {
    match args.command {
        BgpCommand::Decode(decode) => {
            let text = if decode.hex == "-" {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context("reading standard input")?;
                text
            } else {
                decode.hex.clone()
            };
            let bytes = parse_hex(&text)?;
            let ctx = CodecContext {
                four_octet_as: !decode.two_octet_as,
                ibgp: !decode.ebgp,
                add_path_receive: if decode.add_path {
                    FamilySet::of(&Family::ALL)
                } else {
                    FamilySet::EMPTY
                },
                ..CodecContext::default()
            };
            let value = decode_json(&bytes, &ctx);
            emit(&format!("{}\n", serde_json::to_string_pretty(&value)?))?;
            Ok(0)
        }
    }
}

/// Parses hex, ignoring whitespace, `:` separators and a leading `0x`.
pub fn parse_hex(text: &str) -> anyhow::Result<Vec<u8>> {
    let trimmed = text.trim();
    let body = trimmed
        .strip_prefix("0x")
        .or_else(|| trimmed.strip_prefix("0X"))
        .unwrap_or(trimmed);
    let digits: Vec<char> = body
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect();
    if digits.is_empty() {
        bail!("no hex digits given");
    }
    if let Some((i, c)) = digits
        .iter()
        .enumerate()
        .find(|(_, c)| !c.is_ascii_hexdigit())
    {
        bail!("invalid hex: {c:?} at digit {}", i + 1);
    }
    if !digits.len().is_multiple_of(2) {
        bail!("invalid hex: odd number of digits ({})", digits.len());
    }
    digits
        .chunks(2)
        .map(|pair| {
            let s: String = pair.iter().collect();
            u8::from_str_radix(&s, 16).with_context(|| format!("invalid hex byte {s:?}"))
        })
        .collect()
}

/// The JSON description of the message at the start of `bytes`.
pub fn decode_json(bytes: &[u8], ctx: &CodecContext) -> Value {
    match decode_message(bytes, ctx) {
        Ok(message) => message_json(&message),
        Err(error) => malformed_json(&error),
    }
}

fn notification_json(n: &Notification) -> Value {
    json!({
        "code": n.code,
        "subcode": n.subcode,
        "data": hex(&n.data),
        "text": n.to_string(),
    })
}

fn malformed_json(error: &MessageError) -> Value {
    json!({
        "malformed": true,
        "disposition": error.disposition().as_str(),
        "reason": error.reason,
        "notification": notification_json(&error.notification),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn message_json(message: &Message) -> Value {
    match message {
        Message::Open(open) => json!({
            "type": "open",
            "my_as": open.my_as,
            "asn": open.asn(),
            "hold_time": open.hold_time,
            "router_id": open.router_id.to_string(),
            "capabilities": open.capabilities.iter().map(capability_json).collect::<Vec<_>>(),
        }),
        Message::Update(update) => update_json(update),
        Message::Notification(n) => {
            let mut value = notification_json(n);
            value["type"] = json!("notification");
            value
        }
        Message::Keepalive => json!({"type": "keepalive"}),
        Message::RouteRefresh(rr) => json!({
            "type": "route-refresh",
            "afi_safi": rr.afi_safi.to_string(),
            "subtype": rr.subtype,
        }),
    }
}

fn capability_json(cap: &Capability) -> Value {
    match cap {
        Capability::MultiProtocol(a) => json!({"name": "multiprotocol", "afi_safi": a.to_string()}),
        Capability::RouteRefresh => json!({"name": "route-refresh"}),
        Capability::EnhancedRouteRefresh => json!({"name": "enhanced-route-refresh"}),
        Capability::ExtendedMessage => json!({"name": "extended-message"}),
        Capability::FourOctetAs(asn) => json!({"name": "4-octet-as", "asn": asn}),
        Capability::GracefulRestart(gr) => json!({
            "name": "graceful-restart",
            "restart_state": gr.restart_state,
            "notification": gr.notification,
            "restart_time": gr.restart_time,
            "families": gr.families.iter().map(|(a, f)| json!({"afi_safi": a.to_string(), "forwarding_preserved": f})).collect::<Vec<_>>(),
        }),
        Capability::AddPath(list) => json!({
            "name": "add-path",
            "families": list.iter().map(|(a, m)| json!({"afi_safi": a.to_string(), "mode": format!("{m:?}").to_lowercase()})).collect::<Vec<_>>(),
        }),
        Capability::Other(other) => json!({"name": "other", "code": other.code()}),
    }
}

fn nlri_json(nlri: &[Nlri]) -> Vec<Value> {
    nlri.iter()
        .map(|n| {
            if n.path_id == 0 {
                json!(n.prefix.to_string())
            } else {
                json!({"prefix": n.prefix.to_string(), "path_id": n.path_id})
            }
        })
        .collect()
}

fn attributes_json(a: &PathAttributes) -> Value {
    let mut out = serde_json::Map::new();
    out.insert(
        "origin".into(),
        json!(format!("{:?}", a.origin).to_lowercase()),
    );
    let segments: Vec<Value> = a
        .as_path
        .segments
        .iter()
        .map(|s| match s {
            AsPathSegment::Sequence(v) => json!({"sequence": v}),
            AsPathSegment::Set(v) => json!({"set": v}),
        })
        .collect();
    out.insert("as_path".into(), json!(segments));
    if let Some(nh) = a.next_hop {
        out.insert("next_hop".into(), json!(nh.to_string()));
    }
    if let Some(mp) = a.mp_next_hop {
        out.insert(
            "mp_next_hop".into(),
            json!({"global": mp.global.to_string(), "link_local": mp.link_local.map(|l| l.to_string())}),
        );
    }
    if let Some(med) = a.med {
        out.insert("med".into(), json!(med));
    }
    if let Some(lp) = a.local_pref {
        out.insert("local_pref".into(), json!(lp));
    }
    if a.atomic_aggregate {
        out.insert("atomic_aggregate".into(), json!(true));
    }
    if let Some(agg) = &a.aggregator {
        out.insert(
            "aggregator".into(),
            json!({"asn": agg.asn, "router_id": agg.router_id.to_string()}),
        );
    }
    if !a.communities.is_empty() {
        let list: Vec<String> = a
            .communities
            .iter()
            .map(|c| format!("{}:{}", c >> 16, c & 0xffff))
            .collect();
        out.insert("communities".into(), json!(list));
    }
    if !a.extended_communities.is_empty() {
        let list: Vec<String> = a
            .extended_communities
            .iter()
            .map(|c| format!("{c:016x}"))
            .collect();
        out.insert("extended_communities".into(), json!(list));
    }
    if !a.large_communities.is_empty() {
        let list: Vec<String> = a
            .large_communities
            .iter()
            .map(|c| format!("{}:{}:{}", c.global, c.local1, c.local2))
            .collect();
        out.insert("large_communities".into(), json!(list));
    }
    if let Some(id) = a.originator_id {
        out.insert("originator_id".into(), json!(id.to_string()));
    }
    if !a.cluster_list.is_empty() {
        let list: Vec<String> = a.cluster_list.iter().map(ToString::to_string).collect();
        out.insert("cluster_list".into(), json!(list));
    }
    if !a.other.is_empty() {
        let list: Vec<Value> = a
            .other
            .iter()
            .map(|o| {
                json!({"type_code": o.type_code(), "flags": o.flags(), "value": o.raw_value().map(hex)})
            })
            .collect();
        out.insert("other".into(), json!(list));
    }
    Value::Object(out)
}

fn update_json(update: &Update) -> Value {
    let mut value = json!({
        "type": "update",
        "withdrawn": nlri_json(&update.withdrawn),
        "announced": nlri_json(&update.announced),
    });
    if let Some(family) = update.end_of_rib {
        value["end_of_rib"] = json!(family.to_string());
    }
    if !update.announced.is_empty() {
        value["attributes"] = attributes_json(&update.attributes);
    }
    if let Some(disposition) = update.disposition() {
        value["disposition"] = json!(disposition.as_str());
        value["errors"] = json!(
            update
                .errors
                .iter()
                .map(|e| json!({
                    "type_code": e.type_code,
                    "disposition": e.disposition.as_str(),
                    "reason": e.reason,
                    "notification": notification_json(&e.notification),
                }))
                .collect::<Vec<_>>()
        );
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARKER: &str = "ffffffffffffffffffffffffffffffff";

    fn ibgp() -> CodecContext {
        CodecContext {
            four_octet_as: true,
            ibgp: true,
            ..CodecContext::default()
        }
    }

    #[test]
    fn hex_parsing_accepts_separators_and_rejects_garbage() {
        assert_eq!(parse_hex("0x ff:01 a0\n").unwrap(), vec![0xff, 0x01, 0xa0]);
        let err = parse_hex("ffz0").unwrap_err().to_string();
        assert!(err.contains("invalid hex") && err.contains("'z'"), "{err}");
        assert!(parse_hex("fff").unwrap_err().to_string().contains("odd"));
        assert!(parse_hex("  ").is_err());
    }

    #[test]
    fn keepalive_and_update_decode() {
        let ka = parse_hex(&format!("{MARKER}001304")).unwrap();
        assert_eq!(decode_json(&ka, &ibgp())["type"], "keepalive");
        // UPDATE: ORIGIN IGP, empty AS_PATH, NEXT_HOP 10.0.0.4, LOCAL_PREF 100, 10.244.9.0/24.
        let body = [
            "0000",
            "0015",
            "40010100",
            "400200",
            "4003040a000004",
            "40050400000064",
        ]
        .concat()
            + "180af409";
        let len = 19 + body.len() / 2;
        let msg = parse_hex(&format!("{MARKER}{len:04x}02{body}")).unwrap();
        let v = decode_json(&msg, &ibgp());
        assert_eq!(v["type"], "update");
        assert_eq!(v["announced"][0], "10.244.9.0/24");
        assert_eq!(v["attributes"]["next_hop"], "10.0.0.4");
        assert_eq!(v["attributes"]["local_pref"], 100);
        assert!(v.get("disposition").is_none());
    }

    #[test]
    fn malformed_inputs_report_disposition_and_notification() {
        // Missing NEXT_HOP over iBGP: treat-as-withdraw (the route moves to withdrawn).
        let body = ["0000", "000e", "40010100", "400200", "40050400000064"].concat() + "180af409";
        let len = 19 + body.len() / 2;
        let msg = parse_hex(&format!("{MARKER}{len:04x}02{body}")).unwrap();
        let v = decode_json(&msg, &ibgp());
        assert_eq!(v["disposition"], "treat-as-withdraw");
        assert_eq!(v["withdrawn"][0], "10.244.9.0/24");
        assert_eq!(v["errors"][0]["notification"]["code"], 3);
        // Bad marker: session reset with 1/1.
        let bad = parse_hex(&format!("00{}001304", &MARKER[2..])).unwrap();
        let v = decode_json(&bad, &ibgp());
        assert_eq!(v["malformed"], true);
        assert_eq!(v["disposition"], "session-reset");
        assert_eq!(v["notification"]["code"], 1);
        assert_eq!(v["notification"]["subcode"], 1);
    }
}
