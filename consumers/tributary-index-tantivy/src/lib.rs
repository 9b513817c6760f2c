//! The full-text search projection on tantivy, and its search.
//!
//! Contract:
//! - One document per (company, data type, record id): the newest version
//!   seen. Older or equal versions are ignored; deletes leave a tombstone
//!   document that search never returns, so a late older version cannot bring
//!   a deleted record back.
//! - The checkpoint is the payload of the index commit that holds the batch's
//!   documents: both become visible, or neither, at the same instant.

use std::collections::HashMap;
use std::path::Path;
use tributary_telemetry::crash_point;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tantivy::collector::TopDocs;
use tantivy::directory::MmapDirectory;
use tantivy::query::{BooleanQuery, Occur, Query, QueryParser, TermQuery};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TEXT, Value,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term, doc};
use tributary_projection::{Batch, Change, Checkpoint, Projection, ProjectionError};
use tributary_schemas::Event;
use tributary_store::{Hit, Search, SearchQuery, StoreError};

const PROJECTION: &str = "search-index";
const WRITER_MEMORY: usize = 50_000_000;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("search index {path}: {message}")]
    Open { path: String, message: String },
    #[error("search: {0}")]
    Search(String),
}

#[derive(Clone, Copy)]
struct Fields {
    key: Field,
    company_id: Field,
    data_type: Field,
    record_id: Field,
    live: Field,
    modified: Field,
    revision: Field,
    title: Field,
    body: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let fields = Fields {
        key: b.add_text_field("key", STRING | STORED),
        company_id: b.add_text_field("company_id", STRING | STORED),
        data_type: b.add_text_field("data_type", STRING | STORED),
        record_id: b.add_text_field("record_id", STRING | STORED),
        live: b.add_text_field("live", STRING),
        modified: b.add_i64_field("modified", INDEXED | STORED | FAST),
        revision: b.add_i64_field("revision", STORED),
        title: b.add_text_field("title", TEXT | STORED),
        body: b.add_text_field("body", TEXT),
    };
    (b.build(), fields)
}

fn key(company_id: &str, data_type: &str, record_id: &str) -> String {
    format!("{company_id}\u{1f}{data_type}\u{1f}{record_id}")
}

#[derive(Serialize, Deserialize, Default)]
struct Payload {
    positions: Vec<(String, i32, i64)>,
}

/// Read side: cheap to clone, safe to share with the API.
#[derive(Clone)]
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
}

/// Write side: the projection. Only one may exist per index directory.
pub struct IndexProjection {
    search: SearchIndex,
    writer: IndexWriter,
    checkpoint: Checkpoint,
}

/// Opens (creating if needed) the index in `dir`.
pub fn open(dir: &Path) -> Result<(IndexProjection, SearchIndex), IndexError> {
    let err = |message: String| IndexError::Open {
        path: dir.display().to_string(),
        message,
    };
    std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    let (schema, fields) = schema();
    let directory = MmapDirectory::open(dir).map_err(|e| err(e.to_string()))?;
    if Index::exists(&directory).map_err(|e| err(e.to_string()))? {
        let existing = Index::open(directory.clone()).map_err(|e| err(e.to_string()))?;
        if existing.schema() != schema {
            // An index is a projection: with its checkpoint gone too, the
            // projector reads every topic from the start and rebuilds it.
            tracing::warn!(path = %dir.display(), "the search index was made by an older version; rebuilding it from the topics");
            drop(existing);
            for entry in std::fs::read_dir(dir).map_err(|e| err(e.to_string()))? {
                let path = entry.map_err(|e| err(e.to_string()))?.path();
                let removed = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                removed.map_err(|e| err(format!("cannot remove {}: {e}", path.display())))?;
            }
        }
    }
    let index = Index::open_or_create(directory, schema).map_err(|e| err(e.to_string()))?;
    let reader = index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()
        .map_err(|e: tantivy::TantivyError| err(e.to_string()))?;
    let writer = index
        .writer_with_num_threads(1, WRITER_MEMORY)
        .map_err(|e| err(e.to_string()))?;
    let payload: Payload = match index.load_metas().map_err(|e| err(e.to_string()))?.payload {
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| err(format!("unreadable checkpoint in the last commit: {e}")))?,
        None => Payload::default(),
    };
    let checkpoint = payload
        .positions
        .into_iter()
        .map(|(t, p, o)| ((t, p), o))
        .collect();
    let search = SearchIndex {
        index,
        reader,
        fields,
    };
    Ok((
        IndexProjection {
            search: search.clone(),
            writer,
            checkpoint,
        },
        search,
    ))
}

#[async_trait]
impl Search for SearchIndex {
    async fn search(&self, query: &SearchQuery) -> Result<Vec<Hit>, StoreError> {
        let index = self.clone();
        let query = query.clone();
        blocking(move || {
            index.search_now(
                &query.text,
                query.companies.as_deref(),
                query.data_type.as_deref(),
                query.limit,
            )
        })
        .await
    }

    async fn count(&self, company_id: &str, data_type: &str) -> Result<usize, StoreError> {
        let index = self.clone();
        let (company_id, data_type) = (company_id.to_string(), data_type.to_string());
        blocking(move || index.count(&company_id, &data_type)).await
    }
}

/// Runs a search off the async threads (tantivy blocks on I/O).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, IndexError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Search(Box::new(e)))?
        .map_err(|e| StoreError::Search(Box::new(e)))
}

impl SearchIndex {
    /// Live records matching `text` (all words must match), best first,
    /// limited to `companies` when given.
    pub fn search_now(
        &self,
        text: &str,
        companies: Option<&[String]>,
        data_type: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Hit>, IndexError> {
        self.reader
            .reload()
            .map_err(|e| IndexError::Search(e.to_string()))?;
        let searcher = self.reader.searcher();
        let f = self.fields;
        let mut parser = QueryParser::for_index(&self.index, vec![f.title, f.body]);
        parser.set_conjunction_by_default();
        let (user_query, _errors) = parser.parse_query_lenient(text);
        let term = |field: Field, value: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, value),
                IndexRecordOption::Basic,
            ))
        };
        let mut clauses: Vec<(Occur, Box<dyn Query>)> =
            vec![(Occur::Must, user_query), (Occur::Must, term(f.live, "1"))];
        if let Some(companies) = companies {
            let any: Vec<(Occur, Box<dyn Query>)> = companies
                .iter()
                .map(|c| (Occur::Should, term(f.company_id, c)))
                .collect();
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(any))));
        }
        if let Some(data_type) = data_type {
            clauses.push((Occur::Must, term(f.data_type, data_type)));
        }
        let query = BooleanQuery::new(clauses);
        let top = searcher
            .search(
                &query,
                &TopDocs::with_limit(limit.clamp(1, 100)).order_by_score(),
            )
            .map_err(|e| IndexError::Search(e.to_string()))?;
        top.into_iter()
            .map(|(score, address)| {
                let doc: TantivyDocument = searcher
                    .doc(address)
                    .map_err(|e| IndexError::Search(e.to_string()))?;
                let text = |field| {
                    doc.get_first(field)
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .to_string()
                };
                Ok(Hit {
                    company_id: text(f.company_id),
                    data_type: text(f.data_type),
                    id: text(f.record_id),
                    title: text(f.title),
                    score,
                })
            })
            .collect()
    }

    /// Matches the live documents of one company and data type.
    fn live_query(&self, company_id: &str, data_type: &str) -> BooleanQuery {
        let f = self.fields;
        let term = |field: Field, value: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, value),
                IndexRecordOption::Basic,
            ))
        };
        BooleanQuery::new(vec![
            (Occur::Must, term(f.company_id, company_id)),
            (Occur::Must, term(f.data_type, data_type)),
            (Occur::Must, term(f.live, "1")),
        ])
    }

    /// Live documents of one company and data type.
    pub fn count(&self, company_id: &str, data_type: &str) -> Result<usize, IndexError> {
        self.reader
            .reload()
            .map_err(|e| IndexError::Search(e.to_string()))?;
        let query = self.live_query(company_id, data_type);
        self.reader
            .searcher()
            .search(&query, &tantivy::collector::Count)
            .map_err(|e| IndexError::Search(e.to_string()))
    }

    /// Live record ids of one company and data type, with their versions
    /// (modification time, revision).
    pub fn live_versions(
        &self,
        company_id: &str,
        data_type: &str,
    ) -> Result<std::collections::BTreeMap<String, (i64, i64)>, IndexError> {
        let n = self.count(company_id, data_type)?;
        let f = self.fields;
        let query = self.live_query(company_id, data_type);
        let searcher = self.reader.searcher();
        let top = searcher
            .search(&query, &TopDocs::with_limit(n.max(1)).order_by_score())
            .map_err(|e| IndexError::Search(e.to_string()))?;
        top.into_iter()
            .map(|(_, address)| {
                let doc: TantivyDocument = searcher
                    .doc(address)
                    .map_err(|e| IndexError::Search(e.to_string()))?;
                let id = doc
                    .get_first(f.record_id)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string();
                let field = |f| {
                    doc.get_first(f)
                        .and_then(|v| v.as_i64())
                        .unwrap_or_default()
                };
                Ok((id, (field(f.modified), field(f.revision))))
            })
            .collect()
    }

    /// The stored version of `key` (modification time, revision), if any
    /// (committed documents only).
    fn version_of(&self, key: &str) -> tantivy::Result<Option<(i64, i64)>> {
        let searcher = self.reader.searcher();
        let query = TermQuery::new(
            Term::from_field_text(self.fields.key, key),
            IndexRecordOption::Basic,
        );
        let top = searcher.search(&query, &TopDocs::with_limit(1).order_by_score())?;
        match top.first() {
            Some((_, address)) => {
                let doc: TantivyDocument = searcher.doc(*address)?;
                let field = |f| doc.get_first(f).and_then(|v| v.as_i64());
                Ok(field(self.fields.modified)
                    .map(|m| (m, field(self.fields.revision).unwrap_or(0))))
            }
            None => Ok(None),
        }
    }
}

fn title_of(event: &Event) -> String {
    let text = event
        .record
        .as_ref()
        .map(|r| r.search_text())
        .unwrap_or_default();
    let mut title: String = text.chars().take(120).collect();
    if title.is_empty() {
        title = event.source_record_id.clone();
    }
    title
}

impl IndexProjection {
    /// The read side of this index.
    pub fn search_index(&self) -> &SearchIndex {
        &self.search
    }

    fn apply_batch(&mut self, batch: &Batch) -> tantivy::Result<()> {
        let f = self.search.fields;
        self.search.reader.reload()?;
        // Versions written by this batch are not searchable until the commit.
        let mut pending: HashMap<String, (i64, i64)> = HashMap::new();
        for item in self.checkpoint.unapplied(batch) {
            let Change::Record(event) = &item.change else {
                continue;
            };
            let k = key(&event.company_id, &event.data_type, &event.source_record_id);
            let version = (event.source_modified_at.millis(), event.revision);
            let current = match pending.get(&k) {
                Some(v) => Some(*v),
                None => self.search.version_of(&k)?,
            };
            if current.is_some_and(|c| c >= version) {
                continue;
            }
            self.writer.delete_term(Term::from_field_text(f.key, &k));
            let body = event
                .record
                .as_ref()
                .map(|r| r.search_text())
                .unwrap_or_default();
            self.writer.add_document(doc!(
                f.key => k.clone(),
                f.company_id => event.company_id.clone(),
                f.data_type => event.data_type.clone(),
                f.record_id => event.source_record_id.clone(),
                f.live => if event.deleted { "0" } else { "1" },
                f.modified => version.0,
                f.revision => version.1,
                f.title => title_of(event),
                f.body => body,
            ))?;
            pending.insert(k, version);
        }
        let mut next = self.checkpoint.clone();
        next.advance_all(&batch.positions);
        let payload = Payload {
            positions: next.iter().map(|(t, p, o)| (t.to_string(), p, o)).collect(),
        };
        let mut commit = self.writer.prepare_commit()?;
        commit.set_payload(
            &serde_json::to_string(&payload)
                .map_err(|e| tantivy::TantivyError::InternalError(e.to_string()))?,
        );
        crash_point("index.before_commit");
        commit.commit()?;
        crash_point("index.after_commit");
        self.checkpoint = next;
        Ok(())
    }
}

#[async_trait]
impl Projection for IndexProjection {
    fn name(&self) -> &'static str {
        PROJECTION
    }

    async fn checkpoint(&mut self) -> Result<Checkpoint, ProjectionError> {
        Ok(self.checkpoint.clone())
    }

    async fn apply(&mut self, batch: &Batch) -> Result<(), ProjectionError> {
        let result = tokio::task::block_in_place(|| self.apply_batch(batch));
        result.map_err(|e| {
            // Drop whatever the failed batch left uncommitted.
            let _ = self.writer.rollback();
            ProjectionError::of_store(PROJECTION, false, e)
        })
    }
}
