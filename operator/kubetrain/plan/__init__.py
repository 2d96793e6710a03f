"""Spec + observed children -> status and actions (pure): the planners of TrainingJob (`job`),
Model (`model`) and TrainingSchedule (`schedule`), and the seam (`decision`) between them and the
controller. Per spec policy, the step that writes its verdict into the status has the policy's
name (`run_policy`, `residency`, `budget`, `promotion`); desired objects come from `kubetrain.render`,
rendered by the seam beside the planner (plan.job.Desired)."""

from kubetrain.plan.conditions import derive_phase
from kubetrain.plan.draft import Event, Plan
from kubetrain.plan.job import plan
from kubetrain.plan.observed import Observed, ObservedPod
from kubetrain.plan.patch import status_patch

__all__ = ["Event", "Observed", "ObservedPod", "Plan", "derive_phase", "plan", "status_patch"]
