"""The batcher scores the leads of concurrent requests in one model call, each request gets its
own leads' answers, and the leads per call are counted (`leadscore_model_call_leads`)."""

from __future__ import annotations

import asyncio

import numpy as np
import orjson

from features.policy.rules import Policy
from serving import metrics
from serving.batcher import ScoringBatcher, score_leads
from serving.leads import read_body, read_for_model
from tests.serving.conftest import demo_records


def _observed() -> tuple[float, float]:
    """(model calls, leads) the histogram has counted so far."""
    samples = {s.name: s.value for s in metrics.BATCH_LEADS.collect()[0].samples}
    return samples["leadscore_model_call_leads_count"], samples["leadscore_model_call_leads_sum"]


def test_concurrent_requests_share_one_model_call(scoring_app, trained_model):
    loaded = scoring_app.app.state.services.models.require()
    policy = Policy()
    records = demo_records(trained_model, 6)
    requests = [[records[0]], [records[1], records[2]], [records[3]], [records[4], records[5]]]
    batcher = ScoringBatcher(max_batch_leads=64, inline_leads=20)
    calls, leads = _observed()

    async def all_at_once() -> list[list[dict]]:
        return await asyncio.gather(*(batcher.score(loaded, r, policy) for r in requests))

    answers = asyncio.run(all_at_once())
    assert batcher.calls == 1
    assert _observed() == (calls + 1, leads + 6)
    for request, answer in zip(requests, answers, strict=True):
        alone = score_leads(loaded, request, policy)
        assert [a["lead_id"] for a in answer] == [r["lead_id"] for r in request]
        assert [a["probability"] for a in answer] == [a["probability"] for a in alone]
        assert [a["decision"] for a in answer] == [a["decision"] for a in alone]


def test_after_concurrent_requests_a_batch_waits_a_few_turns_for_those_on_their_way(
    scoring_app, trained_model
):
    """Under concurrency the next batch gathers the requests that come in over the next
    `GATHER_TURNS` turns of the loop (the last batch's clients sending again); a worker that
    scored one request alone scores the next at once, as with one connection."""
    from serving.batcher import GATHER_TURNS, GATHER_WINDOW_SECONDS

    loaded = scoring_app.app.state.services.models.require()
    policy = Policy()
    records = demo_records(trained_model, 6)
    batcher = ScoringBatcher(max_batch_leads=64, inline_leads=20)

    async def after(turns: int, record: dict) -> list[dict]:
        for _ in range(turns):
            await asyncio.sleep(0)
        return await batcher.score(loaded, [record], policy)

    async def traffic() -> None:
        await asyncio.gather(after(0, records[0]), after(0, records[1]))  # concurrent: 1 call
        assert batcher.calls == 1
        # the next requests arrive a turn or two apart: one call for the three
        answers = await asyncio.gather(*(after(t, records[2 + t]) for t in range(3)))
        assert [a[0]["lead_id"] for a in answers] == [r["lead_id"] for r in records[2:5]]
        assert batcher.calls == 2
        assert batcher.gathers == 1  # the three's batch waited; the first pair's did not
        # alone again: a request arriving turns later is a call of its own
        await after(0, records[5])
        assert batcher.calls == 3 and batcher.gathers == 2
        await asyncio.gather(after(0, records[0]), after(GATHER_TURNS + 2, records[1]))
        assert batcher.calls == 5 and batcher.gathers == 2  # after a lone one: no waiting
        # a request after a quiet spell following a burst is scored at once
        await asyncio.gather(after(0, records[2]), after(0, records[3]))
        await asyncio.sleep(GATHER_WINDOW_SECONDS * 2)
        await after(0, records[4])
        assert batcher.calls == 7 and batcher.gathers == 2
        # nor does a batch wait when the leads waiting already fill it
        full = ScoringBatcher(max_batch_leads=2, inline_leads=20)
        full._last_jobs, full._last_end = 2, asyncio.get_running_loop().time()
        await asyncio.gather(*(full.score(loaded, [r], policy) for r in records[:2]))
        assert full.gathers == 0

    asyncio.run(traffic())


def test_a_request_larger_than_a_batch_is_its_own_call(scoring_app, trained_model):
    loaded = scoring_app.app.state.services.models.require()
    records = demo_records(trained_model, 5)
    batcher = ScoringBatcher(max_batch_leads=4, inline_leads=2)
    calls, leads = _observed()
    answer = asyncio.run(batcher.score(loaded, records, Policy()))
    assert [a["lead_id"] for a in answer] == [r["lead_id"] for r in records]
    assert batcher.calls == 1
    assert _observed() == (calls + 1, leads + 5)


def test_a_batch_scores_with_the_moments_validation_parsed(scoring_app, trained_model):
    """Each request's touchpoint moments, parsed once by validation, reach the model call of the
    batch in the leads' order (the scorer does not parse them again), with the same answers."""
    loaded = scoring_app.app.state.services.models.require()
    policy = Policy()
    records = demo_records(trained_model, 5)
    bodies = [[records[0], records[1]], [records[2]], [records[3], records[4]]]
    parsed = [read_body(orjson.dumps({"leads": body})) for body in bodies]
    for p in parsed:
        read_for_model(p, loaded, False)
    assert all(p.moments is not None and len(p.moments) > 0 for p in parsed)
    given: list = []
    scorer = loaded.scorer
    real = scorer.score_columns

    def spy(leads, **kwargs):
        given.append(kwargs.get("touch_moments"))
        return real(leads, **kwargs)

    batcher = ScoringBatcher(max_batch_leads=64, inline_leads=20)

    async def all_at_once() -> list[list[dict]]:
        return await asyncio.gather(
            *(batcher.score(loaded, p.leads, policy, p.moments) for p in parsed)
        )

    scorer.score_columns = spy
    try:
        answers = asyncio.run(all_at_once())
    finally:
        del scorer.score_columns
    assert batcher.calls == 1 and len(given) == 1
    assert np.array_equal(given[0], np.concatenate([p.moments for p in parsed]))
    for p, answer in zip(parsed, answers, strict=True):
        assert answer == score_leads(loaded, p.leads, policy)  # moments parsed by the scorer
