"""`magnet ingest DIR` and `magnet sources ...` as a user runs them: the console script, a fresh data dir."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MAGNET = str(Path(sys.executable).parent / "magnet")
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SUMMARY = re.compile(r"^sync (sync_\w+): (\w+)  added=(\d+) updated=(\d+) unchanged=(\d+) deleted=(\d+) failed=(\d+)$",
                     re.MULTILINE)


def magnet(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAGNET_")}
    # The test's folder is the only source root, as an administrator would set it for their documents.
    env.update(MAGNET_DATA_DIR=str(data_dir), MAGNET_LOG_LEVEL="WARNING", MAGNET_SOURCE_ROOTS=str(data_dir.parent))
    return subprocess.run([MAGNET, *args], env=env, capture_output=True, text=True, timeout=300)


def summary(out: str) -> dict:
    [match] = SUMMARY.findall(out)
    keys = ("run", "status", "added", "updated", "unchanged", "deleted", "failed")
    return {k: (v if k in ("run", "status") else int(v)) for k, v in zip(keys, match, strict=True)}


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "handbook"
    (root / "guides").mkdir(parents=True)
    (root / "guides" / "install.md").write_text("# Install\n\nRun the installer, then restart the machine.\n")
    (root / "faq.txt").write_text("Refunds are processed within fourteen days of the request.\n")
    (root / "holidays.txt").write_text("The office is closed on public holidays and the last week of August.\n")
    shutil.copy(FIXTURES / "pdf" / "bank_statement.pdf", root / "statement.pdf")
    return root


def test_ingest_shows_progress_and_a_summary_and_is_incremental(tmp_path, corpus):
    data_dir = tmp_path / "data"
    first = magnet(data_dir, "ingest", str(corpus))
    assert first.returncode == 0, first.stdout + first.stderr
    assert re.search(r"^created source ks_\w+ \(handbook\)$", first.stdout, re.MULTILINE)
    assert summary(first.stdout) | {"run": None} == {
        "run": None, "status": "completed", "added": 4, "updated": 0, "unchanged": 0, "deleted": 0, "failed": 0}
    # tqdm draws the bar on stderr: a description, the count out of the total, and the counters.
    assert "syncing" in first.stderr and "4/4" in first.stderr and "100%" in first.stderr
    assert "added=4" in first.stderr

    second = magnet(data_dir, "ingest", str(corpus))
    assert second.returncode == 0, second.stderr
    assert "created source" not in second.stdout  # the same source is reused
    assert summary(second.stdout) | {"run": None} == {
        "run": None, "status": "completed", "added": 0, "updated": 0, "unchanged": 4, "deleted": 0, "failed": 0}

    (corpus / "faq.txt").write_text("Refunds are processed within thirty days of the request.\n")
    (corpus / "holidays.txt").unlink()
    (corpus / "broken.pdf").write_bytes((FIXTURES / "pdf" / "bank_statement.pdf").read_bytes()[:900])
    third = magnet(data_dir, "ingest", str(corpus))
    assert third.returncode == 0, third.stderr  # documents that fail do not fail the command
    assert summary(third.stdout) | {"run": None} == {
        "run": None, "status": "completed_with_errors", "added": 0, "updated": 1, "unchanged": 2, "deleted": 1,
        "failed": 1}
    assert re.search(r"^  failed: broken\.pdf: .+ \(corrupt_file\)$", third.stdout, re.MULTILINE), third.stdout

    source_id = re.search(r"created source (ks_\w+)", first.stdout).group(1)
    status = magnet(data_dir, "sources", "status", source_id)
    assert status.returncode == 0, status.stderr
    assert f"{source_id}  handbook  type=directory  status=idle" in status.stdout
    assert "documents=4" in status.stdout and "last sync=completed_with_errors" in status.stdout
    assert summary(status.stdout)["run"] == summary(third.stdout)["run"]


def test_ingest_errors_are_short_and_exit_non_zero(tmp_path, corpus):
    data_dir = tmp_path / "data"
    missing = magnet(data_dir, "ingest", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr

    other = tmp_path / "other"
    other.mkdir()
    (other / "a.txt").write_text("Some text.\n")
    assert magnet(data_dir, "ingest", str(other), "--name", "shared").returncode == 0
    clash = magnet(data_dir, "ingest", str(corpus), "--name", "shared")
    assert clash.returncode == 1 and "already exists for something else; pass --name" in clash.stderr
    assert "Traceback" not in clash.stderr

    outside = magnet(data_dir, "ingest", str(FIXTURES))  # a folder outside the roots: refused, said why
    assert outside.returncode == 1 and "MAGNET_SOURCE_ROOTS" in outside.stderr and "Traceback" not in outside.stderr
    inside = magnet(data_dir, "ingest", str(data_dir))  # the data dir itself: never
    assert inside.returncode == 1 and "data folder is never read" in inside.stderr

    bad_glob = magnet(data_dir, "ingest", str(corpus), "--include", "../*")
    assert bad_glob.returncode == 1 and "'../*'" in bad_glob.stderr and "Traceback" not in bad_glob.stderr

    unknown = magnet(data_dir, "sources", "status", "ks_missing")
    assert unknown.returncode == 1 and "does not exist" in unknown.stderr


def test_sources_create_and_sync_from_the_cli(tmp_path, corpus):
    data_dir = tmp_path / "data"
    created = magnet(data_dir, "sources", "create", "--name", "hb", "--type", "directory",
                     "--config", f'{{"path": "{corpus}", "include": ["**/*.txt"]}}',
                     "--schedule", '{"interval_minutes": 60}')
    assert created.returncode == 0, created.stderr
    source_id = created.stdout.strip()
    assert source_id.startswith("ks_")
    synced = magnet(data_dir, "sources", "sync", source_id)
    assert synced.returncode == 0, synced.stderr
    assert summary(synced.stdout)["added"] == 2 and summary(synced.stdout)["status"] == "completed"

    bad = magnet(data_dir, "sources", "create", "--name", "x", "--type", "directory", "--config", "{not json")
    assert bad.returncode == 1 and "not valid JSON" in bad.stderr
    bad = magnet(data_dir, "sources", "create", "--name", "x", "--type", "directory",
                 "--config", f'{{"path": "{corpus}"}}', "--schedule", '{"interval_minutes": 1}')
    assert bad.returncode == 1 and "interval_minutes" in bad.stderr and "validation_failed" in bad.stderr
