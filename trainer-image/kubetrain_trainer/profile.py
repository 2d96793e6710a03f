"""A data set's profile: rows, missing values, class balance or token counts, the facts the
provenance record keeps about what a model was trained on beside its digest (docs/contracts.md).

Pure and torch-free: the built-in trainer's ingest (data.py) and users' code through the SDK
(kubetrain_trainer.sdk) compute it alike. The profile travels in the final report, whose 4 KiB
bound every field must respect, so class counts are kept for at most MAX_CLASSES classes.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

# Beyond this many classes the profile keeps their number and balance, not each count.
MAX_CLASSES = 20
MAX_CLASS_NAME = 40


def is_missing(value: object) -> bool:
    """None, an empty or blank string, or a float NaN: what a CSV reader or a data frame leaves
    where a value was not recorded."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, float) and math.isnan(value)


def class_balance(counts: Mapping[str, int]) -> dict[str, Any]:
    """Counts per class and their balance (smallest over largest: 1.0 is balanced, near 0 means
    accuracy alone misleads)."""
    if not counts:
        return {}
    profile: dict[str, Any] = {"classes": len(counts), "balance": round(min(counts.values()) / max(counts.values()), 4)}
    if len(counts) <= MAX_CLASSES:
        profile["classCounts"] = {str(name)[:MAX_CLASS_NAME]: int(count) for name, count in counts.items()}
    return profile


def records(rows: Sequence[Mapping[str, object]], label: str | None = None) -> dict[str, Any]:
    """A table given as records (csv.DictReader rows, `DataFrame.to_dict("records")`): rows,
    columns, missing cells, and with `label` the class balance of that column (missing labels
    counted as missing, not as a class)."""
    columns = sorted({key for row in rows for key in row})
    missing = sum(1 for row in rows for column in columns if is_missing(row.get(column)))
    profile: dict[str, Any] = {"rows": len(rows), "columns": len(columns), "missingValues": missing}
    if label is not None:
        labels = [row.get(label) for row in rows]
        profile.update(class_balance(Counter(str(value).strip() for value in labels if not is_missing(value))))
    return profile


def texts(items: Iterable[str], tokenize: Callable[[str], Sequence[object]] | None = None) -> dict[str, Any]:
    """A text corpus: rows, empty rows (counted as missing) and tokens, by `tokenize` (a Hugging
    Face tokenizer's `tokenize`, say) or whitespace words when none is given."""
    split = tokenize or str.split
    rows = missing = tokens = 0
    for text in items:
        rows += 1
        if is_missing(text):
            missing += 1
            continue
        tokens += len(split(text))
    return {"rows": rows, "missingValues": missing, "tokens": tokens}


def labelled(rows: int, class_counts: Mapping[str, int], missing_values: int = 0) -> dict[str, Any]:
    """A labelled data set already counted (the built-in trainer's audit)."""
    return {"rows": rows, "missingValues": missing_values, **class_balance(class_counts)}
