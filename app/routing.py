"""How URLs reach views, where Flask's defaults would break the API's contract.

- No redirects: Werkzeug answers `/api//models` (merge_slashes) and a missing trailing slash
  (strict_slashes) with a 308 and an HTML body. Magnet answers JSON only, so neither is on: such a path is
  a JSON 404, like any other unknown path.
- `Allow` names exactly the methods of the resource a path names. Werkzeug's own list is the union over
  every rule the path matches, so `OPTIONS /api/evaluations/compare` would also advertise the PUT and
  DELETE of `/api/evaluations/<evaluation_id>`, which a client can never reach there.
"""
from __future__ import annotations

from collections.abc import Iterable

from flask import Flask, current_app, request
from werkzeug.exceptions import HTTPException


class MagnetFlask(Flask):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Read by every rule added from now on (the blueprints are registered later).
        self.url_map.merge_slashes = False
        self.url_map.strict_slashes = False

    def make_default_options_response(self):
        """OPTIONS: 204, no body, and `Allow` with the methods of this resource only."""
        response = self.response_class(status=204)
        response.headers.remove("Content-Type")
        response.allow.update(resource_methods(request.url_rule.methods or ()))
        return response


def resource_methods(candidates: Iterable[str]) -> list[str]:
    """The methods of the resource the current request's path names, out of `candidates` (the methods some
    rule matching the path accepts): those of the matching rule with the fewest variables, i.e. the most
    specific one (`/compare` before `/<evaluation_id>`)."""
    adapter = current_app.create_url_adapter(request)
    rules = []
    for method in candidates:
        try:
            rule, _ = adapter.match(request.path, method=method, return_rule=True)
        except HTTPException:
            continue
        rules.append(rule)
    if not rules:
        return sorted(candidates)
    best = min(rules, key=lambda rule: len(rule.arguments))
    return sorted(best.methods or ())
