import { useEffect } from "react";
import { api, call, type Schemas } from "../api/client";
import { ErrorBox, Loading, useLoad } from "../ui";
import { Chart } from "../chart";

type Series = Schemas["Series"];

const CHARTS: { metric: string; title: string }[] = [
  { metric: "published", title: "Records published per second" },
  { metric: "projected", title: "Records projected per second, by projection" },
  { metric: "lag", title: "Consumer lag (messages), by projection" },
  { metric: "freshness", title: "Freshness: source change to sink commit (seconds)" },
];

/// The last hour of the pipeline: throughput, consumer lag, freshness.
export function Pipeline() {
  const history = useLoad(() => call(api.GET("/v1/pipeline/metrics")), []);
  useEffect(() => {
    const timer = setInterval(history.reload, 15_000);
    return () => clearInterval(timer);
  }, [history.reload]);
  const h = history.value;
  return (
    <section>
      <h1>Pipeline</h1>
      <ErrorBox error={history.error} />
      <Loading when={history.loading && !h} />
      {h && (
        <>
          <p className="muted">
            The last hour, a point every {h.step_secs} s,{" "}
            {h.source === "prometheus"
              ? "from Prometheus: every role, wherever it runs."
              : "from this process's own metrics: every role when it runs them all (set api.prometheus_url when they run apart)."}
          </p>
          {CHARTS.map(({ metric, title }) => (
            <Chart key={metric} title={title} series={h.series.filter((s: Series) => s.metric === metric)} />
          ))}
        </>
      )}
    </section>
  );
}
