"""Pod faults that kwok plays out (stages/pod-fault-*.yaml), chosen by a pod annotation."""

from __future__ import annotations

from enum import StrEnum

FAULT_ANNOTATION = "sim.turnout.dev/fault"


class Fault(StrEnum):
    """What the fake kubelet makes of a pod annotated ``sim.turnout.dev/fault: <value>``."""

    IMAGE_PULL_BACK_OFF = "ImagePullBackOff"  # Pending, containers waiting on the image
    CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"  # Running, exits with Error, restartCount rises
    OOM_KILLED = "OOMKilled"  # Running, exits OOMKilled (137), then CrashLoopBackOff
    NEVER_READY = "NeverReady"  # Running with an IP, containers never Ready
