//! Xero records to the common data model. Pure: no I/O, no clock.
//!
//! Numbers arrive as strings of their exact digits (the fetch parses JSON
//! with `parse_json_exact`), so money is never a float. Dates arrive in
//! Xero's .NET form, `/Date(1539993600000+0000)/`: milliseconds since the
//! epoch in UTC, the offset only informative.
//!
//! Voided, deleted and archived records are flagged `deleted` and keep
//! their body, so a subscriber can still see what they were.

use serde_json::{Map, Value};
use tributary_connector_api::MappedRecord;
use tributary_schemas::model::*;
use tributary_schemas::{DataType, Date, Decimal, Record, Timestamp};

/// Set by the fetch on records the source gave no `UpdatedDateUTC`: when
/// Tributary saw them (the response's own time when it had one). Such a
/// record's version moves at every sync, which is safe: the newest wins.
pub const OBSERVED_AT: &str = "_tributary_observed_at";

/// Why one record could not be mapped, naming the field.
pub type MapError = String;

/// Maps one raw record fetched for `data_type`.
pub fn map_record(data_type: DataType, raw: &Value) -> Result<MappedRecord, MapError> {
    let Some(fields) = raw.as_object() else {
        return Err(format!("a {data_type} record is not a JSON object"));
    };
    let id_field = id_field(data_type)?;
    let id = match fields.get(id_field) {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        _ => return Err(format!("a {data_type} record has no {id_field}")),
    };
    let r = Fields {
        fields,
        data_type,
        id: &id,
    };
    let modified = match fields.get("UpdatedDateUTC") {
        Some(v) => r.timestamp_value("UpdatedDateUTC", v)?,
        None => match fields.get(OBSERVED_AT) {
            Some(Value::String(ms)) => Timestamp(
                ms.parse()
                    .map_err(|_| r.bad(OBSERVED_AT, "is not milliseconds"))?,
            ),
            _ => return Err(r.bad("UpdatedDateUTC", "is missing")),
        },
    };
    let status = r.opt_str("Status")?.unwrap_or_default();
    let mut deleted = matches!(status, "DELETED" | "VOIDED" | "ARCHIVED");
    let record = match data_type {
        DataType::Company => Record::Company(Company {
            id: id.clone(),
            name: r.str("Name")?.to_string(),
            legal_name: r.opt_text("LegalName")?,
            base_currency: r.str("BaseCurrency")?.to_string(),
            country: r.opt_text("CountryCode")?,
        }),
        DataType::Account => Record::Account(Account {
            id: id.clone(),
            code: r.opt_text("Code")?,
            name: r.str("Name")?.to_string(),
            account_type: r.str("Type")?.to_string(),
            status: r.opt_str("Status")?.unwrap_or("ACTIVE").to_string(),
            currency: r.opt_text("CurrencyCode")?,
            description: r.opt_text("Description")?,
        }),
        DataType::Customer | DataType::Supplier => {
            let (flag, what) = if data_type == DataType::Customer {
                ("IsCustomer", "customer")
            } else {
                ("IsSupplier", "supplier")
            };
            if r.opt_bool(flag)? == Some(false) {
                return Err(r.bad(flag, &format!("is false: the contact is not a {what}")));
            }
            let contact_status = r.opt_str("ContactStatus")?.unwrap_or("ACTIVE");
            deleted = matches!(contact_status, "ARCHIVED" | "GDPRREQUEST");
            let contact = Contact {
                id: id.clone(),
                name: r.str("Name")?.to_string(),
                email: r.opt_text("EmailAddress")?,
                phone: r.default_phone()?,
                status: contact_status.to_string(),
                currency: r.opt_text("DefaultCurrency")?,
            };
            if data_type == DataType::Customer {
                Record::Customer(contact)
            } else {
                Record::Supplier(contact)
            }
        }
        DataType::Invoice | DataType::Bill => {
            let kind = r.str("Type")?;
            let contact = r.obj("Contact")?;
            let party_id = contact.str("ContactID")?.to_string();
            let party_name = contact.opt_text("Name")?;
            let (number, issue_date, due_date, currency, reference, lines) = (
                r.opt_str("InvoiceNumber")?.unwrap_or_default().to_string(),
                r.date("Date")?,
                r.opt_date("DueDate")?,
                r.str("CurrencyCode")?.to_string(),
                r.opt_text("Reference")?,
                r.lines("LineItems")?,
            );
            let (subtotal, tax_total, total, amount_due) = (
                r.money_or_zero("SubTotal")?,
                r.money_or_zero("TotalTax")?,
                r.money("Total")?,
                r.money_or_zero("AmountDue")?,
            );
            let status = status.to_string();
            match (data_type, kind) {
                (DataType::Invoice, "ACCREC") => Record::Invoice(Invoice {
                    id: id.clone(),
                    number,
                    customer_id: party_id,
                    customer_name: party_name,
                    issue_date,
                    due_date,
                    currency,
                    status,
                    reference,
                    lines,
                    subtotal,
                    tax_total,
                    total,
                    amount_due,
                }),
                (DataType::Bill, "ACCPAY") => Record::Bill(Bill {
                    id: id.clone(),
                    number,
                    supplier_id: party_id,
                    supplier_name: party_name,
                    issue_date,
                    due_date,
                    currency,
                    status,
                    reference,
                    lines,
                    subtotal,
                    tax_total,
                    total,
                    amount_due,
                }),
                _ => return Err(r.bad("Type", &format!("is {kind:?}, not a {data_type} type"))),
            }
        }
        DataType::CreditNote => {
            let kind = match r.str("Type")? {
                "ACCRECCREDIT" => "sales",
                "ACCPAYCREDIT" => "purchase",
                other => return Err(r.bad("Type", &format!("is {other:?}"))),
            };
            let contact = r.obj("Contact")?;
            Record::CreditNote(CreditNote {
                id: id.clone(),
                number: r
                    .opt_str("CreditNoteNumber")?
                    .unwrap_or_default()
                    .to_string(),
                kind: kind.to_string(),
                contact_id: contact.str("ContactID")?.to_string(),
                contact_name: contact.opt_text("Name")?,
                issue_date: r.date("Date")?,
                currency: r.str("CurrencyCode")?.to_string(),
                status: status.to_string(),
                reference: r.opt_text("Reference")?,
                lines: r.lines("LineItems")?,
                subtotal: r.money_or_zero("SubTotal")?,
                tax_total: r.money_or_zero("TotalTax")?,
                total: r.money("Total")?,
                remaining_credit: r.money_or_zero("RemainingCredit")?,
            })
        }
        DataType::Payment => {
            let invoice = r.obj("Invoice")?;
            let document_id = invoice.str("InvoiceID")?.to_string();
            let (invoice_id, bill_id) = match invoice.opt_str("Type")? {
                Some("ACCPAY") | Some("ACCPAYCREDIT") => (None, Some(document_id)),
                _ => (Some(document_id), None),
            };
            Record::Payment(Payment {
                id: id.clone(),
                invoice_id,
                bill_id,
                account_id: r.obj("Account")?.str("AccountID")?.to_string(),
                date: r.date("Date")?,
                currency: invoice.str("CurrencyCode")?.to_string(),
                amount: r.money("Amount")?,
                reference: r.opt_text("Reference")?,
            })
        }
        DataType::BankTransaction => {
            let contact = r.opt_obj("Contact")?;
            let contact_name = match &contact {
                Some(c) => c.opt_text("Name")?,
                None => None,
            };
            Record::BankTransaction(BankTransaction {
                id: id.clone(),
                account_id: r.obj("BankAccount")?.str("AccountID")?.to_string(),
                date: r.date("Date")?,
                description: r
                    .opt_text("Reference")?
                    .or(contact_name)
                    .unwrap_or_default(),
                transaction_type: r.str("Type")?.to_string(),
                amount: r.money("Total")?,
                currency: r.str("CurrencyCode")?.to_string(),
                contact_id: match &contact {
                    Some(c) => c.opt_text("ContactID")?,
                    None => None,
                },
                reconciled: r.opt_bool("IsReconciled")?.unwrap_or(false),
            })
        }
        DataType::JournalEntry => Record::JournalEntry(JournalEntry {
            id: id.clone(),
            // Manual journals have no number in Xero.
            number: String::new(),
            date: r.date("Date")?,
            description: r.opt_str("Narration")?.unwrap_or_default().to_string(),
            lines: r
                .array("JournalLines")?
                .iter()
                .enumerate()
                .map(|(n, line)| {
                    r.nested(line, &format!("JournalLines[{n}]"))?
                        .journal_line()
                })
                .collect::<Result<_, _>>()?,
        }),
        DataType::Item => {
            let price = |details: &str| -> Result<Option<Decimal>, MapError> {
                match r.opt_obj(details)? {
                    Some(d) => d.opt_money("UnitPrice"),
                    None => Ok(None),
                }
            };
            Record::Item(Item {
                id: id.clone(),
                code: r.str("Code")?.to_string(),
                name: r.opt_text("Name")?,
                description: r.opt_text("Description")?,
                sale_unit_price: price("SalesDetails")?,
                purchase_unit_price: price("PurchaseDetails")?,
                is_sold: r.opt_bool("IsSold")?.unwrap_or(false),
                is_purchased: r.opt_bool("IsPurchased")?.unwrap_or(false),
                is_tracked_as_inventory: r.opt_bool("IsTrackedAsInventory")?.unwrap_or(false),
            })
        }
        other => return Err(format!("Xero has no {other} to map")),
    };
    Ok(MappedRecord {
        source_record_id: id,
        source_modified_at: modified,
        deleted,
        record: Some(record),
    })
}

/// The field holding a record's id, per data type.
pub fn id_field(data_type: DataType) -> Result<&'static str, MapError> {
    Ok(match data_type {
        DataType::Company => "OrganisationID",
        DataType::Account => "AccountID",
        DataType::Customer | DataType::Supplier => "ContactID",
        DataType::Invoice | DataType::Bill => "InvoiceID",
        DataType::CreditNote => "CreditNoteID",
        DataType::Payment => "PaymentID",
        DataType::BankTransaction => "BankTransactionID",
        DataType::JournalEntry => "ManualJournalID",
        DataType::Item => "ItemID",
        other => return Err(format!("Xero has no {other} to map")),
    })
}

/// Parses Xero's `/Date(1539993600000+0000)/` (offset optional, millis may
/// be negative) or an RFC 3339 timestamp.
pub fn parse_xero_timestamp(text: &str) -> Option<Timestamp> {
    if let Some(inner) = text
        .strip_prefix("/Date(")
        .and_then(|t| t.strip_suffix(")/"))
    {
        // The offset only says which zone the author was in: the millis are UTC.
        let digits_end = inner
            .char_indices()
            .skip(1)
            .find(|(_, c)| *c == '+' || *c == '-')
            .map_or(inner.len(), |(i, _)| i);
        let (millis, offset) = inner.split_at(digits_end);
        let offset_ok = offset.is_empty()
            || (offset.len() == 5 && offset[1..].bytes().all(|b| b.is_ascii_digit()));
        return match (millis.parse::<i64>(), offset_ok) {
            (Ok(ms), true) => Some(Timestamp(ms)),
            _ => None,
        };
    }
    Timestamp::parse(text).ok().or_else(|| {
        // `2018-10-20T00:00:00`, Xero's DateString form, is UTC without a zone.
        Timestamp::parse(&format!("{text}Z")).ok()
    })
}

/// Parses one exact number into a [`Decimal`]; trailing zeros after the
/// point beyond four digits are dropped (they change nothing), anything
/// else beyond four digits is refused rather than rounded.
pub fn parse_money(text: &str) -> Option<Decimal> {
    let trimmed = match text.split_once('.') {
        Some((whole, frac)) if frac.len() > 4 => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                whole.to_string()
            } else {
                format!("{whole}.{frac}")
            }
        }
        _ => text.to_string(),
    };
    trimmed.parse().ok()
}

/// One JSON object of a record being mapped, with errors that name the
/// record and the field.
struct Fields<'a> {
    fields: &'a Map<String, Value>,
    data_type: DataType,
    id: &'a str,
}

impl<'a> Fields<'a> {
    fn bad(&self, field: &str, why: &str) -> MapError {
        format!("{} {}: {field} {why}", self.data_type, self.id)
    }

    fn nested(&self, value: &'a Value, path: &str) -> Result<Fields<'a>, MapError> {
        match value.as_object() {
            Some(fields) => Ok(Fields {
                fields,
                data_type: self.data_type,
                id: self.id,
            }),
            None => Err(self.bad(path, "is not an object")),
        }
    }

    fn present(&self, field: &str) -> Option<&'a Value> {
        self.fields.get(field).filter(|v| !v.is_null())
    }

    fn opt_str(&self, field: &str) -> Result<Option<&'a str>, MapError> {
        match self.present(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.bad(field, "is not a string")),
        }
    }

    fn str(&self, field: &str) -> Result<&'a str, MapError> {
        self.opt_str(field)?
            .ok_or_else(|| self.bad(field, "is missing"))
    }

    /// A string where Xero's empty string means "none".
    fn opt_text(&self, field: &str) -> Result<Option<String>, MapError> {
        Ok(self
            .opt_str(field)?
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string))
    }

    fn opt_bool(&self, field: &str) -> Result<Option<bool>, MapError> {
        match self.present(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            // Xero writes some flags as strings ("false").
            Some(Value::String(s)) if s == "true" => Ok(Some(true)),
            Some(Value::String(s)) if s == "false" => Ok(Some(false)),
            Some(_) => Err(self.bad(field, "is not true or false")),
        }
    }

    fn opt_obj(&self, field: &str) -> Result<Option<Fields<'a>>, MapError> {
        match self.present(field) {
            None => Ok(None),
            Some(v) => self.nested(v, field).map(Some),
        }
    }

    fn obj(&self, field: &str) -> Result<Fields<'a>, MapError> {
        self.opt_obj(field)?
            .ok_or_else(|| self.bad(field, "is missing"))
    }

    fn array(&self, field: &str) -> Result<&'a [Value], MapError> {
        match self.present(field) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(_) => Err(self.bad(field, "is not a list")),
        }
    }

    fn opt_money(&self, field: &str) -> Result<Option<Decimal>, MapError> {
        match self.present(field) {
            None => Ok(None),
            Some(Value::String(s)) => parse_money(s)
                .map(Some)
                .ok_or_else(|| self.bad(field, &format!("is not an exact amount: {s:?}"))),
            Some(_) => Err(self.bad(field, "is not a number")),
        }
    }

    fn money(&self, field: &str) -> Result<Decimal, MapError> {
        self.opt_money(field)?
            .ok_or_else(|| self.bad(field, "is missing"))
    }

    fn money_or_zero(&self, field: &str) -> Result<Decimal, MapError> {
        Ok(self.opt_money(field)?.unwrap_or(Decimal::ZERO))
    }

    fn timestamp_value(&self, field: &str, value: &Value) -> Result<Timestamp, MapError> {
        match value {
            Value::String(s) => parse_xero_timestamp(s)
                .ok_or_else(|| self.bad(field, &format!("is not a date: {s:?}"))),
            _ => Err(self.bad(field, "is not a date")),
        }
    }

    fn opt_date(&self, field: &str) -> Result<Option<Date>, MapError> {
        match self.present(field) {
            None => Ok(None),
            Some(v) => Ok(Some(self.timestamp_value(field, v)?.date())),
        }
    }

    fn date(&self, field: &str) -> Result<Date, MapError> {
        self.opt_date(field)?
            .ok_or_else(|| self.bad(field, "is missing"))
    }

    fn lines(&self, field: &str) -> Result<Vec<DocumentLine>, MapError> {
        self.array(field)?
            .iter()
            .enumerate()
            .map(|(n, line)| {
                let l = self.nested(line, &format!("{field}[{n}]"))?;
                Ok(DocumentLine {
                    description: l.opt_str("Description")?.unwrap_or_default().to_string(),
                    quantity: l.money_or_zero("Quantity")?,
                    unit_amount: l.money_or_zero("UnitAmount")?,
                    account_id: match l.opt_text("AccountID")? {
                        Some(id) => Some(id),
                        None => l.opt_text("AccountCode")?,
                    },
                    tax_amount: l.money_or_zero("TaxAmount")?,
                    line_amount: l.money_or_zero("LineAmount")?,
                })
            })
            .collect()
    }

    /// A manual journal line: a positive `LineAmount` is a debit, a
    /// negative one a credit.
    fn journal_line(&self) -> Result<JournalLine, MapError> {
        let amount = self.money("LineAmount")?;
        let account_id = match self.opt_text("AccountID")? {
            Some(id) => id,
            None => self
                .opt_text("AccountCode")?
                .ok_or_else(|| self.bad("JournalLines AccountID", "is missing"))?,
        };
        let (debit, credit) = if amount >= Decimal::ZERO {
            (amount, Decimal::ZERO)
        } else {
            (
                Decimal::ZERO,
                Decimal::ZERO
                    .checked_sub(amount)
                    .ok_or_else(|| self.bad("LineAmount", "is out of range"))?,
            )
        };
        Ok(JournalLine {
            account_id,
            description: self.opt_text("Description")?,
            debit,
            credit,
        })
    }

    /// The `DEFAULT` phone as people write it: country, area, number.
    fn default_phone(&self) -> Result<Option<String>, MapError> {
        for (n, phone) in self.array("Phones")?.iter().enumerate() {
            let p = self.nested(phone, &format!("Phones[{n}]"))?;
            if p.opt_str("PhoneType")? != Some("DEFAULT") {
                continue;
            }
            let Some(number) = p.opt_text("PhoneNumber")? else {
                return Ok(None);
            };
            let parts: Vec<String> = [
                p.opt_text("PhoneCountryCode")?,
                p.opt_text("PhoneAreaCode")?,
            ]
            .into_iter()
            .flatten()
            .chain([number])
            .collect();
            return Ok(Some(parts.join(" ")));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xero_dates_in_every_form() {
        assert_eq!(
            parse_xero_timestamp("/Date(1539993600000+0000)/"),
            Some(Timestamp(1_539_993_600_000))
        );
        assert_eq!(
            parse_xero_timestamp("/Date(1552326816230)/"),
            Some(Timestamp(1_552_326_816_230))
        );
        // The offset is informative: the millis are already UTC.
        assert_eq!(
            parse_xero_timestamp("/Date(1539993600000+1300)/"),
            Some(Timestamp(1_539_993_600_000))
        );
        assert_eq!(
            parse_xero_timestamp("/Date(-86400000+0000)/"),
            Some(Timestamp(-86_400_000))
        );
        assert_eq!(
            parse_xero_timestamp("2018-11-02T16:31:30Z"),
            Some(Timestamp(1_541_176_290_000))
        );
        assert_eq!(
            parse_xero_timestamp("2018-10-20T00:00:00"),
            Some(Timestamp(1_539_993_600_000))
        );
        for bad in [
            "/Date()/",
            "/Date(abc)/",
            "/Date(1539993600000+00)/",
            "/Date(1539993600000",
            "yesterday",
            "",
        ] {
            assert_eq!(parse_xero_timestamp(bad), None, "{bad}");
        }
        assert_eq!(Timestamp(-1).date(), Date(-1));
    }

    #[test]
    fn money_is_exact_or_refused() {
        assert_eq!(parse_money("46.1").unwrap().to_string(), "46.10");
        assert_eq!(
            parse_money("12345678901234567.8901").unwrap().to_string(),
            "12345678901234567.8901"
        );
        assert_eq!(parse_money("0.100000").unwrap().to_string(), "0.10");
        assert_eq!(parse_money("-0.0001").unwrap().to_string(), "-0.0001");
        assert!(parse_money("0.12345").is_none());
        assert!(parse_money("1e3").is_none());
        assert!(parse_money("NaN").is_none());
    }
}
