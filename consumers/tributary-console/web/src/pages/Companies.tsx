import { api, call } from "../api/client";
import { age, companyHealth, lastSuccess, worstFirst, type CompanyHealth } from "../health";
import { href } from "../route";
import { Badge, ErrorBox, Loading, Table, useLoad } from "../ui";

/// Every company the key may read, failing and stale first, each with its
/// data types' sync age, counts and last error.
export function Companies() {
  const { value, error, loading, reload } = useLoad(loadHealth, []);
  return (
    <section>
      <div className="title-row">
        <h1>Companies</h1>
        <button onClick={reload} disabled={loading}>
          Refresh
        </button>
      </div>
      <ErrorBox error={error} />
      <Loading when={loading && !value} />
      {value?.length === 0 && <p>No company has data yet.</p>}
      {value?.map((c) => <CompanyCard key={c.companyId} company={c} />)}
    </section>
  );
}

async function loadHealth(): Promise<CompanyHealth[]> {
  const { companies } = await call(api.GET("/v1/companies"));
  const now = Date.now();
  const health = await Promise.all(
    companies.map(async (record) => {
      const c = record as { id?: string; name?: string };
      const id = c.id ?? "";
      const status = await call(api.GET("/v1/companies/{company}/status", { params: { path: { company: id } } }));
      return companyHealth(id, c.name ?? id, status.data_types, now);
    }),
  );
  return health.sort(worstFirst);
}

function CompanyCard({ company: c }: { company: CompanyHealth }) {
  return (
    <article className="card company" data-company={c.companyId}>
      <header>
        <h2>
          <a href={href("companies", c.companyId)}>{c.name}</a> <span className="muted">{c.companyId}</span>
        </h2>
        <div className="badges">
          {c.failing > 0 && <Badge kind="bad">{c.failing} failing</Badge>}
          {c.stale > 0 && <Badge kind="warn">{c.stale} stale</Badge>}
          {c.failing === 0 && c.stale === 0 && <Badge kind="good">fresh</Badge>}
          <span className="muted">
            synced {age(c.ageSecs)} ago · {c.records} records
          </span>
        </div>
      </header>
      <Table label={`${c.name} data types`}>
        <thead>
          <tr>
            <th>Data type</th>
            <th className="num">Records</th>
            <th className="num">Indexed</th>
            <th>Last success</th>
            <th>Last error</th>
          </tr>
        </thead>
        <tbody>
          {c.types.map((t) => (
            <tr key={t.dataType} className={t.failing ? "row-bad" : t.stale ? "row-warn" : undefined}>
              <td>
                <a href={href("companies", c.companyId, "records", t.dataType)}>{t.dataType}</a>
              </td>
              <td className="num">{t.records}</td>
              <td className="num">{t.indexed ?? "—"}</td>
              <td>{lastSuccess(t)}</td>
              <td className="wrap">{t.error ?? ""}</td>
            </tr>
          ))}
        </tbody>
      </Table>
    </article>
  );
}
