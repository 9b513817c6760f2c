import { useState } from "react";
import { api, call, type Delivery } from "../api/client";
import { href } from "../route";
import { Action, Badge, ErrorBox, Loading, Table, useLoad, when } from "../ui";

const EVENT_TYPES = ["sync.completed", "sync.failed", "connection.status_changed", "dead_letters.added", "reconciliation.mismatch"];

/// Webhook subscriptions; one's deliveries, their attempts, and replay.
export function Webhooks({ selected }: { selected?: string }) {
  const list = useLoad(
    () => call(api.GET("/v1/webhooks")).then((r) => r.webhooks),
    [],
  );
  return (
    <section>
      <h1>Webhooks</h1>
      <ErrorBox error={list.error} />
      <Loading when={list.loading && !list.value} />
      {list.value?.length === 0 && <p>No subscriptions.</p>}
      {list.value && list.value.length > 0 && (
        <Table label="subscriptions">
          <thead>
            <tr>
              <th>Subscription</th>
              <th>URL</th>
              <th>Events</th>
              <th>Company</th>
              <th>Actions</th>
            </tr>
          </thead>
          <tbody>
            {list.value.map((w) => (
              <tr key={w.id} aria-current={selected === w.id ? "true" : undefined} data-subscription={w.id}>
                <td>
                  <a href={href("webhooks", w.id)}>{w.id}</a>
                  {w.removed_at ? <Badge kind="muted">removed</Badge> : null}
                </td>
                <td className="wrap">{w.url}</td>
                <td className="wrap">{w.event_types.join(", ")}</td>
                <td>{w.company_id ?? "all"}</td>
                <td className="buttons">
                  {!w.removed_at && (
                    <>
                      <Action
                        label="Send test"
                        busyLabel="Queueing…"
                        run={() => call(api.POST("/v1/webhooks/{id}/test", { params: { path: { id: w.id } } }))}
                        done={() => (window.location.hash = href("webhooks", w.id))}
                      />
                      <Action
                        label="Remove"
                        busyLabel="Removing…"
                        className="danger"
                        run={async () => {
                          if (!window.confirm(`Remove ${w.id}? Pending deliveries are cancelled.`)) return;
                          await call(api.DELETE("/v1/webhooks/{id}", { params: { path: { id: w.id } } }));
                          list.reload();
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
      <Subscribe onAdded={list.reload} />
      {selected && <Deliveries subscription={selected} />}
    </section>
  );
}

function Subscribe({ onAdded }: { onAdded: () => void }) {
  const [url, setUrl] = useState("");
  const [types, setTypes] = useState<string[]>(["sync.completed", "sync.failed"]);
  const [company, setCompany] = useState("");
  const [secret, setSecret] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  return (
    <form
      className="card"
      onSubmit={(e) => {
        e.preventDefault();
        setBusy(true);
        setError(null);
        call(
          api.POST("/v1/webhooks", {
            body: { url: url.trim(), event_types: types, company_id: company.trim() || null },
          }),
        )
          .then((added) => {
            setSecret(added.secret);
            onAdded();
          })
          .catch(setError)
          .finally(() => setBusy(false));
      }}
    >
      <h3>Subscribe</h3>
      <label>
        URL <input value={url} onChange={(e) => setUrl(e.target.value)} placeholder="https://example.com/hooks" required aria-label="url" />
      </label>
      <fieldset>
        <legend>Events</legend>
        {EVENT_TYPES.map((t) => (
          <label key={t} className="check">
            <input
              type="checkbox"
              checked={types.includes(t)}
              onChange={(e) => setTypes(e.target.checked ? [...types, t] : types.filter((x) => x !== t))}
            />{" "}
            {t}
          </label>
        ))}
      </fieldset>
      <label>
        Company (optional) <input value={company} onChange={(e) => setCompany(e.target.value)} aria-label="company" />
      </label>
      <button type="submit" disabled={busy}>
        {busy ? "Subscribing…" : "Subscribe"}
      </button>
      <ErrorBox error={error} />
      {secret && (
        <p className="notice">
          Signing secret, shown this once: <code className="secret">{secret}</code>
        </p>
      )}
    </form>
  );
}

function Deliveries({ subscription }: { subscription: string }) {
  const list = useLoad(
    () =>
      call(api.GET("/v1/webhooks/{id}/deliveries", { params: { path: { id: subscription }, query: { limit: 100 } } })).then(
        (r) => r.deliveries,
      ),
    [subscription],
  );
  const [open, setOpen] = useState<string | null>(null);
  return (
    <>
      <div className="title-row">
        <h2>Deliveries of {subscription}</h2>
        <button onClick={list.reload} disabled={list.loading}>
          Refresh
        </button>
      </div>
      <ErrorBox error={list.error} />
      <Loading when={list.loading && !list.value} />
      {list.value?.length === 0 && <p>No deliveries yet.</p>}
      {list.value && list.value.length > 0 && (
        <Table label="deliveries">
          <thead>
            <tr>
              <th>Delivery</th>
              <th>Event</th>
              <th>Status</th>
              <th className="num">Attempts</th>
              <th>Last</th>
              <th>Actions</th>
            </tr>
          </thead>
          <tbody>
            {list.value.map((d) => (
              <DeliveryRow key={d.id} delivery={d} open={open === d.id} toggle={() => setOpen(open === d.id ? null : d.id)} replayed={list.reload} />
            ))}
          </tbody>
        </Table>
      )}
    </>
  );
}

function DeliveryRow({ delivery: d, open, toggle, replayed }: { delivery: Delivery; open: boolean; toggle: () => void; replayed: () => void }) {
  const kind = d.status === "delivered" ? "good" : d.status === "failed" ? "bad" : d.status === "pending" ? "busy" : "muted";
  return (
    <>
      <tr data-delivery={d.id}>
        <td>
          {d.id}
          {d.replay_of ? <span className="muted"> (replay)</span> : null}
        </td>
        <td>{d.event_type}</td>
        <td>
          <Badge kind={kind}>{d.status}</Badge>
        </td>
        <td className="num">{d.attempts}</td>
        <td className="wrap">
          {when(d.last_attempt_at)} {d.last_status_code ?? ""} {d.last_error ?? ""}
        </td>
        <td className="buttons">
          <button className="secondary" onClick={toggle} aria-expanded={open}>
            {open ? "Hide" : "Attempts"}
          </button>
          <Action
            label="Replay"
            busyLabel="Queueing…"
            run={() => call(api.POST("/v1/webhook-deliveries/{id}/replay", { params: { path: { id: d.id } } }))}
            done={replayed}
          />
        </td>
      </tr>
      {open && (
        <tr className="detail">
          <td colSpan={6}>
            <Attempts id={d.id} />
          </td>
        </tr>
      )}
    </>
  );
}

function Attempts({ id }: { id: string }) {
  const one = useLoad(
    () => call(api.GET("/v1/webhook-deliveries/{id}", { params: { path: { id } } })).then((r) => r.delivery),
    [id],
  );
  const d = one.value;
  return (
    <>
      <ErrorBox error={one.error} />
      {d && (
        <>
          <ol className="attempts">
            {(d.attempt_log ?? []).map((a) => (
              <li key={a.attempt}>
                #{a.attempt} {when(a.at)}: {a.status_code ?? "no answer"} in {a.duration_ms} ms {a.error ?? ""}
              </li>
            ))}
          </ol>
          {d.next_attempt_at && <p className="muted">next attempt {when(d.next_attempt_at)}</p>}
          <pre className="json">{JSON.stringify(d.payload, null, 2)}</pre>
        </>
      )}
    </>
  );
}
