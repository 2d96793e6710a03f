"""The trainer image's commands besides training (`python -m kubetrain_trainer <command>`): use a
trained model where it lies, by its model card's URI or its output location. `kubetrain predict`
(the operator's CLI) resolves a ModelVersion to that URI and runs `predict` here."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kubetrain_trainer import logs
from kubetrain_trainer.errors import TrainerFailure

MODEL_HELP = "the model card (model-card.json) or the output location holding it: file://, pvc://, s3://, gs://"
DIGEST_HELP = "sha256:<hex> the weights must have (a ModelVersion's provenance.weightsDigest); default: the card's"


def _predict(args: argparse.Namespace) -> int:
    from kubetrain_trainer import predict

    predictions = predict.load(args.model, args.weights_digest).predict_file(args.input)
    out = sys.stdout if args.output is None else args.output.open("w")
    try:
        for prediction in predictions:
            out.write(prediction.model_dump_json() + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from kubetrain_trainer import predict

    print(json.dumps(predict.load(args.model).evaluate(args.dataset), sort_keys=True))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from kubetrain_trainer import serve

    serve.serve(args.model, args.weights_digest, args.name, args.host, args.port)
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="kubetrain-trainer", description="Use a model this trainer trained.")
    sub = root.add_subparsers(dest="command", required=True)
    predict = sub.add_parser("predict", help="predict a file of instances; one JSON line per instance")
    predict.add_argument("--model", required=True, help=MODEL_HELP)
    predict.add_argument("--input", type=Path, required=True,
                         help=".csv (columns by name; `label` ignored), .jsonl (one instance a line) or .npz (x); "
                              "causal-lm: .jsonl of prompts")
    predict.add_argument("--output", type=Path, default=None, help="JSONL file (default: stdout)")
    predict.add_argument("--weights-digest", default=None, help=DIGEST_HELP)
    predict.set_defaults(func=_predict)
    evaluate = sub.add_parser("evaluate", help="recompute the held-out metrics on the run's test split")
    evaluate.add_argument("--model", required=True, help=MODEL_HELP)
    evaluate.add_argument("--dataset", default=None, help="the training data set (default: the URI the card names)")
    evaluate.set_defaults(func=_evaluate)
    serve = sub.add_parser("serve", help="serve the model over HTTP (KServe v1 protocol)")
    serve.add_argument("--model", required=True, help=MODEL_HELP)
    serve.add_argument("--weights-digest", default=None, help=DIGEST_HELP)
    serve.add_argument("--name", default="model", help="the model's name in /v1/models/NAME (default: model)")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8080)
    serve.set_defaults(func=_serve)
    return root


def main(argv: list[str]) -> int:
    """Exit 0, or 1 with the failure's reason on stderr as one JSON log line."""
    args = parser().parse_args(argv)
    logs.configure("local", args.command, 0)
    try:
        code: int = args.func(args)
    except TrainerFailure as failure:
        logs.error("failed", reason=failure.reason, message=failure.message)
        return 1
    return code
