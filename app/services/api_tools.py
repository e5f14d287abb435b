"""Use cases for API tools: HTTP endpoints an agent (or an operator testing one) can call.

A tool is a method, a URL template with `{{var}}` placeholders filled from the call's input, headers (a
secret header's value is encrypted at rest and only ever shown masked) and a JSON Schema its input must
match. Calls go through `app.runtime.outbound`, which refuses internal addresses unless allowlisted.

Writes need the `operator` role, secret headers included: the values are write-only (never returned,
redacted from test results), and a tool whose destination changes must be given its secrets again, so
holding the role does not let anyone send a stored secret to a host of their choosing.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from flask import current_app
from jsonschema import FormatChecker
from jsonschema.exceptions import SchemaError, best_match
from jsonschema.validators import Draft202012Validator, validator_for
from sqlalchemy import select

from app import crypto
from app.common.pagination import paginate
from app.errors import Conflict, NotFound, UpstreamError, UpstreamTimeout, ValidationFailed
from app.extensions import db
from app.models import ApiTool
from app.runtime import outbound
from app.runtime.outbound_slots import outbound_slot
from app.services.usage import Usage, record_usage

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
BODY_METHODS = ("POST", "PUT", "PATCH")
DEFAULT_INPUT_SCHEMA = {"type": "object"}
_MAX_REPORTED_ERRORS = 10


# --- CRUD -----------------------------------------------------------------------------------------


def list_api_tools(args: dict) -> dict:
    query = select(ApiTool)
    if args.get("method"):
        query = query.where(ApiTool.method == args["method"])
    return paginate(query, ApiTool, args)


def get_api_tool(tool_id: str) -> ApiTool:
    tool = db.session.get(ApiTool, tool_id)
    if tool is None:
        raise NotFound(f"API tool {tool_id} does not exist.", details={"id": tool_id})
    return tool


def create_api_tool(body: dict) -> ApiTool:
    """Create a tool; secret header values are encrypted, and every header needs a value."""
    body = dict(body)
    _check_name_free(body["name"])
    check_url_template(body["url_template"])
    body.setdefault("input_schema", dict(DEFAULT_INPUT_SCHEMA))
    check_input_schema(body["input_schema"])
    headers, _kept = _merge_headers(body.pop("headers", []), stored=[])
    tool = ApiTool(**body, headers=headers)
    db.session.add(tool)
    db.session.commit()
    return tool


def update_api_tool(tool_id: str, body: dict) -> ApiTool:
    """Change the fields sent. `headers`, when sent, replaces the list; a secret header sent without a
    value keeps its stored value, unless the URL's origin changes (then 422 `secret_required`)."""
    tool = get_api_tool(tool_id)
    body = dict(body)
    if "name" in body:
        _check_name_free(body["name"], exclude_id=tool.id)
    if "url_template" in body:
        check_url_template(body["url_template"])
    if "input_schema" in body:
        check_input_schema(body["input_schema"])
    if "headers" in body:
        headers, kept = _merge_headers(body.pop("headers"), stored=tool.headers)
    else:
        headers, kept = tool.headers, [h["name"] for h in tool.headers if h.get("secret")]
    new_template = body.get("url_template", tool.url_template)
    if kept and _origin(new_template) != _origin(tool.url_template):
        raise ValidationFailed(
            "The tool's destination changes: send the values of its secret headers again "
            f"({', '.join(kept)}), so a stored secret is never sent to a new host unseen.",
            code="secret_required",
            details={"headers": kept},
        )
    for key, value in body.items():
        setattr(tool, key, value)
    tool.headers = headers
    db.session.commit()
    return tool


def delete_api_tool(tool_id: str) -> None:
    """Delete a tool; refused (409 `in_use`) while an agent lists it."""
    tool = get_api_tool(tool_id)
    from app.services.agents import agents_using

    users = agents_using(tool.id)
    if users:
        raise Conflict(
            f"API tool {tool.name} is used by agents: {', '.join(users)}.",
            code="in_use",
            details={"agents": users},
        )
    db.session.delete(tool)
    db.session.commit()


def _check_name_free(name: str, exclude_id: str | None = None) -> None:
    query = select(ApiTool.id).where(ApiTool.name == name)
    if exclude_id:
        query = query.where(ApiTool.id != exclude_id)
    if db.session.execute(query).first():
        raise Conflict(f"An API tool named '{name}' already exists.", code="duplicate_name", details={"name": name})


def _merge_headers(incoming: list[dict], stored: list[dict]) -> tuple[list[dict], list[str]]:
    """The stored form of `incoming`, and the names of secret headers whose stored value was kept."""
    stored_secrets = {h["name"].lower(): h for h in stored if h.get("secret")}
    result, kept, missing = [], [], []
    for header in incoming:
        name, value, secret = header["name"], header.get("value"), header.get("secret", False)
        if value is None:
            previous = stored_secrets.get(name.lower()) if secret else None
            if previous is None:
                missing.append(name)
                continue
            kept.append(name)
            result.append({"name": name, "secret": True, "value_encrypted": previous["value_encrypted"],
                           "value_masked": previous["value_masked"]})
        elif secret:
            result.append({"name": name, "secret": True, "value_encrypted": crypto.encrypt(value),
                           "value_masked": crypto.mask(value)})
        else:
            result.append({"name": name, "secret": False, "value": value})
    if missing:
        raise ValidationFailed(
            f"Headers need a value: {', '.join(missing)} (only an existing secret header may omit it).",
            details={"fields": {"headers": [f"{name}: value required" for name in missing]}},
        )
    return result, kept


# --- validation -----------------------------------------------------------------------------------


def check_url_template(template: str) -> None:
    """An http(s) URL whose placeholders sit only in the path, query or fragment.

    The input (possibly written by an LLM) must never choose the scheme, host or port: that would let
    it aim the tool, and its secret headers, anywhere.
    """
    parts = urlsplit(template)
    problem = None
    if parts.scheme.lower() not in outbound.ALLOWED_SCHEMES:
        problem = "must be an http(s) URL"
    elif "{{" in parts.netloc or "}}" in parts.netloc:
        problem = "placeholders are allowed in the path, query and fragment only, not in the host"
    elif not parts.hostname:
        problem = "must name a host"
    else:
        try:
            _ = parts.port
        except ValueError:
            problem = "has an invalid port"
    if problem is None and PLACEHOLDER.sub("", template).count("{{"):
        problem = "has a malformed placeholder: use {{name}} with letters, digits and _"
    if problem:
        raise ValidationFailed(f"url_template {problem}.", details={"fields": {"url_template": [problem]}})


def check_input_schema(schema: Any) -> None:
    """A valid JSON Schema (its own $schema dialect, else 2020-12) describing an object."""
    if not isinstance(schema, dict):
        raise ValidationFailed("input_schema must be a JSON object.",
                               details={"fields": {"input_schema": ["must be a JSON object"]}})
    try:
        validator_for(schema, default=Draft202012Validator).check_schema(schema)
    except SchemaError as exc:
        message = f"{exc.json_path}: {exc.message}"
        raise ValidationFailed(f"input_schema is not a valid JSON Schema: {message}",
                               details={"fields": {"input_schema": [message]}}) from exc
    if schema.get("type", "object") != "object":
        raise ValidationFailed("input_schema must describe an object (type: object).",
                               details={"fields": {"input_schema": ["type must be 'object'"]}})


def validate_input(schema: dict, data: Any) -> None:
    """Check a call's input against the tool's input_schema; 422 with each error's JSON path."""
    # Remote $refs are never fetched: jsonschema's `referencing` resolves only what is in the schema.
    cls = validator_for(schema, default=Draft202012Validator)
    validator = cls(schema, format_checker=FormatChecker())
    errors = list(validator.iter_errors(data))
    if not errors:
        return
    first = best_match(errors)
    raise ValidationFailed(
        f"The input does not match the tool's input_schema: {first.json_path}: {first.message}",
        details={
            "path": first.json_path,
            "errors": [{"path": e.json_path, "message": e.message} for e in errors[:_MAX_REPORTED_ERRORS]],
        },
    )


def render_url(template: str, data: dict) -> tuple[str, dict]:
    """Fill `{{var}}` placeholders, URL-encoded; returns the URL and the input the URL did not use."""
    names = list(dict.fromkeys(PLACEHOLDER.findall(template)))
    missing = [name for name in names if data.get(name) is None]
    if missing:
        raise ValidationFailed(
            f"The input lacks values for the URL placeholders: {', '.join(missing)}.",
            details={"missing": missing},
        )
    bad = [name for name in names if not isinstance(data[name], str | int | float)]
    if bad:
        raise ValidationFailed(
            f"URL placeholders take strings, numbers or booleans, not objects or lists: {', '.join(bad)}.",
            details={"fields": {name: ["must be a string, number or boolean"] for name in bad}},
        )
    url = PLACEHOLDER.sub(lambda m: quote(_text(data[m.group(1)]), safe=""), template)
    rest = {key: value for key, value in data.items() if key not in names}
    return url, rest


def _text(value: str | int | float) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _origin(template: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(template)
    try:
        port = parts.port
    except ValueError:
        port = None
    scheme = parts.scheme.lower()
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80)


# --- calling --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreparedCall:
    """Everything a call needs, read out of the database, so no transaction stays open during it."""

    tool_id: str
    tool_name: str
    method: str
    url: str
    timeout: float
    json_body: dict | None
    headers: dict[str, str] = field(repr=False)
    secrets: tuple[str, ...] = field(repr=False)


def prepare_call(tool: ApiTool, data: dict) -> PreparedCall:
    """Validate the input, fill the URL and decrypt the headers; no network I/O."""
    validate_input(tool.input_schema or DEFAULT_INPUT_SCHEMA, data)
    url, rest = render_url(tool.url_template, data)
    headers, secrets = {}, []
    for header in tool.headers:
        if header.get("secret"):
            value = crypto.decrypt(header["value_encrypted"])
            secrets.append(value)
        else:
            value = header["value"]
        headers[header["name"]] = value
    return PreparedCall(
        tool_id=tool.id,
        tool_name=tool.name,
        method=tool.method,
        url=url,
        timeout=tool.timeout_seconds,
        json_body=rest if tool.method in BODY_METHODS else None,
        headers=headers,
        secrets=tuple(secrets),
    )


def call_tool(
    tool: ApiTool | str,
    data: dict,
    *,
    api_key_id: str | None = None,
    usage_details: dict | None = None,
    allowlist: list[str] | None = None,
) -> dict:
    """Call an API tool with `data` as its input and return the result as a dict:
    `{status_code, url, latency_ms, headers, body, truncated}` (secret values redacted from it).

    For the agent runtime as well as the test route. Writes one usage ledger row per call made
    (entity_type "api_tool", operation "tool"), failures included; `usage_details` is added to it
    (e.g. {"agent_id": ...}). The session's transaction is committed before the network call, so do
    not call this with uncommitted work you may want to roll back.
    Raises ValidationFailed (input), OutboundBlocked (403), UpstreamTimeout (504), UpstreamError (502).
    """
    if isinstance(tool, str):
        tool = get_api_tool(tool)
    call = prepare_call(tool, data)
    if allowlist is None:
        allowlist = current_app.extensions["magnet.config"].outbound_allowlist
    db.session.commit()  # no transaction open during external I/O
    details = {"tool": call.tool_name, "method": call.method, "host": urlsplit(call.url).hostname,
               **(usage_details or {})}
    started = time.monotonic()
    try:
        with outbound_slot(f"the call to {call.tool_name}"):
            result = outbound.send(
                call.method, call.url, allowlist=allowlist, headers=call.headers, json_body=call.json_body,
                timeout=call.timeout, redact=call.secrets,
            )
    except (UpstreamError, UpstreamTimeout) as exc:  # a refused call (403) made no call: not metered
        _record(call, (time.monotonic() - started) * 1000, {**details, "error": exc.code}, api_key_id)
        raise
    _record(call, result.latency_ms, {**details, "status_code": result.status_code}, api_key_id)
    return result.as_dict()


def try_api_tool(tool_id: str, data: dict, *, api_key_id: str | None = None) -> dict:
    """Make a real call with the given input, as an operator would before giving the tool to an agent."""
    return call_tool(tool_id, data, api_key_id=api_key_id, usage_details={"test": True})


def _record(call: PreparedCall, latency_ms: float, details: dict, api_key_id: str | None) -> None:
    record_usage(
        entity_type="api_tool",
        entity_id=call.tool_id,
        operation="tool",
        model=None,
        usage=Usage(),
        latency_ms=round(latency_ms, 1),
        api_key_id=api_key_id,
        details=details,
    )
