"""terraform fmt, the generated README tables, and what must (not) be committed."""

from __future__ import annotations

import subprocess

from tests.terraform.support import (
    HCL2_PYTHON,
    REPO,
    TERRAFORM_DIR,
    TFDOCS,
    require_tool,
    terraform_env,
)


def test_terraform_fmt_is_clean(terraform_cmd: list[str]) -> None:
    result = subprocess.run(
        [*terraform_cmd, "fmt", "-check", "-recursive", "-diff", "-no-color", str(TERRAFORM_DIR)],
        capture_output=True,
        text=True,
        env=terraform_env(),
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, f"run `terraform fmt -recursive terraform/`:\n{result.stdout}"


def test_readme_tables_match_the_hcl() -> None:
    """The Inputs/Outputs tables between the TF_DOCS markers are generated from the HCL."""
    python = require_tool(HCL2_PYTHON, "The python-hcl2 venv")
    result = subprocess.run(
        [str(python), str(TFDOCS), "--check", str(TERRAFORM_DIR / "README.md")],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, (
        "terraform/README.md is out of date with the HCL; regenerate with "
        f"`.tools/hcl2/bin/python tools/hcl2/tfdocs.py terraform/README.md`:\n{result.stdout}"
        f"{result.stderr}"
    )


def test_readme_has_a_table_for_each_module() -> None:
    readme = (TERRAFORM_DIR / "README.md").read_text(encoding="utf-8")
    for module in (".", "bootstrap"):
        assert f"<!-- BEGIN_TF_DOCS {module} -->" in readme
        assert f"<!-- END_TF_DOCS {module} -->" in readme


def test_no_lock_file_state_or_real_tfvars_is_committed() -> None:
    """A lock file can only come from `terraform init`, which cannot reach the registry here;
    state and real tfvars hold secrets."""
    tracked = subprocess.run(
        ["git", "ls-files", "terraform"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    forbidden = [
        path
        for path in tracked
        if path.endswith((".terraform.lock.hcl", ".tfstate", ".tfvars", "backend.hcl"))
        or ".tfstate." in path
        or "/.terraform/" in path
    ]
    assert forbidden == []


def test_real_settings_files_are_gitignored() -> None:
    for path in (
        "terraform/terraform.tfvars",
        "terraform/bootstrap/terraform.tfvars",
        "terraform/backend.hcl",
        "terraform/terraform.tfstate",
        "terraform/bootstrap/terraform.tfstate",
        "terraform/local_override.tf",
    ):
        ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO, check=False)
        assert ignored.returncode == 0, f"{path} is not gitignored"
