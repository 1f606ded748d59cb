"""Routing of arrivals across one workload's replicas: round robin and join-shortest-queue.

A router is called with the per-replica load (requests waiting or running) and returns a replica index.
Join-shortest-queue picks the replica whose load is the smallest share of its batch slots (replicas of one
workload may differ: a 32-slot and a 128-slot replica at 20 requests each are not equally loaded), ties to the
lowest index, so the same arrivals give the same routing. With shared replicas (:mod:`solver.simulation.mixed`) a
request may only go to the replicas of the fleet row the plan routes it to: :func:`make_group_router` applies
the same policy within each row's replicas. Offline jobs use neither: their replicas pull
batches from one shared queue (:func:`solver.simulation.loop.run`, ``shared_queue``).
"""

from __future__ import annotations

from collections.abc import Callable

from solver.errors import InputError

ROUTINGS = ("jsq", "round_robin")
"""Routing policies: join-shortest-queue (default) and round robin."""

Router = Callable[[list[int]], int]


def make_router(name: str, slots: list[int]) -> Router:
    """Return the router ``name`` (:data:`ROUTINGS`) over replicas with ``slots`` batch slots each."""
    replicas = len(slots)
    if name == "jsq":
        idx = range(replicas)
        inv = [1.0 / max(s, 1) for s in slots]

        def jsq(load: list[int]) -> int:
            return min(idx, key=lambda r: load[r] * inv[r])

        return jsq
    if name == "round_robin":
        state = [-1]

        def round_robin(load: list[int]) -> int:
            state[0] = (state[0] + 1) % replicas
            return state[0]

        return round_robin
    raise InputError("routing", f"unknown routing {name!r}; use one of {', '.join(ROUTINGS)}")


GroupRouter = Callable[[list[int], int], int]


def make_group_router(name: str, slots: list[int], groups: list[list[int]]) -> GroupRouter:
    """Return the router ``name`` restricted to one group of replicas: called with the load and the group index.

    ``groups[g]`` lists the replica indices (into ``slots``) of group ``g``; the policy is applied among them.
    """
    if name not in ROUTINGS:
        raise InputError("routing", f"unknown routing {name!r}; use one of {', '.join(ROUTINGS)}")
    inv = [1.0 / max(s, 1) for s in slots]
    if name == "jsq":

        def jsq(load: list[int], g: int) -> int:
            return min(groups[g], key=lambda r: load[r] * inv[r])

        return jsq
    state = [-1] * len(groups)

    def round_robin(load: list[int], g: int) -> int:
        members = groups[g]
        state[g] = (state[g] + 1) % len(members)
        return members[state[g]]

    return round_robin
