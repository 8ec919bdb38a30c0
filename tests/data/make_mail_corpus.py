#!/usr/bin/env python3
"""Writes the inbound-mail test corpus. Each file imitates one real client's shape
(Outlook, Gmail, Apple Mail, Vietnamese webmail) with the encodings they really use.
Expected outcomes live in tests/it/mail_in.rs. Run from tests/data/mail to regenerate: python3 ../make_mail_corpus.py"""
import base64, quopri, unicodedata

TONES = "\u0300\u0301\u0303\u0309\u0323"

def cp1258_form(s):
    """windows-1258 has letters like ê and ư precomposed but tones as combining marks."""
    out = []
    for ch in s:
        d = unicodedata.normalize("NFD", ch)
        tones = "".join(c for c in d if c in TONES)
        base = unicodedata.normalize("NFC", "".join(c for c in d if c not in TONES))
        out.append(base + tones)
    return "".join(out)

def qp(s, cs="utf-8"):
    if cs == "cp1258":
        s = cp1258_form(s)
    return quopri.encodestring(s.encode(cs)).decode("ascii")

def b64(s, cs="utf-8"):
    return base64.encodebytes(s.encode(cs)).decode("ascii")

def ew(s, cs="utf-8"):
    if cs == "windows-1258":
        s = cp1258_form(s)
    return "=?%s?B?%s?=" % (cs, base64.b64encode(s.encode(cs)).decode("ascii"))

def write(name, text):
    with open(name, "wb") as f:
        f.write(text.replace("\n", "\r\n").encode("latin-1") if isinstance(text, str) else text)

_part0 = b64("<html><body><p>Kính gửi iPOS,</p><p>MoMo đề nghị <b>mở cổng kết nối HUB</b> cho Phở Thìn.</p><script>alert('x')</script><img src=x onerror=alert(1)></body></html>")
_part1 = qp('''Chào MoMo và iPOS,

Bên em xác nhận đồng ý mở cổng kết nối HUB cho Phở Thìn Lò Đúc.
Liên hệ: 0912.345.678

Vào Th 2, 2 thg 11, 2026 lúc 09:00 Đối tác MoMo <hub@momo.vn> đã viết:
> MoMo đề nghị mở cổng kết nối HUB cho merchant sau:
''')
_part2 = b64("iPOS đã nhận đủ xác nhận, sẽ triển khai trong tuần.")
_part3 = qp('''Kính gửi iPOS,
VNPAY đề nghị mở cổng kết nối cho merchant:
Tên quán: Bún Chả Hương Liên
Địa chỉ: 24 Lê Văn Hưu, Hà Nội
Người liên hệ: Anh Trần Minh, +84 903 111 222
''', "cp1258")
_part4 = qp('''Gửi iPOS xác nhận của merchant bên dưới.

---------- Forwarded message ---------
From: Trần Minh <minh@huonglien.vn>
Date: Tue, 3 Nov 2026 at 10:40
Subject: Re: Đề nghị mở cổng kết nối
To: <partner@vnpay.vn>

Chúng tôi đồng ý mở cổng kết nối với VNPAY qua iPOS.
Trần Minh - 0903111222
''')
_part5 = b64("The Coffee House xác nhận đồng ý kết nối voucher GiftPop tại điểm Nguyễn Huệ.")
_part6 = qp('''Chào iPOS, GiftPop cần mở kết nối HUB cho điểm:
Thương hiệu: The Coffee House
Chi nhánh: TCH Nguyễn Huệ
Địa chỉ: 86 Nguyễn Huệ, Quận 1, TP.HCM
''')
_part7 = b64("ma_diem,ten_diem\nTCH-NH,TCH Nguyễn Huệ\n")
_part8 = b64("iPOS xem thư xác nhận của merchant đính kèm.")
_part9 = b64("<div>Highlands <b>đồng ý</b> mở cổng kết nối.</div><blockquote>ZaloPay de nghi mo cong</blockquote>")
_part10 = b64("Giảm giá 50% cho mọi đơn hàng.")
_part11 = b64("MoMo đề nghị mở cổng cho Cơm Tấm Cali, 32 Nguyễn Trãi Q5.")

SUBJ_A = "[MoMo] Mở cổng kết nối HUB - Phở Thìn Lò Đúc"
body_a01 = """Kính gửi iPOS,

MoMo đề nghị mở cổng kết nối HUB cho merchant sau:
Tên quán: Phở Thìn Lò Đúc
Tên điểm: Phở Thìn - 13 Lò Đúc
Địa chỉ: 13 Lò Đúc, Hai Bà Trưng, Hà Nội
Người liên hệ: Chị Nguyễn Thị Lan - 0912 345 678

Trân trọng,
Phòng Đối tác MoMo
"""
write("a01-momo-request-outlook.eml", f"""Received: from mail.momo.vn (10.0.0.1) by mx.ipos.vn; Mon, 2 Nov 2026 09:00:05 +0700
From: {ew("Đối tác MoMo")} <hub@momo.vn>
To: hub@ipos.vn
Subject: {ew(SUBJ_A)}
Date: Mon, 2 Nov 2026 09:00:00 +0700
Message-ID: <A01.outlook@momo.vn>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="_000_A01_"
X-Mailer: Microsoft Outlook 16.0

--_000_A01_
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: base64

{b64(body_a01)}
--_000_A01_
Content-Type: text/html; charset="utf-8"
Content-Transfer-Encoding: base64

{_part0}
--_000_A01_--
""")

write("a02-merchant-confirm-gmail.eml", f"""From: {ew("Nguyễn Thị Lan")} <lan@phothin.vn>
To: hub@momo.vn
Cc: hub@ipos.vn
Subject: {ew("Re: " + SUBJ_A)}
Date: Mon, 2 Nov 2026 10:15:00 +0700
Message-ID: <CAG-a02@mail.gmail.com>
In-Reply-To: <A01.outlook@momo.vn>
References: <A01.outlook@momo.vn>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="0000a02"

--0000a02
Content-Type: text/plain; charset="UTF-8"
Content-Transfer-Encoding: quoted-printable

{_part1}
--0000a02
Content-Type: image/png; name="giay-phep.png"
Content-Disposition: attachment; filename="giay-phep.png"
Content-Transfer-Encoding: base64

iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==
--0000a02--
""")

write("a03-momo-leader-approve.eml", f"""From: {ew("Trưởng nhóm MoMo")} <leader@momo.vn>
To: hub@ipos.vn
Subject: {ew("TL: " + SUBJ_A)}
Date: Mon, 2 Nov 2026 14:00:00 +0700
Message-ID: <a03-leader@momo.vn>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

""".encode("utf-8").decode("latin-1") + "Đồng ý, approve mở cổng cho Phở Thìn.\n\nLeader MoMo\n".encode("utf-8").decode("latin-1"))

write("a04-ipos-reply.eml", f"""From: {ew("iPOS Kinh doanh")} <sale@ipos.vn>
To: hub@momo.vn
Subject: {ew("RE: " + SUBJ_A)}
Date: Mon, 2 Nov 2026 15:00:00 +0700
Message-ID: <a04@ipos.vn>
In-Reply-To: <a03-leader@momo.vn>
References: <A01.outlook@momo.vn> <a03-leader@momo.vn>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

{_part2}
""")

SUBJ_B = "Đề nghị mở cổng kết nối cho Bún Chả Hương Liên"
write("b01-vnpay-request-windows1258.eml", f"""From: VNPAY Partner <partner@vnpay.vn>
To: hub@ipos.vn
Subject: {ew(SUBJ_B, "windows-1258")}
Date: Tue, 3 Nov 2026 08:30:00 +0700
Message-ID: <b01@vnpay.vn>
MIME-Version: 1.0
Content-Type: text/plain; charset="windows-1258"
Content-Transfer-Encoding: quoted-printable

{_part3}
""")

write("b02-vnpay-forwards-merchant-gmail.eml", f"""From: VNPAY Partner <partner@vnpay.vn>
To: hub@ipos.vn
Subject: {ew("Fwd: " + SUBJ_B)}
Date: Tue, 3 Nov 2026 11:00:00 +0700
Message-ID: <b02@vnpay.vn>
References: <b01@vnpay.vn>
In-Reply-To: <b01@vnpay.vn>
MIME-Version: 1.0
Content-Type: text/plain; charset="UTF-8"
Content-Transfer-Encoding: quoted-printable

{_part4}
""")

SUBJ_C = "Mở kết nối HUB cho The Coffee House - Nguyễn Huệ"
inner = f"""From: {ew("Quản lý TCH")} <quanly@thecoffeehouse.vn>
To: ops@giftpop.vn
Subject: {ew("Xác nhận kết nối GiftPop")}
Date: Wed, 4 Nov 2026 09:00:00 +0700
Message-ID: <inner-c02@thecoffeehouse.vn>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

{_part5}
"""
write("c01-giftpop-request-apple.eml", f"""From: {ew("GiftPop Vận hành")} <ops@giftpop.vn>
To: hub@ipos.vn
Subject: {ew(SUBJ_C)}
Date: Wed, 4 Nov 2026 08:00:00 +0700
Message-Id: <C01-APPLE@giftpop.vn>
Mime-Version: 1.0 (Mac OS X Mail 16.0)
Content-Type: multipart/mixed; boundary="Apple-Mail=_C01"
X-Mailer: Apple Mail (2.3731)

--Apple-Mail=_C01
Content-Transfer-Encoding: quoted-printable
Content-Type: text/plain; charset=utf-8

{_part6}
--Apple-Mail=_C01
Content-Disposition: attachment; filename*=utf-8''danh-s%C3%A1ch-%C4%91i%E1%BB%83m.csv
Content-Type: text/csv; name*=utf-8''danh-s%C3%A1ch-%C4%91i%E1%BB%83m.csv
Content-Transfer-Encoding: base64

{_part7}
--Apple-Mail=_C01--
""")

write("c02-giftpop-fw-attached-rfc822.eml", f"""From: {ew("GiftPop Vận hành")} <ops@giftpop.vn>
To: hub@ipos.vn
Subject: {ew("FW: " + SUBJ_C)}
Date: Wed, 4 Nov 2026 10:00:00 +0700
Message-ID: <c02@giftpop.vn>
References: <C01-APPLE@giftpop.vn>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="c02b"

--c02b
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

{_part8}
--c02b
Content-Type: message/rfc822
Content-Disposition: attachment; filename="xac-nhan.eml"

{inner}
--c02b--
""")

SUBJ_D = "De nghi mo cong ket noi HUB cho Highlands Coffee Landmark"
write("d01-zalopay-request-no-diacritics.eml", f"""From: ZaloPay Ho tro <hotro@zalopay.vn>
To: hub@ipos.vn
Subject: {SUBJ_D}
Date: Thu, 5 Nov 2026 08:00:00 +0700
Message-ID: <d01@zalopay.vn>
Content-Type: text/plain; charset=us-ascii

ZaloPay de nghi mo cong ket noi HUB.
Ten quan: Highlands Coffee
Dia chi: 72 Le Thanh Ton, Quan 1
Lien he: Chi Mai 0987654321
""")

write("d02-merchant-webmail-reply.eml", f"""From: IT Highlands <it@highlands.vn>
To: hotro@zalopay.vn, hub@ipos.vn
Subject: {ew("Trả lời: " + SUBJ_D)}
Date: Thu, 5 Nov 2026 16:00:00 +0700
Message-ID: <d02@highlands.vn>
MIME-Version: 1.0
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: base64

{_part9}
""")

write("e01-newsletter-unknown.eml", f"""From: Shopee <news@shopee.vn>
To: hub@ipos.vn
Subject: {ew("Khuyến mãi tháng 11 dành cho bạn")}
Date: Fri, 6 Nov 2026 07:00:00 +0700
Message-ID: <e01@shopee.vn>
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

{_part10}
""")

write("f01-garbage.eml", b"\x00\x01\x02 this is not a mail \xff\xfe\n\n\x00")

write("f02-truncated-multipart.eml", f"""From: hub@momo.vn
To: hub@ipos.vn
Subject: {ew("Mở cổng HUB - Cơm Tấm Cali")}
Date: Sat, 7 Nov 2026 09:00:00 +0700
Message-ID: <f02@momo.vn>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="never-closed"

--never-closed
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

{_part11}
--never-closed
Content-Type: application/pdf; name="hop-dong.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBS
""")

write("g01-duplicate-of-a01.eml", open("a01-momo-request-outlook.eml", "rb").read().replace(b"Received: from mail.momo.vn (10.0.0.1)", b"Received: from mail2.momo.vn (10.0.0.2)"))
