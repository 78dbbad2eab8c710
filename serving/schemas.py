"""Request and response bodies of the API, with the examples shown at /docs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from pydantic_core import InitErrorDetails
from typing_extensions import TypedDict

from features.data.vocabulary import ACTIVITIES, CHANNELS, lookup_activity, lookup_channel

MAX_LEADS = 1000
_CHANNELS = frozenset(CHANNELS)
_ACTIVITIES = frozenset(ACTIVITIES)
Role = Literal["scorer", "ops", "admin"]
AttributeValue = str | float | bool | None

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


class Touchpoint(TypedDict):
    """One marketing interaction of the lead."""

    # A TypedDict, not a model: a 1,000-lead request carries ~20,000 of them, and pydantic-core
    # validates dicts without building objects; channel and activity are checked per lead below.
    occurred_at: Annotated[
        AwareDatetime, Field(description="When it happened, ISO 8601 with a zone.")
    ]
    channel: Annotated[
        str, Field(description=f"One of {', '.join(CHANNELS)} (common spellings are accepted).")
    ]
    activity: Annotated[
        str, Field(description=f"One of {', '.join(ACTIVITIES)} (common spellings are accepted).")
    ]
    campaign: NotRequired[str | None]
    value: NotRequired[
        Annotated[float | None, Field(description="Optional amount, e.g. an order or deal value.")]
    ]


def _canonical(value: str, names: frozenset[str], lookup, what: str, expected: tuple[str, ...]):
    """(canonical name, None) or (None, error) for a channel or an activity."""
    if value in names:
        return value, None
    canonical = lookup(value)
    if canonical is None:
        return None, ValueError(f"unknown {what} {value!r}; expected one of {', '.join(expected)}")
    return canonical, None


def _check_touchpoints(touchpoints: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Canonical channel and activity names (common spellings accepted); campaign and value
    default to None. Unknown names are errors at `touchpoints[j].channel` / `.activity`."""
    errors: list[InitErrorDetails] = []
    for j, touch in enumerate(touchpoints):
        if len(touch) == 5 and touch["channel"] in _CHANNELS and touch["activity"] in _ACTIVITIES:
            continue  # the common case: canonical names, every field given
        for field, names, lookup, expected in _TOUCH_NAMES:
            value = touch[field]
            if value not in names:
                canonical, error = _canonical(value, names, lookup, field, expected)
                if error is not None:
                    errors.append(InitErrorDetails(type="value_error", loc=(j, field), input=value,
                                                   ctx={"error": error}))  # fmt: skip
                else:
                    touch[field] = canonical
        if len(touch) < 5:
            touch.setdefault("campaign", None)
            touch.setdefault("value", None)
    if errors:
        raise ValidationError.from_exception_data("Touchpoint", errors)
    return touchpoints


_TOUCH_NAMES = (
    ("channel", _CHANNELS, lookup_channel, CHANNELS),
    ("activity", _ACTIVITIES, lookup_activity, ACTIVITIES),
)


def _id_as_text(value: str | int) -> str:
    text = str(value).strip()
    if not text:
        raise ValueError("lead_id is empty; expected a non-empty string such as 'L-10023'")
    if len(text) > 200:
        raise ValueError("lead_id is longer than 200 characters; expected a CRM id")
    return text


class Lead(TypedDict):
    """A lead as the CRM knows it now."""

    # A TypedDict too: validated requests are plain dicts, ready for the scorer without a dump.
    lead_id: Annotated[
        str | int,
        AfterValidator(_id_as_text),
        Field(description="The CRM's id of the lead (numbers are read as text)."),
    ]
    attributes: NotRequired[
        Annotated[
            dict[str, AttributeValue],
            Field(description="Lead fields by their CRM name: strings, numbers, booleans or null."),
        ]
    ]
    touchpoints: NotRequired[Annotated[list[Touchpoint], AfterValidator(_check_touchpoints)]]
    created_at: NotRequired[
        Annotated[AwareDatetime | None, Field(description="When the lead was created.")]
    ]
    as_of: NotRequired[
        Annotated[AwareDatetime | None, Field(description="Score as of this time (default: now).")]
    ]


def _with_defaults(leads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every lead with all five keys (attributes {}, touchpoints [], created_at/as_of None)."""
    for lead in leads:
        if len(lead) < 5:
            if "attributes" not in lead:
                lead["attributes"] = {}
            if "touchpoints" not in lead:
                lead["touchpoints"] = []
            lead.setdefault("created_at", None)
            lead.setdefault("as_of", None)
    return leads


class ScoreRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"leads": [EXAMPLE_LEAD]}]})

    leads: Annotated[list[Lead], AfterValidator(_with_defaults)] = Field(
        min_length=1, max_length=MAX_LEADS, description="1 to 1,000 leads."
    )


class _TouchpointText(TypedDict):
    """Touchpoint with `occurred_at` kept as text: the route checks and parses all the moments of a
    request in one vectorised call (`_LeadText`, `ScoreRequestText`); not in the OpenAPI."""

    occurred_at: str
    channel: str
    activity: str
    campaign: NotRequired[str | None]
    value: NotRequired[float | None]


class _LeadText(TypedDict):
    lead_id: Annotated[str | int, AfterValidator(_id_as_text)]
    attributes: NotRequired[dict[str, AttributeValue]]
    touchpoints: NotRequired[Annotated[list[_TouchpointText], AfterValidator(_check_touchpoints)]]
    created_at: NotRequired[AwareDatetime | None]
    as_of: NotRequired[AwareDatetime | None]


class ScoreRequestText(BaseModel):
    """`ScoreRequest` with touchpoint moments as text (the fast path of `POST /v1/score`).

    Anything it refuses, and any moment not in the plain ISO form, goes through `ScoreRequest`,
    whose answer (and error messages) are the reference."""

    leads: Annotated[list[_LeadText], AfterValidator(_with_defaults)] = Field(
        min_length=1, max_length=MAX_LEADS
    )


class Reason(BaseModel):
    feature: str = Field(description="The model feature behind the reason.")
    text: str = Field(description="The reason in plain words.")
    effect: float = Field(
        description="Score points this feature adds (+) or takes away (-) compared with a typical lead."
    )


class ModelRef(BaseModel):
    name: str
    version: str


class LeadScore(BaseModel):
    lead_id: str
    probability: float = Field(description="Calibrated probability that the lead closes won.")
    score: int = Field(ge=0, le=100, description="round(100 * probability).")
    grade: Literal["A", "B", "C", "D"]
    decision: Literal["sales", "nurture", "disqualify"]
    reasons_for: list[Reason] = Field(description="Up to three reasons raising the score.")
    reasons_against: list[Reason] = Field(description="Up to three reasons lowering the score.")
    policy_reasons: list[str] = Field(
        default_factory=list, description="Hard rules of the policy that decided, if any."
    )
    model: ModelRef


class ScoreResponse(BaseModel):
    request_id: str
    scored_at: datetime
    model: ModelRef
    policy_version: int | None = Field(
        None, description="Version of the qualification policy used."
    )
    results: list[LeadScore]


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


class ReloadResult(BaseModel):
    name: str
    version: str
    previous_version: str | None
    changed: bool


class Outcome(BaseModel):
    lead_id: str | int
    outcome: Literal["won", "lost"] = Field(description="How the deal closed.")
    closed_at: AwareDatetime
    amount: float | None = Field(None, ge=0, description="Deal amount (won deals).")

    @field_validator("lead_id")
    @classmethod
    def _id_as_text(cls, value: str | int) -> str:
        text = str(value).strip()
        if not text:
            raise ValueError("lead_id is empty; expected a non-empty string such as 'L-10023'")
        if len(text) > 200:
            raise ValueError("lead_id is longer than 200 characters; expected a CRM id")
        return text


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
    status: Literal["ready", "not ready"]
    checks: dict[str, Any]


class NewKey(BaseModel):
    name: str = Field(min_length=1, max_length=100, examples=["hubspot"])
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
