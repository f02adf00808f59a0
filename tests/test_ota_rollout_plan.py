"""Rollout plans and their state in the store (lanterna.ota.rollout), without nodes:
waves from --canary and --waves, the options' errors, one active rollout at a time,
node states with their timestamps, resume putting in-flight nodes back in line."""

from __future__ import annotations

import pytest

from lanterna.ota import rollout as ro
from lanterna.store.db import Store

NODES = [f"n{i:02d}" for i in range(20)]


def waves_of(out: dict[str, int]) -> list[list[str]]:
    w: dict[int, list[str]] = {}
    for node, i in out.items():
        w.setdefault(i, []).append(node)
    assert sorted(w) == list(range(len(w))), "waves are numbered without gaps"
    return [sorted(w[i]) for i in sorted(w)]


def test_canary_then_cumulative_waves():
    plan = ro.Plan(canary="1", waves=ro.parse_waves("10%,50%,100%"))
    w = waves_of(ro.assign_waves(NODES, plan))
    assert [len(x) for x in w] == [1, 1, 8, 10]
    assert w[0] == ["n00"] and sorted(sum(w, [])) == NODES


def test_canary_share_and_no_canary():
    w = waves_of(ro.assign_waves(NODES, ro.Plan(canary="15%", waves=(0.5, 1.0))))
    assert [len(x) for x in w] == [3, 7, 10]
    w = waves_of(ro.assign_waves(NODES, ro.Plan()))
    assert [len(x) for x in w] == [20]


def test_a_canary_larger_than_the_fleet_is_the_fleet():
    w = waves_of(ro.assign_waves(NODES[:3], ro.Plan(canary="5", waves=(0.5, 1.0))))
    assert w == [NODES[:3]]


@pytest.mark.parametrize(
    ("text", "needle"),
    [("10,100%", "--waves"), ("50%,20%,100%", "rising"), ("10%,50%", "ending at 100%")],
)
def test_bad_waves_name_the_option(text, needle):
    with pytest.raises(ro.RolloutError, match=needle):
        ro.parse_waves(text)


@pytest.mark.parametrize("text", ["0", "-1", "x", "150%", "0%"])
def test_bad_canary(text):
    with pytest.raises(ro.RolloutError, match="--canary"):
        ro.check_canary(text)


def test_max_failures_may_be_zero():
    assert ro.parse_share("0%", "--max-failures", zero=True) == 0
    with pytest.raises(ro.RolloutError, match="--max-failures"):
        ro.parse_share("101%", "--max-failures", zero=True)


def test_rollout_state_in_the_store(tmp_path):
    with Store(tmp_path / "s.db") as store:
        rs = ro.Rollouts(store)
        plan = ro.Plan(canary="1", waves=(1.0,), health_window=5)
        rid = rs.create(
            "b.ota", "ab" * 32, "0.2.0", 1000, {"site": "x"}, plan, ro.assign_waves(NODES[:4], plan)
        )
        with pytest.raises(ro.RolloutError, match=f"rollout {rid} is running"):
            rs.create("c.ota", "cd" * 32, "0.3.0", 1, {}, plan, {"n00": 0})
        assert rs.get()["id"] == rid and rs.plan(rs.get(rid)) == plan
        rs.set_node(rid, "n00", "downloading", progress=10)
        since = rs.nodes(rid)[0]["since"]
        rs.set_node(rid, "n00", "downloading", progress=60)
        n0 = rs.nodes(rid)[0]
        assert (n0["progress"], n0["since"]) == (60, since), "same state: since stays"
        rs.set_node(rid, "n01", "trial")
        rs.set_node(rid, "n02", "done", result=1)
        assert rs.requeue(rid) == 2
        assert ro.summary(rs.nodes(rid)) == {"pending": 3, "done": 1}
        rs.set_state(rid, "aborted", "by hand")
        assert rs.get()["state"] == "aborted"
        refused = rs.refuse("bad.ota", "manifest.sig: does not verify")
        assert rs.get()["id"] == refused and rs.get()["state"] == "refused"
        rid2 = rs.create("c.ota", "cd" * 32, "0.3.0", 1, {}, plan, {"n00": 0})
        assert rs.get()["id"] == rid2, "the active one first"
    with pytest.raises(ro.RolloutError, match="no rollout 99"), Store(tmp_path / "s.db") as s:
        ro.Rollouts(s).get(99)
