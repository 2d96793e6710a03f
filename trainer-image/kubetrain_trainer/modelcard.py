"""The model card, `model-card.json`: the file that ties exported weights to the data, code and run
that produced them and travels where the cluster's records do not, and its rendering for people,
`model-card.md`, with the sections integrators and auditors look for (intended and out-of-scope
use, input and output, preprocessing, evaluation, limitations, licences). Torch-free, so the
built-in trainer (export.py) and users' code through the SDK (kubetrain_trainer.sdk) write one
format."""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping
from typing import Any

from kubetrain_trainer import __version__, storage
from kubetrain_trainer.environment import JobEnvironment

CARD = "model-card.json"
MARKDOWN = "model-card.md"
NOT_STATED = "_Not stated._"


def job_facts(env: JobEnvironment, code_version: str | None) -> dict[str, Any]:
    """What the operator told the run about itself: which job, attempt, image and submitter, and
    the model line's documentation from spec.model."""
    return {
        "job": {"namespace": env.namespace, "name": env.name, "uid": env.uid, "attempt": env.attempt},
        "trainerVersion": __version__,
        "codeVersion": code_version,
        "trainerImage": env.image,
        "submittedBy": env.submitted_by,
        "use": env.model_docs(),
    }


def software(**versions: str) -> dict[str, str]:
    return {"python": platform.python_version(), **versions}


def markdown_uri(card_uri: str) -> str:
    return card_uri.rsplit("/", 1)[0] + "/" + MARKDOWN if "/" in card_uri else MARKDOWN


def write(uri: str, card: dict[str, Any]) -> None:
    """The Markdown first, then the JSON: a reader that finds the JSON finds its rendering too."""
    storage.write_bytes(markdown_uri(uri), markdown(card).encode())
    storage.write_bytes(uri, json.dumps(card, indent=2).encode())


def _section(title: str, lines: list[str]) -> list[str]:
    return [f"## {title}", "", *(lines or [NOT_STATED]), ""]


def _table(rows: Mapping[str, Any]) -> list[str]:
    if not rows:
        return []
    return ["| | |", "|---|---|", *(f"| {key} | {_cell(value)} |" for key, value in rows.items())]


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(", ", ": "))
    return text.replace("|", "\\|").replace("\n", " ")


def _schema(card: Mapping[str, Any]) -> list[str]:
    schema = card.get("schema") or {}
    lines = []
    if "input" in schema:
        lines += ["Input (one instance):", "", *_table(schema["input"]), ""]
    if "output" in schema:
        lines += ["Output (one prediction):", "", *_table(schema["output"])]
    return lines


def _evaluation(card: Mapping[str, Any]) -> list[str]:
    held_out = card.get("evaluation") or {}
    lines = _table(card.get("metrics") or {})
    if held_out:
        lines += [
            "",
            f"On the held-out `{held_out.get('split', 'test')}` split: {held_out.get('rows')} rows, digest "
            f"`{held_out.get('digest')}` (sha256 of the model-ready inputs and labels), never seen in training.",
        ]
    return lines


def _licences(card: Mapping[str, Any]) -> list[str]:
    data = card.get("data") or {}
    base = card.get("baseModel") or {}
    lines = [f"- Data (`{data.get('uri')}`): {data.get('license') or 'not stated (spec.dataset.license)'}"]
    if data.get("consentBasis"):
        lines.append(f"- Consent basis of the data: {data['consentBasis']}")
    if base:
        lines.append(f"- Base model (`{base.get('uri')}`): {base.get('license') or 'not stated'}")
    elif (card.get("model") or {}).get("finetunedFrom"):
        lines.append(f"- Fine-tuned from `{card['model']['finetunedFrom']}`: see that model's card")
    return lines


def _limitations(card: Mapping[str, Any]) -> list[str]:
    stated = (card.get("use") or {}).get("limitations")
    data = card.get("data") or {}
    lines = [stated] if stated else []
    if isinstance(data.get("balance"), (int, float)) and data["balance"] < 0.5:
        lines.append(f"- The classes are imbalanced (smallest over largest {data['balance']}): read the macro scores, "
                     "not accuracy alone.")
    lines.append("- Evaluated only on a held-out split of the training data set: inputs unlike it (another "
                 "population, period or source) are untested.")
    return lines


def markdown(card: Mapping[str, Any]) -> str:
    """The card for people: each section from the JSON card's fields, "Not stated" where the spec
    or the code did not say, so a missing answer is visible rather than silently left out."""
    use = card.get("use") or {}
    job = card.get("job") or {}
    weights = card.get("weights") or {}
    title = use.get("name") or job.get("name") or "model"
    image = card.get("trainerImage") or "unknown"
    exports = {name: f"`{e['uri']}` (sha256 `{e['sha256']}`)" for name, e in (card.get("exports") or {}).items()}
    lines = [
        f"# Model card: {title}",
        "",
        f"Trained by TrainingJob `{job.get('namespace')}/{job.get('name')}` (attempt {job.get('attempt')}), "
        f"trainer {card.get('trainerVersion')}, code {card.get('codeVersion')}, image `{image}`, "
        f"submitted by {card.get('submittedBy') or 'unknown'}; finished {card.get('endTime')}.",
        "",
        *_section("Intended use", [use["intendedUse"]] if use.get("intendedUse") else []),
        *_section("Out-of-scope use", [use["outOfScopeUse"]] if use.get("outOfScopeUse") else []),
        *_section("Input and output", _schema(card)),
        *_section("Preprocessing", _table(card.get("preprocessing") or {})),
        *_section("Evaluation", _evaluation(card)),
        *_section("Limitations", _limitations(card)),
        *_section("Licences", _licences(card)),
        *_section("Weights and exports", _table({
            "weights": f"`{weights.get('uri')}` ({weights.get('format', 'unknown format')}, sha256 "
                       f"`{weights.get('sha256')}`)",
            **exports,
        })),
    ]
    return "\n".join(lines).rstrip() + "\n"
