"""The `kubetrain` command (entry point `kubetrain.cli:main`): the job verbs users run against
any cluster (cli/jobs.py, on kubetrain.client) and `predict` on a registered model (cli/models.py),
beside the admin verbs for the dev cluster, the operator and the CRDs (cli/admin.py). The top
layer: nothing in kubetrain imports it."""

from __future__ import annotations

import argparse

from kubetrain.cli import admin, jobs, models
from kubetrain.cli.admin import CRD_DIRS

__all__ = ["CRD_DIRS", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubetrain",
        description="Submit and follow TrainingJobs on any cluster; run the operator, its CRDs, a local cluster.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    jobs.add_commands(sub)
    models.add_commands(sub)
    admin.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))
