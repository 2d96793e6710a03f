"""Entrypoint dispatch: with arguments, a command on a trained model (kubetrain_trainer.commands:
predict, evaluate, serve); without, a training pod: one with several local processes runs the
launcher, one of an elastic job runs torchrun's agent (kubetrain_trainer.elastic), every other
process is a worker. Configuration errors found before a worker starts
still produce a final report."""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn

from kubetrain_trainer import elastic, launcher, logs, termination
from kubetrain_trainer.environment import DEFAULT_TERMINATION_MESSAGE_PATH, JobEnvironment
from kubetrain_trainer.errors import TrainerFailure


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args:
        from kubetrain_trainer import commands

        return commands.main(args)
    if elastic.wanted(os.environ):
        elastic.launch()
    try:
        env = JobEnvironment.from_env()
    except TrainerFailure as failure:
        logs.configure(
            os.environ.get("KUBETRAIN_JOB_NAMESPACE", "default"), os.environ.get("KUBETRAIN_JOB_NAME", "local"), -1
        )
        logs.error("failed", reason=failure.reason, message=failure.message)
        path = os.environ.get("KUBETRAIN_TERMINATION_MESSAGE_PATH", DEFAULT_TERMINATION_MESSAGE_PATH)
        termination.write(path, termination.report("Failed", failure.reason, failure.message))
        return 1
    if env.topology.needs_local_spawn:
        return launcher.run(env)
    # Imported here so a launcher process never pays for (or holds the memory of) torch.
    from kubetrain_trainer import job

    code = job.run(env)
    if env.topology.distributed:
        _exit_without_finalizing(code)
    return code


def _exit_without_finalizing(code: int) -> NoReturn:
    """Ends a rank of a process group once everything it writes is written, without the
    interpreter's finalization. Gloo's worker threads can still be dropping the last collective's
    work (which holds Python tensors) after destroy_process_group; one that needs the GIL while
    the interpreter finalizes aborts the process ("terminate called without an active exception",
    exit 134) after a run that succeeded. Found in a core dump of tests/training/
    test_distributed_training.py::test_several_processes_per_pod (about 1 run in 10)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
