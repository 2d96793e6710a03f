"""The TrainingJob API (pydantic models; the CRD is generated from them) and the node-pool catalogue."""

from kubetrain.api.job import ObjectMeta, TrainingJob
from kubetrain.api.nodepools import NodePool, NodePoolCatalogue, default_catalogue, load_catalogue
from kubetrain.api.spec import CleanPodPolicy, Runtime, TrainingJobSpec
from kubetrain.api.status import Condition, ConditionStatus, ConditionType, Phase, TrainingJobStatus
from kubetrain.api.task import TaskSpec, TaskType

__all__ = [
    "CleanPodPolicy",
    "Condition",
    "ConditionStatus",
    "ConditionType",
    "NodePool",
    "NodePoolCatalogue",
    "ObjectMeta",
    "Phase",
    "Runtime",
    "TaskSpec",
    "TaskType",
    "TrainingJob",
    "TrainingJobSpec",
    "TrainingJobStatus",
    "default_catalogue",
    "load_catalogue",
]
