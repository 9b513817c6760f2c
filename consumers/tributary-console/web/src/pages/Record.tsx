import { api, call } from "../api/client";
import { href } from "../route";
import { Action, ErrorBox, Loading, useLoad, when } from "../ui";
import { useState } from "react";

/// One record with its envelope.
export function RecordPage({ company, dataType, id }: { company: string; dataType: string; id: string }) {
  const record = useLoad(
    () => call(api.GET("/v1/companies/{company}/data/{data_type}/{id}", { params: { path: { company, data_type: dataType, id } } })),
    [company, dataType, id],
  );
  const [queued, setQueued] = useState<string | null>(null);
  const r = record.value;
  return (
    <section>
      <p className="crumbs">
        <a href={href("companies")}>Companies</a> / <a href={href("companies", company)}>{company}</a> /{" "}
        <a href={href("companies", company, "records", dataType)}>{dataType}</a> / {id}
      </p>
      <h1>{id}</h1>
      <ErrorBox error={record.error} />
      <Loading when={record.loading && !r} />
      {r && (
        <>
          <dl className="envelope">
            <dt>Company</dt>
            <dd>{r.company_id}</dd>
            <dt>Data type</dt>
            <dd>{r.data_type}</dd>
            <dt>Connection</dt>
            <dd>{r.connection_id}</dd>
            <dt>Source</dt>
            <dd>{r.source}</dd>
            <dt>Modified at source</dt>
            <dd>{when(r.source_modified_at)}</dd>
            <dt>Fetched</dt>
            <dd>{when(r.fetched_at)}</dd>
            <dt>Deleted</dt>
            <dd>{r.deleted ? "yes" : "no"}</dd>
            <dt>Event</dt>
            <dd className="wrap">{r.event_id}</dd>
            <dt>Revision</dt>
            <dd>{r.revision}</dd>
          </dl>
          <div className="actions">
            <Action
              label="Refetch from the source"
              busyLabel="Queueing…"
              run={() =>
                call(
                  api.POST("/v1/companies/{company}/data/{data_type}/{id}/refetch", {
                    params: { path: { company, data_type: dataType, id } },
                  }),
                )
              }
              done={() => setQueued("queued: see the company's sync history")}
            />
            {queued && <span className="muted">{queued}</span>}
          </div>
          <h2>Data</h2>
          <pre className="json">{JSON.stringify(r.data, null, 2)}</pre>
        </>
      )}
    </section>
  );
}
