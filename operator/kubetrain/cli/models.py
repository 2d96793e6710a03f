"""`kubetrain predict MODEL[:VERSION]`: predictions of a registered model on a local file;
`kubetrain serving MODEL[:VERSION]`: the Deployment and Service that serve it (render/serving.py),
to pipe into `kubectl apply -f -`, again after a rollback of the Model's promotedVersion.

The operator never imports the trainer (the import contracts keep them independent), so the verb
resolves the reference to a ModelVersion and its model card here, through the user's kubeconfig,
and runs the trainer's own predictor (`python -m kubetrain_trainer predict`, the code that
evaluated the model) with the same interpreter; the trainer reads the weights by their URI with
the user's own storage credentials."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import yaml

from kubetrain.api.registry import ModelVersion
from kubetrain.cli.jobs import client_options, with_client
from kubetrain.cli.trainer import TRAINER_MODULE, trainer_installed
from kubetrain.client import Client, card_uri
from kubetrain.render.serving import ServingSettings, serving_objects


def predictor_argv(card: str, weights_digest: str | None, input_path: Path, output: Path | None) -> list[str]:
    argv = [sys.executable, "-m", TRAINER_MODULE, "predict", "--model", card, "--input", str(input_path)]
    if weights_digest is not None:
        argv += ["--weights-digest", weights_digest]
    return argv + (["--output", str(output)] if output is not None else [])


def _resolve(client: Client, reference: str) -> tuple[ModelVersion, str]:
    """The referenced version and its model card (said on stderr); NotServable when there is none."""
    version = client.resolve_version(reference)
    card = card_uri(version)
    print(f"kubetrain: {version.metadata.name} ({card})", file=sys.stderr)
    return version, card


def _predict(client: Client, args: argparse.Namespace) -> int:
    if not trainer_installed("predict"):
        return 1
    version, card = _resolve(client, args.reference)
    argv = predictor_argv(card, version.spec.provenance.weights_digest, args.input, args.output)
    return subprocess.run(argv, check=False).returncode


def _serving(client: Client, args: argparse.Namespace) -> int:
    settings = ServingSettings(image=args.image, port=args.port, replicas=args.replicas,
                               service_account=args.service_account)
    print(yaml.safe_dump_all(serving_objects(*_resolve(client, args.reference), settings), sort_keys=False), end="")
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    help_ = ("predict a file of instances with a registered model (its promoted version, or MODEL:VERSION); "
             "one JSON line per instance")
    predict = sub.add_parser("predict", parents=[client_options()], help=help_, description=help_)
    predict.add_argument("reference", metavar="MODEL[:VERSION]", help="e.g. fraud (promoted), fraud:3, fraud:fraud-v3")
    predict.add_argument("--input", type=Path, required=True,
                         help=".csv (tabular columns by name, or a text column), .jsonl (one instance a line), "
                              ".npz (images in x)")
    predict.add_argument("-o", "--output", type=Path, default=None, help="JSONL file (default: stdout)")
    predict.set_defaults(func=with_client(_predict))
    help_ = ("print the Deployment and Service serving a registered model (its promoted version, or MODEL:VERSION) "
             "with the trainer image's HTTP predictor; pipe into kubectl apply -f -")
    serving = sub.add_parser("serving", parents=[client_options()], help=help_, description=help_)
    serving.add_argument("reference", metavar="MODEL[:VERSION]", help="e.g. fraud (promoted), fraud:3")
    serving.add_argument("--image", required=True, help="the trainer image, e.g. ghcr.io/acme/kubetrain-trainer:0.1.0")
    serving.add_argument("--port", type=int, default=8080, help="the predictor's container port (default: 8080)")
    serving.add_argument("--replicas", type=int, default=1)
    serving.add_argument("--service-account", default=None,
                         help="for object-store credentials (IRSA, GKE Workload Identity); default: no token mounted")
    serving.set_defaults(func=with_client(_serving))
