"""Request and response bodies of the API, with the examples shown at /docs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
)
from pydantic_core import InitErrorDetails
from typing_extensions import TypedDict

from features.data.values import EARLIEST_MOMENT, LATEST_MOMENT, MOMENT_RANGE
from features.data.vocabulary import ACTIVITIES, CHANNELS
from features.policy.trend import Trend
from features.report.exploration import FIGURES as EXPLORATION_FIGURES

MAX_LEADS = 1000
MAX_ID_LENGTH = 200
# Numbers beyond a quadrillion are refused, not clipped: no deal, visit count or amount is that
# large, so such a value is a unit or typing error the CRM should fix, and clipping would score
# (and log) a number nobody sent. 1e308 would also overflow the features' sums to infinity.
MAX_NUMBER = 1e15
# Every text field refuses NUL (no supported database stores it: serving.bodies); the OpenAPI says
# so with these patterns (serving.app adds TEXT_PATTERN to every string without one).
TEXT_PATTERN = r"^[^\x00]*$"
# ... and not blank: at least one character that is neither whitespace nor a control character
# (Python's strip() also removes \x1c-\x1f, which a regex's \s does not match in pydantic-core
# or in JSON Schema: a reason of "\x1f" passed the schema and was refused by the route as blank).
ID_PATTERN = r"^[^\x00]*[^\s\x00-\x1f\x7f][^\x00]*$"
Role = Literal["scorer", "ops", "admin"]
# A finite number within +-MAX_NUMBER (NaN, Infinity and 1e309 are refused with a 422).
Number = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_NUMBER, le=MAX_NUMBER)]
AttributeValue = str | Number | bool | None


def as_whole_number(value: Any) -> Any:
    """3.0 as 3: JSON Schema's "integer" includes 3.0, so the API does too; with `Strict()`
    after it, 3.5, "3" and true stay refused. (Put `Field` bounds before it in `Annotated`, or
    pydantic writes them as "ge"/"le" in the JSON schema.)"""
    if value.__class__ is float and value.is_integer():
        return int(value)
    return value


# Ids are strings or integers (read as text), never booleans: `true` is not lead "1".
LeadId = (
    str
    | Annotated[int, Field(ge=-(2**63), le=2**63 - 1), BeforeValidator(as_whole_number), Strict()]
)


def _plausible(moment: datetime) -> datetime:
    if not EARLIEST_MOMENT <= moment <= LATEST_MOMENT:
        raise ValueError(
            f"timestamp {moment.isoformat()} is outside the plausible range; "
            f"expected a moment {MOMENT_RANGE}"
        )
    return moment


# A timestamp with a zone, between 1970-01-01 and 2100-01-01 (features.data.values).
Moment = Annotated[AwareDatetime, AfterValidator(_plausible)]

EXAMPLE_LEAD = {
    "lead_id": "L-10023",
    "attributes": {
        "Lead Source": "Google",
        "Lead Origin": "Landing Page Submission",
        "TotalVisits": 5,
        "Total Time Spent on Website": 1200,
        "Do Not Email": False,
    },
    "touchpoints": [
        {
            "occurred_at": "2026-11-20T09:30:00Z",
            "channel": "paid_search",
            "activity": "visit",
            "campaign": "brand-q4",
        },
        {
            "occurred_at": "2026-11-21T14:05:00+01:00",
            "channel": "email",
            "activity": "email_click",
            "campaign": "webinar-invite",
        },
        {
            "occurred_at": "2026-11-22T16:40:00Z",
            "channel": "direct",
            "activity": "pricing_page_view",
        },
    ],
    "as_of": "2026-11-23T08:00:00Z",
}


_NAMES_NOTE = (
    " Common spellings and the model's data config map are read as files read them; other "
    "values are read as 'other', with a warning in the answer (strict: the request is refused)."
)
# Unknown fields of a lead or a touchpoint are kept by validation (extra="allow") so that the
# answer can warn about them (serving.leads); they are then dropped, never scored.
_KEEP_UNKNOWN = ConfigDict(extra="allow")


class Touchpoint(TypedDict):
    """One marketing interaction of the lead (unknown fields: ignored, with a warning)."""

    # A TypedDict, not a model: a 1,000-lead request carries ~20,000 of them, and pydantic-core
    # validates dicts without building objects; channel and activity are read by serving.leads.
    __pydantic_config__ = _KEEP_UNKNOWN  # type: ignore[misc]

    occurred_at: Annotated[
        Moment, Field(description=f"When it happened, ISO 8601 with a zone, {MOMENT_RANGE}.")
    ]
    channel: Annotated[str, Field(description=f"One of {', '.join(CHANNELS)}." + _NAMES_NOTE)]
    activity: Annotated[str, Field(description=f"One of {', '.join(ACTIVITIES)}." + _NAMES_NOTE)]
    campaign: NotRequired[str | None]
    value: NotRequired[
        Annotated[
            Number | None,
            Field(
                description="Optional amount, e.g. an order or deal value (finite, at most 1e15)."
            ),
        ]
    ]


def _id_as_text(value: str | int) -> str:
    text = value.strip() if isinstance(value, str) else str(value)
    if not text:
        raise ValueError("lead_id is empty; expected a non-empty string such as 'L-10023'")
    if len(value if isinstance(value, str) else text) > MAX_ID_LENGTH:
        raise ValueError(f"lead_id is longer than {MAX_ID_LENGTH} characters; expected a CRM id")
    return text


_ID_SCHEMA = {
    "anyOf": [
        # a non-blank string (blank ids are refused), at most MAX_ID_LENGTH characters
        {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH, "pattern": ID_PATTERN},
        {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
    ]
}


class Lead(TypedDict):
    """A lead as the CRM knows it now (unknown fields: ignored, with a warning)."""

    # A TypedDict too: validated requests are plain dicts, ready for the scorer without a dump.
    __pydantic_config__ = _KEEP_UNKNOWN  # type: ignore[misc]

    lead_id: Annotated[
        LeadId,
        AfterValidator(_id_as_text),
        Field(
            description="The CRM's id of the lead (integers are read as text).",
            json_schema_extra=_ID_SCHEMA,
        ),
    ]
    attributes: NotRequired[
        Annotated[
            dict[str, AttributeValue],
            Field(
                description="Lead fields by their CRM name: strings, numbers, booleans or null. "
                "Names the model does not use are reported in the answer's warnings."
            ),
        ]
    ]
    touchpoints: NotRequired[list[Touchpoint]]
    created_at: NotRequired[
        Annotated[
            AwareDatetime | None,
            Field(description=f"When the lead was created ({MOMENT_RANGE})."),
        ]
    ]
    as_of: NotRequired[
        Annotated[
            AwareDatetime | None,
            Field(
                description=f"Score as of this time (default: now); not before created_at, "
                f"{MOMENT_RANGE}."
            ),
        ]
    ]


def _with_defaults(leads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every lead with all five keys (attributes {}, touchpoints [], created_at/as_of None);
    created_at and as_of plausible, and as_of not before created_at."""
    errors: list[InitErrorDetails] = []
    for index, lead in enumerate(leads):
        # 5 keys is the common case; unknown fields (kept for the warnings) make more
        if len(lead) != 5 or not (
            "touchpoints" in lead and "attributes" in lead and "as_of" in lead
            and "created_at" in lead
        ):  # fmt: skip
            if "attributes" not in lead:
                lead["attributes"] = {}
            if "touchpoints" not in lead:
                lead["touchpoints"] = []
            lead.setdefault("created_at", None)
            lead.setdefault("as_of", None)
        created_at, as_of = lead["created_at"], lead["as_of"]
        if created_at is None and as_of is None:
            continue
        for field, moment in (("created_at", created_at), ("as_of", as_of)):
            if moment is not None and not EARLIEST_MOMENT <= moment <= LATEST_MOMENT:
                errors.append(_moment_error(index, field, moment))
        if created_at is not None and as_of is not None and as_of < created_at:
            error = ValueError(
                f"as_of {as_of.isoformat()} is before created_at {created_at.isoformat()}; "
                "expected as_of at or after the lead's creation (or leave as_of out: now)"
            )
            errors.append(_error(index, "as_of", as_of, error))
    if errors:
        raise ValidationError.from_exception_data("Lead", errors)
    return leads


def _error(index: int, field: str, value: Any, error: ValueError) -> InitErrorDetails:
    return InitErrorDetails(type="value_error", loc=(index, field), input=value,
                            ctx={"error": error})  # fmt: skip


def _moment_error(index: int, field: str, moment: datetime) -> InitErrorDetails:
    error = ValueError(
        f"{field} {moment.isoformat()} is outside the plausible range; "
        f"expected a moment {MOMENT_RANGE}"
    )
    return _error(index, field, moment, error)


STRICT_DESCRIPTION = (
    "false (default): an invalid lead is rejected alone (its error in `results`, the others "
    "scored) and unknown channels or activities are read as 'other' with a warning; true: any "
    "of these refuses the whole request (422)."
)


class ScoreRequest(BaseModel):
    model_config = ConfigDict(
        extra="allow", json_schema_extra={"examples": [{"leads": [EXAMPLE_LEAD]}]}
    )

    leads: Annotated[list[Lead], AfterValidator(_with_defaults)] = Field(
        min_length=1,
        max_length=MAX_LEADS,
        description="1 to 1,000 leads; a lead_id given again is rejected.",
    )
    strict: bool = Field(False, description=STRICT_DESCRIPTION)


class _TouchpointText(TypedDict):
    """Touchpoint with `occurred_at` kept as text: the route checks and parses all the moments of a
    request in one vectorised call (`_LeadText`, `ScoreRequestText`); not in the OpenAPI."""

    __pydantic_config__ = _KEEP_UNKNOWN  # type: ignore[misc]

    occurred_at: str
    channel: str
    activity: str
    campaign: NotRequired[str | None]
    value: NotRequired[Number | None]


class _LeadText(TypedDict):
    __pydantic_config__ = _KEEP_UNKNOWN  # type: ignore[misc]

    lead_id: Annotated[LeadId, AfterValidator(_id_as_text)]
    attributes: NotRequired[dict[str, AttributeValue]]
    touchpoints: NotRequired[list[_TouchpointText]]
    created_at: NotRequired[AwareDatetime | None]
    as_of: NotRequired[AwareDatetime | None]


class ScoreRequestText(BaseModel):
    """`ScoreRequest` with touchpoint moments as text (the fast path of `POST /v1/score`).

    Anything it refuses, and any moment not in the plain ISO form, goes through `ScoreRequest`,
    whose answer (and error messages) are the reference."""

    model_config = ConfigDict(extra="allow")

    leads: Annotated[list[_LeadText], AfterValidator(_with_defaults)] = Field(
        min_length=1, max_length=MAX_LEADS
    )
    strict: bool = False


class Reason(BaseModel):
    feature: str = Field(description="The model feature behind the reason.")
    text: str = Field(description="The reason in plain words.")
    effect: float = Field(
        description="Score points this feature adds (+) or takes away (-) compared with a typical lead."
    )


class ModelRef(BaseModel):
    name: str
    version: str


class AmountReason(BaseModel):
    feature: str = Field(description="The fact behind the reason.")
    text: str = Field(
        description="The reason in plain words, e.g. 'Company size: 1001-5000: typical deals "
        "about 3.1x'."
    )
    effect: float = Field(
        description="Factor on the typical lead's deal amount (2.0: deals about twice as large)."
    )


class AmountInterval(BaseModel):
    low: float = Field(description="Lower end of the deal amount if won.")
    high: float = Field(description="Upper end of the deal amount if won.")
    level: float = Field(description="Share of won deals of leads like this inside (e.g. 0.8).")


class DealValue(BaseModel):
    """How much: the deal amount if the lead wins, learned from won deals' amounts."""

    expected_amount: float = Field(description="Expected (mean) deal amount if the lead wins.")
    interval: AmountInterval
    expected_value: float = Field(description="probability x expected_amount.")
    reasons: list[AmountReason] = Field(
        description="Up to three facts that make this lead's deal larger or smaller than the "
        "typical lead's."
    )


class TimeToClose(BaseModel):
    """How soon: learned from closing dates, leads still open counted as censored."""

    win_within_days: dict[str, float] = Field(
        description="Probability of closing won within 30, 60 and 90 days of the scoring moment "
        "(keys '30', '60', '90'); never lower for a longer horizon. The model's horizon equals "
        "`probability`.",
        examples=[{"30": 0.04, "60": 0.11, "90": 0.15}],
    )
    median_days_to_close: float = Field(
        description="Median days from the scoring moment to a win, for a win within the "
        "longest horizon."
    )


class FitEngagement(BaseModel):
    """Who the lead is and what it did, apart: two calibrated win probabilities, one from the
    lead's attributes only, one from its touchpoints only, and the grid cell they make."""

    fit: float = Field(
        description="Win probability of leads like this one by attributes only (company, "
        "title, country, ...); touchpoints never move it."
    )
    engagement: float = Field(
        description="Win probability of leads that did what this one did, by touchpoints only "
        "(and the lead's age they are counted against); attributes never move it."
    )
    fit_grade: Literal["A", "B", "C", "D"] = Field(
        description="Fit band: A the top 25% of held-out leads by fit, B the next 25%, ..."
    )
    engagement_level: int = Field(
        ge=1, le=4, description="Engagement band: 1 the top 25% of held-out leads, ... 4 the least."
    )
    grid: str = Field(
        description="fit_grade + engagement_level, A1 (best fit, most engaged) to D4.",
        examples=["B2"],
    )


class Confidence(BaseModel):
    """How much the score can be trusted: how many training leads were like this one."""

    label: Literal["low", "medium", "high"] = Field(
        description="low: fewer than 30 training snapshots like this lead (same band of "
        "probability, fit and engagement), its score is an extrapolation; high: 150 or more; "
        "medium between. GET /v1/model says how each label fared on held-out leads."
    )
    similar_leads: int = Field(
        ge=0, description="Training snapshots in this lead's cell of the score grid."
    )


class LeadScore(BaseModel):
    lead_id: str
    probability: float = Field(description="Calibrated probability that the lead closes won.")
    score: int = Field(ge=0, le=100, description="round(100 * probability).")
    grade: Literal["A", "B", "C", "D"]
    decision: Literal["sales", "nurture", "disqualify"]
    reasons_for: list[Reason] = Field(description="Up to three reasons raising the score.")
    reasons_against: list[Reason] = Field(description="Up to three reasons lowering the score.")
    policy_reasons: list[str] = Field(
        default_factory=list,
        description="Why the policy decided otherwise than the score alone, if it did: the hard "
        "rule that decided, or the exploration that sent the lead to sales.",
    )
    exploration: bool = Field(
        False,
        description="Sent to sales by the policy's exploration rate although its score is below "
        "the sales threshold, to measure how such leads turn out (`policy_reasons` says so in "
        "words). The draw depends on the lead id and the policy version only: the same lead "
        "gets the same answer under the same policy.",
        examples=[False],
    )
    previous_score: int | None = Field(
        None,
        ge=0,
        le=100,
        description="The lead's latest earlier score in the score log (null: never scored).",
        examples=[41],
    )
    previous_scored_at: datetime | None = Field(
        None,
        description="When that previous score was given (null: never scored).",
        examples=["2025-05-28T09:14:03.120000Z"],
    )
    trend: Trend = Field(
        "new",
        description="How the score moved since `previous_score`: improving / declining when it "
        "rose / fell by at least the policy's `trend_points` (default 5), steady for less, new "
        "for a lead never scored before, unknown when the score log could not be read.",
        examples=["improving"],
    )
    model: ModelRef
    segment: str = Field(
        "global",
        description="The model that scored the lead: its segment's value when training gave "
        "that segment a model of its own (`training.segment_by`), else 'global'.",
        examples=["global"],
    )
    confidence: Confidence | None = Field(
        None, description="How many training leads were like this one (null: the model has none)."
    )
    fit_engagement: FitEngagement | None = Field(
        None,
        description="Fit and engagement sub-scores and their A1-D4 grid cell (null: the model "
        "has none).",
    )
    deal_value: DealValue | None = Field(
        None, description="Deal amount if won, with an interval (null: the model has none)."
    )
    time_to_close: TimeToClose | None = Field(
        None, description="Chances of a win within 30/60/90 days (null: the model has none)."
    )


class ProblemEntry(BaseModel):
    """One problem of a request: where it is and what is expected."""

    lead_index: int | None = Field(None, description="Index of the lead (or outcome) in the body.")
    lead_id: str | None = Field(None, description="Its lead_id, when it has a readable one.")
    field: str | None = Field(None, description="Path of the field, e.g. touchpoints[1].channel.")
    message: str = Field(description="What is wrong.")
    expected: str | None = Field(None, description="What would be accepted.")


class Problem(BaseModel):
    """An error answer (`application/problem+json`, RFC 9457); `detail` and `errors` as before."""

    type: str = Field("about:blank", description="Always about:blank: `status` says it all.")
    title: str = Field(description="The HTTP status phrase, e.g. Unprocessable Entity.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="One line naming the (first) problem and what to do.")
    errors: list[ProblemEntry] | None = Field(
        None, description="Each problem of the request (validation problems only), at most 50."
    )
    errors_omitted: int | None = Field(None, description="How many more problems there were.")


class LeadError(BaseModel):
    detail: str = Field(description="One line naming the (first) problem of the lead.")
    errors: list[ProblemEntry] = Field(description="Each problem: field, message, expected.")


class LeadRejected(BaseModel):
    """A lead that was not scored: its problems (the request's other leads were scored)."""

    lead_index: int = Field(description="Its index in the request.")
    lead_id: str | None = Field(description="Its lead_id, when it has a readable one.")
    error: LeadError


class InputWarning(BaseModel):
    """Something in the request read otherwise than sent, or ignored: one entry per distinct
    value, with how often it came and the first leads it came in."""

    code: Literal["unknown_channel", "unknown_activity", "unknown_attribute", "unknown_field"]
    field: str = Field(description="Where, e.g. touchpoints[].channel, attributes, leads[].")
    value: str = Field(description="The name or value sent.")
    read_as: str | None = Field(description="What it was read as (None: ignored).")
    count: int = Field(description="How many times it came in the request.")
    lead_ids: list[str] = Field(description="The first (up to 5) leads it came in.")
    message: str


class ScoreResponse(BaseModel):
    request_id: str
    scored_at: datetime
    model: ModelRef
    policy_version: int | None = Field(
        None, description="Version of the qualification policy used."
    )
    results: list[LeadScore | LeadRejected] = Field(
        description="One per lead, in the request's order: its score, or why it was rejected."
    )
    rejected: int = Field(0, description="How many leads were rejected (not scored).")
    warnings: list[InputWarning] = Field(
        default_factory=list, description="Values read as 'other' and names ignored."
    )


def _figure(name: str, example: float | int | None) -> Any:
    return Field(description=EXPLORATION_FIGURES[name], examples=[example])


class ExplorationReport(BaseModel):
    """What the threshold misses (`features.report.exploration`)."""

    model_config = ConfigDict(populate_by_name=True)

    start: datetime = Field(alias="from", description="Scores from this moment.")
    end: datetime = Field(alias="to", description="Scores before this moment.")
    weeks: float = _figure("weeks", 12.86)
    held_back: int = _figure("held_back", 1800)
    held_back_per_week: float = _figure("held_back_per_week", 140.0)
    explored: int = _figure("explored", 90)
    explored_won: int = _figure("explored_won", 9)
    explored_lost: int = _figure("explored_lost", 51)
    explored_open: int = _figure("explored_open", 30)
    win_rate: float | None = _figure("win_rate", 0.15)
    win_rate_low: float | None = _figure("win_rate_low", 0.081)
    win_rate_high: float | None = _figure("win_rate_high", 0.261)
    forgone_wins_per_week: float | None = _figure("forgone_wins_per_week", 21.0)
    forgone_wins_per_week_low: float | None = _figure("forgone_wins_per_week_low", 11.3)
    forgone_wins_per_week_high: float | None = _figure("forgone_wins_per_week_high", 36.5)


class ModelInfo(BaseModel):
    name: str
    version: str
    alias: str | None
    uri: str
    loaded_at: datetime
    trained_at: str | None
    metrics: dict[str, Any]
    features: list[str]
    holdout_weeks: float | None = None
    training_data_end: str | None = Field(
        None, description="The end of the model's training data (outcomes known by then)."
    )
    outcomes_since_training: int | None = Field(
        None, description="Outcomes reported since the training data ended (null: unknown)."
    )
    segments: dict[str, Any] | None = Field(
        None,
        description="With segment models: the column, the values with a model of their own, "
        "and each segment's held-out figures (segment_<value>_roc_auc, _log_loss, _ece, the "
        "global model's on the same leads as segment_<value>_global_*, _own_model); null: one "
        "global model.",
    )
    confidence: dict[str, Any] | None = Field(
        None,
        description="The confidence labels: the similar-lead counts that make them (low below "
        "`low_below`, high from `high_from`) and how each fared on held-out leads "
        "(confidence_low_share, confidence_low_win_rate, confidence_low_mean_probability, "
        "confidence_low_ece, ...); null: the model has none.",
    )
    fit_engagement: dict[str, Any] | None = Field(
        None,
        description="The fit and engagement models: their share bands (probabilities above "
        "which a lead is A/B/C or 1/2/3) and holdout figures (fit_roc_auc, engagement_ece, "
        "grid_A1_share, grid_A1_win_rate, ...); null: the model has none.",
    )
    deal_value: dict[str, Any] | None = Field(
        None,
        description="The deal value model's holdout figures (value_spearman, "
        "value_interval_coverage, ...) and interval level; null: the model has none.",
    )
    time_to_close: dict[str, Any] | None = Field(
        None,
        description="The time-to-close model's horizons and holdout figures (timing_roc_auc_30d, "
        "timing_ece_30d, ...); null: the model has none.",
    )


class ReloadResult(BaseModel):
    name: str
    version: str
    previous_version: str | None
    changed: bool


class Outcome(BaseModel):
    lead_id: Annotated[
        LeadId,
        AfterValidator(_id_as_text),
        Field(description="The CRM's id of the lead.", json_schema_extra=_ID_SCHEMA),
    ]
    outcome: Literal["won", "lost"] = Field(description="How the deal closed.")
    closed_at: Moment = Field(description=f"When the deal closed, {MOMENT_RANGE}.")
    amount: float | None = Field(
        None,
        ge=0,
        le=MAX_NUMBER,
        allow_inf_nan=False,
        description="Deal amount (won deals), finite, at most 1e15.",
    )


class OutcomesRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "outcomes": [
                        {
                            "lead_id": "L-10023",
                            "outcome": "won",
                            "closed_at": "2026-12-02T10:00:00Z",
                            "amount": 12500.0,
                        }
                    ]
                }
            ]
        }
    )

    outcomes: list[Outcome] = Field(min_length=1, max_length=MAX_LEADS)


class OutcomeResult(BaseModel):
    lead_id: str
    status: Literal["created", "unchanged", "updated"]


class OutcomesResponse(BaseModel):
    results: list[OutcomeResult]


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: Literal["ready", "degraded", "not ready"] = Field(
        description="`degraded`: serving, but records the database refused wait in "
        "`dead_letters` for an operator"
    )
    checks: dict[str, Any] | None = Field(
        None, description="What each part says (model, database, writers): admin key only"
    )
    reason: Literal["starting"] | None = Field(
        None, description="`starting`: the process is up and the service is still loading"
    )


class NewKey(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=ID_PATTERN, examples=["hubspot"])
    role: Role


class CreatedKey(BaseModel):
    name: str
    role: Role
    key: str = Field(description="The key; store it now, it is not shown again.")


class KeyInfo(BaseModel):
    name: str
    role: Role
    key_prefix: str
    created_at: datetime
    revoked_at: datetime | None


# ---------------------------------------------------------------------------------------------
# Error answers (RFC 9457 problem details, serving.errors) and the answers of the policy routes


class HardRuleOut(BaseModel):
    fact: str
    decision: Literal["sales", "nurture", "disqualify"]
    reason: str


class GradeBandsOut(BaseModel):
    A: float
    B: float
    C: float


class PolicyOut(BaseModel):
    sales_threshold: float
    nurture_threshold: float
    grades: GradeBandsOut
    rules: list[HardRuleOut]
    rank_by: Literal["probability", "expected_value"] = Field(
        "probability",
        description="What fills sales' capacity: probability (sales_threshold) or "
        "expected_value (value_threshold).",
    )
    value_threshold: float | None = Field(
        None,
        description="With rank_by=expected_value: the lowest expected value (probability x "
        "expected deal amount, in `currency`) sent to sales.",
    )


class PolicyVersionOut(BaseModel):
    """One version of the qualification policy (0: the model's default, never saved)."""

    version: int
    source: Literal["model default", "saved"]
    policy: PolicyOut
    action: str = Field(description="default, set or rollback.")
    created_by: str | None
    created_at: datetime | None
    reason: str | None
    previous_version: int | None
    restored_version: int | None
    changes: list[str] = Field(description="What changed from the previous version, in words.")


class PolicyHistory(BaseModel):
    current_version: int
    versions: list[PolicyVersionOut] = Field(description="Newest first.")


class SimulationBasis(BaseModel):
    source: Literal["holdout", "recent"]
    leads: int
    weeks: float
    leads_per_week: float | None
    wins: float | None
    observed_outcomes: bool
    expected_values: bool = Field(
        False, description="Whether the leads carry an expected value (a deal value model)."
    )
    description: str


class ThresholdRow(BaseModel):
    """What sending scores at or above `threshold` to sales does (None: not defined, e.g. no
    lead sent)."""

    threshold: int | None = Field(description="The score threshold (None: ranked by value).")
    share_to_sales: float | None
    leads_per_week: float | None
    precision: float | None
    recall: float | None
    expected_wins: float | None
    lift: float | None = None
    expected_revenue: float | None = Field(
        None,
        description="Sum of the expected values (probability x expected deal amount) of the "
        "leads sent, per week, in `currency` (only with a deal value model).",
    )
    value_threshold: float | None = Field(
        None, description="Ranked by expected value: the lowest expected value sent."
    )
    rank_by: str | None = Field(None, description="The current policy's ranking.")
    sales_threshold: float | None = Field(None, description="The current policy's threshold.")
    version: int | None = Field(None, description="The current policy's version.")
    net_value_per_week: float | None = Field(None, description="When choosing by value.")


class Rankings(BaseModel):
    """Both rankings filling the same weekly capacity: what each sends and brings."""

    leads_per_week: float = Field(description="The capacity compared at (leads a week).")
    probability: ThresholdRow | None = Field(description="Sending the highest scores.")
    expected_value: ThresholdRow | None = Field(description="Sending the highest expected values.")


class Simulation(BaseModel):
    basis: SimulationBasis
    current: ThresholdRow
    rank_by: Literal["probability", "expected_value"] = "probability"
    chosen: ThresholdRow | None
    proposed_policy: PolicyOut | None
    currency: str | None = None
    weekly_capacity: float | None = None
    rankings: Rankings | None = Field(
        None, description="With expected values: both rankings at the same leads a week."
    )
    table: dict[str, list[float | None]] | None = Field(
        None, description="Every threshold 0-100: one list per column of ThresholdRow."
    )


class GradeWinRate(BaseModel):
    grade: Literal["A", "B", "C", "D"]
    leads: int
    wins: int
    win_rate: float | None


class GradeOutlook(BaseModel):
    """What a grade holds on the model's holdout (None: no lead, or the model lacks the part)."""

    grade: Literal["A", "B", "C", "D"]
    leads: int
    share: float | None = Field(description="Share of the holdout's leads in this grade.")
    win_rate: float | None = Field(description="Share of them that won (observed).")
    expected_value: float | None = Field(
        None, description="Mean expected value (probability x expected deal amount), in currency."
    )
    win_within_30d: float | None = Field(None, description="Mean chance of a win within 30 days.")
    win_within_60d: float | None = Field(None, description="Mean chance of a win within 60 days.")
    win_within_90d: float | None = Field(None, description="Mean chance of a win within 90 days.")
    median_days_to_close: float | None = Field(
        None, description="Median of the leads' median days to a win."
    )


class Monitoring(BaseModel):
    days: float
    recent_leads: int
    psi: float | None = Field(None, description="Population stability index against the holdout.")
    psi_status: str | None = None
    bins: dict[str, list[float]] | None = None
    recent_grades: dict[str, int] | None = None
    win_rate_by_grade: list[GradeWinRate] | None = None
    holdout_by_grade: list[GradeOutlook] | None = Field(
        None, description="Each grade of the policy in force on the model's holdout."
    )
    currency: str | None = Field(None, description="The policy's currency.")
    outcomes_known: int | None = None
