"""The pods one attempt of a job consists of, per runtime, and the rules the planner applies to
each role: whether a failure restarts the whole group or replaces that pod alone, and which
role's success is the job's success. One table, so the planner has a single code path."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from kubetrain.api.contract import HEAD_ROLE, WORKER_ROLE
from kubetrain.api.job import TrainingJob
from kubetrain.api.spec import Runtime
from kubetrain.api.status import Reason
from kubetrain.plan.observed import ObservedPod
from kubetrain.render.names import ray_head_name, worker_name


class Member(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: str
    index: int
    name: str


class Group(BaseModel):
    model_config = ConfigDict(frozen=True)

    members: list[Member]
    replaceable: frozenset[str]
    """Members whose failed pod is replaced alone: Ray reschedules its work on the new node, and an
    elastic group re-forms without it; a fixed DDP rendezvous, worker 0 of an elastic one (it hosts
    the rendezvous store) and a Ray head (with its GCS) cannot outlive a lost member."""
    max_replacements: int
    """Members replaced alone in one attempt before one more loss restarts the whole group."""
    deciding: frozenset[str]
    """The job succeeds when every one of these members has succeeded."""
    min_workers: int | None = None
    """spec.elastic.minWorkers: the fewest running workers the group trains with; None: not elastic."""
    reporter: str
    """The member whose termination message carries the final report (rank 0, or the driver)."""
    noun: str
    """How messages name every member, e.g. "all 2 workers"."""
    whole: str
    """How restart messages name what is restarted."""
    success_reason: str
    success_noun: str

    def member(self, role: str | None, index: int | None) -> Member | None:
        return next((m for m in self.members if m.role == role and m.index == index), None)

    def in_attempt(self, pod: ObservedPod, attempt: int) -> bool:
        """Only a pod with exactly the name, role, index and attempt this attempt would render
        belongs to it; anything else the job owns is a leftover to delete."""
        member = self.member(pod.role, pod.index)
        return pod.attempt == attempt and member is not None and pod.name == member.name

    def roles(self) -> list[str]:
        return list(dict.fromkeys(m.role for m in self.members))


def group_of(job: TrainingJob) -> Group:
    name, workers = job.metadata.name, job.spec.workers
    worker_members = [Member(role=WORKER_ROLE, index=i, name=worker_name(name, i)) for i in range(workers)]
    if job.spec.runtime == Runtime.RAY:
        head = Member(role=HEAD_ROLE, index=0, name=ray_head_name(name))
        return Group(
            members=[head, *worker_members],
            replaceable=frozenset(m.name for m in worker_members),
            max_replacements=job.spec.ray.max_worker_failures,
            deciding=frozenset({head.name}),
            reporter=head.name,
            noun=f"the Ray head and all {workers} workers",
            whole="the Ray head and every worker",
            success_reason=Reason.DRIVER_SUCCEEDED,
            success_noun="the Ray driver (head)",
        )
    elastic = job.spec.elastic
    if elastic is not None:
        chief = worker_members[0]
        return Group(
            members=worker_members,
            replaceable=frozenset(m.name for m in worker_members[1:]),
            max_replacements=elastic.max_restarts,
            # The others stop with rank 0 (torchrun ends the round); one still waiting for a node never ran.
            deciding=frozenset({chief.name}),
            min_workers=elastic.min_workers,
            reporter=chief.name,
            noun=f"at least {elastic.min_workers} of {workers} workers",
            whole="every worker",
            success_reason=Reason.ALL_WORKERS_SUCCEEDED,
            success_noun="the elastic group",
        )
    return Group(
        members=worker_members,
        replaceable=frozenset(),
        max_replacements=0,
        deciding=frozenset(m.name for m in worker_members),
        reporter=worker_members[0].name,
        noun=f"all {workers} workers",
        whole="every worker",
        success_reason=Reason.ALL_WORKERS_SUCCEEDED,
        success_noun=f"all {workers} workers",
    )
