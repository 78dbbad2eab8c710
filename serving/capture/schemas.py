"""Bodies of `POST /v1/events` and `GET /v1/leads/{lead_id}`, `DELETE /v1/leads/{lead_id}`.

An event batch uses the vocabulary and the validators of `POST /v1/score` (`serving.schemas`):
the same lead id rules, touchpoints (`Touchpoint`, channel and activity spellings read by
`features.data.vocabulary`) and attribute values; it adds `attribute_changes`, each with the
moment the CRM changed it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, NotRequired

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

from features.data.vocabulary import normalise_activity, normalise_channel
from serving.schemas import (
    _ID_SCHEMA,
    MAX_LEADS,
    AttributeValue,
    LeadId,
    ModelRef,
    Touchpoint,
    _id_as_text,
)

_TOUCHPOINT_FIELDS = frozenset(Touchpoint.__annotations__)


def _canonical_touchpoints(touches: list[Touchpoint]) -> list[Touchpoint]:
    """Channels and activities read as files and /v1/score read them (synonyms; an unknown
    spelling is 'other'), so each stored fact has one spelling."""
    for index, touch in enumerate(touches):
        touch["channel"] = normalise_channel(touch["channel"])
        touch["activity"] = normalise_activity(touch["activity"])
        # Fields the capture does not store are not kept (nor checked for NUL characters).
        if touch.keys() - _TOUCHPOINT_FIELDS:
            touches[index] = {k: v for k, v in touch.items() if k in _TOUCHPOINT_FIELDS}  # type: ignore[call-overload]
    return touches


class AttributeChange(TypedDict):
    """One CRM field of the lead that changed."""

    name: Annotated[str, Field(min_length=1, max_length=200, description="The CRM field name.")]
    value: Annotated[AttributeValue, Field(description="Its new value (null: emptied).")]
    changed_at: Annotated[
        AwareDatetime, Field(description="When it changed in the CRM, ISO 8601 with a zone.")
    ]


class LeadEvents(TypedDict):
    """What happened to one lead: new touchpoints, changed attributes, its creation."""

    lead_id: Annotated[
        LeadId,
        AfterValidator(_id_as_text),
        Field(
            description="The CRM's id of the lead (integers are read as text).",
            json_schema_extra=_ID_SCHEMA,
        ),
    ]
    created_at: NotRequired[
        Annotated[AwareDatetime | None, Field(description="When the lead was created.")]
    ]
    attributes: NotRequired[
        Annotated[
            dict[str, AttributeValue],
            Field(description="Lead fields as the CRM knows them now (a change is kept when a "
                  "value differs from the last one received)."),
        ]
    ]  # fmt: skip
    attribute_changes: NotRequired[list[AttributeChange]]
    touchpoints: NotRequired[Annotated[list[Touchpoint], AfterValidator(_canonical_touchpoints)]]


class EventsRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "leads": [
                        {
                            "lead_id": "L-10023",
                            "touchpoints": [
                                {
                                    "occurred_at": "2026-11-20T09:30:00Z",
                                    "channel": "paid_search",
                                    "activity": "visit",
                                    "campaign": "brand-q4",
                                }
                            ],
                            "attribute_changes": [
                                {
                                    "name": "Lead Origin",
                                    "value": "API",
                                    "changed_at": "2026-11-20T10:00:00Z",
                                }
                            ],
                        }
                    ]
                }
            ]
        }
    )

    leads: list[LeadEvents] = Field(
        min_length=1, max_length=MAX_LEADS, description="1 to 1,000 leads."
    )


class EventsAccepted(BaseModel):
    received_at: datetime = Field(description="The moment the service received these events.")
    leads: int
    touchpoints: int
    attribute_changes: int
    attributes: int


class HistoricScore(BaseModel):
    scored_at: datetime
    score: int
    probability: float
    grade: str
    decision: str
    model: ModelRef
    policy_version: int | None
    request_id: str


class LeadOutcome(BaseModel):
    outcome: Literal["won", "lost"]
    closed_at: datetime
    amount: float | None
    reported_at: datetime


class Captured(BaseModel):
    created_at: datetime | None
    first_received_at: datetime
    attribute_changes: int = Field(description="Attribute values held (each change once).")
    touchpoints: int


class LeadHistory(BaseModel):
    lead_id: str
    scores: list[HistoricScore] = Field(description="Every score given, oldest first.")
    outcome: LeadOutcome | None
    captured: Captured | None = Field(description="What capture holds of the lead, if anything.")


class Erased(BaseModel):
    lead_id: str
    rows_deleted: dict[str, int] = Field(description="Rows deleted per table.")
