//! How instances look from the outside: Consul's JSON shapes, hera's own, and the seed API's
//! objects, all built from a [`Snapshot`].

use serde_json::{json, Map, Value};

use crate::names::NodeName;
use crate::registry::{Check, Health, Instance};
use crate::runtime::driver::Snapshot;

/// The owner's address (its gossip IP) and data centre, as this node knows them.
pub fn owner_node(s: &Snapshot, owner: &NodeName) -> (String, String) {
    s.members
        .iter()
        .find(|m| m.name == *owner)
        .map(|m| (m.profile.addr.ip().to_string(), m.profile.dc.to_string()))
        .unwrap_or_else(|| (String::new(), String::new()))
}

pub fn datacenter(s: &Snapshot, i: &Instance) -> String {
    owner_node(s, &i.owner).1
}

fn meta(i: &Instance) -> Map<String, Value> {
    i.meta()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect()
}

fn tags(i: &Instance) -> Vec<&str> {
    i.tags().collect()
}

fn modify_index(s: &Snapshot, i: &Instance) -> u64 {
    s.registry
        .stored(&i.id)
        .map_or(1, |st| st.modify_index.max(1))
}

fn stale(s: &Snapshot, i: &Instance) -> bool {
    s.is_stale(i)
}

pub fn maintenance_check_id(i: &Instance) -> String {
    format!("_service_maintenance:{}", i.id)
}

/// Consul's `Type` of a check.
pub fn check_type(check: &Check) -> &'static str {
    match check {
        Check::None => "",
        Check::Ttl { .. } => "ttl",
        Check::Http(_) | Check::Request(_) => "http",
        Check::Tcp(_) => "tcp",
    }
}

/// The instance's checks as Consul lists them: each of its own, and a critical maintenance
/// check while it is off-line.
pub fn checks(s: &Snapshot, i: &Instance) -> Vec<Value> {
    let index = modify_index(s, i);
    let default_name = format!("Service '{}' check", i.service);
    let mut out: Vec<Value> = i
        .checks()
        .iter()
        .map(|c| {
            json!({
                "Node": i.owner.as_str(),
                "CheckID": c.id.0,
                "Name": if c.name.0.is_empty() { default_name.as_str() } else { c.name.0.as_str() },
                "Status": c.status.as_str(),
                "Notes": c.notes.0,
                "Output": c.output.0,
                "ServiceID": i.id.as_str(),
                "ServiceName": i.service.as_str(),
                "ServiceTags": tags(i),
                "Type": check_type(&c.check),
                "CreateIndex": index,
                "ModifyIndex": index,
            })
        })
        .collect();
    if i.checks.0.is_some()
        && i.health > crate::registry::worst(i.checks().iter().map(|c| c.status))
    {
        // The owner's node checks made it worse than its own: say so, as Consul lists the
        // node's checks beside the service's.
        out.push(json!({
            "Node": i.owner.as_str(),
            "CheckID": "_node_checks",
            "Name": "Node checks",
            "Status": i.health.as_str(),
            "Notes": "",
            "Output": i.output.0,
            "ServiceID": "",
            "ServiceName": "",
            "ServiceTags": [],
            "Type": "",
            "CreateIndex": index,
            "ModifyIndex": index,
        }));
    }
    if !i.online {
        out.push(json!({
            "Node": i.owner.as_str(),
            "CheckID": maintenance_check_id(i),
            "Name": "Service Maintenance Mode",
            "Status": "critical",
            "Notes": i.maintenance_reason.as_ref().map(|r| r.0.as_str()).unwrap_or(""),
            "Output": "",
            "ServiceID": i.id.as_str(),
            "ServiceName": i.service.as_str(),
            "ServiceTags": tags(i),
            "Type": "maintenance",
            "CreateIndex": index,
            "ModifyIndex": index,
        }));
    }
    out
}

/// This node's own checks (no `ServiceID`), as Consul lists them.
pub fn node_checks(s: &Snapshot) -> Vec<Value> {
    s.node_checks
        .iter()
        .map(|c| {
            json!({
                "Node": s.name.as_str(),
                "CheckID": c.id.0,
                "Name": c.name.0,
                "Status": c.status.as_str(),
                "Notes": c.notes.0,
                "Output": c.output.0,
                "ServiceID": "",
                "ServiceName": "",
                "ServiceTags": [],
                "Type": check_type(&c.check),
            })
        })
        .collect()
}

/// The worst status among an instance's checks, maintenance included.
pub fn aggregated(i: &Instance) -> Health {
    if i.online {
        i.health
    } else {
        Health::Critical
    }
}

/// Consul's `?passing`: every check of the health entry passes, the owner's node check
/// (`serfHealth`) included, so an instance kept stale after its owner failed is left out.
pub fn all_checks_pass(s: &Snapshot, i: &Instance) -> bool {
    aggregated(i) == Health::Passing && owner_alive(s, i)
}

fn owner_alive(s: &Snapshot, i: &Instance) -> bool {
    s.members
        .iter()
        .any(|m| m.name == i.owner && m.state.is_live())
}

pub fn agent_service(s: &Snapshot, i: &Instance) -> Value {
    json!({
        "ID": i.id.as_str(),
        "Service": i.service.as_str(),
        "Tags": tags(i),
        "Meta": meta(i),
        "Port": i.port,
        "Address": i.address.0,
        "Weights": {"Passing": 1, "Warning": 1},
        "EnableTagOverride": false,
        "Datacenter": datacenter(s, i),
        "ContentHash": format!("{:016x}", modify_index(s, i)),
        "Stale": stale(s, i),
    })
}

pub fn catalog_entry(s: &Snapshot, i: &Instance) -> Value {
    let (node_addr, dc) = owner_node(s, &i.owner);
    let index = modify_index(s, i);
    json!({
        "ID": "",
        "Node": i.owner.as_str(),
        "Address": node_addr,
        "Datacenter": dc,
        "TaggedAddresses": {"lan": node_addr, "wan": node_addr},
        "NodeMeta": {},
        "ServiceKind": "",
        "ServiceID": i.id.as_str(),
        "ServiceName": i.service.as_str(),
        "ServiceTags": tags(i),
        "ServiceAddress": i.address.0,
        "ServicePort": i.port,
        "ServiceMeta": meta(i),
        "ServiceWeights": {"Passing": 1, "Warning": 1},
        "ServiceEnableTagOverride": false,
        "CreateIndex": index,
        "ModifyIndex": index,
        "Stale": stale(s, i),
    })
}

pub fn health_entry(s: &Snapshot, i: &Instance) -> Value {
    let (node_addr, dc) = owner_node(s, &i.owner);
    let index = modify_index(s, i);
    let node_alive = owner_alive(s, i);
    let mut all_checks = vec![json!({
        "Node": i.owner.as_str(),
        "CheckID": "serfHealth",
        "Name": "Serf Health Status",
        "Status": if node_alive { "passing" } else { "critical" },
        "Output": if node_alive { "Agent alive and reachable" } else { "Agent not live or unreachable" },
        "ServiceID": "",
        "ServiceName": "",
        "Type": "",
    })];
    all_checks.extend(checks(s, i));
    json!({
        "Node": {
            "ID": "",
            "Node": i.owner.as_str(),
            "Address": node_addr,
            "Datacenter": dc,
            "TaggedAddresses": {"lan": node_addr, "wan": node_addr},
            "Meta": {},
            "CreateIndex": index,
            "ModifyIndex": index,
        },
        "Service": {
            "ID": i.id.as_str(),
            "Service": i.service.as_str(),
            "Tags": tags(i),
            "Address": i.address.0,
            "Meta": meta(i),
            "Port": i.port,
            "Weights": {"Passing": 1, "Warning": 1},
            "EnableTagOverride": false,
            "CreateIndex": index,
            "ModifyIndex": index,
        },
        "Checks": all_checks,
        "Stale": stale(s, i),
    })
}

/// hera's own view of an instance: everything the registry holds.
pub fn hera_instance(s: &Snapshot, i: &Instance) -> Value {
    let stored = s.registry.stored(&i.id);
    let check = match &i.check {
        Check::None => json!(null),
        Check::Ttl { ttl_ms } => json!({"TTL": format!("{}ms", ttl_ms)}),
        Check::Http(h) => json!({
            "HTTP": h.url.0, "Interval": format!("{}ms", h.interval_ms), "Timeout": format!("{}ms", h.timeout_ms),
        }),
        Check::Request(r) => json!({
            "HTTP": r.url.0, "Method": r.method.0, "Interval": format!("{}ms", r.interval_ms), "Timeout": format!("{}ms", r.timeout_ms),
        }),
        Check::Tcp(t) => json!({
            "TCP": t.address.0, "Interval": format!("{}ms", t.interval_ms), "Timeout": format!("{}ms", t.timeout_ms),
        }),
    };
    let checks: Vec<Value> = i
        .checks()
        .iter()
        .map(|c| json!({"CheckID": c.id.0, "Name": c.name.0, "Notes": c.notes.0, "Type": check_type(&c.check), "Status": c.status.as_str(), "Output": c.output.0, "SinceMs": c.since_ms}))
        .collect();
    json!({
        "ID": i.id.as_str(),
        "Service": i.service.as_str(),
        "Address": i.address.0,
        "Port": i.port,
        "Tags": tags(i),
        "Meta": meta(i),
        "Body": seed_object(i),
        "Check": check,
        "Checks": checks,
        "Owner": i.owner.as_str(),
        "Datacenter": datacenter(s, i),
        "Health": i.health.as_str(),
        "Output": i.output.0,
        "HealthSinceMs": i.health_since_ms,
        "Online": i.online,
        "MaintenanceReason": i.maintenance_reason.as_ref().map(|r| r.0.clone()),
        "Stale": stale(s, i),
        "Version": stored.map(|st| json!({"WallMs": st.version.wall_ms, "Counter": st.version.counter, "Node": st.version.node.as_str()})),
        "ModifyIndex": stored.map_or(0, |st| st.modify_index),
    })
}

/// The seed API's object for an instance: the JSON it was PUT with, or one made from the
/// registration (host, port) for instances registered through the other faces.
/// The seed API's object as JSON text: the body its client sent, exactly, when it is a JSON
/// object (big integers and key order intact), else the address it has.
pub fn seed_text(i: &Instance) -> String {
    if let Some(body) = &i.body {
        if body.0.starts_with('{') && serde_json::from_str::<serde::de::IgnoredAny>(&body.0).is_ok()
        {
            return body.0.clone();
        }
    }
    json!({"host": i.address.0, "port": i.port}).to_string()
}

pub fn seed_object(i: &Instance) -> Value {
    if let Some(body) = &i.body {
        if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(&body.0) {
            return v;
        }
    }
    json!({"host": i.address.0, "port": i.port})
}
