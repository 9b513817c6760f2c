import { describe, expect, it } from "vitest";
import { age, companyHealth, dataTypeHealth, worstFirst } from "./health";

const now = Date.parse("2026-12-06T12:00:00Z");
const sync = (status: string, success: string | null, error: string | null = null) => ({
  connection_id: "c1",
  source: "xero",
  last_status: status,
  last_started_at: "2026-12-06T11:00:00Z",
  last_finished_at: "2026-12-06T11:00:01Z",
  last_success_at: success,
  last_error: error,
  runs: 1,
  failed_runs: status === "failed" ? 1 : 0,
  records_fetched: 10,
});
const entry = (dataType: string, syncs: ReturnType<typeof sync>[]) => ({
  data_type: dataType,
  records: 10,
  deleted: 0,
  last_modified_at: null,
  syncs,
  indexed: 10,
});

describe("health", () => {
  it("ages a data type by its newest success across connections", () => {
    const h = dataTypeHealth(
      entry("invoices", [sync("succeeded", "2026-12-06T11:59:00Z"), sync("succeeded", "2026-12-06T10:00:00Z")]),
      now,
    );
    expect(h.ageSecs).toBe(60);
    expect(h.stale).toBe(false);
    expect(h.failing).toBe(false);
  });

  it("shows a failing sync's error and a never-succeeded type as stale", () => {
    const h = dataTypeHealth(entry("bills", [sync("failed", null, "401 from Xero")]), now);
    expect(h.failing).toBe(true);
    expect(h.error).toBe("401 from Xero");
    expect(h.stale).toBe(true);
    expect(h.ageSecs).toBeNull();
  });

  it("puts failing, then stale, then older companies first", () => {
    const fresh = companyHealth("a", "A", [entry("invoices", [sync("succeeded", "2026-12-06T11:59:30Z")])], now);
    const old = companyHealth("b", "B", [entry("invoices", [sync("succeeded", "2026-12-06T06:00:00Z")])], now);
    const failing = companyHealth("c", "C", [entry("invoices", [sync("failed", "2026-12-06T11:59:59Z", "boom")])], now);
    const order = [fresh, old, failing].sort(worstFirst).map((c) => c.companyId);
    expect(order).toEqual(["c", "b", "a"]);
    expect(old.stale).toBe(1);
    expect(old.ageSecs).toBe(6 * 3600);
  });

  it("does not age a data type no connection syncs", () => {
    const h = dataTypeHealth(entry("connections", []), now);
    expect(h.synced).toBe(false);
    expect(h.stale).toBe(false);
    const c = companyHealth("a", "A", [entry("connections", []), entry("invoices", [sync("succeeded", "2026-12-06T11:00:00Z")])], now);
    expect(c.ageSecs).toBe(3600);
    expect(c.types.map((t) => t.dataType)).toEqual(["invoices", "connections"]);
  });

  it("writes ages for people", () => {
    expect(age(null)).toBe("never");
    expect(age(42)).toBe("42 s");
    expect(age(300)).toBe("5 min");
    expect(age(3 * 3600)).toBe("3 h");
    expect(age(3 * 86400)).toBe("3 d");
  });
});
