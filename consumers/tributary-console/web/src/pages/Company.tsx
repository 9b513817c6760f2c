import { useEffect, useState } from "react";
import { api, ApiFailure, call, type Run } from "../api/client";
import { dataTypeHealth, lastSuccess } from "../health";
import { href } from "../route";
import { Action, Badge, ErrorBox, Loading, Table, useLoad, when } from "../ui";

const OPEN = ["queued", "fetching", "publishing"];

/// One company: its connections, its data types, sync actions and its
/// sync history.
export function Company({ company }: { company: string }) {
  const status = useLoad(
    () => call(api.GET("/v1/companies/{company}/status", { params: { path: { company } } })),
    [company],
  );
  const runs = useLoad(
    () =>
      call(api.GET("/v1/companies/{company}/syncs", { params: { path: { company }, query: { limit: 30 } } })).then(
        (page) => page.runs,
      ),
    [company],
  );
  // While a run is open, follow it.
  const open = runs.value?.some((r) => OPEN.includes(r.status)) ?? false;
  useEffect(() => {
    if (!open) return;
    const timer = setInterval(() => {
      runs.reload();
      status.reload();
    }, 1500);
    return () => clearInterval(timer);
  }, [open, runs.reload, status.reload]);
  const refresh = () => {
    runs.reload();
    status.reload();
  };
  const types = status.value?.data_types.map((e) => e.data_type) ?? [];
  return (
    <section>
      <p className="crumbs">
        <a href={href("companies")}>Companies</a> / {company}
      </p>
      <h1>{company}</h1>
      <Connections company={company} onChange={refresh} />
      <SyncActions company={company} types={types} onQueued={refresh} />
      <h2>Data</h2>
      {status.error instanceof ApiFailure && status.error.status === 404 ? (
        <p className="muted">No data for {company} yet: it arrives once a connection is linked and synced.</p>
      ) : (
        <ErrorBox error={status.error} />
      )}
      <Loading when={status.loading && !status.value} />
      {status.value && (
        <Table label="data types">
          <thead>
            <tr>
              <th>Data type</th>
              <th className="num">Records</th>
              <th className="num">Deleted</th>
              <th className="num">Indexed</th>
              <th>Last success</th>
              <th>Store vs. manifest</th>
            </tr>
          </thead>
          <tbody>
            {status.value.data_types.map((e) => {
              const h = dataTypeHealth(e, Date.now());
              return (
                <tr key={e.data_type} className={h.failing ? "row-bad" : h.stale ? "row-warn" : undefined}>
                  <td>
                    <a href={href("companies", company, "records", e.data_type)}>{e.data_type}</a>
                  </td>
                  <td className="num">{e.records}</td>
                  <td className="num">{e.deleted}</td>
                  <td className="num">{e.indexed ?? "—"}</td>
                  <td>{lastSuccess(h)}</td>
                  <td>
                    {e.manifest ? (
                      e.manifest.store_matches ? (
                        <Badge kind="good">matches</Badge>
                      ) : (
                        <Badge kind="warn">
                          {e.records} of {e.manifest.live_count}
                        </Badge>
                      )
                    ) : (
                      "—"
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </Table>
      )}
      <h2>Sync history</h2>
      <ErrorBox error={runs.error} />
      <Loading when={runs.loading && !runs.value} />
      {runs.value?.length === 0 && <p>No runs yet.</p>}
      <ol className="timeline">{runs.value?.map((r) => <RunItem key={r.id} run={r} />)}</ol>
    </section>
  );
}

function RunItem({ run }: { run: Run }) {
  const kind = run.status === "succeeded" ? "good" : run.status === "failed" ? "bad" : run.status === "paused" ? "warn" : "busy";
  return (
    <li className={`run run-${kind}`} data-run={run.id}>
      <div className="run-head">
        <Badge kind={kind}>{run.status}</Badge> <strong>{run.data_type}</strong>{" "}
        <span className="muted">
          {run.trigger}
          {run.record_id ? ` ${run.record_id}` : ""} · {run.connection_id}
        </span>
      </div>
      <div className="states">
        {run.states.map((s, i) => (
          <span key={i} className="state">
            {s.state} <time dateTime={s.at}>{when(s.at)}</time>
          </span>
        ))}
      </div>
      <div className="muted">
        fetched {run.records_fetched} · published {run.records_published} · deleted {run.records_deleted} · dead-lettered{" "}
        {run.records_dead_lettered}
        {run.repeats > 0 ? ` · ${run.repeats} idle repeats folded in` : ""}
      </div>
      {run.error && (
        <p className="error">
          {run.error} {run.error_fault ? <span className="muted">(fault: {run.error_fault})</span> : null}
        </p>
      )}
    </li>
  );
}

function SyncActions({ company, types, onQueued }: { company: string; types: string[]; onQueued: () => void }) {
  const [only, setOnly] = useState("");
  const [queued, setQueued] = useState<string[] | null>(null);
  const ask = (resync: boolean) => async () => {
    const answer = await call(
      api.POST("/v1/companies/{company}/syncs", {
        params: { path: { company } },
        body: { data_types: only ? [only] : [], resync, reconcile: false },
      }),
    );
    setQueued(answer.runs.map((r) => r.id));
    onQueued();
  };
  return (
    <div className="card actions">
      <label>
        Data type{" "}
        <select value={only} onChange={(e) => setOnly(e.target.value)} aria-label="data type to sync">
          <option value="">all</option>
          {types.map((t) => (
            <option key={t} value={t}>
              {t}
            </option>
          ))}
        </select>
      </label>
      <Action label="Sync now" busyLabel="Queueing…" run={ask(false)} />
      <Action label="Resync" busyLabel="Queueing…" run={ask(true)} className="secondary" />
      {queued && (
        <span className="muted queued" data-runs={queued.join(" ")}>
          queued {queued.length === 1 ? queued[0] : `${queued.length} runs`}
        </span>
      )}
    </div>
  );
}

function Connections({ company, onChange }: { company: string; onChange: () => void }) {
  const list = useLoad(
    () =>
      call(api.GET("/v1/connections")).then((r) =>
        (r.connections).filter((c) => c.company_id === company),
      ),
    [company],
  );
  const [checked, setChecked] = useState<Record<string, string>>({});
  const changed = () => {
    list.reload();
    onChange();
  };
  return (
    <>
      <h2>Connections</h2>
      <ErrorBox error={list.error} />
      <Loading when={list.loading && !list.value} />
      {list.value && (
        <Table label="connections">
          <thead>
            <tr>
              <th>Connection</th>
              <th>Source</th>
              <th>Status</th>
              <th>Actions</th>
            </tr>
          </thead>
          <tbody>
            {list.value.map((c) => (
              <tr key={c.id} data-connection={c.id}>
                <td>{c.id}</td>
                <td>{c.source}</td>
                <td className="wrap">
                  <Badge kind={c.status === "linked" ? "good" : c.status === "unlinked" ? "muted" : "warn"}>{c.status}</Badge>{" "}
                  {c.status_reason ?? ""} {checked[c.id] ? <span className="muted">check: {checked[c.id]}</span> : null}
                </td>
                <td className="buttons">
                  {c.status !== "unlinked" && (
                    <>
                      <Action
                        label="Check"
                        busyLabel="Checking…"
                        run={() => call(api.POST("/v1/connections/{id}/check", { params: { path: { id: c.id } } }))}
                        done={(r) => setChecked({ ...checked, [c.id]: (r as { outcome: string }).outcome })}
                      />
                      <Action
                        label="Remove"
                        busyLabel="Removing…"
                        className="danger"
                        run={async () => {
                          if (!window.confirm(`Unlink ${c.id}? Its records stay; its credentials are erased.`)) return;
                          await call(api.DELETE("/v1/connections/{id}", { params: { path: { id: c.id } } }));
                          changed();
                        }}
                      />
                    </>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </Table>
      )}
      <AddConnection company={company} onAdded={changed} />
    </>
  );
}

function AddConnection({ company, onAdded }: { company: string; onAdded: () => void }) {
  const [source, setSource] = useState("xero");
  const [settings, setSettings] = useState("");
  const [authorize, setAuthorize] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  return (
    <form
      className="card add-connection"
      onSubmit={(e) => {
        e.preventDefault();
        setError(null);
        let parsed: Record<string, unknown> | undefined;
        try {
          parsed = settings.trim() ? JSON.parse(settings) : undefined;
        } catch (err) {
          setError(`settings are not JSON: ${String(err)}`);
          return;
        }
        setBusy(true);
        call(api.POST("/v1/connections", { body: { company_id: company, source, settings: parsed } }))
          .then((added) => {
            setAuthorize(added.authorize_url ?? null);
            onAdded();
          })
          .catch(setError)
          .finally(() => setBusy(false));
      }}
    >
      <h3>Add a connection</h3>
      <label>
        Source{" "}
        <select value={source} onChange={(e) => setSource(e.target.value)} aria-label="source">
          <option value="xero">Xero</option>
          <option value="square">Square</option>
          <option value="open_banking">Open Banking</option>
          <option value="sandbox">Sandbox</option>
        </select>
      </label>
      <label>
        Settings (JSON, optional)
        <textarea value={settings} onChange={(e) => setSettings(e.target.value)} rows={2} placeholder='{"access_token": "…"}' />
      </label>
      <button type="submit" disabled={busy}>
        {busy ? "Adding…" : "Add"}
      </button>
      <ErrorBox error={error} />
      {authorize && (
        <p className="notice">
          Grant access at the source, which sends you back here:{" "}
          <a className="authorize" href={authorize}>
            Link with {source}
          </a>
        </p>
      )}
    </form>
  );
}
