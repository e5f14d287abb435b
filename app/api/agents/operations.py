"""Agent operations: heartbeat (what waits for an agent), wake, and the leaderboard."""
from flask.views import MethodView
from marshmallow import Schema, fields, validate

from app.api.agents.routes import blp
from app.api.common import StrictSchema, UtcDateTime, envelope, ok
from app.api.tasks.schemas import TaskSchema
from app.auth import requires
from app.services import agent_leaderboard, agent_presence
from app.services.agent_presence import PRESENCES


class HeartbeatSchema(Schema):
    agent_id = fields.String(required=True)
    presence = fields.String(required=True, metadata={"enum": list(PRESENCES)})
    last_seen = UtcDateTime(allow_none=True)
    pending_tasks = fields.List(fields.Nested(TaskSchema), required=True,
                                metadata={"description": "Assigned and due, in the order they will run"})
    unread_messages = fields.List(fields.Dict(), required=True, metadata={"description": "Messages from other agents"})
    task_stats = fields.Dict(required=True)


class CheckInSchema(HeartbeatSchema):
    queued = fields.Integer(required=True, metadata={"description": "Worker jobs queued for the pending tasks"})
    messages_queued = fields.Integer(required=True, metadata={
        "description": "Unread messages queued for answering: each gets a turn of the agent, whose answer goes "
                       "back to the sender as a reply"})
    woken_at = UtcDateTime(allow_none=True)
    wake_reason = fields.String(allow_none=True)


class WakeSchema(StrictSchema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class LeaderboardArgs(Schema):
    period = fields.String(load_default="week", validate=validate.OneOf(tuple(agent_leaderboard.PERIODS)),
                           metadata={"description": "day, week or month (rolling, up to now), or all"})


class EvaluationScoreSchema(Schema):
    evaluation_id = fields.String(required=True)
    run_id = fields.String(required=True)
    finished_at = UtcDateTime(allow_none=True)
    score = fields.Float(allow_none=True, metadata={"description": "Mean of the run's metric scores"})
    metrics = fields.Dict(required=True)


class LeaderboardRowSchema(Schema):
    rank = fields.Integer(required=True)
    agent_id = fields.String(required=True)
    name = fields.String(required=True)
    role = fields.String(allow_none=True)
    tasks_completed = fields.Integer(required=True)
    tasks_failed = fields.Integer(required=True)
    success_rate = fields.Float(allow_none=True)
    median_task_latency_ms = fields.Float(allow_none=True)
    cost = fields.Float(required=True)
    conversations = fields.Integer(required=True)
    no_answer_rate = fields.Float(allow_none=True)
    evaluation = fields.Nested(EvaluationScoreSchema, allow_none=True)


class LeaderboardSchema(Schema):
    period = fields.String(required=True)
    start = UtcDateTime(allow_none=True)
    end = UtcDateTime(required=True)
    agents = fields.List(fields.Nested(LeaderboardRowSchema), required=True)


@blp.route("/leaderboard")
class Leaderboard(MethodView):
    @requires("viewer")
    @blp.arguments(LeaderboardArgs, location="query")
    @blp.response(200, envelope(LeaderboardSchema))
    def get(self, args):
        """Rank agents over a period: tasks completed, success rate, latency, cost, conversations, evaluation"""
        return ok(agent_leaderboard.leaderboard(args["period"]))


@blp.route("/<agent_id>/heartbeat")
class Heartbeat(MethodView):
    @requires("viewer")
    @blp.response(200, envelope(HeartbeatSchema))
    def get(self, agent_id):
        """What waits for the agent: its pending tasks and unread messages (reading changes nothing)"""
        return ok(agent_presence.heartbeat(agent_id))

    @requires("operator")
    @blp.response(200, envelope(CheckInSchema))
    def post(self, agent_id):
        """The agent checks in: seen now, and its pending tasks are queued for execution"""
        return ok(agent_presence.check_in(agent_id))


@blp.route("/<agent_id>/wake")
class Wake(MethodView):
    @requires("operator")
    @blp.arguments(WakeSchema)
    @blp.response(200, envelope(CheckInSchema))
    def post(self, body, agent_id):
        """Wake the agent with a reason: recorded, counted as activity, and its pending work is queued"""
        return ok(agent_presence.check_in(agent_id, wake_reason=body["reason"]))
