//! The text of a notification (Zalo, Telegram, e-mail): the fields an integration
//! chose, in a fixed order, in Vietnamese.

use crate::banking::models::Transaction;
use crate::business::models::BankAccount;
use crate::fmt::{LocalTime, Money};

/// Every field a message may carry: (code, label shown in the form).
pub const FIELDS: &[(&str, &str)] = &[
    ("amount", "Số tiền"),
    ("description", "Nội dung chuyển khoản"),
    ("counter", "Tài khoản đối ứng"),
    ("balance", "Số dư sau giao dịch"),
    ("time", "Thời gian"),
    ("account", "Tài khoản ngân hàng nhận"),
];

pub const DEFAULT_FIELDS: &str = "amount,description,counter,balance,time,account";

/// Keeps the known field codes of a posted list, in the catalogue's order; never empty
/// (the amount alone when nothing known was chosen).
pub fn normalise(chosen: &[String]) -> String {
    let kept: Vec<&str> = FIELDS.iter().map(|(c, _)| *c).filter(|c| chosen.iter().any(|x| x == c)).collect();
    if kept.is_empty() { "amount".to_string() } else { kept.join(",") }
}

pub fn has(fields: &str, code: &str) -> bool {
    fields.split(',').any(|f| f == code)
}

/// The message for one transaction. Zalo caps a text at 2,000 characters: the
/// description is cut so the whole stays under it.
pub fn text(fields: &str, t: &Transaction, a: &BankAccount) -> String {
    let mut lines = Vec::new();
    let sign = if t.amount >= 0 { "+" } else { "-" };
    if has(fields, "amount") {
        let kind = if t.amount >= 0 { "Tiền vào" } else { "Tiền ra" };
        lines.push(format!("{kind}: {sign}{}", Money(t.amount.abs())));
    } else {
        lines.push(if t.amount >= 0 {
            "Có giao dịch tiền vào".to_string()
        } else {
            "Có giao dịch tiền ra".to_string()
        });
    }
    if has(fields, "account") {
        let holder = if a.account_name.is_empty() { String::new() } else { format!(" ({})", a.account_name) };
        lines.push(format!("Tài khoản: {} {}{holder}", a.bank_name, a.account_number));
    }
    if has(fields, "description") && !t.description.is_empty() {
        lines.push(format!("Nội dung: {}", t.description.chars().take(1_000).collect::<String>()));
    }
    if has(fields, "counter") && !(t.counter_account.is_empty() && t.counter_name.is_empty()) {
        let mut who = t.counter_name.clone();
        if !t.counter_account.is_empty() {
            if !who.is_empty() {
                who.push_str(" - ");
            }
            who.push_str(&t.counter_account);
        }
        let bank = if t.counter_bank_name.is_empty() { &t.counter_bank_id } else { &t.counter_bank_name };
        if !bank.is_empty() {
            who.push_str(&format!(" ({bank})"));
        }
        lines.push(format!("{}: {who}", if t.amount >= 0 { "Từ" } else { "Đến" }));
    }
    if has(fields, "balance")
        && let Some(b) = t.balance
    {
        lines.push(format!("Số dư: {}", Money(b)));
    }
    if has(fields, "time") {
        lines.push(format!("Thời gian: {}", LocalTime(t.occurred_at)));
    }
    lines.push(format!("Mã GD: {}", t.bank_tx_id));
    let mut s = lines.join("\n");
    if s.chars().count() > 2_000 {
        s = s.chars().take(1_999).collect::<String>() + "…";
    }
    s
}

/// A transaction for test calls and the live preview.
pub fn sample(business_id: i64) -> (Transaction, BankAccount) {
    let t = crate::db::now();
    let tx = Transaction {
        id: 0,
        business_id,
        account_id: 0,
        bank_tx_id: "TEST-HUBGATE".into(),
        amount: 125_000,
        description: "NGUYEN VAN AN chuyen tien ca phe".into(),
        balance: Some(12_450_000),
        occurred_at: t,
        pending: false,
        counter_account: "0071000123456".into(),
        counter_name: "NGUYEN VAN AN".into(),
        counter_bank_id: "970436".into(),
        counter_bank_name: "Vietcombank".into(),
        virtual_account: String::new(),
        virtual_account_name: String::new(),
        payment_channel: "test".into(),
        source: "test".into(),
        search_key: String::new(),
        created_at: t,
        deleted_at: None,
    };
    let account = BankAccount {
        id: 0,
        business_id,
        bank_code: "TEST".into(),
        bank_name: "Ngân hàng thử".into(),
        account_number: "0000000000".into(),
        account_name: "TAI KHOAN THU".into(),
        method: "test".into(),
        connect_status: "connected".into(),
        created_at: t,
        removed_at: None,
        connection_id: None,
        bank_bin: String::new(),
        external_id: String::new(),
        balance: None,
        sync_from: None,
        sync_cursor: None,
        last_sync_at: None,
        next_sync_at: None,
        rate_limited_until: None,
        rate_limit_source: None,
        last_error: None,
    };
    (tx, account)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_chosen_fields_appear() {
        let (t, a) = sample(1);
        let all = text(DEFAULT_FIELDS, &t, &a);
        assert!(all.contains("Tiền vào: +125.000 đ"), "{all}");
        assert!(all.contains("Số dư: 12.450.000 đ"), "{all}");
        assert!(all.contains("Từ: NGUYEN VAN AN - 0071000123456 (Vietcombank)"), "{all}");
        let few = text("amount,time", &t, &a);
        assert!(!few.contains("Số dư") && !few.contains("Nội dung") && few.contains("Thời gian"), "{few}");
        assert_eq!(normalise(&["time".into(), "bogus".into(), "amount".into()]), "amount,time");
        assert_eq!(normalise(&["bogus".into()]), "amount");
    }

    #[test]
    fn long_descriptions_stay_under_zalo_limit() {
        let (mut t, a) = sample(1);
        t.description = "x".repeat(5_000);
        assert!(text(DEFAULT_FIELDS, &t, &a).chars().count() <= 2_000);
    }
}
