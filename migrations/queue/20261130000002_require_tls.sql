-- RFC 8689 REQUIRETLS: the message was received with MAIL FROM … REQUIRETLS
-- (over TLS) and may leave only over TLS whose certificate is validated for
-- the next hop's configured name, to a next hop that offers REQUIRETLS.
ALTER TABLE messages ADD COLUMN require_tls INTEGER NOT NULL DEFAULT 0;
