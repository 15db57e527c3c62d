"""Role structure: documented defaults, one template per object, no secret in a template."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.deploy.tooling import REPO, ROLES

ROLES_DIR = REPO / "roles"


@pytest.mark.parametrize("role", ROLES)
def test_role_has_its_entry_points(role: str) -> None:
    for part in (
        "defaults/main.yml",
        "meta/main.yml",
        "meta/argument_specs.yml",
        "tasks/main.yml",
        "tasks/teardown.yml",
        "tasks/verify.yml",
    ):
        assert (ROLES_DIR / role / part).is_file(), f"roles/{role}/{part} is missing"


@pytest.mark.parametrize("role", ROLES)
def test_argument_specs_document_every_default(role: str) -> None:
    defaults = yaml.safe_load((ROLES_DIR / role / "defaults/main.yml").read_text()) or {}
    specs = yaml.safe_load((ROLES_DIR / role / "meta/argument_specs.yml").read_text())
    options = specs["argument_specs"]["main"]["options"]
    undocumented = sorted(set(defaults) - set(options))
    assert not undocumented, f"roles/{role}: defaults without argument_specs: {undocumented}"
    for name, option in options.items():
        assert option.get("description"), f"roles/{role}: {name} has no description"
        if name in defaults and "default" in option:
            assert option["default"] == defaults[name], f"roles/{role}: {name} default differs"


@pytest.mark.parametrize("role", ROLES)
def test_every_template_is_applied_by_the_role(role: str) -> None:
    """A template on disk that no task applies would be validated yet never deployed."""
    templates = {p.name for p in (ROLES_DIR / role / "templates").glob("*.j2")}
    role_text = "\n".join(p.read_text() for p in (ROLES_DIR / role).glob("*/*.yml"))
    unused = sorted(t for t in templates if t not in role_text)
    assert not unused, f"roles/{role}: templates no task refers to: {unused}"


# Keys whose value would be a credential if it were written out.
SECRET_KEY = re.compile(r"(?i)^(\w*password\w*|\w*passwd\w*|\w*token|requirepass|database_url)$")


@pytest.mark.parametrize(
    "template", sorted(ROLES_DIR.glob("*/templates/*.j2")), ids=lambda p: p.name
)
def test_no_template_holds_a_literal_secret(template) -> None:
    text = template.read_text()
    assert not re.search(r"\w+://[^{\s/]*:[^{\s@]+@", text), "a URL with credentials"
    # An env var named like a credential gets its value from a Secret, never inline.
    inline = re.search(r"- name: (\w*(PASSWORD|TOKEN|DATABASE_URL)\w*)\n\s+value:", text)
    assert not inline, f"{inline.group(1)} has an inline value"
    for number, line in enumerate(text.splitlines(), 1):
        key, sep, value = line.strip().removeprefix("- ").partition(":")
        value = value.strip()
        if sep and value and SECRET_KEY.match(key) and value not in ("true", "false"):
            assert "{{" in value, f"{template.relative_to(REPO)}:{number}: literal {key}"


def test_secret_templates_only_hold_computed_data() -> None:
    templates = sorted(ROLES_DIR.glob("*/templates/secret*.j2"))
    assert templates
    for template in templates:
        text = template.read_text()
        assert not re.search(r"(?m)^stringData:", text), (
            f"{template.name}: use data (re-applies equal)"
        )
        data = text.split("\ndata:\n", 1)[1]
        entries = re.findall(r"(?m)^  (\{\{.*?\}\}|\S+): (.*)$", data)
        assert entries, template.name
        for key, value in entries:
            assert value.startswith("{{"), f"{template.name}: {key} is not computed"
        assert data.count("b64encode }}") == len(entries), f"{template.name}: every value encoded"


# A task reading, generating, checking or applying a credential.
TOUCHES_SECRET = re.compile(
    r"kind: Secret|secret[\w-]*\.yml\.j2|secret_templates?\b|password_effective"
)


def tasks_of(path):
    for task in yaml.safe_load(path.read_text()) or []:
        yield from task.get("block", [task])


def test_every_task_touching_a_secret_hides_its_output() -> None:
    touching = []
    for tasks_file in ROLES_DIR.glob("*/tasks/*.yml"):
        for task in tasks_of(tasks_file):
            body = yaml.safe_dump({k: v for k, v in task.items() if k not in ("name", "fail_msg")})
            if TOUCHES_SECRET.search(body):
                touching.append(task["name"])
                where = f"{tasks_file.relative_to(REPO)}: {task['name']}"
                assert task.get("no_log") is True, where
    # Guards the pattern: the generating and applying tasks are among those found.
    assert {
        "Choose the Redis password",
        "Apply the Redis Secret",
        "Apply the PostgreSQL Secrets",
    } <= set(touching)
