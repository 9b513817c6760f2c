//! Open Banking v4.0 records into the common data model. Pure: records
//! without a time of their own carry the time they were observed, added by
//! the fetch.

use serde_json::Value;
use sha2::{Digest, Sha256};
use tributary_connector_api::MappedRecord;
use tributary_connector_api::fields::Fields;
use tributary_schemas::model::*;
use tributary_schemas::{DataType, Decimal5, Record, Timestamp};

pub use tributary_connector_api::fields::MapError;

/// Set by the fetch on every record: the time of the answer (ms), the
/// version of records without a time of their own.
pub const OBSERVED_AT: &str = "tributary_observed_at";

pub fn observed(mut record: Value, now: Timestamp) -> Value {
    if let Some(fields) = record.as_object_mut() {
        fields.insert(
            OBSERVED_AT.to_string(),
            Value::String(now.millis().to_string()),
        );
    }
    record
}

/// A stable id for a record the bank gave none (transaction, direct debit
/// and standing order ids are optional in the standard): a digest of what
/// identifies it.
fn derived_id(parts: &[Option<&str>]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.unwrap_or("").as_bytes());
        hasher.update([0u8]);
    }
    let digest = hasher.finalize();
    format!(
        "derived-{}",
        digest[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// Maps one raw record of `data_type`.
pub fn map_record(data_type: DataType, raw: &Value) -> Result<MappedRecord, MapError> {
    let Some(fields) = raw.as_object() else {
        return Err(format!("{data_type}: the record is not an object"));
    };
    let account_id = match fields.get("AccountId") {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        _ => return Err(format!("{data_type}: the record has no AccountId")),
    };
    let mut r = Fields::of(raw, data_type, &account_id)?;
    let observed = r
        .opt_str(OBSERVED_AT)?
        .and_then(|ms| ms.parse().ok())
        .map(Timestamp);
    let (id, modified, record) = match data_type {
        DataType::BankAccount => {
            let identifiers = r
                .array("Account")?
                .iter()
                .enumerate()
                .map(|(n, a)| {
                    let a = r.nested(a, &format!("Account[{n}]"))?;
                    Ok(AccountIdentifier {
                        scheme: a.str("SchemeName")?.to_string(),
                        identification: a.str("Identification")?.to_string(),
                        name: a.opt_string("Name")?,
                    })
                })
                .collect::<Result<_, MapError>>()?;
            let modified = r.opt_time("StatusUpdateDateTime")?.or(observed);
            let record = Record::BankAccount(BankAccount {
                id: account_id.clone(),
                name: match r.opt_string("Nickname")? {
                    Some(n) => Some(n),
                    None => r.opt_string("Description")?,
                },
                currency: r.currency("Currency")?,
                category: r.opt_string("AccountCategory")?,
                account_type: r.opt_string("AccountTypeCode")?,
                status: r.opt_string("Status")?.unwrap_or_default(),
                identifiers,
                opened_on: r.opt_time("OpeningDate")?.map(Timestamp::date),
            });
            (account_id.clone(), modified, record)
        }
        DataType::BankBalance => {
            let balance_type = r.str("Type")?.to_string();
            let as_of = r.time("DateTime")?;
            let (amount, currency) = r.signed_amount("Amount", "CreditDebitIndicator")?;
            let date = as_of.date();
            let id = format!("{account_id}:{balance_type}:{date}");
            let record = Record::BankBalance(BankBalance {
                id: id.clone(),
                account_id: account_id.clone(),
                balance_type,
                date,
                as_of,
                amount,
                currency,
            });
            (id, Some(as_of), record)
        }
        DataType::BankFeedTransaction => {
            if let Some(id) = r.opt_string("TransactionId")? {
                r.set_id(&id);
            }
            let booked_at = r.time("BookingDateTime")?;
            let (amount, currency) = r.signed_amount("Amount", "CreditDebitIndicator")?;
            let code = r.str("Status")?;
            let status = match code {
                "BOOK" => "booked",
                "PDNG" => "pending",
                "FUTR" => "future",
                "INFO" => "info",
                "RJCT" => "rejected",
                other => return Err(r.bad("Status", &format!("is {other:?}, not a v4 status"))),
            };
            let id = match r.opt_string("TransactionId")? {
                Some(id) => id,
                None => derived_id(&[
                    Some(&account_id),
                    r.opt_str("BookingDateTime")?,
                    Some(&amount.to_string()),
                    Some(&currency),
                    r.opt_str("TransactionInformation")?,
                    r.opt_str("TransactionReference")?,
                ]),
            };
            r.set_id(&id);
            let debit = amount < Decimal5::ZERO;
            let counterparty = match r.opt_obj(if debit {
                "CreditorAccount"
            } else {
                "DebtorAccount"
            })? {
                Some(c) => c.opt_string("Name")?,
                None => None,
            };
            let balance_after = match r.opt_obj("Balance")? {
                Some(b) => Some(b.signed_amount("Amount", "CreditDebitIndicator")?.0),
                None => None,
            };
            // A booked version supersedes the pending one of the same id.
            let version = Timestamp(booked_at.millis() + i64::from(status == "booked"));
            let record = Record::BankFeedTransaction(BankFeedTransaction {
                id: id.clone(),
                account_id: account_id.clone(),
                status: status.to_string(),
                booked_at,
                value_at: r.opt_time("ValueDateTime")?,
                amount,
                currency,
                description: r.opt_string("TransactionInformation")?,
                reference: r.opt_string("TransactionReference")?,
                merchant_name: match r.opt_obj("MerchantDetails")? {
                    Some(m) => m.opt_string("MerchantName")?,
                    None => None,
                },
                counterparty_name: counterparty,
                balance_after,
            });
            (id, Some(version), record)
        }
        DataType::DirectDebit => {
            let mandate = r.opt_obj("MandateRelatedInformation")?;
            let mandate_reference = match &mandate {
                Some(m) => m.opt_string("MandateIdentification")?,
                None => None,
            };
            let id = match r.opt_string("DirectDebitId")? {
                Some(id) => id,
                None => derived_id(&[
                    Some(&account_id),
                    mandate_reference.as_deref(),
                    r.opt_str("Name")?,
                ]),
            };
            r.set_id(&id);
            let last = match r.opt_obj("PreviousPaymentAmount")? {
                Some(_) => Some(r.amount("PreviousPaymentAmount")?),
                None => None,
            };
            let record = Record::DirectDebit(DirectDebit {
                id: id.clone(),
                account_id: account_id.clone(),
                mandate_reference,
                creditor_name: r.opt_string("Name")?,
                status: r.opt_string("DirectDebitStatusCode")?,
                last_paid_at: r.opt_time("PreviousPaymentDateTime")?,
                last_amount: last.as_ref().map(|(a, _)| negate(*a)),
                currency: last.map(|(_, c)| c),
            });
            (id, observed, record)
        }
        DataType::StandingOrder => {
            let mandate = r.opt_obj("MandateRelatedInformation")?;
            let (frequency, final_payment_at) = match &mandate {
                Some(m) => {
                    let f = m.obj("Frequency")?;
                    let kind = match f.present("Type") {
                        Some(Value::String(s)) => s.clone(),
                        Some(other) => other.to_string(),
                        None => return Err(f.bad("Type", "is missing")),
                    };
                    // The type, then the count per period or the point in
                    // time (the standard uses one or the other).
                    let mut frequency = kind;
                    if let Some(count) = f.present("CountPerPeriod") {
                        let count = count.as_str().map_or(count.to_string(), str::to_string);
                        frequency.push_str(&format!(":{count}"));
                    }
                    if let Some(point) = f.opt_str("PointInTime")? {
                        frequency.push_str(&format!(":{point}"));
                    }
                    (frequency, m.opt_time("FinalPaymentDateTime")?)
                }
                None => {
                    return Err(r.bad(
                        "MandateRelatedInformation",
                        "is missing (it holds the frequency)",
                    ));
                }
            };
            let creditor = r.opt_obj("CreditorAccount")?;
            let reference = match r.opt_obj("RemittanceInformation")? {
                Some(ri) => ri
                    .array("Unstructured")?
                    .first()
                    .and_then(Value::as_str)
                    .map(str::to_string),
                None => None,
            };
            let id = match r.opt_string("StandingOrderId")? {
                Some(id) => id,
                None => derived_id(&[
                    Some(&account_id),
                    Some(&frequency),
                    reference.as_deref(),
                    match &creditor {
                        Some(c) => c.opt_str("Identification")?,
                        None => None,
                    },
                ]),
            };
            r.set_id(&id);
            let next = match r.opt_obj("NextPaymentAmount")? {
                Some(_) => Some(r.amount("NextPaymentAmount")?),
                None => None,
            };
            let record = Record::StandingOrder(StandingOrder {
                id: id.clone(),
                account_id: account_id.clone(),
                frequency,
                reference,
                status: r.opt_string("StandingOrderStatusCode")?,
                creditor_name: match &creditor {
                    Some(c) => c.opt_string("Name")?,
                    None => None,
                },
                creditor_account: match &creditor {
                    Some(c) => c.opt_string("Identification")?,
                    None => None,
                },
                next_payment_at: r.opt_time("NextPaymentDateTime")?,
                next_amount: next.as_ref().map(|(a, _)| negate(*a)),
                final_payment_at,
                currency: next.map(|(_, c)| c),
            });
            (id, observed, record)
        }
        other => return Err(format!("Open Banking has no {other} to map")),
    };
    let Some(modified) = modified else {
        return Err(format!("{data_type} {id}: no time to version it by"));
    };
    Ok(MappedRecord {
        source_record_id: id,
        source_modified_at: modified,
        deleted: false,
        record: Some(record),
    })
}

fn negate(amount: Decimal5) -> Decimal5 {
    Decimal5::from_scaled(-amount.scaled())
}

/// The standard's readers: amounts with their currency and sign.
trait BankFields<'a> {
    fn amount(&self, field: &str) -> Result<(Decimal5, String), MapError>;
    fn currency(&self, field: &str) -> Result<String, MapError>;
    fn signed_amount(&self, field: &str, indicator: &str) -> Result<(Decimal5, String), MapError>;
}

impl<'a> BankFields<'a> for Fields<'a> {
    /// `{"Amount": "12.34567", "Currency": "GBP"}`: exact at scale 5 (the
    /// standard's pattern allows no sign and at most five decimals).
    fn amount(&self, field: &str) -> Result<(Decimal5, String), MapError> {
        let money = self.obj(field)?;
        let text = money.str("Amount")?;
        let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
        let pattern_ok = (1..=13).contains(&whole.len())
            && whole.bytes().all(|b| b.is_ascii_digit())
            && frac.len() <= 5
            && frac.bytes().all(|b| b.is_ascii_digit())
            && frac.is_empty() != text.contains('.');
        if !pattern_ok {
            return Err(money.bad(
                "Amount",
                &format!("{text:?} is not an amount of up to 13 digits and 5 decimals"),
            ));
        }
        let amount: Decimal5 = text
            .parse()
            .map_err(|e: tributary_schemas::DecimalError| money.bad("Amount", &e.to_string()))?;
        Ok((amount, money.currency("Currency")?))
    }

    /// An ISO 4217 code (three capitals).
    fn currency(&self, field: &str) -> Result<String, MapError> {
        let currency = self.str(field)?;
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(self.bad(field, &format!("{currency:?} is not a currency")));
        }
        Ok(currency.to_string())
    }

    /// An amount signed by its credit/debit indicator: credit positive.
    fn signed_amount(&self, field: &str, indicator: &str) -> Result<(Decimal5, String), MapError> {
        let (amount, currency) = self.amount(field)?;
        match self.str(indicator)? {
            "Credit" => Ok((amount, currency)),
            "Debit" => Ok((negate(amount), currency)),
            other => Err(self.bad(indicator, &format!("is {other:?}, not Credit or Debit"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tx(amount: &str, indicator: &str) -> Value {
        json!({
            "AccountId": "22289", "TransactionId": "123", "CreditDebitIndicator": indicator,
            "Status": "BOOK", "BookingDateTime": "2026-11-30T10:00:00+00:00",
            "Amount": { "Amount": amount, "Currency": "GBP" },
        })
    }

    #[test]
    fn five_decimal_amounts_signed_by_the_indicator() {
        let map = |raw: &Value| match map_record(DataType::BankFeedTransaction, raw)?.record {
            Some(Record::BankFeedTransaction(t)) => Ok(t.amount.to_string()),
            other => panic!("{other:?}"),
        };
        assert_eq!(map(&tx("10.12345", "Credit")).unwrap(), "10.12345");
        assert_eq!(map(&tx("10.12345", "Debit")).unwrap(), "-10.12345");
        assert_eq!(
            map(&tx("9999999999999.99999", "Credit")).unwrap(),
            "9999999999999.99999"
        );
        for (bad, why) in [
            ("10.123456", "5 decimals"),
            ("-1.00", "5 decimals"),
            ("1e3", "5 decimals"),
            ("12345678901234", "5 decimals"),
        ] {
            let e: String = map(&tx(bad, "Credit")).unwrap_err();
            assert!(e.contains(why) && e.contains("123"), "{bad}: {e}");
        }
        assert!(
            map(&tx("1.00", "Sideways"))
                .unwrap_err()
                .contains("Credit or Debit")
        );
    }

    #[test]
    fn a_booked_version_supersedes_the_pending_one() {
        let pending = json!({
            "AccountId": "22289", "TransactionId": "t1", "CreditDebitIndicator": "Debit",
            "Status": "PDNG", "BookingDateTime": "2026-11-30T10:00:00Z",
            "Amount": { "Amount": "5.00", "Currency": "GBP" },
        });
        let mut booked = pending.clone();
        booked["Status"] = json!("BOOK");
        let p = map_record(DataType::BankFeedTransaction, &pending).unwrap();
        let b = map_record(DataType::BankFeedTransaction, &booked).unwrap();
        assert!(b.source_modified_at > p.source_modified_at);
        let mut no_id = pending.clone();
        no_id.as_object_mut().unwrap().remove("TransactionId");
        let a = map_record(DataType::BankFeedTransaction, &no_id).unwrap();
        let again = map_record(DataType::BankFeedTransaction, &no_id).unwrap();
        assert!(a.source_record_id.starts_with("derived-"));
        assert_eq!(a.source_record_id, again.source_record_id);
    }

    #[test]
    fn balances_are_one_record_per_account_type_and_day() {
        let raw = json!({
            "AccountId": "22289", "CreditDebitIndicator": "Debit", "Type": "ITAV",
            "DateTime": "2026-12-01T08:00:00+01:00",
            "Amount": { "Amount": "1230.00001", "Currency": "GBP" },
        });
        let m = map_record(DataType::BankBalance, &raw).unwrap();
        assert_eq!(m.source_record_id, "22289:ITAV:2026-12-01");
        let Some(Record::BankBalance(b)) = m.record else {
            panic!()
        };
        assert_eq!(b.amount.to_string(), "-1230.00001");
    }
}
