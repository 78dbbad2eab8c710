"""The model being served: loaded from the MLflow registry, swapped atomically on reload.

Requests take one reference to the current `LoadedModel` and use it to the end, so a reload never
mixes two models in one response and never drops a request. A failed load keeps the last good
model; the error is logged, counted in `leadscore_model_load_failures_total` and shown by /readyz.
A candidate is refused when a file differs from the hashes recorded at registration or when it
cannot reproduce its sample leads (`features.model.artifact.load_model_scorer`).

The first load runs in the background (`ModelStore.start` returns at once): the port opens and
/healthz answers while the registry is slow or down, and /readyz says why there is no model yet.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from serving import metrics
from serving.db import utcnow
from serving.redact import redact_text, redact_url
from serving.refresher import Refresher

log = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    """The model at the configured URI could not be loaded; the message says what to check.

    `registry_unreachable`: the registry or artifact store did not answer at all."""

    def __init__(self, message: str, registry_unreachable: bool = False) -> None:
        super().__init__(message)
        self.registry_unreachable = registry_unreachable


@dataclass(frozen=True)
class LoadedModel:
    scorer: Any  # features.model.scorer.LeadScorer
    name: str
    version: str
    alias: str | None
    uri: str
    loaded_at: datetime = field(default_factory=utcnow)
    warnings: tuple[str, ...] = ()  # e.g. registered without file hashes: files not checked

    @property
    def metadata(self) -> dict:
        return dict(getattr(self.scorer, "metadata", None) or {})


def parse_registry_uri(uri: str) -> tuple[str, str | None, str | None]:
    """`models:/name@alias` -> (name, alias, None); `models:/name/3` -> (name, None, "3");
    ("", None, None) for URIs that name no registered model (`features.model.artifact`
    reads them)."""
    from features.model.artifact import parse_model_uri

    ref = parse_model_uri(uri)
    return ("", None, None) if ref is None else (ref.name, ref.alias, ref.version)


def _find_scorer(python_model: Any) -> Any:
    """The LeadScorer inside the pyfunc wrapper (models-from-code keeps it on the python model).

    It must have `score_columns`, the method the batcher calls: a scorer without it fails here,
    at load, instead of on every request."""
    method = "score_columns"
    if hasattr(python_model, method):
        return python_model
    for attribute in ("scorer", "lead_scorer", "_scorer", "model"):
        candidate = getattr(python_model, attribute, None)
        if candidate is not None and hasattr(candidate, method):
            return candidate
    for candidate in vars(python_model).values():
        if hasattr(candidate, method):
            return candidate
    raise ModelLoadError(
        f"the MLflow model's python model ({type(python_model).__name__}) holds no LeadScorer; "
        "register a model trained with `leadscore train`"
    )


def load_from_mlflow(
    uri: str, tracking_uri: str, compile_model: bool = True, require_hashes: bool = False
) -> LoadedModel:
    """Resolve `uri` (alias -> version) in the registry and load that exact version, checked
    (file hashes, sample leads); a refusal or failure is a `ModelLoadError` without credentials."""
    from features.model.artifact import (
        MODEL_NAME,
        ModelRefused,
        load_model_scorer,
        registry_unreachable,
    )

    warnings: list[str] = []
    try:
        _, alias, _ = parse_registry_uri(uri)
        scorer = load_model_scorer(
            uri,
            tracking_uri,
            compile=compile_model,
            require_hashes=require_hashes,
            warn=warnings.append,
        )
    except ModelRefused as error:
        raise ModelLoadError(redact_text(str(error))) from error
    except Exception as error:
        raise ModelLoadError(
            redact_text(
                f"cannot load {uri} from the MLflow registry at {tracking_uri}: {error}. "
                "Check MLFLOW_TRACKING_URI and that a model is registered with that alias "
                "(`leadscore train` then `leadscore promote`)"
            ),
            registry_unreachable=registry_unreachable(error),
        ) from error
    for warning in warnings:
        log.warning("%s", redact_text(warning))
    meta = scorer.metadata
    return LoadedModel(
        scorer=scorer,
        name=str(meta.get("name") or MODEL_NAME),
        version=str(meta.get("version") or "local"),
        alias=alias,
        uri=uri,
        warnings=tuple(redact_text(w) for w in warnings),
    )


def current_registry_version(uri: str, tracking_uri: str) -> str | None:
    """The version an alias URI points at now (None for URIs without an alias)."""
    from features.model.artifact import resolve_version

    return resolve_version(uri, tracking_uri)


class ModelNotLoaded(LookupError):
    """No model is loaded yet (still loading, or every load failed so far)."""


class ModelStore:
    """Holds the current model; loads it in the background from `start`, retrying every
    `retry_seconds` until a first load succeeds, on reload, and (`poll_seconds` > 0) when the
    alias points at a new version. Both background loops are `Refresher`s."""

    def __init__(
        self,
        uri: str,
        tracking_uri: str,
        retry_seconds: float = 5.0,
        poll_seconds: float = 0.0,
        loader: Callable[[str, str], LoadedModel] = load_from_mlflow,
        version_probe: Callable[[str, str], str | None] = current_registry_version,
    ) -> None:
        self.uri = uri
        self.tracking_uri = tracking_uri
        self._loader = loader
        self._version_probe = version_probe
        self._load_lock = threading.Lock()
        self._stopped = threading.Event()
        self.retrying = Refresher("leadscore-model-retry", self._retry, retry_seconds)
        self.polling = (
            Refresher("leadscore-model-poll", self._poll, poll_seconds)
            if poll_seconds > 0
            else None
        )
        self.current: LoadedModel | None = None
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None
        self.registry_unreachable = False  # the last failure: no answer from the registry

    @property
    def ready(self) -> bool:
        return self.current is not None

    def not_ready_reason(self) -> str:
        """Why no model serves yet, for /readyz and the 503 of the scoring routes."""
        loading = f"loading model {redact_url(self.uri)}"
        if self.last_error is None:
            return f"{loading}: the first attempt is in progress"
        retrying = f"retrying every {self.retrying.interval:g} s"
        if self.registry_unreachable:
            return f"{loading}: registry unreachable, {retrying} ({self.last_error})"
        return f"{loading}: {self.last_error}; {retrying}"

    def status(self) -> dict[str, object]:
        """The model part of /readyz: what serves (and its warnings), or why nothing does."""
        current = self.current
        if current is None:
            return {"ok": False, "error": self.not_ready_reason()}
        check: dict[str, object] = {"ok": True, "name": current.name, "version": current.version}
        if current.warnings:
            check["warnings"] = list(current.warnings)
        if self.last_error:
            check["last_reload_error"] = self.last_error
        return check

    def require(self) -> LoadedModel:
        """The current model, or `ModelNotLoaded` saying why there is none."""
        current = self.current
        if current is None:
            raise ModelNotLoaded(f"no model loaded yet: {self.not_ready_reason()}")
        return current

    def load(self, stage: str = "reload") -> LoadedModel:
        """Load the model at the URI and swap it in; on failure keep the current one and raise.
        A load that ends after `stop` changes nothing and says nothing (`ModelLoadError`)."""
        with self._load_lock:
            try:
                loaded = self._loader(self.uri, self.tracking_uri)
            except Exception as error:
                if self._stopped.is_set():
                    raise self._abandoned(stage) from error
                message = redact_text(
                    str(error)
                    if isinstance(error, ModelLoadError)
                    else (f"cannot load {self.uri}: {type(error).__name__}: {error}")
                )
                self.last_error, self.last_error_at = message, utcnow()
                self.registry_unreachable = getattr(error, "registry_unreachable", False)
                metrics.MODEL_LOAD_FAILURES.labels(stage).inc()
                if self.current is not None:
                    log.error(
                        "model %s failed, still serving version %s: %s",
                        stage,
                        self.current.version,
                        message,
                    )
                else:
                    log.error("model %s failed (no model loaded yet): %s", stage, message)
                raise ModelLoadError(message, self.registry_unreachable) from error
            if self._stopped.is_set():
                raise self._abandoned(stage)
            previous = self.current
            self.current = loaded
            self.last_error = None
            self.registry_unreachable = False
            metrics.record_model(loaded.name, loaded.version)
            # Keep the new model out of full collections (a tail-latency spike), wherever it
            # was loaded: at start in the background, on reload or by polling.
            gc.freeze()
            log.info(
                "serving model %s version %s (was %s)",
                loaded.name,
                loaded.version,
                previous.version if previous else "none",
            )
            return loaded

    def start(self) -> None:
        """Load in the background, first at once, then every `retry_seconds` until it succeeds
        (readiness stays false meanwhile); start polling. Returns at once: the caller (the
        app's lifespan, and so the port) never waits for the registry."""
        self.retrying.start(immediately=True)
        if self.polling is not None:
            self.polling.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop both loops, waiting up to `timeout` s for each. A load still running then (a
        registry that does not answer) cannot be interrupted: it ends later without a trace,
        since the app, and the stream its log went to, may be gone by then."""
        self._stopped.set()
        self.retrying.stop(timeout)
        if self.polling is not None:
            self.polling.stop(timeout)

    def _abandoned(self, stage: str) -> ModelLoadError:
        return ModelLoadError(f"model {stage} of {redact_url(self.uri)} ended after stop: ignored")

    def _retry(self) -> None:
        if self.current is None:
            try:
                self.load("start")
            except ModelLoadError:
                return  # logged and counted by load(); try again at the next interval
        self.retrying.stop()  # loaded: nothing left to retry

    def _poll(self) -> None:
        if self.current is None:
            return  # still loading: the retry loop's job
        try:
            version = self._version_probe(self.uri, self.tracking_uri)
        except Exception as error:
            metrics.MODEL_LOAD_FAILURES.labels("poll").inc()
            # the refresher logs it (once per outage); MLflow's errors quote the registry's URL
            raise ModelLoadError(
                redact_text(f"cannot check {self.uri} for a new version: {error}")
            ) from None
        current = self.current
        if version is not None and current is not None and version != current.version:
            try:
                self.load("poll")
            except ModelLoadError:
                return  # logged and counted by load(); the last good model keeps serving
