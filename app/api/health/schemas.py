from marshmallow import Schema, fields


class DependencySchema(Schema):
    status = fields.String(required=True, metadata={"enum": ["ok", "down"]})
    latency_ms = fields.Float()
    detail = fields.String()
    backend = fields.String()


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"enum": ["ok", "degraded"]})
    version = fields.String(required=True)
    database = fields.Nested(DependencySchema, required=True)
    vector_db = fields.Nested(DependencySchema, required=True)


class StatusSchema(Schema):
    version = fields.String(required=True)
    versions = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    counts = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    job_queue = fields.Dict(required=True)
    database = fields.Dict(required=True)
