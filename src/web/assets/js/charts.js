// The two small charts a publisher watches, drawn as SVG by the app: a bar
// per section (acknowledged, opened, not yet opened) and the line of
// acknowledgments since publication. Sizes and colours are SVG attributes,
// not styles, so the page's content security policy holds.

import { t } from "./i18n.js";

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attributes = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) el.setAttribute(name, String(value));
  for (const child of children) el.append(child);
  return el;
}

function text(x, y, content, attributes = {}) {
  return svg("text", { x, y, "font-size": 12, fill: "#5b6475", ...attributes }, content);
}

const COLOURS = { acknowledged: "#1f7a45", delivered: "#2457c5", queued: "#d9dee7" };

/** A bar per section: how much of it acknowledged, opened, and has not opened. */
export function sectionBars(sections) {
  const width = 520;
  const label = 150;
  const row = 22;
  const chart = svg("svg", {
    class: "chart", role: "img", viewBox: `0 0 ${width} ${sections.length * row + 6}`,
    "aria-label": sections.map((s) => t("chart.bar", {
      section: `${s.course_code} ${s.section_code}`, acknowledged: s.acknowledged, total: s.total,
    })).join("; "),
  });
  sections.forEach((s, i) => {
    const y = i * row + 4;
    chart.append(text(0, y + 13, `${s.course_code} ${s.section_code}`));
    let x = label;
    const span = width - label - 70;
    for (const part of ["acknowledged", "delivered", "queued"]) {
      const w = s.total ? (s[part] / s.total) * span : 0;
      if (w > 0) chart.append(svg("rect", { x, y, width: w, height: row - 8, fill: COLOURS[part] }));
      x += w;
    }
    chart.append(text(label + span + 6, y + 13, `${s.acknowledged}/${s.total}`));
  });
  return chart;
}

function duration(seconds) {
  if (seconds < 120) return t("duration.s", { n: seconds });
  if (seconds < 7200) return t("duration.min", { n: Math.round(seconds / 60) });
  if (seconds < 172800) return t("duration.h", { n: Math.round(seconds / 3600) });
  return t("duration.d", { n: Math.round(seconds / 86400) });
}

/** Acknowledgments counted up since publication, out of `total`. */
export function ackLine(timeline, total) {
  const width = 520;
  const height = 120;
  const pad = 28;
  const end = Math.max(timeline.elapsed_seconds, timeline.bucket_seconds, 1);
  const top = Math.max(total, 1);
  const x = (seconds) => pad + (Math.min(seconds, end) / end) * (width - 2 * pad);
  const y = (count) => height - pad + 6 - (count / top) * (height - pad - 8);
  const points = [[0, 0], ...timeline.points.map((p) => [p.after_seconds, p.acknowledged])];
  const last = points[points.length - 1][1];
  points.push([end, last]);
  const path = points.map(([s, n], i) => `${i ? "L" : "M"}${x(s).toFixed(1)},${y(n).toFixed(1)}`).join(" ");
  return svg("svg", {
    class: "chart", role: "img", viewBox: `0 0 ${width} ${height}`,
    "aria-label": t("chart.line", { acknowledged: last, total, duration: duration(end) }),
  },
  svg("line", { x1: pad, y1: y(0), x2: width - pad, y2: y(0), stroke: "#d9dee7" }),
  svg("line", { x1: pad, y1: y(top), x2: width - pad, y2: y(top), stroke: "#eef1f6" }),
  svg("path", { d: path, fill: "none", stroke: COLOURS.acknowledged, "stroke-width": 2 }),
  text(pad, height - 4, t("chart.published")),
  text(width - pad, height - 4, `+${duration(end)}`, { "text-anchor": "end" }),
  text(2, y(top) + 4, String(top)));
}
