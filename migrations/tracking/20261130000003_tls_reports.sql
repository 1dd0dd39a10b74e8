-- TLS reporting (RFC 8460): each outbound TLS session to a domain with an
-- MTA-STS policy adds one to the count of its row — the reporting period,
-- the policy domain, the policy (JSON: type, policy lines, MX patterns),
-- and the outcome (empty for success, else the RFC's result-type with the
-- MX host and address). A closed period becomes one report per domain
-- that asks for them (`_smtp._tls` rua); reports are listed in
-- tls_reports until the tracking retention removes them.

CREATE TABLE tlsrpt_sessions (
    period_start  INTEGER NOT NULL,           -- Unix seconds
    policy_domain TEXT NOT NULL,
    policy        TEXT NOT NULL,              -- JSON
    result        TEXT NOT NULL,              -- '' (success) or a result-type
    detail        TEXT NOT NULL,              -- JSON: MX host, address, reason
    count         INTEGER NOT NULL,
    PRIMARY KEY (period_start, policy_domain, policy, result, detail)
);

CREATE TABLE tls_reports (
    id            INTEGER PRIMARY KEY,
    created_ms    INTEGER NOT NULL,
    report_id     TEXT NOT NULL,
    policy_domain TEXT NOT NULL,
    begin_s       INTEGER NOT NULL,
    end_s         INTEGER NOT NULL,
    successes     INTEGER NOT NULL,
    failures      INTEGER NOT NULL,
    size          INTEGER NOT NULL,
    recipients    TEXT NOT NULL,              -- JSON array
    status        TEXT NOT NULL,              -- Queued or NotSent
    detail        TEXT,
    message_id    TEXT
);
CREATE INDEX tls_reports_created ON tls_reports (created_ms);
