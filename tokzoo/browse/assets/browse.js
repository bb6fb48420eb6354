/* tokzoo browse: the pages of a static dataset site (written by `tokzoo browse`).
   Data files are scripts calling tokzoo.receive(name, payload): browsers refuse fetch() of file:// URLs,
   script tags they load. Each page loads only what it shows. */
"use strict";

window.tokzoo = (() => {
  const waiting = {};

  function receive(name, payload) {
    const done = waiting[name];
    if (done) { delete waiting[name]; done(payload); }
  }

  function load(name) {
    return new Promise((resolve, reject) => {
      waiting[name] = resolve;
      const script = document.createElement("script");
      script.src = name;
      script.onload = () => {
        script.remove();
        if (waiting[name]) { delete waiting[name]; reject(new Error(name + " holds no data")); }
      };
      script.onerror = () => {
        script.remove();
        delete waiting[name];
        reject(new Error("cannot load " + name + ": the site is incomplete; rebuild it with tokzoo browse"));
      };
      document.head.appendChild(script);
    });
  }

  /* The one way pages make markup: every string from data becomes a text node (textContent, append of a
     string) or an attribute value; innerHTML is never used. Event-handler attributes are refused, and an href or
     src naming any scheme (javascript:, data:, http:) becomes "#": the site links only to its own files.
     The pages' Content-Security-Policy also forbids inline script. */
  const SCHEME = /^[\s\u0000-\u001f]*([a-z][a-z0-9+.\-]*:|\/\/|\\)/i;
  function siteUrl(value) { return SCHEME.test(String(value)) ? "#" : String(value); }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (/^on/i.test(k)) throw new Error("event-handler attribute " + k + " refused");
      if (k === "text") node.textContent = String(v);
      else if (v !== undefined && v !== null) node.setAttribute(k, k === "href" || k === "src" ? siteUrl(v) : String(v));
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
    return node;
  }

  const img = (src, alt) => el("img", {src, alt, loading: "lazy", decoding: "async"});
  const params = () => new URLSearchParams(location.hash.slice(1));
  const sampleLink = (chunk, pos) => `sample.html#c=${encodeURIComponent(chunk)}&i=${pos}`;

  function fail(error) {
    document.getElementById("message").textContent = String(error.message || error);
  }

  function badge(status) { return el("span", {class: "badge " + status, text: status}); }

  function fmt(value) {
    return typeof value === "number" ? (Math.abs(value) >= 100 ? value.toFixed(1) : value.toPrecision(4)) : String(value);
  }

  /* ---- the grid ---- */
  async function grid() {
    const site = await load("data/site.js");
    document.getElementById("root").textContent = `${site.kind} dataset ${site.root}: ${site.samples} samples, ` +
      `${site.ok} ok, ${site.failed} failed`;
    const status = document.getElementById("status");
    const source = document.getElementById("source");
    const modality = document.getElementById("modality");
    site.sources.forEach((name, i) => source.append(el("option", {value: String(i), text: name})));
    site.modalities.forEach(name => modality.append(el("option", {value: name, text: name})));
    const order = document.getElementById("order");
    Object.entries(site.main_metrics || {}).forEach(([m, name]) =>
      order.append(el("option", {value: "worst-" + m, text: `worst ${m} ${name} first`})));
    const state = () => {
      const p = params();
      return {status: p.get("status") || "all", source: p.get("source") || "all",
              modality: p.get("modality") || "all", order: p.get("order") || "dataset", page: Math.max(1, parseInt(p.get("page") || "1", 10) || 1)};
    };
    const go = changes => {
      const next = Object.assign(state(), changes);
      location.hash = new URLSearchParams(next).toString();
    };
    for (const select of [status, source, modality, order]) {
      select.addEventListener("change", () => go({[select.id]: select.value, page: 1}));
    }
    document.getElementById("prev").addEventListener("click", () => go({page: state().page - 1}));
    document.getElementById("next").addEventListener("click", () => go({page: state().page + 1}));
    const render = async () => {
      const s = state();
      status.value = s.status; source.value = s.source; modality.value = s.modality; order.value = s.order;
      const worst = s.order.startsWith("worst-") ? s.order.slice(6) : null;
      status.disabled = source.disabled = modality.disabled = !!worst;  // worst-first lists span the dataset
      if (worst) modality.value = worst;
      const id = worst ? `worst.all.${worst}` : `${s.status}.${s.source}.${s.status === "failed" ? s.modality : "all"}`;
      const view = site.views[id] || {count: 0, pages: 0};
      const page = Math.min(s.page, Math.max(view.pages, 1));
      document.getElementById("count").textContent = `${view.count} samples`;
      document.getElementById("pageinfo").textContent = `page ${view.pages ? page : 0} of ${view.pages}`;
      document.getElementById("prev").disabled = page <= 1;
      document.getElementById("next").disabled = page >= view.pages;
      const box = document.getElementById("grid");
      box.replaceChildren();
      if (!view.pages) { document.body.dataset.ready = id + "/0"; return; }
      const tiles = await load(`data/views/${id}/${page}.js`);
      box.replaceChildren(...tiles.map(t => tile(t, worst || s.modality)));
      document.body.dataset.ready = id + "/" + page;
    };
    window.addEventListener("hashchange", () => render().catch(fail));
    await render();
  }

  function tile(t, modality) {
    const pics = el("div", {class: "pics"});
    const base = `img/${t.c}/${t.i}`;
    if (modality === "all") {
      const first = Object.keys(t.h).find(m => t.h[m].includes("s"));
      if (t.b) pics.append(img(`${base}.sample.boxes.png`, "crop boxes"));
      else if (first) pics.append(img(`${base}.${first}.source.png`, first));
      else pics.append(el("div", {class: "noimg", text: "no picture"}));
    } else {
      const have = t.h[modality] || "";
      if (have.includes("s")) pics.append(img(`${base}.${modality}.source.png`, modality + " source"));
      if (have.includes("r")) pics.append(img(`${base}.${modality}.recon.png`, modality + " reconstruction"));
      if (!have) pics.append(el("div", {class: "noimg", text: "no " + modality}));
    }
    return el("a", {class: "tile " + t.s, href: sampleLink(t.c, t.i), title: t.e || t.k}, pics,
              el("div", {class: "key"}, badge(t.s), " " + t.k), t.v ? el("div", {class: "metric", text: t.v}) : null,
              t.e ? el("div", {class: "err", text: t.e}) : null);
  }

  /* ---- one sample ---- */
  async function sample() {
    const [site, chunks] = [await load("data/site.js"), await load("data/chunks.js")];
    const order = chunks.map(c => c[0]);
    const render = async () => {
      const p = params();
      const chunkId = p.get("c") || (order[0] || "");
      const pos = parseInt(p.get("i") || "0", 10) || 0;
      if (!order.includes(chunkId)) throw new Error(`no chunk ${chunkId} in this site`);  // never a path from the URL
      const chunk = await load(`data/chunks/${chunkId}.js`);
      const s = chunk.samples[pos];
      if (!s) throw new Error(`no sample ${pos} in chunk ${chunkId}`);
      document.title = "tokzoo browse: " + s.key;
      const at = order.indexOf(chunkId);
      const prev = pos > 0 ? sampleLink(chunkId, pos - 1) : at > 0 ? sampleLink(order[at - 1], chunks[at - 1][1] - 1) : null;
      const next = pos + 1 < chunk.samples.length ? sampleLink(chunkId, pos + 1) :
        at >= 0 && at + 1 < order.length ? sampleLink(order[at + 1], 0) : null;
      for (const [id, href] of [["prev", prev], ["next", next]]) {
        const a = document.getElementById(id);
        a.style.visibility = href ? "visible" : "hidden";
        a.href = siteUrl(href || "#");
      }
      const main = document.getElementById("sample");
      main.replaceChildren(el("h1", {text: s.key}), el("p", {}, badge(s.status), " source: ", el("code", {text: s.source || "-"})));
      const errors = Object.entries(s.errors || {});
      if (errors.length) {
        main.append(el("h2", {text: "Why it failed"}),
                    el("ul", {class: "errors"}, ...errors.map(([m, e]) => el("li", {}, el("b", {text: m + ": "}),
                      e.startsWith(m + ": ") ? e.slice(m.length + 2) : e))));
      }
      if (s.boxes || s.crops) {
        const rows = (s.crops || []).map((c, n) => el("tr", {}, ...[n, ...c.slice(0, 4), c[4] ? "yes" : "no"].map(v => el("td", {text: String(v)}))));
        const caption = s.crops ? `crop boxes on the full ${s.boxes_of} (0 = centre crop, yellow; f = flipped)` :
          `the full ${s.boxes_of} (no crop rows: ${s.status === "failed" ? "the sample failed" : "none stored"})`;
        main.append(el("h2", {text: s.crops ? "Crops" : "Source"}), el("div", {class: "row"},
          s.boxes ? el("figure", {class: "boxes"}, img(s.boxes, "crop boxes"), el("figcaption", {text: caption})) : null,
          s.crops ? el("table", {}, el("tr", {}, ...["crop", "top", "left", "height", "width", "hflip"].map(h => el("th", {text: h}))), ...rows) : null));
      }
      main.append(el("h2", {text: site.kind === "tokens" ? "Modalities: source crop 0, its reconstruction, its tokens" : "Modalities"}));
      for (const m of site.modalities) {
        const sec = s.m[m];
        if (!sec) continue;
        const tok = site.tokenizers ? site.tokenizers[m] : null;
        const figs = [];
        if (sec.source) figs.push(el("figure", {}, img(sec.source, m + " source"), el("figcaption", {text: chunk.samples && s.crops ? "source crop 0" : "source"})));
        if (sec.recon) figs.push(el("figure", {}, img(sec.recon, m + " reconstruction"), el("figcaption", {text: "reconstruction" + (tok ? " by " + tok : "")})));
        if (sec.tokens) figs.push(el("figure", {}, img(sec.tokens, m + " tokens"), el("figcaption", {text: `tokens (${sec.token_count}${sec.items !== undefined ? ", " + sec.items + " items" : ""}), colour = id`})));
        for (const [what, text] of Object.entries(sec.text || {})) figs.push(el("figure", {}, el("pre", {text}), el("figcaption", {text: what})));
        const metrics = Object.entries(sec.metrics || {});
        const table = metrics.length ? el("table", {}, el("tr", {}, el("th", {text: "metric"}), el("th", {text: "value"})),
          ...metrics.map(([k, v]) => el("tr", {}, el("td", {text: k}), el("td", {text: fmt(v)})))) : null;
        main.append(el("div", {class: "row modality", "data-modality": m}, el("div", {class: "name", text: m}), ...figs, table,
          sec.notes && sec.notes.length ? el("div", {class: "notes"}, ...sec.notes.map(n => el("div", {text: n}))) : null));
      }
      document.body.dataset.ready = chunkId + "/" + pos;
    };
    window.addEventListener("hashchange", () => render().catch(fail));
    await render();
  }

  /* ---- the dataset ---- */
  async function dataset() {
    const d = await load("data/dataset.js");
    document.getElementById("root").textContent = `${d.kind} dataset ${d.root}`;
    const main = document.getElementById("dataset");
    main.append(el("h1", {text: d.root}),
                el("p", {text: `${d.samples} samples: ${d.ok} ok, ${d.failed} failed`}));
    const heads = ["modality", "samples shown", "failed in it"];
    const tokens = d.kind === "tokens";
    if (tokens) heads.push("tokenizer", "vocab", "tokens / crop", "codebook used", "perplexity");
    heads.push("mean metrics");
    main.append(el("h2", {text: "Modalities"}), el("table", {}, el("tr", {}, ...heads.map(h => el("th", {text: h}))),
      ...d.modalities.map(m => el("tr", {}, ...[
        m.name, m.present, m.failed,
        ...(tokens ? [m.tokenizer + (m.untrained ? " UNTRAINED" : ""), m.vocab_size, JSON.stringify(m.token_shape) + " " + m.dtype,
                      `${m.codebook.codes_used} / ${m.codebook.vocab_size} (${(100 * m.codebook.usage).toFixed(1)}%)`,
                      fmt(m.codebook.perplexity)] : []),
        Object.entries(m.metrics).map(([k, v]) => `${k} ${fmt(v)}${m.higher_is_better.includes(k) ? " \u2191" : " \u2193"}`).join(", ") || "-",
      ].map(v => el("td", {text: String(v)}))))));
    if (tokens) {
      main.append(el("h2", {text: "Token frequencies"}),
                  el("div", {class: "plots"}, ...d.modalities.map(m => el("figure", {}, img(m.plot, m.name + " token frequencies")))));
    }
    main.append(el("h2", {text: `Failures (${d.failed})`}));
    if (d.failed) {
      main.append(el("p", {}, `listed: ${d.failures_listed}; all of them in the grid: `,
                      el("a", {href: "index.html#status=failed", text: "status = failed"})),
        el("table", {}, el("tr", {}, ...["key", "source", "reason"].map(h => el("th", {text: h}))),
          ...d.failures.map(f => el("tr", {}, el("td", {}, el("a", {href: sampleLink(f.chunk, f.pos), text: f.key})),
            el("td", {text: f.source || "-"}),
            el("td", {class: "errors", text: Object.entries(f.errors).map(([m, e]) => e.startsWith(m + ": ") ? e : `${m}: ${e}`).join("; ")})))));
    } else {
      main.append(el("p", {text: "none"}));
    }
    if (d.notes.length) main.append(el("h2", {text: "Notes"}), el("ul", {}, ...d.notes.map(n => el("li", {text: n}))));
    main.append(el("h2", {text: "Manifest"}),
                d.manifest ? el("pre", {text: JSON.stringify(d.manifest, null, 2)}) : el("p", {text: "no manifest"}));
    document.body.dataset.ready = "dataset";
  }

  document.addEventListener("DOMContentLoaded", () => {
    const page = {grid, sample, dataset}[document.body.dataset.page];
    if (page) page().catch(fail);
  });

  return {receive, load};
})();
