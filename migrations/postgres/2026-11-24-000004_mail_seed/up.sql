-- The six partners of the source documents and the starting classification rules.
-- Patterns are matched on text folded to lower case without diacritics, so one rule
-- covers "mở cổng" and "mo cong". Admins edit them in the app.
INSERT INTO partners (code, name, kind, mail_domains, mail_addresses, leader_confirmation_required, leader_addresses, created_at, updated_at) VALUES
 ('MOMO', 'Ví điện tử MoMo', 'payment', 'momo.vn,mservice.com.vn', '', TRUE, 'leader@momo.vn', '2026-11-24 00:00:00', '2026-11-24 00:00:00'),
 ('VNPAY', 'VNPAY', 'payment', 'vnpay.vn', '', FALSE, '', '2026-11-24 00:00:00', '2026-11-24 00:00:00'),
 ('ZALOPAY', 'ZaloPay', 'payment', 'zalopay.vn,vng.com.vn', '', FALSE, '', '2026-11-24 00:00:00', '2026-11-24 00:00:00'),
 ('GIFTPOP', 'GiftPop', 'voucher', 'giftpop.vn', '', FALSE, '', '2026-11-24 00:00:00', '2026-11-24 00:00:00'),
 ('MEETE', 'Meete', 'voucher', 'meete.co,meete.vn', '', FALSE, '', '2026-11-24 00:00:00', '2026-11-24 00:00:00'),
 ('JAMJA', 'JAMJA', 'voucher', 'jamja.vn', '', FALSE, '', '2026-11-24 00:00:00', '2026-11-24 00:00:00');

INSERT INTO mail_rules (kind, pattern, enabled, created_at) VALUES
 ('request', 'mo cong', TRUE, '2026-11-24 00:00:00'),
 ('request', 'ket noi hub', TRUE, '2026-11-24 00:00:00'),
 ('request', 'ket noi', TRUE, '2026-11-24 00:00:00'),
 ('request', 'dau noi', TRUE, '2026-11-24 00:00:00'),
 ('request', 'open hub', TRUE, '2026-11-24 00:00:00'),
 ('confirmation', 'xac nhan', TRUE, '2026-11-24 00:00:00'),
 ('confirmation', 'dong y', TRUE, '2026-11-24 00:00:00'),
 ('confirmation', 'approve', TRUE, '2026-11-24 00:00:00'),
 ('confirmation', 'confirm', TRUE, '2026-11-24 00:00:00'),
 ('confirmation', 'chap thuan', TRUE, '2026-11-24 00:00:00'),
 ('confirmation', 'duyet', TRUE, '2026-11-24 00:00:00');
