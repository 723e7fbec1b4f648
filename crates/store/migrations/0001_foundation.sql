-- Foundation: orgs, authorization servers and their content, clients, signing keys,
-- revoked access tokens. Every row carries org_id. Times are unix seconds.
CREATE TABLE orgs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    config_version BIGINT NOT NULL DEFAULT 0,
    -- A fingerprint of the master key the org's keys and secrets are sealed under, so a
    -- node started with another master key refuses to run instead of corrupting data.
    master_key_check TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE authorization_servers (
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    audiences TEXT NOT NULL,
    signing_alg TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, id)
);

CREATE TABLE scopes (
    org_id TEXT NOT NULL,
    server_id TEXT NOT NULL,
    id TEXT NOT NULL,
    position BIGINT NOT NULL,
    name TEXT NOT NULL,
    display_name TEXT,
    description TEXT NOT NULL,
    is_default BIGINT NOT NULL,
    consent TEXT NOT NULL,
    metadata_publish TEXT NOT NULL,
    PRIMARY KEY (org_id, server_id, name),
    FOREIGN KEY (org_id, server_id) REFERENCES authorization_servers(org_id, id) ON DELETE CASCADE
);

CREATE TABLE claims (
    org_id TEXT NOT NULL,
    server_id TEXT NOT NULL,
    id TEXT NOT NULL,
    position BIGINT NOT NULL,
    name TEXT NOT NULL,
    token_type TEXT NOT NULL,
    value TEXT NOT NULL,
    scopes TEXT NOT NULL,
    status TEXT NOT NULL,
    PRIMARY KEY (org_id, server_id, name, token_type),
    FOREIGN KEY (org_id, server_id) REFERENCES authorization_servers(org_id, id) ON DELETE CASCADE
);

CREATE TABLE policies (
    org_id TEXT NOT NULL,
    server_id TEXT NOT NULL,
    id TEXT NOT NULL,
    position BIGINT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    priority BIGINT NOT NULL,
    status TEXT NOT NULL,
    clients TEXT NOT NULL,
    PRIMARY KEY (org_id, server_id, id),
    UNIQUE (org_id, server_id, name),
    FOREIGN KEY (org_id, server_id) REFERENCES authorization_servers(org_id, id) ON DELETE CASCADE
);

CREATE TABLE policy_rules (
    org_id TEXT NOT NULL,
    server_id TEXT NOT NULL,
    policy_id TEXT NOT NULL,
    id TEXT NOT NULL,
    position BIGINT NOT NULL,
    name TEXT NOT NULL,
    priority BIGINT NOT NULL,
    status TEXT NOT NULL,
    grant_types TEXT NOT NULL,
    scopes TEXT NOT NULL,
    access_token_lifetime_minutes BIGINT NOT NULL,
    PRIMARY KEY (org_id, server_id, policy_id, id),
    FOREIGN KEY (org_id, server_id, policy_id) REFERENCES policies(org_id, server_id, id) ON DELETE CASCADE
);

CREATE TABLE clients (
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    name TEXT NOT NULL,
    app_type TEXT NOT NULL,
    status TEXT NOT NULL,
    grant_types TEXT NOT NULL,
    auth_method TEXT NOT NULL,
    secret_hash TEXT,
    secret_env TEXT,
    profile TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, client_id)
);

CREATE TABLE signing_keys (
    org_id TEXT NOT NULL,
    server_id TEXT NOT NULL,
    kid TEXT NOT NULL,
    alg TEXT NOT NULL,
    status TEXT NOT NULL,
    sealed_private_key TEXT NOT NULL,
    public_jwk TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    activated_at BIGINT,
    retire_at BIGINT,
    PRIMARY KEY (org_id, server_id, kid),
    FOREIGN KEY (org_id, server_id) REFERENCES authorization_servers(org_id, id) ON DELETE CASCADE
);

-- At most one ACTIVE and one NEXT key per server, even when nodes start at once.
CREATE UNIQUE INDEX signing_keys_one_per_role ON signing_keys (org_id, server_id, status)
    WHERE status IN ('ACTIVE', 'NEXT');

CREATE TABLE revoked_tokens (
    org_id TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, jti)
);
CREATE INDEX revoked_tokens_expiry ON revoked_tokens (expires_at);
