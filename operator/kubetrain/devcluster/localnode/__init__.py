"""A node whose pods really run: a small stand-in for the kubelet that executes each bound pod's
container command as a local process.

Limits, by design: no images (the command runs with this machine's Python and installed trainer),
loopback networking (every pod's IP is 127.0.0.1, MASTER_ADDR is rewritten to it and each job gets
its own rendezvous port), one container per pod, no volumes beyond host paths, no `kubectl logs`
(output goes to a log file per pod under the agent's state directory).
"""
