-- The desk's daily needs (issue 16).

-- A PYC's technician, chosen by person (not only "someone with the role").
ALTER TABLE pycs ADD COLUMN technician_id BIGINT REFERENCES users (id);

-- Which desk events mail a staff member; no row means every mail is on.
CREATE TABLE staff_mail_prefs (
    user_id BIGINT PRIMARY KEY REFERENCES users (id),
    on_assign BOOLEAN NOT NULL,
    on_review BOOLEAN NOT NULL,
    on_pyc_created BOOLEAN NOT NULL,
    on_digest BOOLEAN NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- How long a request may wait in a state before it is overdue (admins edit these).
CREATE TABLE ageing_thresholds (
    state TEXT PRIMARY KEY,
    days BIGINT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
INSERT INTO ageing_thresholds (state, days, updated_at) VALUES
    ('received', 2, CURRENT_TIMESTAMP),
    ('accepted', 1, CURRENT_TIMESTAMP),
    ('ticket', 2, CURRENT_TIMESTAMP),
    ('deploying', 3, CURRENT_TIMESTAMP),
    ('replied', 35, CURRENT_TIMESTAMP),
    ('reported', 30, CURRENT_TIMESTAMP);

-- The merchant's phone as digits only, so "0912.345.678" finds "0912 345 678".
ALTER TABLE merchants ADD COLUMN phone_key TEXT NOT NULL DEFAULT '';
UPDATE merchants SET phone_key = replace(replace(replace(replace(replace(replace(phone, ' ', ''), '.', ''), '-', ''), '+', ''), '(', ''), ')', '');
CREATE INDEX merchants_phone_key ON merchants (phone_key);

-- Subject, sender and body folded (lower case, no diacritics, đ → d) when a mail is
-- stored, so "da nang" finds "Đà Nẵng" the same way on both databases. Rows stored
-- before this column are folded once by `hubgate migrate` (NULL until then).
ALTER TABLE mail_messages ADD COLUMN search_text TEXT;

-- Disabled instead of deleted: not offered for new work, still shown on old records.
ALTER TABLE partners ADD COLUMN disabled_at TIMESTAMP;
ALTER TABLE pyc_templates ADD COLUMN disabled_at TIMESTAMP;
