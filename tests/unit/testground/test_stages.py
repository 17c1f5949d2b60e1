"""The kwok stages replace kwok's defaults and play every fault a test can ask for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from testground.cluster import STAGES_DIR
from testground.faults import FAULT_ANNOTATION, Fault

STAGES = {stage["metadata"]["name"]: stage for path in sorted(STAGES_DIR.glob("*.yaml"))
          for stage in [yaml.safe_load(Path(path).read_text())]}  # fmt: skip
ANNOTATION_KEY = f'.metadata.annotations["{FAULT_ANNOTATION}"]'


def selected_faults(stage: dict[str, Any]) -> set[str]:
    selector = stage["spec"].get("selector", {})
    faults = set()
    if FAULT_ANNOTATION in selector.get("matchAnnotations", {}):
        faults.add(selector["matchAnnotations"][FAULT_ANNOTATION])
    for expression in selector.get("matchExpressions", []):
        if expression["key"] == ANNOTATION_KEY and expression["operator"] == "In":
            faults.update(expression["values"])
    return faults


def test_every_stage_is_a_kwok_stage_named_after_its_file() -> None:
    for path in STAGES_DIR.glob("*.yaml"):
        stage = yaml.safe_load(path.read_text())
        assert (stage["apiVersion"], stage["kind"]) == ("kwok.x-k8s.io/v1alpha1", "Stage")
        assert stage["metadata"]["name"] == path.stem
        assert stage["spec"]["resourceRef"]["kind"] in ("Node", "Pod")


@pytest.mark.parametrize("name", ["node-initialize", "node-heartbeat", "pod-ready", "pod-complete", "pod-delete"])
def test_kwoks_default_stages_are_kept(name: str) -> None:
    # kwok drops all its defaults as soon as one stage is given.
    assert name in STAGES


@pytest.mark.parametrize("fault", list(Fault))
def test_every_fault_has_a_stage_that_starts_it_from_pending(fault: Fault) -> None:
    starters = [
        stage for stage in STAGES.values()
        if fault.value in selected_faults(stage)
        and {"key": ".status.phase", "operator": "In", "values": ["Pending"]}
        in stage["spec"]["selector"]["matchExpressions"]
    ]  # fmt: skip
    assert len(starters) == 1


def test_pods_with_a_fault_never_become_ready_by_the_default_stage() -> None:
    expressions = STAGES["pod-ready"]["spec"]["selector"]["matchExpressions"]
    assert {"key": ANNOTATION_KEY, "operator": "DoesNotExist"} in expressions
