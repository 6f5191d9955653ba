#!/usr/bin/env python3
"""Renders the netstat_exporter mixin with its default _config into the shipped files.

    python3 deploy/mixin/render.py            # rewrite the shipped files (below), then review the diff
    python3 deploy/mixin/render.py --out DIR  # write DIR/dashboards/*.json and DIR/deploy/prometheus/alerts.yml only

Writes dashboards/<name> for every entry of grafanaDashboards and deploy/prometheus/alerts.yml
from prometheusAlerts, then (without --out) regenerates what derives from alerts.yml:
deploy/kubernetes/prometheusrule.yaml (gen_prometheusrule.py) and the expected annotations of
deploy/prometheus/alerts_test.yml (gen_alerts_test.py). tests/it/mixin.rs fails when the shipped
files differ from a fresh render.

Needs the PyPI package `jsonnet` (module _jsonnet) and PyYAML.
"""
import argparse
import json
import os
import subprocess
import sys

import _jsonnet
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))

ALERTS_HEADER = """\
# Alert rules for netstat_exporter. GENERATED from the mixin (deploy/mixin/, default _config) by
# `python3 deploy/mixin/render.py`: edit the mixin, not this file. See docs/mixin.md to import
# the mixin with your own selectors and thresholds.
#
# Load with `rule_files:` in prometheus.yml (or, with the prometheus-operator,
# deploy/kubernetes/prometheusrule.yaml carries the same groups). Every selector carries
# job="netstat-exporter" (_config.netstatExporterSelector), the job of
# deploy/prometheus/prometheus.yml and the Service name in deploy/kubernetes.
#
# Tested by deploy/prometheus/alerts_test.yml (`promtool test rules`), against a live
# Prometheus by tests/e2e_prometheus.rs, and linted by tests/it/dashboard_lint.rs.
"""

RULE_KEYS = ["alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"]
GROUP_KEYS = ["name", "interval", "limit", "rules"]
ANNOTATION_KEYS = ["summary", "description"]


def evaluate():
    """The mixin's dashboards and alerts with the default config, as Python values."""
    snippet = "local m = import 'mixin.libsonnet'; {dashboards: m.grafanaDashboards, alerts: m.prometheusAlerts}"
    return json.loads(_jsonnet.evaluate_snippet("render", snippet, jpathdir=[HERE]))


def ordered(d, keys):
    """d with `keys` first, in that order, the rest after (YAML readability)."""
    out = {k: d[k] for k in keys if k in d}
    out.update({k: v for k, v in d.items() if k not in out})
    return out


class Dumper(yaml.SafeDumper):
    pass


def represent_str(dumper, data):
    if "\n" in data:
        style = "|"
    elif len(data) > 120:
        style = ">"
    else:
        style = None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


Dumper.add_representer(str, represent_str)


def alerts_yaml(alerts):
    groups = [
        ordered(dict(g, rules=[ordered(dict(r, annotations=ordered(r.get("annotations", {}), ANNOTATION_KEYS)), RULE_KEYS) for r in g["rules"]]), GROUP_KEYS)
        for g in alerts["groups"]
    ]
    body = yaml.dump(
        {"groups": groups}, Dumper=Dumper, sort_keys=False, width=100, allow_unicode=True
    )
    return ALERTS_HEADER + body


def dashboard_json(d):
    return json.dumps(d, indent=2, ensure_ascii=False) + "\n"


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    print("wrote", os.path.relpath(path, os.getcwd()))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="write into this directory instead of the repository")
    args = ap.parse_args()
    out = os.path.abspath(args.out) if args.out else ROOT
    r = evaluate()
    for name, d in sorted(r["dashboards"].items()):
        write(os.path.join(out, "dashboards", name), dashboard_json(d))
    write(os.path.join(out, "deploy", "prometheus", "alerts.yml"), alerts_yaml(r["alerts"]))
    if not args.out:
        for script in ["deploy/kubernetes/gen_prometheusrule.py", "deploy/prometheus/gen_alerts_test.py"]:
            subprocess.run([sys.executable, os.path.join(ROOT, script)], check=True)
            print("ran", script)


if __name__ == "__main__":
    main()
