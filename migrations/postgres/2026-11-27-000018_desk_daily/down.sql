ALTER TABLE pyc_templates DROP COLUMN disabled_at;
ALTER TABLE partners DROP COLUMN disabled_at;
ALTER TABLE mail_messages DROP COLUMN search_text;
DROP INDEX merchants_phone_key;
ALTER TABLE merchants DROP COLUMN phone_key;
DROP TABLE ageing_thresholds;
DROP TABLE staff_mail_prefs;
ALTER TABLE pycs DROP COLUMN technician_id;
