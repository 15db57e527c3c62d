"""Helpers that turn this machine into a real Kubernetes node for the test cluster.

Each module owns one part: paths (where state lives), procs (starting and stopping
host processes), containerd, images, network, kubelet, kubeproxy, coredns.
"""
