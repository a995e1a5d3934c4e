//! `vrouterd`: the node daemon. It wires the datastore syncer, the `felix` agent, the `bgp`
//! speaker, the control socket and the metrics endpoint into one process. The binary is added
//! by the vrouterd issue.
