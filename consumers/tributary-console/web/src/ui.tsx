// Small pieces every page uses: loading a resource, showing an API error,
// a button for a long action.
import { useCallback, useEffect, useState, type ReactNode } from "react";
import { ApiFailure } from "./api/client";

export function message(e: unknown): string {
  if (e instanceof ApiFailure) return `${e.message} (${e.status} ${e.code})`;
  return String(e);
}

export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  return (
    <p className="error" role="alert">
      {message(error)}
    </p>
  );
}

/// Loads `load()` now and whenever `reload` is called; keeps the last value
/// while reloading.
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]) {
  const [value, setValue] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  // `deps` say when `load` changes, as useEffect's would.
  const run = useCallback(load, deps);
  const reload = useCallback(() => {
    setLoading(true);
    run()
      .then((v) => {
        setValue(v);
        setError(null);
      })
      .catch(setError)
      .finally(() => setLoading(false));
  }, [run]);
  useEffect(reload, [reload]);
  return { value, error, loading, reload };
}

/// A button for an action that takes a while: disabled and saying so
/// while it runs; its error shown beside it.
export function Action({
  label,
  busyLabel,
  run,
  done,
  className,
}: {
  label: string;
  busyLabel?: string;
  run: () => Promise<unknown>;
  done?: (result: unknown) => void;
  className?: string;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  return (
    <span className="action">
      <button
        className={className}
        disabled={busy}
        aria-busy={busy}
        onClick={() => {
          setBusy(true);
          setError(null);
          run()
            .then((r) => done?.(r))
            .catch(setError)
            .finally(() => setBusy(false));
        }}
      >
        {busy ? <><span className="spinner" aria-hidden="true" /> {busyLabel ?? "Working…"}</> : label}
      </button>
      <ErrorBox error={error} />
    </span>
  );
}

export function Loading({ when }: { when: boolean }) {
  return when ? <p className="muted"><span className="spinner" aria-hidden="true" /> Loading…</p> : null;
}

/// A table that scrolls sideways inside its box on a narrow screen
/// rather than widening the page.
export function Table({ children, label }: { children: ReactNode; label: string }) {
  return (
    <div className="table-box" role="region" aria-label={label} tabIndex={0}>
      <table>{children}</table>
    </div>
  );
}

export function Badge({ kind, children }: { kind: string; children: ReactNode }) {
  return <span className={`badge badge-${kind}`}>{children}</span>;
}

export function when(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}
