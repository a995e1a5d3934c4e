//! Real `etcd` servers for tests: one member or a small cluster on free loopback ports.
