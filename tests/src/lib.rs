//! Integration crate: multi-component scenarios over real etcd, network namespaces and BGP
//! peers live in `tests/tests/`. The library part is empty; the shared harness is the
//! `test-support` crate.
