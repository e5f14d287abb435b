"""The dependency direction of ARCHITECTURE.md, checked on every run so it cannot rot:
knowledge/ imports nothing from app/ or the web stack; evaluations/ may import knowledge/ but never app/."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "knowledge": {"app", "evaluations", "flask", "flask_smorest", "flask_sqlalchemy", "flask_migrate", "wsgi"},
    "evaluations": {"app", "flask", "flask_smorest", "flask_sqlalchemy", "flask_migrate", "wsgi"},
}


def _imports(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_engines_do_not_import_the_web_layer(package):
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in (ROOT / package).rglob("*.py")
        for line, module in _imports(path)
        if module in FORBIDDEN[package]
    ]
    assert offenders == []
