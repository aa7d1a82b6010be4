// The dashboard's pages. Each page has a title, optional controls (built once, so typing in
// a filter survives the live refresh) and render(), which reads the APIs and returns the
// page's data region; the app calls it again every few seconds.

import { ApiError, feedPath, fromAll, fromAny } from "./api.js";
import { lineChart } from "./chart.js";
import { ago, dl, eth, fixed, h, link, num, short, table } from "./dom.js";

export class NotFound extends Error {}

/** A link to one feed's page; the id is percent-encoded whole (ids hold "/"). */
export function feedLink(id) {
  return link(`/feed/${encodeURIComponent(id)}`, id);
}

const nowS = () => Date.now() / 1000;

function okValues(results) {
  return results.filter((r) => r.ok);
}

function chainFeeds(chain) {
  const out = new Map();
  for (const f of chain?.feeds ?? []) out.set(f.id, f);
  return out;
}

function onchainText(entry) {
  if (!entry || entry.value === undefined) return null;
  return fixed(entry.value, entry.decimals);
}

function wantsAll(id, q) {
  return q === "" || id.toLowerCase().includes(q);
}

// -- Feeds --------------------------------------------------------------------------------

const feedsState = { q: "", sort: "id", dir: 1 };

const SORTS = {
  id: (f) => f.id,
  age: (f) => f.age ?? Infinity,
  mae: (f) => f.metrics?.mae ?? Infinity,
  skill: (f) => -(f.metrics?.skill ?? -Infinity),
  round: (f) => -(f.chain?.round ?? -1),
};

function feedsControls() {
  const search = h("input", {
    type: "search",
    id: "feed-filter",
    placeholder: "id or description",
    "aria-controls": "feeds-table",
    on: {
      input: (e) => {
        feedsState.q = e.target.value.trim().toLowerCase();
        document.dispatchEvent(new Event("mira:refresh"));
      },
    },
  });
  const sort = h(
    "select",
    {
      id: "feed-sort",
      on: {
        change: (e) => {
          feedsState.sort = e.target.value;
          document.dispatchEvent(new Event("mira:refresh"));
        },
      },
    },
    [
      ["id", "feed id"],
      ["round", "on-chain round (newest first)"],
      ["age", "age"],
      ["mae", "model error (lowest first)"],
      ["skill", "skill (best first)"],
    ].map(([v, t]) => h("option", { value: v }, t)),
  );
  const dir = h("button", {
    type: "button",
    id: "feed-sort-dir",
    "aria-pressed": "false",
    on: {
      click: (e) => {
        feedsState.dir = -feedsState.dir;
        e.target.setAttribute("aria-pressed", String(feedsState.dir < 0));
        e.target.textContent = feedsState.dir < 0 ? "descending" : "ascending";
        document.dispatchEvent(new Event("mira:refresh"));
      },
    },
  }, "ascending");
  return h(
    "form",
    { class: "controls", role: "search", on: { submit: (e) => e.preventDefault() } },
    h("label", { for: "feed-filter" }, "Filter"),
    search,
    h("label", { for: "feed-sort" }, "Sort by"),
    sort,
    dir,
  );
}

async function feedsPage() {
  const [lists, chain] = await Promise.all([fromAll("/v1/feeds"), fromAny("/v1/chain")]);
  const ok = okValues(lists);
  if (ok.length === 0) throw lists[0]?.error ?? new Error("no member answers");
  const onchain = chainFeeds(chain);
  const reporting = new Map();
  for (const r of ok) for (const f of r.value.feeds) if (f.latest) reporting.set(f.id, (reporting.get(f.id) ?? 0) + 1);
  const t = chain?.block_time ?? nowS();
  let feeds = ok[0].value.feeds.map((f) => {
    const c = onchain.get(f.id);
    return { ...f, chain: c, age: c?.updated_at ? Math.max(0, t - c.updated_at) : null };
  });
  feeds = feeds.filter((f) => wantsAll(`${f.id} ${f.description}`, feedsState.q));
  const key = SORTS[feedsState.sort] ?? SORTS.id;
  feeds.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0) * feedsState.dir);
  const rows = feeds.map((f) => [
    feedLink(f.id),
    h("span", { class: "desc" }, f.description),
    f.output_kind === "policy" ? `policy, ${f.arms?.length ?? 0} arms` : onchainText(f.chain) ?? "no round yet",
    f.chain?.round ?? "-",
    h("span", { class: f.age !== null && f.age > f.heartbeat_s ? "stale" : "" }, `${ago(f.age)} / ${ago(f.heartbeat_s)}`),
    f.deviation_abs ? `${f.deviation_abs} (abs)` : `${(f.deviation_bps / 100).toFixed(2)} %`,
    num(f.metrics?.mae),
    f.metrics?.skill === null || f.metrics?.skill === undefined ? "-" : `${(f.metrics.skill * 100).toFixed(0)} %`,
    String(f.drift?.events ?? 0),
    f.chain?.subscribers ?? "-",
    `${reporting.get(f.id) ?? 0} / ${lists.length}`,
  ]);
  return h(
    "div",
    {},
    h("p", { class: "summary" }, `${feeds.length} feeds shown`, chain?.block !== undefined ? ` · chain ${chain.chain_id}, block ${chain.block}` : " · chain not readable"),
    table(
      "Feeds: on-chain values read through the oracle; model figures from the members' APIs",
      ["Feed", "Description", "On-chain value", "Round", "Age / heartbeat", "Deviation threshold", "Model MAE", "Skill vs naive", "Drifts", "Subscribers", "Members with output"],
      rows,
      { id: "feeds-table" },
    ),
  );
}

// -- One feed -----------------------------------------------------------------------------

async function feedPage(params) {
  const id = params.id;
  const p = feedPath(id);
  const statuses = await fromAll(`/v1/feeds/${p}`);
  const ok = okValues(statuses);
  if (ok.length === 0) {
    if (statuses.some((r) => r.error instanceof ApiError && r.error.status === 404)) throw new NotFound(`No feed ${id}`);
    throw statuses[0]?.error ?? new Error("no member answers");
  }
  const f = ok[0].value;
  // the on-chain feeds it publishes: itself, or one per arm of a policy
  const outs = f.output_kind === "policy"
    ? f.arms.map((a) => ({ name: a.arm, feed: a.feed, bytes32: a.feed_id_bytes32 }))
    : [{ name: null, feed: f.id, bytes32: f.feed_id_bytes32 }];
  const ids = outs.map((o) => o.bytes32);
  const label = (o, what) => (o.name ? `${o.name} ${what}` : what);
  const filter = ids.map((x) => `feed=${encodeURIComponent(x)}`).join("&");
  const [histories, chain, reports, txs] = await Promise.all([
    fromAll(`/v1/feeds/${p}/history?limit=200`),
    fromAny("/v1/chain"),
    fromAny(`/v1/reports?limit=30&${filter}`),
    fromAll("/v1/transmissions?limit=200"),
  ]);
  const onChain = chainFeeds(chain);
  const c = onChain.get(outs[0].feed);
  const scale = (v) => Number(fixed(v, f.decimals));
  // chart: on-chain values (landed reports), each member's output, the source observations
  const series = outs.map((o, j) => ({
    name: label(o, "on-chain"),
    color: f.output_kind === "policy" ? j : undefined, // an arm's lines and dots share a colour
    points: (reports?.reports ?? []).flatMap((r) => r.updates.filter((u) => u.feed_id === o.bytes32 && u.applied).map((u) => [u.observed_at * 1000, scale(u.value)])),
  }));
  // each member's output; of a policy (one line per arm), the first member's only
  for (const r of f.output_kind === "policy" ? histories.filter((x) => x.ok).slice(0, 1) : histories) {
    if (!r.ok) continue;
    for (const [j, o] of outs.entries()) {
      const points = r.value.outputs.filter((x) => (x.feed ?? f.id) === o.feed).map((x) => [x.observed_at_ms, scale(x.value)]);
      series.push({ name: label(o, `${r.member.name} output`), kind: o.name ? "dots" : "line", color: o.name ? j : undefined, points });
    }
  }
  const first = histories.find((r) => r.ok)?.value;
  if (first && first.observations.some((o) => o.target !== null)) {
    series.push({ name: `observed ${first.target}`, kind: "dots", points: first.observations.filter((o) => o.target !== null).map((o) => [o.observed_at_ms, o.target]) });
  }
  const errors = histories.filter((r) => r.ok).map((r) => ({
    name: `${r.member.name} |error|`,
    points: r.value.model_errors.map((e, i, all) => [i - all.length + 1, e]),
  }));
  // recent rounds, with gas and cost from the member that transmitted
  const byTx = new Map();
  for (const r of txs) if (r.ok) for (const t of r.value.transmissions) if (t.tx_hash) byTx.set(t.tx_hash, { ...t, member: r.member.name });
  const rounds = (reports?.reports ?? []).map((r) => {
    const mine = outs.map((o) => [o, r.updates.find((x) => x.feed_id === o.bytes32)]).filter(([, u]) => u);
    const u = mine[0]?.[1];
    const t = byTx.get(r.tx_hash);
    return [
      r.epoch,
      r.round,
      r.block_number,
      h("code", { title: r.tx_hash }, short(r.tx_hash)),
      t?.member ?? "-",
      t?.gas_used ?? "-",
      t ? eth(cost(t)) : "-",
      mine.map(([o, x]) => (o.name ? `${o.name} ${fixed(x.value, f.decimals)}` : fixed(x.value, f.decimals))).join(", ") || "-",
      u ? h("code", { title: u.model_commitment }, short(u.model_commitment)) : "-",
    ];
  });
  const proxy = c?.proxy ?? null;
  const proxies = outs.filter((o) => onChain.get(o.feed)?.proxy).map((o) => [o, onChain.get(o.feed).proxy]);
  const rpc = "$RPC_URL";
  return h(
    "div",
    {},
    dl([
      ["Description", h("span", { class: "desc", id: "feed-description" }, f.description)],
      ["Feed id (bytes32)", h("code", {}, f.feed_id_bytes32)],
      ["Kind", f.output_kind],
      ["Decimals", String(f.decimals)],
      ["Spec version", String(f.spec_version)],
      ["Heartbeat", ago(f.heartbeat_s)],
      ["Deviation threshold", f.deviation_abs ? `${f.deviation_abs} (abs)` : `${(f.deviation_bps / 100).toFixed(2)} %`],
      ...outs.map((o) => [label(o, "on-chain value"), onchainText(onChain.get(o.feed)) ?? "no round yet"]),
      ["On-chain round", c?.round !== undefined ? h("span", { id: "feed-round" }, String(c.round)) : "-"],
      ["Updated", c?.updated_at ? `${ago((chain.block_time ?? nowS()) - c.updated_at)} ago` : "-"],
      ["Model MAE / skill", `${num(f.metrics?.mae)} / ${f.metrics?.skill == null ? "-" : `${(f.metrics.skill * 100).toFixed(0)} %`}`],
      ["Drifts", String(f.drift?.events ?? 0)],
    ]),
    lineChart(series, { caption: "Values over time: on-chain, each member's model output, and the source observations", time: true, label: "feed values chart" }),
    lineChart(errors, { caption: "Model error: each member's absolute error per step, the latest window its rolling MAE is computed over (x: steps before now)", label: "model error chart", empty: "No model error yet (a model without a target, or still warming up)." }),
    table("Recent rounds that carried this feed (from the chain)", ["Epoch", "Round", "Block", "Transaction", "Transmitter", "Gas used", "Cost", "Value", "Model commitment"], rounds, { id: "rounds-table" }),
    h("section", { "aria-labelledby": "read-h" },
      h("h2", { id: "read-h" }, "Read it from a contract"),
      proxy
        ? [
            proxies.length > 1
              ? table("One proxy (AggregatorV3Interface) per arm", ["Arm", "Feed", "Proxy"], proxies.map(([o, a]) => [o.name, o.feed, h("code", {}, a)]), { id: "proxies-table" })
              : null,
            h("p", {}, proxies.length > 1 ? `Proxy of ${outs[0].feed}: ` : "Proxy (AggregatorV3Interface): ", h("code", { id: "proxy-address" }, proxy)),
            h("pre", {}, h("code", {}, `AggregatorV3Interface feed = AggregatorV3Interface(${proxy});\n(uint80 roundId, int256 answer, , uint256 updatedAt, ) = feed.latestRoundData();\n// answer has ${f.decimals} decimals; check updatedAt against the ${f.heartbeat_s} s heartbeat`)),
            h("pre", {}, h("code", {}, `cast call ${proxy} "latestRoundData()(uint80,int256,uint256,uint256,uint80)" --rpc-url ${rpc}`)),
          ]
        : h("p", {}, "No proxy known: this node reads no chain, or the feed is not registered on the oracle."),
    ),
  );
}

function cost(t) {
  if (t.gas_used == null || t.effective_gas_price_wei == null) return null;
  const wei = BigInt(t.gas_used) * BigInt(t.effective_gas_price_wei) + BigInt(t.l1_fee_wei ?? 0);
  return wei.toString();
}

// -- Committee ----------------------------------------------------------------------------

async function committeePage() {
  const [nets, healths, chains, txs] = await Promise.all([
    fromAll("/v1/network"),
    fromAll("/healthz"),
    fromAll("/v1/chain"),
    fromAll("/v1/transmissions?limit=100"),
  ]);
  const net = okValues(nets).map((r) => r.value);
  const lead = net.find((n) => n.epoch !== undefined) ?? net[0] ?? {};
  const keygen = net.find((n) => n.keygen)?.keygen;
  // invalid shares: what the other members say of each member index
  const named = new Map();
  for (const n of net) {
    for (const [index, counts] of Object.entries(n.bad_signers ?? {})) {
      const total = Object.entries(counts).filter(([k, v]) => k !== "operator" && typeof v === "number").reduce((a, [, v]) => a + v, 0);
      named.set(index, (named.get(index) ?? 0) + total);
    }
  }
  const memberRows = nets.map((r, i) => {
    const n = r.value ?? {};
    const c = chains[i].value;
    const online = healths[i].ok && healths[i].value?.ok;
    const mine = okValues([txs[i]]).flatMap((x) => x.value.transmissions);
    const gas = mine.reduce((a, t) => a + (t.gas_used ?? 0), 0);
    return [
      r.member.name,
      h("span", { class: online ? "ok" : "down" }, online ? "online" : "offline"),
      String(n.state ?? (r.ok ? "-" : "unreachable")),
      n.self_index ?? "-",
      n.reports_led ?? "-",
      n.last_report_round ?? "-",
      String(named.get(String(n.self_index)) ?? 0),
      h("code", { title: n.transmitter ?? "" }, short(n.transmitter)),
      c?.transmitter ? eth(c.transmitter.balance_wei) : "-",
      n.reimbursement_wei != null ? eth(n.reimbursement_wei) : "-",
      `${mine.length} / ${gas}`,
    ];
  });
  const all = [];
  for (const r of txs) if (r.ok) for (const t of r.value.transmissions) all.push({ ...t, member: r.member.name });
  all.sort((a, b) => b.created_at_ms - a.created_at_ms);
  const txRows = all.slice(0, 25).map((t) => [
    new Date(t.created_at_ms).toLocaleTimeString([], { hour12: false }),
    t.member,
    h("code", { title: t.tx_hash ?? "" }, short(t.tx_hash)),
    t.status,
    t.included_block ?? "-",
    t.gas_used ?? "-",
    t.effective_gas_price_wei ? `${num(Number(t.effective_gas_price_wei) / 1e9)} gwei` : "-",
    eth(cost(t)),
  ]);
  return h(
    "div",
    {},
    dl([
      ["Epoch", lead.epoch !== undefined ? h("span", { id: "epoch" }, String(lead.epoch)) : "none active"],
      ["Threshold", lead.threshold !== undefined ? `${lead.threshold} of ${lead.n}` : "-"],
      ["Current round", lead.round !== undefined ? h("span", { id: "current-round" }, String(lead.round)) : "-"],
      ["Members online", `${healths.filter((x) => x.ok && x.value?.ok).length} of ${healths.length}`],
      ["Key generation", keygen ? [keygen.state ?? "-", keygen.epoch != null ? ` (epoch ${keygen.epoch})` : "", keygen.phase ? ` phase ${keygen.phase}` : ""].join("") : "idle: no key generation running"],
      ["Chain", chains.find((x) => x.ok)?.value?.block !== undefined ? `chain ${chains.find((x) => x.ok).value.chain_id}, block ${chains.find((x) => x.ok).value.block}` : "not readable"],
    ]),
    table("Members", ["Member", "Online", "Network state", "Index", "Rounds led", "Last report round", "Invalid shares (named by others)", "Transmitter", "Balance", "Reimbursement owed", "Transmissions / gas"], memberRows, { id: "members-table" }),
    table("Transmissions (newest first, every member's)", ["Time", "Member", "Transaction", "Status", "Block", "Gas used", "Gas price", "Cost"], txRows, { id: "tx-table" }),
  );
}

// -- Models -------------------------------------------------------------------------------

function jsonText(x) {
  return typeof x === "string" ? x : JSON.stringify(x);
}

async function modelsPage() {
  const lists = await fromAll("/v1/models");
  const ok = okValues(lists);
  if (ok.length === 0) {
    return h("p", { class: "notice", id: "no-models" }, "No model registry data: no member answers GET /v1/models.");
  }
  // the model registry (issue 17): `registered`, one entry per model version per member
  const versions = new Map();
  for (const r of ok) {
    for (const v of Array.isArray(r.value.registered) ? r.value.registered : []) {
      const key = `${v.id}\u0000${v.version}`;
      if (!versions.has(key)) versions.set(key, { v, members: new Map() });
      versions.get(key).members.set(r.member.name, v);
    }
  }
  const names = lists.map((r) => r.member.name);
  const registryRows = [...versions.values()]
    .sort((a, b) => a.v.id - b.v.id || a.v.version - b.v.version)
    .map(({ v, members }) => [
      String(v.id),
      String(v.version),
      v.feed ? feedLink(v.feed) : (v.feed_ids ?? []).map((f) => short(f)).join(", ") || "-",
      h("code", { title: v.spec_hash ?? "" }, short(v.spec_hash)),
      // a data: URI carries the whole spec: its start, the whole in the title
      h("span", { class: "desc", title: String(v.spec_uri ?? "") }, short(v.spec_uri, 60)),
      v.approved_block == null ? "not approved" : String(v.approved_block),
      h("code", { title: v.commitment ?? "" }, short(v.commitment)),
      names.map((n, i) => {
        const m = members.get(n);
        const text = m ? `${n}: ${m.status}${m.reason ? ` (${m.reason}${m.detail ? `: ${m.detail}` : ""})` : ""}` : `${n}: -`;
        return [i ? h("br") : "", text];
      }),
    ]);
  const byFeed = new Map();
  for (const r of ok) for (const m of r.value.models ?? []) {
    if (!byFeed.has(m.feed)) byFeed.set(m.feed, []);
    byFeed.get(m.feed).push({ member: r.member.name, ...m });
  }
  const rows = [];
  for (const [feed, entries] of byFeed) {
    const commitments = new Set(entries.map((e) => e.model_commitment));
    for (const e of entries) {
      rows.push([
        feedLink(feed),
        e.member,
        String(e.spec_version ?? "-"),
        h("code", { title: e.spec_digest ?? "" }, short(e.spec_digest)),
        h("code", { title: e.model_commitment ?? "" }, short(e.model_commitment)),
        commitments.size === 1 ? "agrees" : "differs",
        h("span", { class: "desc" }, (e.steps ?? []).map(jsonText).join(" → ") || "-"),
      ]);
    }
  }
  return h(
    "div",
    {},
    registryRows.length
      ? table("Registered models: every version, with each member's acceptance", ["Model", "Version", "Feed", "Spec hash", "Spec URI", "Approved at block", "Commitment", "Members"], registryRows, { id: "registry-table" })
      : h("p", { class: "notice", id: "no-registry" }, "No model registry data: the members' GET /v1/models lists the models they run, but no registered model versions."),
    table("Models each member runs", ["Feed", "Member", "Spec version", "Spec digest", "Model commitment", "Across members", "Steps"], rows, { id: "models-table" }),
  );
}

// -- Subscriptions ------------------------------------------------------------------------

async function subscriptionsPage() {
  const [nets, chain] = await Promise.all([fromAll("/v1/network"), fromAny("/v1/chain")]);
  const subs = chain?.subscriptions;
  const owed = nets.filter((r) => r.ok && r.value.reimbursement_wei != null).map((r) => [r.member.name, h("code", {}, r.value.transmitter ?? "-"), eth(r.value.reimbursement_wei)]);
  let consumers;
  if (!subs || subs.error) {
    consumers = h("p", { class: "notice", id: "no-subscriptions" }, `No subscription data: ${subs?.error ?? "no member reads the chain"}.`);
  } else if (subs.consumers.length === 0) {
    consumers = h("p", { class: "notice", id: "no-subscriptions" }, "No consumer subscribes to these feeds yet (mira feed subscribe adds one).");
  } else {
    const count = (x) => (x === null || x === undefined ? "-" : String(x));
    consumers = [
      table(
        `Consumers: callbacks counted from block ${subs.callbacks_counted_from_block} to ${subs.callbacks_counted_to_block}`,
        ["Consumer", "Owner", "Feeds", "Callback gas limit", "Deposit", "Callbacks delivered", "Callbacks failed", "Callbacks skipped (deposit too low)"],
        subs.consumers.map((c) => [
          h("code", {}, c.consumer),
          h("code", { title: c.owner }, short(c.owner)),
          c.feeds.map((f, i) => [i ? ", " : "", feedLink(f)]),
          String(c.gas_limit),
          eth(c.balance_wei),
          count(c.callbacks.delivered),
          count(c.callbacks.failed),
          count(c.callbacks.skipped),
        ]),
        { id: "subscriptions-table" },
      ),
      h("p", { class: "summary", id: "delivered-meaning" },
        "Delivered is derived, not logged: the oracle emits CallbackFailed and CallbackSkipped but no event for a delivered callback. ",
        `Over the blocks counted, it is the number of reports that applied an update of a feed the consumer was subscribed to at that point of the chain (each calls it once), minus those whose callback failed or was skipped. `,
        "Reports sent through another contract cannot be read back and are not attributed",
        subs.unreadable_reports ? ` (${subs.unreadable_reports} so far)` : "",
        "; \"-\": not known for this consumer (its subscription could not be read where the count starts). See docs/dashboard.md.",
      ),
    ];
  }
  return h(
    "div",
    {},
    consumers,
    owed.length ? table("What subscriptions owe each transmitter (read by the nodes from the oracle)", ["Member", "Transmitter", "Reimbursement owed"], owed) : null,
  );
}

// -- Learning loop ------------------------------------------------------------------------

/** An id fragment for a feed id ("RL/bandit" → "RL-bandit"). */
function slug(id) {
  return id.replace(/[^A-Za-z0-9_-]/g, "-");
}

function rewards(x) {
  return x === null || x === undefined ? "-" : Number(x).toFixed(1);
}

/** One RL loop (GET /v1/loop, oracle/node/loop_view.py): the agent against random and the best arm. */
function loopSection(loop) {
  const id = slug(loop.feed);
  const a = loop.agent ?? {};
  const r = loop.random ?? null;
  const arm = (i) => (i === null || i === undefined ? "-" : `${loop.arms?.[i] ?? "?"} (${i})`);
  const errors = [a.error ? `agent: ${a.error}` : null, r?.error ? `random agent: ${r.error}` : null].filter(Boolean);
  const known = a.schedule != null;
  const facts = dl([
    ["Agent", h("code", {}, a.address ?? "-")],
    ["Environment", h("code", {}, a.environment ?? "-")],
    ["Random agent (baseline)", r ? h("code", {}, r.address) : "none named (the spec's [eval] random_agent)"],
    ["Steps (agent / random)", h("span", { id: `loop-${id}-steps` }, `${a.steps ?? "-"} / ${r?.steps ?? "-"}`)],
    ["Agent's cumulative reward", h("span", { id: `loop-${id}-agent-reward` }, rewards(a.reward))],
    ["Random agent's cumulative reward", h("span", { id: `loop-${id}-random-reward` }, r ? rewards(r.reward) : "-")],
    ["Best arm's cumulative reward (expected)", h("span", { id: `loop-${id}-best-reward` }, known ? rewards(a.best_arm_reward) : "unknown: the environment exposes no rates")],
    ["Regret (pseudo-regret)", h("span", { id: `loop-${id}-regret` }, known ? rewards(a.regret) : "-")],
    ["Best single arm in hindsight", known ? `${arm(a.best_fixed_arm)}: ${rewards(a.best_fixed_arm_reward)} expected` : "-"],
    ["Best arm now / agent's last arm", `${arm(a.best_arm_now)} / ${arm(a.last_arm)}`],
    ["Scanned", `blocks ${loop.from_block} to ${a.scanned_to_block ?? "-"} (chain at ${loop.block ?? "-"})`],
  ]);
  const series = [{ name: "agent", points: (a.series ?? []).map((p) => [p.step, p.reward]) }];
  if (r && !r.error) series.push({ name: "random agent", points: (r.series ?? []).map((p) => [p.step, p.reward]) });
  if (known) series.push({ name: "best arm (expected)", points: (a.series ?? []).map((p) => [p.step, p.best_arm_reward]) });
  const regret = [{ name: "agent", points: (a.series ?? []).filter((p) => p.regret !== undefined).map((p) => [p.step, p.regret]) }];
  if (r?.schedule) regret.push({ name: "random agent", points: (r.series ?? []).filter((p) => p.regret !== undefined).map((p) => [p.step, p.regret]) });
  const choices = [{ name: "agent's arm", kind: "dots", points: (a.recent_arms ?? []).map(([step, i]) => [step, i]) }];
  const pulls = (loop.arms ?? []).map((name, i) => [`${name} (${i})`, String(a.pulls?.[i] ?? 0), r ? String(r.pulls?.[i] ?? 0) : "-"]);
  return h(
    "section",
    { "aria-labelledby": `loop-${id}-h`, id: `loop-${id}` },
    h("h2", { id: `loop-${id}-h` }, "Loop of ", feedLink(loop.feed)),
    loop.error || errors.length ? h("p", { class: "error", role: "alert" }, loop.error ?? errors.join("; ")) : null,
    facts,
    h("div", { id: `loop-${id}-rewards` }, lineChart(series, { caption: "Cumulative reward by step: the agent and the random agent as paid on-chain; the best arm as expected (each step's best arm's rate)", label: "cumulative rewards chart", empty: "No step yet." })),
    h("div", { id: `loop-${id}-regret-chart` }, lineChart(regret, { caption: "Regret by step: Σ (the best arm's rate − the taken arm's rate)", label: "regret chart", empty: known ? "No step yet." : "Unknown: the environment exposes no rates." })),
    h("div", { id: `loop-${id}-choices` }, lineChart(choices, { caption: `The agent's arm choices, its last ${(a.recent_arms ?? []).length} steps (y: arm index)`, label: "arm choices chart", empty: "No step yet." })),
    table("Arm choices: pulls per arm", ["Arm", "Agent", "Random agent"], pulls, { id: `loop-${id}-pulls` }),
  );
}

async function learningPage() {
  const [feedList, loopList] = await Promise.all([fromAny("/v1/feeds"), fromAny("/v1/loop")]);
  const policies = (feedList?.feeds ?? []).filter((f) => f.output_kind === "policy");
  const loops = loopList?.loops ?? [];
  const parts = [];
  if (loops.length === 0) {
    parts.push(h("p", { class: "notice", id: "no-loop" }, "No on-chain learning loop: no policy feed here learns from an agent's Step events (a policy spec whose source is chain_events of an agent's Step; see docs/dashboard.md)."));
  } else {
    parts.push(h("p", { class: "summary" }, "Read from the chain by the node (GET /v1/loop): the environments' RewardPaid events, folded by oracle/chain/bandit.py. Rewards and regret in units of one reward (1.0); the best arm's and the regret use the environment's rates, not the coin flips."));
    parts.push(loops.map(loopSection));
  }
  if (policies.length) {
    parts.push(h("h2", {}, "Each policy model's own view (rolling, from the members' APIs)"));
    parts.push(policies.map((f) => h("section", {},
      h("h3", {}, feedLink(f.id)),
      dl([
        ["Rolling regret", num(f.metrics?.regret)],
        ["Baseline regret", num(f.metrics?.baseline_regret)],
        ["Last arm pulled", String(f.metrics?.last_pulled ?? "-")],
      ]),
      table("Arm choices the model counted", ["Arm", "Pulls"], Object.entries(f.metrics?.pulls ?? {}).map(([a, n]) => [a, String(n)]), { id: `arms-${slug(f.id)}` }),
    )));
  } else if (loops.length === 0) {
    parts.push(h("p", { class: "notice", id: "no-learning" }, "Not available: this network runs no policy feed, so there is no agent, reward or regret to show."));
  }
  return h("div", {}, parts);
}

export const PAGES = {
  feeds: { title: "Feeds", nav: "/feeds", controls: feedsControls, render: feedsPage },
  feed: { title: "Feed", render: feedPage },
  committee: { title: "Committee", nav: "/committee", render: committeePage },
  models: { title: "Models", nav: "/models", render: modelsPage },
  subscriptions: { title: "Subscriptions", nav: "/subscriptions", render: subscriptionsPage },
  learning: { title: "Learning loop", nav: "/learning", render: learningPage },
};
