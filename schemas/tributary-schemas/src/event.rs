//! The event envelope, data types, topics and Avro (de)serialization.

use std::fmt;
use std::str::FromStr;

use apache_avro::Schema;
use apache_avro::types::Value;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::*;
use crate::{SchemaError, Timestamp};

/// Topic names start with this prefix; the version moves only on a breaking
/// change, which BACKWARD compatibility rules out within a version.
pub const TOPIC_PREFIX: &str = "tributary.v1";

/// The kinds of record Tributary syncs. One topic per data type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DataType {
    Company,
    Connection,
    Account,
    Customer,
    Supplier,
    Invoice,
    Bill,
    Payment,
    BankTransaction,
    JournalEntry,
    CreditNote,
    Item,
    Location,
    Product,
    Order,
    CommercePayment,
    Refund,
    Payout,
    Dispute,
    BankAccount,
    BankBalance,
    BankFeedTransaction,
    DirectDebit,
    StandingOrder,
}

impl DataType {
    pub const ALL: [DataType; 24] = [
        DataType::Company,
        DataType::Connection,
        DataType::Account,
        DataType::Customer,
        DataType::Supplier,
        DataType::Invoice,
        DataType::Bill,
        DataType::Payment,
        DataType::BankTransaction,
        DataType::JournalEntry,
        DataType::CreditNote,
        DataType::Item,
        DataType::Location,
        DataType::Product,
        DataType::Order,
        DataType::CommercePayment,
        DataType::Refund,
        DataType::Payout,
        DataType::Dispute,
        DataType::BankAccount,
        DataType::BankBalance,
        DataType::BankFeedTransaction,
        DataType::DirectDebit,
        DataType::StandingOrder,
    ];

    /// The plural snake-case name used in topics, URLs and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Company => "companies",
            DataType::Connection => "connections",
            DataType::Account => "accounts",
            DataType::Customer => "customers",
            DataType::Supplier => "suppliers",
            DataType::Invoice => "invoices",
            DataType::Bill => "bills",
            DataType::Payment => "payments",
            DataType::BankTransaction => "bank_transactions",
            DataType::JournalEntry => "journal_entries",
            DataType::CreditNote => "credit_notes",
            DataType::Item => "items",
            DataType::Location => "locations",
            DataType::Product => "products",
            DataType::Order => "orders",
            DataType::CommercePayment => "commerce_payments",
            DataType::Refund => "refunds",
            DataType::Payout => "payouts",
            DataType::Dispute => "disputes",
            DataType::BankAccount => "bank_accounts",
            DataType::BankBalance => "bank_balances",
            DataType::BankFeedTransaction => "bank_feed_transactions",
            DataType::DirectDebit => "direct_debits",
            DataType::StandingOrder => "standing_orders",
        }
    }

    /// The Kafka topic this data type's events are published on.
    pub fn topic(self) -> String {
        format!("{TOPIC_PREFIX}.{}", self.as_str())
    }

    /// The data type whose topic is `topic`, if any.
    pub fn from_topic(topic: &str) -> Option<DataType> {
        let name = topic.strip_prefix(TOPIC_PREFIX)?.strip_prefix('.')?;
        name.parse().ok()
    }

    /// The Avro schema text (`.avsc`) of this data type's events.
    pub fn schema_text(self) -> &'static str {
        match self {
            DataType::Company => include_str!("../avro/CompanyEvent.avsc"),
            DataType::Connection => include_str!("../avro/ConnectionEvent.avsc"),
            DataType::Account => include_str!("../avro/AccountEvent.avsc"),
            DataType::Customer => include_str!("../avro/CustomerEvent.avsc"),
            DataType::Supplier => include_str!("../avro/SupplierEvent.avsc"),
            DataType::Invoice => include_str!("../avro/InvoiceEvent.avsc"),
            DataType::Bill => include_str!("../avro/BillEvent.avsc"),
            DataType::Payment => include_str!("../avro/PaymentEvent.avsc"),
            DataType::BankTransaction => include_str!("../avro/BankTransactionEvent.avsc"),
            DataType::JournalEntry => include_str!("../avro/JournalEntryEvent.avsc"),
            DataType::CreditNote => include_str!("../avro/CreditNoteEvent.avsc"),
            DataType::Item => include_str!("../avro/ItemEvent.avsc"),
            DataType::Location => include_str!("../avro/LocationEvent.avsc"),
            DataType::Product => include_str!("../avro/ProductEvent.avsc"),
            DataType::Order => include_str!("../avro/OrderEvent.avsc"),
            DataType::CommercePayment => include_str!("../avro/CommercePaymentEvent.avsc"),
            DataType::Refund => include_str!("../avro/RefundEvent.avsc"),
            DataType::Payout => include_str!("../avro/PayoutEvent.avsc"),
            DataType::Dispute => include_str!("../avro/DisputeEvent.avsc"),
            DataType::BankAccount => include_str!("../avro/BankAccountEvent.avsc"),
            DataType::BankBalance => include_str!("../avro/BankBalanceEvent.avsc"),
            DataType::BankFeedTransaction => include_str!("../avro/BankFeedTransactionEvent.avsc"),
            DataType::DirectDebit => include_str!("../avro/DirectDebitEvent.avsc"),
            DataType::StandingOrder => include_str!("../avro/StandingOrderEvent.avsc"),
        }
    }

    pub fn schema(self) -> Result<Schema, SchemaError> {
        parse_schema(self.schema_text())
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DataType {
    type Err = SchemaError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DataType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| SchemaError::UnknownDataType(s.to_string()))
    }
}

/// A record of any data type.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Record {
    Company(Company),
    Connection(Connection),
    Account(Account),
    Customer(Customer),
    Supplier(Supplier),
    Invoice(Invoice),
    Bill(Bill),
    Payment(Payment),
    BankTransaction(BankTransaction),
    JournalEntry(JournalEntry),
    CreditNote(CreditNote),
    Item(Item),
    Location(Location),
    Product(Product),
    Order(Order),
    CommercePayment(CommercePayment),
    Refund(Refund),
    Payout(Payout),
    Dispute(Dispute),
    BankAccount(BankAccount),
    BankBalance(BankBalance),
    BankFeedTransaction(BankFeedTransaction),
    DirectDebit(DirectDebit),
    StandingOrder(StandingOrder),
}

impl Record {
    pub fn data_type(&self) -> DataType {
        match self {
            Record::Company(_) => DataType::Company,
            Record::Connection(_) => DataType::Connection,
            Record::Account(_) => DataType::Account,
            Record::Customer(_) => DataType::Customer,
            Record::Supplier(_) => DataType::Supplier,
            Record::Invoice(_) => DataType::Invoice,
            Record::Bill(_) => DataType::Bill,
            Record::Payment(_) => DataType::Payment,
            Record::BankTransaction(_) => DataType::BankTransaction,
            Record::JournalEntry(_) => DataType::JournalEntry,
            Record::CreditNote(_) => DataType::CreditNote,
            Record::Item(_) => DataType::Item,
            Record::Location(_) => DataType::Location,
            Record::Product(_) => DataType::Product,
            Record::Order(_) => DataType::Order,
            Record::CommercePayment(_) => DataType::CommercePayment,
            Record::Refund(_) => DataType::Refund,
            Record::Payout(_) => DataType::Payout,
            Record::Dispute(_) => DataType::Dispute,
            Record::BankAccount(_) => DataType::BankAccount,
            Record::BankBalance(_) => DataType::BankBalance,
            Record::BankFeedTransaction(_) => DataType::BankFeedTransaction,
            Record::DirectDebit(_) => DataType::DirectDebit,
            Record::StandingOrder(_) => DataType::StandingOrder,
        }
    }

    /// The record's own id at the source.
    pub fn id(&self) -> &str {
        match self {
            Record::Company(r) => &r.id,
            Record::Connection(r) => &r.id,
            Record::Account(r) => &r.id,
            Record::Customer(r) | Record::Supplier(r) => &r.id,
            Record::Invoice(r) => &r.id,
            Record::Bill(r) => &r.id,
            Record::Payment(r) => &r.id,
            Record::BankTransaction(r) => &r.id,
            Record::JournalEntry(r) => &r.id,
            Record::CreditNote(r) => &r.id,
            Record::Item(r) => &r.id,
            Record::Location(r) => &r.id,
            Record::Product(r) => &r.id,
            Record::Order(r) => &r.id,
            Record::CommercePayment(r) => &r.id,
            Record::Refund(r) => &r.id,
            Record::Payout(r) => &r.id,
            Record::Dispute(r) => &r.id,
            Record::BankAccount(r) => &r.id,
            Record::BankBalance(r) => &r.id,
            Record::BankFeedTransaction(r) => &r.id,
            Record::DirectDebit(r) => &r.id,
            Record::StandingOrder(r) => &r.id,
        }
    }

    /// Words a person would search this record by: names, numbers,
    /// references, descriptions. Ids of related records are included so that
    /// a search for a customer id finds its invoices.
    pub fn search_text(&self) -> String {
        let words: Vec<Option<&str>> = match self {
            Record::Company(c) => vec![Some(&c.name), c.legal_name.as_deref()],
            Record::Connection(c) => vec![Some(&c.source)],
            Record::Account(a) => vec![Some(&a.name), a.code.as_deref(), a.description.as_deref()],
            Record::Customer(c) | Record::Supplier(c) => vec![Some(&c.name), c.email.as_deref()],
            Record::Invoice(i) => [
                Some(i.number.as_str()),
                Some(&i.customer_id),
                i.customer_name.as_deref(),
                i.reference.as_deref(),
            ]
            .into_iter()
            .chain(i.lines.iter().map(|l| Some(l.description.as_str())))
            .collect(),
            Record::Bill(b) => [
                Some(b.number.as_str()),
                Some(&b.supplier_id),
                b.supplier_name.as_deref(),
                b.reference.as_deref(),
            ]
            .into_iter()
            .chain(b.lines.iter().map(|l| Some(l.description.as_str())))
            .collect(),
            Record::Payment(p) => vec![
                p.reference.as_deref(),
                p.invoice_id.as_deref(),
                p.bill_id.as_deref(),
            ],
            Record::BankTransaction(t) => vec![Some(&t.description)],
            Record::JournalEntry(j) => vec![Some(&j.number), Some(&j.description)],
            Record::CreditNote(c) => [
                Some(c.number.as_str()),
                Some(&c.contact_id),
                c.contact_name.as_deref(),
                c.reference.as_deref(),
            ]
            .into_iter()
            .chain(c.lines.iter().map(|l| Some(l.description.as_str())))
            .collect(),
            Record::Item(i) => vec![Some(&i.code), i.name.as_deref(), i.description.as_deref()],
            Record::Location(l) => vec![
                Some(&l.name),
                l.business_name.as_deref(),
                l.address.as_deref(),
            ],
            Record::Product(p) => [Some(p.name.as_str()), p.description.as_deref()]
                .into_iter()
                .chain(
                    p.variants
                        .iter()
                        .flat_map(|v| [v.name.as_deref(), v.sku.as_deref()]),
                )
                .collect(),
            Record::Order(o) => [
                o.reference.as_deref(),
                o.customer_id.as_deref(),
                Some(o.location_id.as_str()),
            ]
            .into_iter()
            .chain(o.lines.iter().map(|l| l.name.as_deref()))
            .collect(),
            Record::CommercePayment(p) => vec![
                p.reference.as_deref(),
                p.order_id.as_deref(),
                p.customer_id.as_deref(),
            ],
            Record::Refund(r) => vec![r.reason.as_deref(), r.payment_id.as_deref()],
            Record::Payout(p) => vec![p.destination_id.as_deref(), p.location_id.as_deref()],
            Record::Dispute(d) => vec![
                d.reason.as_deref(),
                d.payment_id.as_deref(),
                d.card_brand.as_deref(),
            ],
            Record::BankAccount(a) => [a.name.as_deref()]
                .into_iter()
                .chain(
                    a.identifiers
                        .iter()
                        .flat_map(|i| [Some(i.identification.as_str()), i.name.as_deref()]),
                )
                .collect(),
            Record::BankBalance(b) => vec![Some(&b.account_id), Some(&b.balance_type)],
            Record::BankFeedTransaction(t) => vec![
                t.description.as_deref(),
                t.reference.as_deref(),
                t.merchant_name.as_deref(),
                t.counterparty_name.as_deref(),
            ],
            Record::DirectDebit(d) => {
                vec![d.mandate_reference.as_deref(), d.creditor_name.as_deref()]
            }
            Record::StandingOrder(o) => vec![
                o.reference.as_deref(),
                o.creditor_name.as_deref(),
                o.creditor_account.as_deref(),
            ],
        };
        words.into_iter().flatten().collect::<Vec<_>>().join(" ")
    }
}

/// One change to one record: the envelope every data type shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<R> {
    pub event_id: String,
    pub company_id: String,
    pub connection_id: String,
    pub data_type: String,
    pub source: String,
    pub source_record_id: String,
    pub source_modified_at: Timestamp,
    pub fetched_at: Timestamp,
    pub deleted: bool,
    pub record: Option<R>,
    /// How many times Tributary re-published this source version (0 for an
    /// ordinary sync): of two events at the same `source_modified_at`, the
    /// higher revision wins, so a resync replaces what the stores hold.
    pub revision: i64,
}

impl<R> Envelope<R> {
    /// What orders versions of one record: the source's modification time,
    /// then the revision. Stores keep the greatest and ignore the rest.
    pub fn version(&self) -> (Timestamp, i64) {
        (self.source_modified_at, self.revision)
    }
}

/// An event whose record may be of any data type.
pub type Event = Envelope<Record>;

/// The deterministic id of one version of one source record: the same record
/// fetched twice at the same version and revision gets the same id, so
/// replays are recognisable downstream. Revision 0 (an ordinary sync) adds
/// nothing to the hash, so ids from before revisions existed are unchanged;
/// a resync's events (a higher revision) get ids of their own.
pub fn event_id(
    connection_id: &str,
    data_type: DataType,
    source_record_id: &str,
    source_modified_at: Timestamp,
    deleted: bool,
    revision: i64,
) -> String {
    let mut hasher = Sha256::new();
    let revision = (revision != 0).then(|| revision.to_string());
    for part in [
        connection_id,
        data_type.as_str(),
        source_record_id,
        &source_modified_at.0.to_string(),
        if deleted { "deleted" } else { "live" },
    ]
    .into_iter()
    .chain(revision.as_deref())
    {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    let digest = hasher.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

impl Event {
    pub fn data_type(&self) -> Result<DataType, SchemaError> {
        self.data_type.parse()
    }

    /// Reads an event of `data_type` from a decoded Avro value.
    pub fn from_avro(data_type: DataType, value: &Value) -> Result<Event, SchemaError> {
        fn read<T: DeserializeOwned>(
            value: &Value,
            wrap: fn(T) -> Record,
        ) -> Result<Event, SchemaError> {
            let e: Envelope<T> = apache_avro::from_value(value).map_err(SchemaError::avro)?;
            Ok(Envelope {
                event_id: e.event_id,
                company_id: e.company_id,
                connection_id: e.connection_id,
                data_type: e.data_type,
                source: e.source,
                source_record_id: e.source_record_id,
                source_modified_at: e.source_modified_at,
                fetched_at: e.fetched_at,
                deleted: e.deleted,
                record: e.record.map(wrap),
                revision: e.revision,
            })
        }
        // Name a wrong type plainly, before the fields fail to fit.
        if let Value::Record(fields) = value
            && let Some((_, Value::String(found))) =
                fields.iter().find(|(name, _)| name == "data_type")
            && found != data_type.as_str()
        {
            return Err(SchemaError::Mismatch(format!(
                "a {found} event cannot be read as {data_type}"
            )));
        }
        let event = match data_type {
            DataType::Company => read(value, Record::Company),
            DataType::Connection => read(value, Record::Connection),
            DataType::Account => read(value, Record::Account),
            DataType::Customer => read(value, Record::Customer),
            DataType::Supplier => read(value, Record::Supplier),
            DataType::Invoice => read(value, Record::Invoice),
            DataType::Bill => read(value, Record::Bill),
            DataType::Payment => read(value, Record::Payment),
            DataType::BankTransaction => read(value, Record::BankTransaction),
            DataType::JournalEntry => read(value, Record::JournalEntry),
            DataType::CreditNote => read(value, Record::CreditNote),
            DataType::Item => read(value, Record::Item),
            DataType::Location => read(value, Record::Location),
            DataType::Product => read(value, Record::Product),
            DataType::Order => read(value, Record::Order),
            DataType::CommercePayment => read(value, Record::CommercePayment),
            DataType::Refund => read(value, Record::Refund),
            DataType::Payout => read(value, Record::Payout),
            DataType::Dispute => read(value, Record::Dispute),
            DataType::BankAccount => read(value, Record::BankAccount),
            DataType::BankBalance => read(value, Record::BankBalance),
            DataType::BankFeedTransaction => read(value, Record::BankFeedTransaction),
            DataType::DirectDebit => read(value, Record::DirectDebit),
            DataType::StandingOrder => read(value, Record::StandingOrder),
        }?;
        if event.data_type != data_type.as_str() {
            return Err(SchemaError::Mismatch(format!(
                "event {} says data type {:?} but was read as {}",
                event.event_id, event.data_type, data_type
            )));
        }
        if let Some(record) = &event.record
            && record.data_type() != data_type
        {
            return Err(SchemaError::Mismatch(format!(
                "event {} carries a {} record",
                event.event_id,
                record.data_type()
            )));
        }
        Ok(event)
    }
}

/// The outcome of one sync of one data type for one connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncRunEvent {
    pub event_id: String,
    pub company_id: String,
    pub connection_id: String,
    pub source: String,
    pub data_type: String,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    /// An Avro `string` on the wire: `succeeded`, `failed` or `paused`.
    pub status: crate::SyncRunStatus,
    pub records_fetched: i64,
    pub pages_fetched: i64,
    pub error: Option<String>,
    /// The run's id in the sync history (`GET /v1/companies/{c}/syncs/{run}`);
    /// empty in events written before runs had ids, and for a scheduled run
    /// that found nothing and is counted in an earlier run's `repeats`.
    #[serde(default)]
    pub run_id: String,
    /// What started the run: `schedule`, `request`, `resync`, `refetch` or
    /// `reconcile`.
    #[serde(default = "schedule")]
    pub trigger: crate::SyncTrigger,
    /// Events the run published (records fetched minus those set aside and
    /// those already published lately).
    #[serde(default)]
    pub records_published: i64,
    /// Records the run set aside as dead letters (unmappable or too large).
    #[serde(default)]
    pub records_dead_lettered: i64,
    /// Who is at fault when the run did not succeed: `user`, `source`,
    /// `data` or `tributary`.
    #[serde(default)]
    pub error_fault: Option<String>,
    /// Earlier scheduled runs that found nothing and published no event
    /// of their own: this event stands for them too.
    #[serde(default)]
    pub repeats: i64,
}

fn schedule() -> crate::SyncTrigger {
    crate::SyncTrigger::Schedule
}

impl SyncRunEvent {
    pub const SCHEMA_TEXT: &'static str = include_str!("../avro/SyncRunEvent.avsc");

    pub fn topic() -> String {
        format!("{TOPIC_PREFIX}.sync_runs")
    }

    pub fn schema() -> Result<Schema, SchemaError> {
        parse_schema(Self::SCHEMA_TEXT)
    }

    pub fn from_avro(value: &Value) -> Result<Self, SchemaError> {
        apache_avro::from_value(value).map_err(SchemaError::avro)
    }
}

/// What one connection has published of one data type, counted and
/// digested (see [`manifest_digest`]): a sink holding exactly those records
/// computes the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestEvent {
    pub event_id: String,
    pub company_id: String,
    pub connection_id: String,
    pub source: String,
    pub data_type: String,
    pub run_id: String,
    pub as_of: Timestamp,
    /// Taken after a run that fetched everything the source lists.
    pub full_pass: bool,
    pub live_count: i64,
    pub digest: String,
}

impl ManifestEvent {
    pub const SCHEMA_TEXT: &'static str = include_str!("../avro/ManifestEvent.avsc");

    pub fn topic() -> String {
        format!("{TOPIC_PREFIX}.manifests")
    }

    pub fn schema() -> Result<Schema, SchemaError> {
        parse_schema(Self::SCHEMA_TEXT)
    }

    pub fn from_avro(value: &Value) -> Result<Self, SchemaError> {
        apache_avro::from_value(value).map_err(SchemaError::avro)
    }
}

/// The order-independent digest of a set of live records, each given as
/// (id, source modification time, revision): the sum modulo 2^128 of the
/// first 16 bytes (big-endian) of SHA-256(`id` NUL `millis` NUL `revision`)
/// of each, as 32 lowercase hex digits. Sums add: the digest of a union of
/// disjoint sets is the [`add_digests`] of theirs.
pub fn manifest_digest<'a>(records: impl IntoIterator<Item = (&'a str, Timestamp, i64)>) -> String {
    let sum = records
        .into_iter()
        .map(|(id, modified, revision)| {
            let mut hasher = Sha256::new();
            hasher.update(id.as_bytes());
            hasher.update([0u8]);
            hasher.update(modified.0.to_string().as_bytes());
            hasher.update([0u8]);
            hasher.update(revision.to_string().as_bytes());
            let digest = hasher.finalize();
            let mut first = [0u8; 16];
            first.copy_from_slice(&digest[..16]);
            u128::from_be_bytes(first)
        })
        .fold(0u128, u128::wrapping_add);
    format!("{sum:032x}")
}

/// The digest of the union of disjoint sets, from theirs; `None` when one
/// is not a digest.
pub fn add_digests<'a>(digests: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut sum = 0u128;
    for d in digests {
        sum = sum.wrapping_add(u128::from_str_radix(d, 16).ok()?);
    }
    Some(format!("{sum:032x}"))
}

/// Where records that cannot be mapped or decoded go, so the pipeline keeps
/// flowing and nothing is lost silently. The value is what failed, as it
/// was (the raw source JSON for `map`, the original Kafka value for
/// `decode`); the headers in [`dead_letter`] say why and where from.
pub fn dead_letter_topic() -> String {
    format!("{TOPIC_PREFIX}.dead_letters")
}

/// Header names of dead-letter messages.
pub mod dead_letter {
    /// `map` (a connector could not map a source record), `decode` (a
    /// projector could not decode a message) or `store` (a projection's
    /// store refused a decoded record, e.g. a value it cannot hold).
    pub const STAGE: &str = "tributary.stage";
    /// What went wrong, in words.
    pub const REASON: &str = "tributary.reason";
    /// `decode` and `store`: the projection that gave up on the message.
    pub const PROJECTION: &str = "tributary.projection";
    /// `decode` and `store`: where the message was read.
    pub const SOURCE_TOPIC: &str = "tributary.source.topic";
    pub const SOURCE_PARTITION: &str = "tributary.source.partition";
    pub const SOURCE_OFFSET: &str = "tributary.source.offset";
    /// `map`: the connection and data type the record came through.
    pub const CONNECTION_ID: &str = "tributary.connection_id";
    pub const DATA_TYPE: &str = "tributary.data_type";
    /// How many times an operator replayed this message already; replays
    /// stop at [`MAX_REPLAYS`] so a message that always fails cannot loop.
    pub const REPLAYS: &str = "tributary.replays";
    pub const MAX_REPLAYS: u32 = 3;
}

/// Every topic Tributary publishes to.
pub fn all_topics() -> Vec<String> {
    let mut topics: Vec<String> = DataType::ALL.iter().map(|t| t.topic()).collect();
    topics.push(SyncRunEvent::topic());
    topics.push(ManifestEvent::topic());
    topics.push(dead_letter_topic());
    topics
}

fn parse_schema(text: &str) -> Result<Schema, SchemaError> {
    Schema::parse_str(text).map_err(SchemaError::avro)
}

/// Encodes `item` as a bare Avro datum of `schema` (no wire-format header).
pub fn to_avro_datum<T: Serialize>(schema: &Schema, item: &T) -> Result<Vec<u8>, SchemaError> {
    apache_avro::writer::datum::GenericDatumWriter::builder(schema)
        .build()
        .and_then(|w| w.write_ser_to_vec(item))
        .map_err(SchemaError::avro)
}

/// Decodes a bare Avro datum written with `schema`.
pub fn from_avro_datum(schema: &Schema, mut bytes: &[u8]) -> Result<Value, SchemaError> {
    apache_avro::reader::datum::GenericDatumReader::builder(schema)
        .build()
        .and_then(|r| r.read_value(&mut bytes))
        .map_err(SchemaError::avro)
}
