"""The floor of a switch: a Service's selector moved from one color to the other, as a client of its
ClusterIP sees it through kube-proxy. Prints numbers, asserts nothing.

  hack/bench-switch [--switches N]     (needs the real node's binaries: hack/build-binaries.sh node)

On the test ground's real node (kubelet, containerd, kube-proxy in iptables mode), two engine pods,
`blue` and `green`, stand behind one Service. A client in the ground's network namespace asks
`GET /v1/models` of the ClusterIP over and over, each time on a new connection, while the selector
is patched back and forth. For each switch: the time from the patch to the first answer of the new
color, and to the last answer of the old one. That last figure is the compass for a cutover: no
operator can move clients off the old color faster than the endpoints controller and kube-proxy do.
"""

from __future__ import annotations

import argparse
import statistics
import uuid

from kubernetes import client, config

from testground.ground import TestGround
from testground.switching import blue_green_service, switch_selector
from testground.waiting import wait_for

TIMEOUT = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--switches", type=int, default=10, help="selector patches, alternating (default 10)")
    arguments = parser.parse_args()
    ground = TestGround(real_node=True)
    ground.start()
    try:
        assert ground.real_node is not None
        core = client.CoreV1Api(config.new_client_from_config(config_file=ground.kubeconfig))
        namespace = f"switch-{uuid.uuid4().hex[:6]}"
        core.create_namespace({"metadata": {"name": namespace}})
        wait_for(lambda: core.read_namespaced_service_account("default", namespace), timeout=TIMEOUT,
                 what="the namespace's ServiceAccount")  # fmt: skip
        netns = ground.real_node.netns
        cluster_ip = blue_green_service(core, namespace, netns, TIMEOUT)
        first_new, last_old, failed = [], [], 0
        for number in range(arguments.switches):
            to = "green" if number % 2 == 0 else "blue"
            switch = switch_selector(core, namespace, "chat", netns, cluster_ip, to, TIMEOUT)
            first_new.append(switch.first_new)
            last_old.append(switch.last_old)
            failed += len(switch.failures)
            print(f"switch {number + 1:2} to {to:5}: first new answer {switch.first_new:.3f} s, "
                  f"last old answer {switch.last_old:.3f} s ({switch.requests} requests, "
                  f"{len(switch.failures)} failed)", flush=True)  # fmt: skip
        for name, values in (("first new answer", first_new), ("last old answer", last_old)):
            print(f"{name}: min {min(values):.3f} s, median {statistics.median(values):.3f} s, "
                  f"max {max(values):.3f} s over {len(values)} switches")  # fmt: skip
        print(f"failed requests: {failed}")
    finally:
        ground.stop()


if __name__ == "__main__":
    main()
