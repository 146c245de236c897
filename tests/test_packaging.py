"""The built wheel carries everything the app needs: installed in a fresh virtual environment, it exports a dossier."""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from conftest import LiveApp
from test_dossier import release

from gating.policy.answers import QUESTIONS

ROOT = Path(__file__).resolve().parent.parent
LEFT_OUT = shutil.ignore_patterns(".git", ".venv", "node_modules", "instance", "build", "*.egg-info", "__pycache__")


def test_the_wheel_renders_an_html_export_from_its_own_templates(live_app: LiveApp, repo: str, tmp_path: Path) -> None:
    _sha, entry_id = release(live_app, repo)

    # Build from a copy, so that the checkout is left as it was (setuptools builds in place).
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=LEFT_OUT)
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", dist, source)
    (wheel,) = dist.glob("countersign_gate-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    packages = {
        str(p.relative_to(ROOT)) for d in ("gating", "jira_client", "simulators") for p in (ROOT / d).rglob("*.py")
    }
    assert packages - shipped == set(), "modules missing from the wheel: list their packages in pyproject.toml"

    # A fresh environment holding only the wheel; its dependencies come from this one's site-packages,
    # added as a plain path so that this checkout's own (editable) install is not visible there.
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    purelib = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    (purelib / "dependencies.pth").write_text("\n".join(dependency_paths()) + "\n")
    run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", wheel)
    shutil.rmtree(source)

    where = run(python, "-c", "import gating; print(gating.__file__)", cwd=tmp_path)
    assert where.startswith(str(purelib)), where

    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": live_app.services.settings.database_url}
    html = run(venv / "bin" / "countersign", "export", "--id", str(entry_id), "--format", "html", cwd=tmp_path, env=env)
    assert html.startswith("<!doctype html>"), html[:200]
    for number, question in enumerate(QUESTIONS, 1):
        assert f"{number}. {question}" in html
    assert "Ledger verified" in html


def dependency_paths() -> list[str]:
    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()}
    return sorted(p for p in paths if Path(p).is_dir())


def run(*command: object, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout
