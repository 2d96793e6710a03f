"""What reaches the webhooks: only the updates they judge (CEL matchConditions; the API server
evaluates them in tests/integration/test_spec_admission.py), bodies up to two maximal objects,
and specs no larger than what every pod can carry."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp.web
import kopf
from aiohttp.test_utils import TestClient, TestServer

from kubetrain.controller.webhook_scope import (
    MAX_OBJECT_BYTES,
    MAX_REVIEW_BYTES,
    SPEC_CHANGED,
    SizedWebhookServer,
    scoped,
)
from kubetrain.policy.admission import MAX_SPEC_BYTES, spec_refusal
from tests.builders import JobBuilder


def test_validating_handlers_that_judge_updates_get_match_conditions() -> None:
    hooks = scoped([{"name": f"{id_}.kubetrain-residency.kubetrain.io"} for id_ in
                    ("spec", "residency", "provenance", "budget", "submitted-by")])
    conditions = {h["name"].split(".")[0]: h.get("matchConditions") for h in hooks}
    assert conditions["spec"] == conditions["residency"] == conditions["budget"] == [SPEC_CHANGED]
    assert "kubetrain.io/submitted-by" in conditions["provenance"][0]["expression"]
    assert conditions["submitted-by"] is None  # CREATE only


def _review(object_bytes: int) -> bytes:
    """An UPDATE AdmissionReview whose old and new objects are each about `object_bytes` long."""
    big = {"metadata": {"annotations": {"filler": "x" * object_bytes}}}
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                       "request": {"uid": "u", "operation": "UPDATE", "object": big, "oldObject": big}}).encode()


def _post(serve: Callable[..., Awaitable[aiohttp.web.StreamResponse]], body: bytes) -> tuple[int, Any]:
    """POSTs `body` through `serve` (a webhook server's request handler) over real HTTP."""
    async def fn(data: dict[str, Any], **_: Any) -> dict[str, Any]:
        return {"response": {"uid": data["request"]["uid"], "allowed": True}}

    async def handle(request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        return await serve(fn, request)

    async def go() -> tuple[int, Any]:
        app = aiohttp.web.Application()
        app.router.add_post("/{id}", handle)
        async with TestClient(TestServer(app)) as client:
            response = await client.post("/spec", data=body, headers={"Content-Type": "application/json"})
            return response.status, await response.json() if response.status == 200 else None

    return asyncio.run(go())


def test_the_server_reads_an_update_of_two_maximal_objects() -> None:
    """A review of two objects at the API server's size limit gets an answer; kopf's own server
    answers it 413 before any handler runs, and a body beyond the limit is still refused."""
    body = _review(MAX_OBJECT_BYTES - 64 * 1024)
    assert len(body) > 2 * (MAX_OBJECT_BYTES - 64 * 1024)
    status, answer = _post(SizedWebhookServer._serve, body)
    assert status == 200 and answer["response"]["allowed"] is True
    assert _post(kopf.WebhookServer._serve, body)[0] == 413
    assert _post(SizedWebhookServer._serve, _review(MAX_REVIEW_BYTES // 2 + 1))[0] == 413


def test_an_oversize_spec_is_refused_with_its_size_and_the_limit() -> None:
    filler = [{"name": f"V{i}", "value": "x" * 10_000} for i in range(60)]
    big = JobBuilder.eu("big", "team").merge(env=filler).manifest()
    refusal = spec_refusal(big)
    assert refusal is not None and "is too large: spec is" in refusal and f"at most {MAX_SPEC_BYTES}" in refusal
    assert spec_refusal(JobBuilder.eu("small", "team").manifest()) is None
