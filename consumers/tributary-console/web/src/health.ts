// How healthy a company's data is, from its status: pure functions, unit
// tested (health.test.ts).
import type { Schemas } from "./api/client";

type Entry = Schemas["DataTypeEntry"];

export interface DataTypeHealth {
  dataType: string;
  records: number;
  indexed: number | null;
  /// Seconds since the last successful sync through any connection (null:
  /// never succeeded).
  ageSecs: number | null;
  /// The latest error of a sync that did not succeed.
  error: string | null;
  failing: boolean;
  stale: boolean;
  /// Whether any connection syncs it (a company's `connections` records
  /// come from the runtime, not from a sync).
  synced: boolean;
}

export interface CompanyHealth {
  companyId: string;
  name: string;
  types: DataTypeHealth[];
  /// The oldest of its data types' ages (null: one never succeeded).
  ageSecs: number | null;
  failing: number;
  stale: number;
  records: number;
}

/// A data type is stale when its last success is older than this.
export const STALE_AFTER_SECS = 3600;

export function dataTypeHealth(entry: Entry, now: number): DataTypeHealth {
  const successes = entry.syncs
    .map((s) => (s.last_success_at ? Date.parse(s.last_success_at) : NaN))
    .filter((t) => !Number.isNaN(t));
  const last = successes.length ? Math.max(...successes) : null;
  const ageSecs = last === null ? null : Math.max(0, Math.round((now - last) / 1000));
  const failed = entry.syncs.find((s) => s.last_status !== "succeeded");
  return {
    dataType: entry.data_type,
    records: entry.records,
    indexed: entry.indexed ?? null,
    ageSecs,
    error: failed ? (failed.last_error ?? failed.last_status) : null,
    failing: failed !== undefined,
    stale: entry.syncs.length > 0 && (ageSecs === null || ageSecs > STALE_AFTER_SECS),
    synced: entry.syncs.length > 0,
  };
}

export function companyHealth(
  companyId: string,
  name: string,
  entries: Entry[],
  now: number,
): CompanyHealth {
  // What no connection syncs (its connections) goes last.
  const types = entries
    .map((e) => dataTypeHealth(e, now))
    .sort((a, b) => Number(b.synced) - Number(a.synced) || worstFirst(a, b));
  const synced = types.filter((t) => t.synced);
  const ages = synced.map((t) => t.ageSecs);
  return {
    companyId,
    name,
    types,
    ageSecs: ages.length === 0 || ages.includes(null) ? null : Math.max(...(ages as number[])),
    failing: types.filter((t) => t.failing).length,
    stale: types.filter((t) => t.stale).length,
    records: types.reduce((n, t) => n + t.records, 0),
  };
}

/// Failing first, then stale, then the oldest.
export function worstFirst(
  a: { failing: boolean | number; stale: boolean | number; ageSecs: number | null },
  b: { failing: boolean | number; stale: boolean | number; ageSecs: number | null },
): number {
  const rank = (x: typeof a) => (Number(x.failing) > 0 ? 2 : 0) + (Number(x.stale) > 0 ? 1 : 0);
  return (
    rank(b) - rank(a) ||
    (b.ageSecs ?? Number.MAX_SAFE_INTEGER) - (a.ageSecs ?? Number.MAX_SAFE_INTEGER)
  );
}

/// When a data type last synced, for people.
export function lastSuccess(t: DataTypeHealth): string {
  if (!t.synced) return "—";
  return t.ageSecs === null ? "never" : `${age(t.ageSecs)} ago`;
}

/// `42 s`, `5 min`, `3 h`, `2 d`; `never`.
export function age(secs: number | null): string {
  if (secs === null) return "never";
  if (secs < 120) return `${secs} s`;
  if (secs < 7200) return `${Math.round(secs / 60)} min`;
  if (secs < 172800) return `${Math.round(secs / 3600)} h`;
  return `${Math.round(secs / 86400)} d`;
}
