// DOM helpers. Every value reaches the page as a text node or through setAttribute, never
// through innerHTML: feed descriptions, spec fields and anything a node or the chain says
// are data, shown as text, never parsed as HTML. Event handlers are passed as functions
// (attributes named on* are refused), so the Content-Security-Policy can forbid inline script.

const SVG_NS = "http://www.w3.org/2000/svg";

function build(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "on") {
      for (const [type, fn] of Object.entries(value)) el.addEventListener(type, fn);
    } else if (key.toLowerCase().startsWith("on")) {
      throw new Error(`refusing inline handler attribute ${key}`);
    } else if (key === "dataset") {
      for (const [k, v] of Object.entries(value)) el.dataset[k] = String(v);
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** An HTML element: h("a", {href: "#/feeds"}, "Feeds"). */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** A table with a header row and rows of cells (each a value or a node). */
export function table(caption, headers, rows, attrs = {}) {
  return h(
    "table",
    attrs,
    caption ? h("caption", {}, caption) : null,
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c ?? "-"))))),
  );
}

/** A definition list of [term, value] pairs. */
export function dl(pairs) {
  return h("dl", { class: "facts" }, pairs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "-")]));
}

/** A fixed-point integer (decimal text) with `decimals`, as a decimal string, exactly. */
export function fixed(value, decimals) {
  if (value === null || value === undefined) return null;
  let text = String(value);
  const neg = text.startsWith("-");
  if (neg) text = text.slice(1);
  if (!/^[0-9]+$/.test(text)) return null;
  if (decimals > 0) {
    text = text.padStart(decimals + 1, "0");
    text = `${text.slice(0, -decimals)}.${text.slice(-decimals)}`.replace(/\.?0+$/, "");
  }
  return (neg ? "-" : "") + text;
}

export function num(x, digits = 4) {
  if (x === null || x === undefined || Number.isNaN(x)) return "-";
  return Number(x).toPrecision(digits);
}

export function ago(seconds) {
  if (seconds === null || seconds === undefined) return "-";
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${Math.round(seconds / 3600)} h`;
}

/** Wei (decimal text) as ETH text. */
export function eth(wei) {
  const text = fixed(wei, 18);
  return text === null ? "-" : `${text} ETH`;
}

export function short(hex, keep = 10) {
  if (!hex) return "-";
  const t = String(hex);
  return t.length > keep + 6 ? `${t.slice(0, keep)}…${t.slice(-4)}` : t;
}

/** A link to a page of the dashboard. */
export function link(route, text) {
  return h("a", { href: `#${route}` }, text);
}
