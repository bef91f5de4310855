"""Parses the agent's /metrics with the Prometheus project's own parsers (prometheus_client).

`python3 parse_metrics.py prometheus|openmetrics < exposition` prints one JSON list of samples
[name, labels, value]; a parse error exits non-zero.
"""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
from prometheus_client.parser import text_string_to_metric_families as prometheus

parse = openmetrics if sys.argv[1] == "openmetrics" else prometheus
samples = []
for family in parse(sys.stdin.read()):
    for sample in family.samples:
        samples.append([sample.name, sample.labels, sample.value])
print(json.dumps(samples))
