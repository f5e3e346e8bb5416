//! The registry subcommands: services, instances, register, deregister, maintenance. Each is
//! one request to a node's HTTP API (hera's own routes for reads, register and deregister;
//! Consul's for maintenance, which hera's API spells as two verbs).

use super::client::Method;
use serde_json::{json, Map, Value};

use super::client::{call, print_table};

/// What `hera register` sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub service: String,
    pub address: String,
    pub port: u16,
    pub id: Option<String>,
    pub tags: Vec<String>,
    /// A Consul duration ("15s"); the instance must then be renewed or passed within it.
    pub ttl: Option<String>,
}

impl Registration {
    /// The body of `POST /v1/hera/instances` (Consul's registration fields).
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("Name".into(), json!(self.service));
        if let Some(id) = &self.id {
            body.insert("ID".into(), json!(id));
        }
        body.insert("Address".into(), json!(self.address));
        body.insert("Port".into(), json!(self.port));
        if !self.tags.is_empty() {
            body.insert("Tags".into(), json!(self.tags));
        }
        if let Some(ttl) = &self.ttl {
            body.insert("Check".into(), json!({ "TTL": ttl }));
        }
        Value::Object(body)
    }
}

/// A path segment with everything but unreserved characters percent-encoded, so that a name
/// the node would refuse reaches it intact (and is refused there, with its reason).
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn cell(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Null) | None => "-".to_string(),
        Some(Value::String(_)) => "-".to_string(),
        Some(other) => other.to_string(),
    }
}

pub async fn services(http_addr: &str) -> Result<(), String> {
    let all = call(Method::GET, http_addr, "/v1/hera/services", None).await?;
    let map = all
        .as_object()
        .ok_or("unexpected answer from /v1/hera/services")?;
    let rows: Vec<[String; 3]> = map
        .iter()
        .map(|(name, ids)| {
            let ids: Vec<&str> = ids
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            [name.clone(), ids.len().to_string(), ids.join(", ")]
        })
        .collect();
    print_table(&["Service", "Instances", "IDs"], &rows);
    Ok(())
}

pub async fn instances(http_addr: &str, service: &str) -> Result<(), String> {
    let path = format!("/v1/hera/services/{}", segment(service));
    let list = call(Method::GET, http_addr, &path, None).await?;
    let rows: Vec<[String; 8]> = list
        .as_array()
        .ok_or("unexpected answer from /v1/hera/services/<service>")?
        .iter()
        .map(|i| {
            let online = if i["Online"].as_bool() == Some(false) {
                match i["MaintenanceReason"].as_str() {
                    Some(reason) => format!("off-line ({reason})"),
                    None => "off-line".to_string(),
                }
            } else {
                "on-line".to_string()
            };
            let tags: Vec<&str> = i["Tags"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut health = cell(i, "Health");
            if i["Stale"].as_bool() == Some(true) {
                health.push_str(" (stale)");
            }
            [
                cell(i, "ID"),
                format!("{}:{}", cell(i, "Address"), cell(i, "Port")),
                health,
                online,
                cell(i, "Owner"),
                cell(i, "Datacenter"),
                if tags.is_empty() {
                    "-".to_string()
                } else {
                    tags.join(",")
                },
                cell(i, "Output"),
            ]
        })
        .collect();
    print_table(
        &[
            "ID", "Address", "Health", "Status", "Owner", "DC", "Tags", "Output",
        ],
        &rows,
    );
    Ok(())
}

pub async fn register(http_addr: &str, registration: &Registration) -> Result<(), String> {
    let answer = call(
        Method::POST,
        http_addr,
        "/v1/hera/instances",
        Some(registration.body()),
    )
    .await?;
    let id = answer
        .get("ID")
        .and_then(Value::as_str)
        .ok_or("the node did not say which id it registered")?;
    println!("{id}");
    Ok(())
}

pub async fn deregister(http_addr: &str, id: &str) -> Result<(), String> {
    let path = format!("/v1/hera/instances/{}", segment(id));
    call(Method::DELETE, http_addr, &path, None).await?;
    println!("deregistered {id}");
    Ok(())
}

pub async fn maintenance(
    http_addr: &str,
    id: &str,
    enable: bool,
    reason: Option<&str>,
) -> Result<(), String> {
    let mut path = format!(
        "/v1/agent/service/maintenance/{}?enable={enable}",
        segment(id)
    );
    if let Some(reason) = reason {
        path.push_str("&reason=");
        path.push_str(&segment(reason));
    }
    call(Method::PUT, http_addr, &path, None).await?;
    if enable {
        println!("{id} is off-line (maintenance)");
    } else {
        println!("{id} is on-line");
    }
    Ok(())
}

/// Node maintenance: every instance the node owns off-line, or back.
pub async fn node_maintenance(
    http_addr: &str,
    enable: bool,
    reason: Option<&str>,
) -> Result<(), String> {
    let mut path = format!("/v1/agent/maintenance?enable={enable}");
    if let Some(reason) = reason {
        path.push_str("&reason=");
        path.push_str(&segment(reason));
    }
    call(Method::PUT, http_addr, &path, None).await?;
    if enable {
        println!("the node is in maintenance: its instances are off-line");
    } else {
        println!("the node is out of maintenance: its instances are on-line");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_keep_names_and_encode_the_rest() {
        assert_eq!(segment("web-1.a_b:c"), "web-1.a_b:c");
        assert_eq!(segment("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(segment("é"), "%C3%A9");
    }

    #[test]
    fn a_registration_is_a_consul_body() {
        let r = Registration {
            service: "web".into(),
            address: "10.0.0.2".into(),
            port: 80,
            id: None,
            tags: vec!["v1".into()],
            ttl: Some("15s".into()),
        };
        assert_eq!(
            r.body(),
            json!({"Name": "web", "Address": "10.0.0.2", "Port": 80, "Tags": ["v1"],
                   "Check": {"TTL": "15s"}})
        );
    }
}
