"""The Dockerfile, compose.yaml, .env.example and the systemd units, checked without a container engine: their
structure, that no secret is written into them, and that the commands the README shows are the ones they run."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from conftest import CORE_VARIABLES
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from gating.cli import main

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("migrate", "web", "worker")
# Being built alongside: until `countersign worker` exists, compose and the units may already declare it.
PENDING_COMMANDS = {("worker",)}

# PRODUCT.md's table of environment variables: .env.example documents every one.
PRODUCT_VARIABLES = (
    *CORE_VARIABLES,
    "GITHUB_CLIENT_ID",
    "GITHUB_CLIENT_SECRET",
    "OIDC_ISSUER",
    "OIDC_CLIENT_ID",
    "OIDC_CLIENT_SECRET",
    "COUNTERSIGN_SECRET_KEY",
    "COUNTERSIGN_CHECKPOINT_DIR",
    "LOG_LEVEL",
)
SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|PRIVATE_KEY)$")


# ----- the Dockerfile -----


@dataclass
class Instruction:
    keyword: str
    arguments: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def dockerfile_instructions(text: str) -> Iterator[Instruction]:
    """Instructions with their continuation lines joined; comments and blank lines dropped."""
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        joined = " ".join(part for part in pending if part)
        pending = []
        keyword, _, arguments = joined.partition(" ")
        yield Instruction(keyword.upper(), arguments.strip(), start)
    assert not pending, "the Dockerfile ends inside a continued instruction"


def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    """The global ARGs (with defaults) and the stages."""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for instruction in dockerfile_instructions((ROOT / "Dockerfile").read_text()):
        if instruction.keyword == "FROM":
            words = instruction.arguments.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif instruction.keyword == "ARG" and not stages:
            name, _, default = instruction.arguments.partition("=")
            args[name] = default
        else:
            assert stages, f"line {instruction.line}: {instruction.keyword} before the first FROM"
            stages[-1].instructions.append(instruction)
    return args, stages


def lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", line
            pins[canonicalize_name(requirement.name)] = specifier.version
    return pins


def pip_installs(stage: Stage) -> list[list[str]]:
    """The words after `pip … install` of every pip install the stage runs."""
    found = []
    for run in stage.all("RUN"):
        for command in re.split(r"&&|;", run.arguments):
            words = shlex.split(command)
            if "pip" in words and "install" in words:
                found.append(words[words.index("install") + 1 :])
    return found


def test_the_image_is_built_in_two_stages_from_a_slim_python_3_11_or_newer() -> None:
    args, stages = dockerfile()
    assert [stage.name for stage in stages] == ["build", "runtime"]
    for stage in stages:
        image, _, tag = stage.base.partition(":")
        assert image == "python", stage.base
        version = re.match(r"3\.(\d+)-slim", tag)
        assert version and int(version.group(1)) >= 11, stage.base
    # One base for both, so that the venv's interpreter path in the build stage is the runtime stage's.
    assert stages[0].base == stages[1].base == args["PYTHON_IMAGE"]


def test_the_runtime_stage_runs_as_an_unprivileged_user_and_installs_nothing() -> None:
    _, stages = dockerfile()
    runtime = stages[-1]
    users = runtime.all("USER")
    assert users, "no USER in the final stage: it would run as root"
    user = users[-1].arguments.split(":")[0]
    assert user not in ("root", "0") and user.isdigit() and int(user) >= 1000
    last_run = max(i.line for i in runtime.all("RUN"))
    assert users[-1].line > last_run  # nothing after it runs as root
    assert pip_installs(runtime) == []
    text = " ".join(i.arguments for i in runtime.all("RUN"))
    assert "apt-get" not in text and "apk" not in text  # no compilers or build packages to install
    assert "pip uninstall" in text  # not even the base image's installers are left
    copies = runtime.all("COPY")
    assert [c.arguments for c in copies] == ["--from=build /opt/countersign /opt/countersign"]


def test_every_pip_install_is_pinned_by_the_lock_and_leaves_no_cache() -> None:
    _, stages = dockerfile()
    pins = lock()
    installs = pip_installs(stages[0])
    assert installs, "the build stage installs nothing"
    for words in installs:
        assert "--no-cache-dir" in words, words
        constrained = "--constraint" in words and words[words.index("--constraint") + 1] == "requirements.lock"
        packages = [w for w in words if not w.startswith("-") and w != "requirements.lock"]
        for package in packages:
            if package.startswith('"$(ls /wheels/') or package.startswith("$(ls /wheels/"):
                # Countersign's own wheel, built in this stage: its dependencies come from the lock.
                assert constrained and "--only-binary=:all:" in words, words
                continue
            requirement = Requirement(package)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", f"unpinned: {package}"
            assert pins[canonicalize_name(requirement.name)] == specifier.version, f"{package} differs from the lock"


def test_the_lock_pins_every_runtime_dependency_the_image_installs() -> None:
    # What `pip install --constraint requirements.lock countersign-gate[postgres]` pulls in: each must be pinned,
    # or the image would install whatever version is newest on the day it is built.
    pins = lock()
    seen: set[str] = set()
    pending = [("countersign-gate", frozenset({"postgres"}))]
    while pending:
        name, extras = pending.pop()
        for text in metadata.distribution(name).requires or []:
            requirement = Requirement(text)
            environments = [{"extra": extra} for extra in extras] or [{"extra": ""}]
            if requirement.marker and not any(requirement.marker.evaluate(env) for env in environments):
                continue
            dependency = canonicalize_name(requirement.name)
            assert dependency in pins, f"{dependency} (needed by {name}) is not pinned in requirements.lock"
            if dependency not in seen:
                seen.add(dependency)
                pending.append((dependency, frozenset(requirement.extras)))
    assert {"flask", "gunicorn", "psycopg", "psycopg-binary", "sqlalchemy"} <= seen


def test_the_image_checks_its_health_and_runs_countersign() -> None:
    _, stages = dockerfile()
    runtime = stages[-1]
    (healthcheck,) = runtime.all("HEALTHCHECK")
    assert "/healthz" in healthcheck.arguments and "--interval=" in healthcheck.arguments
    (entrypoint,) = runtime.all("ENTRYPOINT")
    (cmd,) = runtime.all("CMD")
    assert (entrypoint.arguments, cmd.arguments) == ('["countersign"]', '["serve"]')
    env = " ".join(i.arguments for i in runtime.all("ENV"))
    assert "PORT=8000" in env and "/opt/countersign/bin" in env
    assert "EXPOSE" in [i.keyword for i in runtime.instructions]


def test_the_build_context_is_an_allow_list_without_secrets() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"  # everything out, then only what the image is built from back in
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    _, stages = dockerfile()
    copied = {
        source.rstrip("/")
        for copy in stages[0].all("COPY")
        for source in copy.arguments.split()[:-1]
        if not source.startswith("--")
    }
    assert copied == allowed
    assert not allowed & {".env", "secrets", ".venv", "node_modules", "instance", "tests", ".git"}


@pytest.mark.skipif(shutil.which("hadolint", path=str(Path(sys.executable).parent)) is None, reason="no hadolint")
def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint
    result = subprocess.run([hadolint, "Dockerfile"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# ----- compose.yaml -----


def compose() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert isinstance(document, dict)
    return document


def test_compose_runs_postgres_then_the_migrations_then_web_and_worker() -> None:
    services = compose()["services"]
    assert set(services) == {"db", *APP_SERVICES}
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    for name in ("web", "worker"):
        assert services[name]["depends_on"] == {
            "db": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }
    assert services["web"]["command"] == ["serve"]
    assert services["worker"]["command"] == ["worker"]
    images = {services[name]["image"] for name in APP_SERVICES}
    assert len(images) == 1  # one image runs all three
    assert {services[name]["build"] for name in APP_SERVICES} == {"."}


def test_compose_healthchecks() -> None:
    services = compose()["services"]
    db = services["db"]["healthcheck"]
    assert db["test"][0] == "CMD" and db["test"][1] == "pg_isready"
    assert "--username=countersign" in db["test"] and "--dbname=countersign" in db["test"]
    # web keeps the image's HEALTHCHECK (GET /healthz); worker and migrate serve no HTTP.
    assert "healthcheck" not in services["web"]
    assert services["worker"]["healthcheck"] == {"disable": True}
    assert services["migrate"]["healthcheck"] == {"disable": True}
    # Docker's stop timeout must leave gunicorn its graceful timeout (30 s).
    for name in ("web", "worker"):
        assert int(services[name]["stop_grace_period"].rstrip("s")) > 30


def test_compose_inlines_no_secret() -> None:
    document = compose()
    services = document["services"]
    for name in APP_SERVICES:
        assert services[name]["env_file"] == ".env"
    for name, service in services.items():
        for variable, value in (service.get("environment") or {}).items():
            value = str(value)
            if SECRET_NAME.search(variable):
                assert re.fullmatch(r"\$\{\w+(:\?[^}]*)?\}", value), f"{name}: {variable} is written in compose.yaml"
            if "://" in value and "@" in value:
                userinfo = value.split("://", 1)[1].split("@", 1)[0]
                assert re.fullmatch(r"\w+:\$\{\w+(:\?[^}]*)?\}", userinfo), f"{name}: a password in {variable}"
    assert {secret["file"] for secret in document["secrets"].values()} <= {
        "./secrets/github-app.pem",
        "./secrets/ledger.pem",
    }
    text = (ROOT / "compose.yaml").read_text()
    assert "PRIVATE KEY" not in text and not re.search(r"\b(ghs|ghp|cs)_\w{10,}", text)
    ignored = subprocess.run(
        ["git", "check-ignore", ".env", "secrets/github-app.pem"], cwd=ROOT, capture_output=True, text=True
    )
    assert ignored.stdout.split() == [".env", "secrets/github-app.pem"]


def test_the_key_paths_compose_sets_are_where_it_mounts_the_secrets() -> None:
    services = compose()["services"]
    for name in APP_SERVICES:
        environment = services[name]["environment"]
        mounted = {f"/run/secrets/{secret}" for secret in services[name]["secrets"]}
        assert {environment["GITHUB_APP_PRIVATE_KEY_PATH"], environment["COUNTERSIGN_SIGNING_KEY_PATH"]} == mounted


def env_example() -> dict[str, str]:
    """Every NAME=value line of .env.example, commented out or not."""
    found = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.fullmatch(r"#?([A-Z][A-Z0-9_]*)=(.*)", line.strip())
        if match:
            found[match.group(1)] = match.group(2)
    return found


def readme_variables() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    first_column = [row.split("|")[1] for row in section.splitlines() if row.startswith("| `")]
    return {name for cell in first_column for name in re.findall(r"`([A-Z_]+)`", cell)}


def test_env_example_documents_every_variable_without_a_value_that_is_secret() -> None:
    documented = env_example()
    missing = (set(PRODUCT_VARIABLES) | readme_variables()) - set(documented)
    assert not missing, f".env.example lacks {sorted(missing)}"
    assert "POSTGRES_PASSWORD" in documented
    for name, value in documented.items():
        if SECRET_NAME.search(name):
            assert value == "", f".env.example gives {name} a value"


# ----- the README's commands are the ones the files run -----


def resolve(args: list[str]) -> click.Command | None:
    """The `countersign` command these arguments name, with its options parsed as the real CLI parses them."""
    command: click.Command = main
    rest = list(args)
    context = click.Context(main)
    while isinstance(command, click.Group):
        if not rest:
            return None
        found = command.get_command(context, rest.pop(0))
        if found is None:
            return None
        command = found
    command.make_context(command.name or "", rest)
    return command


def check_runs(args: list[str]) -> None:
    if tuple(args) in PENDING_COMMANDS and resolve(args) is None:
        return
    assert resolve(args) is not None, f"`countersign {' '.join(args)}` is not a command"


def production_section() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split("\n## Production\n", 1)[1].split("\n## ", 1)[0]


def shell_lines(markdown: str) -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", markdown, flags=re.S)
    return [line.split("#", 1)[0].strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_the_readme_shows_the_commands_the_files_run() -> None:
    section = production_section()
    services = compose()["services"]
    commands = shell_lines(section)
    assert "docker compose up -d" in commands
    runs = [shlex.split(line) for line in commands if line.startswith("docker compose run")]
    assert runs, "the README shows no `docker compose run`"
    for words in runs:
        rest = [w for w in words[3:] if w not in ("--rm", "-T")]
        rest = rest[: rest.index(">")] if ">" in rest else rest
        service, args = rest[0], rest[1:]
        assert service in services, f"{service} is not a service of compose.yaml"
        check_runs(args)
    for name in APP_SERVICES:
        shown = "countersign " + " ".join(services[name]["command"])
        assert f"`{shown}`" in section, f"the README does not say that {name} runs `{shown}`"
        check_runs(services[name]["command"])
    assert "`docker compose up`" in section and "`pg_isready`" in section


def unit(name: str) -> dict[str, list[str]]:
    """A systemd unit's `Key=value` settings (a key may repeat)."""
    settings: dict[str, list[str]] = {}
    for line in (ROOT / "deploy" / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_the_systemd_units_run_the_commands_the_readme_shows() -> None:
    section = production_section()
    units = sorted(path.name for path in (ROOT / "deploy").glob("*.service"))
    assert units == ["countersign-migrate.service", "countersign-web.service", "countersign-worker.service"]
    for name in units:
        settings = unit(name)
        (exec_start,) = settings["ExecStart"]
        program, *args = shlex.split(exec_start)
        assert program == "/opt/countersign/bin/countersign"
        check_runs(args)
        assert f"`countersign {' '.join(args)}`" in section, f"the README does not show {name}'s command"
        assert f"`{name.removesuffix('.service')}`" in section
        assert settings["DynamicUser"] == ["yes"] and settings["EnvironmentFile"] == [
            "/etc/countersign/countersign.env"
        ]
    for name in ("countersign-web.service", "countersign-worker.service"):
        settings = unit(name)
        assert settings["Requires"] == ["countersign-migrate.service"]
        assert "countersign-migrate.service" in settings["After"][0]
        assert settings["KillMode"] == ["mixed"] and int(settings["TimeoutStopSec"][0]) > 30
        assert "GITHUB_APP_PRIVATE_KEY_PATH=%d/github-app.pem" in settings["Environment"]
    assert unit("countersign-migrate.service")["Type"] == ["oneshot"]
    assert unit("countersign-web.service")["Type"] == ["notify"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    countersign = Path(sys.executable).parent / "countersign"
    for path in (ROOT / "deploy").glob("*.service"):
        # The units name the install's path; point them at this one so that systemd can check the program too.
        (tmp_path / path.name).write_text(
            path.read_text().replace("/opt/countersign/bin/countersign", str(countersign))
        )
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *sorted(str(p) for p in tmp_path.glob("*.service"))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_with_a_worker_service_the_web_only_stores_and_answers() -> None:
    import yaml

    services = yaml.safe_load((Path(__file__).resolve().parent.parent / "compose.yaml").read_text())["services"]
    assert services["worker"]["command"] == ["worker"]
    assert services["web"]["environment"]["COUNTERSIGN_EMBEDDED_WORKER"] == "false"
    assert "COUNTERSIGN_EMBEDDED_WORKER" not in services["worker"]["environment"]
