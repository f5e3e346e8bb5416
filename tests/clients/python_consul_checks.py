"""Issue 18 through an unmodified Consul client: Debian's python3-consul (python-consul 0.7.1).

Against two hera nodes (HTTP ports A and B, joined): register a service on A, attach two TTL
checks of their own ids to it, pass one and fail the other, and see on B each check's status
and the instance critical; pass the second and see it passing on B; deregister one check.

    /usr/bin/python3 tests/clients/python_consul_checks.py A_PORT B_PORT

Exits non-zero, saying which step did not hold within its bounded wait."""

import sys
import time

import consul

DEADLINE_S = 15.0


def wait_for(what, probe):
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    sys.exit(f"not within {DEADLINE_S}s: {what}; last seen: {probe()!r}")


def ttl(client, verb, check_id, note=None):
    """`PUT /v1/agent/check/<verb>/<id>` through the client's own transport. python-consul
    0.7.1's `ttl_pass`/`ttl_fail`/`deregister` send a GET, which Consul refuses since 1.0 (a
    state change by GET is a CSRF hole) and so does hera (405): py-consul, its successor,
    sends PUT."""
    params = {"note": note} if note else {}
    return client.http.put(consul.base.CB.bool(), f"/v1/agent/check/{verb}/{check_id}", params=params)


def statuses_on(client, service):
    """(aggregate, {check id: status}) of the service's first instance, serfHealth aside."""
    _, entries = client.health.service(service)
    if not entries:
        return None
    checks = {c["CheckID"]: c["Status"] for c in entries[0]["Checks"] if c["CheckID"] != "serfHealth"}
    for worst in ("critical", "warning", "passing"):
        if worst in checks.values():
            return worst, checks
    return None


def main():
    a = consul.Consul(host="127.0.0.1", port=int(sys.argv[1]))
    b = consul.Consul(host="127.0.0.1", port=int(sys.argv[2]))

    assert a.agent.service.register("db", service_id="db-1", address="127.0.0.1", port=5432)
    thirty = consul.Check.ttl("30s")
    assert a.agent.check.register("alive", check=thirty, check_id="db-ttl", service_id="db-1")
    assert a.agent.check.register(
        "ready", check=thirty, check_id="db-ready", service_id="db-1", notes="accepts writes"
    )
    checks = a.agent.checks()
    assert {"db-ttl", "db-ready"} <= set(checks), f"checks keyed by their ids: {sorted(checks)}"
    assert checks["db-ready"]["Notes"] == "accepts writes", checks["db-ready"]
    assert checks["db-ttl"]["ServiceID"] == "db-1", checks["db-ttl"]

    assert not a.agent.check.ttl_pass("db-ttl"), "a GET changed a check's state"
    assert ttl(a, "pass", "db-ttl", note="alive")
    assert ttl(a, "fail", "db-ready", note="read-only")
    wait_for(
        "B sees db-ttl passing, db-ready critical, db-1 critical",
        lambda: statuses_on(b, "db") == ("critical", {"db-ttl": "passing", "db-ready": "critical"}),
    )
    _, on_b = b.health.checks("db")
    assert {(c["CheckID"], c["Status"]) for c in on_b} == {
        ("db-ttl", "passing"),
        ("db-ready", "critical"),
    }, on_b

    assert ttl(a, "pass", "db-ready")
    wait_for(
        "B sees db-1 passing",
        lambda: statuses_on(b, "db") == ("passing", {"db-ttl": "passing", "db-ready": "passing"}),
    )
    _, passing = b.health.service("db", passing=True)
    assert [e["Service"]["ID"] for e in passing] == ["db-1"], passing

    assert ttl(a, "deregister", "db-ready")
    wait_for(
        "B no longer lists db-ready",
        lambda: statuses_on(b, "db") == ("passing", {"db-ttl": "passing"}),
    )
    print("python-consul", consul.__version__, ": every step held")


if __name__ == "__main__":
    main()
