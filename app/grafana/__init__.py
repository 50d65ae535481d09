"""Grafana dashboards as code: the SLO overview, one SLO in detail and sloguard's own health, built
with grafana-foundation-sdk (`dashboards.py`) and written by `sloguard grafana dashboards` (`cli.py`)."""
