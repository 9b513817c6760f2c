// A line chart in SVG: the last hour on the x axis, from zero to the
// largest value on the y axis; one line per series, with a legend.
import type { Schemas } from "./api/client";

type Series = Schemas["Series"];

const COLORS = ["#0b6bcb", "#b42318", "#1f7a3d", "#9a6700", "#6941c6", "#0e7490"];
const W = 640;
const H = 200;
const PAD = { left: 48, right: 10, top: 10, bottom: 24 };

/// The y axis' top: the largest value rounded up to 1, 2 or 5 times a
/// power of ten (1 when everything is zero).
export function niceMax(max: number): number {
  if (!(max > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  return [1, 2, 5, 10].map((m) => m * power).find((m) => m >= max) ?? 10 * power;
}

export function Chart({ title, series, now = Date.now() }: { title: string; series: Series[]; now?: number }) {
  const from = now - 3600_000;
  const points = series.flatMap((s) => s.points);
  const top = niceMax(Math.max(0, ...points.map((p) => p.v)));
  const x = (t: number) => PAD.left + ((t - from) / 3600_000) * (W - PAD.left - PAD.right);
  const y = (v: number) => H - PAD.bottom - (v / top) * (H - PAD.top - PAD.bottom);
  const unit = series[0]?.unit ?? "";
  return (
    <figure className="card chart-card" data-chart={title}>
      <figcaption>
        <strong>{title}</strong>
        <span className="legend">
          {series.map((s, i) => (
            <span key={s.label}>
              <span className="swatch" style={{ background: COLORS[i % COLORS.length] }} /> {s.label}
            </span>
          ))}
        </span>
      </figcaption>
      {points.length === 0 ? (
        <p className="muted">No points yet: the history fills every 15 s.</p>
      ) : (
        <svg className="chart" viewBox={`0 0 ${W} ${H}`} role="img" aria-label={title}>
          {[0, 0.5, 1].map((f) => (
            <g key={f}>
              <line x1={PAD.left} x2={W - PAD.right} y1={y(top * f)} y2={y(top * f)} stroke="#d9e0e8" />
              <text x={PAD.left - 6} y={y(top * f) + 4} textAnchor="end" fontSize="11" fill="#5d6b7c">
                {format(top * f)}
              </text>
            </g>
          ))}
          <text x={PAD.left} y={H - 6} fontSize="11" fill="#5d6b7c">
            −60 min
          </text>
          <text x={W - PAD.right} y={H - 6} fontSize="11" fill="#5d6b7c" textAnchor="end">
            now {unit ? `(${unit})` : ""}
          </text>
          {series.map((s, i) => (
            <polyline
              key={s.label}
              fill="none"
              stroke={COLORS[i % COLORS.length]}
              strokeWidth="2"
              points={s.points
                .filter((p) => p.t >= from)
                .map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`)
                .join(" ")}
            />
          ))}
        </svg>
      )}
    </figure>
  );
}

function format(v: number): string {
  if (v >= 1000) return `${(v / 1000).toFixed(v >= 10000 ? 0 : 1)}k`;
  if (v >= 10 || v === 0) return v.toFixed(0);
  return v.toFixed(v >= 1 ? 1 : 2);
}
