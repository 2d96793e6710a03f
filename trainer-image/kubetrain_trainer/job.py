"""One worker process from configuration to report: the order of the stages, and turning every
way it can end into an exit code and a final report."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from kubetrain_trainer import (
    __version__,
    data,
    distributed,
    export,
    logs,
    lora,
    modelcard,
    models,
    predict,
    preprocess,
    storage,
    termination,
)
from kubetrain_trainer.checkpoint import Checkpointer, Saved
from kubetrain_trainer.config import TaskConfig, parse_task
from kubetrain_trainer.environment import JobEnvironment
from kubetrain_trainer.errors import TrainerFailure
from kubetrain_trainer.evaluate import evaluate, held_out_digest
from kubetrain_trainer.history import History
from kubetrain_trainer.loop import LoopResult, TrainingLoop
from kubetrain_trainer.progress import Gate
from kubetrain_trainer.status import StatusReporter, Throttle, rfc3339
from kubetrain_trainer.stopping import StopRequest


@dataclass(frozen=True)
class BuiltModel:
    module: nn.Module
    lora_targets: list[str]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_model(task: TaskConfig, prepared: preprocess.Prepared) -> BuiltModel:
    module = models.build(task, prepared.input_shape, prepared.num_classes)
    targets: list[str] = []
    if task.finetune is not None:
        export.load_weights(module, task.finetune.checkpoint_uri)
        if task.finetune.lora is not None:
            targets = lora.apply(module, task.finetune.lora)
    return BuiltModel(module, targets)


def code_version(env: JobEnvironment) -> str:
    return f"{__version__}+{env.code_version}" if env.code_version else __version__


def _model_card(
    env: JobEnvironment,
    task: TaskConfig,
    dataset: data.Dataset,
    prepared: preprocess.Prepared,
    built: BuiltModel,
    result: LoopResult,
    metrics: dict[str, float],
    device: torch.device,
    started: str,
    digests: list[str],
    counts: dict[str, int],
) -> dict[str, Any]:
    return {
        **modelcard.job_facts(env, code_version(env)),
        "data": {**dataset.audit.as_dict(), "classes": dataset.classes, **env.data_terms()},
        "config": task.resolved(),
        "preprocessing": prepared.recipe,
        "schema": predict.schema(task.family, dataset.feature_names, prepared.input_shape, dataset.classes),
        "model": {
            "family": task.family,
            "class": type(built.module).__name__,
            "inputShape": list(prepared.input_shape),
            **counts,
            "finetunedFrom": task.finetune.checkpoint_uri if task.finetune else None,
            "loraTargets": built.lora_targets,
        },
        "training": {
            "steps": result.steps,
            "totalSteps": result.total_steps,
            "resumedFromStep": result.resumed_from_step,
            "worldSize": env.topology.world_size,
            "parameterDigests": digests,
            "device": device.type,
            "mixedPrecision": "bf16" if device.type == "cuda" else None,
            "finalTrainLoss": result.train_loss,
            "samplesPerSecond": round(result.samples_per_second, 2),
        },
        "metrics": metrics,
        "evaluation": {"split": "test", "rows": len(prepared.test[1]), "digest": held_out_digest(*prepared.test)},
        "startTime": started,
        "endTime": rfc3339(),
    }


def train(env: JobEnvironment, started: str) -> str | None:
    """Returns rank 0's success report (other ranks report nothing on success). Raises on
    failure; the caller turns that into the final report (run() here, ray_train under Ray)."""
    topology = env.topology
    task = parse_task(env.task_json)
    env.require_uris()
    seed_everything(task.seed)
    if task.type == "causal-lm":
        # Imported here: it loads transformers and peft, which the other tasks need not pay for.
        from kubetrain_trainer.llm import job as llm_job

        return llm_job.train(env, task, started)
    # Data problems surface before the rendezvous: every rank reads the same data, so all fail
    # alike without waiting for each other.
    dataset = data.load(env.dataset_uri, task.family)
    if topology.is_chief:
        logs.info("data_audited", **dataset.audit.as_dict())
    prepared = preprocess.prepare(dataset, task)
    built = build_model(task, prepared)
    device = distributed.device_for(topology)
    built.module.to(device)
    distributed.init(topology, device)
    reporter = StatusReporter.from_environment(env, task.progress_interval_seconds) if topology.is_chief else None
    checkpointer = Checkpointer(env.output_uri, on_checkpoint=checkpoint_sink(reporter))
    history = History(env.output_uri) if topology.is_chief else None
    loop = TrainingLoop(
        built.module, prepared, task, topology, device, checkpointer,
        progress_gate=progress_gate(reporter, task.progress_interval_seconds) if topology.is_chief else None,
        epoch_report=(lambda document: reporter.send({"progress": document})) if reporter is not None else None,
        history=history,
        stop=StopRequest().install(),
    )
    with reports_flushed(reporter):
        result = loop.run()
    digests = rank_digests(built.module)
    if history is None:
        return None
    counts = parameter_counts(built.module)
    # The adapters are folded in before the evaluation, so the metrics describe the very weights
    # exported, which the predictor (kubetrain_trainer.predict) loads and re-scores exactly.
    lora.merge(built.module)
    metrics = evaluate(built.module, *prepared.test, prepared.num_classes, device)
    logs.info("evaluated", **metrics)
    history.record(result.steps, "test", metrics, epoch=task.epochs)
    card = export.write(
        env.output_uri, built.module,
        {**_model_card(env, task, dataset, prepared, built, result, metrics, device, started, digests, counts),
         "history": history.close()},
        task.export_formats, prepared.test[0][:2],
    )
    logs.info("exported", weights=card["weights"]["uri"], sha256=card["weights"]["sha256"])
    if reporter is not None:
        reporter.finish({"progress": {**result.final_progress, "updateTime": rfc3339()}, "metrics": metrics})
    message = f"test accuracy {metrics['accuracy']:.4f} after {result.steps} steps"
    weights_uri = storage.join(env.output_uri, export.WEIGHTS)
    return termination.report("Succeeded", "Completed", message, metrics, weights_uri, provenance(card, env))


def parameter_counts(module: nn.Module) -> dict[str, int]:
    """All parameters and the trained ones (a LoRA fine-tune trains only its adapters), counted
    as trained: before the adapters are merged away."""
    return {
        "parameters": sum(p.numel() for p in module.parameters()),
        "trainableParameters": sum(p.numel() for p in module.parameters() if p.requires_grad),
    }


def rank_digests(module: nn.Module) -> list[str]:
    """Every rank's parameters digest after training, in rank order (a collective: all ranks call
    it). Each rank also logs its own, so a check need not trust the gather."""
    digest = export.parameters_digest(module)
    logs.info("parameters_digest", sha256=digest)
    return distributed.all_gather(digest)


def provenance(card: dict[str, Any], env: JobEnvironment) -> dict[str, Any]:
    """The digests only the trainer knows, for the operator's provenance record (docs/contracts.md):
    the portable exports (ONNX, the Hugging Face folders) are there for the ModelVersion too."""
    exported = card.get("exports", {})
    exports = {name: {"uri": e["uri"], "digest": f"sha256:{e['sha256']}"} for name, e in exported.items()}
    return {
        **({"exports": exports} if exports else {}),
        "datasetDigest": f"sha256:{card['data']['sha256']}",
        "datasetProfile": card["data"]["profile"],
        "weightsUri": card["weights"]["uri"],
        "weightsDigest": f"sha256:{card['weights']['sha256']}",
        "modelCardUri": storage.join(env.output_uri, export.CARD),
        "codeVersion": card["codeVersion"],
    }


def progress_gate(reporter: StatusReporter | None, interval_seconds: float) -> Gate:
    """In a cluster the reporter's rate limit sets the cadence; elsewhere progress is only logged, as often."""
    if reporter is not None:
        return reporter.progress
    throttle = Throttle(interval_seconds)
    return lambda _document: throttle.due()


@contextmanager
def reports_flushed(reporter: StatusReporter | None) -> Iterator[None]:
    """The loop's last status updates go out before its end is acted on, also when it ends by
    raising (stopped on SIGTERM: the lastCheckpoint of the step it stopped at, which the job
    resumes from, must be in status before the pod is gone; the process ends soon after)."""
    try:
        yield
    finally:
        if reporter is not None:
            reporter.flush()


def checkpoint_sink(reporter: StatusReporter | None) -> Callable[[Saved], None] | None:
    """Each checkpoint the chief saves or resumes from into status.lastCheckpoint, as users' code
    reports one through the SDK; nothing where there is no status to write."""
    if reporter is None:
        return None
    return lambda saved: reporter.checkpoint(saved.as_status())


def run(env: JobEnvironment) -> int:
    started = rfc3339()
    logs.configure(env.namespace, env.name, env.topology.rank)
    logs.archive(env.output_uri, env.topology.rank)
    try:
        report = train(env, started)
        # The ranks tear the group down together: a rank that destroys it while the chief is still
        # exporting dies in gloo's teardown ("terminate called without an active exception").
        distributed.barrier()
        code = 0
    except TrainerFailure as failure:
        logs.error("failed", reason=failure.reason, message=failure.message)
        report, code = termination.report("Failed", failure.reason, failure.message), 1
    except Exception as error:  # anything unforeseen is still reported, as TrainerError
        logs.error("failed", exc_info=True, reason="TrainerError")
        report, code = termination.report("Failed", "TrainerError", f"{type(error).__name__}: {error}"), 1
    finally:
        distributed.shutdown()
    if report is not None:
        termination.write(env.termination_message_path, report)
    logs.info("exiting", exit_code=code)
    logs.close_archive()
    return code
