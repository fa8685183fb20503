"""Helpers for the terraform/ tests: paths, the parsed modules, the Terraform harness."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = REPO / "terraform"
MODULES = {"main": TERRAFORM_DIR, "bootstrap": TERRAFORM_DIR / "bootstrap"}
CONTRACT = REPO / "contracts" / "backup-azure.json"
HCL2_PYTHON = REPO / ".tools" / "hcl2" / "bin" / "python"
CHECKOV = REPO / ".tools" / "checkov" / "bin" / "checkov"
HCL_DUMP = Path(__file__).with_name("hcl_dump.py")
TFDOCS = REPO / "tools" / "hcl2" / "tfdocs.py"
TF_SHIM = Path(__file__).with_name("tf_shim.py")


def require_tool(path: Path, what: str) -> Path:
    """The tool at `path`, or a test failure that says how to get it."""
    if not path.exists():
        pytest.fail(
            f"{what} is missing ({path.relative_to(REPO)}): run ./scripts/bootstrap, which builds "
            f"it from tools/{path.parts[-3]}/requirements.txt",
            pytrace=False,
        )
    return path


def unwrap(value: Any) -> str:
    """A parsed HCL value as expression text: '${expr}' -> 'expr', literals as they are."""
    text = value if isinstance(value, str) else json.dumps(value)
    match = re.fullmatch(r"\$\{(.*)\}", text, re.DOTALL)
    return match.group(1) if match else text


@dataclass
class Module:
    """One root module's parsed HCL, merged across its files."""

    name: str
    path: Path
    files: dict[str, dict[str, Any]]
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)  # "type.name" -> body
    data: dict[str, dict[str, Any]] = field(default_factory=dict)  # "type.name" -> body
    locals: dict[str, Any] = field(default_factory=dict)
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)
    terraform: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for parsed in self.files.values():
            for block in parsed.get("variable", []):
                self.variables.update(block)
            for block in parsed.get("output", []):
                self.outputs.update(block)
            for kind, target in (("resource", self.resources), ("data", self.data)):
                for block in parsed.get(kind, []):
                    for rtype, named in block.items():
                        for rname, body in named.items():
                            target[f"{rtype}.{rname}"] = body
            for block in parsed.get("locals", []):
                self.locals.update(block)
            for block in parsed.get("provider", []):
                self.providers.update(block)
            self.terraform.extend(parsed.get("terraform", []))

    def text(self, filename: str) -> str:
        return (self.path / filename).read_text(encoding="utf-8")


# --- Terraform itself, without providers ------------------------------------------------------


def terraform_env() -> dict[str, str]:
    env = dict(os.environ)
    config = env.get("TF_CLI_CONFIG_FILE")
    if config and not Path(config).exists():
        del env["TF_CLI_CONFIG_FILE"]  # a dangling CLI config only adds warnings
    env.update(CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1", TF_INPUT="0")
    return env


# Stand-ins for the resource attributes outputs.tf reads, so Terraform can evaluate the real
# output expressions. The SAS mirrors the azurerm data source: a query string with a leading '?'.
STUBS = """
locals {
  resource_group_name = var.resource_group_name
  stub_account = {
    name = var.storage_account_name
    id = join("/", ["/subscriptions/00000000-0000-0000-0000-000000000000", "resourceGroups",
      var.resource_group_name, "providers/Microsoft.Storage/storageAccounts",
    var.storage_account_name])
    primary_blob_endpoint = "https://${var.storage_account_name}.blob.core.windows.net/"
  }
  stub_containers = {
    for site, name in local.containers : site => {
      name = name
      id   = "${local.stub_account.id}/blobServices/default/containers/${name}"
    }
  }
  stub_sas = {
    for site, permissions in local.sas_permissions : site => {
      sas    = "?sv=2022-11-02&spr=https&se=2030-04-01T00%3A00%3A00Z&sr=c&sp=${permissions}&sig=x"
      expiry = "2030-04-01T00:00:00Z"
    }
  }
  stub_rotation = {
    for site in keys(local.sas_permissions) : site => { rotation_rfc3339 = "2030-03-02T00:00:00Z" }
  }
}

output "harness_locals" {
  value = {
    backup_kinds                 = local.backup_kinds
    sas_permissions_by_retention = local.sas_permissions_by_retention
    containers                   = local.containers
    sas_permissions              = local.sas_permissions
    sas_rotation_days            = local.sas_rotation_days
    sas_start_offset             = local.sas_start_offset
    sas_expiry_offset            = local.sas_expiry_offset
    sas_expiration_period        = local.sas_expiration_period
    entra_sites                  = local.entra_sites
    entra_writer_role_needed     = local.entra_writer_role_needed
    lifecycle_rules              = local.lifecycle_rules
    immutability_days            = local.immutability_days
  }
}
"""
RESOURCE_STANDINS = {
    "data.azurerm_storage_account_blob_container_sas.this": "local.stub_sas",
    "azurerm_storage_container.this": "local.stub_containers",
    "azurerm_storage_account.this": "local.stub_account",
    "time_rotating.sas": "local.stub_rotation",
}
RESOURCE_REFERENCE = re.compile(r"\b(?:data\.)?(?:azurerm|time)_\w+\.\w+")


class TerraformError(AssertionError):
    """Terraform refused the inputs; .messages holds each error's summary and detail."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = messages


def terraform_version(command: list[str]) -> tuple[int, ...]:
    """(major, minor) of the Terraform that `command` runs, (0,) when it does not run."""
    try:
        result = subprocess.run(
            [*command, "version", "-json"],
            capture_output=True,
            text=True,
            env=terraform_env(),
            check=False,
            timeout=60,
        )
        version = json.loads(result.stdout)["terraform_version"]
    except (OSError, ValueError, KeyError, subprocess.TimeoutExpired):
        return (0,)
    return tuple(int(part) for part in version.split(".")[:2])


@dataclass
class Harness:
    """variables.tf + locals.tf + outputs.tf (resource attributes stood in) in a scratch dir."""

    terraform: list[str]
    workdir: Path

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.terraform, *args],
            cwd=self.workdir,
            env=terraform_env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )

    def init(self) -> None:
        result = self._run("init", "-input=false", "-backend=false", "-no-color")
        assert result.returncode == 0, f"terraform init (no providers) failed:\n{result.stderr}"

    def plan(self, variables: dict[str, Any] | Path, tag: str) -> Path:
        """Plan with these inputs (a dict, or a tfvars file to copy in); the plan file, or
        TerraformError with Terraform's errors."""
        if isinstance(variables, Path):
            varfile = self.workdir / f"{tag}.tfvars"
            shutil.copy(variables, varfile)
        else:
            varfile = self.workdir / f"{tag}.tfvars.json"
            varfile.write_text(json.dumps(variables), encoding="utf-8")
        planfile = self.workdir / f"{tag}.tfplan"
        result = self._run(
            "plan",
            "-json",
            "-input=false",
            "-lock=false",
            f"-var-file={varfile.name}",
            f"-out={planfile.name}",
        )
        errors = []
        for line in result.stdout.splitlines():
            message = json.loads(line)
            diagnostic = message.get("diagnostic", {})
            if message.get("type") == "diagnostic" and diagnostic.get("severity") == "error":
                errors.append(f"{diagnostic.get('summary', '')}: {diagnostic.get('detail', '')}")
        if result.returncode != 0:
            raise TerraformError(errors or [result.stderr or result.stdout])
        return planfile

    def outputs(self, variables: dict[str, Any], tag: str) -> dict[str, Any]:
        """The planned output values ({name: {"value": ..., "sensitive": ...}})."""
        planfile = self.plan(variables, tag)
        shown = self._run("show", "-json", planfile.name)
        assert shown.returncode == 0, shown.stderr
        return json.loads(shown.stdout)["planned_values"]["outputs"]

    def errors(self, variables: dict[str, Any] | Path, tag: str) -> list[str]:
        """Terraform's error messages for these inputs ([] when it accepts them)."""
        try:
            self.plan(variables, tag)
        except TerraformError as exc:
            return exc.messages
        return []


# The smallest valid inputs of the main module; tests add to or change a copy.
BASE_INPUTS: dict[str, Any] = {
    "location": "westeurope",
    "storage_account_name": "homewattbackup1",
    "sites": {"home": {}},
}


def inputs(**changes: Any) -> dict[str, Any]:
    return {**json.loads(json.dumps(BASE_INPUTS)), **changes}
