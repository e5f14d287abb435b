"""Playground: ask a RAG or retrieval tool, see the answer with numbered citations, every hit's scores and
the stage timings; compare two retrieval settings side by side on the same question."""
import re

from flask import render_template, request
from markupsafe import Markup, escape

from app.console.access import page
from app.console.blueprint import bp
from app.errors import MagnetError
from app.services import rag, tools

MODES = ("hybrid", "dense", "lexical")
FUSIONS = ("weighted", "rrf")
_MARKER = re.compile(r"\[(\d{1,3})\]")


def _tools() -> list[tuple[str, str]]:
    """(value, label) for every RAG and retrieval tool, for the picker."""
    args = {"page": 1, "limit": 100, "sort": "name", "order": "asc"}
    return ([(f"rag:{t.id}", f"RAG · {t.name}") for t in tools.list_tools("rag", args)["data"]]
            + [(f"retrieval:{t.id}", f"Retrieval · {t.name}") for t in tools.list_tools("retrieval", args)["data"]])


@bp.get("/playground")
@page("viewer")
def playground():
    """The question form (operators ask; a viewer sees which tools exist)."""
    return render_template("console/playground.html", section="Playground", tools=_tools(), modes=MODES,
                           fusions=FUSIONS, chosen=request.args.get("tool", ""))


def _setting(suffix: str) -> dict:
    """One column's settings from the form; anything unrecognised falls back to the tool's own."""
    mode = request.form.get(f"mode_{suffix}")
    fusion = request.form.get(f"fusion_{suffix}")
    try:
        top_k = min(max(int(request.form.get(f"top_k_{suffix}") or 0), 0), 100) or None
    except ValueError:
        top_k = None
    return {"mode": mode if mode in MODES else None, "fusion": fusion if fusion in FUSIONS else None, "top_k": top_k}


def ask(kind: str, tool_id: str, query: str, setting: dict) -> dict:
    """One query as the API answers it, with this column's overrides (metered and traced like the API)."""
    tool = tools.get_tool(kind, tool_id)
    run = rag.QueryRun(tool=tool, query=query, api_key_id=None)
    rag.retrieve(run, top_k=setting["top_k"], filters=None,
                 overrides={"mode": setting["mode"], "fusion": setting["fusion"]})
    if kind == "rag":
        rag.answer(run)
    return run.payload(rag.save_trace(run))


def cited(answer: str | None, column: str, count: int) -> Markup:
    """The answer, escaped, with each [n] a link that opens passage n."""
    if not answer:
        return Markup("")

    def link(match):
        n = int(match.group(1))
        if not 1 <= n <= count:
            return match.group(0)
        return f'<a class="cite" href="#hit-{column}-{n}" aria-label="citation {n}">[{n}]</a>'

    return Markup(_MARKER.sub(link, str(escape(answer))))


@bp.post("/playground/ask")
@page("operator")
def playground_ask():
    """An htmx fragment: one result column, or two side by side when `compare` is set."""
    kind, _, tool_id = (request.form.get("tool") or "").partition(":")
    query = (request.form.get("query") or "").strip()
    if kind not in ("rag", "retrieval") or not tool_id or not query or len(query) > 8000:
        return render_template("console/playground_results.html", error="Pick a tool and ask a question.")
    columns = [("a", _setting("a"))]
    if request.form.get("compare"):
        columns.append(("b", _setting("b")))
    results = []
    for name, setting in columns:
        try:
            payload = ask(kind, tool_id, query, setting)
            results.append({"name": name, "setting": setting, "payload": payload,
                            "answer": cited(payload.get("answer"), name, len(payload["results"]))})
        except MagnetError as exc:
            results.append({"name": name, "setting": setting, "error": exc.message})
    return render_template("console/playground_results.html", results=results, kind=kind, error=None)
