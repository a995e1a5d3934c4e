//! Interface MTUs over the shared `NETLINK_ROUTE` socket: every link's name, index, MTU and
//! (for a veth) its peer; the MTU of a peer in another namespace, read through its netns id
//! (`IFLA_TARGET_NETNSID`, no namespace is entered); the interface holding the default route;
//! setting one link's MTU.

use std::collections::BTreeMap;
use std::io;

use rtnetlink::packet_core::DefaultNla;
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::packet_route::route::{RouteAttribute, RouteHeader, RouteMessage};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};

use super::netlink::{NetlinkSocket, Request};

/// One interface as the kernel lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Its MTU.
    pub mtu: u32,
    /// The peer of a veth in another namespace: (peer index, netns id as this namespace
    /// knows it).
    pub peer: Option<(u32, i32)>,
}

/// `IFLA_TARGET_NETNSID`: a request about another namespace, by its id.
const IFLA_TARGET_NETNSID: u16 = 46;

fn link_of(link: &LinkMessage) -> Option<(String, Link)> {
    let mut name = None;
    let mut mtu = None;
    let mut peer_index = None;
    let mut nsid = None;
    for a in &link.attributes {
        match a {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::Mtu(m) => mtu = Some(*m),
            LinkAttribute::Link(i) => peer_index = Some(*i),
            LinkAttribute::LinkNetNsId(id) => nsid = Some(*id),
            _ => {}
        }
    }
    let peer = match (peer_index, nsid) {
        (Some(i), Some(id)) if id >= 0 => Some((i, id)),
        _ => None,
    };
    Some((
        name?,
        Link {
            index: link.header.index,
            mtu: mtu?,
            peer,
        },
    ))
}

/// Every interface by name.
pub fn links(socket: &mut NetlinkSocket) -> io::Result<BTreeMap<String, Link>> {
    let mut out = BTreeMap::new();
    for answer in socket.dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))? {
        if let RouteNetlinkMessage::NewLink(link) = answer
            && let Some((name, link)) = link_of(&link)
        {
            out.insert(name, link);
        }
    }
    Ok(out)
}

/// The MTU of interface `index` in the namespace with id `nsid` (`None`: not there).
pub fn peer_mtu(socket: &mut NetlinkSocket, nsid: i32, index: u32) -> io::Result<Option<u32>> {
    let mut request = LinkMessage::default();
    request
        .attributes
        .push(LinkAttribute::Other(DefaultNla::new(
            IFLA_TARGET_NETNSID,
            nsid.to_ne_bytes().to_vec(),
        )));
    for answer in socket.dump(RouteNetlinkMessage::GetLink(request))? {
        if let RouteNetlinkMessage::NewLink(link) = answer
            && link.header.index == index
        {
            return Ok(link_of(&link).map(|(_, l)| l.mtu));
        }
    }
    Ok(None)
}

/// The output interface of the main table's default route among `routes`.
fn default_oif(routes: &[RouteNetlinkMessage]) -> Option<u32> {
    routes.iter().find_map(|answer| match answer {
        RouteNetlinkMessage::NewRoute(r)
            if r.header.destination_prefix_length == 0
                && r.header.table == RouteHeader::RT_TABLE_MAIN =>
        {
            r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Oif(i) => Some(*i),
                _ => None,
            })
        }
        _ => None,
    })
}

/// The index of the interface holding the default route (IPv4 first, then IPv6).
pub fn default_route_iface(socket: &mut NetlinkSocket) -> io::Result<Option<u32>> {
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        let mut filter = RouteMessage::default();
        filter.header.address_family = family;
        filter.header.table = RouteHeader::RT_TABLE_MAIN;
        let routes = socket.dump(RouteNetlinkMessage::GetRoute(filter))?;
        if let Some(index) = default_oif(&routes) {
            return Ok(Some(index));
        }
    }
    Ok(None)
}

/// Sets interface `index`'s MTU.
pub fn set_mtu(socket: &mut NetlinkSocket, index: u32, mtu: u32) -> io::Result<()> {
    let mut message = LinkMessage::default();
    message.header.index = index;
    message.attributes.push(LinkAttribute::Mtu(mtu));
    let failures = socket.batch(vec![Request {
        message: RouteNetlinkMessage::SetLink(message),
        flags: 0,
    }])?;
    match failures.into_iter().next() {
        Some((_, error)) => Err(error),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: u8, table: u8, oif: u32) -> RouteNetlinkMessage {
        let mut r = RouteMessage::default();
        r.header.destination_prefix_length = prefix;
        r.header.table = table;
        r.attributes.push(RouteAttribute::Oif(oif));
        RouteNetlinkMessage::NewRoute(r)
    }

    #[test]
    fn default_route_of_the_main_table() {
        let routes = [route(24, 254, 2), route(0, 255, 3), route(0, 254, 4)];
        assert_eq!(default_oif(&routes), Some(4));
        assert_eq!(default_oif(&routes[..2]), None);
    }
}
