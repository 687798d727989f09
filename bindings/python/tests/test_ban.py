"""A ban seen, not guessed, against the sandbox's own ban (a process of its
own, ``api-entreprise sandbox --ban``): the API stops answering right after
this client's per-IP window filled, and the next calls are held."""

import concurrent.futures
import pytest

from api_entreprise import ApiEntreprise, MemoryStore, ProbablyBannedError, Quota, QuotaExceededError
from api_entreprise import _ban

from conftest import SANDBOX_TOKEN, Sandbox

TRACE = dict(context="aides publiques", recipient="13002526500013", object="dossier 42")


@pytest.fixture
def banning_sandbox():
    # The API's own count: past 3 requests a minute, no answer for an hour.
    s = Sandbox(["--ban", "3/1m", "--ban-seconds", "3600"])
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def fresh_watch(monkeypatch):
    watch = _ban.BanWatch()
    monkeypatch.setattr("api_entreprise.client.BAN_WATCH", watch)
    return watch


def test_calls_unanswered_right_after_the_window_filled_are_a_probable_ban_and_the_next_are_held(
    banning_sandbox, fresh_watch
):
    # This client's quota (6 a minute) is above the API's: a
    # misconfiguration, or another machine behind the same IP.
    api = ApiEntreprise(
        token=SANDBOX_TOKEN,
        base_url=banning_sandbox.base_url,
        quota_store=MemoryStore(),
        ip_quotas=[Quota(6, 60)],
    )
    with concurrent.futures.ThreadPoolExecutor(7) as pool:
        futures = [pool.submit(api.call, "insee_unites_legales", ["552049447"], **TRACE) for _ in range(7)]
        outcomes = [f.exception() for f in futures]
    answered = sum(1 for o in outcomes if o is None)
    full = sum(1 for o in outcomes if isinstance(o, QuotaExceededError))
    assert answered == 3, outcomes
    assert full == 1, outcomes
    ban = fresh_watch.ban
    assert ban is not None, "a probable ban after 3 silences right after the full window"
    assert (ban.until - ban.since).total_seconds() == 12 * 3600

    sent = len(banning_sandbox.requests())
    with pytest.raises(ProbablyBannedError) as refused:
        api.call("insee_unites_legales", ["552049447"], **TRACE)
    assert "right after the per-IP quota 6/1m full: the IP is probably banned until" in str(refused.value)
    assert len(banning_sandbox.requests()) == sent, "held: nothing more was sent"
    assert sum(1 for r in banning_sandbox.requests() if r["status"] == 0) == 3
