"""The local control plane kubetrain tests and demos run against.

Real kube-apiserver, etcd, kube-controller-manager and kube-scheduler built from the Go module
proxy, plus KWOK fake GPU nodes, all on 127.0.0.1 free ports so several clusters can run at once.
"""
