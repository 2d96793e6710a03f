"""Loading a data set from its URI and auditing it, so that what a model was trained on can be
identified later (digest, counts) and bad input fails before any compute is spent on it."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from collections import Counter
from dataclasses import dataclass

import numpy as np

from kubetrain_trainer import profile, storage
from kubetrain_trainer.config import Family
from kubetrain_trainer.errors import InvalidData

LABEL = "label"
TEXT = "text"


@dataclass(frozen=True)
class Audit:
    uri: str
    sha256: str
    rows: int
    class_counts: dict[str, int]

    @property
    def balance(self) -> float:
        """Smallest over largest class: 1.0 is balanced, near 0 means accuracy alone misleads."""
        counts = self.class_counts.values()
        return min(counts) / max(counts)

    def as_dict(self) -> dict[str, object]:
        return {
            "uri": self.uri,
            "sha256": self.sha256,
            "rows": self.rows,
            "classCounts": self.class_counts,
            "balance": round(self.balance, 4),
            # The loader refuses missing values, so a data set it read has none.
            "profile": profile.labelled(self.rows, self.class_counts),
        }


@dataclass(frozen=True)
class Dataset:
    kind: Family
    # tabular: float32 (rows, features); image: float32 (rows, channels, height, width);
    # text: object array of str
    features: np.ndarray
    labels: np.ndarray  # int64 class indices into `classes`
    classes: list[str]
    audit: Audit
    # Tabular: the CSV's feature columns in model order (what a prediction request names); else empty.
    feature_names: list[str]


def decode(raw: bytes, uri: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidData(f"{uri}: not UTF-8 text ({error})") from error


def _encode_labels(values: list[str]) -> tuple[np.ndarray, list[str]]:
    """Sorts class names numerically when they all are integers, so 10 comes after 9."""
    names = sorted(set(values), key=lambda v: (0, int(v), "") if v.lstrip("-").isdigit() else (1, 0, v))
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[v] for v in values], dtype=np.int64), names


def csv_rows(text: str, uri: str, required: tuple[str, ...]) -> tuple[list[str], list[list[str]]]:
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise InvalidData(f"{uri}: empty file (expected a CSV header with a '{LABEL}' column)") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise InvalidData(f"{uri}: CSV header {header[:10]} lacks column(s) {missing}")
    rows: list[list[str]] = []
    for line_no, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise InvalidData(f"{uri}: line {line_no} has {len(row)} fields, the header has {len(header)}")
        rows.append(row)
    return header, rows


def feature_columns(header: list[str]) -> list[int]:
    """Every column but the label, in file order: the order of the model's input features."""
    return [i for i in range(len(header)) if header[i] != LABEL]


def _tabular(raw: bytes, uri: str) -> tuple[np.ndarray, list[str], list[str]]:
    header, rows = csv_rows(decode(raw, uri), uri, (LABEL,))
    label_at = header.index(LABEL)
    feature_at = feature_columns(header)
    if not feature_at:
        raise InvalidData(f"{uri}: no feature columns besides '{LABEL}'")
    features = np.empty((len(rows), len(feature_at)), dtype=np.float32)
    for r, row in enumerate(rows):
        try:
            features[r] = [float(row[i]) for i in feature_at]
        except ValueError:
            bad = next(header[i] for i in feature_at if not _is_float(row[i]))
            raise InvalidData(
                f"{uri}: line {r + 2} column '{bad}' is not a number: {row[header.index(bad)]!r}"
            ) from None
    if not np.isfinite(features).all():
        line = int(np.argwhere(~np.isfinite(features))[0][0]) + 2
        raise InvalidData(f"{uri}: missing or non-finite feature values (first at line {line})")
    return features, [row[label_at].strip() for row in rows], [header[i] for i in feature_at]


def _is_float(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _image(raw: bytes, uri: str) -> tuple[np.ndarray, list[str], list[str]]:
    try:
        archive = np.load(io.BytesIO(raw), allow_pickle=False)
        x, y = archive["x"], archive["y"]
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise InvalidData(f"{uri}: not a readable .npz archive ({error})") from error
    except KeyError as error:
        raise InvalidData(
            f"{uri}: the .npz archive needs arrays 'x' (images) and 'y' (labels), missing {error}"
        ) from error
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or y.ndim != 1 or len(x) != len(y):
        raise InvalidData(
            f"{uri}: expected x of shape (N,H,W) or (N,C,H,W) and y of shape (N,), got {x.shape} and {y.shape}"
        )
    if not np.issubdtype(x.dtype, np.number) or not np.isfinite(x).all():
        raise InvalidData(f"{uri}: image pixels must be finite numbers")
    return x.astype(np.float32), [str(v) for v in y.tolist()], []


def _text(raw: bytes, uri: str) -> tuple[np.ndarray, list[str], list[str]]:
    text = decode(raw, uri)
    if uri.lower().endswith(".csv"):
        header, rows = csv_rows(text, uri, (TEXT, LABEL))
        t, lab = header.index(TEXT), header.index(LABEL)
        pairs = [(row[t], row[lab].strip()) for row in rows]
    else:
        pairs = []
        for line_no, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                pairs.append((str(record[TEXT]), str(record[LABEL]).strip()))
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                raise InvalidData(
                    f"{uri}: line {line_no} is not a JSON object with '{TEXT}' and '{LABEL}' ({error})"
                ) from error
    if any(not p[0].strip() for p in pairs):
        raise InvalidData(f"{uri}: examples with empty text")
    return np.array([p[0] for p in pairs], dtype=object), [p[1] for p in pairs], []


_PARSERS = {"tabular": _tabular, "image": _image, "text": _text}


def read(uri: str) -> bytes:
    """The data set's bytes; unreadable or empty data is the data's fault, not a trainer error."""
    try:
        raw = storage.read_bytes(uri)
    except (OSError, ValueError) as error:
        raise InvalidData(f"{uri}: cannot read the data set ({error})") from error
    if not raw.strip():
        raise InvalidData(f"{uri}: the data set is empty")
    return raw


def load(uri: str, kind: Family) -> Dataset:
    raw = read(uri)
    features, label_values, feature_names = _PARSERS[kind](raw, uri)
    if len(label_values) == 0:
        raise InvalidData(f"{uri}: the data set has no examples")
    if any(not v for v in label_values):
        raise InvalidData(f"{uri}: examples with an empty '{LABEL}'")
    labels, classes = _encode_labels(label_values)
    if len(classes) < 2:
        raise InvalidData(f"{uri}: a classifier needs at least 2 classes, found {classes}")
    counts = Counter(label_values)
    audit = Audit(
        uri=uri,
        sha256=hashlib.sha256(raw).hexdigest(),
        rows=len(labels),
        class_counts={name: counts[name] for name in classes},
    )
    return Dataset(
        kind=kind, features=features, labels=labels, classes=classes, audit=audit, feature_names=feature_names
    )
