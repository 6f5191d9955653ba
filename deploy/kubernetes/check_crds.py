#!/usr/bin/env python3
"""Validates prometheus-operator resources (ServiceMonitor, PrometheusRule) offline.

kubernetes-validate knows only the core Kubernetes schemas, so the monitoring.coreos.com/v1
kinds are checked against cloudcoil's models of the prometheus-operator CRDs
(PyPI cloudcoil-models-prometheus-operator), strictly: a field the model does not know (a typo,
a wrong nesting level) is an error, not silently dropped. Used by tests/it/deploy_artifacts.rs:

    python3 deploy/kubernetes/check_crds.py deploy/kubernetes/servicemonitor.yaml ...

Exit status 0 when every document validates; errors are printed one per line.
"""
import sys

import yaml
from cloudcoil.models.prometheus_operator import v1

KINDS = {"ServiceMonitor": v1.ServiceMonitor, "PrometheusRule": v1.PrometheusRule}


def unknown_fields(given, dumped, path=""):
    """Paths present in the input but lost in the model's round trip."""
    out = []
    if isinstance(given, dict):
        if not isinstance(dumped, dict):
            return [path or "/"]
        for k, v in given.items():
            if k not in dumped:
                out.append(f"{path}/{k}")
            else:
                out += unknown_fields(v, dumped[k], f"{path}/{k}")
    elif isinstance(given, list):
        if not isinstance(dumped, list) or len(dumped) != len(given):
            return [path]
        for i, (a, b) in enumerate(zip(given, dumped)):
            out += unknown_fields(a, b, f"{path}/{i}")
    return out


def main(paths):
    errors = 0
    for path in paths:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
        for doc in docs:
            kind = doc.get("kind")
            name = (doc.get("metadata") or {}).get("name")
            model = KINDS.get(kind)
            if model is None or doc.get("apiVersion") != "monitoring.coreos.com/v1":
                print(f"{path}: {kind} {name}: not a monitoring.coreos.com/v1 ServiceMonitor or PrometheusRule")
                errors += 1
                continue
            try:
                obj = model.model_validate(doc)
            except Exception as e:  # pydantic.ValidationError
                print(f"{path}: {kind} {name}: {e}")
                errors += 1
                continue
            dumped = obj.model_dump(mode="json", by_alias=True, exclude_none=True)
            unknown = unknown_fields(doc, dumped)
            for p in unknown:
                print(f"{path}: {kind} {name}: unknown field {p}")
            errors += len(unknown)
            if not unknown:
                print(f"{path}: {kind} {name}: ok")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
