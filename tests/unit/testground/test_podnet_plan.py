"""Each test ground slot has its own addresses, and all of them stay on this host."""

from __future__ import annotations

import ipaddress
from itertools import combinations

import pytest

from testground.podnet import SLOTS, PodNetworkPlan


def networks(plan: PodNetworkPlan) -> list[ipaddress.IPv4Network]:
    link = ipaddress.ip_interface(f"{plan.host_link_ip}/30").network
    return [ipaddress.IPv4Network(p) for p in (*plan.owned_prefixes(), plan.service_cidr)] + [link]


def test_slot_zero_is_the_usual_kubernetes_layout() -> None:
    plan = PodNetworkPlan.for_slot(0)
    assert plan == PodNetworkPlan()
    assert (plan.pod_cidr, plan.service_cidr, plan.kubernetes_service_ip) == (
        "10.244.0.0/16", "10.96.0.0/16", "10.96.0.1")  # fmt: skip


def test_no_two_ranges_overlap_within_or_across_slots() -> None:
    everything = [net for slot in range(SLOTS) for net in networks(PodNetworkPlan.for_slot(slot))]
    for a, b in combinations(everything, 2):
        assert not a.overlaps(b), (a, b)


@pytest.mark.parametrize("slot", range(SLOTS))
def test_addresses_are_private_and_link_addresses_link_local(slot: int) -> None:
    plan = PodNetworkPlan.for_slot(slot)
    assert all(net.is_private and not net.is_loopback for net in networks(plan))
    host, netns = ipaddress.ip_address(plan.host_link_ip), ipaddress.ip_address(plan.netns_link_ip)
    assert host.is_link_local
    assert netns.is_link_local
    assert ipaddress.ip_interface(f"{host}/30").network == ipaddress.ip_interface(f"{netns}/30").network


def test_slots_end() -> None:
    with pytest.raises(ValueError, match="slot"):
        PodNetworkPlan.for_slot(SLOTS)
