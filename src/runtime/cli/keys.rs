//! `hera keyring` (one node's gossip keys, over its API) and `hera keygen` (a new key).

use super::client::Method;
use rand_core::{OsRng, RngCore};
use serde_json::{json, Value};

use super::client::{call, print_table};
use super::{KeyArgs, KeyringOp};
use crate::wire::seal::KEY_BYTES;

const PATH: &str = "/v1/operator/keyring";

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

pub async fn keyring(op: &KeyringOp) -> Result<(), String> {
    let (method, args, done): (Method, Option<&KeyArgs>, &str) = match op {
        KeyringOp::List(_) => (Method::GET, None, ""),
        KeyringOp::Install(a) => (Method::POST, Some(a), "installed"),
        KeyringOp::Use(a) => (Method::PUT, Some(a), "now primary"),
        KeyringOp::Remove(a) => (Method::DELETE, Some(a), "removed"),
    };
    let http_addr = match op {
        KeyringOp::List(c) => &c.http_addr,
        KeyringOp::Install(a) | KeyringOp::Use(a) | KeyringOp::Remove(a) => &a.client.http_addr,
    };
    // Check the key here too, so a typo is reported before anything is sent.
    if let Some(a) = args {
        crate::runtime::settings::parse_key(&a.key)?;
    }
    let body = args.map(|a| json!({ "Key": a.key.trim() }));
    let listing = call(method, http_addr, PATH, body).await?;
    if !done.is_empty() {
        println!("key {done}");
    }
    print_listing(&listing);
    Ok(())
}

fn print_listing(listing: &Value) {
    let Some(pool) = listing.as_array().and_then(|a| a.first()) else {
        return;
    };
    let primary: Vec<&String> = pool["PrimaryKeys"]
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    let rows: Vec<[String; 2]> = pool["Keys"]
        .as_object()
        .map(|m| {
            m.keys()
                .map(|k| {
                    let role = if primary.contains(&k) {
                        "primary"
                    } else {
                        "accepted"
                    };
                    [k.clone(), role.to_string()]
                })
                .collect()
        })
        .unwrap_or_default();
    print_table(&["Key", "Role"], &rows);
}
