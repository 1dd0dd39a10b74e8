//! The content agents' configuration, named after their cmdlets:
//! Get-/Set-ContentFilterConfig (`/api/v1/content-filter-config`),
//! New-/Get-/Set-/Remove-AddressRewriteEntry
//! (`/api/v1/address-rewrite-entries`) and New-/Get-/Set-/Remove-
//! TransportRule (`/api/v1/transport-rules`). Entries and rules are kept as
//! one document each; their ETag is that document's version.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::extract::{IfMatch, JsonBody, Tagged, created, ok};
use super::problem::{ApiError, Problem};
use super::views::List;
use crate::config::{ServiceError, setting};
use crate::model::address_rewrite::{AddressRewriteEntries, AddressRewriteEntry};
use crate::model::content_filter::ContentFilterConfig;
use crate::model::edge_rule::{TransportRule, TransportRules};

/// Set-ContentFilterConfig as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContentFilterConfigView {
    /// 0 until first changed; sent as the ETag, expected in If-Match.
    pub version: i64,
    #[serde(flatten)]
    pub config: ContentFilterConfig,
}

#[utoipa::path(get, path = "/api/v1/content-filter-config", tag = "content-agents",
    responses((status = 200, body = ContentFilterConfigView, headers(("ETag" = String)))))]
pub async fn get_content_filter(State(s): State<AppState>) -> Tagged<ContentFilterConfigView> {
    let c = s.config.snapshot().anti_spam.content_filter_config.clone();
    ok(
        c.version,
        ContentFilterConfigView {
            version: c.version,
            config: c.spec,
        },
    )
}

#[utoipa::path(patch, path = "/api/v1/content-filter-config", tag = "content-agents",
    params(("If-Match" = Option<String>, Header, description = "ETag from a GET")),
    request_body(content = super::openapi::ContentFilterConfigPatch, content_type = "application/merge-patch+json"),
    responses((status = 200, body = ContentFilterConfigView, headers(("ETag" = String))),
              (status = 409, body = Problem, content_type = "application/problem+json",
               description = "A transport rule quarantines mail: the quarantine mailbox cannot be removed"),
              (status = 412, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn patch_content_filter(
    State(s): State<AppState>,
    IfMatch(if_match): IfMatch,
    JsonBody(body): JsonBody,
) -> Result<Tagged<ContentFilterConfigView>, ApiError> {
    let c = s
        .config
        .update_setting(
            setting::CONTENT_FILTER_CONFIG,
            |snap| &snap.anti_spam.content_filter_config,
            if_match,
            |snap, current| {
                let next = current.patched(&body)?;
                // Rules that quarantine need the mailbox.
                let quarantining = snap
                    .anti_spam
                    .transport_rules
                    .spec
                    .rules
                    .iter()
                    .find(|r| r.actions.quarantine);
                if let (None, Some(r)) = (&next.quarantine_mailbox, quarantining) {
                    return Err(ServiceError::Conflict {
                        field: Some("quarantineMailbox".into()),
                        message: format!("transport rule '{}' quarantines mail", r.name),
                    });
                }
                Ok(next)
            },
        )
        .await?;
    Ok(ok(
        c.version,
        ContentFilterConfigView {
            version: c.version,
            config: c.spec,
        },
    ))
}

/// An address rewrite entry as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddressRewriteEntryView {
    /// The version of the entries' document: the ETag.
    pub version: i64,
    #[serde(flatten)]
    pub entry: AddressRewriteEntry,
}

fn entry_view(version: i64, e: AddressRewriteEntry) -> AddressRewriteEntryView {
    AddressRewriteEntryView { version, entry: e }
}

#[utoipa::path(get, path = "/api/v1/address-rewrite-entries", tag = "content-agents",
    responses((status = 200, body = List<AddressRewriteEntryView>)))]
pub async fn list_rewrites(State(s): State<AppState>) -> Tagged<List<AddressRewriteEntryView>> {
    let d = s
        .config
        .snapshot()
        .anti_spam
        .address_rewrite_entries
        .clone();
    ok(
        d.version,
        List {
            items: d
                .spec
                .entries
                .into_iter()
                .map(|e| entry_view(d.version, e))
                .collect(),
        },
    )
}

fn find_entry(d: &AddressRewriteEntries, name: &str) -> Result<AddressRewriteEntry, ServiceError> {
    d.entries
        .iter()
        .find(|e| e.name.eq_ignore_ascii_case(name))
        .cloned()
        .ok_or_else(|| ServiceError::NotFound {
            kind: "address rewrite entry",
            key: name.to_string(),
        })
}

#[utoipa::path(get, path = "/api/v1/address-rewrite-entries/{name}", tag = "content-agents",
    params(("name" = String, Path)),
    responses((status = 200, body = AddressRewriteEntryView, headers(("ETag" = String))),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_rewrite(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Tagged<AddressRewriteEntryView>, ApiError> {
    let d = s
        .config
        .snapshot()
        .anti_spam
        .address_rewrite_entries
        .clone();
    let e = find_entry(&d.spec, &name)?;
    Ok(ok(d.version, entry_view(d.version, e)))
}

async fn change_rewrites(
    s: &AppState,
    if_match: Option<i64>,
    change: impl FnOnce(&AddressRewriteEntries) -> Result<AddressRewriteEntries, ServiceError>,
) -> Result<crate::store::Stored<AddressRewriteEntries>, ApiError> {
    Ok(s.config
        .update_setting(
            setting::ADDRESS_REWRITE_ENTRIES,
            |snap| &snap.anti_spam.address_rewrite_entries,
            if_match,
            |_, current| change(current),
        )
        .await?)
}

#[utoipa::path(post, path = "/api/v1/address-rewrite-entries", tag = "content-agents",
    request_body = super::openapi::AddressRewriteEntryCreate,
    responses((status = 201, body = AddressRewriteEntryView, headers(("ETag" = String))),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_rewrite(
    State(s): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Tagged<AddressRewriteEntryView>, ApiError> {
    let entry = AddressRewriteEntry::from_create(&body)?;
    let name = entry.name.clone();
    let d = change_rewrites(&s, None, |d| Ok(d.with(entry, None)?)).await?;
    let e = find_entry(&d.spec, &name)?;
    Ok(created(d.version, entry_view(d.version, e)))
}

#[utoipa::path(patch, path = "/api/v1/address-rewrite-entries/{name}", tag = "content-agents",
    params(("name" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag from a GET")),
    request_body(content = super::openapi::AddressRewriteEntryPatch, content_type = "application/merge-patch+json"),
    responses((status = 200, body = AddressRewriteEntryView, headers(("ETag" = String))),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 412, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn patch_rewrite(
    State(s): State<AppState>,
    Path(name): Path<String>,
    IfMatch(if_match): IfMatch,
    JsonBody(body): JsonBody,
) -> Result<Tagged<AddressRewriteEntryView>, ApiError> {
    let mut new_name = name.clone();
    let d = change_rewrites(&s, if_match, |d| {
        let next = find_entry(d, &name)?.patched(&body)?;
        new_name = next.name.clone();
        Ok(d.with(next, Some(&name))?)
    })
    .await?;
    let e = find_entry(&d.spec, &new_name)?;
    Ok(ok(d.version, entry_view(d.version, e)))
}

#[utoipa::path(delete, path = "/api/v1/address-rewrite-entries/{name}", tag = "content-agents",
    params(("name" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag from a GET")),
    responses((status = 204),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn delete_rewrite(
    State(s): State<AppState>,
    Path(name): Path<String>,
    IfMatch(if_match): IfMatch,
) -> Result<StatusCode, ApiError> {
    change_rewrites(&s, if_match, |d| {
        find_entry(d, &name)?;
        Ok(AddressRewriteEntries {
            entries: d
                .entries
                .iter()
                .filter(|e| !e.name.eq_ignore_ascii_case(&name))
                .cloned()
                .collect(),
        })
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A transport rule as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransportRuleView {
    /// The version of the rules' document: the ETag.
    pub version: i64,
    #[serde(flatten)]
    pub rule: TransportRule,
}

fn find_rule(d: &TransportRules, name: &str) -> Result<TransportRule, ServiceError> {
    d.rules
        .iter()
        .find(|r| r.name.eq_ignore_ascii_case(name))
        .cloned()
        .ok_or_else(|| ServiceError::NotFound {
            kind: "transport rule",
            key: name.to_string(),
        })
}

#[utoipa::path(get, path = "/api/v1/transport-rules", tag = "content-agents",
    responses((status = 200, body = List<TransportRuleView>)))]
pub async fn list_rules(State(s): State<AppState>) -> Tagged<List<TransportRuleView>> {
    let d = s.config.snapshot().anti_spam.transport_rules.clone();
    ok(
        d.version,
        List {
            items: d
                .spec
                .rules
                .into_iter()
                .map(|rule| TransportRuleView {
                    version: d.version,
                    rule,
                })
                .collect(),
        },
    )
}

#[utoipa::path(get, path = "/api/v1/transport-rules/{name}", tag = "content-agents",
    params(("name" = String, Path)),
    responses((status = 200, body = TransportRuleView, headers(("ETag" = String))),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_rule(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Tagged<TransportRuleView>, ApiError> {
    let d = s.config.snapshot().anti_spam.transport_rules.clone();
    let rule = find_rule(&d.spec, &name)?;
    Ok(ok(
        d.version,
        TransportRuleView {
            version: d.version,
            rule,
        },
    ))
}

/// A rule that quarantines needs the Content Filter's quarantine mailbox.
pub(super) fn check_quarantine(
    snap: &crate::config::Snapshot,
    r: &TransportRule,
) -> Result<(), ServiceError> {
    if r.actions.quarantine
        && snap
            .anti_spam
            .content_filter_config
            .spec
            .quarantine_mailbox
            .is_none()
    {
        return Err(ServiceError::Conflict {
            field: Some("actions.quarantine".into()),
            message: "set quarantineMailbox in /api/v1/content-filter-config first".into(),
        });
    }
    Ok(())
}

async fn change_rules(
    s: &AppState,
    if_match: Option<i64>,
    change: impl FnOnce(
        &crate::config::Snapshot,
        &TransportRules,
    ) -> Result<TransportRules, ServiceError>,
) -> Result<crate::store::Stored<TransportRules>, ApiError> {
    Ok(s.config
        .update_setting(
            setting::TRANSPORT_RULES,
            |snap| &snap.anti_spam.transport_rules,
            if_match,
            change,
        )
        .await?)
}

#[utoipa::path(post, path = "/api/v1/transport-rules", tag = "content-agents",
    request_body = super::openapi::TransportRuleCreate,
    responses((status = 201, body = TransportRuleView, headers(("ETag" = String))),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_rule(
    State(s): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Tagged<TransportRuleView>, ApiError> {
    let existing = s
        .config
        .snapshot()
        .anti_spam
        .transport_rules
        .spec
        .rules
        .len();
    let rule = TransportRule::from_create(&body, existing)?;
    let name = rule.name.clone();
    let d = change_rules(&s, None, |snap, d| {
        check_quarantine(snap, &rule)?;
        d.placed(rule, None)
            .map_err(ServiceError::conflict_on("name"))
    })
    .await?;
    let rule = find_rule(&d.spec, &name)?;
    Ok(created(
        d.version,
        TransportRuleView {
            version: d.version,
            rule,
        },
    ))
}

#[utoipa::path(patch, path = "/api/v1/transport-rules/{name}", tag = "content-agents",
    params(("name" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag from a GET")),
    request_body(content = super::openapi::TransportRulePatch, content_type = "application/merge-patch+json"),
    responses((status = 200, body = TransportRuleView, headers(("ETag" = String))),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 412, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn patch_rule(
    State(s): State<AppState>,
    Path(name): Path<String>,
    IfMatch(if_match): IfMatch,
    JsonBody(body): JsonBody,
) -> Result<Tagged<TransportRuleView>, ApiError> {
    let mut new_name = name.clone();
    let d = change_rules(&s, if_match, |snap, d| {
        let next = find_rule(d, &name)?
            .patched(&body)
            .map_err(ServiceError::against(&body))?;
        check_quarantine(snap, &next)?;
        new_name = next.name.clone();
        d.placed(next, Some(&name))
            .map_err(ServiceError::conflict_on("name"))
    })
    .await?;
    let rule = find_rule(&d.spec, &new_name)?;
    Ok(ok(
        d.version,
        TransportRuleView {
            version: d.version,
            rule,
        },
    ))
}

#[utoipa::path(delete, path = "/api/v1/transport-rules/{name}", tag = "content-agents",
    params(("name" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag from a GET")),
    responses((status = 204),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn delete_rule(
    State(s): State<AppState>,
    Path(name): Path<String>,
    IfMatch(if_match): IfMatch,
) -> Result<StatusCode, ApiError> {
    change_rules(&s, if_match, |_, d| {
        find_rule(d, &name)?;
        Ok(TransportRules {
            rules: d
                .rules
                .iter()
                .filter(|r| !r.name.eq_ignore_ascii_case(&name))
                .cloned()
                .collect(),
        }
        .normalized()?)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
