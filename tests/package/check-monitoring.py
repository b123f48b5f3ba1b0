#!/usr/bin/env python3
"""Checks the shipped Grafana dashboard and Prometheus rules against the metric contract.

  check-monitoring.py dashboard DASHBOARD.json PROMQL_OUT.yml
      The dashboard is JSON with schemaVersion >= 36, a `ring` variable from
      label_values(ebpf_ring_buffer_size_bytes, ring), the panels the packaging promises,
      and every expression uses only contract metric names. Writes every expression, with
      Grafana's variables replaced, as recording rules to PROMQL_OUT.yml so that
      `promtool check rules` parses the PromQL.
  check-monitoring.py rules RULES.yml
      Every metric name in the alerting rules is a contract name.
  check-monitoring.py names DASHBOARD.json RULES.yml
      Prints every metric name the two files use (one a line, sorted), histogram series
      (_bucket/_sum/_count) under their family name.

Prints one line naming each problem; exits 1 if there is any.
"""
import json
import re
import sys

# The metric names every helper agreed on (COMMON.md "Metric names").
CONTRACT = {
    "ebpf_events_received_total",
    "ebpf_events_dropped_total",
    "ebpf_events_produced_total",
    "ebpf_events_untracked_total",
    "ebpf_ring_buffer_size_bytes",
    "ebpf_ring_buffer_utilization_percent",
    "ebpf_loss_rate",
    "ebpf_ring_buffer_resizes_total",
    "ebpf_read_latency_seconds",
    "ringwarden_resident_memory_bytes",
    "ringwarden_sink_errors_total",
    "ringwarden_decode_errors_total",
    "ringwarden_programs",
    "ringwarden_uptime_seconds",
}
HISTOGRAMS = {"ebpf_read_latency_seconds"}
NAME = re.compile(r"\b(?:ebpf|ringwarden)_[a-z0-9_]*[a-z0-9]\b")

# Panel titles the packaging promises (docs/operations.md, "Prometheus and Grafana"; issue 5).
PANELS = {
    "Ring utilization",
    "Event loss rate",
    "Events received",
    "Events dropped",
    "Ring size",
    "Read latency",
}


def family(name):
    """The metric family a series name belongs to (histogram suffixes folded)."""
    for h in HISTOGRAMS:
        if name in (h + "_bucket", h + "_sum", h + "_count"):
            return h
    return name


def names_in(expr):
    # Label values and strings ("attached", "$ring") are no metric names.
    return {family(n) for n in NAME.findall(re.sub(r'"[^"]*"', '""', expr))}


def dashboard_exprs(d):
    out = []
    for p in d.get("panels", []):
        for t in p.get("targets", []):
            out.append((p.get("title", "?"), t.get("expr", "")))
    for v in d.get("templating", {}).get("list", []):
        q = v.get("query")
        if isinstance(q, dict):
            q = q.get("query")
        if v.get("type") == "query":
            out.append(("variable " + v.get("name", "?"), q or ""))
    return out


def rules_exprs(path):
    """The expr of each rule, without a YAML library: `expr: X` or an indented block."""
    out, lines, i = [], open(path, encoding="utf-8").read().splitlines(), 0
    while i < len(lines):
        m = re.match(r"^(\s*)expr:\s*(.*)$", lines[i])
        i += 1
        if not m:
            continue
        if m.group(2) not in ("|", ">", "|-", ">-"):
            out.append(m.group(2))
            continue
        indent, block = len(m.group(1)), []
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
            block.append(lines[i].strip())
            i += 1
        out.append(" ".join(block))
    return out


def check_dashboard(path, promql_out):
    errors = []
    try:
        d = json.load(open(path, encoding="utf-8"))
    except (OSError, ValueError) as e:
        return [f"{path}: not valid JSON: {e}"]
    if not isinstance(d.get("schemaVersion"), int) or d["schemaVersion"] < 36:
        errors.append(f"{path}: schemaVersion {d.get('schemaVersion')!r}, want >= 36")
    variables = {v.get("name"): v for v in d.get("templating", {}).get("list", [])}
    ring = variables.get("ring")
    q = ring.get("query") if ring else None
    q = q.get("query") if isinstance(q, dict) else q
    if q != "label_values(ebpf_ring_buffer_size_bytes, ring)":
        errors.append(f"{path}: variable ring: query {q!r}, want label_values(ebpf_ring_buffer_size_bytes, ring)")
    titles = {p.get("title") for p in d.get("panels", [])}
    for t in sorted(PANELS - titles):
        errors.append(f"{path}: no panel titled {t!r}")
    ids = [p.get("id") for p in d.get("panels", [])]
    if len(ids) != len(set(ids)):
        errors.append(f"{path}: panel ids are not unique: {ids}")
    exprs = dashboard_exprs(d)
    rules = []
    for n, (where, expr) in enumerate(exprs):
        used = names_in(expr)
        if not used:
            errors.append(f"{path}: {where}: expression uses no ringwarden metric: {expr!r}")
        for bad in sorted(used - CONTRACT):
            errors.append(f"{path}: {where}: {bad} is not a contract metric name (COMMON.md)")
        if where.startswith("variable"):
            continue
        promql = (expr.replace("$__rate_interval", "1m").replace("$ring", ".*")
                  .replace("$instance", ".*"))
        rules.append(f"      - record: dashboard:expr{n}\n        expr: {json.dumps(promql)}\n")
    if "ebpf_read_latency_seconds" in set().union(*(names_in(e) for _, e in exprs)):
        if not any("histogram_quantile(0.99" in e for _, e in exprs):
            errors.append(f"{path}: no p99 histogram_quantile on ebpf_read_latency_seconds")
    with open(promql_out, "w", encoding="utf-8") as f:
        f.write("groups:\n  - name: dashboard\n    rules:\n" + "".join(rules))
    return errors


def check_rules(path):
    errors = []
    exprs = rules_exprs(path)
    if not exprs:
        errors.append(f"{path}: no rules found")
    for expr in exprs:
        used = names_in(expr)
        if not used:
            errors.append(f"{path}: rule uses no ringwarden metric: {expr!r}")
        for bad in sorted(used - CONTRACT):
            errors.append(f"{path}: {bad} is not a contract metric name (COMMON.md)")
    return errors


def main(argv):
    if len(argv) == 4 and argv[1] == "dashboard":
        errors = check_dashboard(argv[2], argv[3])
    elif len(argv) == 3 and argv[1] == "rules":
        errors = check_rules(argv[2])
    elif len(argv) == 4 and argv[1] == "names":
        d = json.load(open(argv[2], encoding="utf-8"))
        used = set()
        for _, e in dashboard_exprs(d):
            used |= names_in(e)
        for e in rules_exprs(argv[3]):
            used |= names_in(e)
        print("\n".join(sorted(used)))
        return 0
    else:
        print(__doc__, file=sys.stderr)
        return 2
    for e in errors:
        print(e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
