import { useEffect, useState } from "react";
import { api, call, type Schemas } from "../api/client";
import { go, href } from "../route";
import { ErrorBox, Loading, Table, when } from "../ui";

type Rec = Schemas["StoredRecord"];
type Hit = Schemas["Hit"];

/// A company's records of one data type, a page at a time, or the hits of
/// a search within them.
export function Records({ company, dataType }: { company: string; dataType: string }) {
  const [pages, setPages] = useState<Rec[][]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(false);
  const [deleted, setDeleted] = useState(false);
  const [query, setQuery] = useState("");
  const [hits, setHits] = useState<Hit[] | null>(null);

  const load = (cursor: string | null, keep: Rec[][]) => {
    setLoading(true);
    call(
      api.GET("/v1/companies/{company}/data/{data_type}", {
        params: {
          path: { company, data_type: dataType },
          query: { limit: 50, include_deleted: deleted, ...(cursor ? { cursor } : {}) },
        },
      }),
    )
      .then((page) => {
        setPages([...keep, page.records]);
        setNext(page.next_cursor ?? null);
        setError(null);
      })
      .catch(setError)
      .finally(() => setLoading(false));
  };
  useEffect(() => load(null, []), [company, dataType, deleted]);

  const search = (e: React.FormEvent) => {
    e.preventDefault();
    if (!query.trim()) {
      setHits(null);
      return;
    }
    setLoading(true);
    call(api.GET("/v1/search", { params: { query: { q: query, company, data_type: dataType, limit: 50 } } }))
      .then((r) => {
        setHits(r.hits);
        setError(null);
      })
      .catch(setError)
      .finally(() => setLoading(false));
  };
  const records = pages.flat();
  return (
    <section>
      <p className="crumbs">
        <a href={href("companies")}>Companies</a> / <a href={href("companies", company)}>{company}</a> / {dataType}
      </p>
      <h1>{dataType}</h1>
      <form className="search" onSubmit={search} role="search">
        <input
          type="search"
          aria-label={`search ${dataType}`}
          placeholder={`Search ${dataType}…`}
          value={query}
          onChange={(e) => setQuery(e.target.value)}
        />
        <button type="submit">Search</button>
        {hits && (
          <button
            type="button"
            className="secondary"
            onClick={() => {
              setHits(null);
              setQuery("");
            }}
          >
            Clear
          </button>
        )}
        <label className="check">
          <input type="checkbox" checked={deleted} onChange={(e) => setDeleted(e.target.checked)} /> deleted too
        </label>
      </form>
      <ErrorBox error={error} />
      <Loading when={loading} />
      {hits ? (
        <>
          <p className="muted">{hits.length} hit(s)</p>
          <Table label="search hits">
            <thead>
              <tr>
                <th>Record</th>
                <th>Title</th>
                <th className="num">Score</th>
              </tr>
            </thead>
            <tbody>
              {hits.map((h) => (
                <tr key={h.id} className="hit" onClick={() => go("companies", company, "records", dataType, h.id)}>
                  <td>
                    <a href={href("companies", company, "records", dataType, h.id)}>{h.id}</a>
                  </td>
                  <td className="wrap">{h.title}</td>
                  <td className="num">{h.score.toFixed(2)}</td>
                </tr>
              ))}
            </tbody>
          </Table>
        </>
      ) : (
        <>
          <Table label="records">
            <thead>
              <tr>
                <th>Record</th>
                <th>Summary</th>
                <th>Modified at source</th>
              </tr>
            </thead>
            <tbody>
              {records.map((r) => (
                <tr key={r.id} className={r.deleted ? "row-muted record" : "record"}>
                  <td>
                    <a href={href("companies", company, "records", dataType, r.id)}>{r.id}</a>
                    {r.deleted ? " (deleted)" : ""}
                  </td>
                  <td className="wrap">{summary(r.data)}</td>
                  <td>{when(r.source_modified_at)}</td>
                </tr>
              ))}
            </tbody>
          </Table>
          {records.length === 0 && !loading && <p>No records.</p>}
          {next && (
            <button onClick={() => load(next, pages)} disabled={loading}>
              More
            </button>
          )}
        </>
      )}
    </section>
  );
}

/// A line saying what a record is: its name, number or reference, and an amount.
export function summary(data: unknown): string {
  const d = (data ?? {}) as Record<string, unknown>;
  const name = ["name", "number", "reference", "description", "id"].map((k) => d[k]).find((v) => typeof v === "string");
  const total = ["total", "amount", "balance"].map((k) => d[k]).find((v) => v !== undefined && v !== null);
  const currency = typeof d.currency === "string" ? ` ${d.currency}` : "";
  return [name, total !== undefined ? `${String(total)}${currency}` : null].filter(Boolean).join(" · ");
}
