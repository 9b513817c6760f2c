//! The sandbox's source of truth: a pure function from (settings, company,
//! data type, record index, generation) to a record version. It serves
//! accounting, commerce and banking data (each a [`Kind`] the settings can
//! leave out).
//!
//! Generation 0 is the initial load at `epoch_ms`; each later generation,
//! `generation_interval_secs` apart, creates, updates and deletes some
//! records. Customers, suppliers and accounts all exist from generation 0 and
//! are never deleted, so every reference stays valid: invoices reference
//! customers, bills reference suppliers, payments settle invoices that are
//! never deleted, journal lines post to accounts and balance.

use serde::Deserialize;
use tributary_schemas::model::*;
use tributary_schemas::{DataType, Date, Decimal, Decimal5, Record, Timestamp};

/// Settings of one sandbox connection.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxSettings {
    /// Changes every generated value; the same seed gives the same data.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Records per data type (accounts are a fixed chart of 12).
    #[serde(default = "default_records")]
    pub records: u32,
    /// Rounds of changes after the initial load.
    #[serde(default = "default_generations")]
    pub generations: u32,
    /// Time between rounds; 0 makes every round visible at once.
    #[serde(default = "default_interval")]
    pub generation_interval_secs: u64,
    /// When generation 0 happened, in milliseconds since the Unix epoch.
    pub epoch_ms: i64,
    /// Records per page (the source's own page size limit).
    #[serde(default = "default_page_size")]
    pub max_page_size: u32,
    /// Every n-th page request fails the way a real API's do (0: never), so
    /// tests can show the runtime's retries lose and repeat nothing.
    #[serde(default)]
    pub fail_every: u32,
    /// How those requests fail.
    #[serde(default)]
    pub failure: SourceFailure,
    /// Deleted records vanish from the feed instead of coming flagged, as
    /// a source without soft deletes does (Xero's items): only a
    /// reconciliation (a full pass) finds them gone.
    #[serde(default)]
    pub hard_deletes: bool,
    /// Which kinds of data the source serves (all three unless set).
    #[serde(default = "all_kinds")]
    pub kinds: Vec<Kind>,
}

/// A kind of source the sandbox plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Companies, accounts, customers, suppliers, invoices, bills,
    /// payments, bank transactions, journal entries ([`DATA_TYPES`]).
    Accounting,
    /// Locations, products, orders, commerce payments, refunds, payouts,
    /// disputes ([`COMMERCE_TYPES`]).
    Commerce,
    /// Bank accounts, balances, bank-feed transactions, direct debits,
    /// standing orders ([`BANKING_TYPES`]).
    Banking,
}

impl Kind {
    pub fn data_types(self) -> &'static [DataType] {
        match self {
            Kind::Accounting => &DATA_TYPES,
            Kind::Commerce => &COMMERCE_TYPES,
            Kind::Banking => &BANKING_TYPES,
        }
    }
}

pub fn all_kinds() -> Vec<Kind> {
    vec![Kind::Accounting, Kind::Commerce, Kind::Banking]
}

/// How a failing sandbox request fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFailure {
    /// HTTP 429 with `Retry-After: 1`.
    RateLimited,
    /// HTTP 500.
    #[default]
    ServerError,
    /// No answer: the request gives up after 2 seconds.
    Timeout,
}

fn default_seed() -> u64 {
    1
}
fn default_records() -> u32 {
    100
}
fn default_generations() -> u32 {
    3
}
fn default_interval() -> u64 {
    60
}
fn default_page_size() -> u32 {
    100
}

/// The accounting data types the sandbox serves, referenced ones first.
pub const DATA_TYPES: [DataType; 9] = [
    DataType::Company,
    DataType::Account,
    DataType::Customer,
    DataType::Supplier,
    DataType::Invoice,
    DataType::Bill,
    DataType::Payment,
    DataType::BankTransaction,
    DataType::JournalEntry,
];

/// The commerce data types, referenced ones first (orders refer to
/// locations, products and the accounting customers).
pub const COMMERCE_TYPES: [DataType; 7] = [
    DataType::Location,
    DataType::Product,
    DataType::Order,
    DataType::CommercePayment,
    DataType::Refund,
    DataType::Payout,
    DataType::Dispute,
];

/// The banking data types, accounts first.
pub const BANKING_TYPES: [DataType; 5] = [
    DataType::BankAccount,
    DataType::BankBalance,
    DataType::BankFeedTransaction,
    DataType::DirectDebit,
    DataType::StandingOrder,
];

const LOCATIONS: [&str; 3] = ["High Street", "Market Hall", "Online shop"];
const BANK_ACCOUNTS: [(&str, &str, &str); 2] = [
    ("Business current", "GBP", "CACC"),
    ("Euro reserve", "EUR", "LLSV"),
];
const CREDITORS: [&str; 6] = [
    "Power Co",
    "Water Board",
    "Mill Lane Properties",
    "Fleet Insurance",
    "Broadband Ltd",
    "Card Terminal Rental",
];

const CHART: [(&str, &str, &str); 12] = [
    ("090", "Business Bank Account", "ASSET"),
    ("091", "Savings Account", "ASSET"),
    ("120", "Accounts Receivable", "ASSET"),
    ("200", "Sales", "INCOME"),
    ("260", "Other Revenue", "INCOME"),
    ("310", "Cost of Goods Sold", "EXPENSE"),
    ("400", "Advertising", "EXPENSE"),
    ("429", "General Expenses", "EXPENSE"),
    ("493", "Travel", "EXPENSE"),
    ("800", "Accounts Payable", "LIABILITY"),
    ("820", "Sales Tax", "LIABILITY"),
    ("970", "Owner Funds", "EQUITY"),
];

const FIRST: [&str; 16] = [
    "Ridgeway",
    "Harbour",
    "Bluebell",
    "Copper",
    "Northgate",
    "Willow",
    "Granite",
    "Saffron",
    "Kestrel",
    "Meadow",
    "Lantern",
    "Oakridge",
    "Silverline",
    "Thistle",
    "Juniper",
    "Foxglove",
];
const SECOND: [&str; 12] = [
    "Bakery",
    "Joinery",
    "Florists",
    "Consulting",
    "Logistics",
    "Studio",
    "Dental",
    "Garage",
    "Outfitters",
    "Brewing",
    "Analytics",
    "Print",
];
const ITEMS: [&str; 8] = [
    "Consulting hours",
    "Website maintenance",
    "Catering",
    "Office supplies",
    "Delivery",
    "Design work",
    "Equipment hire",
    "Training session",
];

/// One version of one record: what the source shows for it at a generation.
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    pub id: String,
    pub modified_at: Timestamp,
    pub deleted: bool,
    pub record: Record,
}

/// When a record is created, changed and deleted.
#[derive(Debug, Clone, PartialEq)]
struct Lifecycle {
    created: u32,
    updates: Vec<u32>,
    deleted: Option<u32>,
    /// Invoices only: the generation a payment settled it.
    paid: Option<u32>,
}

impl Lifecycle {
    /// The generation of the last change visible at `generation`.
    fn last_change(&self, generation: u32) -> u32 {
        let mut last = self.created;
        for &g in self.updates.iter().chain(&self.deleted).chain(&self.paid) {
            if g <= generation && g > last {
                last = g;
            }
        }
        last
    }
}

/// The generator for one company.
#[derive(Debug, Clone)]
pub struct Generator {
    pub settings: SandboxSettings,
    pub company_id: String,
    seed: u64,
}

/// SplitMix64: a tiny, well-mixed, dependency-free deterministic hash.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn cents(c: i64) -> Decimal {
    Decimal::from_scaled(c as i128 * 100)
}

impl Generator {
    pub fn new(settings: SandboxSettings, company_id: &str) -> Self {
        let seed = company_id
            .bytes()
            .fold(mix(settings.seed), |acc, b| mix(acc ^ b as u64));
        Generator {
            settings,
            company_id: company_id.to_string(),
            seed,
        }
    }

    fn h(&self, data_type: DataType, index: u32, salt: u64) -> u64 {
        mix(self.seed ^ mix(data_type as u64 * 1_000_003 + salt) ^ mix(index as u64))
    }

    /// The newest generation visible at `now`; `None` before the epoch.
    pub fn visible_generation(&self, now: Timestamp) -> Option<u32> {
        let elapsed = now.millis().checked_sub(self.settings.epoch_ms)?;
        if elapsed < 0 {
            return None;
        }
        let interval = self.settings.generation_interval_secs as i64 * 1000;
        if interval == 0 {
            return Some(self.settings.generations);
        }
        Some((elapsed / interval).min(self.settings.generations as i64) as u32)
    }

    /// When generation `g` happened.
    pub fn generation_time(&self, g: u32) -> Timestamp {
        let interval = self.settings.generation_interval_secs as i64 * 1000;
        Timestamp(self.settings.epoch_ms + g as i64 * interval)
    }

    /// How many records of `data_type` ever exist (some may not yet, or no longer).
    pub fn population(&self, data_type: DataType) -> u32 {
        if !self.data_types().contains(&data_type) {
            return 0;
        }
        match data_type {
            DataType::Company => 1,
            DataType::Account => CHART.len() as u32,
            DataType::Location => LOCATIONS.len() as u32,
            DataType::BankAccount => BANK_ACCOUNTS.len() as u32,
            _ => self.settings.records,
        }
    }

    /// The data types this company's source serves, referenced ones first.
    pub fn data_types(&self) -> Vec<DataType> {
        self.settings
            .kinds
            .iter()
            .flat_map(|k| k.data_types().iter().copied())
            .collect()
    }

    fn lifecycle(&self, data_type: DataType, i: u32) -> Option<Lifecycle> {
        let last = self.settings.generations;
        let pick = |salt: u64, from: u32| {
            from + (self.h(data_type, i, salt) % (last - from + 1) as u64) as u32
        };
        let long_lived = matches!(
            data_type,
            DataType::Company
                | DataType::Account
                | DataType::Customer
                | DataType::Supplier
                | DataType::Location
                | DataType::Product
                | DataType::BankAccount
        );
        let created = if long_lived || last == 0 || self.h(data_type, i, 1) % 10 < 7 {
            0
        } else {
            pick(2, 1)
        };
        let updates = (created + 1..=last)
            .filter(|g| self.h(data_type, i, 100 + *g as u64).is_multiple_of(4))
            .collect();
        let mut lifecycle = Lifecycle {
            created,
            updates,
            deleted: None,
            paid: None,
        };
        match data_type {
            DataType::Invoice if self.invoice_is_paid(i) => {
                lifecycle.paid = Some(pick(3, created));
            }
            DataType::CommercePayment => {
                // Payment i pays for order i, when the order is made.
                let order = self.lifecycle(DataType::Order, i)?;
                return Some(Lifecycle {
                    created: order.created,
                    updates: vec![],
                    deleted: None,
                    paid: None,
                });
            }
            DataType::Payment => {
                // Payment i settles invoice i, once it is paid.
                let invoice = self.lifecycle(DataType::Invoice, i)?;
                let paid = invoice.paid?;
                return Some(Lifecycle {
                    created: paid,
                    updates: vec![],
                    deleted: None,
                    paid: None,
                });
            }
            _ => {}
        }
        // Pending bank-feed transactions can vanish, as at a real bank.
        let deletable = matches!(
            data_type,
            DataType::Invoice
                | DataType::Bill
                | DataType::BankTransaction
                | DataType::JournalEntry
                | DataType::BankFeedTransaction
        );
        if deletable
            && lifecycle.paid.is_none()
            && created < last
            && self.h(data_type, i, 4).is_multiple_of(8)
        {
            lifecycle.deleted = Some(pick(5, created + 1));
        }
        Some(lifecycle)
    }

    fn invoice_is_paid(&self, i: u32) -> bool {
        self.h(DataType::Invoice, i, 6).is_multiple_of(3)
    }

    fn record_id(data_type: DataType, i: u32) -> String {
        let prefix = match data_type {
            DataType::Company => "cmp",
            DataType::Connection => "conn",
            DataType::Account => "acc",
            DataType::Customer => "cus",
            DataType::Supplier => "sup",
            DataType::Invoice => "inv",
            DataType::Bill => "bill",
            DataType::Payment => "pay",
            DataType::BankTransaction => "bt",
            DataType::JournalEntry => "jnl",
            DataType::CreditNote => "cn",
            DataType::Item => "item",
            DataType::Location => "loc",
            DataType::Product => "prod",
            DataType::Order => "ord",
            DataType::CommercePayment => "cpay",
            DataType::Refund => "ref",
            DataType::Payout => "po",
            DataType::Dispute => "dsp",
            DataType::BankAccount => "bacc",
            DataType::BankBalance => "bal",
            DataType::BankFeedTransaction => "btx",
            DataType::DirectDebit => "dd",
            DataType::StandingOrder => "so",
        };
        format!("{prefix}-{i:06}")
    }

    /// The version of record `i` visible at `generation`, if it exists by then.
    pub fn version(&self, data_type: DataType, i: u32, generation: u32) -> Option<Version> {
        let life = self.lifecycle(data_type, i)?;
        if life.created > generation {
            return None;
        }
        let changed = life.last_change(generation);
        let deleted = life.deleted.is_some_and(|d| d <= generation);
        let paid = life.paid.is_some_and(|p| p <= generation);
        let id = match data_type {
            DataType::Company => self.company_id.clone(),
            DataType::Account => format!("acc-{}", CHART[i as usize].0),
            // One balance per account, type and day: the id says which.
            DataType::BankBalance => {
                let (account, day) = self.balance_slot(i);
                format!(
                    "{}:ITAV:{day}",
                    Self::record_id(DataType::BankAccount, account)
                )
            }
            _ => Self::record_id(data_type, i),
        };
        let record = self.body(data_type, i, &id, &life, changed, deleted, paid)?;
        Some(Version {
            id,
            modified_at: self.generation_time(changed),
            deleted,
            record,
        })
    }

    fn contact_name(&self, data_type: DataType, i: u32) -> String {
        let h = self.h(data_type, i, 7);
        format!(
            "{} {} {}",
            FIRST[(h % 16) as usize],
            SECOND[((h >> 8) % 12) as usize],
            i
        )
    }

    fn document(
        &self,
        data_type: DataType,
        i: u32,
        status: &str,
        paid: bool,
    ) -> (Vec<DocumentLine>, [Decimal; 4], Date) {
        let h = self.h(data_type, i, 8);
        let n_lines = 1 + (h % 3) as u32;
        let mut lines = Vec::new();
        let (mut sub, mut tax) = (0i64, 0i64);
        for l in 0..n_lines {
            let hl = self.h(data_type, i, 200 + l as u64);
            let qty = 1 + (hl % 5) as i64;
            let unit = 500 + (hl >> 16) as i64 % 50_000;
            let amount = qty * unit;
            let line_tax = amount / 5;
            sub += amount;
            tax += line_tax;
            lines.push(DocumentLine {
                description: ITEMS[((hl >> 40) % ITEMS.len() as u64) as usize].to_string(),
                quantity: Decimal::from_int(qty),
                unit_amount: cents(unit),
                account_id: Some(format!(
                    "acc-{}",
                    if data_type == DataType::Invoice {
                        "200"
                    } else {
                        "429"
                    }
                )),
                tax_amount: cents(line_tax),
                line_amount: cents(amount),
            });
        }
        let total = sub + tax;
        let due = if paid || status == "VOIDED" { 0 } else { total };
        let issue = Date(self.generation_time(0).date().days() - (h % 60) as i32);
        (
            lines,
            [cents(sub), cents(tax), cents(total), cents(due)],
            issue,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn body(
        &self,
        data_type: DataType,
        i: u32,
        id: &str,
        life: &Lifecycle,
        changed: u32,
        deleted: bool,
        paid: bool,
    ) -> Option<Record> {
        let n = self.settings.records.max(1);
        let revision = changed - life.created;
        let h = self.h(data_type, i, 9);
        let record = match data_type {
            DataType::Company => Record::Company(Company {
                id: id.to_string(),
                name: format!(
                    "{} {}",
                    FIRST[(h % 16) as usize],
                    SECOND[((h >> 8) % 12) as usize]
                ),
                legal_name: Some(format!(
                    "{} {} Ltd{}",
                    FIRST[(h % 16) as usize],
                    SECOND[((h >> 8) % 12) as usize],
                    if revision > 0 {
                        format!(" (rev {revision})")
                    } else {
                        String::new()
                    }
                )),
                base_currency: "GBP".into(),
                country: Some("GB".into()),
            }),
            // Connections are the runtime's records, never fetched from a
            // source; credit notes and items are not in the sandbox.
            DataType::Connection | DataType::CreditNote | DataType::Item => return None,
            DataType::Location
            | DataType::Product
            | DataType::Order
            | DataType::CommercePayment
            | DataType::Refund
            | DataType::Payout
            | DataType::Dispute => return self.commerce(data_type, i, id, life, revision, h),
            DataType::BankAccount
            | DataType::BankBalance
            | DataType::BankFeedTransaction
            | DataType::DirectDebit
            | DataType::StandingOrder => {
                return self.banking(data_type, i, id, life, revision, deleted, h);
            }
            DataType::Account => {
                let (code, name, kind) = CHART[i as usize];
                Record::Account(Account {
                    id: id.to_string(),
                    code: Some(code.into()),
                    name: name.into(),
                    account_type: kind.into(),
                    status: "ACTIVE".into(),
                    currency: code.starts_with("09").then(|| "GBP".into()),
                    description: (revision > 0).then(|| format!("revised {revision} times")),
                })
            }
            DataType::Customer | DataType::Supplier => {
                let contact = Contact {
                    id: id.to_string(),
                    name: self.contact_name(data_type, i),
                    email: Some(format!(
                        "accounts{i}@{}.example",
                        if data_type == DataType::Customer {
                            "customer"
                        } else {
                            "supplier"
                        }
                    )),
                    phone: Some(format!("+44 20 7946 {:04}", (h + revision as u64) % 10_000)),
                    status: if revision > 0 && h.is_multiple_of(10) {
                        "ARCHIVED"
                    } else {
                        "ACTIVE"
                    }
                    .into(),
                    currency: Some("GBP".into()),
                };
                if data_type == DataType::Customer {
                    Record::Customer(contact)
                } else {
                    Record::Supplier(contact)
                }
            }
            DataType::Invoice | DataType::Bill => {
                let party_type = if data_type == DataType::Invoice {
                    DataType::Customer
                } else {
                    DataType::Supplier
                };
                let party = (i * 7 + 3) % n;
                let status = if deleted {
                    "VOIDED"
                } else if paid {
                    "PAID"
                } else if revision == 0 && h.is_multiple_of(4) {
                    "DRAFT"
                } else {
                    "AUTHORISED"
                };
                let (lines, [subtotal, tax_total, total, amount_due], issue_date) =
                    self.document(data_type, i, status, paid);
                let party_id = Self::record_id(party_type, party);
                let party_name = Some(self.contact_name(party_type, party));
                let reference = Some(format!("PO-{i}-r{revision}"));
                let due_date = Some(issue_date.add_days(30 + 7 * revision as i32));
                if data_type == DataType::Invoice {
                    Record::Invoice(Invoice {
                        id: id.to_string(),
                        number: format!("INV-{:05}", i + 1),
                        customer_id: party_id,
                        customer_name: party_name,
                        issue_date,
                        due_date,
                        currency: "GBP".into(),
                        status: status.into(),
                        reference,
                        lines,
                        subtotal,
                        tax_total,
                        total,
                        amount_due,
                    })
                } else {
                    Record::Bill(Bill {
                        id: id.to_string(),
                        number: format!("BILL-{:05}", i + 1),
                        supplier_id: party_id,
                        supplier_name: party_name,
                        issue_date,
                        due_date,
                        currency: "GBP".into(),
                        status: status.into(),
                        reference,
                        lines,
                        subtotal,
                        tax_total,
                        total,
                        amount_due,
                    })
                }
            }
            DataType::Payment => {
                let (_, [_, _, total, _], _) = self.document(DataType::Invoice, i, "PAID", true);
                Record::Payment(Payment {
                    id: id.to_string(),
                    invoice_id: Some(Self::record_id(DataType::Invoice, i)),
                    bill_id: None,
                    account_id: "acc-090".into(),
                    date: self.generation_time(life.created).date(),
                    currency: "GBP".into(),
                    amount: total,
                    reference: Some(format!("INV-{:05}", i + 1)),
                })
            }
            DataType::BankTransaction => {
                let receive = h.is_multiple_of(2);
                let party = (i * 5 + 1) % n;
                Record::BankTransaction(BankTransaction {
                    id: id.to_string(),
                    account_id: "acc-090".into(),
                    date: self.generation_time(life.created).date(),
                    description: format!(
                        "{} {}",
                        if receive {
                            "Transfer from"
                        } else {
                            "Card payment to"
                        },
                        self.contact_name(
                            if receive {
                                DataType::Customer
                            } else {
                                DataType::Supplier
                            },
                            party
                        )
                    ),
                    transaction_type: if receive { "RECEIVE" } else { "SPEND" }.into(),
                    amount: cents(100 + (h >> 8) as i64 % 200_000),
                    currency: "GBP".into(),
                    contact_id: Some(Self::record_id(
                        if receive {
                            DataType::Customer
                        } else {
                            DataType::Supplier
                        },
                        party,
                    )),
                    reconciled: revision % 2 == 1,
                })
            }
            DataType::JournalEntry => {
                let amount = cents(1_000 + (h >> 8) as i64 % 500_000);
                let split = cents((h >> 8) as i64 % 500);
                let rest = amount.checked_sub(split).unwrap_or(amount);
                let mut lines = vec![JournalLine {
                    account_id: format!("acc-{}", CHART[(h % 12) as usize].0),
                    description: Some(format!("accrual {i}")),
                    debit: amount,
                    credit: Decimal::ZERO,
                }];
                for (k, part) in [rest, split].into_iter().enumerate() {
                    if part != Decimal::ZERO {
                        lines.push(JournalLine {
                            account_id: format!("acc-{}", CHART[((h >> (8 + k)) % 12) as usize].0),
                            description: None,
                            debit: Decimal::ZERO,
                            credit: part,
                        });
                    }
                }
                Record::JournalEntry(JournalEntry {
                    id: id.to_string(),
                    number: format!("MJ-{:05}", i + 1),
                    date: self.generation_time(life.created).date(),
                    description: format!("Month-end journal {i} revision {revision}"),
                    lines,
                })
            }
        };
        Some(record)
    }

    /// Every record of `data_type` that exists at `generation`, deleted ones
    /// included, in feed order: by modification time, then id.
    pub fn versions(&self, data_type: DataType, generation: u32) -> Vec<Version> {
        let mut all: Vec<Version> = (0..self.population(data_type))
            .filter_map(|i| self.version(data_type, i, generation))
            .collect();
        all.sort_by(|a, b| (a.modified_at, &a.id).cmp(&(b.modified_at, &b.id)));
        all
    }

    /// What a complete sync must end with: the live (not deleted) records of
    /// `data_type` at `generation`.
    pub fn expected_live(&self, data_type: DataType, generation: u32) -> Vec<Version> {
        self.versions(data_type, generation)
            .into_iter()
            .filter(|v| !v.deleted)
            .collect()
    }
}

fn pence(p: i64) -> Decimal {
    cents(p)
}

/// Pence as a banking amount (scale 5).
fn pence5(p: i64) -> Decimal5 {
    Decimal5::from_scaled(p as i128 * 1_000)
}

const DAY_MS: i64 = 86_400_000;

impl Generator {
    /// The price in pence of variant `k` of product `p` (fixed over time,
    /// so orders can be checked against it).
    fn variant_price(&self, p: u32, k: u32) -> i64 {
        150 + (self.h(DataType::Product, p, 11) % 2_000) as i64 + k as i64 * 50
    }

    /// Product `p`'s variants: one to three.
    fn variant_count(&self, p: u32) -> u32 {
        1 + (self.h(DataType::Product, p, 12) % 3) as u32
    }

    /// Order `i`: its lines and totals in pence (lines, discount, tax, tip,
    /// total).
    fn order_lines(&self, i: u32) -> (Vec<OrderLine>, [i64; 4]) {
        let n = self.settings.records.max(1);
        let h = self.h(DataType::Order, i, 13);
        let mut lines = Vec::new();
        let (mut discount, mut tax, mut total) = (0, 0, 0);
        for l in 0..1 + (h % 3) as u32 {
            let product = (i * 7 + l) % n;
            let k = l % self.variant_count(product);
            let unit = self.variant_price(product, k);
            let qty = 1 + ((h >> (8 + l)) % 3) as i64;
            let gross = qty * unit;
            let off = if h.is_multiple_of(5) { gross / 10 } else { 0 };
            let line_tax = (gross - off) / 5;
            let line_total = gross - off + line_tax;
            discount += off;
            tax += line_tax;
            total += line_total;
            lines.push(OrderLine {
                id: format!("line-{l}"),
                name: Some(ITEMS[(product % ITEMS.len() as u32) as usize].to_string()),
                variant_id: Some(format!(
                    "{}-v{k}",
                    Self::record_id(DataType::Product, product)
                )),
                quantity: Decimal::from_int(qty),
                unit_price: Some(pence(unit)),
                discount_amount: pence(off),
                tax_amount: pence(line_tax),
                total: pence(line_total),
            });
        }
        let tip = if i.is_multiple_of(4) { 50 } else { 0 };
        (lines, [discount, tax, tip, total + tip])
    }

    /// Processing fee of a payment of `total` pence: 1.75%, rounded.
    fn fee(total: i64) -> i64 {
        (total * 175 + 5_000) / 10_000
    }

    /// Balance `i`: which account and which day (the latest first).
    fn balance_slot(&self, i: u32) -> (u32, Date) {
        let accounts = BANK_ACCOUNTS.len() as u32;
        let day = self
            .generation_time(0)
            .date()
            .add_days(-((i / accounts) as i32));
        (i % accounts, day)
    }

    fn commerce(
        &self,
        data_type: DataType,
        i: u32,
        id: &str,
        life: &Lifecycle,
        revision: u32,
        h: u64,
    ) -> Option<Record> {
        let n = self.settings.records.max(1);
        let created = self.generation_time(life.created);
        let location = |k: u32| Self::record_id(DataType::Location, k % LOCATIONS.len() as u32);
        Some(match data_type {
            DataType::Location => Record::Location(Location {
                id: id.to_string(),
                name: LOCATIONS[i as usize].to_string(),
                business_name: Some("Sandbox Trading".into()),
                status: "ACTIVE".into(),
                currency: Some("GBP".into()),
                country: Some("GB".into()),
                timezone: Some("Europe/London".into()),
                address: Some(format!(
                    "{} {}, Bath, BA1 1AA",
                    1 + i + revision,
                    LOCATIONS[i as usize]
                )),
                created_at: Some(Timestamp(created.millis() - 400 * DAY_MS)),
            }),
            DataType::Product => Record::Product(Product {
                id: id.to_string(),
                name: format!("{} {i}", ITEMS[(i % ITEMS.len() as u32) as usize]),
                description: (revision > 0).then(|| format!("revised {revision} times")),
                category_id: Some(format!("cat-{}", i % 4)),
                variants: (0..self.variant_count(i))
                    .map(|k| ProductVariant {
                        id: format!("{id}-v{k}"),
                        name: Some(["Small", "Regular", "Large"][k as usize].into()),
                        sku: Some(format!("SKU-{i}-{k}")),
                        price: Some(pence(self.variant_price(i, k))),
                        currency: Some("GBP".into()),
                    })
                    .collect(),
                archived: revision > 0 && h.is_multiple_of(10),
            }),
            DataType::Order => {
                let (lines, [discount, tax, tip, total]) = self.order_lines(i);
                let completed = revision > 0 || !h.is_multiple_of(3);
                Record::Order(Order {
                    id: id.to_string(),
                    location_id: location(i),
                    customer_id: Some(Self::record_id(DataType::Customer, (i * 3) % n)),
                    reference: Some(format!("ORD-{:05}", i + 1)),
                    state: if completed { "COMPLETED" } else { "OPEN" }.into(),
                    currency: "GBP".into(),
                    created_at: Some(created),
                    closed_at: completed.then_some(created),
                    lines,
                    discount_total: pence(discount),
                    tax_total: pence(tax),
                    tip_total: pence(tip),
                    total: pence(total),
                })
            }
            DataType::CommercePayment => {
                let (_, [_, _, tip, total]) = self.order_lines(i);
                let refunded = if i.is_multiple_of(5) {
                    (total - tip) / 2
                } else {
                    0
                };
                Record::CommercePayment(CommercePayment {
                    id: id.to_string(),
                    location_id: Some(location(i)),
                    order_id: Some(Self::record_id(DataType::Order, i)),
                    customer_id: Some(Self::record_id(DataType::Customer, (i * 3) % n)),
                    status: "COMPLETED".into(),
                    source_type: Some(if h.is_multiple_of(4) { "CASH" } else { "CARD" }.into()),
                    currency: "GBP".into(),
                    amount: pence(total - tip),
                    tip_amount: pence(tip),
                    total: pence(total),
                    fee_total: pence(Self::fee(total)),
                    refunded_amount: pence(refunded),
                    created_at: Some(created),
                    reference: Some(format!("ORD-{:05}", i + 1)),
                })
            }
            // Every fifth payment is half refunded.
            DataType::Refund if i.is_multiple_of(5) => {
                let (_, [_, _, tip, total]) = self.order_lines(i);
                Record::Refund(Refund {
                    id: id.to_string(),
                    payment_id: Some(Self::record_id(DataType::CommercePayment, i)),
                    order_id: Some(Self::record_id(DataType::Order, i)),
                    location_id: Some(location(i)),
                    status: if revision > 0 { "COMPLETED" } else { "PENDING" }.into(),
                    currency: "GBP".into(),
                    amount: pence((total - tip) / 2),
                    fee_total: pence(-Self::fee((total - tip) / 2)),
                    reason: Some("Damaged in delivery".into()),
                    created_at: Some(created),
                })
            }
            DataType::Payout => Record::Payout(Payout {
                id: id.to_string(),
                location_id: Some(location(i)),
                status: if revision > 0 || !h.is_multiple_of(4) {
                    "PAID"
                } else {
                    "SENT"
                }
                .into(),
                currency: "GBP".into(),
                amount: pence(5_000 + (h >> 8) as i64 % 500_000),
                arrival_date: Some(created.date().add_days(2)),
                destination_type: Some("BANK_ACCOUNT".into()),
                destination_id: Some(Self::record_id(DataType::BankAccount, 0)),
                fees: vec![PayoutFee {
                    fee_type: Some("TRANSFER_FEE".into()),
                    amount: pence(25),
                    currency: "GBP".into(),
                    effective_at: Some(created),
                }],
                fee_total: pence(25),
                created_at: Some(created),
            }),
            // Every tenth payment is disputed.
            DataType::Dispute if i.is_multiple_of(10) => {
                let (_, [_, _, _, total]) = self.order_lines(i);
                Record::Dispute(Dispute {
                    id: id.to_string(),
                    payment_id: Some(Self::record_id(DataType::CommercePayment, i)),
                    location_id: Some(location(i)),
                    state: if revision > 0 {
                        "WON"
                    } else {
                        "EVIDENCE_REQUIRED"
                    }
                    .into(),
                    reason: Some("NOT_AS_DESCRIBED".into()),
                    currency: "GBP".into(),
                    amount: pence(total),
                    card_brand: Some("VISA".into()),
                    due_at: Some(Timestamp(created.millis() + 14 * DAY_MS)),
                    reported_at: Some(created),
                })
            }
            _ => return None,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn banking(
        &self,
        data_type: DataType,
        i: u32,
        id: &str,
        life: &Lifecycle,
        revision: u32,
        deleted: bool,
        h: u64,
    ) -> Option<Record> {
        let created = self.generation_time(life.created);
        let account =
            |k: u32| Self::record_id(DataType::BankAccount, k % BANK_ACCOUNTS.len() as u32);
        Some(match data_type {
            DataType::BankAccount => {
                let (name, currency, code) = BANK_ACCOUNTS[i as usize];
                Record::BankAccount(BankAccount {
                    id: id.to_string(),
                    name: Some(name.into()),
                    currency: currency.into(),
                    category: Some("Business".into()),
                    account_type: Some(code.into()),
                    status: "Enabled".into(),
                    identifiers: vec![if currency == "GBP" {
                        AccountIdentifier {
                            scheme: "UK.OBIE.SortCodeAccountNumber".into(),
                            identification: format!("802001{:08}", h % 100_000_000),
                            name: Some("Sandbox Trading Ltd".into()),
                        }
                    } else {
                        AccountIdentifier {
                            scheme: "UK.OBIE.IBAN".into(),
                            identification: format!("GB29NWBK6016{:010}", h % 10_000_000_000),
                            name: Some("Sandbox Trading Ltd".into()),
                        }
                    }],
                    opened_on: Some(Date(17_987 + revision as i32)),
                })
            }
            DataType::BankBalance => {
                let (k, date) = self.balance_slot(i);
                Record::BankBalance(BankBalance {
                    id: id.to_string(),
                    account_id: account(k),
                    balance_type: "ITAV".into(),
                    date,
                    as_of: Timestamp(date.days() as i64 * DAY_MS + 8 * 3_600_000),
                    // Five decimal places, as banks give them.
                    amount: Decimal5::from_scaled(
                        ((h >> 8) % 2_000_000_000) as i128 + revision as i128 * 100_000,
                    ),
                    currency: BANK_ACCOUNTS[k as usize].1.into(),
                })
            }
            DataType::BankFeedTransaction => {
                let k = i % BANK_ACCOUNTS.len() as u32;
                let credit = h.is_multiple_of(3);
                let units: i128 = if i.is_multiple_of(10) {
                    // A foreign-exchange amount with five decimals.
                    ((h >> 16) % 10_000_000) as i128 + 1
                } else {
                    (100 + (h >> 16) as i64 % 200_000) as i128 * 1_000
                };
                let party = CREDITORS[(i % CREDITORS.len() as u32) as usize];
                Record::BankFeedTransaction(BankFeedTransaction {
                    id: id.to_string(),
                    account_id: account(k),
                    status: if revision == 0 && (h.is_multiple_of(6) || deleted) {
                        "pending"
                    } else {
                        "booked"
                    }
                    .into(),
                    booked_at: Timestamp(created.millis() - (h % 3_600_000) as i64),
                    value_at: Some(created),
                    amount: Decimal5::from_scaled(if credit { units } else { -units }),
                    currency: BANK_ACCOUNTS[k as usize].1.into(),
                    description: Some(if credit {
                        format!("Transfer from customer {i}")
                    } else {
                        format!("Payment to {party}")
                    }),
                    reference: Some(format!("REF-{i:06}")),
                    merchant_name: (!credit).then(|| party.to_string()),
                    counterparty_name: Some(if credit {
                        format!("Customer {i}")
                    } else {
                        party.to_string()
                    }),
                    balance_after: None,
                })
            }
            DataType::DirectDebit => Record::DirectDebit(DirectDebit {
                id: id.to_string(),
                account_id: account(0),
                mandate_reference: Some(format!("DD-{i:06}")),
                creditor_name: Some(CREDITORS[(i % CREDITORS.len() as u32) as usize].into()),
                status: Some(
                    if revision > 0 && h.is_multiple_of(5) {
                        "CANC"
                    } else {
                        "ACTV"
                    }
                    .into(),
                ),
                last_paid_at: Some(created),
                last_amount: Some(pence5(-(1_000 + (h >> 8) as i64 % 50_000))),
                currency: Some("GBP".into()),
            }),
            DataType::StandingOrder => Record::StandingOrder(StandingOrder {
                id: id.to_string(),
                account_id: account(0),
                frequency: format!("MNTH:{:02}", 1 + i % 28),
                reference: Some(format!("Standing order {i}")),
                status: Some("ACTV".into()),
                creditor_name: Some(CREDITORS[((i + 2) % CREDITORS.len() as u32) as usize].into()),
                creditor_account: Some(format!("0808002{:07}", h % 10_000_000)),
                next_payment_at: Some(Timestamp(created.millis() + (1 + i as i64 % 28) * DAY_MS)),
                next_amount: Some(pence5(
                    -(5_000 + (h >> 8) as i64 % 100_000) - revision as i64,
                )),
                final_payment_at: None,
                currency: Some("GBP".into()),
            }),
            _ => return None,
        })
    }
}
