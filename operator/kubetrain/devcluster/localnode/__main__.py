"""`python -m kubetrain.devcluster.localnode`: run the local node agent until SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

import kubernetes

from kubetrain.devcluster.localnode.agent import LocalNodeAgent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubetrain-localnode", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--node-name", default="local-0")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--api-port", type=int, required=True)
    parser.add_argument("--ca-file", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    api = kubernetes.config.new_client_from_config(config_file=str(args.kubeconfig))
    agent = LocalNodeAgent(api, args.node_name, args.state_dir, args.api_port, args.ca_file)

    def terminate(*_: object) -> None:
        agent.stop()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, terminate)
    agent.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
