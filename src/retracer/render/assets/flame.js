/*
 * retracer's flame graph: one renderer for the view page's tab, the standalone
 * page of `retracer profile --format flamegraph` and the notebook's output.
 * No network, no libraries; every name reaches the page through textContent or
 * the canvas, never as HTML.
 *
 * RtFlame.mount(root, opts) draws into the element `root` and returns an object
 * with draw(), setSearch(q), reset(), zoomTo(i), sandwich(key) and debug hooks.
 * opts.nodes: [{name, label, module, where, key, total, self, calls, parent,
 * depth, kids}] with nodes[0] the root and every parent before its children.
 * Optional: opts.fmt(ns), opts.search (false: the host has its own search box and
 * calls setSearch), opts.hidden(node) and opts.dimmed(node) (the host's filters),
 * opts.onSelect(node) (the host's side panel), opts.title.
 *
 * The layout (shared with the SVG output of render/flamegraph.py): an icicle, the
 * root on top; a frame's width is its time including callees, children sorted by
 * name from the left; frames narrower than half a pixel are not drawn.
 */
(function () {
  'use strict';
  if (window.RtFlame) return;

  const ROW = 17, AXIS = 22, MIN_PX = 0.5, MAX_ROWS = 1500;
  const MATCH = '#e0409a';

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmtNsDefault(ns) {
    if (ns >= 1e9) return (ns / 1e9).toFixed(3) + '\u00a0s';
    if (ns >= 1e6) return (ns / 1e6).toFixed(3) + '\u00a0ms';
    if (ns >= 1e3) return (ns / 1e3).toFixed(1) + '\u00a0µs';
    return Math.round(ns) + '\u00a0ns';
  }
  function hash(s) {
    let h = 0;
    for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) | 0;
    return Math.abs(h);
  }
  /* the module gives the hue (the legend's swatch); the function's name varies the
   * lightness a little, so that neighbouring frames of one module stay apart */
  function moduleColor(m, dim, name) {
    if (!m) return dim ? '#e4e6ea' : '#c9ced6';
    const h = hash(m), v = name ? hash(name) % 12 - 6 : 0;
    return 'hsl(' + (h % 360) + ',' + (dim ? 30 : 58) + '%,' + (dim ? 88 : 70 + v) + '%)';
  }
  function ownColor(ratio, dim) {
    const r = Math.max(0, Math.min(1, ratio));
    return 'hsl(' + Math.round(55 - 55 * r) + ',' + (dim ? 30 : 85) + '%,' + (dim ? 90 : Math.round(78 - 20 * r)) + '%)';
  }
  /* A step of 1, 2 or 5 times a power of ten giving about `n` ticks over `span`. */
  function niceStep(span, n) {
    const raw = span / Math.max(1, n), p = Math.pow(10, Math.floor(Math.log10(raw)));
    const m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }
  function fmtTick(t, step) {
    if (t === 0) return '0';
    const u = step >= 1e8 ? [1e9, 's'] : step >= 1e5 ? [1e6, 'ms'] : step >= 100 ? [1e3, 'µs'] : [1, 'ns'];
    const v = t / u[0], s = step / u[0];
    const digits = s >= 1 ? 0 : Math.min(6, Math.ceil(-Math.log10(s)));
    return v.toFixed(digits) + '\u00a0' + u[1];
  }

  /* Ticks [(position in ns from t0, label)] for a span of `span` ns over `px` pixels. */
  function ticks(t0, span, px) {
    if (!(span > 0)) return [];
    const step = niceStep(span, Math.max(2, Math.floor(px / 110)));
    const out = [];
    for (let t = Math.ceil(t0 / step) * step; t <= t0 + span + step * 1e-9; t += step) out.push([t, fmtTick(t, step)]);
    return out;
  }

  function mount(root, opts) {
    const N = opts.nodes, fmt = opts.fmt || fmtNsDefault;
    const hidden = opts.hidden || (() => false), dimmed = opts.dimmed || (() => false);
    const S = { focus: 0, sel: -1, mode: 'flame', color: 'module', query: '', hits: null, share: 0,
                sandKey: null, rects: [], sandRects: { callers: [], callees: [] }, width: 0 };
    root.classList.add('rtf');
    root.textContent = '';

    /* ------------------------------------------------ the controls */
    const bar = root.appendChild(el('div', 'rtf-bar'));
    const bReset = bar.appendChild(el('button', 'rtf-reset', 'reset zoom'));
    const modes = bar.appendChild(el('span', 'rtf-seg'));
    const bFlame = modes.appendChild(el('button', 'rtf-mode active', 'flame graph'));
    const bSand = modes.appendChild(el('button', 'rtf-mode', 'sandwich'));
    bFlame.dataset.mode = 'flame'; bSand.dataset.mode = 'sandwich';
    bSand.title = 'callers and callees of the selected function (key s)';
    const colorLab = bar.appendChild(el('label', 'rtf-colorby', 'colour by '));
    const sel = colorLab.appendChild(el('select', 'rtf-color'));
    for (const [v, t] of [['module', 'module'], ['own', 'own time']]) {
      const o = sel.appendChild(el('option', null, t)); o.value = v;
    }
    let input = null;
    if (opts.search !== false) {
      input = bar.appendChild(el('input', 'rtf-search'));
      input.type = 'search';
      input.placeholder = 'search function… (/)';
    }
    const info = bar.appendChild(el('span', 'rtf-info'));
    {
      /* colour by module tells nothing when one module has nearly all the own time (a
       * script's own code): then by own time, the heat pyinstrument's tree shows */
      const by = new Map();
      let all = 0;
      for (const nd of N) if (nd.key !== undefined && !nd.synthetic) {
        by.set(nd.module || '?', (by.get(nd.module || '?') || 0) + (nd.self || 0));
        all += nd.self || 0;
      }
      const top = Math.max(0, ...by.values());
      if (opts.color) S.color = opts.color;
      else if (all > 0 && top / all >= 0.9) S.color = 'own';
      sel.value = S.color;
    }
    const legend = root.appendChild(el('div', 'rtf-legend'));
    const crumbs = root.appendChild(el('div', 'rtf-path'));
    const details = root.appendChild(el('div', 'rtf-details', '\u00a0'));
    const wrap = root.appendChild(el('div', 'rtf-wrap'));
    const cv = wrap.appendChild(el('canvas', 'rtf-canvas'));
    cv.tabIndex = 0;
    cv.setAttribute('aria-label', 'flame graph: arrow keys move, Enter zooms, Escape resets, s shows the sandwich');
    const sand = root.appendChild(el('div', 'rtf-sandwich'));
    sand.hidden = true;
    const hCallers = sand.appendChild(el('div', 'rtf-sand-title'));
    const cvCallers = sand.appendChild(el('canvas', 'rtf-canvas rtf-callers'));
    const hCallees = sand.appendChild(el('div', 'rtf-sand-title'));
    const cvCallees = sand.appendChild(el('canvas', 'rtf-canvas rtf-callees'));
    cvCallers.tabIndex = 0; cvCallees.tabIndex = 0;
    const tip = root.appendChild(el('div', 'rtf-tip'));
    tip.hidden = true;

    const TOTAL = N.length ? N[0].total || 1 : 1;

    /* ------------------------------------------------ search */
    function setSearch(q) {
      S.query = (q || '').trim().toLowerCase();
      if (!S.query) { S.hits = null; S.share = 0; }
      else {
        const hits = new Uint8Array(N.length);
        let share = 0, frames = 0;
        const under = new Uint8Array(N.length);  /* a match at or above this node */
        for (let i = 0; i < N.length; i++) {
          const nd = N[i];
          const m = i > 0 && nd.key !== undefined && (nd.name + ' ' + (nd.module || '') + ' ' + (nd.where || '')).toLowerCase().includes(S.query);
          if (m) { hits[i] = 1; frames++; }
          const up = nd.parent >= 0 ? under[nd.parent] : 0;
          if (m && !up) share += nd.total;
          under[i] = up || m ? 1 : 0;
        }
        S.hits = hits; S.share = share; S.frames = frames;
      }
      showInfo();
      draw();
    }
    function showInfo() {
      if (!S.hits) { info.textContent = ''; return; }
      info.textContent = S.frames ? S.frames.toLocaleString('en-US') + ' frame' + (S.frames === 1 ? '' : 's') +
        ' match · ' + (100 * S.share / TOTAL).toFixed(1) + '% of the total (' + fmt(S.share) + ')' : 'no frame matches';
    }

    /* ------------------------------------------------ colours and legend */
    function fill(nd, i, dim) {
      if (S.hits && S.hits[i]) return MATCH;
      const d = dim || !!S.hits || dimmed(nd);
      if (nd.key === undefined || nd.synthetic) return d ? '#e4e6ea' : '#c9ced6';
      if (S.color === 'own') return ownColor(nd.total ? nd.self / nd.total : 0, d);
      return moduleColor(nd.module || '?', d, nd.name);
    }
    function drawLegend() {
      legend.textContent = '';
      if (S.color === 'own') {
        legend.appendChild(el('span', 'rtf-lk', 'own time / total:'));
        for (const r of [0, 0.25, 0.5, 0.75, 1]) {
          const it = legend.appendChild(el('span', 'rtf-li'));
          const sw = it.appendChild(el('span', 'rtf-sw')); sw.style.background = ownColor(r, false);
          it.appendChild(document.createTextNode(Math.round(r * 100) + '%'));
        }
      } else {
        const by = new Map();
        for (const nd of N) if (nd.key !== undefined && !nd.synthetic) by.set(nd.module || '?', (by.get(nd.module || '?') || 0) + (nd.self || 0));
        const top = [...by.entries()].sort((a, b) => b[1] - a[1]).slice(0, 10);
        legend.appendChild(el('span', 'rtf-lk', 'module (own time):'));
        for (const [m, v] of top) {
          const it = legend.appendChild(el('span', 'rtf-li'));
          it.dataset.module = m;
          const sw = it.appendChild(el('span', 'rtf-sw')); sw.style.background = moduleColor(m, false);
          it.appendChild(document.createTextNode(m + '\u00a0' + (100 * v / TOTAL).toFixed(1) + '%'));
        }
        if (by.size > top.length) legend.appendChild(el('span', 'rtf-li', '+' + (by.size - top.length) + ' more'));
      }
      if (S.hits) {
        const it = legend.appendChild(el('span', 'rtf-li'));
        const sw = it.appendChild(el('span', 'rtf-sw')); sw.style.background = MATCH;
        it.appendChild(document.createTextNode('search match'));
      }
    }

    /* ------------------------------------------------ layout and drawing */
    function widthOf(c) { return Math.max(200, Math.floor(c.parentElement.clientWidth || root.clientWidth || 800)); }

    /* the frames of `nodes` under `focus` at `W` pixels: [x, w, depth, index] */
    function layout(nodes, focus, W, skip) {
      const out = [];
      const f = nodes[focus], scale = W / Math.max(1, f.total);
      for (let a = f.parent; a >= 0; a = nodes[a].parent) out.push([0, W, nodes[a].depth, a, 1]);
      const st = [[focus, 0]];
      while (st.length) {
        const [i, x] = st.pop();
        const nd = nodes[i], w = nd.total * scale;
        if (w < MIN_PX || nd.depth - f.depth >= MAX_ROWS || (skip && skip(nd))) continue;
        out.push([x, w, nd.depth, i, 0]);
        let cx = x;
        for (const c of nd.kids) { st.push([c, cx]); cx += nodes[c].total * scale; }
      }
      return out;
    }

    function drawAxis(ctx, W, t0, span) {
      ctx.fillStyle = '#f4f5f7'; ctx.fillRect(0, 0, W, AXIS - 4);
      ctx.strokeStyle = '#b9bec6'; ctx.fillStyle = '#4b5057';
      ctx.textBaseline = 'middle';
      const tk = ticks(0, span, W);
      for (const [t, lab] of tk) {
        const x = Math.round(t / span * W) + 0.5;
        ctx.beginPath(); ctx.moveTo(x, AXIS - 10); ctx.lineTo(x, AXIS - 4); ctx.stroke();
        const tw = ctx.measureText(lab).width;
        ctx.fillText(lab, Math.min(Math.max(0, x + 3), W - tw - 2), 7);
      }
      return tk.map((t) => t[1]);
    }

    function setup(c, W, H) {
      const dpr = window.devicePixelRatio || 1;
      c.width = Math.round(W * dpr); c.height = Math.round(H * dpr);
      c.style.width = W + 'px'; c.style.height = H + 'px';
      const ctx = c.getContext('2d');
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.font = '11px system-ui, -apple-system, "Segoe UI", sans-serif';
      ctx.textBaseline = 'middle';
      return ctx;
    }

    function frame(ctx, nd, i, x, w, y, dim, selected) {
      ctx.fillStyle = fill(nd, i, dim);
      ctx.fillRect(x, y, Math.max(w - 0.5, 0.5), ROW - 1);
      if (selected) { ctx.strokeStyle = '#1d1f21'; ctx.lineWidth = 2; ctx.strokeRect(x + 1, y + 1, Math.max(w - 2.5, 1), ROW - 3); ctx.lineWidth = 1; }
      if (w > 24) {
        ctx.fillStyle = '#1d1f21';
        const max = Math.floor((w - 6) / 6.2);
        /* a frame wide enough for it says its time too, as pyinstrument's tree does */
        const timed = nd.name + '  ' + fmt(nd.total);
        const t = w > 120 && timed.length <= max ? timed : nd.name;
        const shown = t.length > max ? t.slice(0, Math.max(0, max - 1)) + '…' : t;
        ctx.fillText(shown, x + 3, y + ROW / 2);
        return shown;
      }
      return '';
    }

    function drawFlame() {
      const W = widthOf(cv);
      S.width = W;
      const skip = (nd) => hidden(nd);
      const L = layout(N, S.focus, W, skip);
      let maxDepth = 0;
      for (const r of L) if (r[2] > maxDepth) maxDepth = r[2];
      const H = AXIS + (maxDepth + 1) * ROW + 2;
      const ctx = setup(cv, W, H);
      const f = N[S.focus];
      S.axis = drawAxis(ctx, W, 0, f.total);
      S.rects = [];
      for (const [x, w, d, i, anc] of L) {
        const y = AXIS + d * ROW;
        const text = frame(ctx, N[i], i, x, w, y, anc === 1, i === S.sel);
        S.rects.push([x, y, w, ROW, i, text]);
      }
      const path = [];
      for (let k = S.focus; k >= 0; k = N[k].parent) path.unshift(N[k].name);
      crumbs.textContent = path.join(' › ');
      bReset.disabled = S.focus === 0;
    }

    /* ------------------------------------------------ sandwich */
    /* merged trees of the callers (inverted) and callees of the function `key` */
    function sandwichTrees(key) {
      const inside = new Uint8Array(N.length), occ = [];
      for (let i = 0; i < N.length; i++) {
        const up = N[i].parent >= 0 ? inside[N[i].parent] : 0;
        const m = N[i].key === key;
        if (m && !up) occ.push(i);
        inside[i] = up || m ? 1 : 0;
      }
      const name = occ.length ? N[occ[0]].name : String(key);
      const mk = (src, parent, depth) => ({ name: src.name, label: src.label, module: src.module, where: src.where, key: src.key,
        synthetic: src.synthetic, total: 0, self: 0, calls: 0, parent: parent, depth: depth, kids: [], src: src });
      function child(tree, p, src) {
        for (const c of tree[p].kids) if (tree[c].key === src.key && tree[c].name === src.name) return c;
        tree.push(mk(src, p, tree[p].depth + 1));
        tree[p].kids.push(tree.length - 1);
        return tree.length - 1;
      }
      const callees = [mk(N[occ[0]] || { name: name }, -1, 0)], callers = [mk(N[occ[0]] || { name: name }, -1, 0)];
      for (const o of occ) {
        callees[0].total += N[o].total; callees[0].calls += N[o].calls;
        callers[0].total += N[o].total; callers[0].calls += N[o].calls;
        const st = [[o, 0]];
        while (st.length) {
          const [i, t] = st.pop();
          if (i !== o) { callees[t].total += N[i].total; callees[t].calls += N[i].calls; }
          callees[t].self += N[i].self;
          for (const c of N[i].kids) st.push([c, child(callees, t, N[c])]);
        }
        let t = 0;
        for (let a = N[o].parent; a > 0; a = N[a].parent) {
          t = child(callers, t, N[a]);
          callers[t].total += N[o].total; callers[t].calls += N[o].calls;
        }
      }
      callers[0].self = callees[0].self;
      for (const tree of [callers, callees]) for (const nd of tree) nd.kids.sort((a, b) => tree[a].name < tree[b].name ? -1 : tree[a].name > tree[b].name ? 1 : 0);
      return { name: name, callers: callers, callees: callees, occurrences: occ.length };
    }

    function drawTree(c, tree, flip, store) {
      const W = widthOf(c);
      const L = layout(tree, 0, W, null);
      let maxDepth = 0;
      for (const r of L) if (r[2] > maxDepth) maxDepth = r[2];
      const H = AXIS + (maxDepth + 1) * ROW + 2;
      const ctx = setup(c, W, H);
      drawAxis(ctx, W, 0, tree[0].total);
      store.length = 0;
      for (const [x, w, d, i] of L) {
        const y = flip ? AXIS + (maxDepth - d) * ROW : AXIS + d * ROW;
        const nd = tree[i];
        ctx.fillStyle = d === 0 ? '#f2b84b' : fill(nd.src || nd, -1, false);
        ctx.fillRect(x, y, Math.max(w - 0.5, 0.5), ROW - 1);
        if (w > 24) {
          ctx.fillStyle = '#1d1f21';
          const max = Math.floor((w - 6) / 6.2), t = nd.name;
          ctx.fillText(t.length > max ? t.slice(0, Math.max(0, max - 1)) + '…' : t, x + 3, y + ROW / 2);
        }
        store.push([x, y, w, ROW, i, tree]);
      }
    }

    function drawSandwich() {
      if (S.sandKey === null) {
        const k = S.sel > 0 ? S.sel : (N[0].kids.length ? heaviestLeafward(0) : -1);
        if (k < 0) { hCallers.textContent = 'nothing to show'; return; }
        S.sandKey = N[k].key;
      }
      const T = sandwichTrees(S.sandKey);
      S.sand = T;
      hCallers.textContent = 'Callers of ' + T.name + ' (' + fmt(T.callers[0].total) + ', ' + (100 * T.callers[0].total / TOTAL).toFixed(1) + '% of the total)';
      hCallees.textContent = 'Callees of ' + T.name + ' (own time ' + fmt(T.callees[0].self) + ')';
      drawTree(cvCallers, T.callers, true, S.sandRects.callers);
      drawTree(cvCallees, T.callees, false, S.sandRects.callees);
      crumbs.textContent = 'sandwich: ' + T.name;
    }
    function heaviestLeafward(i) {
      let best = -1;
      for (const c of N[i].kids) if (best < 0 || N[c].total > N[best].total) best = c;
      return best;
    }

    function draw() {
      drawLegend();
      wrap.hidden = S.mode !== 'flame';
      sand.hidden = S.mode !== 'sandwich';
      bFlame.classList.toggle('active', S.mode === 'flame');
      bSand.classList.toggle('active', S.mode === 'sandwich');
      if (S.mode === 'flame') drawFlame(); else drawSandwich();
      root.dataset.drawn = String((+root.dataset.drawn || 0) + 1);
    }

    /* ------------------------------------------------ interaction */
    function describe(nd) {
      if (!nd) return '\u00a0';
      const share = (100 * nd.total / TOTAL).toFixed(2) + '%';
      if (nd.key === undefined) return (nd.label || nd.name) + ': ' + fmt(nd.total) + ' (' + share + ')';
      return (nd.label || nd.name) + ' — total ' + fmt(nd.total) + ' (' + share + '), own ' + fmt(nd.self) +
        ', ' + Number(nd.calls).toLocaleString('en-US') + ' call' + (nd.calls === 1 ? '' : 's');
    }
    function at(rects, c, ev) {
      const b = c.getBoundingClientRect(), x = ev.clientX - b.left, y = ev.clientY - b.top;
      for (let k = rects.length - 1; k >= 0; k--) {
        const r = rects[k];
        if (x >= r[0] && x < r[0] + Math.max(r[2], 1) && y >= r[1] && y < r[1] + r[3]) return r;
      }
      return null;
    }
    function showTip(ev, text) {
      if (!text) { tip.hidden = true; return; }
      tip.hidden = false; tip.textContent = text;
      tip.style.left = Math.min(ev.clientX + 14, window.innerWidth - 320) + 'px';
      tip.style.top = (ev.clientY + 14) + 'px';
    }
    function select(i, zoom) {
      S.sel = i;
      if (zoom) S.focus = i;
      details.textContent = describe(N[i]);
      if (opts.onSelect) opts.onSelect(N[i], i);
      draw();
    }
    function zoomTo(i) { S.focus = Math.max(0, i); S.mode = 'flame'; draw(); }
    function reset() { S.focus = 0; draw(); }

    cv.addEventListener('mousemove', (ev) => {
      const r = at(S.rects, cv, ev);
      details.textContent = r ? describe(N[r[4]]) : (S.sel >= 0 ? describe(N[S.sel]) : '\u00a0');
      showTip(ev, r ? describe(N[r[4]]) : null);
    });
    cv.addEventListener('mouseleave', () => { showTip(null, null); details.textContent = S.sel >= 0 ? describe(N[S.sel]) : '\u00a0'; });
    cv.addEventListener('click', (ev) => { const r = at(S.rects, cv, ev); if (r) { cv.focus({ preventScroll: true }); select(r[4], true); } });
    for (const [c, which] of [[cvCallers, 'callers'], [cvCallees, 'callees']]) {
      c.addEventListener('mousemove', (ev) => { const r = at(S.sandRects[which], c, ev); showTip(ev, r ? describe(r[5][r[4]]) : null); });
      c.addEventListener('mouseleave', () => showTip(null, null));
      c.addEventListener('click', (ev) => {
        const r = at(S.sandRects[which], c, ev);
        if (r && r[5][r[4]].key !== undefined) { S.sandKey = r[5][r[4]].key; draw(); }
      });
    }
    bReset.addEventListener('click', reset);
    bFlame.addEventListener('click', () => { S.mode = 'flame'; draw(); });
    bSand.addEventListener('click', () => { S.mode = 'sandwich'; S.sandKey = S.sel > 0 && N[S.sel].key !== undefined ? N[S.sel].key : S.sandKey; draw(); });
    sel.addEventListener('change', () => { S.color = sel.value; draw(); });
    if (input) {
      let timer = 0;
      input.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(() => setSearch(input.value), 120); });
      input.addEventListener('keydown', (ev) => { if (ev.key === 'Escape') { input.value = ''; setSearch(''); } });
    }
    /* keyboard: arrows move the selection (up: caller, down: heaviest callee,
     * left/right: neighbours at the same depth), Enter zooms, Escape resets, s: sandwich, /: search */
    function neighbour(i, dir) {
      const d = N[i].depth, row = S.rects.filter((r) => N[r[4]].depth === d).sort((a, b) => a[0] - b[0]);
      const k = row.findIndex((r) => r[4] === i);
      const r = row[k + dir];
      return r ? r[4] : i;
    }
    function onKey(ev) {
      if (ev.target && (ev.target.tagName === 'INPUT' || ev.target.tagName === 'SELECT')) return;
      const cur = S.sel >= 0 ? S.sel : S.focus;
      let next = -1;
      if (ev.key === 'Escape') { S.sel = -1; S.mode = 'flame'; details.textContent = '\u00a0'; reset(); ev.preventDefault(); return; }
      if (ev.key === '/' && input) { input.focus(); ev.preventDefault(); return; }
      if (ev.key === 's') { bSand.click(); ev.preventDefault(); return; }
      if (ev.key === 'Enter' && S.sel >= 0) { select(S.sel, true); ev.preventDefault(); return; }
      if (S.mode !== 'flame') return;
      if (ev.key === 'ArrowUp') next = N[cur].parent >= 0 ? N[cur].parent : cur;
      else if (ev.key === 'ArrowDown') { const h = heaviestLeafward(cur); next = h >= 0 ? h : cur; }
      else if (ev.key === 'ArrowLeft') next = neighbour(cur, -1);
      else if (ev.key === 'ArrowRight') next = neighbour(cur, 1);
      else return;
      ev.preventDefault();
      select(next, false);
    }
    root.addEventListener('keydown', onKey);
    if (opts.globalKeys) document.addEventListener('keydown', (ev) => { if (!root.contains(ev.target)) onKey(ev); });
    if (window.ResizeObserver) {
      let last = 0;
      new ResizeObserver(() => {
        const w = root.clientWidth;
        if (w && w !== last && root.offsetParent !== null) { last = w; draw(); }
      }).observe(root);
    } else {
      window.addEventListener('resize', () => draw());
    }

    const api = {
      draw: draw, setSearch: setSearch, reset: reset, zoomTo: zoomTo, state: S,
      sandwich: (key) => { S.mode = 'sandwich'; S.sandKey = key; draw(); },
      select: (i) => select(i, false),
      debug: {
        frames: () => S.rects.map((r) => ({ i: r[4], name: N[r[4]].name, x: r[0], y: r[1], w: r[2], depth: N[r[4]].depth,
                                           text: r[5] || '' })),
        color: () => S.color,
        axis: () => (S.axis || []).slice(),
        width: () => S.width,
        path: () => crumbs.textContent,
        sandwich: () => S.mode !== 'sandwich' || !S.sand ? null : {
          name: S.sand.name,
          callers: S.sandRects.callers.map((r) => r[5][r[4]].name),
          callees: S.sandRects.callees.map((r) => r[5][r[4]].name),
          callersTotal: S.sand.callers[0].total, calleesTotal: S.sand.callees[0].total,
        },
        info: () => info.textContent,
        hits: () => S.hits ? S.rects.filter((r) => S.hits[r[4]]).map((r) => N[r[4]].name) : [],
        selected: () => S.sel,
        details: () => details.textContent,
      },
    };
    draw();
    return api;
  }

  window.RtFlame = { mount: mount, ticks: ticks, fmtNs: fmtNsDefault, niceStep: niceStep };
})();
