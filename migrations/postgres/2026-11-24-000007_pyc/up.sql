-- PYC tickets (phiếu yêu cầu triển khai): versioned note templates, gap-free numbers,
-- the technician's checklist, deployment data (keys encrypted), the 0 đ invoice.
CREATE TABLE pyc_templates (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    version BIGINT NOT NULL,
    body TEXT NOT NULL,
    items TEXT NOT NULL,
    created_by BIGINT REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    UNIQUE (kind, version)
);

CREATE TABLE pyc_counters (
    year BIGINT PRIMARY KEY,
    last BIGINT NOT NULL
);

CREATE TABLE pycs (
    id BIGSERIAL PRIMARY KEY,
    number TEXT NOT NULL UNIQUE,
    request_id BIGINT NOT NULL UNIQUE REFERENCES requests (id),
    state TEXT NOT NULL,
    version BIGINT NOT NULL DEFAULT 0,
    customer_name TEXT NOT NULL,
    deployment_type TEXT NOT NULL,
    contract_code TEXT NOT NULL,
    signing_rep TEXT NOT NULL,
    product TEXT NOT NULL,
    brand TEXT NOT NULL,
    point_applied TEXT NOT NULL,
    location TEXT NOT NULL,
    support_person TEXT NOT NULL,
    support_phone TEXT NOT NULL,
    notes TEXT NOT NULL,
    template_id BIGINT NOT NULL REFERENCES pyc_templates (id),
    pos_parent TEXT NOT NULL DEFAULT '',
    pos_id TEXT NOT NULL DEFAULT '',
    point_code TEXT NOT NULL DEFAULT '',
    key1_enc TEXT,
    key2_enc TEXT,
    screenshot BYTEA,
    screenshot_type TEXT,
    invoice_no TEXT,
    invoice_date TIMESTAMP,
    created_by BIGINT REFERENCES users (id),
    deployed_by BIGINT REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    deployed_at TIMESTAMP
);
CREATE INDEX pycs_state_idx ON pycs (state);

CREATE TABLE pyc_checklist (
    id BIGSERIAL PRIMARY KEY,
    pyc_id BIGINT NOT NULL REFERENCES pycs (id),
    position BIGINT NOT NULL,
    label TEXT NOT NULL,
    required BOOLEAN NOT NULL,
    done_by BIGINT REFERENCES users (id),
    done_at TIMESTAMP
);
CREATE INDEX pyc_checklist_pyc_idx ON pyc_checklist (pyc_id, position);

INSERT INTO pyc_templates (kind, version, body, items, created_at) VALUES
('payment', 1, 'Ghi chú mở cổng kết nối thanh toán ({partner})

1. Nâng cấp, kết nối hệ thống:
Update POS lên bản mới nhất.
Kiểm tra đồng bộ thực đơn (đảm bảo thực đơn giữa điểm bán hàng và Hub là đồng bộ).
Setup option cho phép nhập chi tiết coupon.
– Setup cho phép thu ngân nhà hàng nhập được thông tin mã Voucher được cung cấp từ bên {partner}.
– Kiểm tra lại việc kết nối với bên {partner} đảm bảo việc kết nối là thành công.

2. Điểm triển khai:
{point} – {address}
Key1:
Key2:

3. Contact liên hệ:
Thông tin liên hệ: {contact}
SĐT: {phone}

4. Xét duyệt điểm trên trang CMS Admin: {cms}

5. Gửi lại thông tin cho {partner}:
POS Parent:
POS ID:
Ảnh kết nối thành công:

6. Gửi thông tin cho {partner} theo luồng mail.',
'*Update POS lên bản mới nhất
*Kiểm tra đồng bộ thực đơn giữa điểm bán hàng và Hub
*Setup option cho phép nhập chi tiết coupon
*Setup cho phép thu ngân nhập mã voucher do {partner} cung cấp
*Kiểm tra kết nối với {partner} thành công
*Xét duyệt điểm trên trang CMS Admin: {cms}
*Ghi nhận dữ liệu triển khai: Key1, Key2, POS Parent, POS ID, ảnh kết nối
Gửi lại thông tin cho {partner} theo luồng mail', '2026-11-24 00:00:00'),
('voucher', 1, 'Ghi chú mở cổng kết nối Voucher ({partner})

1. Nâng cấp, kết nối hệ thống:
Update POS lên bản mới nhất.
Kiểm tra đồng bộ thực đơn (đảm bảo thực đơn giữa điểm bán hàng và Hub là đồng bộ).
Setup option cho phép nhập chi tiết coupon.
– Setup cho phép thu ngân nhà hàng nhập được thông tin mã Voucher được cung cấp từ bên {partner}.
– Kiểm tra lại việc kết nối với bên {partner} đảm bảo việc kết nối là thành công.

2. Điểm triển khai:
{point} – {address}

3. Contact liên hệ:
Người liên hệ: {contact}
SĐT: {phone}

4. Xét duyệt điểm trên trang CMS Admin: {cms}

5. Gửi lại thông tin cho {partner}:
POS Parent:
POS ID:
Mã điểm:

6. Gửi thông tin cho {partner} theo luồng mail:
Ảnh kết nối thành công:',
'*Update POS lên bản mới nhất
*Kiểm tra đồng bộ thực đơn giữa điểm bán hàng và Hub
*Setup option cho phép nhập chi tiết coupon
*Setup cho phép thu ngân nhập mã voucher do {partner} cung cấp
*Kiểm tra kết nối với {partner} thành công
*Xét duyệt điểm trên trang CMS Admin: {cms}
*Ghi nhận dữ liệu triển khai: POS Parent, POS ID, mã điểm, ảnh kết nối
Gửi lại thông tin cho {partner} theo luồng mail', '2026-11-24 00:00:00');
