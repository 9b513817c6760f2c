#![allow(clippy::unwrap_used)] // a test stops at its first surprise
use std::collections::BTreeMap;

use async_trait::async_trait;
use tributary_projection::conformance::Harness;
use tributary_schemas::DataType;
use tributary_store_sqlite::SqliteStore;

struct Sqlite {
    dir: tempfile::TempDir,
}

#[async_trait]
impl Harness for Sqlite {
    type P = SqliteStore;
    async fn open(&mut self) -> SqliteStore {
        SqliteStore::open(&self.dir.path().join("store.db"))
            .await
            .unwrap()
    }
    async fn live(
        &mut self,
        store: &SqliteStore,
        company: &str,
        data_type: DataType,
    ) -> BTreeMap<String, (i64, i64)> {
        tributary_store::live_versions(store, company, data_type.as_str())
            .await
            .unwrap()
    }
}

tributary_projection::conformance_suite!(Sqlite {
    dir: tempfile::tempdir().unwrap()
});
