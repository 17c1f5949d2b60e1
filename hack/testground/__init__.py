"""turnout's test ground: a real Kubernetes control plane with kwok as the kubelet.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler run from pinned binaries on
127.0.0.1; kwok fakes GPU nodes and their pods; pod IPs live in a network namespace the tests
own, where engine simulators answer on them.
"""
