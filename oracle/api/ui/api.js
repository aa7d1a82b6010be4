// Reading the node APIs. A node serves only itself (base ""); `mira devnet up` serves every
// member under /m/<i>/ (oracle/devnet/dashboard.py). Which is which: /ui/members.json.

let members = null;

export async function loadMembers() {
  if (members === null) {
    const body = await getJSON("/ui/members.json");
    members = Array.isArray(body?.members) ? body.members : [];
  }
  return members;
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
  let body = null;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(response.status, `${url}: not JSON (HTTP ${response.status})`);
  }
  if (!response.ok) {
    const message = body?.error?.message ?? `HTTP ${response.status}`;
    throw new ApiError(response.status, String(message));
  }
  return body;
}

/** GET `path` (e.g. "/v1/feeds") from one member. */
export function get(member, path) {
  return getJSON(`${member.base}${path}`);
}

/** GET `path` from every member: [{member, ok, value | error}] in member order. */
export async function fromAll(path) {
  const list = await loadMembers();
  const settled = await Promise.allSettled(list.map((m) => get(m, path)));
  return settled.map((r, i) => ({
    member: list[i],
    ok: r.status === "fulfilled",
    value: r.status === "fulfilled" ? r.value : null,
    error: r.status === "rejected" ? r.reason : null,
  }));
}

/** The first member's answer to `path` that succeeds, or null. */
export async function fromAny(path) {
  for (const r of await fromAll(path)) if (r.ok) return r.value;
  return null;
}

export function feedPath(id) {
  // feed ids contain "/": each segment is encoded, the slashes kept (the API route takes them)
  return id.split("/").map(encodeURIComponent).join("/");
}
