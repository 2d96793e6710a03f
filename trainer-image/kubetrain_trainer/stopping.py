"""SIGTERM as a request to stop soon, not a crash: the kubelet sends it when the pod is deleted (a
Kueue eviction or preemption, a drain) and kills the process after the pod's grace period. The
training loop checks the request after every step, all ranks agree on it in the step's one
collective, and the chief writes a checkpoint before every rank exits, so the next attempt resumes
from that step instead of the last periodic checkpoint."""

from __future__ import annotations

import signal
import threading
from types import FrameType

from kubetrain_trainer.errors import TrainerFailure


class StopRequest:
    """Set by SIGTERM once installed; read by the training loop."""

    def __init__(self) -> None:
        self.requested = False

    def install(self) -> StopRequest:
        """Takes over SIGTERM for this process where Python allows it, from the main thread.
        Elsewhere (Ray Train runs the training function in a thread of its own) SIGTERM stays the
        host framework's, and a stop resumes from the last periodic checkpoint as before."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
        return self

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        self.requested = True


class Stopped(TrainerFailure):
    """Training stopped on SIGTERM after the checkpoint was written: a failure to the kubelet (the
    pod did not finish), reported as TrainerError with the step and checkpoint in the message."""

    def __init__(self, message: str) -> None:
        super().__init__("TrainerError", message)
