//! Typed resources (Calico v3 + Kubernetes), strict YAML/JSON parsing and printing.
