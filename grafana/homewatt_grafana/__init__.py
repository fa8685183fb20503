"""homewatt's Grafana side as code: dashboards, alert rules and provisioning files.

Generated with grafana-foundation-sdk (Grafana's typed builders, the build for Grafana 11.6) from
`contracts/influxdb-grafana.json`; `grafana/generate.py` writes the files under `grafana/` and
`grafana/generate.py --check` fails when a committed file differs from what the code generates.
"""
