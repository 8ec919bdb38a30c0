-- The hub connection desk: partner settings, customers, merchants and points, and
-- connection requests with their confirmations and timeline.
ALTER TABLE partners ADD COLUMN cms_admin_name TEXT NOT NULL DEFAULT '';
ALTER TABLE partners ADD COLUMN signing_company TEXT NOT NULL DEFAULT '';
ALTER TABLE partners ADD COLUMN virtual_brand TEXT NOT NULL DEFAULT '';
ALTER TABLE partners ADD COLUMN virtual_point TEXT NOT NULL DEFAULT '';
ALTER TABLE partners ADD COLUMN accept_template TEXT NOT NULL DEFAULT '';

CREATE TABLE customers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    tax_code TEXT NOT NULL DEFAULT '',
    address TEXT NOT NULL DEFAULT '',
    search_key TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX customers_name_idx ON customers (name);

CREATE TABLE merchants (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    contact_name TEXT NOT NULL DEFAULT '',
    phone TEXT NOT NULL DEFAULT '',
    email TEXT NOT NULL DEFAULT '',
    search_key TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX merchants_search_idx ON merchants (search_key);

CREATE TABLE points (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    merchant_id BIGINT NOT NULL REFERENCES merchants (id),
    name TEXT NOT NULL,
    address TEXT NOT NULL DEFAULT '',
    contact_name TEXT NOT NULL DEFAULT '',
    phone TEXT NOT NULL DEFAULT '',
    pos_parent TEXT NOT NULL DEFAULT '',
    pos_id TEXT NOT NULL DEFAULT '',
    point_code TEXT NOT NULL DEFAULT '',
    search_key TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX points_merchant_idx ON points (merchant_id);
CREATE INDEX points_search_idx ON points (search_key);

CREATE TABLE requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id BIGINT NOT NULL REFERENCES partners (id),
    merchant_id BIGINT NOT NULL REFERENCES merchants (id),
    state TEXT NOT NULL,
    -- Optimistic lock: a form carries the version it was shown with.
    version BIGINT NOT NULL DEFAULT 0,
    opening_mail_id BIGINT REFERENCES mail_messages (id),
    opened_on TIMESTAMP NOT NULL,
    assignee_id BIGINT REFERENCES users (id),
    closed_reason TEXT,
    created_by BIGINT REFERENCES users (id),
    state_since TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX requests_state_idx ON requests (state, state_since);
CREATE INDEX requests_partner_idx ON requests (partner_id);

CREATE TABLE request_points (
    request_id BIGINT NOT NULL REFERENCES requests (id),
    point_id BIGINT NOT NULL REFERENCES points (id),
    PRIMARY KEY (request_id, point_id)
);

CREATE TABLE confirmations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id BIGINT NOT NULL REFERENCES requests (id),
    kind TEXT NOT NULL,
    mail_message_id BIGINT REFERENCES mail_messages (id),
    recorded_by BIGINT REFERENCES users (id),
    reason TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP,
    revoked_by BIGINT REFERENCES users (id)
);
CREATE INDEX confirmations_request_idx ON confirmations (request_id);

CREATE TABLE request_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id BIGINT NOT NULL REFERENCES requests (id),
    at TIMESTAMP NOT NULL,
    user_id BIGINT REFERENCES users (id),
    actor TEXT NOT NULL,
    kind TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT,
    body TEXT NOT NULL DEFAULT '',
    mail_message_id BIGINT REFERENCES mail_messages (id)
);
CREATE INDEX request_events_request_idx ON request_events (request_id, at);

UPDATE partners SET signing_company = 'Công ty Cổ phần Dịch vụ Di động Trực tuyến (M_Service)', virtual_brand = 'MOMO HUB', virtual_point = 'MoMo - Điểm ảo', cms_admin_name = 'MoMo Merchant CMS' WHERE code = 'MOMO';
UPDATE partners SET signing_company = 'Công ty Cổ phần Giải pháp Thanh toán Việt Nam (VNPAY)', virtual_brand = 'VNPAY HUB', virtual_point = 'VNPAY - Điểm ảo', cms_admin_name = 'VNPAY Merchant Portal' WHERE code = 'VNPAY';
UPDATE partners SET signing_company = 'Công ty Cổ phần ZION (ZaloPay)', virtual_brand = 'ZALOPAY HUB', virtual_point = 'ZaloPay - Điểm ảo', cms_admin_name = 'ZaloPay Merchant' WHERE code = 'ZALOPAY';
UPDATE partners SET signing_company = 'Công ty TNHH GiftPop Việt Nam', virtual_brand = 'GIFTPOP HUB', virtual_point = 'GiftPop - Điểm ảo', cms_admin_name = 'GiftPop CMS' WHERE code = 'GIFTPOP';
UPDATE partners SET signing_company = 'Công ty Cổ phần Meete', virtual_brand = 'MEETE HUB', virtual_point = 'Meete - Điểm ảo', cms_admin_name = 'Meete CMS' WHERE code = 'MEETE';
UPDATE partners SET signing_company = 'Công ty Cổ phần JAMJA', virtual_brand = 'JAMJA HUB', virtual_point = 'JAMJA - Điểm ảo', cms_admin_name = 'JAMJA CMS' WHERE code = 'JAMJA';
