"""A toy language model and toy data, built locally from a seed, so tests, examples and the
benchmark fine-tune a real Hugging Face model without downloading one: a Llama-style config with
random weights and a word-level tokenizer over the toy data's vocabulary, with a chat template,
saved by `save_pretrained` like any Hub model.

    python -m kubetrain_trainer.llm.toy model --out /models/toy-llama
    python -m kubetrain_trainer.llm.toy instructions --out /data/facts.jsonl --rows 400 --seed 0
    python -m kubetrain_trainer.llm.toy text --out /data/facts.txt --rows 400 --seed 0
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

# Facts to learn: a tiny model memorises them within a few hundred steps, so loss, perplexity and
# exact match move visibly in seconds.
FACTS = {
    "apple": "red", "banana": "yellow", "lime": "green", "plum": "purple", "orange": "orange", "kiwi": "brown",
    "cherry": "red", "grape": "green", "lemon": "yellow", "blueberry": "blue", "coconut": "white", "fig": "purple",
}
QUESTIONS = ["what colour is the {f} ?", "tell me the colour of the {f} .", "which colour does a {f} have ?"]
SENTENCES = ["the {f} is {c} .", "a {f} has a {c} skin .", "every {f} looks {c} ."]
SPECIAL = ["<pad>", "<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}<|system|> {{ m['content'] }} "
    "{% elif m['role'] == 'user' %}<|user|> {{ m['content'] }} <|assistant|> "
    "{% else %}{{ m['content'] }} {{ eos_token }}{% endif %}"
    "{% endfor %}"
)
LICENSE = "apache-2.0"


def instructions(rows: int, seed: int) -> str:
    rng = random.Random(seed)
    fruits = sorted(FACTS)
    lines = []
    for _ in range(rows):
        fruit = rng.choice(fruits)
        lines.append(json.dumps({"prompt": rng.choice(QUESTIONS).format(f=fruit), "response": FACTS[fruit]}))
    return "\n".join(lines) + "\n"


def text(rows: int, seed: int) -> str:
    """Paragraphs of two sentences, blank-line separated (the causal-lm plain-text format)."""
    rng = random.Random(seed)
    fruits = sorted(FACTS)
    paragraphs = []
    for _ in range(rows):
        pair = [rng.choice(SENTENCES).format(f=f, c=FACTS[f]) for f in (rng.choice(fruits), rng.choice(fruits))]
        paragraphs.append(" ".join(pair))
    return "\n\n".join(paragraphs) + "\n"


def vocabulary() -> list[str]:
    words = {w for template in QUESTIONS + SENTENCES for w in template.split() if "{" not in w}
    words |= set(FACTS) | set(FACTS.values())
    return SPECIAL + sorted(words)


def tokenizer() -> object:
    """A word-level tokenizer (whitespace and punctuation split) with the chat template above."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = vocabulary()
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.decoder = decoders.WordPiece()  # joins words with spaces
    core.add_special_tokens(SPECIAL)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def write_model(out: Path, layers: int = 2, hidden: int = 64, seed: int = 0) -> Path:
    """A randomly initialised Llama-style model with the toy tokenizer, as a Hub model directory
    (with a README whose front matter names its licence, as Hub models' do)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    fast = tokenizer()
    config = LlamaConfig(
        vocab_size=len(vocabulary()), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        bos_token_id=2, eos_token_id=3, pad_token_id=0,
        # Wider than the usual 0.02: a random model's output head must reach confident logits
        # through LoRA on the layers below it alone (a pre-trained model's head already does).
        initializer_range=0.2,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(out)
    fast.save_pretrained(out)  # type: ignore[attr-defined]
    (out / "README.md").write_text(f"---\nlicense: {LICENSE}\n---\n# toy-llama\nRandom weights, for tests.\n")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubetrain_trainer.llm.toy", description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["model", "instructions", "text"])
    parser.add_argument("--out", type=Path, required=True, help="model: a directory; data: a .jsonl or .txt file")
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.kind == "model":
        write_model(args.out, seed=args.seed)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text((instructions if args.kind == "instructions" else text)(args.rows, args.seed))
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
