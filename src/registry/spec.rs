//! What a client registers, checked into an [`Instance`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::bounded::{BoundedString, BoundedVec};
use crate::names::{InstanceId, NodeName, ServiceName};
use crate::record::*;
use crate::wire::{worst_case_entry_bytes, worst_case_entry_bytes_unlisted, ENTRY_MAX_BYTES};

/// A registration as a client states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSpec {
    pub service: ServiceName,
    /// None: the node assigns one.
    pub id: Option<InstanceId>,
    pub address: String,
    pub port: u16,
    pub tags: Vec<String>,
    pub meta: BTreeMap<String, String>,
    /// The seed API's JSON object, as text.
    pub body: Option<String>,
    pub check: SpecCheck,
    /// Seed API: expires this long after the last write or renewal.
    pub liveness: Option<Duration>,
    pub deregister_critical_after: Option<Duration>,
    /// Several checks, each with its own id (Consul's `Checks`): when given, `check` is
    /// `None` and `deregister_critical_after` unset, each check carrying its own.
    pub checks: Vec<CheckSpec>,
}

/// One of several checks as a client states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSpec {
    /// None: Consul's default (`service:<id>`, numbered when there are several).
    pub id: Option<String>,
    pub name: String,
    pub notes: String,
    pub kind: SpecCheck,
    pub deregister_critical_after: Option<Duration>,
}

/// A health check as a client states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecCheck {
    None,
    Ttl {
        ttl: Duration,
    },
    Http {
        url: String,
        interval: Duration,
        timeout: Duration,
    },
    Tcp {
        address: String,
        interval: Duration,
        timeout: Duration,
    },
    /// HTTP with a method other than GET, or headers.
    Request {
        url: String,
        method: String,
        headers: Vec<(String, String)>,
        interval: Duration,
        timeout: Duration,
    },
}

/// Why a registration was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecError {
    TooLong {
        field: &'static str,
        max: usize,
    },
    TooMany {
        field: &'static str,
        max: usize,
    },
    /// The whole entry, at its fullest, would not fit one datagram ([`ENTRY_MAX_BYTES`]).
    TooLarge {
        bytes: usize,
        max: usize,
    },
    Invalid {
        field: &'static str,
        detail: String,
    },
}

impl std::fmt::Display for SpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpecError::TooLong { field, max } => write!(f, "{field} is longer than {max} bytes"),
            SpecError::TooMany { field, max } => write!(f, "more than {max} {field}"),
            SpecError::TooLarge { bytes, max } => {
                write!(
                    f,
                    "the registration is {bytes} bytes encoded, the limit is {max}"
                )
            }
            SpecError::Invalid { field, detail } => write!(f, "{field}: {detail}"),
        }
    }
}

impl std::error::Error for SpecError {}

fn bounded<const MAX: usize>(
    field: &'static str,
    text: &str,
) -> Result<BoundedString<MAX>, SpecError> {
    if text.len() > MAX {
        return Err(SpecError::TooLong { field, max: MAX });
    }
    Ok(BoundedString(text.to_string()))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl InstanceSpec {
    /// A minimal spec: a service at an address.
    pub fn new(service: ServiceName, address: &str, port: u16) -> InstanceSpec {
        InstanceSpec {
            service,
            id: None,
            address: address.to_string(),
            port,
            tags: Vec::new(),
            meta: BTreeMap::new(),
            body: None,
            check: SpecCheck::None,
            liveness: None,
            deregister_critical_after: None,
            checks: Vec::new(),
        }
    }

    /// Check every limit and build the instance `owner` will hold, at `now_ms`.
    pub fn into_instance(
        self,
        id: InstanceId,
        owner: NodeName,
        now_ms: u64,
    ) -> Result<Instance, SpecError> {
        self.into_instance_within(id, owner, now_ms, worst_case_entry_bytes)
    }

    /// [`Self::into_instance`] for an instance saved in a data_dir: its size held to the bound
    /// it was registered under ([`worst_case_entry_bytes_unlisted`]), so an upgrade does not
    /// drop it.
    pub fn into_restored_instance(
        self,
        id: InstanceId,
        owner: NodeName,
        now_ms: u64,
    ) -> Result<Instance, SpecError> {
        self.into_instance_within(id, owner, now_ms, worst_case_entry_bytes_unlisted)
    }

    fn into_instance_within(
        self,
        id: InstanceId,
        owner: NodeName,
        now_ms: u64,
        measure: fn(&Instance) -> usize,
    ) -> Result<Instance, SpecError> {
        if self.tags.len() > TAGS_MAX {
            return Err(SpecError::TooMany {
                field: "tags",
                max: TAGS_MAX,
            });
        }
        if self.meta.len() > META_MAX {
            return Err(SpecError::TooMany {
                field: "meta entries",
                max: META_MAX,
            });
        }
        let mut tags = self
            .tags
            .iter()
            .map(|t| bounded::<TAG_MAX_BYTES>("tag", t))
            .collect::<Result<Vec<_>, _>>()?;
        let mut meta = self
            .meta
            .iter()
            .map(|(k, v)| {
                Ok(MetaPair {
                    key: bounded::<META_KEY_MAX_BYTES>("meta key", k)?,
                    value: bounded::<META_VALUE_MAX_BYTES>("meta value", v)?,
                })
            })
            .collect::<Result<Vec<_>, SpecError>>()?;
        let specs = if self.checks.is_empty() {
            vec![CheckSpec {
                id: None,
                name: String::new(),
                notes: String::new(),
                kind: self.check,
                deregister_critical_after: self.deregister_critical_after,
            }]
        } else {
            if self.check != SpecCheck::None || self.deregister_critical_after.is_some() {
                return Err(SpecError::Invalid {
                    field: "Checks",
                    detail: "give one check, or a list of checks, not both".into(),
                });
            }
            self.checks
        };
        if specs.len() > CHECKS_MAX {
            return Err(SpecError::TooMany {
                field: "checks",
                max: CHECKS_MAX,
            });
        }
        let count = specs.len();
        let mut checks = Vec::with_capacity(count);
        for (n, spec) in specs.into_iter().enumerate() {
            let (check, status) = check_of(spec.kind)?;
            let id = spec
                .id
                .unwrap_or_else(|| default_check_id(id.as_str(), n, count));
            if id.is_empty() || checks.iter().any(|c: &CheckState| c.id.0 == id) {
                return Err(SpecError::Invalid {
                    field: "CheckID",
                    detail: format!("{id:?} is empty or given twice"),
                });
            }
            checks.push(CheckState {
                id: bounded::<CHECK_ID_MAX_BYTES>("CheckID", &id)?,
                name: bounded::<CHECK_TEXT_MAX_BYTES>("check Name", &spec.name)?,
                notes: bounded::<CHECK_TEXT_MAX_BYTES>("check Notes", &spec.notes)?,
                check,
                status,
                output: BoundedString::default(),
                since_ms: now_ms,
                deregister_critical_after_ms: spec.deregister_critical_after.map(millis),
            });
        }
        // Exactly as long as they are: `collect` through `Result` cannot know the length and
        // leaves room for 4, which the registry would hold for the entry's life (168 B of an
        // entry with 2 tags and 2 meta pairs, tests/memory.rs).
        tags.shrink_to_fit();
        meta.shrink_to_fit();
        let mut instance = Instance {
            service: self.service,
            id,
            address: bounded::<ADDRESS_MAX_BYTES>("address", &self.address)?,
            port: self.port,
            tags: Arc::new(BoundedVec::new(tags)),
            meta: Arc::new(BoundedVec::new(meta)),
            check: Check::None,
            owner,
            owner_boot: BootId::UNKNOWN,
            health: Health::Passing,
            health_since_ms: now_ms,
            online: true,
            checks: CheckList(None),
            extras: Extras::of(InstanceExtras {
                body: self
                    .body
                    .as_deref()
                    .map(|b| bounded::<BODY_MAX_BYTES>("body", b))
                    .transpose()?,
                liveness_ms: self.liveness.map(millis),
                ..InstanceExtras::default()
            }),
        };
        instance.set_checks(checks, None, now_ms);
        let bytes = measure(&instance);
        if bytes > ENTRY_MAX_BYTES {
            return Err(SpecError::TooLarge {
                bytes,
                max: ENTRY_MAX_BYTES,
            });
        }
        Ok(instance)
    }
}

/// A check as the registry holds it, and the status it starts with: as Consul, a TTL or a
/// polled check is critical until its first report.
fn check_of(kind: SpecCheck) -> Result<(Check, Health), SpecError> {
    let above_zero = |field: &'static str, d: Duration| {
        if d.is_zero() {
            return Err(SpecError::Invalid {
                field,
                detail: "must be above zero".into(),
            });
        }
        Ok(())
    };
    let check = match kind {
        SpecCheck::None => return Ok((Check::None, Health::Passing)),
        SpecCheck::Ttl { ttl } => {
            above_zero("TTL", ttl)?;
            Check::Ttl {
                ttl_ms: millis(ttl),
            }
        }
        SpecCheck::Http {
            url,
            interval,
            timeout,
        } => {
            url_shape(&url)?;
            above_zero("Interval", interval)?;
            Check::Http(Box::new(HttpCheck {
                url: bounded::<URL_MAX_BYTES>("check URL", &url)?,
                interval_ms: millis(interval),
                timeout_ms: millis(timeout),
            }))
        }
        SpecCheck::Request {
            url,
            method,
            headers,
            interval,
            timeout,
        } => {
            url_shape(&url)?;
            above_zero("Interval", interval)?;
            if headers.len() > HTTP_HEADERS_MAX {
                return Err(SpecError::TooMany {
                    field: "check headers",
                    max: HTTP_HEADERS_MAX,
                });
            }
            let headers = headers
                .iter()
                .map(|(k, v)| {
                    Ok(MetaPair {
                        key: bounded::<META_KEY_MAX_BYTES>("check header name", k)?,
                        value: bounded::<META_VALUE_MAX_BYTES>("check header value", v)?,
                    })
                })
                .collect::<Result<Vec<_>, SpecError>>()?;
            Check::Request(Box::new(HttpRequest {
                url: bounded::<URL_MAX_BYTES>("check URL", &url)?,
                method: bounded::<HTTP_METHOD_MAX_BYTES>("check Method", &method)?,
                headers: BoundedVec::new(headers),
                interval_ms: millis(interval),
                timeout_ms: millis(timeout),
            }))
        }
        SpecCheck::Tcp {
            address,
            interval,
            timeout,
        } => {
            if let Err(why) = check_tcp_address_shape(&address) {
                return Err(SpecError::Invalid {
                    field: "TCP",
                    detail: format!("{address:?}: {why}"),
                });
            }
            above_zero("Interval", interval)?;
            Check::Tcp(Box::new(TcpCheck {
                address: bounded::<ADDRESS_MAX_BYTES>("TCP", &address)?,
                interval_ms: millis(interval),
                timeout_ms: millis(timeout),
            }))
        }
    };
    // What the decoder will demand of it on every other node (`Check::validate`).
    check.validate().map_err(|why| SpecError::Invalid {
        field: "Check",
        detail: why.to_string(),
    })?;
    Ok((check, Health::Critical))
}

fn url_shape(url: &str) -> Result<(), SpecError> {
    check_url_shape(url).map_err(|why| SpecError::Invalid {
        field: "HTTP",
        detail: format!("{url:?}: {why}"),
    })
}
