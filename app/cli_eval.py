"""`magnet eval run|import-beir`: evaluation suites from the command line, made to gate CI jobs.

Exit codes of `magnet eval run`: 0 the run passed (or has no thresholds), 1 a threshold was missed or
the run failed, 3 a metric regressed significantly against `--against`, 2 bad usage (click's own).
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from urllib.parse import quote

import click
from flask import current_app
from flask.cli import with_appcontext
from tqdm import tqdm

from app.cli_sources import _fail, _follow, _prepare_database, _start_or_attach
from app.errors import MagnetError

EXIT_THRESHOLD, EXIT_REGRESSION = 1, 3
REPORT_FORMATS = {".html": "html", ".htm": "html", ".json": "json", ".csv": "csv"}


@click.group("eval")
def eval_group():
    """Run evaluation suites (and gate CI on them); import BEIR test sets."""


def _thresholds(pairs: tuple[str, ...]) -> dict[str, float]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            out[name.strip().lower()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise click.BadParameter(f"{pair!r}: expected metric=value, e.g. ndcg@10=0.7", param_hint="--fail-under")
    return out


def _evaluation_from(ref: str):
    """An evaluation by id or name, or created/updated from a JSON file describing it."""
    from app.services import evaluations

    path = Path(ref)
    if not path.is_file():
        return evaluations.find_evaluation(ref)
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise click.ClickException(f"{path}: not a readable JSON evaluation: {exc}") from exc
    if not isinstance(body, dict) or "name" not in body:
        raise click.ClickException(f"{path}: expected an object with name, type, target_id, metrics, test_cases")
    try:
        existing = evaluations.find_evaluation(body["name"])
    except MagnetError:
        return evaluations.create_evaluation(body)
    return evaluations.update_evaluation(existing.id, {k: v for k, v in body.items() if k != "name"})


def _run_with_progress(run_id: str):
    """Execute the run in this process, drawing a progress bar; Ctrl-C cancels it (scored cases kept)."""
    from app.extensions import db
    from app.models import EvaluationRun
    from app.services import eval_runs

    app = current_app._get_current_object()

    def work():
        with app.app_context():
            eval_runs.run_evaluation(run_id)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    bar = tqdm(total=None, unit="case", desc="evaluating")
    try:
        while True:
            db.session.expire_all()
            run = db.session.get(EvaluationRun, run_id)
            bar.total = run.cases_total
            bar.n = run.cases_done
            bar.set_postfix(failed=run.cases_failed)
            bar.refresh()
            if run.status not in ("queued", "running"):
                break
            time.sleep(0.3)
    except KeyboardInterrupt:
        click.echo("\ncancelling…")
        eval_runs.cancel_run(run.evaluation_id, run_id)
        thread.join()
    finally:
        bar.close()
    thread.join()
    db.session.expire_all()
    return db.session.get(EvaluationRun, run_id)


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.4f}"


def _print_run(run) -> None:
    click.echo(f"run {run.id}: {run.status}  cases {run.cases_done}/{run.cases_total}, failed {run.cases_failed}")
    if run.message:
        click.echo(f"  {run.message}")
    for name, agg in run.metrics.items():
        threshold = run.thresholds.get(name)
        verdict = "" if not threshold else (f"  >= {threshold['threshold']:g} "
                                            f"{'PASS' if threshold['passed'] else 'FAIL'}")
        click.echo(f"  {name:<22} {_fmt(agg['score'])}  95% CI [{_fmt(agg['ci_low'])}, {_fmt(agg['ci_high'])}]"
                   f"  covered {agg['covered']}/{agg['total']}{verdict}")


def _print_comparison(comparison: dict) -> None:
    click.echo(f"against {comparison['base_run_id']}:")
    for name, m in comparison["metrics"].items():
        delta = "—" if m["delta"] is None else f"{m['delta']:+.4f}"
        p = "—" if m["p_permutation"] is None else f"{max(m['p_bootstrap'], m['p_permutation']):.4f}"
        click.echo(f"  {name:<22} {_fmt(m['base_mean'])} -> {_fmt(m['head_mean'])}  delta {delta}  p {p}  "
                   f"wins {m['wins']} losses {m['losses']} ties {m['ties']}  {m['verdict']}")


@eval_group.command("run")
@click.argument("evaluation")
@click.option("--against", default=None, help="a base run id: a significant regression fails the command")
@click.option("--fail-under", "fail_under", multiple=True, help="metric=value, e.g. ndcg@10=0.7 (repeatable)")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write a report: .html (self-contained, with charts), .json or .csv")
@click.option("--alpha", default=0.05, show_default=True, help="significance level for --against")
@with_appcontext
def eval_run(evaluation, against, fail_under, report, alpha):
    """Run EVALUATION (an id, a name, or a JSON file defining it) here, with a progress bar."""
    _prepare_database()
    from app.api.evaluations.schemas import EvaluationRunSchema
    from app.services import eval_results, eval_runs

    thresholds = _thresholds(fail_under)
    if report is not None and report.suffix.lower() not in REPORT_FORMATS:
        raise click.BadParameter("use a .html, .json or .csv file name", param_hint="--report")
    try:
        found = _evaluation_from(evaluation)
        if against:
            eval_runs.get_run(against, found.id)
        run = eval_runs.start_run(found.id, trigger="cli", thresholds=thresholds)
    except MagnetError as exc:
        _fail(exc)
    click.echo(f"evaluation {found.id} ({found.name}), run {run.id}")
    run = _run_with_progress(run.id)
    _print_run(run)
    comparison = None
    if against and run.status in ("completed", "cancelled"):
        comparison = eval_results.compare(against, run.id, alpha)
        _print_comparison(comparison)
    if report is not None:
        body, _ = eval_results.report(found.id, run.id, REPORT_FORMATS[report.suffix.lower()], against,
                                      EvaluationRunSchema().dump(run))
        report.write_text(body, encoding="utf-8")
        click.echo(f"report: {report}")
    if run.status != "completed" or run.passed is False:
        raise SystemExit(EXIT_THRESHOLD)
    if comparison and comparison["regressed"]:
        click.echo(f"significant regression: {', '.join(comparison['regressed'])}")
        raise SystemExit(EXIT_REGRESSION)


# -- BEIR ----------------------------------------------------------------------------------------------


def _file_name(doc_id: str) -> str:
    """A BEIR document id as a file name; the expected sources of the cases use the same name."""
    return quote(doc_id, safe="") + ".txt"


def _write_corpus(beir, folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for doc_id, title, text in tqdm(beir.iter_corpus(), unit="doc", desc="writing corpus"):
        path = folder / _file_name(doc_id)
        body = f"{title or ''}\n\n{text or ''}"  # title, then the text: one passage, as BEIR evaluates
        if not path.exists() or path.read_text(encoding="utf-8") != body:
            path.write_text(body, encoding="utf-8")
        count += 1
    return count


def _find(model, name: str):
    from sqlalchemy import select

    from app.extensions import db

    return db.session.execute(select(model).where(model.name == name)).scalar_one_or_none()


def _build_here(tool) -> None:
    """Indexes a new tool needs are built in this process: no worker may be running."""
    from app.services import indexes, tools

    for index in tools.tool_indexes(tool):
        if index.status == "building":
            click.echo(f"building index {index.id}…")
            indexes.run_build(index.id)


@eval_group.command("import-beir")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--name", default=None, help="name of the source, tool and evaluation (default: the folder's)")
@click.option("--split", default="test", show_default=True, help="qrels split whose queries become cases")
@click.option("--metrics", default="ndcg@10,recall@10,mrr@10,hit@10", show_default=True)
@with_appcontext
def import_beir(folder, name, split, metrics):
    """Create a source (the corpus), a retrieval tool and an evaluation (queries + qrels) from a BEIR folder."""
    _prepare_database()
    from app.models import Evaluation, KnowledgeSource, RetrievalTool
    from app.services import evaluations, knowledge_sources, tools
    from evaluations.beir import read_beir
    from evaluations.testsets import TestSetError

    name = name or folder.resolve().name
    try:
        beir = read_beir(folder, split)
    except TestSetError as exc:
        raise click.ClickException(str(exc)) from exc
    corpus_dir = current_app.extensions["magnet.config"].imported_corpora_dir / "beir" / quote(name, safe="") / "corpus"
    click.echo(f"{len(beir.queries)} queries with judgments in '{split}'; corpus -> {corpus_dir}")
    _write_corpus(beir, corpus_dir)
    try:
        source = _find(KnowledgeSource, name) or knowledge_sources.create_source(
            {"name": name, "type": "directory", "configuration": {"path": str(corpus_dir)}}, role="admin")
        run = _start_or_attach(source.id)
    except MagnetError as exc:
        _fail(exc)
    _follow(source.id, run.id)
    try:
        tool = _find(RetrievalTool, name) or tools.create_tool(
            "retrieval", {"name": name, "knowledge_source_id": source.id, "top_k": 10})
        _build_here(tool)
        cases = [{**case, "expected_sources": [{**s, "id": _file_name(s["id"])} for s in case["expected_sources"]]}
                 for case in beir.test_cases()]
        body = {"type": "retrieval_tool", "target_id": tool.id, "test_cases": cases,
                "metrics": [m.strip() for m in metrics.split(",") if m.strip()]}
        existing = _find(Evaluation, name)
        evaluation = (evaluations.update_evaluation(existing.id, body) if existing
                      else evaluations.create_evaluation({"name": name, **body}))
    except MagnetError as exc:
        _fail(exc)
    click.echo(f"source {source.id}, retrieval tool {tool.id}, evaluation {evaluation.id} "
               f"({len(cases)} cases)")
    click.echo(f"run it: magnet eval run {evaluation.id} --report report.html")
