#![allow(clippy::unwrap_used)] // a test stops at its first surprise
use std::collections::BTreeMap;

use async_trait::async_trait;
use tributary_projection::conformance::Harness;
use tributary_schemas::DataType;
use tributary_store_postgres::PostgresStore;
use tributary_testkit::PgCluster;

/// A real PostgreSQL per test, stopped and deleted when the test ends.
struct Postgres {
    cluster: PgCluster,
}

#[async_trait]
impl Harness for Postgres {
    type P = PostgresStore;
    async fn open(&mut self) -> PostgresStore {
        PostgresStore::connect(&self.cluster.url()).await.unwrap()
    }
    async fn live(
        &mut self,
        store: &PostgresStore,
        company: &str,
        data_type: DataType,
    ) -> BTreeMap<String, (i64, i64)> {
        tributary_store::live_versions(store, company, data_type.as_str())
            .await
            .unwrap()
    }
}

tributary_projection::conformance_suite!(Postgres {
    cluster: PgCluster::start()
});
