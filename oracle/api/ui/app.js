// The dashboard: a hash router (#/feeds, #/feed/<id>, ...), the theme toggle and the live
// refresh. Each page's data region is rebuilt every REFRESH_MS from the APIs, without
// reloading; a refresh starts only after the previous one ended.

import { h } from "./dom.js";
import { NotFound, PAGES } from "./pages.js";

const REFRESH_MS = 2000;
const main = document.getElementById("main");
const status = document.getElementById("status");
let generation = 0;
let timer = null;

function parse(hash) {
  const path = hash.replace(/^#/, "") || "/feeds";
  if (path.startsWith("/feed/")) {
    let id;
    try {
      id = decodeURIComponent(path.slice("/feed/".length));
    } catch {
      return { page: null };
    }
    return { page: id ? PAGES.feed : null, params: { id } };
  }
  const page = Object.values(PAGES).find((p) => p.nav === path);
  return { page: page ?? null, params: {} };
}

function notFound(message) {
  document.title = "Not found - Mira dashboard";
  return [
    h("h1", { id: "page-title" }, "Not found"),
    h("p", { class: "notfound", id: "not-found" }, message, ". ", h("a", { href: "#/feeds" }, "Go to the feeds"), "."),
  ];
}

async function refresh(gen, page, params, region) {
  try {
    const content = await page.render(params);
    if (gen !== generation) return;
    region.replaceChildren(content);
    region.setAttribute("aria-busy", "false");
    status.textContent = `updated ${new Date().toLocaleTimeString([], { hour12: false })}`;
    status.classList.remove("error");
  } catch (err) {
    if (gen !== generation) return;
    if (err instanceof NotFound) {
      main.replaceChildren(...notFound(err.message));
      return; // nothing to refresh
    }
    status.textContent = `update failed: ${err?.message ?? err}`;
    status.classList.add("error");
    if (region.getAttribute("aria-busy") === "true") {
      region.replaceChildren(h("p", { class: "error", role: "alert" }, `Could not load this page: ${err?.message ?? err}`));
    }
  }
  if (gen === generation) timer = setTimeout(() => refresh(gen, page, params, region), REFRESH_MS);
}

function route() {
  generation += 1;
  clearTimeout(timer);
  const { page, params } = parse(location.hash);
  for (const a of document.querySelectorAll("nav a")) {
    if (page && a.getAttribute("href") === `#${page.nav}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (!page) {
    main.replaceChildren(...notFound("The dashboard has no such page"));
    return;
  }
  const title = page === PAGES.feed ? params.id : page.title;
  document.title = `${title} - Mira dashboard`;
  const region = h("div", { id: "content", "aria-live": "off", "aria-busy": "true" }, h("p", {}, "Loading…"));
  main.replaceChildren(h("h1", { id: "page-title" }, title), page.controls ? page.controls() : "", region);
  main.focus({ preventScroll: true });
  refresh(generation, page, params, region);
}

document.addEventListener("mira:refresh", () => {
  // a control changed: redraw now rather than at the next tick
  const region = document.getElementById("content");
  const { page, params } = parse(location.hash);
  if (!region || !page) return;
  generation += 1;
  clearTimeout(timer);
  refresh(generation, page, params, region);
});

// theme: the system's (prefers-color-scheme) unless the toggle chose one, remembered
const THEME_KEY = "mira-theme";
function applyTheme(theme) {
  if (theme) document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
  const dark = theme ? theme === "dark" : matchMedia("(prefers-color-scheme: dark)").matches;
  const button = document.getElementById("theme");
  button.setAttribute("aria-pressed", String(dark));
  button.textContent = dark ? "Dark theme" : "Light theme";
}
document.getElementById("theme").addEventListener("click", () => {
  const dark = document.getElementById("theme").getAttribute("aria-pressed") === "true";
  const next = dark ? "light" : "dark";
  try {
    localStorage.setItem(THEME_KEY, next);
  } catch {
    // storage refused (private mode): the choice lasts for this page only
  }
  applyTheme(next);
});
let saved = null;
try {
  saved = localStorage.getItem(THEME_KEY);
} catch {
  saved = null;
}
applyTheme(saved === "light" || saved === "dark" ? saved : null);

window.addEventListener("hashchange", route);
route();
