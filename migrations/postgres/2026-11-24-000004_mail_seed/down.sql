DELETE FROM mail_rules; DELETE FROM partners;
