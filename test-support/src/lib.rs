//! Test harness shared by every crate's integration tests: a real `etcd` on free loopback
//! ports, throwaway network namespaces, BIRD 2 / GoBGP / FRR launchers, and `eventually()`.
//!
//! Everything a harness type starts (processes, namespaces, temp dirs) is removed when the
//! value is dropped, also when the test panics.

pub mod etcd;
