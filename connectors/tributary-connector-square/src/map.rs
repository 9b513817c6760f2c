//! Square's records into the common data model. Pure: no I/O, no clock
//! (records without `updated_at` carry the time they were observed, added
//! by the fetch).

use serde_json::Value;
use tributary_connector_api::MappedRecord;
use tributary_connector_api::fields::Fields;
use tributary_schemas::model::*;
use tributary_schemas::{DataType, Date, Decimal, Record, Timestamp};

/// Why a record could not be mapped, naming the record and the field.
pub use tributary_connector_api::fields::MapError;

/// Set by the fetch on records without `updated_at` (locations): the
/// time of the answer, in milliseconds, as their version.
pub const OBSERVED_AT: &str = "tributary_observed_at";

/// Adds [`OBSERVED_AT`] to a record that has no `updated_at`.
pub fn observed(mut record: Value, now: Timestamp) -> Value {
    if let Some(fields) = record.as_object_mut()
        && !fields.contains_key("updated_at")
    {
        fields.insert(
            OBSERVED_AT.to_string(),
            Value::String(now.millis().to_string()),
        );
    }
    record
}

/// Digits after the point of a currency's minor unit (ISO 4217): 2 unless
/// listed here.
pub fn currency_exponent(currency: &str) -> Option<u32> {
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    Some(match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        "CLF" | "UYW" => 4,
        _ => 2,
    })
}

/// Maps one raw Square record of `data_type`.
pub fn map_record(data_type: DataType, raw: &Value) -> Result<MappedRecord, MapError> {
    let Some(fields) = raw.as_object() else {
        return Err(format!("{data_type}: the record is not an object"));
    };
    let id_field = if data_type == DataType::Dispute && !fields.contains_key("id") {
        "dispute_id"
    } else {
        "id"
    };
    let id = match fields.get(id_field) {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        _ => return Err(format!("{data_type}: the record has no {id_field}")),
    };
    let r = Fields::of(raw, data_type, &id)?;
    let modified = match (r.opt_time("updated_at")?, r.opt_str(OBSERVED_AT)?) {
        (Some(t), _) => t,
        (None, Some(ms)) => ms
            .parse()
            .map(Timestamp)
            .map_err(|_| r.bad(OBSERVED_AT, "is not a time"))?,
        (None, None) => return Err(r.bad("updated_at", "is missing")),
    };
    let mut deleted = false;
    let record = match data_type {
        DataType::Location => Record::Location(Location {
            id: id.clone(),
            name: r.str("name")?.to_string(),
            business_name: r.opt_string("business_name")?,
            status: r.opt_string("status")?.unwrap_or_default(),
            currency: r.opt_string("currency")?,
            country: r.opt_string("country")?,
            timezone: r.opt_string("timezone")?,
            address: match r.opt_obj("address")? {
                Some(a) => a.address()?,
                None => None,
            },
            created_at: r.opt_time("created_at")?,
        }),
        DataType::Customer => {
            let person = [r.opt_str("given_name")?, r.opt_str("family_name")?]
                .into_iter()
                .flatten()
                .filter(|s| !s.trim().is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            let name = [
                Some(person.as_str()),
                r.opt_str("company_name")?,
                r.opt_str("nickname")?,
                r.opt_str("email_address")?,
                r.opt_str("phone_number")?,
            ]
            .into_iter()
            .flatten()
            .find(|s| !s.trim().is_empty())
            .unwrap_or(&id)
            .to_string();
            Record::Customer(Contact {
                id: id.clone(),
                name,
                email: r.opt_string("email_address")?,
                phone: r.opt_string("phone_number")?,
                status: "ACTIVE".into(),
                currency: None,
            })
        }
        DataType::Product => {
            let kind = r.str("type")?;
            if kind != "ITEM" {
                return Err(r.bad("type", &format!("is {kind:?}, not ITEM")));
            }
            deleted = r.opt_bool("is_deleted")?.unwrap_or(false);
            let item = r.obj("item_data")?;
            let category_id = match item.opt_string("category_id")? {
                Some(c) => Some(c),
                None => match item.array("categories")?.first() {
                    Some(first) => item.nested(first, "categories[0]")?.opt_string("id")?,
                    None => None,
                },
            };
            Record::Product(Product {
                id: id.clone(),
                name: item.str("name")?.to_string(),
                description: match item.opt_string("description_plaintext")? {
                    Some(d) => Some(d),
                    None => item.opt_string("description")?,
                },
                category_id,
                variants: item
                    .array("variations")?
                    .iter()
                    .enumerate()
                    .map(|(n, v)| item.nested(v, &format!("variations[{n}]"))?.variant())
                    .collect::<Result<_, _>>()?,
                archived: item.opt_bool("is_archived")?.unwrap_or(false),
            })
        }
        DataType::Order => {
            let total = r.money("total_money")?;
            let currency = total.1.clone();
            let in_currency = |field: &str, f: &Fields<'_>| -> Result<Decimal, MapError> {
                f.money_in(field, &currency)
            };
            Record::Order(Order {
                id: id.clone(),
                location_id: r.str("location_id")?.to_string(),
                customer_id: r.opt_string("customer_id")?,
                reference: r.opt_string("reference_id")?,
                state: r.opt_string("state")?.unwrap_or_default(),
                currency: currency.clone(),
                created_at: r.opt_time("created_at")?,
                closed_at: r.opt_time("closed_at")?,
                lines: r
                    .array("line_items")?
                    .iter()
                    .enumerate()
                    .map(|(n, l)| {
                        let line = r.nested(l, &format!("line_items[{n}]"))?;
                        Ok(OrderLine {
                            id: line.opt_string("uid")?.unwrap_or_else(|| n.to_string()),
                            name: line.opt_string("name")?,
                            variant_id: line.opt_string("catalog_object_id")?,
                            quantity: line.quantity("quantity")?,
                            unit_price: match line.opt_money("base_price_money")? {
                                Some(_) => Some(in_currency("base_price_money", &line)?),
                                None => None,
                            },
                            discount_amount: in_currency("total_discount_money", &line)?,
                            tax_amount: in_currency("total_tax_money", &line)?,
                            total: in_currency("total_money", &line)?,
                        })
                    })
                    .collect::<Result<_, MapError>>()?,
                discount_total: in_currency("total_discount_money", &r)?,
                tax_total: in_currency("total_tax_money", &r)?,
                tip_total: in_currency("total_tip_money", &r)?,
                total: total.0,
            })
        }
        DataType::CommercePayment => {
            let (amount, currency) = r.money("amount_money")?;
            let tip = r.money_in("tip_money", &currency)?;
            let total = match r.opt_money("total_money")? {
                Some(_) => r.money_in("total_money", &currency)?,
                None => amount
                    .checked_add(tip)
                    .ok_or_else(|| r.bad("amount_money", "is too large"))?,
            };
            Record::CommercePayment(CommercePayment {
                id: id.clone(),
                location_id: r.opt_string("location_id")?,
                order_id: r.opt_string("order_id")?,
                customer_id: r.opt_string("customer_id")?,
                status: r.opt_string("status")?.unwrap_or_default(),
                source_type: r.opt_string("source_type")?,
                fee_total: r.fees("processing_fee", &currency)?,
                refunded_amount: r.money_in("refunded_money", &currency)?,
                currency,
                amount,
                tip_amount: tip,
                total,
                created_at: r.opt_time("created_at")?,
                reference: r.opt_string("reference_id")?,
            })
        }
        DataType::Refund => {
            let (amount, currency) = r.money("amount_money")?;
            Record::Refund(Refund {
                id: id.clone(),
                payment_id: r.opt_string("payment_id")?,
                order_id: r.opt_string("order_id")?,
                location_id: r.opt_string("location_id")?,
                status: r.opt_string("status")?.unwrap_or_default(),
                fee_total: r.fees("processing_fee", &currency)?,
                currency,
                amount,
                reason: r.opt_string("reason")?,
                created_at: r.opt_time("created_at")?,
            })
        }
        DataType::Payout => {
            let (amount, currency) = r.money("amount_money")?;
            let destination = r.opt_obj("destination")?;
            let fees = r
                .array("payout_fee")?
                .iter()
                .enumerate()
                .map(|(n, f)| {
                    let fee = r.nested(f, &format!("payout_fee[{n}]"))?;
                    let (amount, fee_currency) = fee.money("amount_money")?;
                    Ok(PayoutFee {
                        fee_type: fee.opt_string("type")?,
                        amount,
                        currency: fee_currency,
                        effective_at: fee.opt_time("effective_at")?,
                    })
                })
                .collect::<Result<Vec<_>, MapError>>()?;
            Record::Payout(Payout {
                id: id.clone(),
                location_id: r.opt_string("location_id")?,
                status: r.opt_string("status")?.unwrap_or_default(),
                fee_total: r.fees("payout_fee", &currency)?,
                currency,
                amount,
                arrival_date: match r.opt_str("arrival_date")? {
                    Some(d) => {
                        Some(Date::parse(d).map_err(|e| r.bad("arrival_date", &e.to_string()))?)
                    }
                    None => None,
                },
                destination_type: match &destination {
                    Some(d) => d.opt_string("type")?,
                    None => None,
                },
                destination_id: match &destination {
                    Some(d) => d.opt_string("id")?,
                    None => None,
                },
                fees,
                created_at: r.opt_time("created_at")?,
            })
        }
        DataType::Dispute => {
            let (amount, currency) = r.money("amount_money")?;
            Record::Dispute(Dispute {
                id: id.clone(),
                payment_id: match r.opt_obj("disputed_payment")? {
                    Some(p) => p.opt_string("payment_id")?,
                    None => None,
                },
                location_id: r.opt_string("location_id")?,
                state: r.opt_string("state")?.unwrap_or_default(),
                reason: r.opt_string("reason")?,
                currency,
                amount,
                card_brand: r.opt_string("card_brand")?,
                due_at: r.opt_time("due_at")?,
                reported_at: r.opt_time("reported_at")?,
            })
        }
        other => return Err(format!("Square has no {other} to map")),
    };
    Ok(MappedRecord {
        source_record_id: id,
        source_modified_at: modified,
        deleted,
        record: Some(record),
    })
}

/// Square's readers: money in minor units, quantities, catalogue
/// variations, addresses.
trait SquareFields<'a> {
    fn opt_money(&self, field: &str) -> Result<Option<(Decimal, String)>, MapError>;
    fn money(&self, field: &str) -> Result<(Decimal, String), MapError>;
    fn money_in(&self, field: &str, currency: &str) -> Result<Decimal, MapError>;
    fn fees(&self, field: &str, currency: &str) -> Result<Decimal, MapError>;
    fn quantity(&self, field: &str) -> Result<Decimal, MapError>;
    fn variant(&self) -> Result<ProductVariant, MapError>;
    fn address(&self) -> Result<Option<String>, MapError>;
}

impl<'a> SquareFields<'a> for Fields<'a> {
    /// A `Money` object (`{"amount": <smallest units>, "currency": "USD"}`)
    /// as an exact decimal and its currency.
    fn opt_money(&self, field: &str) -> Result<Option<(Decimal, String)>, MapError> {
        let Some(money) = self.opt_obj(field)? else {
            return Ok(None);
        };
        let currency = money.str("currency")?;
        let exponent = currency_exponent(currency)
            .ok_or_else(|| money.bad("currency", &format!("{currency:?} is not a currency")))?;
        let units: i64 = match money.present("amount") {
            Some(Value::String(s)) => s.parse().ok(),
            Some(Value::Number(n)) => n.as_i64(),
            _ => return Err(money.bad("amount", "is missing")),
        }
        .ok_or_else(|| money.bad("amount", "is not a whole number of minor units"))?;
        let amount = Decimal::from_minor_units(units, exponent)
            .ok_or_else(|| money.bad("amount", "is too large"))?;
        Ok(Some((amount, currency.to_string())))
    }

    fn money(&self, field: &str) -> Result<(Decimal, String), MapError> {
        self.opt_money(field)?
            .ok_or_else(|| self.bad(field, "is missing"))
    }

    /// An amount in `currency`, zero when absent; another currency is an
    /// error, never converted.
    fn money_in(&self, field: &str, currency: &str) -> Result<Decimal, MapError> {
        match self.opt_money(field)? {
            None => Ok(Decimal::ZERO),
            Some((amount, c)) if c == currency => Ok(amount),
            Some((_, c)) => Err(self.bad(field, &format!("is in {c}, not {currency}"))),
        }
    }

    /// The sum of a list of fees (`[{"amount_money": ...}]`) in `currency`.
    fn fees(&self, field: &str, currency: &str) -> Result<Decimal, MapError> {
        self.array(field)?
            .iter()
            .enumerate()
            .try_fold(Decimal::ZERO, |sum, (n, fee)| {
                let fee = self.nested(fee, &format!("{field}[{n}]"))?;
                sum.checked_add(fee.money_in("amount_money", currency)?)
                    .ok_or_else(|| self.bad(field, "add up to too much"))
            })
    }

    /// A decimal quantity written as a string (`"1.5"`).
    fn quantity(&self, field: &str) -> Result<Decimal, MapError> {
        let text = self.str(field)?;
        text.parse()
            .map_err(|e: tributary_schemas::DecimalError| self.bad(field, &e.to_string()))
    }

    fn variant(&self) -> Result<ProductVariant, MapError> {
        let id = self.str("id")?.to_string();
        let data = self.opt_obj("item_variation_data")?;
        let (price, currency) = match &data {
            Some(d) => match d.opt_money("price_money")? {
                Some((p, c)) => (Some(p), Some(c)),
                None => (None, None),
            },
            None => (None, None),
        };
        Ok(ProductVariant {
            id,
            name: match &data {
                Some(d) => d.opt_string("name")?,
                None => None,
            },
            sku: match &data {
                Some(d) => d.opt_string("sku")?,
                None => None,
            },
            price,
            currency,
        })
    }

    /// A Square `Address` on one line.
    fn address(&self) -> Result<Option<String>, MapError> {
        let mut parts = Vec::new();
        for field in [
            "address_line_1",
            "address_line_2",
            "address_line_3",
            "locality",
            "administrative_district_level_1",
            "postal_code",
            "country",
        ] {
            if let Some(part) = self.opt_str(field)?.filter(|p| !p.trim().is_empty()) {
                parts.push(part);
            }
        }
        Ok((!parts.is_empty()).then(|| parts.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_by_currency_exponent() {
        let record = |amount: Value, currency: &str| {
            serde_json::json!({
                "id": "p1", "updated_at": "2026-01-01T00:00:00Z",
                "amount_money": { "amount": amount, "currency": currency },
            })
        };
        let amount_of =
            |raw: &Value| match map_record(DataType::CommercePayment, raw).map(|m| m.record) {
                Ok(Some(Record::CommercePayment(p))) => Ok(p.amount.to_string()),
                Ok(other) => panic!("{other:?}"),
                Err(e) => Err(e),
            };
        assert_eq!(amount_of(&record("1999".into(), "USD")).unwrap(), "19.99");
        assert_eq!(amount_of(&record(1999.into(), "JPY")).unwrap(), "1999.00");
        assert_eq!(amount_of(&record("-1999".into(), "KWD")).unwrap(), "-1.999");
        assert_eq!(
            amount_of(&record("9223372036854775807".into(), "USD")).unwrap(),
            "92233720368547758.07"
        );
        for (bad, currency, why) in [
            (Value::from("19.99"), "USD", "whole number"),
            (Value::from(1), "usd", "not a currency"),
            (Value::from("99999999999999999999"), "USD", "whole number"),
        ] {
            let e = amount_of(&record(bad, currency)).unwrap_err();
            assert!(e.contains(why) && e.contains("p1"), "{e}");
        }
    }
}
