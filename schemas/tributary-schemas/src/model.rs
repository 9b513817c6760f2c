//! Records of the common data model. Field for field these match the
//! `record` of the event schemas in `avro/`; the tests hold them together.

use serde::{Deserialize, Serialize};

use crate::{Date, Decimal, Timestamp};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Company {
    pub id: String,
    pub name: String,
    pub legal_name: Option<String>,
    pub base_currency: String,
    pub country: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    pub id: String,
    pub company_id: String,
    pub source: String,
    pub status: crate::ConnectionStatus,
    pub status_reason: Option<String>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    pub code: Option<String>,
    pub name: String,
    #[serde(rename = "type")]
    pub account_type: String,
    pub status: String,
    pub currency: Option<String>,
    pub description: Option<String>,
}

/// A customer or a supplier: the two have the same shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub status: String,
    pub currency: Option<String>,
}

pub type Customer = Contact;
pub type Supplier = Contact;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentLine {
    pub description: String,
    pub quantity: Decimal,
    pub unit_amount: Decimal,
    pub account_id: Option<String>,
    pub tax_amount: Decimal,
    pub line_amount: Decimal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invoice {
    pub id: String,
    pub number: String,
    pub customer_id: String,
    pub customer_name: Option<String>,
    pub issue_date: Date,
    pub due_date: Option<Date>,
    pub currency: String,
    pub status: String,
    pub reference: Option<String>,
    pub lines: Vec<DocumentLine>,
    pub subtotal: Decimal,
    pub tax_total: Decimal,
    pub total: Decimal,
    pub amount_due: Decimal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bill {
    pub id: String,
    pub number: String,
    pub supplier_id: String,
    pub supplier_name: Option<String>,
    pub issue_date: Date,
    pub due_date: Option<Date>,
    pub currency: String,
    pub status: String,
    pub reference: Option<String>,
    pub lines: Vec<DocumentLine>,
    pub subtotal: Decimal,
    pub tax_total: Decimal,
    pub total: Decimal,
    pub amount_due: Decimal,
}

/// A credit note, sales (`kind` = `sales`, to a customer) or purchase
/// (`kind` = `purchase`, from a supplier).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreditNote {
    pub id: String,
    pub number: String,
    pub kind: String,
    pub contact_id: String,
    pub contact_name: Option<String>,
    pub issue_date: Date,
    pub currency: String,
    pub status: String,
    pub reference: Option<String>,
    pub lines: Vec<DocumentLine>,
    pub subtotal: Decimal,
    pub tax_total: Decimal,
    pub total: Decimal,
    pub remaining_credit: Decimal,
}

/// A product or service the company sells or buys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub id: String,
    pub code: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub sale_unit_price: Option<Decimal>,
    pub purchase_unit_price: Option<Decimal>,
    pub is_sold: bool,
    pub is_purchased: bool,
    pub is_tracked_as_inventory: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    pub id: String,
    pub invoice_id: Option<String>,
    pub bill_id: Option<String>,
    pub account_id: String,
    pub date: Date,
    pub currency: String,
    pub amount: Decimal,
    pub reference: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BankTransaction {
    pub id: String,
    pub account_id: String,
    pub date: Date,
    pub description: String,
    #[serde(rename = "type")]
    pub transaction_type: String,
    pub amount: Decimal,
    pub currency: String,
    pub contact_id: Option<String>,
    pub reconciled: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalLine {
    pub account_id: String,
    pub description: Option<String>,
    pub debit: Decimal,
    pub credit: Decimal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub id: String,
    pub number: String,
    pub date: Date,
    pub description: String,
    pub lines: Vec<JournalLine>,
}

impl JournalEntry {
    /// Total debits equal total credits.
    pub fn is_balanced(&self) -> bool {
        let sum = |f: fn(&JournalLine) -> Decimal| {
            self.lines
                .iter()
                .try_fold(Decimal::ZERO, |acc, l| acc.checked_add(f(l)))
        };
        matches!((sum(|l| l.debit), sum(|l| l.credit)), (Some(d), Some(c)) if d == c)
    }
}
