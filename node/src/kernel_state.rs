//! What a previous vrouterd left in the kernel, read once at start.
//!
//! BGP-learned routes (protocol 81) present at start mean vrouterd is restarting (after a
//! SIGTERM or a crash): the speaker then starts as a restarting speaker (RFC 4724 §4.1), keeps
//! those routes forwarding and removes only the ones its peers do not announce again by
//! End-of-RIB (or the stale timer). Without them it starts fresh. Felix finds its own routes
//! (protocol 80) and nft table itself; [`routes_of`] only counts them for the control socket.

use futures::TryStreamExt;
use rtnetlink::RouteMessageBuilder;
use rtnetlink::packet_route::route::{RouteProtocol, RouteType};

/// Number of protocol-81 routes in the current namespace (IPv4 and IPv6).
pub async fn bgp_routes() -> Result<usize, String> {
    routes_of(bgp::speaker::kernel_routes::PROTOCOL).await
}

/// Number of routes with route protocol `protocol` in the current namespace (both families).
pub async fn routes_of(protocol: u8) -> Result<usize, String> {
    let protocol = RouteProtocol::Other(protocol);
    let (connection, handle, _) = rtnetlink::new_connection().map_err(|e| e.to_string())?;
    let task = tokio::spawn(connection);
    let mut count = 0;
    for filter in [
        RouteMessageBuilder::<std::net::Ipv4Addr>::new()
            .protocol(protocol)
            .kind(RouteType::Unspec)
            .build(),
        RouteMessageBuilder::<std::net::Ipv6Addr>::new()
            .protocol(protocol)
            .kind(RouteType::Unspec)
            .build(),
    ] {
        let routes: Vec<_> = match handle.route().get(filter).execute().try_collect().await {
            Ok(routes) => routes,
            Err(e) => {
                task.abort();
                return Err(e.to_string());
            }
        };
        // Without strict checking the kernel may return every route: filter here too.
        count += routes
            .iter()
            .filter(|r| r.header.protocol == protocol)
            .count();
    }
    task.abort();
    Ok(count)
}
