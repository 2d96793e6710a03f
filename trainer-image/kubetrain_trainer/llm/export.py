"""The causal-lm run's deliverables in the output location, each a folder that `from_pretrained`
loads on its own (the tokenizer, with the chat template used in training, saved into each):
`adapter/` (LoRA: `adapter_model.safetensors` and `adapter_config.json`, for peft's
`PeftModel.from_pretrained(base, ...)`), `merged/` (with `causalLm.exportMerged`: the adapter
folded into the base weights, loadable without peft) or `model/` (full fine-tuning), all in
safetensors. The model card beside them names the base model and the data by digest."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubetrain_trainer import storage
from kubetrain_trainer.llm.adapters import Loaded

ADAPTER, MERGED, MODEL = "adapter", "merged", "model"


def _folder(uri: str, save: Callable[[Path], None]) -> dict[str, str]:
    """Saves into `uri` (a local folder, or a temporary one uploaded file by file to an object
    store) and returns its URI and the digest of its manifest (storage.content_digest)."""
    if storage.is_local(uri):
        save(storage.local_path(uri))
        return {"uri": uri, "sha256": storage.content_digest(uri).removeprefix("sha256:")}
    with tempfile.TemporaryDirectory(prefix="kubetrain-export-") as tmp:
        root = Path(tmp)
        save(root)
        digest = storage.content_digest(str(root))
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            storage.write_bytes(storage.join(uri, path.relative_to(root).as_posix()), path.read_bytes())
    return {"uri": uri, "sha256": digest.removeprefix("sha256:")}


def write(output_uri: str, loaded: Loaded, merged: bool) -> dict[str, dict[str, str]]:
    """Writes the folders; returns each one's URI and digest, the trained weights first."""

    def saver(model: Any) -> Callable[[Path], None]:
        def save(directory: Path) -> None:
            model.save_pretrained(directory)
            loaded.tokenizer.save_pretrained(directory)

        return save

    if loaded.lora_targets is None:
        return {MODEL: _folder(storage.join(output_uri, MODEL), saver(loaded.model))}
    exports = {ADAPTER: _folder(storage.join(output_uri, ADAPTER), saver(loaded.model))}
    if merged:
        # Last: merging folds the adapters into the base model, which then has no adapters to save.
        adapted: Any = loaded.model  # a peft PeftModel
        exports[MERGED] = _folder(storage.join(output_uri, MERGED), saver(adapted.merge_and_unload()))
    return exports
