//! Consul's read routes as one pipeline: **parse** the query string once into a typed
//! [`ReadQuery`] (bounded, errors naming the field), **wait** as it asks (`index`/`wait`, or
//! `hash`/`wait`), **filter** the instances it selects (`tag`, `dc`, `passing`), **render** the
//! route's [`View`]. A route is a declaration: the view it answers with; the view says which
//! parameters it reads, so a parameter a route ignores in Consul is ignored here too.

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};

use super::blocking::{self, flag, Block};
use super::query::FirstValues;
use super::views;
use super::{ApiError, AppState};
use crate::names::{InstanceId, ServiceName};
use crate::record::TAGS_MAX;
use crate::registry::{Health, Instance, TAG_MAX_BYTES};
use crate::runtime::driver::Snapshot;

/// The query string as sent, pairs in order: `tag` may be repeated (Consul keeps instances
/// carrying every one).
type Q = Query<Vec<(String, String)>>;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/catalog/services",
            get(|a: State<AppState>, q: Q| read(a, q, Ok(View::Services))),
        )
        .route(
            "/v1/catalog/service/{name}",
            get(|a: State<AppState>, Path(p): Path<String>, q: Q| {
                read(a, q, service(&p).map(View::CatalogService))
            }),
        )
        .route(
            "/v1/health/service/{name}",
            get(|a: State<AppState>, Path(p): Path<String>, q: Q| {
                read(a, q, service(&p).map(View::HealthService))
            }),
        )
        .route(
            "/v1/health/checks/{name}",
            get(|a: State<AppState>, Path(p): Path<String>, q: Q| {
                read(a, q, service(&p).map(View::HealthChecks))
            }),
        )
        .route(
            "/v1/health/state/{state}",
            get(|a: State<AppState>, Path(p): Path<String>, q: Q| {
                read(a, q, health_state(&p).map(View::HealthState))
            }),
        )
        .route(
            "/v1/agent/services",
            get(|a: State<AppState>, q: Q| read(a, q, Ok(View::AgentServices))),
        )
        .route(
            "/v1/agent/service/{id}",
            get(|a: State<AppState>, Path(p): Path<String>, q: Q| {
                read(a, q, instance(&p).map(View::AgentService))
            }),
        )
        .route(
            "/v1/agent/checks",
            get(|a: State<AppState>, q: Q| read(a, q, Ok(View::AgentChecks))),
        )
        .route(
            "/v1/agent/health/service/id/{id}",
            get(|a: State<AppState>, Path(p): Path<String>, q: Q| {
                read(a, q, instance(&p).map(View::AgentHealthById))
            }),
        )
        .route(
            "/v1/agent/health/service/name/{name}",
            get(|a: State<AppState>, Path(p): Path<String>, q: Q| {
                read(a, q, service(&p).map(View::AgentHealthByName))
            }),
        )
}

/// The pipeline every read route runs.
async fn read(
    State(app): State<AppState>,
    Query(q): Q,
    view: Result<View, ApiError>,
) -> Result<Response, ApiError> {
    let view = view?;
    let query = ReadQuery::parse(&q, view.reads())?;
    let s = blocking::until(&app, &query.block, |s| view.content_hash(s)).await?;
    view.answer(&app, &s, &query)
}

/// What a route reads of the query string besides its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reads {
    /// How it blocks: on the registry index, on a hash of its answer, or not at all.
    pub block: BlockOn,
    /// `dc` selects instances.
    pub selects: bool,
    /// `tag` selects instances: Consul reads it on the service routes, not `health/checks`.
    pub tag: bool,
    /// `passing` selects instances whose every check passes.
    pub passing: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockOn {
    Index,
    Hash,
    Never,
}

/// A read's query string, parsed once. Unknown parameters are ignored, as Consul does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadQuery {
    pub block: Block,
    /// Every `tag` given: an instance is kept when it carries them all, as in Consul.
    pub tags: Vec<String>,
    pub dc: Option<String>,
    pub passing: bool,
}

/// The longest `dc` read: a data centre is a node label, far shorter.
pub const DC_MAX_BYTES: usize = 128;

impl ReadQuery {
    /// `pairs` in the order sent; of a repeated parameter other than `tag`, the first counts,
    /// as in Consul ([`FirstValues`]).
    pub fn parse(pairs: &[(String, String)], reads: Reads) -> Result<ReadQuery, ApiError> {
        let FirstValues(q) = FirstValues::of(pairs);
        let q = &q;
        let block = match reads.block {
            BlockOn::Index => Block::on_index(q)?,
            BlockOn::Hash => Block::on_hash(q)?,
            BlockOn::Never => Block::Now,
        };
        let tags = if reads.tag {
            tags_of(pairs)?
        } else {
            Vec::new()
        };
        let dc = if reads.selects {
            bounded(q, "dc", DC_MAX_BYTES)?.filter(|d| !d.is_empty())
        } else {
            None
        };
        let passing = reads.passing && flag(q, "passing")?;
        Ok(ReadQuery {
            block,
            tags,
            dc,
            passing,
        })
    }

    /// The filter step: does the instance belong in the answer?
    pub fn keeps(&self, s: &Snapshot, i: &Instance) -> bool {
        let tag_ok = self.tags.iter().all(|t| i.tags().any(|x| x == t));
        let dc_ok = self
            .dc
            .as_ref()
            .is_none_or(|d| views::datacenter(s, i) == *d);
        tag_ok && dc_ok && (!self.passing || views::all_checks_pass(s, i))
    }

    /// What a cached answer depends on besides the route and its subject: the filters, never
    /// `index`, `wait` or unknown parameters.
    fn key(&self) -> String {
        // JSON, so no value can spell another's key (a tag holding a separator).
        json!([self.tags, self.dc, self.passing]).to_string()
    }
}

/// Every `tag` of the query, each bounded like an instance's tag; more than an instance can
/// carry is refused (nothing could match).
fn tags_of(pairs: &[(String, String)]) -> Result<Vec<String>, ApiError> {
    let mut tags = Vec::new();
    for (_, tag) in pairs.iter().filter(|(k, _)| k == "tag") {
        if tag.len() > TAG_MAX_BYTES {
            return Err(ApiError::bad_request(format!(
                "tag: {} bytes, at most {TAG_MAX_BYTES}",
                tag.len()
            )));
        }
        if tags.len() >= TAGS_MAX {
            return Err(ApiError::bad_request(format!(
                "tag: given more than {TAGS_MAX} times, at most {TAGS_MAX}"
            )));
        }
        tags.push(tag.clone());
    }
    Ok(tags)
}

fn bounded(
    q: &HashMap<String, String>,
    field: &str,
    max: usize,
) -> Result<Option<String>, ApiError> {
    match q.get(field) {
        Some(v) if v.len() > max => Err(ApiError::bad_request(format!(
            "{field}: {} bytes, at most {max}",
            v.len()
        ))),
        other => Ok(other.cloned()),
    }
}

fn service(name: &str) -> Result<ServiceName, ApiError> {
    ServiceName::new(name).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn instance(id: &str) -> Result<InstanceId, ApiError> {
    InstanceId::new(id).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// `/v1/health/state/<state>`: `any`, or a status spelled in full.
fn health_state(state: &str) -> Result<Option<Health>, ApiError> {
    match state {
        "any" => Ok(None),
        other => Health::parse(other)
            .filter(|_| other != "pass" && other != "warn" && other != "fail")
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "state {other:?} is not any, passing, warning or critical"
                ))
            }),
    }
}

/// What a read route answers with, and about what.
#[derive(Debug, Clone)]
pub enum View {
    /// Every service with the union of its instances' tags.
    Services,
    CatalogService(ServiceName),
    HealthService(ServiceName),
    HealthChecks(ServiceName),
    /// Every check in that state (`None`: any).
    HealthState(Option<Health>),
    /// The instances this node registered.
    AgentServices,
    /// One instance's definition; blocks on a hash of it, as Consul does (sidecars watch it).
    AgentService(InstanceId),
    AgentChecks,
    AgentHealthById(InstanceId),
    AgentHealthByName(ServiceName),
}

/// A rendered answer.
struct Answer {
    status: StatusCode,
    body: Bytes,
    content_hash: Option<String>,
}

impl Answer {
    fn ok(body: &Value) -> Answer {
        Answer::with_status(StatusCode::OK, body)
    }

    fn with_status(status: StatusCode, body: &Value) -> Answer {
        Answer {
            status,
            body: Bytes::from(serde_json::to_vec(body).unwrap_or_default()),
            content_hash: None,
        }
    }
}

impl View {
    fn reads(&self) -> Reads {
        let (block, selects, passing) = match self {
            View::CatalogService(_) | View::HealthChecks(_) => (BlockOn::Index, true, false),
            View::HealthService(_) => (BlockOn::Index, true, true),
            View::Services | View::HealthState(_) => (BlockOn::Index, false, false),
            View::AgentService(_) => (BlockOn::Hash, false, false),
            View::AgentServices
            | View::AgentChecks
            | View::AgentHealthById(_)
            | View::AgentHealthByName(_) => (BlockOn::Never, false, false),
        };
        Reads {
            block,
            selects,
            tag: matches!(self, View::CatalogService(_) | View::HealthService(_)),
            passing,
        }
    }

    /// The hash a hash-blocking view waits to change; `None` while there is no answer.
    fn content_hash(&self, s: &Snapshot) -> Option<String> {
        match self {
            View::AgentService(id) => s
                .registry
                .get(id)
                .map(|i| blocking::content_hash(&views::agent_service(s, i))),
            _ => None,
        }
    }

    /// The cache key of a view worth caching: the service reads load balancers repeat.
    fn cache_key(&self, q: &ReadQuery) -> Option<String> {
        match self {
            View::CatalogService(name) => Some(format!("catalog\0{name}\0{}", q.key())),
            View::HealthService(name) => Some(format!("health\0{name}\0{}", q.key())),
            _ => None,
        }
    }

    /// The render step, through the response cache where the view has a key.
    fn answer(&self, app: &AppState, s: &Snapshot, q: &ReadQuery) -> Result<Response, ApiError> {
        let answer = match self.cache_key(q) {
            Some(key) => {
                let body = app
                    .shared
                    .responses
                    .get_or_render(&key, s.version, || Answer::ok(&self.list(s, q)).body);
                Answer {
                    status: StatusCode::OK,
                    body,
                    content_hash: None,
                }
            }
            None => self.render(s, q)?,
        };
        let mut headers = blocking::headers(s);
        if let Some(v) = answer
            .content_hash
            .and_then(|h| HeaderValue::from_str(&h).ok())
        {
            headers.insert("X-Consul-ContentHash", v);
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Ok((answer.status, headers, answer.body).into_response())
    }

    fn render(&self, s: &Snapshot, q: &ReadQuery) -> Result<Answer, ApiError> {
        match self {
            View::AgentService(id) => {
                let i = s
                    .registry
                    .get(id)
                    .ok_or_else(|| ApiError::not_found(format!("unknown service ID {id}")))?;
                let body = views::agent_service(s, i);
                let mut answer = Answer::ok(&body);
                answer.content_hash = Some(blocking::content_hash(&body));
                Ok(answer)
            }
            View::AgentHealthById(id) => {
                let i = s
                    .registry
                    .get(id)
                    .ok_or_else(|| ApiError::not_found(format!("unknown service ID {id}")))?;
                let h = views::aggregated(i);
                Ok(Answer::with_status(health_status(h), &agent_health(s, i)))
            }
            View::AgentHealthByName(name) => {
                let found: Vec<_> = s.registry.service(name).collect();
                let worst = found
                    .iter()
                    .map(|i| views::aggregated(i))
                    .max()
                    .ok_or_else(|| ApiError::not_found(format!("unknown service {name}")))?;
                let body: Vec<Value> = found.iter().map(|i| agent_health(s, i)).collect();
                Ok(Answer::with_status(
                    health_status(worst),
                    &Value::Array(body),
                ))
            }
            _ => Ok(Answer::ok(&self.list(s, q))),
        }
    }

    /// The views that always answer: a list or an object, possibly empty.
    fn list(&self, s: &Snapshot, q: &ReadQuery) -> Value {
        let selected = |name: &ServiceName| {
            s.registry
                .service(name)
                .filter(|i| q.keeps(s, i))
                .collect::<Vec<_>>()
        };
        match self {
            View::Services => {
                let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for i in s.registry.instances() {
                    let tags = out.entry(i.service.to_string()).or_default();
                    for t in i.tags() {
                        if !tags.iter().any(|x| x == t) {
                            tags.push(t.to_string());
                        }
                    }
                }
                json!(out)
            }
            View::CatalogService(name) => selected(name)
                .into_iter()
                .map(|i| views::catalog_entry(s, i))
                .collect(),
            View::HealthService(name) => selected(name)
                .into_iter()
                .map(|i| views::health_entry(s, i))
                .collect(),
            View::HealthChecks(name) => selected(name)
                .into_iter()
                .flat_map(|i| views::checks(s, i))
                .collect(),
            View::HealthState(wanted) => s
                .registry
                .instances()
                .flat_map(|i| views::checks(s, i))
                .chain(views::node_checks(s))
                .filter(|c| {
                    wanted
                        .is_none_or(|w| c.get("Status").and_then(Value::as_str) == Some(w.as_str()))
                })
                .collect(),
            View::AgentServices => Value::Object(
                owned(s)
                    .map(|i| (i.id.to_string(), views::agent_service(s, i)))
                    .collect(),
            ),
            View::AgentChecks => Value::Object(agent_checks(s)),
            View::AgentService(_) | View::AgentHealthById(_) | View::AgentHealthByName(_) => {
                Value::Null
            }
        }
    }
}

/// The instances this node registered itself.
fn owned<'a>(s: &'a Snapshot) -> impl Iterator<Item = &'a Instance> + 'a {
    s.registry
        .instances()
        .filter(move |i| i.owner == s.name && s.local.contains(&i.id))
}

fn agent_checks(s: &Snapshot) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(check) = node_maintenance_check(s) {
        out.insert("_node_maintenance".to_string(), check);
    }
    let own = owned(s).flat_map(|i| views::checks(s, i));
    for c in views::node_checks(s).into_iter().chain(own) {
        if let Some(id) = c.get("CheckID").and_then(Value::as_str) {
            out.insert(id.to_string(), c.clone());
        }
    }
    out
}

/// Consul's `_node_maintenance` check, while the node is in maintenance.
fn node_maintenance_check(s: &Snapshot) -> Option<Value> {
    let reason = s.node_maintenance.as_ref()?;
    Some(json!({
        "Node": s.name.as_str(),
        "CheckID": "_node_maintenance",
        "Name": "Node Maintenance Mode",
        "Status": "critical",
        "Notes": reason,
        "Output": "",
        "ServiceID": "",
        "ServiceName": "",
        "ServiceTags": [],
        "Type": "maintenance",
    }))
}

fn agent_health(s: &Snapshot, i: &Instance) -> Value {
    json!({
        "AggregatedStatus": views::aggregated(i).as_str(),
        "Service": views::agent_service(s, i),
        "Checks": views::checks(s, i),
    })
}

/// Consul's status codes for a load balancer: 200 passing, 429 warning, 503 critical.
fn health_status(h: Health) -> StatusCode {
    match h {
        Health::Passing => StatusCode::OK,
        Health::Warning => StatusCode::TOO_MANY_REQUESTS,
        Health::Critical => StatusCode::SERVICE_UNAVAILABLE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::http::blocking::Until;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_only_what_the_view_reads() {
        let junk = q(&[
            ("tag", "a"),
            ("passing", "maybe"),
            ("hash", "x"),
            ("index", "7"),
        ]);
        let catalog =
            ReadQuery::parse(&junk, View::CatalogService(service("s").unwrap()).reads()).unwrap();
        assert_eq!(catalog.tags, ["a"]);
        assert!(
            !catalog.passing,
            "the catalog ignores passing, as Consul does"
        );
        assert!(matches!(
            catalog.block,
            Block::Until {
                until: Until::Index(7),
                ..
            }
        ));
        let health = ReadQuery::parse(&junk, View::HealthService(service("s").unwrap()).reads());
        assert_eq!(health.map_err(|e| e.status.as_u16()), Err(400));
        let services = ReadQuery::parse(&junk, View::Services.reads()).unwrap();
        assert!(
            services.tags.is_empty(),
            "catalog/services lists every service"
        );
    }

    /// Consul reads `tag` as often as it is given and keeps the instances carrying every one;
    /// reading one of them only answered with instances that lack the others.
    #[test]
    fn repeated_tags_select_instances_carrying_all_of_them() {
        let target = crate::runtime::http::fuzzing::HttpTarget::start();
        for (id, tags) in [
            ("web-a", r#"["a"]"#),
            ("web-b", r#"["b"]"#),
            ("web-ab", r#"["a","b"]"#),
        ] {
            let body = format!(r#"{{"Name":"web","ID":"{id}","Port":80,"Tags":{tags}}}"#);
            let put = format!("PUT\n/v1/agent/service/register\n{body}");
            assert_eq!(target.check(put.as_bytes()).status, Some(200), "{id}");
        }
        for route in ["catalog/service", "health/service"] {
            for query in ["tag=a&tag=b", "tag=b&tag=a"] {
                let get = format!("GET\n/v1/{route}/web?{query}\n");
                let answer = target.check(get.as_bytes());
                assert_eq!(answer.status, Some(200), "{route}?{query}");
                let body: Value = serde_json::from_slice(&answer.body).unwrap();
                let ids: Vec<&str> = body
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|e| e["ServiceID"].as_str().or(e["Service"]["ID"].as_str()))
                    .collect();
                assert_eq!(ids, ["web-ab"], "{route}?{query}: {body}");
            }
        }
    }

    /// Consul's `health/checks/<service>` reads no `tag`: it lists the checks of every
    /// instance whatever the tag asked (hera filtered them, answering differently).
    #[test]
    fn health_checks_ignore_tag_as_consul_does() {
        let target = crate::runtime::http::fuzzing::HttpTarget::start();
        for (id, tag) in [("web-a", "a"), ("web-b", "b")] {
            let body = format!(
                r#"{{"Name":"web","ID":"{id}","Port":80,"Tags":["{tag}"],"Check":{{"TTL":"30s"}}}}"#
            );
            let put = format!("PUT\n/v1/agent/service/register\n{body}");
            assert_eq!(target.check(put.as_bytes()).status, Some(200), "{id}");
        }
        let answer = target.check(b"GET\n/v1/health/checks/web?tag=a\n");
        assert_eq!(answer.status, Some(200));
        let body: Value = serde_json::from_slice(&answer.body).unwrap();
        let mut ids: Vec<&str> = body
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["ServiceID"].as_str())
            .collect();
        ids.sort_unstable();
        assert_eq!(ids, ["web-a", "web-b"], "{body}");
    }

    /// Consul reads a repeated parameter other than `tag` through Go's `url.Values.Get`, which
    /// returns the first value (`parseWait`, `parseDC`, `passing`); hera took the last.
    #[test]
    fn repeated_parameters_take_the_first_value_as_consul_does() {
        let reads = View::HealthService(service("s").unwrap()).reads();
        let parsed = ReadQuery::parse(
            &q(&[
                ("index", "5"),
                ("wait", "1s"),
                ("index", "9"),
                ("wait", "9s"),
                ("dc", "a"),
                ("dc", "b"),
                ("passing", "true"),
                ("passing", "false"),
                ("tag", "x"),
                ("tag", "y"),
            ]),
            reads,
        )
        .unwrap();
        assert_eq!(
            parsed.block,
            Block::Until {
                until: Until::Index(5),
                wait: std::time::Duration::from_secs(1)
            }
        );
        assert_eq!(parsed.dc.as_deref(), Some("a"));
        assert!(parsed.passing);
        assert_eq!(parsed.tags, ["x", "y"], "tag stays a list");
        // A bad later value is not read at all, as in Consul.
        let first_good = q(&[
            ("index", "5"),
            ("index", "x"),
            ("wait", "1s"),
            ("wait", "soon"),
        ]);
        assert!(ReadQuery::parse(&first_good, reads).is_ok());
        let hash = ReadQuery::parse(
            &q(&[("hash", "aa"), ("hash", "bb")]),
            View::AgentService(instance("i").unwrap()).reads(),
        )
        .unwrap();
        assert!(matches!(hash.block, Block::Until { until: Until::Hash(ref h), .. } if h == "aa"));
    }

    /// Over real HTTP: `?dc=dc1&dc=elsewhere` selects the node's own data centre (dc1).
    #[test]
    fn a_repeated_dc_selects_by_its_first_value() {
        let target = crate::runtime::http::fuzzing::HttpTarget::start();
        let put =
            b"PUT\n/v1/agent/service/register\n{\"Name\":\"web\",\"ID\":\"web-1\",\"Port\":80}";
        assert_eq!(target.check(put).status, Some(200));
        for (query, found) in [("dc=dc1&dc=elsewhere", 1), ("dc=elsewhere&dc=dc1", 0)] {
            let get = format!("GET\n/v1/catalog/service/web?{query}\n");
            let answer = target.check(get.as_bytes());
            assert_eq!(answer.status, Some(200), "{query}");
            let body: Value = serde_json::from_slice(&answer.body).unwrap();
            assert_eq!(
                body.as_array().map(Vec::len),
                Some(found),
                "{query}: {body}"
            );
        }
    }

    /// Two filters share a cached answer only when they are the same filters: no tag or dc
    /// holding a separator may spell another query's key.
    #[test]
    fn cache_keys_of_different_filters_differ() {
        let reads = View::HealthService(service("s").unwrap()).reads();
        let key = |pairs: &[(&str, &str)]| ReadQuery::parse(&q(pairs), reads).unwrap().key();
        let pairs: [&[(&str, &str)]; 5] = [
            &[("tag", "a"), ("tag", "b")],
            &[("tag", "a\u{1}b")],
            &[("tag", "a\0b")],
            &[("tag", "a"), ("dc", "b")],
            &[("tag", "a"), ("dc", "b\0")],
        ];
        for (n, x) in pairs.iter().enumerate() {
            for y in pairs.iter().skip(n + 1) {
                assert_ne!(key(x), key(y), "{x:?} and {y:?}");
            }
        }
    }

    #[test]
    fn errors_name_the_field() {
        let reads = View::HealthService(service("s").unwrap()).reads();
        let long = "t".repeat(TAG_MAX_BYTES + 1);
        for (query, field) in [
            (q(&[("tag", long.as_str())]), "tag"),
            (q(&[("index", "x")]), "index"),
            (q(&[("index", "1"), ("wait", "soon")]), "wait"),
            (q(&[("passing", "2")]), "passing"),
        ] {
            let e = ReadQuery::parse(&query, reads).unwrap_err();
            assert_eq!(e.status.as_u16(), 400);
            assert!(e.message.contains(field), "{field}: {}", e.message);
        }
    }
}
