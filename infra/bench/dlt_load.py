"""dlt loading the benchmark's Xero-format source into PostgreSQL with its
REST API source: the comparison `tributary-bench` runs. Arguments come from
the environment (BENCH_API, BENCH_TENANTS, BENCH_PG, BENCH_PAGE_SIZE,
BENCH_DIR); prints one JSON line with what it loaded."""

import json
import os
import time

import dlt
from dlt.sources.rest_api import rest_api_source


def source_for(api: str, tenant: str, page_size: int):
    return rest_api_source(
        {
            "client": {
                "base_url": api,
                "headers": {"xero-tenant-id": tenant, "Accept": "application/json"},
                "auth": {"type": "bearer", "token": "bench-access"},
                "paginator": {
                    "type": "page_number",
                    "page_param": "page",
                    "base_page": 1,
                    "total_path": "pagination.pageCount",
                },
            },
            "resources": [
                {
                    "name": f"invoices_{tenant.replace('-', '_')}",
                    "table_name": "invoices",
                    "primary_key": "invoice_id",
                    "write_disposition": "merge",
                    "endpoint": {
                        "path": "Invoices",
                        "params": {"pageSize": page_size},
                        "data_selector": "Invoices",
                    },
                }
            ],
        },
        name=f"xero_{tenant.replace('-', '_')}",
    )


def main() -> None:
    api = os.environ["BENCH_API"]
    tenants = os.environ["BENCH_TENANTS"].split(",")
    page_size = int(os.environ.get("BENCH_PAGE_SIZE", "1000"))
    pipeline = dlt.pipeline(
        pipeline_name="tributary_bench",
        destination=dlt.destinations.postgres(os.environ["BENCH_PG"]),
        dataset_name="dlt_xero",
        pipelines_dir=os.environ["BENCH_DIR"],
    )
    started = time.monotonic()
    loaded = 0
    info = pipeline.run([source_for(api, t, page_size) for t in tenants])
    for package in info.load_packages:
        for job in package.jobs.get("completed_jobs", []):
            loaded += 1
    print(json.dumps({"seconds": time.monotonic() - started, "jobs": loaded}))


if __name__ == "__main__":
    main()
