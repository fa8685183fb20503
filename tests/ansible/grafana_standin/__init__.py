"""The Grafana stand-in image, `homewatt-test/grafana-standin:<hash>` (NOT Grafana).

The official grafana/grafana image cannot be pulled here, and no Grafana server runs here at
all. The grafana role's Molecule tests need only a container that behaves like Grafana's for
orchestration: the stand-in (`grafana-server` beside this file) runs as the official image's
user (uid 472, group 0) with its paths (/var/lib/grafana, /usr/share/grafana, GF_PATHS_*),
port 3000, curl for the role's healthcheck, and `grafana cli` for the admin password reset.
It checks mounts, environment and readable secrets, answers /api/health, and stops on SIGTERM
as Grafana does (not after Docker's 10 s kill timeout); nothing else of Grafana is there. Built
once per content hash FROM the slim stand-in base (tests/support/standin_base.py, which the
InfluxDB 2 stand-in shares: one layer to load for both), without its gosu.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.support import standin_base

HERE = Path(__file__).resolve().parent
IMAGE = "homewatt-test/grafana-standin"


def dockerfile(base: str) -> str:
    return f"""\
# The homewatt Grafana stand-in (NOT Grafana): tests/ansible/grafana_standin/ says what it is.
FROM {base}
RUN DEBIAN_FRONTEND=noninteractive dpkg --purge gosu \\
 && useradd --system --uid 472 --gid 0 --home-dir /usr/share/grafana --no-create-home grafana \\
 && mkdir -p /usr/share/grafana/bin /var/lib/grafana /etc/grafana/provisioning /var/log/grafana \\
 && chown -R 472:0 /var/lib/grafana /var/log/grafana
COPY grafana-server /usr/share/grafana/bin/grafana
RUN chmod 0755 /usr/share/grafana/bin/grafana \\
 && ln -s /usr/share/grafana/bin/grafana /usr/local/bin/grafana
ENV GF_PATHS_CONFIG=/etc/grafana/grafana.ini GF_PATHS_DATA=/var/lib/grafana \\
    GF_PATHS_HOME=/usr/share/grafana GF_PATHS_LOGS=/var/log/grafana \\
    GF_PATHS_PLUGINS=/var/lib/grafana/plugins GF_PATHS_PROVISIONING=/etc/grafana/provisioning
WORKDIR /usr/share/grafana
USER 472
EXPOSE 3000
ENTRYPOINT ["/usr/share/grafana/bin/grafana", "server"]
LABEL org.opencontainers.image.title="homewatt Grafana stand-in (not Grafana)"
"""


def _tag(slim: str) -> str:
    digest = hashlib.sha256(dockerfile(slim).encode() + (HERE / "grafana-server").read_bytes())
    return f"{IMAGE}:{digest.hexdigest()[:16]}"


def tag_for(base: str) -> str:
    """The image's tag when built from the rig's bookworm image `base`."""
    return _tag(standin_base.tag_for(base))


def build_image(docker: standin_base.Docker, base: str) -> str:
    """Build (or find) the image from the rig's bookworm image `base` (through the slim
    stand-in base); return its content-hash tag."""
    slim = standin_base.build_image(docker, base)

    def write_context(context: Path) -> None:
        (context / "Dockerfile").write_text(dockerfile(slim))
        (context / "grafana-server").write_bytes((HERE / "grafana-server").read_bytes())

    return standin_base.build_once(docker, _tag(slim), write_context)
