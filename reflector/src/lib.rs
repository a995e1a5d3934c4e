//! `vrouter-reflector`: a thin binary that runs the `bgp` speaker as an RFC 4456 route
//! reflector with its clients read from etcd. All logic lives in `bgp`; the binary is added by
//! the route-reflection issue.
