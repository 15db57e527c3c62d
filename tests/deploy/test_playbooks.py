"""Static checks of the Ansible content: syntax, ansible-lint (production), yamllint."""

from __future__ import annotations

import re

import pytest

from tests.deploy.tooling import PLAYBOOKS, run_tool


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_playbook_syntax(playbook: str) -> None:
    result = run_tool("ansible-playbook", "--syntax-check", f"playbooks/{playbook}.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ansible_lint_production_profile_has_no_findings() -> None:
    result = run_tool("ansible-lint", "--nocolor")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert re.search(r"0 failure\(s\), 0 warning\(s\)", output), output
    assert "Profile 'production' was required, and it passed" in output, output


def test_yamllint_is_clean() -> None:
    result = run_tool(
        "yamllint",
        "--strict",
        "-c",
        ".yamllint.yml",
        ".ansible-lint",
        ".yamllint.yml",
        "roles",
        "playbooks",
        "inventory",
    )
    assert result.returncode == 0, result.stdout + result.stderr
