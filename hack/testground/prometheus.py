"""A Prometheus server for a test: on 127.0.0.1, scraping the targets the test lists, stopped by the test.

The binary is the pinned Debian package's (`ensure_prometheus`). The host routes the pod CIDR into
the pod network's namespace (`podnet.py`), so a server on the host scrapes pod IPs as the operator
reaches them. Targets come from a file (`file_sd_configs`) that `set_targets` rewrites as pods come
and go, each target with the labels a team's Kubernetes discovery would give it; storage is a
directory of the test's.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from testground.process import ChildProcess
from testground.waiting import wait_for

SCRAPE_INTERVAL_SECONDS = 1
"""How often each target is scraped: a canary step's window is seconds long in the tests."""


class PrometheusServer:
    """One Prometheus process; `address` is its base URL once started."""

    def __init__(self, binary: Path, workdir: Path) -> None:
        self.workdir = workdir
        self.port = _free_port()
        self.address = f"http://127.0.0.1:{self.port}"
        self._targets = workdir / "targets.json"
        config = workdir / "prometheus.yml"
        workdir.mkdir(parents=True, exist_ok=True)
        self.set_targets([])
        # JSON is YAML: the config is rendered from data, never assembled from strings.
        config.write_text(
            json.dumps(
                {
                    "global": {
                        "scrape_interval": f"{SCRAPE_INTERVAL_SECONDS}s",
                        "scrape_timeout": f"{SCRAPE_INTERVAL_SECONDS}s",
                        "evaluation_interval": f"{SCRAPE_INTERVAL_SECONDS}s",
                    },
                    "scrape_configs": [
                        {
                            "job_name": "engines",
                            "file_sd_configs": [{"files": [str(self._targets)], "refresh_interval": "1s"}],
                        }
                    ],
                }
            )
        )
        self._process = ChildProcess(
            "prometheus",
            [
                str(binary),
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            workdir / "prometheus.log",
        )

    def start(self, timeout: float = 60) -> None:
        """Start the server and wait until it is ready to answer queries."""
        self._process.start()

        def ready() -> bool:
            if self._process.exited() is not None:
                raise RuntimeError(f"prometheus exited:\n{self._process.log_tail()}")
            return httpx.get(f"{self.address}/-/ready", timeout=1, trust_env=False).status_code == 200

        wait_for(ready, timeout=timeout, what="Prometheus ready", fatal=(RuntimeError,))

    def stop(self) -> None:
        self._process.stop()

    def log_tail(self, lines: int = 30) -> str:
        return self._process.log_tail(lines)

    def set_targets(self, groups: Sequence[tuple[Sequence[str], Mapping[str, str]]]) -> None:
        """Scrape these (addresses `ip:port`, labels) groups from now on; the file is replaced at once."""
        written = [{"targets": list(targets), "labels": dict(labels)} for targets, labels in groups]
        scratch = self._targets.with_suffix(".tmp")
        scratch.write_text(json.dumps(written))
        os.replace(scratch, self._targets)

    def query(self, promql: str) -> list[dict[str, object]]:
        """The instant vector `promql` gives now (an empty list for no data); raises on an error answer."""
        answer = httpx.get(f"{self.address}/api/v1/query", params={"query": promql}, timeout=5, trust_env=False)
        answer.raise_for_status()
        result: list[dict[str, object]] = answer.json()["data"]["result"]
        return result


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
