"""The chart's Grafana dashboard asks only for metrics the operator exports: every metric named in
a panel's PromQL or a template variable's query is one of the series names of the operator's
registry (a counter as name_total, a histogram as name_bucket, name_sum and name_count)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from kubetrain.controller.metrics import OperatorMetrics

DASHBOARD = Path(__file__).resolve().parents[2] / "charts" / "kubetrain" / "dashboards" / "kubetrain.json"

# Series suffixes of each metric type, as the text exposition format writes them.
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count", "")}
# PromQL words that are neither functions (followed by "(") nor metrics.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset"}
IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def exported(registry: CollectorRegistry) -> set[str]:
    names = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    return names


def operator_series() -> set[str]:
    """What an operator's /metrics serves: its registry as the reconciler completes it."""
    metrics = OperatorMetrics()
    metrics.watch_jobs(list)
    metrics.watch_budgets(list)
    return exported(metrics.registry)


def metric_names(expr: str) -> set[str]:
    """The metric names of a PromQL expression (or of a Grafana label_values() query): what is
    left once strings, Grafana variables, label matchers, ranges, grouping clauses, numbers and
    function names are taken out."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    expr = re.sub(r"\$\{?\w+\}?", "", expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,[^)]*\)", r"\1", expr)
    names = set()
    for match in IDENTIFIER.finditer(expr):
        word, rest = match.group(), expr[match.end():].lstrip()
        if rest.startswith("(") or word in KEYWORDS or (match.start() > 0 and expr[match.start() - 1].isdigit()):
            continue
        names.add(word)
    return names


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, query) of every panel target, in rows too, and every query variable."""
    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels") or [])

    for panel in panels(dashboard["panels"]):
        for target in panel.get("targets") or []:
            yield f"panel {panel['title']!r} target {target['refId']}", target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            yield f"variable {variable['name']}", query["query"] if isinstance(query, dict) else query


def unknown_metrics(dashboard: dict[str, Any], series: set[str]) -> list[str]:
    problems = []
    for where, query in queries(dashboard):
        names = metric_names(query)
        if not names:
            problems.append(f"{where}: names no metric: {query}")
        problems.extend(f"{where}: {name} is not exported" for name in sorted(names - series))
    return problems


def load() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def test_every_metric_the_dashboard_names_is_exported() -> None:
    dashboard = load()
    assert sum(1 for _ in queries(dashboard)) >= 10
    assert unknown_metrics(dashboard, operator_series()) == []


def test_the_dashboard_covers_what_it_is_for() -> None:
    named = set().union(*(metric_names(query) for _, query in queries(load())))
    assert {
        "kubetrain_trainingjobs", "kubetrain_reconcile_duration_seconds_bucket", "kubetrain_job_restarts_total",
        "kubetrain_job_stalls_total", "kubetrain_gpu_hours_used", "kubetrain_budget_gpu_hours_used",
        "kubetrain_budget_gpu_hours_remaining", "kubetrain_queue_wait_seconds_bucket",
    } <= named


@pytest.mark.parametrize(
    ("expr", "missing"),
    [
        ("sum(rate(kubetrain_job_restarts[5m]))", "kubetrain_job_restarts"),  # a counter without _total
        ('histogram_quantile(0.9, sum by (le) (rate(kubetrain_queue_wait_seconds[$__rate_interval])))',
         "kubetrain_queue_wait_seconds"),  # a histogram without _bucket
        ('kubetrain_budget_gpu_hours_left{namespace=~"$namespace"}', "kubetrain_budget_gpu_hours_left"),
        ("kubetrain_trainingjobs / on (namespace) kubetrain_namespace_quota", "kubetrain_namespace_quota"),
    ],
)
def test_a_panel_naming_a_metric_that_does_not_exist_fails_the_check(expr: str, missing: str) -> None:
    dashboard = load()
    dashboard["panels"][1]["targets"][0]["expr"] = expr
    problems = unknown_metrics(dashboard, operator_series())
    assert len(problems) == 1 and f"{missing} is not exported" in problems[0], problems


def test_a_query_naming_no_metric_fails_the_check() -> None:
    """A panel that would draw a constant, or a variable listing any metric's namespaces, proves
    nothing about the operator's metrics."""
    dashboard = load()
    dashboard["panels"][1]["targets"][0]["expr"] = "vector(1)"
    dashboard["templating"]["list"][1]["query"]["query"] = "label_values(namespace)"
    assert unknown_metrics(dashboard, operator_series()) == [
        "panel 'Jobs by phase' target A: names no metric: vector(1)",
        "variable namespace: namespace is not exported",
    ]


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (namespace, phase) (kubetrain_trainingjobs{namespace=~"$namespace", phase!~"Succeeded|Failed"})',
         {"kubetrain_trainingjobs"}),
        ("100 * kubetrain_budget_gpu_hours_used / kubetrain_budget_gpu_hours",
         {"kubetrain_budget_gpu_hours_used", "kubetrain_budget_gpu_hours"}),
        ("histogram_quantile(0.95, sum by (le) (rate(kubetrain_reconcile_duration_seconds_bucket[5m])))",
         {"kubetrain_reconcile_duration_seconds_bucket"}),
        ("label_values(kubetrain_trainingjobs, namespace)", {"kubetrain_trainingjobs"}),
        ("sum(kubetrain_leader) > bool 1e0", {"kubetrain_leader"}),
    ],
)
def test_metric_names_of_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names
