"""Static checks of the Dockerfile (no container engine here: CI builds it with buildah)."""

from __future__ import annotations

import re

from tests.deploy.tooling import REPO

DOCKERFILE = (REPO / "Dockerfile").read_text()
COMPILERS = re.compile(r"\b(gcc|g\+\+|clang|build-essential|make|python3?-dev|libc6?-dev)\b")


def stages() -> list[str]:
    """The text of each FROM stage, in order."""
    return re.split(r"(?m)^FROM ", DOCKERFILE)[1:]


def instructions(stage: str) -> list[str]:
    """Instructions of a stage, continuation lines joined, comments dropped."""
    logical = re.sub(r"\\\n\s*", " ", stage)
    return [
        line for line in logical.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]


def test_base_image_is_a_build_argument_defaulting_to_python_slim() -> None:
    before_first_from = DOCKERFILE.split("\nFROM ", 1)[0]
    assert re.search(r"(?m)^ARG BASE_IMAGE=python:3\.11-slim$", before_first_from)
    assert all(stage.startswith("${BASE_IMAGE} AS ") for stage in stages())


def test_multi_stage_builder_makes_the_wheel_runtime_installs_it() -> None:
    builder, runtime = stages()
    assert builder.startswith("${BASE_IMAGE} AS builder")
    assert any(re.search(r"pip wheel .*--wheel-dir /wheels \.$", i) for i in instructions(builder))
    installs = [i for i in instructions(runtime) if "pip install" in i]
    assert len(installs) == 1
    assert "--no-index" in installs[0] and "from=builder" in installs[0]
    assert installs[0].rstrip().endswith("cloudnative-journey")


def test_runtime_has_no_compiler_and_runs_as_uid_10001() -> None:
    _builder, runtime = stages()
    for instruction in instructions(runtime):
        if instruction.startswith("RUN"):
            assert not COMPILERS.search(instruction), instruction
    users = [i for i in instructions(runtime) if i.startswith("USER ")]
    assert users and users[-1].split()[1].split(":")[0] == "10001"
    assert re.search(r"useradd .*--uid 10001", " ".join(instructions(runtime)))
    assert "PYTHONDONTWRITEBYTECODE=1" in runtime


def test_oci_labels() -> None:
    _builder, runtime = stages()
    labels = set(re.findall(r"org\.opencontainers\.image\.(\w+(?:\.\w+)?)=", runtime))
    assert {
        "title",
        "description",
        "version",
        "revision",
        "source",
        "licenses",
        "created",
    } <= labels


def test_dockerignore_is_an_allow_list_of_the_sources() -> None:
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "everything excluded first, then the build inputs allowed"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "app", "agents"}
    copied = set(re.findall(r"(?m)^COPY (?!--from)(.+) \S+$", DOCKERFILE))
    sources = {word.rstrip("/") for entry in copied for word in entry.split()}
    assert sources <= allowed, f"COPY of files the context excludes: {sources - allowed}"
