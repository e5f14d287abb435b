"""Evaluations: suites, case import, runs watched live, the run page (aggregates with CIs, charts, a
per-case table with filters and drill-down) and the comparison of two runs. The numbers and charts are the
HTML report's own (evaluations.report_html / report_svg), so the console and the report never disagree."""
from flask import make_response, render_template, request
from markupsafe import Markup

from app.api.evaluations.schemas import EvaluationRunSchema
from app.console.access import page
from app.console.blueprint import bp
from app.console.listing import list_args
from app.services import eval_results, eval_runs, evaluations, reviews, tools
from evaluations import report_html
from evaluations.reports import _metric_names

ACTIVE = ("queued", "running")
CASE_FILTERS = ("all", "failed", "ok")


@bp.get("/evaluations", endpoint="evaluations")
@page("viewer")
def evaluations_page():
    """Every suite with its case count and latest run; a create form for operators."""
    listing = evaluations.list_evaluations(list_args())
    rows = [(e, evaluations.case_count(e.id), evaluations.last_run(e.id)) for e in listing["data"]]
    args = {"page": 1, "limit": 100, "sort": "name", "order": "asc"}
    targets = ([("rag_tool", t.id, f"RAG · {t.name}") for t in tools.list_tools("rag", args)["data"]]
               + [("retrieval_tool", t.id, f"Retrieval · {t.name}") for t in tools.list_tools("retrieval", args)["data"]])
    return render_template("console/evaluations.html", section="Evaluations", rows=rows,
                           total=listing["pagination"]["total"], targets=targets)



@bp.get("/evaluations/<evaluation_id>")
@page("viewer")
def evaluation(evaluation_id):
    """One suite: its cases, the import form, the run button, its runs and a compare picker."""
    found = evaluations.get_evaluation(evaluation_id)
    cases = evaluations.list_cases(evaluation_id, {**list_args(sort="ordinal"), "order": "asc"})
    runs = eval_runs.list_runs(evaluation_id, list_args())
    return render_template("console/evaluation.html", section="Evaluations", evaluation=found, cases=cases,
                           runs=runs["data"])


def _run_dict(run, evaluation) -> dict:
    run_dict = EvaluationRunSchema().dump(run)
    run_dict["evaluation"] = {"id": evaluation.id, "name": evaluation.name, "type": evaluation.type,
                              "target_id": evaluation.target_id}
    return run_dict


def _filtered(results: list[dict], which: str, metric: str | None, below: float | None) -> list[dict]:
    if which == "failed":
        results = [r for r in results if r["status"] != "ok"]
    elif which == "ok":
        results = [r for r in results if r["status"] == "ok"]
    if metric and below is not None:
        results = [r for r in results if (r["scores"] or {}).get(metric) is not None and r["scores"][metric] < below]
    return results


@bp.get("/evaluations/<evaluation_id>/runs/<run_id>")
@page("viewer")
def eval_run(evaluation_id, run_id):
    """A run: live progress while it runs; then aggregates with CIs, charts and every case."""
    found = evaluations.get_evaluation(evaluation_id)
    run = eval_runs.get_run(run_id, evaluation_id)
    run_dict = _run_dict(run, found)
    results = eval_results.all_results(run) if run.status not in ACTIVE else []
    names = _metric_names(run_dict, results)
    which = request.args.get("cases") if request.args.get("cases") in CASE_FILTERS else "all"
    metric = request.args.get("metric") if request.args.get("metric") in names else None
    try:
        below = float(request.args["below"]) if request.args.get("below") else None
    except ValueError:
        below = None
    sections = Markup("".join((report_html._metrics_section(run_dict), report_html._thresholds_section(run_dict),
                               report_html._distributions_section(names, results),
                               report_html._totals_section(run_dict)))) if run.status not in ACTIVE else ""
    others = [r for r in eval_runs.list_runs(evaluation_id, list_args())["data"]
              if r.id != run.id and r.status not in ACTIVE]
    return render_template("console/eval_run.html", section="Evaluations", evaluation=found, run=run,
                           run_dict=run_dict, sections=sections, names=names, which=which, metric=metric,
                           below=below, filters=CASE_FILTERS, shown=_filtered(results, which, metric, below),
                           total=len(results), others=others,
                           review=reviews.run_summary(run) if run.status not in ACTIVE else None)


@bp.get("/evaluations/<evaluation_id>/runs/<run_id>/progress")
@page("viewer")
def eval_run_progress(evaluation_id, run_id):
    """htmx fragment polled while a run is active; once it has ended the page reloads (HX-Refresh)."""
    run = eval_runs.get_run(run_id, evaluation_id)
    response = make_response(render_template("console/eval_progress.html", run=run, evaluation_id=evaluation_id))
    if run.status not in ACTIVE:
        response.headers["HX-Refresh"] = "true"
    return response


def changed_cases(base, head, names: list[str]) -> list[dict]:
    """Cases (of one evaluation) whose score moved on some metric, or whose status changed."""
    before = {r["case_id"]: r for r in eval_results.all_results(base)}
    changed = []
    for after in eval_results.all_results(head):
        prior = before.get(after["case_id"])
        if prior is None:
            continue
        deltas = {}
        for name in names:
            old, new = (prior["scores"] or {}).get(name), (after["scores"] or {}).get(name)
            if old is not None and new is not None and abs(new - old) > 1e-12:
                deltas[name] = (old, new, new - old)
        if deltas or prior["status"] != after["status"]:
            changed.append({"case": after, "deltas": deltas, "status": (prior["status"], after["status"])})
    return changed


@bp.get("/evaluations/compare")
@page("viewer")
def eval_compare():
    """Two runs: deltas with CIs and p-values, wins/losses, and the cases that changed."""
    base_id, head_id = request.args.get("base", ""), request.args.get("head", "")
    comparison = eval_results.compare(base_id, head_id)
    base, head = eval_runs.get_run(base_id), eval_runs.get_run(head_id)
    names = sorted(comparison["metrics"])
    changed = changed_cases(base, head, names) if base.evaluation_id == head.evaluation_id else None
    return render_template("console/eval_compare.html", section="Evaluations", comparison=comparison,
                           section_html=Markup(report_html._comparison_section(comparison)), base=base,
                           head=head, names=names, changed=changed)
