import { useState } from "react";
import { api, call, type Letter, type Schemas } from "../api/client";
import { Action, Badge, ErrorBox, Loading, Table, useLoad } from "../ui";

/// Dead letters of every stage, filtered by stage and company: why each
/// was set aside, its raw payload, and replay.
export function DeadLetters() {
  const [stage, setStage] = useState("");
  const [company, setCompany] = useState("");
  const list = useLoad(
    () =>
      call(
        api.GET("/v1/dead-letters", {
          params: { query: { limit: 200, ...(stage ? { stage } : {}), ...(company.trim() ? { company: company.trim() } : {}) } },
        }),
      ).then((r) => r.dead_letters),
    [stage, company],
  );
  const [open, setOpen] = useState<string | null>(null);
  const [outcome, setOutcome] = useState<Record<string, string>>({});
  return (
    <section>
      <h1>Dead letters</h1>
      <div className="card filters">
        <label>
          Stage{" "}
          <select value={stage} onChange={(e) => setStage(e.target.value)} aria-label="stage">
            <option value="">all</option>
            <option value="map">map</option>
            <option value="decode">decode</option>
            <option value="store">store</option>
          </select>
        </label>
        <label>
          Company <input value={company} onChange={(e) => setCompany(e.target.value)} placeholder="any" aria-label="company" />
        </label>
      </div>
      <ErrorBox error={list.error} />
      <Loading when={list.loading && !list.value} />
      {list.value?.length === 0 && <p>No dead letters.</p>}
      {list.value && list.value.length > 0 && (
        <Table label="dead letters">
          <thead>
            <tr>
              <th>Letter</th>
              <th>Stage</th>
              <th>Company</th>
              <th>Data type</th>
              <th>Reason</th>
              <th>Actions</th>
            </tr>
          </thead>
          <tbody>
            {list.value.map((l) => (
              <LetterRow
                key={l.id}
                letter={l}
                open={open === l.id}
                toggle={() => setOpen(open === l.id ? null : l.id)}
                outcome={outcome[l.id]}
                replayed={(what) => {
                  setOutcome({ ...outcome, [l.id]: what });
                  list.reload();
                }}
              />
            ))}
          </tbody>
        </Table>
      )}
    </section>
  );
}

function LetterRow({
  letter: l,
  open,
  toggle,
  outcome,
  replayed,
}: {
  letter: Letter;
  open: boolean;
  toggle: () => void;
  outcome?: string;
  replayed: (what: string) => void;
}) {
  return (
    <>
      <tr data-letter={l.id}>
        <td>{l.id}</td>
        <td>{l.stage ? <Badge kind="warn">{l.stage}</Badge> : "—"}</td>
        <td>{l.company_id ?? "—"}</td>
        <td>{l.data_type ?? "—"}</td>
        <td className="wrap">{l.reason ?? l.unreadable}</td>
        <td className="buttons">
          <button className="secondary" onClick={toggle} aria-expanded={open}>
            {open ? "Hide payload" : "Payload"}
          </button>
          {l.replayed ? (
            <Badge kind="good">replayed</Badge>
          ) : (
            <Action
              label="Replay"
              busyLabel="Replaying…"
              run={() => call(api.POST("/v1/dead-letters/{id}/replay", { params: { path: { id: l.id } } }))}
              done={(r) => replayed(JSON.stringify(r))}
            />
          )}
          {outcome && <span className="muted replayed">{outcome}</span>}
        </td>
      </tr>
      {open && (
        <tr className="detail">
          <td colSpan={6}>
            <Payload id={l.id} />
          </td>
        </tr>
      )}
    </>
  );
}

function Payload({ id }: { id: string }) {
  const detail = useLoad(
    () => call(api.GET("/v1/dead-letters/{id}", { params: { path: { id } } })),
    [id],
  );
  const d: Schemas["LetterDetail"] | undefined = detail.value;
  return (
    <>
      <ErrorBox error={detail.error} />
      <Loading when={detail.loading && !d} />
      {d && (
        <>
          <pre className="json">{JSON.stringify(d.letter, null, 2)}</pre>
          <h3>Payload</h3>
          <pre className="json payload">{d.payload_text !== null && d.payload_text !== undefined ? pretty(d.payload_text) : d.payload_base64}</pre>
          {d.payload_text === null || d.payload_text === undefined ? <p className="muted">not text: base64</p> : null}
        </>
      )}
    </>
  );
}

function pretty(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}
