"""One causal-lm worker process, from configuration to report: the same stages and report as the
classification tasks (kubetrain_trainer.job, which enters here for `type: causal-lm`), with a
Hugging Face base model in place of a built-in one."""

from __future__ import annotations

from typing import Any

import torch

from kubetrain_trainer import distributed, export, job, logs, modelcard, storage, termination
from kubetrain_trainer.checkpoint import Checkpointer
from kubetrain_trainer.config import TaskConfig
from kubetrain_trainer.environment import JobEnvironment
from kubetrain_trainer.history import History
from kubetrain_trainer.llm import adapters, corpus, metrics, source
from kubetrain_trainer.llm import export as llm_export
from kubetrain_trainer.llm.loop import LanguageLoopResult, LanguageModelLoop
from kubetrain_trainer.status import StatusReporter, rfc3339
from kubetrain_trainer.stopping import StopRequest

# One instance and one prediction of the generative predictor (kubetrain_trainer.llm.predict).
SCHEMA = {
    "input": {"type": "prompt", "encoding": "a prompt string, or an object with `prompt` (and `system`)"},
    "output": {"text": "the greedy answer, formatted with the exported tokenizer's chat template"},
}


def hyperparameters(task: TaskConfig, world_size: int, lora_targets: list[str] | None) -> dict[str, Any]:
    """What the model card lists as the run's hyperparameters (the full configuration is beside it)."""
    config, lora = task.causal_lm, task.finetune.lora if task.finetune else None
    return {
        "method": "lora" if lora else "full",
        "objective": config.objective,
        "epochs": task.epochs,
        "learningRate": task.learning_rate,
        "schedule": config.schedule,
        "warmupSteps": config.warmup_steps,
        "batchSizePerProcess": task.batch_size,
        "gradientAccumulationSteps": config.gradient_accumulation_steps,
        "effectiveBatchSize": task.batch_size * config.gradient_accumulation_steps * world_size,
        "sequenceLength": config.sequence_length,
        "packing": config.packing,
        "maxGradNorm": config.max_grad_norm,
        "seed": task.seed,
        "lora": None if lora is None else {
            "rank": lora.rank, "alpha": lora.alpha, "dropout": lora.dropout, "targetModules": lora_targets,
        },
    }


def _card(
    env: JobEnvironment, task: TaskConfig, base: source.BaseModel, audit: dict[str, Any], loaded: adapters.Loaded,
    result: LanguageLoopResult, scores: dict[str, float], device: torch.device, started: str, digests: list[str],
) -> dict[str, Any]:
    import peft
    import transformers

    params = sum(p.numel() for p in loaded.model.parameters())
    trainable = sum(p.numel() for p in loaded.model.parameters() if p.requires_grad)
    return {
        **modelcard.job_facts(env, job.code_version(env)),
        "baseModel": {"uri": base.uri, "digest": base.digest, "license": base.license},
        "data": {**audit, **env.data_terms()},
        "config": task.resolved(),
        "hyperparameters": hyperparameters(task, env.topology.world_size, loaded.lora_targets),
        "model": {"family": "causal-lm", "parameters": params, "trainableParameters": trainable},
        "training": {
            "steps": result.steps,
            "totalSteps": result.total_steps,
            "resumedFromStep": result.resumed_from_step,
            "worldSize": env.topology.world_size,
            "parameterDigests": digests,
            "device": device.type,
            "mixedPrecision": "bf16" if device.type == "cuda" else None,
            "finalTrainLoss": result.train_loss,
            "tokensPerSecond": round(result.tokens_per_second, 2),
        },
        "metrics": scores,
        "startTime": started,
        "endTime": rfc3339(),
        "software": modelcard.software(
            torch=torch.__version__, transformers=transformers.__version__, peft=peft.__version__
        ),
    }


def train(env: JobEnvironment, task: TaskConfig, started: str) -> str | None:
    """kubetrain_trainer.job.train for causal-lm (seeded, URIs checked): rank 0's success report."""
    topology, config = env.topology, task.causal_lm
    assert task.finetune is not None  # TaskConfig refuses causal-lm without it
    # Data and model problems surface before the rendezvous, on every rank alike.
    data = corpus.load(env.dataset_uri, config.objective)
    base = source.resolve(task.finetune.checkpoint_uri, config.base_model_license)
    loaded = adapters.load(base, task)
    audit = data.audit(loaded.tokenizer)
    if topology.is_chief:
        logs.info("data_audited", uri=audit["uri"], sha256=audit["sha256"], **audit["profile"])
        logs.info("base_model", uri=base.uri, digest=base.digest, license=base.license)
    train_records, validation_records, test_records = corpus.split(data.records, task)
    train_batches = corpus.batches(loaded.tokenizer, train_records, config)
    validation_batches = corpus.batches(loaded.tokenizer, validation_records, config)
    device = distributed.device_for(topology)
    loaded.model.to(device)
    distributed.init(topology, device)
    reporter = StatusReporter.from_environment(env, task.progress_interval_seconds) if topology.is_chief else None
    history = History(env.output_uri) if topology.is_chief else None
    loop = LanguageModelLoop(
        loaded.model, train_batches, validation_batches, task, topology, device,
        Checkpointer(env.output_uri, trainable_only=loaded.lora_targets is not None,
                     on_checkpoint=job.checkpoint_sink(reporter)),
        progress_gate=job.progress_gate(reporter, task.progress_interval_seconds) if topology.is_chief else None,
        history=history,
        stop=StopRequest().install(),
    )
    with job.reports_flushed(reporter):
        result = loop.run()
    digests = job.rank_digests(loaded.model)
    if history is None:
        return None
    test = corpus.batches(loaded.tokenizer, test_records, config)
    scores = metrics.language_modelling(loaded.model, test, device, task.batch_size)
    scores.update(metrics.answers(loaded.model, loaded.tokenizer, test_records, config, device))
    scores = {k: round(v, 6) for k, v in scores.items()}
    logs.info("evaluated", **scores)
    history.record(result.steps, "test", scores, epoch=task.epochs)
    card = _card(env, task, base, audit, loaded, result, scores, device, started, digests)
    exports = llm_export.write(env.output_uri, loaded, config.export_merged)
    card = {**card, "exports": exports, "weights": next(iter(exports.values())), "schema": SCHEMA,
            "evaluation": {"split": "test", "rows": len(test_records), "digest": corpus.digest(test_records)},
            "history": history.close()}
    modelcard.write(storage.join(env.output_uri, export.CARD), card)
    logs.info("exported", **{name: folder["uri"] for name, folder in exports.items()})
    if reporter is not None:
        reporter.finish({"progress": {**result.final_progress, "updateTime": rfc3339()}, "metrics": scores})
    message = f"test perplexity {scores['perplexity']:.4g} after {result.steps} steps"
    weights_uri = card["weights"]["uri"]
    return termination.report("Succeeded", "Completed", message, scores, weights_uri, job.provenance(card, env))
