#!/usr/bin/env python3
"""Issue 18's done-when through an unmodified Consul client (py-consul): against two hera nodes
(HTTP on A_PORT and B_PORT), register a service with two checks of its own ids on A, pass one,
fail the other, and see the aggregated health on B; then pass both and see it passing on B.

    python3 scripts/py_consul_checks.py 8500 8501

Exits non-zero, saying why, if any step does not hold within its bounded wait."""

import sys
import time

import consul
from consul import Check

DEADLINE_S = 10.0


def wait_for(what, probe):
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    sys.exit(f"not within {DEADLINE_S}s: {what}")


def aggregated(client, service):
    _, entries = client.health.service(service)
    if not entries:
        return None
    statuses = [c["Status"] for c in entries[0]["Checks"] if c["CheckID"] != "serfHealth"]
    for worst in ("critical", "warning", "passing"):
        if worst in statuses:
            return worst, {c["CheckID"]: c["Status"] for c in entries[0]["Checks"]}
    return None


def main():
    a = consul.Consul(port=int(sys.argv[1]))
    b = consul.Consul(port=int(sys.argv[2]))
    assert a.agent.service.register(
        "db",
        service_id="db-1",
        address="127.0.0.1",
        port=5432,
        check=dict(Check.ttl("30s"), CheckID="db-ttl"),
        extra_checks=[dict(Check.ttl("30s"), CheckID="db-ready", Name="ready")],
    )
    checks = a.agent.checks()
    assert sorted(checks) == ["db-ready", "db-ttl"], checks
    assert a.agent.check.ttl_pass("db-ttl", "alive")
    assert a.agent.check.ttl_fail("db-ready", "read-only")
    state = wait_for(
        "B sees db-1 critical",
        lambda: (lambda s: s if s and s[0] == "critical" else None)(aggregated(b, "db")),
    )
    print("on B after pass/fail:", state)
    assert state[1]["db-ttl"] == "passing" and state[1]["db-ready"] == "critical", state
    _, critical = b.health.state("critical")
    assert [c["CheckID"] for c in critical] == ["db-ready"], critical
    assert a.agent.check.ttl_pass("db-ready")
    state = wait_for(
        "B sees db-1 passing",
        lambda: (lambda s: s if s and s[0] == "passing" else None)(aggregated(b, "db")),
    )
    print("on B after both pass:", state)
    assert a.agent.check.register("disk", Check.ttl("30s"), check_id="disk")
    assert a.agent.check.ttl_fail("disk", "full")
    state = wait_for(
        "a failing node check makes db-1 critical on B",
        lambda: (lambda s: s if s and s[0] == "critical" else None)(aggregated(b, "db")),
    )
    print("on B after node check fails:", state)
    assert a.agent.check.deregister("disk")
    wait_for(
        "B sees db-1 passing once the node check is gone",
        lambda: (lambda s: s if s and s[0] == "passing" else None)(aggregated(b, "db")),
    )
    assert a.agent.service.deregister("db-1")
    print("py-consul: all steps held")


if __name__ == "__main__":
    main()
