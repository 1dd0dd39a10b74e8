-- DMARC aggregate reports (RFC 7489 §7.2). Each inbound evaluation of a
-- domain that asks for reports (`rua`) adds one to the count of its row:
-- the reporting period, the policy domain, the policy as published (JSON)
-- and what was seen (JSON: source address, identifiers, verdicts,
-- disposition). A closed period becomes one report per policy domain and
-- policy; its rows are deleted once the report is queued, and the report
-- itself is listed in dmarc_reports until the tracking retention removes it.

CREATE TABLE dmarc_records (
    period_start  INTEGER NOT NULL,           -- Unix seconds
    policy_domain TEXT NOT NULL,
    policy        TEXT NOT NULL,              -- JSON
    row           TEXT NOT NULL,              -- JSON
    count         INTEGER NOT NULL,
    PRIMARY KEY (period_start, policy_domain, policy, row)
);

CREATE TABLE dmarc_reports (
    id            INTEGER PRIMARY KEY,
    created_ms    INTEGER NOT NULL,
    report_id     TEXT NOT NULL,
    policy_domain TEXT NOT NULL,
    begin_s       INTEGER NOT NULL,
    end_s         INTEGER NOT NULL,
    records       INTEGER NOT NULL,
    messages      INTEGER NOT NULL,
    size          INTEGER NOT NULL,           -- the report message, bytes
    recipients    TEXT NOT NULL,              -- JSON array: where it was queued
    status        TEXT NOT NULL,              -- Queued or NotSent
    detail        TEXT,                       -- addresses left out, and why
    message_id    TEXT
);
CREATE INDEX dmarc_reports_created ON dmarc_reports (created_ms);
