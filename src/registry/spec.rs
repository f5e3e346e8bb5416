//! What a client registers, checked into an [`Instance`].

use std::collections::BTreeMap;
use std::time::Duration;

use super::entry::*;
use crate::names::{InstanceId, NodeName, ServiceName};
use crate::wire::bounded::{BoundedString, BoundedVec};

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
        }
    }

    /// Check every limit and build the instance `owner` will hold, at `now_ms`.
    pub fn into_instance(
        self,
        id: InstanceId,
        owner: NodeName,
        now_ms: u64,
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
        let tags = self
            .tags
            .iter()
            .map(|t| bounded::<TAG_MAX_BYTES>("tag", t))
            .collect::<Result<Vec<_>, _>>()?;
        let meta = self
            .meta
            .iter()
            .map(|(k, v)| {
                Ok(MetaPair {
                    key: bounded::<META_KEY_MAX_BYTES>("meta key", k)?,
                    value: bounded::<META_VALUE_MAX_BYTES>("meta value", v)?,
                })
            })
            .collect::<Result<Vec<_>, SpecError>>()?;
        let (check, health) = match self.check {
            SpecCheck::None => (Check::None, Health::Passing),
            // As Consul: a TTL check is critical until its first report.
            SpecCheck::Ttl { ttl } => {
                if ttl.is_zero() {
                    return Err(SpecError::Invalid {
                        field: "TTL",
                        detail: "must be above zero".into(),
                    });
                }
                (
                    Check::Ttl {
                        ttl_ms: millis(ttl),
                    },
                    Health::Critical,
                )
            }
            SpecCheck::Http {
                url,
                interval,
                timeout,
            } => {
                if let Err(why) = check_url_shape(&url) {
                    return Err(SpecError::Invalid {
                        field: "HTTP",
                        detail: format!("{url:?}: {why}"),
                    });
                }
                if interval.is_zero() {
                    return Err(SpecError::Invalid {
                        field: "Interval",
                        detail: "must be above zero".into(),
                    });
                }
                let url = bounded::<URL_MAX_BYTES>("check URL", &url)?;
                (
                    Check::Http {
                        url,
                        interval_ms: millis(interval),
                        timeout_ms: millis(timeout),
                    },
                    Health::Critical,
                )
            }
        };
        // What the decoder will demand of it on every other node (`Check::validate`).
        check.validate().map_err(|why| SpecError::Invalid {
            field: "Check",
            detail: why.to_string(),
        })?;
        let instance = Instance {
            service: self.service,
            id,
            address: bounded::<ADDRESS_MAX_BYTES>("address", &self.address)?,
            port: self.port,
            tags: BoundedVec::new(tags),
            meta: BoundedVec::new(meta),
            body: self
                .body
                .as_deref()
                .map(|b| bounded::<BODY_MAX_BYTES>("body", b))
                .transpose()?,
            check,
            liveness_ms: self.liveness.map(millis),
            deregister_critical_after_ms: self.deregister_critical_after.map(millis),
            owner,
            owner_boot: super::entry::BootId::UNKNOWN,
            output: BoundedString(String::new()),
            health,
            health_since_ms: now_ms,
            online: true,
            maintenance_reason: None,
        };
        let bytes = worst_case_entry_bytes(&instance);
        if bytes > ENTRY_MAX_BYTES {
            return Err(SpecError::TooLarge {
                bytes,
                max: ENTRY_MAX_BYTES,
            });
        }
        Ok(instance)
    }
}
