"""The dependency direction of ARCHITECTURE.md, checked on every run so it cannot rot.

Between packages: knowledge/ imports nothing from app/ or the web stack; evaluations/ may import
knowledge/ but never app/. Inside app/: nothing runs upward. Routes (app.api) and background tasks
(app.jobs) call services; services call the runtime; what they all share (pagination, the queue, usage
counts) lives in app.common, which imports none of them. Lazy imports inside functions count too.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WEB_STACK = {"flask", "flask_smorest", "flask_sqlalchemy", "flask_migrate", "wsgi"}
FORBIDDEN = {
    "knowledge": {"app", "evaluations", *WEB_STACK},
    "evaluations": {"app", *WEB_STACK},
}
# app/<layer> may not import these modules (or anything under them).
UPWARD = {
    "app/common": {"app.api", "app.services", "app.runtime", "app.jobs", "app.cli", "app.auth", "app.console"},
    "app/models": {"app.api", "app.services", "app.runtime", "app.jobs", "app.cli", "app.console"},
    "app/runtime": {"app.api", "app.services", "app.jobs", "app.cli", "app.console"},
    "app/services": {"app.api", "app.jobs", "app.cli", "app.console"},
}


def _imports(path: Path):
    """(line, dotted module) for every import in the file; `from app import jobs` gives `app.jobs`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def _under(module: str, prefixes: set[str]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_engines_do_not_import_the_web_layer(package):
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in (ROOT / package).rglob("*.py")
        for line, module in _imports(path)
        if _under(module, FORBIDDEN[package])
    ]
    assert offenders == []


@pytest.mark.parametrize("layer", sorted(UPWARD))
def test_no_import_runs_upward_inside_app(layer):
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in (ROOT / layer).rglob("*.py")
        for line, module in _imports(path)
        if _under(module, UPWARD[layer])
    ]
    assert offenders == []


def test_the_checks_see_an_upward_import(tmp_path):
    """The checker itself: a service importing a route helper, lazily or not, is found."""
    module = tmp_path / "service.py"
    module.write_text("from app.api.common import paginate\n\ndef f():\n    from app import jobs\n")
    found = [name for _, name in _imports(module) if _under(name, UPWARD["app/services"])]
    assert found == ["app.api.common", "app.api.common.paginate", "app.jobs"]
