"""The quota policy's conformance scenarios (tests/conformance/quotas.json,
written from the Rust host's decisions): this package must decide every step
alike, in memory and in the machine's SQLite file."""

import json

import pytest

from api_entreprise._policy import parse_quota, quota_keys, server_words, token_id
from api_entreprise._quota import MemoryStore, SqliteStore
from conftest import ROOT

SCENARIOS = json.loads((ROOT / "tests/conformance/quotas.json").read_text(encoding="utf-8"))


def decide(scenario, store):
    """This package's decisions for every step of ``scenario`` in ``store``."""
    ip_quotas = [parse_quota(q) for q in scenario["ip_quotas"]]
    jti = token_id(scenario["token"]) if "token" in scenario else None
    out = []
    for step in scenario["steps"]:
        if "acquire" in step:
            keys, _ = quota_keys(step["acquire"], ip_quotas, jti)
            names = [k[0] for k in keys]
            denied = store.acquire(keys, step["at"])
            if denied is None:
                out.append({"keys": names, "admitted": True})
            else:
                assert denied[0] == "full", denied
                out.append({"keys": names, "admitted": False, "refused_by": denied[1], "retry_after_ms": denied[2]})
        else:
            answer = step["answer"]
            _, group = quota_keys(answer["path"], ip_quotas, jti)
            if group:
                for word in server_words(answer["status"], answer["headers"], step["at"]):
                    store.server_said(group, word, step["at"])
            out.append(None)
    return out


def expected(expect, kind):
    """What ``kind`` of store must decide: the SQLite store counts in buckets,
    and where it decides otherwise the step says it in ``in_buckets``."""
    if expect is None:
        return None
    exact = {k: v for k, v in expect.items() if k != "in_buckets"}
    return expect["in_buckets"] if kind == "sqlite" and "in_buckets" in expect else exact


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_every_quota_scenario_is_decided_as_the_rust_host_decides_it(kind, tmp_path):
    steps = 0
    for i, scenario in enumerate(SCENARIOS["scenarios"]):
        store = MemoryStore() if kind == "memory" else SqliteStore(tmp_path / f"q{i}.sqlite3", given_clock=True)
        ours = decide(scenario, store)
        store.close()
        for n, (step, decision) in enumerate(zip(scenario["steps"], ours)):
            steps += 1
            assert decision == expected(step.get("expect"), kind), f"{scenario['name']}, step {n}"
    assert steps >= 60


def test_api_entreprise_ip_quota_is_read_as_the_rust_host_reads_it():
    assert parse_quota(" 2000/10m ").period_seconds == 600
    assert parse_quota("1000/min").period_seconds == 60
    assert parse_quota("5/s").period_seconds == 1
    for bad in ["", "2000", "0/1m", "x/1m", "10/0m", "10/1d", "-1/1m", "٣/1m"]:
        with pytest.raises(ValueError, match="N/DURATION"):
            parse_quota(bad)


def test_a_state_file_that_is_not_a_quota_state_is_refused_with_what_to_do(tmp_path):
    file = tmp_path / "quotas.sqlite3"
    file.write_text("not a database, but long enough to have a header of one\n" * 20)
    with pytest.raises(OSError, match="not a quota state.*move it away"):
        SqliteStore(file)
    assert file.read_text().startswith("not a database"), "never reset"
