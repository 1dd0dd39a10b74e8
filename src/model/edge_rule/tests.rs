//! Each condition, exception and action of an Edge transport rule.

use serde_json::{Value, json};

use super::*;

fn rules(list: Value) -> Arc<Compiled> {
    let mut all = TransportRules::default();
    for (i, r) in list.as_array().unwrap().iter().enumerate() {
        let rule = TransportRule::from_create(r, i).unwrap();
        all = all.placed(rule, None).unwrap();
    }
    Compiled::new(&all)
}

struct Msg {
    sender: &'static str,
    recipients: Vec<String>,
    headers: Vec<(&'static str, &'static str)>,
    subject: &'static str,
    body: &'static str,
    attachments: Vec<String>,
    scl: Option<i8>,
    size: u64,
    inside: bool,
}

fn msg() -> Msg {
    Msg {
        sender: "alice@fabrikam.test",
        recipients: vec!["bob@contoso.test".into()],
        headers: vec![
            ("X-Mailer", "BulkBlaster 3.0"),
            ("List-Id", "<news.fabrikam.test>"),
        ],
        subject: "Quarterly invoice",
        body: "Please find the invoice attached. Payment due.",
        attachments: vec!["invoice.pdf".into()],
        scl: Some(2),
        size: 5000,
        inside: false,
    }
}

fn run(c: &Compiled, m: &Msg) -> Outcome {
    let header = |name: &str| -> Vec<String> {
        m.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.to_string())
            .collect()
    };
    evaluate(
        c,
        &Facts {
            sender: m.sender,
            recipients: &m.recipients,
            header: &header,
            subject: m.subject,
            body_text: m.body,
            attachment_names: &m.attachments,
            scl: m.scl,
            size: m.size,
            in_organization: m.inside,
        },
    )
}

/// Whether a rule with this condition (and a log action) matches `m`.
fn holds(condition: Value, m: &Msg) -> bool {
    let c =
        rules(json!([{"name": "r", "conditions": condition, "actions": {"logEventText": "hit"}}]));
    !run(&c, m).log.is_empty()
}

#[test]
fn every_condition_holds_and_fails_as_it_says() {
    let m = msg();
    let cases: Vec<(Value, bool)> = vec![
        (json!({"fromAddressContainsWords": ["alice"]}), true),
        (json!({"fromAddressContainsWords": ["ali"]}), false),
        (
            json!({"fromAddressMatchesPatterns": ["^a.*@fabrikam\\.test$"]}),
            true,
        ),
        (json!({"fromAddressMatchesPatterns": ["@contoso"]}), false),
        (json!({"senderDomainIs": ["fabrikam.test"]}), true),
        (json!({"senderDomainIs": ["brikam.test"]}), false),
        (json!({"fromScope": "NotInOrganization"}), true),
        (json!({"fromScope": "InOrganization"}), false),
        (json!({"sentTo": ["BOB@contoso.test"]}), true),
        (json!({"sentTo": ["carol@contoso.test"]}), false),
        (json!({"anyOfRecipientAddressContainsWords": ["bob"]}), true),
        (
            json!({"anyOfRecipientAddressMatchesPatterns": ["^b.b@"]}),
            true,
        ),
        (
            json!({"anyOfRecipientAddressMatchesPatterns": ["^carol"]}),
            false,
        ),
        (json!({"recipientDomainIs": ["contoso.test"]}), true),
        (json!({"recipientDomainIs": ["fabrikam.test"]}), false),
        (
            json!({"headerContainsMessageHeader": "x-mailer", "headerContainsWords": ["bulkblaster"]}),
            true,
        ),
        (
            json!({"headerContainsMessageHeader": "X-Mailer", "headerContainsWords": ["outlook"]}),
            false,
        ),
        (
            json!({"headerContainsMessageHeader": "X-Absent", "headerContainsWords": ["x"]}),
            false,
        ),
        (
            json!({"headerMatchesMessageHeader": "List-Id", "headerMatchesPatterns": ["news\\.fabrikam"]}),
            true,
        ),
        (
            json!({"headerMatchesMessageHeader": "List-Id", "headerMatchesPatterns": ["^news$"]}),
            false,
        ),
        (json!({"subjectContainsWords": ["invoice"]}), true),
        (json!({"subjectContainsWords": ["voice"]}), false),
        (json!({"subjectMatchesPatterns": ["^quarterly"]}), true),
        (json!({"subjectMatchesPatterns": ["^invoice"]}), false),
        (json!({"subjectOrBodyContainsWords": ["payment due"]}), true),
        (json!({"subjectOrBodyContainsWords": ["refund"]}), false),
        (
            json!({"subjectOrBodyMatchesPatterns": ["pay(ment)?\\s+due"]}),
            true,
        ),
        (json!({"attachmentNameMatchesPatterns": ["\\.pdf$"]}), true),
        (json!({"attachmentNameMatchesPatterns": ["\\.exe$"]}), false),
        (json!({"sclOver": 2}), true),
        (json!({"sclOver": 3}), false),
        (json!({"messageSizeOver": 4999}), true),
        (json!({"messageSizeOver": 5000}), false),
        // Conditions are ANDed.
        (
            json!({"subjectContainsWords": ["invoice"], "sclOver": 5}),
            false,
        ),
        (json!({}), true),
    ];
    for (condition, expected) in cases {
        assert_eq!(holds(condition.clone(), &m), expected, "{condition}");
    }
    // A message that was not scanned has no SCL to be over anything.
    let unscanned = Msg { scl: None, ..msg() };
    assert!(!holds(json!({"sclOver": -1}), &unscanned));
    let inside = Msg {
        inside: true,
        ..msg()
    };
    assert!(holds(json!({"fromScope": "InOrganization"}), &inside));
}

#[test]
fn exceptions_skip_the_rule() {
    let c = rules(
        json!([{"name": "r", "conditions": {"subjectContainsWords": ["invoice"]},
        "exceptions": {"senderDomainIs": ["tailspin.test"], "fromScope": "InOrganization"},
        "actions": {"prependSubject": "[Invoice] "}}]),
    );
    assert_eq!(run(&c, &msg()).edits.len(), 1);
    let trusted = Msg {
        sender: "a@mail.tailspin.test",
        ..msg()
    };
    assert!(run(&c, &trusted).edits.is_empty());
    let inside = Msg {
        inside: true,
        ..msg()
    };
    assert!(run(&c, &inside).edits.is_empty());
}

#[test]
fn every_action_does_what_it_says() {
    let m = msg();
    let one = |actions: Value| run(&rules(json!([{"name": "r", "actions": actions}])), &m);
    assert_eq!(
        one(json!({"prependSubject": "[EXTERNAL] "})).edits,
        vec![Edit::PrependSubject("[EXTERNAL] ".into())]
    );
    assert_eq!(
        one(json!({"setHeaderName": "X-Tag", "setHeaderValue": "yes"})).edits,
        vec![Edit::SetHeader("X-Tag".into(), "yes".into())]
    );
    assert_eq!(
        one(json!({"removeHeader": "X-Mailer"})).edits,
        vec![Edit::RemoveHeader("X-Mailer".into())]
    );
    assert_eq!(one(json!({"setScl": -1})).scl, Some(-1));
    assert_eq!(
        one(json!({"rejectMessageEnhancedStatusCode": "5.7.901", "rejectMessageReasonText": "No invoices"})).end,
        Some(End::Reject { code: "5.7.901".into(), text: "No invoices".into() })
    );
    assert_eq!(
        one(json!({"rejectMessageReasonText": "No"})).end,
        Some(End::Reject {
            code: "5.7.1".into(),
            text: "No".into()
        })
    );
    assert_eq!(one(json!({"deleteMessage": true})).end, Some(End::Delete));
    assert_eq!(one(json!({"quarantine": true})).end, Some(End::Quarantine));
    assert_eq!(
        one(json!({"redirectMessageTo": ["review@contoso.test"]})).recipients,
        Some(vec!["review@contoso.test".to_string()])
    );
    assert_eq!(
        one(json!({"addToRecipients": ["archive@contoso.test", "bob@contoso.test"]})).recipients,
        Some(vec![
            "bob@contoso.test".to_string(),
            "archive@contoso.test".to_string()
        ])
    );
    let logged = one(json!({"logEventText": "seen an invoice"}));
    assert_eq!(
        logged.log,
        vec![("r".to_string(), "log \"seen an invoice\"".to_string())]
    );
}

#[test]
fn rules_run_in_priority_order_and_stop_where_told() {
    let c = rules(json!([
        {"name": "first", "actions": {"setScl": 5}},
        {"name": "needs-scl-5", "conditions": {"sclOver": 5}, "actions": {"prependSubject": "[SPAM?] "}},
        {"name": "stop", "actions": {"logEventText": "stop here", "stopRuleProcessing": true}},
        {"name": "never", "actions": {"deleteMessage": true}},
    ]));
    let out = run(&c, &msg());
    // The second rule sees the SCL the first set.
    assert_eq!(out.scl, Some(5));
    assert_eq!(out.edits, vec![Edit::PrependSubject("[SPAM?] ".into())]);
    assert_eq!(out.end, None);
    assert_eq!(out.log.len(), 3);
    // A rule placed at priority 0 runs first.
    let mut all = TransportRules::default();
    for (i, r) in ["a", "b"].iter().enumerate() {
        let rule =
            TransportRule::from_create(&json!({"name": r, "actions": {"deleteMessage": true}}), i)
                .unwrap();
        all = all.placed(rule, None).unwrap();
    }
    let front = TransportRule::from_create(
        &json!({"name": "front", "priority": 0, "actions": {"quarantine": true}}),
        2,
    )
    .unwrap();
    all = all.placed(front, None).unwrap();
    assert_eq!(
        all.rules
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        ["front", "a", "b"]
    );
    assert_eq!(run(&Compiled::new(&all), &msg()).end, Some(End::Quarantine));
    let dup =
        TransportRule::from_create(&json!({"name": "A", "actions": {"deleteMessage": true}}), 3)
            .unwrap();
    assert_eq!(all.placed(dup, None).unwrap_err().0[0].field, "name");
}

#[test]
fn test_mode_and_disabled_rules_change_nothing() {
    let c = rules(json!([
        {"name": "audit", "mode": "Audit", "actions": {"rejectMessageReasonText": "No"}},
        {"name": "off", "enabled": false, "actions": {"deleteMessage": true}},
    ]));
    let out = run(&c, &msg());
    assert_eq!(out.end, None);
    assert_eq!(
        out.log,
        vec![(
            "audit".to_string(),
            "test mode, would: reject 5.7.1".to_string()
        )]
    );
}

#[test]
fn patterns_are_bounded_in_size_and_linear_in_time() {
    let bad = |r: Value| {
        TransportRule::from_create(&r, 0).unwrap_err().0[0]
            .field
            .clone()
    };
    // A program that would explode is refused when the rule is written.
    assert_eq!(
        bad(
            json!({"name": "r", "conditions": {"subjectMatchesPatterns": ["(\\w{100}){100}"]},
            "actions": {"deleteMessage": true}})
        ),
        "conditions.subjectMatchesPatterns[0]"
    );
    // Back-references and look-around are not patterns here.
    assert_eq!(
        bad(
            json!({"name": "r", "exceptions": {"fromAddressMatchesPatterns": ["(a)\\1"]},
            "actions": {"deleteMessage": true}})
        ),
        "exceptions.fromAddressMatchesPatterns[0]"
    );
    // The classic catastrophic-backtracking pattern runs in linear time.
    let c = rules(
        json!([{"name": "r", "conditions": {"subjectOrBodyMatchesPatterns": ["^(a+)+$"]},
        "actions": {"logEventText": "x"}}]),
    );
    let body: &'static str = Box::leak(format!("{}!", "a".repeat(2 * TEXT_LIMIT)).into_boxed_str());
    let started = std::time::Instant::now();
    let out = run(&c, &Msg { body, ..msg() });
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // Only the first TEXT_LIMIT bytes are read: the '!' is past them.
    assert_eq!(out.log.len(), 1);
}

#[test]
fn rules_that_cannot_work_are_refused_by_field() {
    let bad = |r: Value| {
        TransportRule::from_create(&r, 0).unwrap_err().0[0]
            .field
            .clone()
    };
    assert_eq!(bad(json!({"name": "r", "actions": {}})), "actions");
    assert_eq!(
        bad(json!({"name": "r", "actions": {"deleteMessage": true, "quarantine": true}})),
        "actions"
    );
    assert_eq!(
        bad(json!({"name": "r", "actions": {"rejectMessageEnhancedStatusCode": "5.1.1"}})),
        "actions.rejectMessageEnhancedStatusCode"
    );
    assert_eq!(
        bad(json!({"name": "r", "actions": {"setHeaderName": "X-A"}})),
        "actions.setHeaderValue"
    );
    assert_eq!(
        bad(json!({"name": "r", "actions": {"setHeaderName": "Bad Name", "setHeaderValue": "v"}})),
        "actions.setHeaderName"
    );
    assert_eq!(
        bad(json!({"name": "r", "actions": {"setScl": 10}})),
        "actions.setScl"
    );
    assert_eq!(
        bad(
            json!({"name": "r", "conditions": {"headerContainsWords": ["x"]}, "actions": {"deleteMessage": true}})
        ),
        "conditions.headerContainsMessageHeader"
    );
    assert_eq!(
        bad(
            json!({"name": "r", "conditions": {"sentTo": ["nobody"]}, "actions": {"deleteMessage": true}})
        ),
        "conditions.sentTo[0]"
    );
    assert_eq!(
        bad(json!({"name": "r", "actions": {"redirectMessageTo": ["x"]}})),
        "actions.redirectMessageTo[0]"
    );
    assert_eq!(
        bad(json!({"name": "r", "mode": "Maybe", "actions": {"deleteMessage": true}})),
        "mode"
    );
}
