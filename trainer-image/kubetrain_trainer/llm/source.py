"""Where the pre-trained model comes from. `finetune.checkpointUri` of a causal-lm task names a
Hugging Face model directory (`config.json`, weights, tokenizer files, as `save_pretrained` writes
it); this resolves it to a local directory that `from_pretrained` reads, and records what the model
card needs to name the base model: its URI, the digest of the files read, and its licence."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from kubetrain_trainer import storage
from kubetrain_trainer.errors import InvalidConfig

HUB = "hf"
# The licence of a Hub model is the `license:` key of its README's YAML front matter.
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---", re.DOTALL)
_LICENSE = re.compile(r"^license:\s*['\"]?([^'\"\n]+?)['\"]?\s*$", re.MULTILINE)


@dataclass(frozen=True)
class BaseModel:
    uri: str
    directory: Path
    digest: str  # sha256: of the directory's manifest (storage.content_digest)
    license: str | None


def resolve(uri: str, license_override: str | None = None) -> BaseModel:
    scheme = urlparse(uri).scheme
    if scheme == HUB:
        directory = _from_hub(uri)
    elif storage.is_local(uri):
        directory = storage.local_path(uri)
    else:
        directory = storage.fetch_directory(uri)
    if not (directory / "config.json").is_file():
        raise InvalidConfig(
            f"finetune.checkpointUri {uri}: not a Hugging Face model directory (no config.json in {directory}); "
            "name a folder written by save_pretrained"
        )
    return BaseModel(uri, directory, storage.content_digest(str(directory)), license_override or _license(directory))


def _from_hub(uri: str) -> Path:
    """`hf://org/name[@revision]` from the Hugging Face Hub, into huggingface_hub's cache (HF_HOME;
    point it at a mounted volume to share downloads between runs). It needs egress to the Hub (or
    HF_ENDPOINT naming a mirror) and, for gated models, HF_TOKEN in the pod (spec.env from a
    Secret through spec.podTemplate). A network failure is left to raise: the operator retries the
    group, whereas a wrong name would fail the same way every time."""
    from huggingface_hub import snapshot_download

    repo, _, revision = uri.removeprefix(f"{HUB}://").partition("@")
    return Path(snapshot_download(repo_id=repo, revision=revision or None))


def _license(directory: Path) -> str | None:
    readme = directory / "README.md"
    if not readme.is_file():
        return None
    front = _FRONT_MATTER.match(readme.read_text(errors="replace"))
    found = _LICENSE.search(front.group(1)) if front else None
    return found.group(1).strip() if found else None
