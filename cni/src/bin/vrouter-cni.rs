//! `vrouter-cni`: the CNI plugin the container runtime calls (logic in `cni::plugin`).

fn main() -> std::process::ExitCode {
    cni::invocation::main(cni::invocation::Plugin::Cni)
}
