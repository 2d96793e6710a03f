"""Deterministic example and test data sets, one per model family, so examples and tests train on
data whose difficulty is known and reproducible from a seed.

    python -m kubetrain_trainer.datagen tabular --out /data/train.csv --rows 2000 --seed 0
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import numpy as np

TOPICS: dict[str, list[str]] = {
    "sports": ["match", "goal", "team", "coach", "season", "striker", "referee", "league", "score", "stadium"],
    "weather": ["rain", "storm", "forecast", "sunny", "wind", "cloud", "temperature", "snow", "humid", "frost"],
    "technology": ["software", "chip", "cloud", "server", "network", "compiler", "robot", "laptop", "kernel", "update"],
}
FILLER = [
    "the",
    "a",
    "today",
    "new",
    "about",
    "very",
    "this",
    "was",
    "after",
    "report",
    "people",
    "big",
    "city",
    "cloud",
]
TEMPLATES = [
    "{f} {t} {f} {t}",
    "{t} {f} {f} {t} {f}",
    "{f} {f} {t} {f} {t} {t}",
    "{t} {t} {f}",
]


def tabular(rows: int, seed: int, features: int = 20, classes: int = 3) -> str:
    """Overlapping clusters with label noise: a linear model stays well below an MLP, and no
    model is perfect, so an accuracy bar means something."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=rows, n_features=features, n_informative=10, n_redundant=4, n_classes=classes,
        n_clusters_per_class=2, class_sep=1.0, flip_y=0.02, random_state=seed,
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([f"f{i}" for i in range(features)] + ["label"])
    for vector, label in zip(x, y):
        writer.writerow([f"{v:.6f}" for v in vector] + [int(label)])
    return out.getvalue()


def image(rows: int, seed: int) -> bytes:
    """8x8 handwritten digits bundled with scikit-learn (no download), shuffled and cut to `rows`."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))[:rows]
    out = io.BytesIO()
    np.savez_compressed(out, x=digits.images[order].astype(np.uint8), y=digits.target[order].astype(np.int64))
    return out.getvalue()


def text(rows: int, seed: int) -> str:
    """Short templated sentences per topic; shared filler words (and "cloud" in two topics) keep
    single words from giving the label away."""
    rng = np.random.default_rng(seed)
    topics = sorted(TOPICS)
    lines = []
    for i in range(rows):
        topic = topics[i % len(topics)]
        template = TEMPLATES[rng.integers(len(TEMPLATES))]
        words = template.split()
        sentence = " ".join(
            TOPICS[topic][rng.integers(len(TOPICS[topic]))] if w == "{t}" else FILLER[rng.integers(len(FILLER))]
            for w in words
        )
        lines.append(json.dumps({"text": sentence, "label": topic}))
    order = rng.permutation(rows)
    return "\n".join(lines[i] for i in order) + "\n"


def write(kind: str, out: Path, rows: int, seed: int) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    if kind == "tabular":
        out.write_text(tabular(rows, seed))
    elif kind == "image":
        out.write_bytes(image(rows, seed))
    else:
        out.write_text(text(rows, seed))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubetrain_trainer.datagen", description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["tabular", "image", "text"])
    parser.add_argument("--out", type=Path, required=True, help="tabular: .csv, image: .npz, text: .jsonl")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = write(args.kind, args.out, args.rows, args.seed)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
