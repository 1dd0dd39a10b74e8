//! The anti-spam agents over the API, named after the cmdlets they replace:
//! Get-/Set-TransportAgent (`/api/v1/transport-agents`),
//! Get-/Set-IPBlockListConfig and -IPAllowListConfig
//! (`/api/v1/ip-block-list-config`, `/api/v1/ip-allow-list-config`),
//! Add-/Get-/Remove-IPBlockListEntry and -IPAllowListEntry
//! (`/api/v1/ip-block-list-entries`, `/api/v1/ip-allow-list-entries`) and
//! Add-/Get-/Set-/Remove-IPBlockListProvider and -IPAllowListProvider
//! (`/api/v1/ip-block-list-providers`, `/api/v1/ip-allow-list-providers`),
//! Get-/Set-SenderFilterConfig (`/api/v1/sender-filter-config`) and
//! Get-/Set-RecipientFilterConfig (`/api/v1/recipient-filter-config`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::AppState;
use super::extract::{IfMatch, JsonBody, Tagged, created, ok};
use super::problem::{ApiError, Problem};
use super::views::{List, Meta};
use crate::config::{Change, ServiceError, Snapshot, setting};
use crate::model::anti_spam::{
    AgentName, IpList, IpListConfig, IpListEntry, IpListProvider, RecipientFilterConfig,
    SenderFilterConfig, TransportAgents,
};
use crate::model::attachment_filter::{AttachmentFilterConfig, AttachmentFilterEntry};
use crate::store::Stored;

/// A transport agent, as Get-TransportAgent shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransportAgentView {
    pub identity: AgentName,
    pub enabled: bool,
    /// 1 runs first.
    pub priority: u32,
    /// The SMTP events it acts at.
    pub events: Vec<String>,
}

fn agent_views(a: &TransportAgents) -> Vec<TransportAgentView> {
    let mut agents: Vec<_> = a
        .agents
        .iter()
        .map(|a| TransportAgentView {
            identity: a.identity,
            enabled: a.enabled,
            priority: a.priority,
            events: a.identity.events().iter().map(|e| e.to_string()).collect(),
        })
        .collect();
    agents.sort_by_key(|a| a.priority);
    agents
}

#[utoipa::path(get, path = "/api/v1/transport-agents", tag = "anti-spam",
    responses((status = 200, body = List<TransportAgentView>, headers(("ETag" = String)))))]
pub async fn agents(State(s): State<AppState>) -> Tagged<List<TransportAgentView>> {
    let snap = s.config.snapshot();
    let a = &snap.anti_spam.agents;
    ok(
        a.version,
        List {
            items: agent_views(&a.spec),
        },
    )
}

#[utoipa::path(patch, path = "/api/v1/transport-agents/{identity}", tag = "anti-spam",
    params(("identity" = String, Path, description = "The agent's name, e.g. `Connection Filtering Agent`"),
           ("If-Match" = Option<String>, Header, description = "ETag from a GET of the list")),
    request_body(content = super::openapi::TransportAgentPatch, content_type = "application/merge-patch+json"),
    responses((status = 200, body = TransportAgentView, headers(("ETag" = String))),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 412, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn patch_agent(
    State(s): State<AppState>,
    Path(identity): Path<String>,
    IfMatch(if_match): IfMatch,
    JsonBody(body): JsonBody,
) -> Result<Tagged<TransportAgentView>, ApiError> {
    let name = AgentName::parse(&identity).ok_or_else(|| {
        ApiError::not_found(format!("transport agent '{identity}' does not exist"))
    })?;
    let stored = s
        .config
        .update_setting(
            setting::TRANSPORT_AGENTS,
            |snap| &snap.anti_spam.agents,
            if_match,
            |_, current| Ok(current.patched(name, &body)?),
        )
        .await?;
    let view = agent_views(&stored.spec)
        .into_iter()
        .find(|a| a.identity == name)
        .expect("the agent is in the list");
    Ok(ok(stored.version, view))
}

/// An IP list's configuration (Get-IPBlockListConfig / -IPAllowListConfig).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IpListConfigView {
    /// 0 until first changed; sent as the ETag, expected in If-Match.
    pub version: i64,
    #[serde(flatten)]
    pub config: IpListConfig,
}

fn config_of(snap: &Snapshot, list: IpList) -> &Stored<IpListConfig> {
    match list {
        IpList::Block => &snap.anti_spam.ip_block_list_config,
        IpList::Allow => &snap.anti_spam.ip_allow_list_config,
    }
}

fn config_view(c: &Stored<IpListConfig>) -> Tagged<IpListConfigView> {
    ok(
        c.version,
        IpListConfigView {
            version: c.version,
            config: c.spec.clone(),
        },
    )
}

async fn patch_config(
    s: &AppState,
    list: IpList,
    if_match: Option<i64>,
    body: serde_json::Value,
) -> Result<Tagged<IpListConfigView>, ApiError> {
    let kind = match list {
        IpList::Block => setting::IP_BLOCK_LIST_CONFIG,
        IpList::Allow => setting::IP_ALLOW_LIST_CONFIG,
    };
    let stored = s
        .config
        .update_setting(
            kind,
            move |snap| config_of(snap, list),
            if_match,
            |_, current| Ok(current.patched(list, &body)?),
        )
        .await?;
    Ok(config_view(&stored))
}

/// An IP Block or Allow list entry.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IpListEntryView {
    #[serde(flatten)]
    pub meta: Meta,
    #[serde(flatten)]
    pub entry: IpListEntry,
    /// Past its expiration time: it no longer applies.
    pub expired: bool,
}

fn entry_view(e: &Stored<IpListEntry>) -> IpListEntryView {
    IpListEntryView {
        meta: e.into(),
        entry: e.spec.clone(),
        expired: !e.spec.live(OffsetDateTime::now_utc()),
    }
}

fn find_entry(snap: &Snapshot, list: IpList, id: &str) -> Result<Stored<IpListEntry>, ApiError> {
    crate::config::find::<IpListEntry>(snap, id)
        .filter(|e| e.spec.list == list)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("IP list entry '{id}' does not exist")))
}

async fn create_entry(
    s: &AppState,
    list: IpList,
    body: serde_json::Value,
) -> Result<Tagged<IpListEntryView>, ApiError> {
    let stored = s
        .config
        .create::<IpListEntry>(|snap, _| {
            let e = IpListEntry::from_create(list, &body)?;
            if snap
                .anti_spam
                .ip_list_entries
                .iter()
                .any(|o| o.spec.key().eq_ignore_ascii_case(&e.key()))
            {
                return Err(ServiceError::Conflict {
                    field: Some("ipRange".into()),
                    message: format!("{} is already on the IP {} list", e.ip_range, list.as_str()),
                });
            }
            Ok(Change::of(e))
        })
        .await?;
    Ok(created(stored.version, entry_view(&stored)))
}

/// Entries created by a bulk request.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkCreated {
    pub created: usize,
}

async fn create_entries(
    s: &AppState,
    list: IpList,
    body: serde_json::Value,
) -> Result<Json<BulkCreated>, ApiError> {
    let items = body
        .get("items")
        .and_then(|v| v.as_array())
        .cloned()
        .ok_or_else(|| {
            ApiError::from(crate::model::Invalid::field(
                "items",
                "is required: a list of entries",
            ))
        })?;
    let created = s
        .config
        .create_many::<IpListEntry>(|_| {
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    IpListEntry::from_create(list, item).map_err(|e| {
                        ServiceError::Invalid(crate::model::Invalid(
                            e.0.into_iter()
                                .map(|mut f| {
                                    f.field = format!("items[{i}].{}", f.field);
                                    f
                                })
                                .collect(),
                        ))
                    })
                })
                .collect()
        })
        .await?;
    Ok(Json(BulkCreated { created }))
}

async fn delete_entry(
    s: &AppState,
    list: IpList,
    id: &str,
    if_match: Option<i64>,
) -> Result<StatusCode, ApiError> {
    let e = find_entry(&s.config.snapshot(), list, id)?;
    s.config
        .delete::<IpListEntry>(&e.id.to_string(), if_match, |_, _| Ok(()))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An IP Block or Allow list provider.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IpListProviderView {
    #[serde(flatten)]
    pub meta: Meta,
    #[serde(flatten)]
    pub provider: IpListProvider,
}

fn provider_view(p: &Stored<IpListProvider>) -> IpListProviderView {
    IpListProviderView {
        meta: p.into(),
        provider: p.spec.clone(),
    }
}

fn find_provider(
    snap: &Snapshot,
    list: IpList,
    id: &str,
) -> Result<Stored<IpListProvider>, ApiError> {
    crate::config::find::<IpListProvider>(snap, id)
        .filter(|p| p.spec.list == list)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("IP list provider '{id}' does not exist")))
}

async fn create_provider(
    s: &AppState,
    list: IpList,
    body: serde_json::Value,
) -> Result<Tagged<IpListProviderView>, ApiError> {
    let stored = s
        .config
        .create::<IpListProvider>(|snap, _| {
            let existing = snap
                .anti_spam
                .ip_list_providers
                .iter()
                .filter(|p| p.spec.list == list)
                .count();
            Ok(Change::of(IpListProvider::from_create(
                list, &body, existing,
            )?))
        })
        .await?;
    Ok(created(stored.version, provider_view(&stored)))
}

async fn patch_provider(
    s: &AppState,
    list: IpList,
    id: &str,
    if_match: Option<i64>,
    body: serde_json::Value,
) -> Result<Tagged<IpListProviderView>, ApiError> {
    let p = find_provider(&s.config.snapshot(), list, id)?;
    let stored = s
        .config
        .update::<IpListProvider>(&p.id.to_string(), if_match, |_, current| {
            Ok(Change::of(current.spec.patched(&body)?))
        })
        .await?;
    Ok(ok(stored.version, provider_view(&stored)))
}

async fn delete_provider(
    s: &AppState,
    list: IpList,
    id: &str,
    if_match: Option<i64>,
) -> Result<StatusCode, ApiError> {
    let p = find_provider(&s.config.snapshot(), list, id)?;
    s.config
        .delete::<IpListProvider>(&p.id.to_string(), if_match, |_, _| Ok(()))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The handlers of one list, Block or Allow: the same calls at its paths.
macro_rules! ip_list_api {
    ($m:ident, $list:expr, $config:literal, $entries:literal, $bulk:literal, $entry:literal, $providers:literal, $provider:literal,
     $config_patch:ty, $provider_create:ty, $provider_patch:ty) => {
        pub mod $m {
            use super::*;

            #[utoipa::path(get, path = $config, tag = "anti-spam",
                responses((status = 200, body = IpListConfigView, headers(("ETag" = String)))))]
            pub async fn get_config(State(s): State<AppState>) -> Tagged<IpListConfigView> {
                config_view(config_of(&s.config.snapshot(), $list))
            }

            #[utoipa::path(patch, path = $config, tag = "anti-spam",
                params(("If-Match" = Option<String>, Header, description = "ETag from a GET")),
                request_body(content = $config_patch, content_type = "application/merge-patch+json"),
                responses((status = 200, body = IpListConfigView, headers(("ETag" = String))),
                          (status = 412, body = Problem, content_type = "application/problem+json"),
                          (status = 422, body = Problem, content_type = "application/problem+json")))]
            pub async fn patch_config(
                State(s): State<AppState>,
                IfMatch(if_match): IfMatch,
                JsonBody(body): JsonBody,
            ) -> Result<Tagged<IpListConfigView>, ApiError> {
                super::patch_config(&s, $list, if_match, body).await
            }

            #[utoipa::path(get, path = $entries, tag = "anti-spam",
                responses((status = 200, body = List<IpListEntryView>)))]
            pub async fn list_entries(State(s): State<AppState>) -> Json<List<IpListEntryView>> {
                let snap = s.config.snapshot();
                Json(List {
                    items: snap
                        .anti_spam
                        .ip_list_entries
                        .iter()
                        .filter(|e| e.spec.list == $list)
                        .map(entry_view)
                        .collect(),
                })
            }

            #[utoipa::path(post, path = $entries, tag = "anti-spam",
                request_body = crate::api::openapi::IpListEntryCreate,
                responses((status = 201, body = IpListEntryView, headers(("ETag" = String))),
                          (status = 409, body = Problem, content_type = "application/problem+json"),
                          (status = 422, body = Problem, content_type = "application/problem+json")))]
            pub async fn create_entry(
                State(s): State<AppState>,
                JsonBody(body): JsonBody,
            ) -> Result<Tagged<IpListEntryView>, ApiError> {
                super::create_entry(&s, $list, body).await
            }

            #[utoipa::path(post, path = $bulk, tag = "anti-spam",
                request_body = crate::api::openapi::IpListEntriesBulk,
                responses((status = 200, body = BulkCreated, description = "All created in one change, or none"),
                          (status = 409, body = Problem, content_type = "application/problem+json"),
                          (status = 422, body = Problem, content_type = "application/problem+json")))]
            pub async fn create_entries(
                State(s): State<AppState>,
                JsonBody(body): JsonBody,
            ) -> Result<Json<BulkCreated>, ApiError> {
                super::create_entries(&s, $list, body).await
            }

            #[utoipa::path(get, path = $entry, tag = "anti-spam",
                params(("id" = String, Path, description = "Id")),
                responses((status = 200, body = IpListEntryView, headers(("ETag" = String))),
                          (status = 404, body = Problem, content_type = "application/problem+json")))]
            pub async fn get_entry(
                State(s): State<AppState>,
                Path(id): Path<String>,
            ) -> Result<Tagged<IpListEntryView>, ApiError> {
                let e = find_entry(&s.config.snapshot(), $list, &id)?;
                Ok(ok(e.version, entry_view(&e)))
            }

            #[utoipa::path(delete, path = $entry, tag = "anti-spam",
                params(("id" = String, Path, description = "Id"),
                       ("If-Match" = Option<String>, Header, description = "ETag from a GET")),
                responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json"),
                          (status = 412, body = Problem, content_type = "application/problem+json")))]
            pub async fn delete_entry(
                State(s): State<AppState>,
                Path(id): Path<String>,
                IfMatch(if_match): IfMatch,
            ) -> Result<StatusCode, ApiError> {
                super::delete_entry(&s, $list, &id, if_match).await
            }

            #[utoipa::path(get, path = $providers, tag = "anti-spam",
                responses((status = 200, body = List<IpListProviderView>)))]
            pub async fn list_providers(State(s): State<AppState>) -> Json<List<IpListProviderView>> {
                let snap = s.config.snapshot();
                Json(List {
                    items: snap
                        .anti_spam
                        .ip_list_providers
                        .iter()
                        .filter(|p| p.spec.list == $list)
                        .map(provider_view)
                        .collect(),
                })
            }

            #[utoipa::path(post, path = $providers, tag = "anti-spam",
                request_body = $provider_create,
                responses((status = 201, body = IpListProviderView, headers(("ETag" = String))),
                          (status = 409, body = Problem, content_type = "application/problem+json"),
                          (status = 422, body = Problem, content_type = "application/problem+json")))]
            pub async fn create_provider(
                State(s): State<AppState>,
                JsonBody(body): JsonBody,
            ) -> Result<Tagged<IpListProviderView>, ApiError> {
                super::create_provider(&s, $list, body).await
            }

            #[utoipa::path(get, path = $provider, tag = "anti-spam",
                params(("id" = String, Path, description = "Id or name")),
                responses((status = 200, body = IpListProviderView, headers(("ETag" = String))),
                          (status = 404, body = Problem, content_type = "application/problem+json")))]
            pub async fn get_provider(
                State(s): State<AppState>,
                Path(id): Path<String>,
            ) -> Result<Tagged<IpListProviderView>, ApiError> {
                let p = find_provider(&s.config.snapshot(), $list, &id)?;
                Ok(ok(p.version, provider_view(&p)))
            }

            #[utoipa::path(patch, path = $provider, tag = "anti-spam",
                params(("id" = String, Path, description = "Id or name"),
                       ("If-Match" = Option<String>, Header, description = "ETag from a GET")),
                request_body(content = $provider_patch, content_type = "application/merge-patch+json"),
                responses((status = 200, body = IpListProviderView, headers(("ETag" = String))),
                          (status = 404, body = Problem, content_type = "application/problem+json"),
                          (status = 409, body = Problem, content_type = "application/problem+json"),
                          (status = 412, body = Problem, content_type = "application/problem+json"),
                          (status = 422, body = Problem, content_type = "application/problem+json")))]
            pub async fn patch_provider(
                State(s): State<AppState>,
                Path(id): Path<String>,
                IfMatch(if_match): IfMatch,
                JsonBody(body): JsonBody,
            ) -> Result<Tagged<IpListProviderView>, ApiError> {
                super::patch_provider(&s, $list, &id, if_match, body).await
            }

            #[utoipa::path(delete, path = $provider, tag = "anti-spam",
                params(("id" = String, Path, description = "Id or name"),
                       ("If-Match" = Option<String>, Header, description = "ETag from a GET")),
                responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json"),
                          (status = 412, body = Problem, content_type = "application/problem+json")))]
            pub async fn delete_provider(
                State(s): State<AppState>,
                Path(id): Path<String>,
                IfMatch(if_match): IfMatch,
            ) -> Result<StatusCode, ApiError> {
                super::delete_provider(&s, $list, &id, if_match).await
            }
        }
    };
}

ip_list_api!(
    block,
    IpList::Block,
    "/api/v1/ip-block-list-config",
    "/api/v1/ip-block-list-entries",
    "/api/v1/ip-block-list-entries/bulk",
    "/api/v1/ip-block-list-entries/{id}",
    "/api/v1/ip-block-list-providers",
    "/api/v1/ip-block-list-providers/{id}",
    crate::api::openapi::IpListConfigPatch,
    crate::api::openapi::IpListProviderCreate,
    crate::api::openapi::IpListProviderPatch
);
ip_list_api!(
    allow,
    IpList::Allow,
    "/api/v1/ip-allow-list-config",
    "/api/v1/ip-allow-list-entries",
    "/api/v1/ip-allow-list-entries/bulk",
    "/api/v1/ip-allow-list-entries/{id}",
    "/api/v1/ip-allow-list-providers",
    "/api/v1/ip-allow-list-providers/{id}",
    crate::api::openapi::IpAllowListConfigPatch,
    crate::api::openapi::IpAllowListProviderCreate,
    crate::api::openapi::IpAllowListProviderPatch
);

/// Set-SenderFilterConfig as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SenderFilterConfigView {
    /// 0 until first changed; sent as the ETag, expected in If-Match.
    pub version: i64,
    #[serde(flatten)]
    pub config: SenderFilterConfig,
}

/// Set-RecipientFilterConfig as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecipientFilterConfigView {
    /// 0 until first changed; sent as the ETag, expected in If-Match.
    pub version: i64,
    #[serde(flatten)]
    pub config: RecipientFilterConfig,
}

#[utoipa::path(get, path = "/api/v1/sender-filter-config", tag = "anti-spam",
    responses((status = 200, body = SenderFilterConfigView, headers(("ETag" = String)))))]
pub async fn get_sender_filter(State(s): State<AppState>) -> Tagged<SenderFilterConfigView> {
    let c = s.config.snapshot().anti_spam.sender_filter_config.clone();
    ok(
        c.version,
        SenderFilterConfigView {
            version: c.version,
            config: c.spec,
        },
    )
}

#[utoipa::path(patch, path = "/api/v1/sender-filter-config", tag = "anti-spam",
    params(("If-Match" = Option<String>, Header, description = "ETag from a GET")),
    request_body(content = super::openapi::SenderFilterConfigPatch, content_type = "application/merge-patch+json"),
    responses((status = 200, body = SenderFilterConfigView, headers(("ETag" = String))),
              (status = 412, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn patch_sender_filter(
    State(s): State<AppState>,
    IfMatch(if_match): IfMatch,
    JsonBody(body): JsonBody,
) -> Result<Tagged<SenderFilterConfigView>, ApiError> {
    let c = s
        .config
        .update_setting(
            setting::SENDER_FILTER_CONFIG,
            |snap| &snap.anti_spam.sender_filter_config,
            if_match,
            |_, current| Ok(current.patched(&body)?),
        )
        .await?;
    Ok(ok(
        c.version,
        SenderFilterConfigView {
            version: c.version,
            config: c.spec,
        },
    ))
}

#[utoipa::path(get, path = "/api/v1/recipient-filter-config", tag = "anti-spam",
    responses((status = 200, body = RecipientFilterConfigView, headers(("ETag" = String)))))]
pub async fn get_recipient_filter(State(s): State<AppState>) -> Tagged<RecipientFilterConfigView> {
    let c = s
        .config
        .snapshot()
        .anti_spam
        .recipient_filter_config
        .clone();
    ok(
        c.version,
        RecipientFilterConfigView {
            version: c.version,
            config: c.spec,
        },
    )
}

#[utoipa::path(patch, path = "/api/v1/recipient-filter-config", tag = "anti-spam",
    params(("If-Match" = Option<String>, Header, description = "ETag from a GET")),
    request_body(content = super::openapi::RecipientFilterConfigPatch, content_type = "application/merge-patch+json"),
    responses((status = 200, body = RecipientFilterConfigView, headers(("ETag" = String))),
              (status = 412, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn patch_recipient_filter(
    State(s): State<AppState>,
    IfMatch(if_match): IfMatch,
    JsonBody(body): JsonBody,
) -> Result<Tagged<RecipientFilterConfigView>, ApiError> {
    let c = s
        .config
        .update_setting(
            setting::RECIPIENT_FILTER_CONFIG,
            |snap| &snap.anti_spam.recipient_filter_config,
            if_match,
            |_, current| Ok(current.patched(&body)?),
        )
        .await?;
    Ok(ok(
        c.version,
        RecipientFilterConfigView {
            version: c.version,
            config: c.spec,
        },
    ))
}

/// Get-AttachmentFilterListConfig (with the entries) as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentFilterConfigView {
    /// 0 until first changed; sent as the ETag, expected in If-Match.
    pub version: i64,
    #[serde(flatten)]
    pub config: AttachmentFilterConfig,
}

fn attachment_view(c: Stored<AttachmentFilterConfig>) -> Tagged<AttachmentFilterConfigView> {
    ok(
        c.version,
        AttachmentFilterConfigView {
            version: c.version,
            config: c.spec,
        },
    )
}

#[utoipa::path(get, path = "/api/v1/attachment-filter-config", tag = "anti-spam",
    responses((status = 200, body = AttachmentFilterConfigView, headers(("ETag" = String)))))]
pub async fn get_attachment_filter(
    State(s): State<AppState>,
) -> Tagged<AttachmentFilterConfigView> {
    attachment_view(
        s.config
            .snapshot()
            .anti_spam
            .attachment_filter_config
            .clone(),
    )
}

async fn change_attachment_filter(
    s: &AppState,
    if_match: Option<i64>,
    change: impl FnOnce(&AttachmentFilterConfig) -> Result<AttachmentFilterConfig, ServiceError>,
) -> Result<Tagged<AttachmentFilterConfigView>, ApiError> {
    let c = s
        .config
        .update_setting(
            setting::ATTACHMENT_FILTER_CONFIG,
            |snap| &snap.anti_spam.attachment_filter_config,
            if_match,
            |_, current| change(current),
        )
        .await?;
    Ok(attachment_view(c))
}

#[utoipa::path(patch, path = "/api/v1/attachment-filter-config", tag = "anti-spam",
    params(("If-Match" = Option<String>, Header, description = "ETag from a GET")),
    request_body(content = super::openapi::AttachmentFilterConfigPatch, content_type = "application/merge-patch+json"),
    responses((status = 200, body = AttachmentFilterConfigView, headers(("ETag" = String))),
              (status = 412, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn patch_attachment_filter(
    State(s): State<AppState>,
    IfMatch(if_match): IfMatch,
    JsonBody(body): JsonBody,
) -> Result<Tagged<AttachmentFilterConfigView>, ApiError> {
    change_attachment_filter(&s, if_match, |c| Ok(c.patched(&body)?)).await
}

#[utoipa::path(post, path = "/api/v1/attachment-filter-entries", tag = "anti-spam",
    request_body = AttachmentFilterEntry,
    responses((status = 200, body = AttachmentFilterConfigView, headers(("ETag" = String))),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn add_attachment_entry(
    State(s): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Tagged<AttachmentFilterConfigView>, ApiError> {
    let entry: AttachmentFilterEntry = crate::model::from_json(body)?;
    change_attachment_filter(&s, None, |c| {
        let mut next = c.clone();
        next.entries.push(entry);
        next.validate()?;
        Ok(next)
    })
    .await
}

#[utoipa::path(delete, path = "/api/v1/attachment-filter-entries/{identity}", tag = "anti-spam",
    params(("identity" = String, Path, description = "`FileName:*.exe` or `ContentType:application/x-msdownload`")),
    responses((status = 200, body = AttachmentFilterConfigView, headers(("ETag" = String))),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn remove_attachment_entry(
    State(s): State<AppState>,
    Path(identity): Path<String>,
) -> Result<Tagged<AttachmentFilterConfigView>, ApiError> {
    let known = s
        .config
        .snapshot()
        .anti_spam
        .attachment_filter_config
        .spec
        .entries
        .iter()
        .any(|e| e.identity().eq_ignore_ascii_case(&identity));
    if !known {
        return Err(ApiError::not_found(format!(
            "no attachment filter entry '{identity}'"
        )));
    }
    change_attachment_filter(&s, None, |c| {
        let mut next = c.clone();
        next.entries
            .retain(|e| !e.identity().eq_ignore_ascii_case(&identity));
        Ok(next)
    })
    .await
}
