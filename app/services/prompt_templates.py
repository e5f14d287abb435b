"""Use cases for prompt templates: `{{variable}}` placeholders, immutable version history, rendering."""
from __future__ import annotations

import re

from sqlalchemy import select

from app.common.pagination import paginate
from app.errors import Conflict, NotFound, ValidationFailed
from app.extensions import db
from app.models import PromptTemplate, PromptTemplateVersion
from knowledge.tokenizer import count_tokens

# `{{name}}` or `{{ name }}`; anything else between braces (`{{ a b }}`, `{{1x}}`) stays literal text,
# so prompts may quote code or other template languages.
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
# A RAG template is filled by the query pipeline, which always supplies these two.
RAG_REQUIRED = ("context", "query")
# The fields a version snapshots; a change to any of them makes a new version.
VERSIONED = ("name", "description", "template", "variables")
SCALARS = (str, int, float, bool)


def placeholders(template: str) -> list[str]:
    """Variable names used in `template`, each once, in order of first use."""
    return list(dict.fromkeys(PLACEHOLDER.findall(template)))


def _validate(type_: str, template: str, variables: list[str]) -> None:
    """Every rule a template must pass; all violations are reported together, by variable name."""
    if not template.strip():
        raise ValidationFailed(
            "The template is empty.", details={"fields": {"template": ["must not be empty"]}}
        )
    used = placeholders(template)
    details: dict[str, list[str]] = {}
    duplicate = sorted({name for name in variables if variables.count(name) > 1})
    if duplicate:
        details["duplicate"] = duplicate
    if undeclared := [name for name in used if name not in variables]:
        details["undeclared"] = undeclared
    if unused := [name for name in dict.fromkeys(variables) if name not in used]:
        details["unused"] = unused
    if type_ == "rag" and (required := [name for name in RAG_REQUIRED if name not in used]):
        details["required"] = required
    if details:
        raise ValidationFailed(
            "The template's placeholders and declared variables do not match: "
            + "; ".join(f"{key}: {', '.join(names)}" for key, names in details.items()),
            details=details,
        )


def _check_name_free(name: str, exclude_id: str | None = None) -> None:
    query = select(PromptTemplate.id).where(PromptTemplate.name == name)
    if exclude_id:
        query = query.where(PromptTemplate.id != exclude_id)
    if db.session.execute(query).first():
        raise Conflict(
            f"A prompt template named '{name}' already exists.", code="duplicate_name", details={"name": name}
        )


def _snapshot(template: PromptTemplate) -> None:
    """Record the template's current state as its version `template.version` (never changed after)."""
    db.session.add(
        PromptTemplateVersion(
            template_id=template.id,
            version=template.version,
            **{name: getattr(template, name) for name in VERSIONED},
        )
    )


def list_templates(args: dict) -> dict:
    query = select(PromptTemplate)
    if args.get("type"):
        query = query.where(PromptTemplate.type == args["type"])
    return paginate(query, PromptTemplate, args)


def get_template(template_id: str, *, for_update: bool = False) -> PromptTemplate:
    template = db.session.get(PromptTemplate, template_id, with_for_update=for_update or None)
    if template is None:
        raise NotFound(f"Prompt template {template_id} does not exist.", details={"id": template_id})
    return template


def create_template(body: dict) -> PromptTemplate:
    """Create a template (keys: name, type, template, and optional description, variables) as version 1."""
    variables = list(body.get("variables") or [])
    _validate(body["type"], body["template"], variables)
    _check_name_free(body["name"])
    template = PromptTemplate(
        name=body["name"],
        description=body.get("description"),
        type=body["type"],
        template=body["template"],
        variables=variables,
        version=1,
    )
    db.session.add(template)
    db.session.flush()
    _snapshot(template)
    db.session.commit()
    return template


def update_template(template_id: str, body: dict) -> PromptTemplate:
    """Change only the fields sent; a real change becomes version N+1, no change makes no version."""
    # Row lock (PostgreSQL) so two concurrent updates cannot both claim version N+1.
    template = get_template(template_id, for_update=True)
    if "type" in body and body["type"] != template.type:
        # 409, not 422: the value is valid on its own, it conflicts with the stored resource. Its version
        # history was validated under this type (a rag template must use context and query), and callers
        # choose templates by type; a different type is a new template. Same precedent as builtin_model.
        raise Conflict(
            f"A template's type cannot change (it is '{template.type}'); create a new template instead.",
            code="immutable_field",
            details={"fields": ["type"], "type": template.type},
        )
    changes = {name: body[name] for name in VERSIONED if name in body and body[name] != getattr(template, name)}
    if not changes:
        return template
    merged = {name: changes.get(name, getattr(template, name)) for name in VERSIONED}
    _validate(template.type, merged["template"], list(merged["variables"]))
    if "name" in changes:
        _check_name_free(changes["name"], exclude_id=template.id)
    for name, value in changes.items():
        setattr(template, name, value)
    template.version += 1
    _snapshot(template)
    db.session.commit()
    return template


def delete_template(template_id: str) -> None:
    """Delete a template; its versions go with it (ON DELETE CASCADE)."""
    db.session.delete(get_template(template_id))
    db.session.commit()


def list_versions(template_id: str, args: dict) -> dict:
    """A template's versions, newest first (page and limit from `args`)."""
    get_template(template_id)
    query = select(PromptTemplateVersion).where(PromptTemplateVersion.template_id == template_id)
    return paginate(query, PromptTemplateVersion, {**args, "sort": "version", "order": "desc"})


def get_version(template_id: str, version: int) -> PromptTemplateVersion:
    get_template(template_id)
    found = db.session.execute(
        select(PromptTemplateVersion).where(
            PromptTemplateVersion.template_id == template_id, PromptTemplateVersion.version == version
        )
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(
            f"Prompt template {template_id} has no version {version}.",
            details={"id": template_id, "version": version},
        )
    return found


def render_template(template_id: str, values: dict, version: int | None = None) -> dict:
    """Fill the template (current, or `version`) with `values`: every declared variable, nothing else.

    Single pass: a value that itself contains `{{x}}` is inserted as-is, never expanded again.
    """
    source = get_template(template_id) if version is None else get_version(template_id, version)
    declared = list(source.variables)
    details: dict[str, list[str]] = {}
    if missing := [name for name in declared if name not in values]:
        details["missing"] = missing
    if unexpected := sorted(name for name in values if name not in declared):
        details["unexpected"] = unexpected
    if invalid := sorted(name for name, value in values.items() if not isinstance(value, SCALARS)):
        details["invalid"] = invalid
    if details:
        raise ValidationFailed(
            "The variables do not match the template: "
            + "; ".join(f"{key}: {', '.join(names)}" for key, names in details.items()),
            details=details,
        )
    text = PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), source.template)
    return {
        "text": text,
        "token_count": count_tokens(text),
        "version": source.version,
        "template_id": template_id,
    }
