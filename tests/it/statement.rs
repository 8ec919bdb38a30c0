//! Bank statement import (issue 19): statements written here the way six banks export
//! them, imported through the service, the pages and the CLI on both databases, plus
//! the hostile files.

use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
use hubgate::audit::Actor;
use hubgate::banking::statement::{self, parse};
use hubgate::business::models::{BankAccount, NewBankAccount};
use hubgate::db::schema::{deliveries, statement_imports, transactions};
use rust_xlsxwriter::{Format, Workbook};

use crate::support::TestApp;

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// An xlsx whose cells are `rows` (text; a cell starting with `=n` is written as the
/// number n), on a sheet named `sheet`, with `extra` sheets after it.
fn xlsx(sheets: &[(&str, Vec<Vec<String>>)]) -> Vec<u8> {
    let mut book = Workbook::new();
    for (name, rows) in sheets {
        let sheet = book.add_worksheet();
        sheet.set_name(*name).unwrap_or_else(|e| panic!("{e}"));
        for (r, row) in rows.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                if v.is_empty() {
                    continue;
                }
                let done = match v.strip_prefix('=').and_then(|n| n.parse::<f64>().ok()) {
                    Some(n) => sheet.write_number(r as u32, c as u16, n).map(|_| ()),
                    None => sheet.write_string(r as u32, c as u16, v).map(|_| ()),
                };
                done.unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }
    book.save_to_buffer().unwrap_or_else(|e| panic!("{e}"))
}

/// Windows-1258 bytes of `text`: tone marks as combining characters, the way the code
/// page writes Vietnamese (ấ = â + U+0301).
fn windows_1258(text: &str) -> Vec<u8> {
    use unicode_normalization::UnicodeNormalization;
    let mut out = String::new();
    // A letter and the marks after it; circumflex, breve and horn join the letter.
    let (mut base, mut marks): (Option<char>, Vec<char>) = (None, Vec::new());
    for c in text.nfd() {
        match c {
            '\u{302}' | '\u{306}' | '\u{31B}' => {
                let joined: String = base.into_iter().chain([c]).collect();
                base = joined.nfc().next();
            }
            '\u{300}'..='\u{36F}' => marks.push(c),
            _ => {
                out.extend(base.take());
                out.extend(marks.drain(..));
                base = Some(c);
            }
        }
    }
    out.extend(base);
    out.extend(marks);
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1258.encode(&out);
    assert!(!unmappable, "not windows-1258: {text}");
    bytes.into_owned()
}

fn utf16le_bom(text: &str) -> Vec<u8> {
    let mut out = vec![0xFF, 0xFE];
    out.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    out
}

/// Vietcombank: bilingual title and header rows, numbers, a total and the closing
/// balance after the data, and an English copy of the table on a second sheet.
pub(crate) fn vietcombank() -> Vec<u8> {
    let title = vec![
        s(&["NGÂN HÀNG TMCP NGOẠI THƯƠNG VIỆT NAM"]),
        s(&["SAO KÊ TÀI KHOẢN / ACCOUNT STATEMENT"]),
        s(&["Số tài khoản/Account number:", "0071000123456"]),
        s(&["Từ ngày 01/11/2026 đến ngày 05/11/2026"]),
        s(&["Số dư đầu kỳ/Opening balance:", "=10000000"]),
        vec![],
    ];
    let header = s(&[
        "STT\nNo.",
        "Ngày giao dịch\nTransaction Date",
        "Số tham chiếu\nReference No.",
        "Số tiền ghi nợ\nDebit",
        "Số tiền ghi có\nCredit",
        "Số dư\nBalance",
        "Nội dung chi tiết\nTransactions in detail",
    ]);
    let data = vec![
        s(&[
            "=1",
            "01/11/2026 08:15:00",
            "FT26305001",
            "",
            "=2500000",
            "=12500000",
            "MBVCB.123 NGUYEN VAN AN chuyen tien",
        ]),
        s(&["=2", "02/11/2026 09:00:00", "FT26306002", "=500000", "", "=12000000", "Thanh toan tien dien"]),
        s(&["=3", "03/11/2026 17:45:10", "FT26307003", "", "=1000000", "=13000000", "TRAN THI BINH tra tien hang"]),
    ];
    let tail = vec![
        s(&["Tổng cộng/Total", "", "", "=500000", "=3500000"]),
        s(&["Số dư cuối kỳ/Closing balance:", "=13000000"]),
    ];
    let rows: Vec<Vec<String>> =
        title.clone().into_iter().chain([header]).chain(data.clone()).chain(tail.clone()).collect();
    let english: Vec<Vec<String>> = title
        .into_iter()
        .chain([s(&["No.", "Transaction Date", "Reference No.", "Debit", "Credit", "Balance", "Description"])])
        .chain(data)
        .chain(tail)
        .collect();
    xlsx(&[("Tiếng Việt", rows), ("English", english)])
}

/// Techcombank: CSV in UTF-8 with a BOM, money as text `1.500.000,00`, no reference.
fn techcombank() -> Vec<u8> {
    let text = "\u{feff}SAO KÊ TÀI KHOẢN\nSố tài khoản: 19034567890123\n\n\
        Ngày giao dịch,Đối tác/Remitter,NH Đối tác,Diễn giải/Details,Nợ/Debit,Có/Credit,Số dư/Balance\n\
        02/11/2026,NGUYEN VAN AN,VCB,\"Chuyen tien, don hang 15\",,\"1.500.000,00\",\"3.500.000,00\"\n\
        02/11/2026,,,Phi SMS,\"11.000,00\",,\"3.489.000,00\"\n\
        04/11/2026,LE VAN CUONG,ACB,Tra no,,\"250.000,00\",\"3.739.000,00\"\n";
    text.as_bytes().to_vec()
}

/// MB: `;`-separated CSV in windows-1258, one signed amount column.
fn mb() -> Vec<u8> {
    let text = "LỊCH SỬ GIAO DỊCH;;;;;\nSố tài khoản;0801234567890;;;;\n\
        STT;Ngày giao dịch;Mã giao dịch;Số tiền;Số dư;Nội dung\n\
        1;05/11/2026 10:01;MB001;+2.000.000;7.000.000;Khách chuyển khoản tiền cà phê\n\
        2;05/11/2026 11:30;MB002;-150.000;6.850.000;Mua hàng\n";
    windows_1258(text)
}

/// ACB: date cells (with times), a blank date continuing the day above, a description
/// going on in the next row, "Tổng phát sinh" and the balances.
fn acb() -> Vec<u8> {
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    let date = Format::new().set_num_format("dd/mm/yyyy hh:mm");
    let at = |d: u32, h: u32| {
        rust_xlsxwriter::ExcelDateTime::from_ymd(2026, 11, d as u8)
            .and_then(|x| x.and_hms(h as u16, 20, 0))
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let w = |r: u32, c: u16, v: &str, sheet: &mut rust_xlsxwriter::Worksheet| {
        sheet.write_string(r, c, v).map(|_| ()).unwrap_or_else(|e| panic!("{e}"))
    };
    w(0, 0, "SAO KÊ TÀI KHOẢN", sheet);
    w(1, 0, "Tài khoản: 12345678 - VND", sheet);
    w(2, 0, "Số dư đầu kỳ: 1,000,000", sheet);
    for (c, h) in ["Ngày hiệu lực", "Số GD", "Rút ra", "Gửi vào", "Số dư", "Mô tả giao dịch"].iter().enumerate()
    {
        w(4, c as u16, h, sheet);
    }
    let _ = sheet.write_datetime_with_format(5, 0, at(3, 10), &date);
    w(5, 1, "ACB0001", sheet);
    let _ = sheet.write_number(5, 3, 300_000.0);
    let _ = sheet.write_number(5, 4, 1_300_000.0);
    w(5, 5, "NGUYEN VAN AN chuyen", sheet);
    // Blank date: the same day as the row above.
    w(6, 1, "ACB0002", sheet);
    let _ = sheet.write_number(6, 2, 100_000.0);
    let _ = sheet.write_number(6, 4, 1_200_000.0);
    w(6, 5, "Rut tien ATM", sheet);
    // The description of ACB0002 goes on here.
    w(7, 5, "tai 12 Le Loi", sheet);
    w(8, 0, "Tổng phát sinh", sheet);
    let _ = sheet.write_number(8, 2, 100_000.0);
    let _ = sheet.write_number(8, 3, 300_000.0);
    w(9, 0, "Số dư cuối kỳ", sheet);
    let _ = sheet.write_number(9, 4, 1_200_000.0);
    book.save_to_buffer().unwrap_or_else(|e| panic!("{e}"))
}

/// BIDV: dates as plain spreadsheet serials, money as text `1,000,000`.
fn bidv() -> Vec<u8> {
    xlsx(&[(
        "Sheet1",
        vec![
            s(&["NGÂN HÀNG TMCP ĐẦU TƯ VÀ PHÁT TRIỂN VIỆT NAM"]),
            s(&["Số TK: 21510001234567"]),
            s(&["STT", "Ngày GD", "Số tham chiếu", "Ghi nợ", "Ghi có", "Số dư", "Diễn giải"]),
            s(&["=1", "=46331.375", "BIDV-77", "", "1,000,000", "5,000,000", "CK den tu VO THI DUNG"]),
            s(&["=2", "=46332.5", "BIDV-78", "250,000", "", "4,750,000", "Thanh toan QR"]),
        ],
    )])
}

/// VietinBank: tab-separated UTF-16 with a BOM, an amount with a Nợ/Có column, no
/// reference and no balance, and two identical transfers on one day.
fn vietinbank(number: &str) -> Vec<u8> {
    let text = format!(
        "Số tài khoản:\t{number}\n\
        Ngày giao dịch\tMô tả giao dịch\tSố tiền\tLoại\tTài khoản đối ứng\n\
        06/11/2026\tThanh toan don 88\t120.000\tCó\t0123456789\n\
        06/11/2026\tThanh toan don 88\t120.000\tCó\t0123456789\n\
        06/11/2026\tPhi dich vu\t5.500\tNợ\t\n"
    );
    utf16le_bom(&text)
}

fn link(app: &TestApp, bid: i64, bank: &str, number: &str) -> BankAccount {
    app.with_conn(|c| {
        hubgate::business::service::link_account(
            c,
            &Actor::system("test"),
            &NewBankAccount {
                business_id: bid,
                bank_code: bank,
                bank_name: bank,
                account_number: number,
                account_name: "CONG TY TEST",
                method: "push",
                connect_status: "connected",
                created_at: hubgate::db::now(),
                connection_id: None,
                bank_bin: "970416",
                external_id: number,
                balance: None,
                sync_from: None,
                next_sync_at: None,
            },
        )
    })
    .unwrap_or_else(|e| panic!("{e:?}"))
}

fn import(
    app: &TestApp,
    account: &BankAccount,
    name: &str,
    bytes: &[u8],
    silent: bool,
) -> Result<statement::Summary, String> {
    // As the CLI does: one transaction, so a refused file leaves nothing.
    app.with_conn(|c| {
        hubgate::db::tx(c, |c| {
            let actor = Actor::system("test");
            let id = statement::upload(c, &actor, account, name, bytes, silent)?;
            statement::import(c, &actor, account.business_id, id, None, silent)
        })
    })
    .map_err(|e| match e {
        hubgate::error::AppError::Validation(m) => m,
        other => format!("{other:?}"),
    })
}

/// (bank id, amount, local time, description) of the account's rows, oldest first.
fn stored(app: &TestApp, account_id: i64) -> Vec<(String, i64, String, String)> {
    let rows: Vec<(String, i64, chrono::NaiveDateTime, String)> = app
        .with_conn(|c| {
            transactions::table
                .filter(transactions::account_id.eq(account_id))
                .order((transactions::occurred_at.asc(), transactions::id.asc()))
                .select((
                    transactions::bank_tx_id,
                    transactions::amount,
                    transactions::occurred_at,
                    transactions::description,
                ))
                .load(c)
        })
        .unwrap_or_else(|e| panic!("{e}"));
    rows.into_iter()
        .map(|(id, a, t, d)| (id, a, (t + chrono::Duration::hours(7)).format("%d/%m/%Y %H:%M").to_string(), d))
        .collect()
}

/// Whether the import whose page is `location` has finished.
fn import_finished(app: &TestApp, location: &str) -> bool {
    let id: i64 = location.rsplit('/').next().and_then(|s| s.parse().ok()).unwrap_or(-1);
    app.with_conn(|c| statement_imports::table.find(id).select(statement_imports::status).first::<String>(c))
        .is_ok_and(|s| s == "imported")
}

fn business(app: &TestApp, email: &str) -> i64 {
    let owner = app.create_merchant(email);
    app.create_business(&owner, "Cà phê Sao Kê")
}

// Six banks' exports, each read as the bank means it: the right sign, date and time,
// description and reference; the total and the second-language sheet are not rows.
crate::db_test!(six_banks_layouts_import_as_meant, |app| {
    let bid = business(&app, "chu@saoke.vn");
    let vcb = link(&app, bid, "VCB", "0071000123456");
    let got = import(&app, &vcb, "saoke_vcb.xlsx", &vietcombank(), false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((got.new, got.known), (3, 0), "{got:?}");
    assert!(got.skipped.iter().any(|s| s.reason.contains("tổng cộng")), "{got:?}");
    assert_eq!(
        stored(&app, vcb.id),
        vec![
            ("FT26305001".into(), 2_500_000, "01/11/2026 08:15".into(), "MBVCB.123 NGUYEN VAN AN chuyen tien".into()),
            ("FT26306002".into(), -500_000, "02/11/2026 09:00".into(), "Thanh toan tien dien".into()),
            ("FT26307003".into(), 1_000_000, "03/11/2026 17:45".into(), "TRAN THI BINH tra tien hang".into()),
        ]
    );

    let tcb = link(&app, bid, "TCB", "19034567890123");
    let got = import(&app, &tcb, "tcb.csv", &techcombank(), false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.new, 3, "{got:?}");
    let rows = stored(&app, tcb.id);
    assert_eq!(rows.iter().map(|r| r.1).collect::<Vec<_>>(), vec![1_500_000, -11_000, 250_000]);
    assert_eq!(rows[0].3, "Chuyen tien, don hang 15");
    assert!(rows.iter().all(|r| r.0.starts_with("sk-")), "content ids without a reference: {rows:?}");

    let mb_account = link(&app, bid, "MB", "0801234567890");
    let got = import(&app, &mb_account, "mb.csv", &mb(), false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.new, 2, "{got:?}");
    let rows = stored(&app, mb_account.id);
    assert_eq!(
        rows.iter().map(|r| (r.0.as_str(), r.1, r.2.as_str(), r.3.as_str())).collect::<Vec<_>>(),
        vec![
            ("MB001", 2_000_000, "05/11/2026 10:01", "Khách chuyển khoản tiền cà phê"),
            ("MB002", -150_000, "05/11/2026 11:30", "Mua hàng")
        ],
        "windows-1258 read back as Vietnamese"
    );

    let acb_account = link(&app, bid, "ACB", "12345678");
    let got = import(&app, &acb_account, "acb.xlsx", &acb(), false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.new, 2, "{got:?}");
    let rows = stored(&app, acb_account.id);
    assert_eq!(rows[0].1, 300_000);
    assert_eq!(rows[0].2, "03/11/2026 10:20");
    assert_eq!((rows[1].1, rows[1].2.as_str()), (-100_000, "03/11/2026 10:20"), "the blank date is the row above's");
    assert_eq!(rows[1].3, "Rut tien ATM tai 12 Le Loi", "the description goes on in the next row");

    let bidv_account = link(&app, bid, "BIDV", "21510001234567");
    let got = import(&app, &bidv_account, "bidv.xlsx", &bidv(), false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.new, 2, "{got:?}");
    let rows = stored(&app, bidv_account.id);
    assert_eq!((rows[0].1, rows[0].2.as_str()), (1_000_000, "05/11/2026 09:00"));
    assert_eq!((rows[1].1, rows[1].2.as_str()), (-250_000, "06/11/2026 12:00"));

    let ctg = link(&app, bid, "CTG", "108870001234");
    let got =
        import(&app, &ctg, "vietinbank.txt", &vietinbank("108870001234"), false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.new, 3, "two identical transfers on one day stay two: {got:?}");
    let rows = stored(&app, ctg.id);
    assert_eq!(rows.iter().map(|r| r.1).collect::<Vec<_>>(), vec![120_000, 120_000, -5_500]);
    assert_ne!(rows[0].0, rows[1].0);

    // Re-importing every file adds nothing.
    for (account, name, bytes) in [
        (&vcb, "saoke_vcb.xlsx", vietcombank()),
        (&tcb, "tcb.csv", techcombank()),
        (&mb_account, "mb.csv", mb()),
        (&acb_account, "acb.xlsx", acb()),
        (&bidv_account, "bidv.xlsx", bidv()),
        (&ctg, "vietinbank.txt", vietinbank("108870001234")),
    ] {
        let again = import(&app, account, name, &bytes, false).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(again.new, 0, "{name}: {again:?}");
        assert!(again.known > 0, "{name}: {again:?}");
    }
    let total: i64 = app.with_conn(|c| transactions::table.count().get_result(c)).unwrap_or(-1);
    assert_eq!(total, 15);
});

// Balances stated around the table are checked; a file of another account is refused
// with both numbers and stores nothing.
crate::db_test!(balance_check_and_wrong_account, |app| {
    let st = parse::read(&vietcombank(), "vcb.xlsx", None, 100).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((st.opening, st.closing, st.sum), (Some(10_000_000), Some(13_000_000), 3_000_000));
    assert_eq!(st.balance_check(), Some(Ok(())));
    assert_eq!(st.account_number.as_deref(), Some("0071000123456"));
    let acb_st = parse::read(&acb(), "acb.xlsx", None, 100).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(acb_st.balance_check(), Some(Ok(())), "{acb_st:?}");

    let bid = business(&app, "chu@nhamtk.vn");
    let other = link(&app, bid, "VCB", "0071999999999");
    let refused = import(&app, &other, "saoke_vcb.xlsx", &vietcombank(), false).err().unwrap_or_default();
    assert!(refused.contains("0071000123456") && refused.contains("0071999999999"), "{refused}");
    assert!(stored(&app, other.id).is_empty());
});

// New rows fire notifications through the sync store; a silent import stores the
// history without any.
crate::db_test!(notifications_fire_unless_silent, |app| {
    let bid = business(&app, "chu@thongbao.vn");
    let owner_id: i64 = app
        .with_conn(|c| {
            hubgate::db::schema::users::table
                .filter(hubgate::db::schema::users::email.eq("chu@thongbao.vn"))
                .select(hubgate::db::schema::users::id)
                .first(c)
        })
        .unwrap_or(-1);
    let t = hubgate::db::now();
    app.with_conn(|c| {
        hubgate::notify::models::insert_integration(
            c,
            &hubgate::notify::models::NewIntegration {
                business_id: bid,
                channel: "webhook",
                name: "Máy nhận",
                url: "http://127.0.0.1:9/hook",
                format: "casso_v2",
                secret_sealed: "x",
                income_only: false,
                account_ids: "",
                enabled: true,
                created_by: owner_id,
                created_at: t,
                updated_at: t,
                fields: "",
                settings: "{}",
                invite_code: None,
            },
        )
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let deliveries_n = || app.with_conn(|c| deliveries::table.count().get_result::<i64>(c)).unwrap_or(-1);
    let ctg = link(&app, bid, "CTG", "108870001234");
    let got = import(&app, &ctg, "ctg.txt", &vietinbank("108870001234"), false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.new, 3);
    assert_eq!(deliveries_n(), 3, "one delivery per new transaction");
    let mb_account = link(&app, bid, "MB", "0801234567890");
    let got = import(&app, &mb_account, "mb.csv", &mb(), true).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.new, 2);
    assert_eq!(deliveries_n(), 3, "a silent import sends nothing");
});

// Hostile files: a clear Vietnamese message and nothing stored (not even the upload);
// a sheet that declares a million columns imports as the cells it has.
crate::db_test!(hostile_files_change_nothing, |app| {
    let bid = business(&app, "chu@hostile.vn");
    let account = link(&app, bid, "VCB", "0071000123456");
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89".to_vec();
    let mut protected = vec![0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
    protected.extend(vec![0u8; 512]);
    protected.extend("EncryptedPackage".encode_utf16().flat_map(u16::to_le_bytes));
    let bad_rows = xlsx(&[(
        "S",
        vec![
            s(&["Ngày giao dịch", "Ghi nợ", "Ghi có", "Nội dung"]),
            s(&["01/11/2026", "", "=1000", "ok"]),
            s(&["32/13/2026", "", "=1000", "ngày sai"]),
            s(&["02/11/2026", "", "một nghìn", "tiền sai"]),
        ],
    )]);
    // More rows than any sheet may have, and no header among the first: the reading
    // gives up at the header search, not after the last row.
    let no_header_csv = "1\n".repeat(1_200_000).into_bytes();
    let no_header_html = format!("<table>{}</table>", "<tr><td>1</td></tr>".repeat(1_200_000)).into_bytes();
    for (name, bytes, says) in [
        ("khong-tieu-de.csv", no_header_csv, "Không tìm thấy dòng tiêu đề"),
        ("khong-tieu-de.xls", no_header_html, "Không tìm thấy dòng tiêu đề"),
        ("anh.xlsx", png.clone(), "không đọc được"),
        ("anh.csv", png, "không đọc được"),
        ("mat-khau.xlsx", protected, "mật khẩu"),
        ("trong.csv", Vec::new(), "Tệp trống"),
        ("sai.xlsx", bad_rows, "dòng 3: ngày “32/13/2026”"),
    ] {
        let refused = import(&app, &account, name, &bytes, false).err().unwrap_or_default();
        assert!(refused.contains(says), "{name}: {refused}");
    }
    let bad = parse::read(
        &xlsx(&[("S", vec![s(&["Ngày giao dịch", "Ghi nợ", "Ghi có"]), s(&["02/11/2026", "", "một nghìn"])])]),
        "x.xlsx",
        None,
        10,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(bad.fault_message().unwrap_or_default().contains("dòng 2: số tiền “một nghìn”"), "{bad:?}");
    assert!(stored(&app, account.id).is_empty());
    let kept: i64 = app.with_conn(|c| statement_imports::table.count().get_result(c)).unwrap_or(-1);
    assert_eq!(kept, 0, "a refused file leaves no upload behind");

    // A million columns declared (and a cell in the far corner): read as what is there.
    let claims = rewrite_first_sheet(&vietcombank(), |xml| {
        let start = xml.find("<dimension").unwrap_or(0);
        let end = start + xml[start..].find("/>").unwrap_or(0) + 2;
        format!("{}<dimension ref=\"A1:XFD1048576\"/>{}", &xml[..start], &xml[end..]).replace(
            "</sheetData>",
            "<row r=\"1048000\"><c r=\"XFD1048000\" t=\"inlineStr\"><is><t>x</t></is></c></row></sheetData>",
        )
    });
    let got = import(&app, &account, "rong.xlsx", &claims, false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.new, 3);
});

fn rewrite_first_sheet(bytes: &[u8], edit: impl Fn(String) -> String) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut zin = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap_or_else(|e| panic!("{e}"));
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for i in 0..zin.len() {
        let mut f = zin.by_index(i).unwrap_or_else(|e| panic!("{e}"));
        let name = f.name().map(|n| n.to_string()).unwrap_or_default();
        let mut data = Vec::new();
        f.read_to_end(&mut data).unwrap_or_else(|e| panic!("{e}"));
        if name == "xl/worksheets/sheet1.xml" {
            data = edit(String::from_utf8_lossy(&data).to_string()).into_bytes();
        }
        out.start_file(name, zip::write::SimpleFileOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        out.write_all(&data).unwrap_or_else(|e| panic!("{e}"));
    }
    out.finish().map(|c| c.into_inner()).unwrap_or_else(|e| panic!("{e}"))
}

/// 200,000 rows stream through the reader (the figures are `hubgate bench statement`).
#[test]
fn two_hundred_thousand_rows_read() {
    let mut book = Workbook::new();
    let sheet = book.add_worksheet_with_constant_memory().unwrap_or_else(|e| panic!("{e}"));
    for (c, h) in ["Ngày giao dịch", "Số tham chiếu", "Ghi nợ", "Ghi có", "Nội dung"].iter().enumerate() {
        let _ = sheet.write_string(0, c as u16, *h);
    }
    for i in 1..=200_000u32 {
        let _ = sheet.write_string(i, 0, format!("{:02}/11/2026 10:00:00", i % 28 + 1));
        let _ = sheet.write_string(i, 1, format!("R{i}"));
        let _ = sheet.write_number(i, 3, f64::from(1000 + i));
        let _ = sheet.write_string(i, 4, "Chuyen tien");
    }
    let bytes = book.save_to_buffer().unwrap_or_else(|e| panic!("{e}"));
    let st = parse::read(&bytes, "lon.xlsx", None, 0).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(st.count, 200_000);
    assert!(st.rows.is_empty(), "a preview keeps only what it shows");
}

// The pages: upload → preview with the detected mapping → adjust → import → summary;
// the next file of the same layout imports straight from the upload; another account's
// file is refused on the preview with both numbers.
crate::db_test!(upload_preview_confirm_summary, |app| {
    let owner = app.create_merchant("chu@web.vn");
    let bid = app.create_business(&owner, "Web");
    let account = link(&app, bid, "VCB", "0071000123456");
    let b = app.login("chu@web.vn").await;
    let accounts = b.get(&format!("/app/b/{bid}/accounts")).await;
    assert!(accounts.body.contains(&format!("/app/b/{bid}/accounts/{}/statements", account.id)));
    let page = b.get(&format!("/app/b/{bid}/accounts/{}/statements", account.id)).await;
    let once =
        page.body.split("name=\"_once\" value=\"").nth(1).and_then(|s| s.split('"').next()).unwrap_or("").to_string();
    let up = b
        .upload(&format!("/app/b/{bid}/accounts/{}/statements", account.id), |f| {
            f.text("_once", once.clone())
                .part("file", reqwest::multipart::Part::bytes(vietcombank()).file_name("saoke.xlsx"))
        })
        .await;
    assert_eq!(up.status, 303, "{}", up.body);
    let to = up.location.clone().unwrap_or_default();
    let preview = b.get(&to).await;
    assert!(preview.body.contains("Khớp: số dư đầu kỳ"), "{}", preview.body);
    assert!(preview.body.contains("0071000123456"));
    assert!(preview.body.contains("FT26305001"));
    assert!(preview.body.contains("2.500.000 đ"));
    assert!(stored(&app, account.id).is_empty(), "a preview stores nothing");
    let once = preview
        .body
        .split("name=\"_once\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or("")
        .to_string();
    let id = to.rsplit('/').next().unwrap_or("");
    // Credit and debit swapped by the person: the preview shows the other signs.
    let swapped = b
        .post(
            &format!("/app/b/{bid}/statements/{id}/import"),
            &[
                ("date", "1"),
                ("reference", "2"),
                ("debit", "4"),
                ("credit", "3"),
                ("description", "6"),
                ("action", "preview"),
            ],
        )
        .await;
    assert!(swapped.body.contains("-2.500.000 đ") && swapped.body.contains("Không khớp"), "{}", swapped.body);
    let done = b
        .post(
            &format!("/app/b/{bid}/statements/{id}/import"),
            &[
                ("_once", once.as_str()),
                ("date", "1"),
                ("reference", "2"),
                ("debit", "3"),
                ("credit", "4"),
                ("balance", "5"),
                ("description", "6"),
                ("action", "import"),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    // Confirmed: the worker has it; until it runs, the page shows the bar and reloads.
    let waiting = b.get(&done.location.clone().unwrap_or_default()).await;
    assert!(waiting.body.contains(r#"<progress max="3" value="0">"#), "{}", waiting.body);
    assert!(waiting.body.contains(r#"http-equiv="refresh""#));
    assert!(stored(&app, account.id).is_empty(), "stored by the worker, not the request");
    crate::notify::work_until(&app, || stored(&app, account.id).len() == 3).await;
    let summary = b.get(&done.location.clone().unwrap_or_default()).await;
    assert!(summary.body.contains("id=\"count-new\">3<"), "{}", summary.body);
    assert!(summary.body.contains("dòng tổng cộng"));
    assert!(!summary.body.contains(r#"http-equiv="refresh""#), "a finished import stops reloading");

    // Same layout again: queued straight from the upload, nothing new.
    let again = b
        .upload(&format!("/app/b/{bid}/accounts/{}/statements", account.id), |f| {
            f.part("file", reqwest::multipart::Part::bytes(vietcombank()).file_name("saoke-2.xlsx"))
        })
        .await;
    let again = again.location.clone().unwrap_or_default();
    assert!(b.get(&again).await.body.contains("statement-progress"), "one step: no preview");
    crate::notify::work_until(&app, || import_finished(&app, &again)).await;
    let summary = b.get(&again).await;
    assert!(summary.body.contains("id=\"count-known\">3<"), "one step: {}", summary.body);

    // Another account's file: refused on the preview with both numbers.
    let other = link(&app, bid, "VCB", "0071888888888");
    let up = b
        .upload(&format!("/app/b/{bid}/accounts/{}/statements", other.id), |f| {
            f.part("file", reqwest::multipart::Part::bytes(vietcombank()).file_name("saoke.xlsx"))
        })
        .await;
    let refused = b.get(&up.location.clone().unwrap_or_default()).await;
    assert!(
        refused.body.contains("0071000123456")
            && refused.body.contains("0071888888888")
            && refused.body.contains("statement-error"),
        "{}",
        refused.body
    );
    assert!(!refused.body.contains("value=\"import\""), "no import button for a refused file");
    assert!(stored(&app, other.id).is_empty());
    let audited: i64 = app
        .with_conn(|c| {
            hubgate::db::schema::audit_log::table
                .filter(hubgate::db::schema::audit_log::entity_type.eq("statement_import"))
                .count()
                .get_result(c)
        })
        .unwrap_or(-1);
    assert!(audited >= 4, "uploads and imports are audited: {audited}");
});

/// Agribank's older export: an .xls (BIFF8) written by xlwt, the Python library many
/// report tools use, with a title and account rows, date cells with times, numbers for
/// money and an English second sheet. `None` (a visible skip) where no Python with xlwt
/// is configured; `.ci/run` installs it.
fn agribank_xls() -> Option<Vec<u8>> {
    let Ok(python) = std::env::var("HUBGATE_TEST_PYTHON") else {
        crate::support::skipped("HUBGATE_TEST_PYTHON (a Python with xlwt) is not set");
        return None;
    };
    let script = r##"
import sys, datetime, xlwt
book = xlwt.Workbook(encoding="utf-8")
when = xlwt.easyxf(num_format_str="dd/mm/yyyy hh:mm")
money = xlwt.easyxf(num_format_str="#,##0")
for name, head in [("Sao kê", ["STT", "Ngày giao dịch", "Số bút toán", "Ghi nợ", "Ghi có", "Số dư", "Nội dung"]),
                   ("Statement", ["No", "Transaction date", "Reference", "Debit", "Credit", "Balance", "Description"])]:
    sh = book.add_sheet(name)
    sh.write(0, 0, "NGÂN HÀNG NÔNG NGHIỆP VÀ PHÁT TRIỂN NÔNG THÔN VIỆT NAM")
    sh.write(1, 0, "Số tài khoản: 1500201234567")
    for c, h in enumerate(head):
        sh.write(3, c, h)
    rows = [(datetime.datetime(2026, 11, 10, 8, 5), "AGR-1001", None, 3200000, 8200000, "NGUYEN VAN AN chuyen tien bun"),
            (datetime.datetime(2026, 11, 10, 14, 40), "AGR-1002", 450000, None, 7750000, "Tra tien gas"),
            (datetime.datetime(2026, 11, 11, 9, 0), "AGR-1003", None, 125000, 7875000, "QR Bún bò Huế")]
    for r, (at, ref, debit, credit, bal, desc) in enumerate(rows):
        y = 4 + r
        sh.write(y, 0, r + 1)
        sh.write(y, 1, at, when)
        sh.write(y, 2, ref)
        if debit is not None: sh.write(y, 3, debit, money)
        if credit is not None: sh.write(y, 4, credit, money)
        sh.write(y, 5, bal, money)
        sh.write(y, 6, desc)
book.save(sys.stdout.buffer)
"##;
    let out =
        std::process::Command::new(&python).args(["-c", script]).output().unwrap_or_else(|e| panic!("{python}: {e}"));
    assert!(out.status.success(), "xlwt: {}", String::from_utf8_lossy(&out.stderr));
    Some(out.stdout)
}

// The old binary format imports like the others.
crate::db_test!(xls_statement_imports, |app| {
    let Some(xls) = agribank_xls() else { return };
    assert_eq!(&xls[..8], b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1", "a compound file, as .xls is");
    let bid = business(&app, "chu@agribank.vn");
    let account = link(&app, bid, "VBA", "1500201234567");
    let got = import(&app, &account, "saoke_agribank.xls", &xls, false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((got.new, got.known), (3, 0), "{got:?}");
    assert_eq!(
        stored(&app, account.id),
        vec![
            ("AGR-1001".into(), 3_200_000, "10/11/2026 08:05".into(), "NGUYEN VAN AN chuyen tien bun".into()),
            ("AGR-1002".into(), -450_000, "10/11/2026 14:40".into(), "Tra tien gas".into()),
            ("AGR-1003".into(), 125_000, "11/11/2026 09:00".into(), "QR Bún bò Huế".into()),
        ]
    );
    // The same file under another account is refused with both numbers.
    let other = link(&app, bid, "VBA", "1500209999999");
    let refused = import(&app, &other, "saoke_agribank.xls", &xls, false)
        .err()
        .unwrap_or_else(|| panic!("another account's file imported"));
    assert!(refused.contains("1500201234567") && refused.contains("1500209999999"), "{refused}");
});

/// The "xls" some banks' internet banking downloads: an HTML page with a title table
/// and the transactions' table, saved under the Excel extension (Excel opens it). Written
/// as such exports are: a charset meta, `<th>` headers, a `colspan` title, entities, a
/// `<br>` inside a description, a script, and a totals row.
fn html_xls() -> Vec<u8> {
    let page = r#"<html xmlns:x="urn:schemas-microsoft-com:office:excel"><head>
<meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<script>var x = "<td>not a cell</td>";</script>
<style>td { mso-number-format: "\@"; }</style></head><body>
<table><tr><td colspan="6"><b>SAO KÊ TÀI KHOẢN</b></td></tr>
<tr><td colspan="2">Số tài khoản:</td><td>0201&nbsp;2345&nbsp;6789</td></tr>
<tr><td>Số dư đầu kỳ:</td><td>1.000.000</td></tr></table>
<table border="1">
<tr><th>STT</th><th>Ngày GD</th><th>Số tham chiếu</th><th>Ghi nợ</th><th>Ghi có</th><th>Nội dung</th></tr>
<tr><td>1</td><td>12/11/2026 09:15:00</td><td>FT2631600001</td><td></td><td>250.000</td><td>CHUYEN KHOAN<br>DON &amp; HANG 12</td></tr>
<tr><td>2</td><td>12/11/2026 11:02:00</td><td>FT2631600002</td><td>40.000</td><td></td><td>Phí &lt;SMS&gt;</td></tr>
<tr><td colspan="3">Tổng cộng</td><td>40.000</td><td>250.000</td><td></td></tr>
<tr><td>Số dư cuối kỳ:</td><td>1.210.000</td></tr>
</table></body></html>"#;
    page.as_bytes().to_vec()
}

// An HTML page under the .xls extension reads like a spreadsheet: its tables' rows, the
// account number and both balances, entities decoded, the script's text no cell.
crate::db_test!(html_xls_statement_imports, |app| {
    let bid = business(&app, "chu@html.vn");
    let account = link(&app, bid, "STB", "020123456789");
    let preview = parse::read(&html_xls(), "LichSuGiaoDich.xls", None, 10).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(preview.account_number.as_deref(), Some("020123456789"));
    assert_eq!((preview.opening, preview.closing), (Some(1_000_000), Some(1_210_000)));
    assert_eq!(preview.balance_check(), Some(Ok(())));
    let got = import(&app, &account, "LichSuGiaoDich.xls", &html_xls(), false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((got.new, got.known), (2, 0), "{got:?}");
    assert_eq!(
        stored(&app, account.id),
        vec![
            ("FT2631600001".into(), 250_000, "12/11/2026 09:15".into(), "CHUYEN KHOAN DON & HANG 12".into()),
            ("FT2631600002".into(), -40_000, "12/11/2026 11:02".into(), "Phí <SMS>".into()),
        ]
    );
    // A page with no table at all says so, as any file without a statement does.
    let refused = import(
        &app,
        &account,
        "trang.xls",
        b"<html><body><p>Phi\xc3\xaan h\xe1\xba\xbft h\xe1\xba\xa1n</p></body></html>",
        false,
    )
    .err()
    .unwrap_or_else(|| panic!("a page without a table imported"));
    assert!(refused.contains("Không tìm thấy dòng tiêu đề"), "{refused}");
});

/// An MB csv of `n` distinct transfers.
fn mb_rows(n: usize) -> Vec<u8> {
    let mut text =
        String::from("Số tài khoản;0801234567890;;;;\nSTT;Ngày giao dịch;Mã giao dịch;Số tiền;Số dư;Nội dung\n");
    for i in 1..=n {
        text.push_str(&format!("{i};05/11/2026 10:01;MB{i:06};+1.000;;Khách {i} chuyển khoản\n"));
    }
    windows_1258(&text)
}

fn import_row(app: &TestApp, id: i64) -> statement::Import {
    use diesel::SelectableHelper;
    app.with_conn(|c| statement_imports::table.find(id).select(statement::Import::as_select()).first(c))
        .unwrap_or_else(|e| panic!("{e}"))
}

// The worker stores a confirmed statement a chunk per transaction: a run stopped
// mid-way (a worker killed, a lease lost) is resumed by the next from where it stopped,
// two runs at once store each row once, and the counts add up.
crate::db_test!(worker_import_resumes_and_stores_once, |app| {
    let bid = business(&app, "chu@lon.vn");
    let account = link(&app, bid, "MB", "0801234567890");
    let actor = Actor::system("test");
    let id = app
        .with_conn(|c| {
            let id = statement::upload(c, &actor, &account, "mb-lon.csv", &mb_rows(10_000), true)?;
            statement::queue(c, &actor, bid, id, None, true)?;
            // Confirming twice queues once.
            statement::queue(c, &actor, bid, id, None, true).map(|_| id)
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let queued = import_row(&app, id);
    assert_eq!((queued.status.as_str(), queued.total_rows, queued.done_rows), ("queued", 10_000, 0));
    let job_count = || -> i64 {
        app.with_conn(|c| {
            hubgate::db::schema::jobs::table
                .filter(hubgate::db::schema::jobs::kind.eq(statement::IMPORT_JOB))
                .count()
                .get_result(c)
        })
        .unwrap_or(-1)
    };
    assert_eq!(job_count(), 1);
    let ctx = || hubgate::worker::runner::JobCtx {
        services: app.state.services.clone(),
        id: 0,
        payload: serde_json::json!({ "import_id": id }),
        attempt: 1,
        max_attempts: 5,
    };
    // Stop the first run once it has stored a chunk (a step in flight still commits).
    let first = tokio::spawn(statement::import_job(ctx()));
    crate::support::poll("a first chunk stored", async || (import_row(&app, id).done_rows > 0).then_some(())).await;
    first.abort();
    let _ = first.await;
    // A step already in flight still commits; what is stored is what the progress says.
    let stopped = crate::support::poll("the progress matches the rows stored", async || {
        let row = import_row(&app, id);
        (stored(&app, account.id).len() as i64 == row.done_rows).then_some(row)
    })
    .await;
    assert_eq!(stopped.status, "importing");
    assert!(stopped.done_rows < 10_000, "stopped mid-way: {}", stopped.done_rows);
    let page = app.login("chu@lon.vn").await.get(&format!("/app/b/{bid}/statements/{id}")).await;
    let shown: i64 = page
        .body
        .split(r#"<progress max="10000" value=""#)
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no progress bar: {}", page.body));
    assert!((stopped.done_rows..10_000).contains(&shown), "the bar where it stopped: {shown}");
    assert!(page.body.contains("đang nhập") || page.body.contains("Đang nhập giao dịch"));

    // Two runs at once finish it: each row once.
    let (a, b) = tokio::join!(statement::import_job(ctx()), statement::import_job(ctx()));
    a.and(b).unwrap_or_else(|e| panic!("{e}"));
    let done = import_row(&app, id);
    assert_eq!(
        (done.status.as_str(), done.done_rows, done.new_count, done.known_count),
        ("imported", 10_000, 10_000, 0)
    );
    assert_eq!(stored(&app, account.id).len(), 10_000);
    // A job run again after the end changes nothing.
    statement::import_job(ctx()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(import_row(&app, id).new_count, 10_000);
});

// `hubgate statement import`: a JSON object per file with its counts; a bad file is
// reported and the others still import.
crate::db_test!(cli_imports_files, |app| {
    let bid = business(&app, "chu@cli.vn");
    let account = link(&app, bid, "MB", "0801234567890");
    let dir = app.data_dir.path();
    let good = dir.join("mb.csv");
    let bad = dir.join("anh.xlsx");
    std::fs::write(&good, mb()).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&bad, b"GIF89a not a sheet").unwrap_or_else(|e| panic!("{e}"));
    let run = |files: &[&std::path::Path]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hubgate"));
        cmd.args(["statement", "import", "--account", &account.id.to_string(), "--format", "json"])
            .args(files)
            .env("DATABASE_URL", &app.database_url)
            .env("HUBGATE_DATA_DIR", dir)
            .env("HUBGATE_LOG", "warn");
        cmd.output().unwrap_or_else(|e| panic!("{e}"))
    };
    let out = run(&[&good, &bad]);
    assert!(!out.status.success(), "a failed file fails the run");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!((lines[0]["new"].as_i64(), lines[0]["known"].as_i64()), (Some(2), Some(0)), "{lines:?}");
    assert!(lines[1]["error"].as_str().unwrap_or("").contains("không đọc được"), "{lines:?}");
    let again = run(&[&good]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    let line: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap_or_default();
    assert_eq!((line["new"].as_i64(), line["known"].as_i64()), (Some(0), Some(2)), "{line}");
});
