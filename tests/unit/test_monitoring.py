"""The monitoring kit in ``deploy/monitoring/``: the alert rules pass ``promtool check rules``
and their own ``promtool test rules`` cases, and every metric the rules and the Grafana
dashboard name is one the code exports (``exammentor/metrics.py``).

promtool is required, not optional: without it the rules would go unchecked, so these tests
fail (never skip) and say how to install it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from exammentor import metrics

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
ALERTS = MONITORING / "alerts.yml"
ALERT_TESTS = MONITORING / "alerts.test.yml"
DASHBOARD = MONITORING / "dashboard.json"

METRIC_NAME = re.compile(r"\bexammentor_[a-z0-9_]+")

SIGNALS = {
    "error rate": "exammentor_http_requests_total",
    "latency per route": "exammentor_http_request_seconds_bucket",
    "consumer lag": "exammentor_consumer_lag",
    "dead letters": "exammentor_commands_total",
    "outbox backlog": "exammentor_outbox_backlog",
    "model errors": "exammentor_llm_calls_total",
    "model spend": "exammentor_llm_tokens_total",
}
"""What the operations issue asks the monitoring to cover, and the series that carries it."""

AWAITING_UPDATE: set[str] = set()
"""Declared (and alerted on) but not yet updated anywhere: the gateway's middleware
(``services/gateway/http_api.py``) and ``CommandConsumer.on_message``
(``exammentor/messaging/consumer.py``, via ``metrics.observe_consumer_lag``) are where the values are
known. Remove a name here once its update line is in; the test below says when."""


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is missing: install Debian's prometheus package "
            "(apt-get update && apt-get install -y prometheus); .ci/run does it in CI",
            pytrace=False,
        )
    return path


def _run_promtool(*args: str) -> None:
    done = subprocess.run(
        [_promtool(), *args],
        check=False,
        cwd=MONITORING,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}\n{done.stderr}"


def _declared() -> dict[str, MetricWrapperBase]:
    return {
        name: value for name, value in vars(metrics).items() if isinstance(value, MetricWrapperBase)
    }


def _exported_series() -> set[str]:
    """Series names Prometheus sees from the metrics the code declares."""
    names: set[str] = set()
    for metric in _declared().values():
        (family,) = metric.describe()
        base = family.name
        if isinstance(metric, Counter):
            names |= {f"{base}_total", f"{base}_created"}
        elif isinstance(metric, Histogram):
            names |= {f"{base}_bucket", f"{base}_sum", f"{base}_count", f"{base}_created"}
        elif isinstance(metric, Gauge):
            names.add(base)
    return names


def _alert_expressions() -> dict[str, str]:
    doc = yaml.safe_load(ALERTS.read_text())
    return {
        rule["alert"]: rule["expr"]
        for group in doc["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def _dashboard_expressions() -> list[str]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in doc["panels"] for target in panel.get("targets", [])]


def test_alert_rules_are_valid() -> None:
    _run_promtool("check", "rules", ALERTS.name)


def test_alert_rules_fire_as_their_tests_expect() -> None:
    _run_promtool("test", "rules", ALERT_TESTS.name)


def test_every_alert_has_a_test_case() -> None:
    doc = yaml.safe_load(ALERT_TESTS.read_text())
    tested = {case["alertname"] for test in doc["tests"] for case in test["alert_rule_test"]}
    assert set(_alert_expressions()) <= tested


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_expressions_name_only_metrics_the_code_exports(source: str) -> None:
    exprs = list(_alert_expressions().values()) if source == "alerts" else _dashboard_expressions()
    assert exprs
    named = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
    assert named, "no ExamMentor metric named"
    assert named <= _exported_series(), f"not exported: {sorted(named - _exported_series())}"


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_every_signal_of_the_issue_is_covered(source: str) -> None:
    exprs = list(_alert_expressions().values()) if source == "alerts" else _dashboard_expressions()
    text = "\n".join(exprs)
    missing = [signal for signal, series in SIGNALS.items() if series not in text]
    assert not missing
    assert 'outcome="dead_lettered"' in text
    assert 'status=~"5.."' in text


def test_every_declared_metric_is_updated_by_the_code() -> None:
    sources = [
        p.read_text()
        for folder in ("exammentor", "services")
        for p in (ROOT / folder).rglob("*.py")
        if p.name != "metrics.py"
    ]
    code = "\n".join(sources)
    updated = {name for name in _declared() if f"metrics.{name}" in code}
    if "metrics.observe_consumer_lag" in code:
        updated.add("CONSUMER_LAG")
    assert set(_declared()) - updated == AWAITING_UPDATE, (
        "update AWAITING_UPDATE: a metric got its update line, or a new one has none"
    )


class _Consumer:
    def __init__(self, highwater: int | None) -> None:
        self._highwater = highwater
        self.asked: list[Any] = []

    def highwater(self, partition: Any) -> int | None:
        self.asked.append(partition)
        return self._highwater


class _Record:
    topic = "exammentor.cmd.quiz"
    partition = 4
    offset = 41


def _lag(service: str, partition: str) -> float | None:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(
        "exammentor_consumer_lag", {"service": service, "partition": partition}
    )


def test_consumer_lag_is_highwater_minus_the_next_offset() -> None:
    consumer = _Consumer(highwater=50)
    metrics.observe_consumer_lag("lagtest", consumer, _Record())
    assert _lag("lagtest", "4") == 8  # offsets 42..49 not yet taken
    (asked,) = consumer.asked
    assert (asked.topic, asked.partition) == ("exammentor.cmd.quiz", 4)
    metrics.observe_consumer_lag("lagtest", _Consumer(highwater=42), _Record())
    assert _lag("lagtest", "4") == 0


def test_consumer_lag_skips_what_it_cannot_know() -> None:
    metrics.observe_consumer_lag("lagskip", _Consumer(highwater=None), _Record())
    metrics.observe_consumer_lag("lagskip", object(), _Record())
    metrics.observe_consumer_lag("lagskip", _Consumer(highwater=9), object())
    assert _lag("lagskip", "4") is None
