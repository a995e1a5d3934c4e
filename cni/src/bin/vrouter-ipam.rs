//! `vrouter-ipam`: the CNI IPAM plugin (logic in `cni::ipam_plugin`).

fn main() -> std::process::ExitCode {
    cni::invocation::main(cni::invocation::Plugin::Ipam)
}
