//! `hera keyring` (the gossip keys of every member, or of the node asked with `--local`, over
//! hera's keyring route) and `hera keygen` (a new key).

use rand_core::{OsRng, RngCore};
use serde_json::{json, Value};

use super::client::Method;
use super::client::{call, print_table};
use super::{KeyringOp, KeyringScope};
use crate::wire::seal::KEY_BYTES;

const PATH: &str = "/v1/hera/keyring";

/// Print a new cluster key: 32 bytes from the operating system's generator, in base64.
pub fn keygen() -> Result<(), String> {
    let mut bytes = [0u8; KEY_BYTES];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| format!("the OS random generator failed: {e}"))?;
    println!(
        "{}",
        crate::runtime::settings::format_key(&crate::wire::Key::from_bytes(bytes))
    );
    Ok(())
}

/// Run a keyring command and print every member's answer, who did not answer and a summary.
/// Fails (exit code 1) when the command was refused or did not reach every member.
pub async fn keyring(op: &KeyringOp) -> Result<(), String> {
    let (method, key, force, scope, client) = match op {
        KeyringOp::List(a) => (Method::GET, None, false, &a.scope, &a.client),
        KeyringOp::Install(a) => (Method::POST, Some(&a.key), false, &a.scope, &a.client),
        KeyringOp::Use(a) => (Method::PUT, Some(&a.key), a.force, &a.scope, &a.client),
        KeyringOp::Remove(a) => (Method::DELETE, Some(&a.key), false, &a.scope, &a.client),
    };
    // Check the key here too, so a typo is reported before anything is sent.
    if let Some(key) = key {
        crate::runtime::settings::parse_key(key)?;
    }
    let body = key.map(|k| json!({ "Key": k.trim() }));
    let path = format!("{PATH}{}", query_string(scope, force)?);
    let report = call(method, &client.http_addr, &path, body).await?;
    print_report(&report);
    if report["Refused"].is_string() {
        return Err("refused; nothing was changed (see above)".to_string());
    }
    if report["Complete"] != Value::Bool(true) {
        return Err("not every member answered or agreed (see above)".to_string());
    }
    Ok(())
}

fn query_string(scope: &KeyringScope, force: bool) -> Result<String, String> {
    let mut params = Vec::new();
    if scope.local {
        params.push("local=true".to_string());
    }
    if force {
        params.push("force=true".to_string());
    }
    if let Some(timeout) = &scope.timeout {
        crate::duration::parse(timeout).map_err(|e| format!("--timeout: {e}"))?;
        params.push(format!("timeout={}", timeout.trim()));
    }
    Ok(if params.is_empty() {
        String::new()
    } else {
        format!("?{}", params.join("&"))
    })
}

fn print_report(report: &Value) {
    let mut rows: Vec<[String; 3]> = Vec::new();
    for answer in report["Answers"].as_array().into_iter().flatten() {
        let node = answer["Node"].as_str().unwrap_or_default().to_string();
        if let Some(error) = answer["Error"].as_str() {
            rows.push([node, "error".to_string(), error.to_string()]);
            continue;
        }
        let keys: Vec<&str> = answer["Keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for (i, key) in keys.iter().enumerate() {
            let role = if i == 0 { "primary" } else { "accepted" };
            let who = if i == 0 { node.clone() } else { String::new() };
            rows.push([who, role.to_string(), (*key).to_string()]);
        }
    }
    for node in report["Missing"].as_array().into_iter().flatten() {
        let node = node.as_str().unwrap_or_default().to_string();
        rows.push([node, "no answer".to_string(), String::new()]);
    }
    print_table(&["Node", "Role", "Key"], &rows);
    if let Some(summary) = report["Summary"].as_str() {
        println!("{summary}");
    }
}
