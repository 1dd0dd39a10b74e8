//! Permission groups, the principals they stand for, and the extended rights
//! each principal holds on a receive connector (spec §1.6).
//!
//! Exchange hides these rights in Active Directory ACLs set with
//! Add-ADPermission. Ferry makes them first-class: a connector's permission
//! groups give each principal its rights by the table of §1.6, explicit
//! `extendedRights` entries allow or deny single rights on top, and the API
//! shows the effective result.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

use super::Role;
use super::auth::{AuthMechanism, AuthMechanisms};
use super::error::Errors;

/// A receive-connector permission group.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
pub enum PermissionGroup {
    None,
    /// Clients that have not authenticated.
    AnonymousUsers,
    /// Clients authenticated with a login of principal `User`.
    ExchangeUsers,
    /// Clients authenticated with a login of principal `Server`, or every
    /// client when the connector has `ExternalAuthoritative`.
    ExchangeServers,
    /// Legacy (Exchange 2003) servers; Hub only.
    ExchangeLegacyServers,
    /// Partner servers authenticated by mutual TLS (DomainSecure).
    Partners,
    /// No rights from the table; only explicit `extendedRights` entries.
    Custom,
}

/// A set of permission groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(transparent)]
pub struct PermissionGroups(pub Vec<PermissionGroup>);

impl PermissionGroups {
    pub fn of(items: &[PermissionGroup]) -> Self {
        let mut v = items.to_vec();
        v.sort();
        v.dedup();
        PermissionGroups(v)
    }

    pub fn has(&self, g: PermissionGroup) -> bool {
        self.0.contains(&g)
    }

    pub fn normalize(&mut self) {
        self.0.sort();
        self.0.dedup();
        if self.0.is_empty() {
            self.0.push(PermissionGroup::None);
        }
    }

    pub fn validate(&self, errors: &mut Errors, field: &str, role: Role) {
        if self.has(PermissionGroup::None) && self.0.len() > 1 {
            errors.add(field, "'None' cannot be combined with other groups");
        }
        if role == Role::Edge && self.has(PermissionGroup::ExchangeLegacyServers) {
            errors.add(
                field,
                "'ExchangeLegacyServers' is not available on an Edge server",
            );
        }
    }
}

/// The security principal a session acts as.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
pub enum Principal {
    /// `NT AUTHORITY\ANONYMOUS LOGON`: a session that has not authenticated.
    Anonymous,
    /// An authenticated user login (`Exchange Users`).
    ExchangeUsers,
    /// An authenticated server login (`Exchange Servers`).
    ExchangeServers,
    /// `MS Exchange\Externally Secured Servers`: every session on an
    /// ExternalAuthoritative connector.
    ExternallySecuredServers,
    /// `Exchange Legacy Interop`.
    ExchangeLegacyServers,
    /// `MS Exchange\Partner Servers`: a mutually authenticated TLS partner.
    Partners,
}

/// An extended right checked during an SMTP session.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
pub enum ExtendedRight {
    #[serde(rename = "ms-Exch-SMTP-Submit")]
    #[schema(rename = "ms-Exch-SMTP-Submit")]
    Submit,
    #[serde(rename = "ms-Exch-SMTP-Accept-Any-Recipient")]
    #[schema(rename = "ms-Exch-SMTP-Accept-Any-Recipient")]
    AcceptAnyRecipient,
    #[serde(rename = "ms-Exch-SMTP-Accept-Any-Sender")]
    #[schema(rename = "ms-Exch-SMTP-Accept-Any-Sender")]
    AcceptAnySender,
    #[serde(rename = "ms-Exch-SMTP-Accept-Authoritative-Domain-Sender")]
    #[schema(rename = "ms-Exch-SMTP-Accept-Authoritative-Domain-Sender")]
    AcceptAuthoritativeDomainSender,
    #[serde(rename = "ms-Exch-SMTP-Accept-Authentication-Flag")]
    #[schema(rename = "ms-Exch-SMTP-Accept-Authentication-Flag")]
    AcceptAuthenticationFlag,
    #[serde(rename = "ms-Exch-Bypass-Anti-Spam")]
    #[schema(rename = "ms-Exch-Bypass-Anti-Spam")]
    BypassAntiSpam,
    #[serde(rename = "ms-Exch-Bypass-Message-Size-Limit")]
    #[schema(rename = "ms-Exch-Bypass-Message-Size-Limit")]
    BypassMessageSizeLimit,
    #[serde(rename = "ms-Exch-Accept-Headers-Routing")]
    #[schema(rename = "ms-Exch-Accept-Headers-Routing")]
    AcceptHeadersRouting,
    #[serde(rename = "ms-Exch-Accept-Headers-Organization")]
    #[schema(rename = "ms-Exch-Accept-Headers-Organization")]
    AcceptHeadersOrganization,
    #[serde(rename = "ms-Exch-Accept-Headers-Forest")]
    #[schema(rename = "ms-Exch-Accept-Headers-Forest")]
    AcceptHeadersForest,
    #[serde(rename = "ms-Exch-SMTP-Accept-Exch50")]
    #[schema(rename = "ms-Exch-SMTP-Accept-Exch50")]
    AcceptExch50,
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
pub enum Access {
    #[default]
    Allow,
    Deny,
}

/// One explicit grant or revocation, the API's Add-ADPermission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RightEntry {
    pub principal: Principal,
    pub right: ExtendedRight,
    #[serde(default)]
    pub access: Access,
}

/// The rights a principal gets from its permission group (spec §1.6).
pub fn group_rights(p: Principal) -> &'static [ExtendedRight] {
    use ExtendedRight::*;
    match p {
        Principal::Anonymous => &[
            Submit,
            AcceptAnySender,
            AcceptAuthoritativeDomainSender,
            AcceptHeadersRouting,
        ],
        Principal::ExchangeUsers => &[
            Submit,
            AcceptAnyRecipient,
            BypassAntiSpam,
            AcceptHeadersRouting,
        ],
        Principal::ExchangeServers => &[
            Submit,
            AcceptAnyRecipient,
            AcceptAnySender,
            AcceptAuthoritativeDomainSender,
            AcceptAuthenticationFlag,
            BypassAntiSpam,
            BypassMessageSizeLimit,
            AcceptHeadersRouting,
            AcceptHeadersOrganization,
            AcceptHeadersForest,
            AcceptExch50,
        ],
        Principal::ExternallySecuredServers | Principal::ExchangeLegacyServers => &[
            Submit,
            AcceptAnyRecipient,
            AcceptAnySender,
            AcceptAuthoritativeDomainSender,
            AcceptAuthenticationFlag,
            BypassAntiSpam,
            BypassMessageSizeLimit,
            AcceptHeadersRouting,
            AcceptExch50,
        ],
        Principal::Partners => &[Submit, AcceptHeadersRouting],
    }
}

/// The principals a connector's groups and mechanisms admit.
pub fn granted_principals(groups: &PermissionGroups, auth: &AuthMechanisms) -> Vec<Principal> {
    let mut out = Vec::new();
    for g in &groups.0 {
        match g {
            PermissionGroup::AnonymousUsers => out.push(Principal::Anonymous),
            PermissionGroup::ExchangeUsers => out.push(Principal::ExchangeUsers),
            PermissionGroup::ExchangeServers => {
                out.push(Principal::ExchangeServers);
                if auth.has(AuthMechanism::ExternalAuthoritative) {
                    out.push(Principal::ExternallySecuredServers);
                }
            }
            PermissionGroup::ExchangeLegacyServers => out.push(Principal::ExchangeLegacyServers),
            PermissionGroup::Partners => out.push(Principal::Partners),
            PermissionGroup::None | PermissionGroup::Custom => {}
        }
    }
    out
}

/// Effective rights per principal: group rights, plus explicit allows, minus
/// explicit denies (a deny wins, as in an ACL).
pub fn effective_rights(
    groups: &PermissionGroups,
    auth: &AuthMechanisms,
    entries: &[RightEntry],
) -> BTreeMap<Principal, Vec<ExtendedRight>> {
    let mut map: BTreeMap<Principal, Vec<ExtendedRight>> = BTreeMap::new();
    for p in granted_principals(groups, auth) {
        map.entry(p).or_default().extend_from_slice(group_rights(p));
    }
    for e in entries.iter().filter(|e| e.access == Access::Allow) {
        map.entry(e.principal).or_default().push(e.right);
    }
    for e in entries.iter().filter(|e| e.access == Access::Deny) {
        if let Some(v) = map.get_mut(&e.principal) {
            v.retain(|r| *r != e.right);
        }
    }
    for v in map.values_mut() {
        v.sort();
        v.dedup();
    }
    map.retain(|_, v| !v.is_empty());
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use AuthMechanism as A;
    use PermissionGroup as G;

    #[test]
    fn anonymous_may_claim_authoritative_senders_but_not_relay() {
        let r = effective_rights(
            &PermissionGroups::of(&[G::AnonymousUsers]),
            &AuthMechanisms::of(&[A::Tls]),
            &[],
        );
        let anon = &r[&Principal::Anonymous];
        assert!(anon.contains(&ExtendedRight::AcceptAuthoritativeDomainSender));
        assert!(!anon.contains(&ExtendedRight::AcceptAnyRecipient));
    }

    #[test]
    fn deny_revokes_a_group_right() {
        let deny = RightEntry {
            principal: Principal::Anonymous,
            right: ExtendedRight::AcceptAuthoritativeDomainSender,
            access: Access::Deny,
        };
        let r = effective_rights(
            &PermissionGroups::of(&[G::AnonymousUsers]),
            &AuthMechanisms::default(),
            &[deny],
        );
        assert!(
            !r[&Principal::Anonymous].contains(&ExtendedRight::AcceptAuthoritativeDomainSender)
        );
        assert!(r[&Principal::Anonymous].contains(&ExtendedRight::Submit));
    }

    #[test]
    fn external_authoritative_adds_externally_secured_principal_without_header_rights() {
        let r = effective_rights(
            &PermissionGroups::of(&[G::ExchangeServers]),
            &AuthMechanisms::of(&[A::ExternalAuthoritative, A::Tls]),
            &[],
        );
        let es = &r[&Principal::ExternallySecuredServers];
        assert!(es.contains(&ExtendedRight::AcceptAnyRecipient));
        assert!(!es.contains(&ExtendedRight::AcceptHeadersOrganization));
    }

    #[test]
    fn custom_group_grants_nothing() {
        let r = effective_rights(
            &PermissionGroups::of(&[G::Custom]),
            &AuthMechanisms::default(),
            &[],
        );
        assert!(r.is_empty());
    }
}
