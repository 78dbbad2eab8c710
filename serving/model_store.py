"""The model being served: loaded from the MLflow registry, swapped atomically on reload.

Requests take one reference to the current `LoadedModel` and use it to the end, so a reload never
mixes two models in one response and never drops a request. A failed load keeps the last good
model; the error is logged, counted in `leadscore_model_load_failures_total` and shown by /readyz.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from serving import metrics
from serving.db import utcnow
from serving.refresher import Refresher

log = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    """The model at the configured URI could not be loaded; the message says what to check."""


@dataclass(frozen=True)
class LoadedModel:
    scorer: Any  # features.scoring.LeadScorer
    name: str
    version: str
    alias: str | None
    uri: str
    loaded_at: datetime = field(default_factory=utcnow)

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


def load_from_mlflow(uri: str, tracking_uri: str, compile_model: bool = True) -> LoadedModel:
    """Resolve `uri` (alias -> version) in the registry and load that exact version."""
    from features.model.artifact import MODEL_NAME, load_model_scorer

    try:
        _, alias, _ = parse_registry_uri(uri)
        scorer = load_model_scorer(uri, tracking_uri, compile=compile_model)
    except Exception as error:
        raise ModelLoadError(
            f"cannot load {uri} from the MLflow registry at {tracking_uri}: {error}. "
            "Check MLFLOW_TRACKING_URI and that a model is registered with that alias "
            "(`leadscore train` then `leadscore promote`)"
        ) from error
    meta = scorer.metadata
    return LoadedModel(
        scorer=scorer,
        name=str(meta.get("name") or MODEL_NAME),
        version=str(meta.get("version") or "local"),
        alias=alias,
        uri=uri,
    )


def current_registry_version(uri: str, tracking_uri: str) -> str | None:
    """The version an alias URI points at now (None for URIs without an alias)."""
    from features.model.artifact import resolve_version

    return resolve_version(uri, tracking_uri)


class ModelNotLoaded(LookupError):
    """No model is loaded yet (still loading, or every load failed so far)."""


class ModelStore:
    """Holds the current model; loads it at start, on reload, and in the background: retrying
    every `retry_seconds` until a first load succeeds, and (`poll_seconds` > 0) checking the alias
    for a new version. Both background loops are `Refresher`s."""

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
        self.retrying = Refresher("leadscore-model-retry", self._retry, retry_seconds)
        self.polling = (
            Refresher("leadscore-model-poll", self._poll, poll_seconds)
            if poll_seconds > 0
            else None
        )
        self.current: LoadedModel | None = None
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None

    @property
    def ready(self) -> bool:
        return self.current is not None

    def require(self) -> LoadedModel:
        """The current model, or `ModelNotLoaded` saying why there is none."""
        current = self.current
        if current is None:
            raise ModelNotLoaded(f"no model loaded yet: {self.last_error or 'it is still loading'}")
        return current

    def load(self, stage: str = "reload") -> LoadedModel:
        """Load the model at the URI and swap it in; on failure keep the current one and raise."""
        with self._load_lock:
            try:
                loaded = self._loader(self.uri, self.tracking_uri)
            except Exception as error:
                message = (
                    str(error)
                    if isinstance(error, ModelLoadError)
                    else (f"cannot load {self.uri}: {type(error).__name__}: {error}")
                )
                self.last_error, self.last_error_at = message, utcnow()
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
                raise ModelLoadError(message) from error
            previous = self.current
            self.current = loaded
            self.last_error = None
            metrics.record_model(loaded.name, loaded.version)
            log.info(
                "serving model %s version %s (was %s)",
                loaded.name,
                loaded.version,
                previous.version if previous else "none",
            )
            return loaded

    def start(self) -> None:
        """Try to load now; if that fails, keep retrying in the background (readiness stays false)."""
        try:
            self.load("start")
        except ModelLoadError:
            pass
        if self.current is None:
            self.retrying.start()
        if self.polling is not None:
            self.polling.start()

    def stop(self) -> None:
        self.retrying.stop()
        if self.polling is not None:
            self.polling.stop()

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
        except Exception:
            metrics.MODEL_LOAD_FAILURES.labels("poll").inc()
            raise  # the refresher logs it (once per outage)
        current = self.current
        if version is not None and current is not None and version != current.version:
            try:
                self.load("poll")
            except ModelLoadError:
                return  # logged and counted by load(); the last good model keeps serving
