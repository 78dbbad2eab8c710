"""Dynamic batching: the leads of concurrent requests are scored in one model call.

A scikit-learn predict call has a fixed cost of a few milliseconds whatever the number of rows, so
under load one call for the leads of 16 waiting requests is far cheaper than 16 calls. There is no
waiting window: a request arriving at an idle worker is scored at once; requests arriving while a
batch is scored are taken together next. Batches of up to `inline_leads` leads are scored on the
event loop (inline: the worker has one core's worth of work either way, and a thread hop per
batch cost more than the scoring of a few leads); larger ones in a thread. After a batch of
several requests the next waits `GATHER_TURNS` turns of the loop for more to join.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from starlette.concurrency import run_in_threadpool

from features.policy.exploration import exploration_reason
from features.policy.rules import Policy
from serving import metrics
from serving.model_store import LoadedModel

# Under concurrent requests, the turns of the event loop a batch waits before it is taken: the
# answers of the last batch go out one after another and their clients' next requests come back
# the same way, so a batch taken at once held the first one or two of them. Waiting a few turns
# (no timer: each turn reads what has arrived) let them join: at 16 connections on 2 workers, 2.9
# -> 5.0 leads a model call, 1.10-1.15 -> 0.93-0.99 CPU ms a request, 1,607-1,693 -> 1,874-2,000
# requests/s (bench/serve.py's leads). A worker that scored one request alone last time (the
# 1-connection case), or whose last batch ended more than `GATHER_WINDOW_SECONDS` ago (a request
# after a quiet spell), or whose waiting leads already fill a batch, does not wait.
GATHER_TURNS = 4
GATHER_WINDOW_SECONDS = 0.01


class ScoringError(ValueError):
    """The model refused a lead's data; the message names the lead."""


@dataclass
class _Job:
    loaded: LoadedModel
    policy: Policy
    leads: list[dict]
    future: asyncio.Future = field(repr=False)
    policy_version: int = 0
    touch_moments: np.ndarray | None = field(default=None, repr=False)


def score_leads(
    loaded: LoadedModel,
    leads: list[dict],
    policy: Policy,
    touch_moments: np.ndarray | None = None,
    policy_version: int = 0,
) -> list[dict]:
    """Score validated leads and decide each under `policy` (pure: no I/O). `touch_moments`:
    every touchpoint's moment, when validation parsed them already; `policy_version` salts the
    exploration draw."""
    try:
        columns = loaded.scorer.score_columns(
            leads, policy=policy, touch_moments=touch_moments, policy_version=policy_version
        )
    except (ValueError, TypeError) as error:
        raise ScoringError(str(error)) from error
    model_ref = {"name": loaded.name, "version": loaded.version}
    if len(columns["probability"]) != len(leads):
        raise RuntimeError("the scorer returned a different number of rows than leads")
    results = [
        {
            "lead_id": lead["lead_id"],
            "probability": probability,
            "score": score,
            "grade": grade,
            "decision": decision,
            "reasons_for": reasons_for,
            "reasons_against": reasons_against,
            "policy_reasons": [rule]
            if rule
            else [exploration_reason(score, policy)]
            if explored
            else [],
            "exploration": explored,
            "model": model_ref,
        }
        for (
            lead,
            probability,
            score,
            grade,
            decision,
            reasons_for,
            reasons_against,
            rule,
            explored,
        ) in zip(
            leads,
            columns["probability"],
            columns["score"],
            columns["grade"],
            columns["decision"],
            columns["reasons_for"],
            columns["reasons_against"],
            columns["hard_rule"],
            columns["exploration"],
        )
    ]
    add_value_and_timing(results, columns, loaded.scorer)
    return results


def add_value_and_timing(results: list[dict], columns: dict[str, list], scorer: Any) -> None:
    """Each result's `segment` (the model that scored it), `confidence`, `fit_engagement`,
    `deal_value` and `time_to_close` (None when the model has no such part)."""
    value, timing = getattr(scorer, "value", None), getattr(scorer, "timing", None)
    subscores = getattr(scorer, "subscores", None)
    confidence = getattr(scorer, "confidence", None)
    segments = columns.get("segment")
    for i, result in enumerate(results):
        result["segment"] = "global" if segments is None else segments[i]
        result["confidence"] = (
            None
            if confidence is None
            else {
                "label": columns["confidence"][i],
                "similar_leads": columns["similar_leads"][i],
            }
        )
        result["fit_engagement"] = (
            None
            if subscores is None
            else {
                "fit": columns["fit_probability"][i],
                "engagement": columns["engagement_probability"][i],
                "fit_grade": columns["fit_grade"][i],
                "engagement_level": columns["engagement_level"][i],
                "grid": columns["grid"][i],
            }
        )
        result["deal_value"] = (
            None
            if value is None
            else {
                "expected_amount": columns["expected_amount"][i],
                "interval": {
                    "low": columns["amount_low"][i],
                    "high": columns["amount_high"][i],
                    "level": value.level,
                },
                "expected_value": columns["expected_value"][i],
                "reasons": columns["amount_reasons"][i],
            }
        )
        result["time_to_close"] = (
            None
            if timing is None
            else {
                "win_within_days": {
                    str(int(h)): columns[f"win_within_{int(h)}d"][i] for h in timing.horizons
                },
                "median_days_to_close": columns["median_days_to_close"][i],
            }
        )


class ScoringBatcher:
    def __init__(self, max_batch_leads: int = 64, inline_leads: int = 20) -> None:
        self.max_batch_leads = max_batch_leads
        self.inline_leads = inline_leads
        self._pending: list[_Job] = []
        self._drainer: asyncio.Task | None = None
        self.calls = 0  # model calls made (tests and metrics read it)
        self._last_jobs = 1  # requests in the last batch: more than one, the next one gathers
        self._last_end = float("-inf")  # when the last batch was scored (the loop's clock)
        self.gathers = 0  # batches that waited for more requests (tests read it)

    async def score(
        self,
        loaded: LoadedModel,
        leads: list[dict],
        policy: Policy,
        touch_moments: Any = None,
        policy_version: int = 0,
    ) -> list[dict]:
        if len(leads) > self.max_batch_leads:
            self.calls += 1
            metrics.BATCH_LEADS.observe(len(leads))
            return await run_in_threadpool(
                score_leads, loaded, leads, policy, touch_moments, policy_version
            )
        future = asyncio.get_running_loop().create_future()
        self._pending.append(_Job(loaded, policy, leads, future, policy_version, touch_moments))
        if self._drainer is None:
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def stop(self) -> None:
        """Wait for the batch being scored, if any (at shutdown uvicorn has already finished the
        requests, so normally there is none)."""
        drainer = self._drainer
        if drainer is not None:
            await drainer

    def _gathering(self) -> bool:
        """Whether the next batch waits `GATHER_TURNS` turns for more requests."""
        return (
            self._last_jobs > 1
            and asyncio.get_running_loop().time() - self._last_end < GATHER_WINDOW_SECONDS
            and sum(len(job.leads) for job in self._pending) < self.max_batch_leads
        )

    def _take(self) -> list[_Job]:
        first = self._pending[0]
        taken: list[_Job] = []
        size = 0
        for job in self._pending:
            if (
                job.loaded is not first.loaded
                or job.policy is not first.policy
                or job.policy_version != first.policy_version
            ):
                break
            if taken and size + len(job.leads) > self.max_batch_leads:
                break
            taken.append(job)
            size += len(job.leads)
        del self._pending[: len(taken)]
        return taken

    async def _drain(self) -> None:
        try:
            while self._pending:
                if self._gathering():  # concurrent requests: let those on their way join
                    self.gathers += 1
                    for _ in range(GATHER_TURNS):
                        await asyncio.sleep(0)
                jobs = self._take()
                self._last_jobs = len(jobs)
                await self._run(jobs)
                self._last_end = asyncio.get_running_loop().time()
                await asyncio.sleep(0)  # let requests that arrived meanwhile join the next batch
        finally:
            self._drainer = None

    async def _run(self, jobs: list[_Job]) -> None:
        leads = [lead for job in jobs for lead in job.leads]
        loaded, policy, version = jobs[0].loaded, jobs[0].policy, jobs[0].policy_version
        moments = _joined_moments(jobs)
        self.calls += 1
        metrics.BATCH_LEADS.observe(len(leads))
        try:
            if len(leads) <= self.inline_leads:
                # a few leads, from one request or several: a thread hop (and the interpreter
                # lock passed back and forth) costs more than they keep the loop
                results = score_leads(loaded, leads, policy, moments, version)
            else:
                results = await run_in_threadpool(
                    score_leads, loaded, leads, policy, moments, version
                )
        except Exception as error:
            if len(jobs) == 1:
                _settle(jobs[0].future, error=error)
                return
            # One request's bad lead must not fail the others: score them one by one.
            for job in jobs:
                try:
                    _settle(
                        job.future,
                        await run_in_threadpool(
                            score_leads, loaded, job.leads, policy, job.touch_moments, version
                        ),
                    )
                except Exception as own_error:
                    _settle(job.future, error=own_error)
            return
        start = 0
        for job in jobs:
            _settle(job.future, results[start : start + len(job.leads)])
            start += len(job.leads)


def _joined_moments(jobs: list[_Job]) -> np.ndarray | None:
    """The touchpoint moments validation parsed, of every job's leads in order (None unless every
    job has them: the scorer then parses the leads' own)."""
    if any(job.touch_moments is None for job in jobs):
        return None
    if len(jobs) == 1:
        return jobs[0].touch_moments
    return np.concatenate([job.touch_moments for job in jobs])


def _settle(future: asyncio.Future, result: Any = None, error: BaseException | None = None) -> None:
    if future.done():  # the client went away
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
