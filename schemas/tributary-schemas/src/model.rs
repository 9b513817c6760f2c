//! Records of the common data model. Field for field these match the
//! `record` of the event schemas in `avro/`; the tests hold them together.

use serde::{Deserialize, Serialize};

use crate::{Date, Decimal, Decimal5, Timestamp};

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

// Commerce: what a point of sale or online shop records. Customers of a
// commerce source are `customers` (the same record as an accounting
// customer); the types below have no accounting equivalent. Amounts are
// [`Decimal`] (scale 4), which holds every currency's minor unit exactly.

/// A shop, till or site where the business sells.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub id: String,
    pub name: String,
    pub business_name: Option<String>,
    pub status: String,
    pub currency: Option<String>,
    pub country: Option<String>,
    pub timezone: Option<String>,
    pub address: Option<String>,
    pub created_at: Option<Timestamp>,
}

/// One sellable variant of a product (a size, a colour), with its price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductVariant {
    pub id: String,
    pub name: Option<String>,
    pub sku: Option<String>,
    pub price: Option<Decimal>,
    pub currency: Option<String>,
}

/// Something a commerce source sells, with its variants. Accounting
/// sources' products and services are `items`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub category_id: Option<String>,
    pub variants: Vec<ProductVariant>,
    pub archived: bool,
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderLine {
    pub id: String,
    pub name: Option<String>,
    pub variant_id: Option<String>,
    pub quantity: Decimal,
    pub unit_price: Option<Decimal>,
    pub discount_amount: Decimal,
    pub tax_amount: Decimal,
    pub total: Decimal,
}

/// A sale: what a customer bought, at a location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub id: String,
    pub location_id: String,
    pub customer_id: Option<String>,
    pub reference: Option<String>,
    pub state: String,
    pub currency: String,
    pub created_at: Option<Timestamp>,
    pub closed_at: Option<Timestamp>,
    pub lines: Vec<OrderLine>,
    pub discount_total: Decimal,
    pub tax_total: Decimal,
    pub tip_total: Decimal,
    pub total: Decimal,
}

/// Money taken for a sale (card, cash, wallet...). Accounting payments
/// against invoices and bills are `payments`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommercePayment {
    pub id: String,
    pub location_id: Option<String>,
    pub order_id: Option<String>,
    pub customer_id: Option<String>,
    pub status: String,
    pub source_type: Option<String>,
    pub currency: String,
    pub amount: Decimal,
    pub tip_amount: Decimal,
    pub total: Decimal,
    pub fee_total: Decimal,
    pub refunded_amount: Decimal,
    pub created_at: Option<Timestamp>,
    pub reference: Option<String>,
}

/// Money given back against a commerce payment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refund {
    pub id: String,
    pub payment_id: Option<String>,
    pub order_id: Option<String>,
    pub location_id: Option<String>,
    pub status: String,
    pub currency: String,
    pub amount: Decimal,
    pub fee_total: Decimal,
    pub reason: Option<String>,
    pub created_at: Option<Timestamp>,
}

/// A fee taken from a payout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PayoutFee {
    #[serde(rename = "type")]
    pub fee_type: Option<String>,
    pub amount: Decimal,
    pub currency: String,
    pub effective_at: Option<Timestamp>,
}

/// Money the commerce source sent to (or took from) the business's bank.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payout {
    pub id: String,
    pub location_id: Option<String>,
    pub status: String,
    pub currency: String,
    pub amount: Decimal,
    pub arrival_date: Option<Date>,
    pub destination_type: Option<String>,
    pub destination_id: Option<String>,
    pub fees: Vec<PayoutFee>,
    pub fee_total: Decimal,
    pub created_at: Option<Timestamp>,
}

/// A buyer's challenge of a commerce payment through the card network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dispute {
    pub id: String,
    pub payment_id: Option<String>,
    pub location_id: Option<String>,
    pub state: String,
    pub reason: Option<String>,
    pub currency: String,
    pub amount: Decimal,
    pub card_brand: Option<String>,
    pub due_at: Option<Timestamp>,
    pub reported_at: Option<Timestamp>,
}

// Banking: what a bank reports of the business's accounts. Accounting
// sources' bank transactions (entries in the ledger) are
// `bank_transactions`; what the bank itself booked is
// `bank_feed_transactions`. Amounts are [`Decimal5`] (scale 5), signed:
// positive is money in (credit), negative money out (debit).

/// One way to address a bank account (sort code and number, IBAN, PAN...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountIdentifier {
    pub scheme: String,
    pub identification: String,
    pub name: Option<String>,
}

/// An account held at a bank.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BankAccount {
    pub id: String,
    pub name: Option<String>,
    pub currency: String,
    pub category: Option<String>,
    pub account_type: Option<String>,
    pub status: String,
    pub identifiers: Vec<AccountIdentifier>,
    pub opened_on: Option<Date>,
}

/// One balance of one account on one day. The id is
/// `<account id>:<balance type>:<date>`, so each day's balance is a record
/// of its own and history is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BankBalance {
    pub id: String,
    pub account_id: String,
    pub balance_type: String,
    pub date: Date,
    pub as_of: Timestamp,
    pub amount: Decimal5,
    pub currency: String,
}

/// A transaction as the bank booked it (or holds it pending).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BankFeedTransaction {
    pub id: String,
    pub account_id: String,
    pub status: String,
    pub booked_at: Timestamp,
    pub value_at: Option<Timestamp>,
    pub amount: Decimal5,
    pub currency: String,
    pub description: Option<String>,
    pub reference: Option<String>,
    pub merchant_name: Option<String>,
    pub counterparty_name: Option<String>,
    pub balance_after: Option<Decimal5>,
}

/// A creditor's mandate to collect from an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectDebit {
    pub id: String,
    pub account_id: String,
    pub mandate_reference: Option<String>,
    pub creditor_name: Option<String>,
    pub status: Option<String>,
    pub last_paid_at: Option<Timestamp>,
    pub last_amount: Option<Decimal5>,
    pub currency: Option<String>,
}

/// A payment the account holder set to repeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StandingOrder {
    pub id: String,
    pub account_id: String,
    pub frequency: String,
    pub reference: Option<String>,
    pub status: Option<String>,
    pub creditor_name: Option<String>,
    pub creditor_account: Option<String>,
    pub next_payment_at: Option<Timestamp>,
    pub next_amount: Option<Decimal5>,
    pub final_payment_at: Option<Timestamp>,
    pub currency: Option<String>,
}
