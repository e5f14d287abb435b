from marshmallow import Schema, fields


class DependencySchema(Schema):
    status = fields.String(required=True, metadata={"enum": ["ok", "down"]})
    latency_ms = fields.Float()
    detail = fields.String()
    backend = fields.String()


class WorkersSchema(Schema):
    status = fields.String(required=True, metadata={"enum": ["ok", "down"],
                                                    "description": "down: they could not be counted"})
    alive = fields.Integer(metadata={"description": "job consumers that wrote their heartbeat recently"})
    last_heartbeat = fields.String(allow_none=True, metadata={"description": "the latest heartbeat of any worker"})
    queued_runs = fields.Integer(metadata={"description": "sync and evaluation runs waiting for a worker"})
    latency_ms = fields.Float()
    detail = fields.String()


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={
        "enum": ["ok", "degraded", "unavailable"],
        "description": "unavailable (503): a required dependency is down; degraded: runs are queued and no "
                       "worker is alive"})
    version = fields.String(required=True)
    database = fields.Nested(DependencySchema, required=True)
    vector_db = fields.Nested(DependencySchema, required=True)
    job_queue = fields.Nested(DependencySchema, required=True, metadata={"description": "Redis, or SQLite"})
    workers = fields.Nested(WorkersSchema, required=True)


class StatusSchema(Schema):
    version = fields.String(required=True)
    versions = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    counts = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    job_queue = fields.Dict(required=True)
    database = fields.Dict(required=True)
