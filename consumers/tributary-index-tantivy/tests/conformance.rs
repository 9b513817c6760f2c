#![allow(clippy::unwrap_used)] // a test stops at its first surprise
use std::collections::BTreeMap;

use async_trait::async_trait;
use tributary_index_tantivy::IndexProjection;
use tributary_projection::conformance::Harness;
use tributary_schemas::DataType;

struct Tantivy {
    dir: tempfile::TempDir,
}

#[async_trait]
impl Harness for Tantivy {
    type P = IndexProjection;
    async fn open(&mut self) -> IndexProjection {
        tributary_index_tantivy::open(self.dir.path()).unwrap().0
    }
    async fn live(
        &mut self,
        projection: &IndexProjection,
        company: &str,
        data_type: DataType,
    ) -> BTreeMap<String, (i64, i64)> {
        projection
            .search_index()
            .live_versions(company, data_type.as_str())
            .unwrap()
    }
}

tributary_projection::conformance_suite!(Tantivy {
    dir: tempfile::tempdir().unwrap()
});
