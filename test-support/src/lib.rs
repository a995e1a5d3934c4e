//! Test harness shared by every crate's integration tests: a real `etcd` on free loopback
//! ports, throwaway network namespaces, BIRD 2 / GoBGP / FRR launchers, and `eventually()`.
