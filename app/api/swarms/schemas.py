"""Request and response shapes of swarm sessions and their share links."""
from marshmallow import Schema, fields, validate

from app.api.common import StrictSchema, UtcDateTime, list_args
from app.models import SWARM_STATUSES
from app.models.swarm import MEMBER_STATUSES
from app.services.swarm_shares import DEFAULT_EXPIRES_IN, MAX_EXPIRES_IN, MIN_EXPIRES_IN
from app.services.swarms import MAX_MEMBERS, MAX_ROUNDS

_agent_ref = fields.String(validate=validate.Length(min=1, max=200))


class SwarmCreateSchema(StrictSchema):
    goal = fields.String(required=True, validate=validate.Length(min=1, max=20_000))
    agents = fields.List(_agent_ref, required=True, validate=validate.Length(min=2, max=MAX_MEMBERS), metadata={
        "description": f"The member agents, by id or name: 2 to {MAX_MEMBERS}, each once"})
    coordinator = fields.String(allow_none=True, validate=validate.Length(min=1, max=200), metadata={
        "description": "An agent (id or name) that splits the goal and writes the synthesis; without one every "
                       "member gets the goal and the synthesis is a merge of their answers"})
    max_rounds = fields.Integer(load_default=1, strict=True, validate=validate.Range(min=1, max=MAX_ROUNDS))
    max_parallel = fields.Integer(strict=True, validate=validate.Range(min=1, max=100), metadata={
        "description": "Member turns at once (default: as many as members, up to MAGNET_SWARM_MAX_PARALLEL, "
                       "which also bounds it)"})
    budget_usd = fields.Float(allow_none=True, validate=validate.Range(min=0, min_inclusive=False, max=1_000_000),
                              metadata={"description": "Cost budget: once spent, no further member or round starts"})


SwarmListArgs = list_args("status", "finished_at", name="SwarmListArgs", extra={
    "status": fields.String(validate=validate.OneOf(SWARM_STATUSES)),
    "agent": fields.String(validate=validate.Length(min=1, max=200),
                           metadata={"description": "Swarms this agent (id or name) took part in or coordinated"}),
})


class SwarmUsageSchema(Schema):
    prompt_tokens = fields.Integer(required=True)
    completion_tokens = fields.Integer(required=True)


class SwarmMemberSchema(Schema):
    id = fields.String(required=True)
    round = fields.Integer(required=True)
    position = fields.Integer(required=True)
    agent_id = fields.String(required=True)
    agent_name = fields.String(required=True)
    conversation_id = fields.String(allow_none=True, metadata={
        "description": "Where the member's turns are saved; the usage ledger's rows name it"})
    subtask = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": list(MEMBER_STATUSES)})
    progress = fields.Float(required=True, metadata={"description": "0 pending, 0.5 working, 1 ended"})
    result = fields.String(allow_none=True)
    error = fields.Dict(allow_none=True, metadata={"description": "{code, message} of a failed or skipped member"})
    cost = fields.Float(required=True)
    usage = fields.Nested(SwarmUsageSchema, required=True)
    started_at = UtcDateTime(allow_none=True)
    finished_at = UtcDateTime(allow_none=True)


class SwarmAgentSchema(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    conversation_id = fields.String(required=True)


class SwarmProgressSchema(Schema):
    round = fields.Integer(required=True)
    rounds_total = fields.Integer(required=True)
    rounds_done = fields.Integer(required=True)
    members_total = fields.Integer(required=True)
    members_done = fields.Integer(required=True)
    members_failed = fields.Integer(required=True)
    percent = fields.Float(required=True)


class SwarmCitationSchema(Schema):
    index = fields.Integer(required=True, metadata={"description": "The [n] in the synthesis"})
    member_id = fields.String()
    agent_name = fields.String(required=True)
    round = fields.Integer(required=True)
    cited = fields.Boolean(required=True)


class SwarmSchema(Schema):
    id = fields.String(required=True)
    goal = fields.String(required=True)
    agents = fields.List(fields.Nested(SwarmAgentSchema), required=True)
    coordinator_agent_id = fields.String(allow_none=True)
    coordinator_name = fields.String(allow_none=True)
    coordinator_conversation_id = fields.String(allow_none=True)
    max_rounds = fields.Integer(required=True)
    max_parallel = fields.Integer(required=True)
    budget_usd = fields.Float(allow_none=True)
    status = fields.String(required=True, metadata={"enum": list(SWARM_STATUSES)})
    stop_reason = fields.String(allow_none=True, metadata={
        "description": "Why it stopped early: budget_exhausted, cancelled, worker_lost, error"})
    message = fields.String(allow_none=True)
    cost = fields.Float(required=True, metadata={"description": "USD, every member and coordinator turn"})
    usage = fields.Nested(SwarmUsageSchema, required=True)
    progress = fields.Nested(SwarmProgressSchema, required=True)
    synthesis = fields.String(allow_none=True)
    synthesis_by = fields.String(allow_none=True, metadata={"enum": ["coordinator", "merge", None]})
    citations = fields.List(fields.Nested(SwarmCitationSchema), required=True)
    members = fields.List(fields.Nested(SwarmMemberSchema))
    cancel_requested = fields.Boolean(required=True)
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)
    started_at = UtcDateTime(allow_none=True)
    finished_at = UtcDateTime(allow_none=True)


class ShareCreateSchema(StrictSchema):
    expires_in = fields.Integer(load_default=DEFAULT_EXPIRES_IN, strict=True,
                                validate=validate.Range(min=MIN_EXPIRES_IN, max=MAX_EXPIRES_IN),
                                metadata={"description": f"Seconds the link works ({MIN_EXPIRES_IN} to "
                                                         f"{MAX_EXPIRES_IN}; default {DEFAULT_EXPIRES_IN})"})


class ShareSchema(Schema):
    id = fields.String(required=True)
    swarm_id = fields.String(required=True)
    state = fields.String(required=True, metadata={"enum": ["active", "expired", "revoked"]})
    expires_at = UtcDateTime(required=True)
    revoked_at = UtcDateTime(allow_none=True)
    created_at = UtcDateTime(required=True)
    token = fields.String(metadata={"description": "Shown once, when the link is made"})
    url = fields.String(metadata={"description": "The public path: GET it without a key"})


class SharedMemberSchema(Schema):
    agent_name = fields.String(required=True)
    round = fields.Integer(required=True)
    subtask = fields.String(required=True)
    status = fields.String(required=True)
    result = fields.String(allow_none=True)
    error = fields.String(allow_none=True)


class SharedCitationSchema(Schema):
    index = fields.Integer(required=True)
    agent_name = fields.String(required=True)
    round = fields.Integer(required=True)
    cited = fields.Boolean(required=True)


class SharedSwarmSchema(Schema):
    id = fields.String(required=True)
    goal = fields.String(required=True)
    status = fields.String(required=True)
    stop_reason = fields.String(allow_none=True)
    message = fields.String(allow_none=True)
    synthesis = fields.String(allow_none=True)
    citations = fields.List(fields.Nested(SharedCitationSchema), required=True)
    members = fields.List(fields.Nested(SharedMemberSchema), required=True)
    created_at = UtcDateTime(required=True)
    finished_at = UtcDateTime(allow_none=True)
    expires_at = UtcDateTime(required=True)


class ShareListEnvelopeSchema(Schema):
    success = fields.Boolean(required=True)
    data = fields.List(fields.Nested(ShareSchema), required=True)
