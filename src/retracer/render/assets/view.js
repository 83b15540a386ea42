/*
 * retracer view: the page's code. The data (functions, threads, captured calls,
 * statistics) is the JSON in #rt-data; each thread's folded call tree and call
 * paths are zlib buffers in base64, in the encoding of csrc/rt_fold.c
 * (docs/folding.md, "Encoding"). Nothing is rendered before it is needed: the
 * tree decodes a record when its row is shown, the timeline only what is on
 * screen. All text reaches the page through textContent, never as HTML.
 */
(function () {
  'use strict';

  const $ = (id) => document.getElementById(id);
  const DATA = JSON.parse($('rt-data').textContent);
  const FNS = DATA.functions;
  const FLAG_IN_SCOPE = 1, FLAG_IMPORT = 2;
  const KIND_RESUME = 1, KIND_CONT = 2;
  const END_RAISE = 1, END_SUSPEND = 2, END_OPEN = 3;
  const PAGE = 200;          /* rows rendered per list before "show more" */
  const AUTO_ROWS = 400;     /* rows the first render may expand by itself */

  const state = {
    patterns: !!DATA.initial.patterns,
    hideExternal: false,
    hideImports: !!DATA.initial.hideImports,
    minDur: 0,
    search: '',
    fidHits: null,           /* Set of fids matching the search */
    selected: null,
    tab: 'tree',
  };
  let THREADS = [];

  /* ------------------------------------------------------------ helpers */

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmtNs(ns) {
    if (ns >= 1e9) return (ns / 1e9).toFixed(3) + '\u00a0s';
    if (ns >= 1e6) return (ns / 1e6).toFixed(3) + '\u00a0ms';
    if (ns >= 1e3) return (ns / 1e3).toFixed(1) + '\u00a0µs';
    return Math.round(ns) + '\u00a0ns';
  }
  function fmtInt(n) { return Number(n).toLocaleString('en-US'); }
  function plural(n, w) { return fmtInt(n) + ' ' + w + (n === 1 ? '' : 's'); }
  function fn(fid) { return FNS[fid] || ['function ' + fid, '', '', '', '', 0, 'py']; }
  function fnLabel(fid) { return fn(fid)[0]; }
  function fnFlags(fid) { return fn(fid)[5] | 0; }

  function b64(s) {
    const bin = atob(s);
    const u = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) u[i] = bin.charCodeAt(i);
    return u;
  }
  async function inflate(bytes) {
    const ds = new DecompressionStream('deflate');
    const out = new Blob([bytes]).stream().pipeThrough(ds);
    return new Uint8Array(await new Response(out).arrayBuffer());
  }

  /* ------------------------------------------------------------ decoding */

  /* A varint reader over one buffer; numbers stay exact up to 2^53. */
  const RD = { b: null, p: 0 };
  function rv() {
    const b = RD.b;
    let p = RD.p, v = 0, mul = 1, x;
    do {
      x = b[p++];
      v += (x & 127) * mul;
      mul *= 128;
    } while (x & 128);
    RD.p = p;
    return v;
  }

  function decodeRoot(T) {
    RD.b = T.buf; RD.p = 0;
    if (rv() !== 1) throw new Error('unknown folded-tree encoding');
    if (rv() !== 2) throw new Error('folded tree without a root');
    const r = { T: T, off: -1, root: true, group: false, fid: -1, kind: 3, depth: 1, how: 0 };
    r.t0 = rv(); r.dur = rv(); r.calls = rv(); r.nitems = rv();
    const cb = rv();
    r.kids = RD.p; r.end = r.kids + cb; r.t1 = r.t0 + r.dur; r.dursum = r.dur; r.callNo = 0;
    return r;
  }

  function readRec(T, pos, cursor, nextCall) {
    RD.b = T.buf; RD.p = pos;
    const w = rv(), gap = rv();
    const r = { T: T, off: pos, t0: cursor + gap, callNo: nextCall, group: false };
    if (w % 4 === 1) {
      r.group = true;
      r.period = Math.floor(w / 4);
      r.dur = rv(); r.dursum = rv(); r.count = rv(); r.calls = rv();
      if (r.period > 1) {
        r.aggs = new Array(r.period);
        for (let k = 0; k < r.period; k++) r.aggs[k] = [rv(), rv()];
      } else {
        r.aggs = [[r.dursum, r.calls]];
      }
      const cb = rv();
      r.nitems = r.period * r.count;
      r.kids = RD.p; r.end = r.kids + cb;
    } else {
      r.fid = Math.floor(w / 4);
      r.dur = rv();
      const fl = rv();
      r.kind = fl % 4; r.how = Math.floor(fl / 4) % 4; r.depth = Math.floor(fl / 32) + 1;
      r.dursum = r.dur;
      if (Math.floor(fl / 16) % 2) {
        r.calls = rv(); r.nitems = rv();
        const cb = rv();
        r.kids = RD.p; r.end = r.kids + cb;
      } else {
        r.calls = r.kind === KIND_RESUME ? 0 : 1; r.nitems = 0; r.kids = r.end = RD.p;
      }
    }
    r.t1 = r.t0 + r.dur;
    return r;
  }

  function firstChildCall(r) {
    return r.callNo + ((r.group || r.root || r.kind === KIND_RESUME) ? 0 : 1);
  }

  /* The items of a span, a group (all repetitions) or a root, in order. */
  function* items(r) {
    let pos = r.kids, cursor = r.t0, nxt = firstChildCall(r);
    for (let i = 0; i < r.nitems; i++) {
      const c = readRec(r.T, pos, cursor, nxt);
      c.index = i;
      pos = c.end; cursor = c.t1; nxt += c.calls;
      yield c;
    }
  }

  /* "[a, b, 2× [c, d]]": a group's template, nested groups one level deep */
  function tmplNames(g, levels) {
    return firstRep(g).map((c) => !c.group ? fnLabel(c.fid)
      : c.count + '× ' + (levels > 1 ? '[' + tmplNames(c, levels - 1).join(', ') + ']' : '[…]'));
  }

  function firstRep(g) {
    const out = [];
    for (const c of items(g)) { if (out.length >= g.period) break; out.push(c); }
    return out;
  }

  /* ------------------------------------------------------------ filters */

  function spanHidden(r) {
    const f = fnFlags(r.fid);
    if (state.hideImports && (f & FLAG_IMPORT)) return true;
    if (state.minDur && r.dur < state.minDur) return true;
    return false;
  }
  function isMarked(r) { return !r.T.marks || r.T.marks[r.off] !== 0; }
  function groupHidden(g) {
    if (state.minDur && g.dursum < state.minDur) return true;
    if (!state.hideImports && !state.hideExternal) return false;
    const tmpl = firstRep(g);
    return tmpl.every((c, k) => !c.group && (
      (state.hideImports && (fnFlags(c.fid) & FLAG_IMPORT)) ||
      (state.hideExternal && !(fnFlags(c.fid) & FLAG_IN_SCOPE) && g.aggs[k][1] <= g.count)));
  }

  /* What a list shows: groups kept or opened (patterns), hidden calls dropped,
   * calls outside the scope replaced by what they call. */
  function* visible(source) {
    const stack = [source];
    while (stack.length) {
      const n = stack[stack.length - 1].next();
      if (n.done) { stack.pop(); continue; }
      const r = n.value;
      if (r.rep) { if (r.items.some(isMarked)) yield r; continue; }
      if (!isMarked(r)) continue;
      if (r.group) {
        if (!state.patterns) { stack.push(items(r)); continue; }
        if (!groupHidden(r)) yield r;
        continue;
      }
      if (spanHidden(r)) continue;
      if (state.hideExternal && !(fnFlags(r.fid) & FLAG_IN_SCOPE)) {
        if (r.nitems) stack.push(items(r));
        continue;
      }
      yield r;
    }
  }

  /* The rows of an open group: its items for period 1, else one row per repetition. */
  function* repetitions(g) {
    if (g.period === 1) { yield* items(g); return; }
    let cur = null;
    for (const c of items(g)) {
      if (c.index % g.period === 0) {
        if (cur) yield cur;
        cur = { rep: true, T: g.T, group: false, k: c.index / g.period, items: [], t0: c.t0, dursum: 0, calls: 0, g: g };
      }
      cur.items.push(c); cur.dursum += c.dursum; cur.calls += c.calls; cur.t1 = c.t1;
    }
    if (cur) yield cur;
  }

  /* ------------------------------------------------------------ search */

  function computeSearch() {
    const q = state.search.trim().toLowerCase();
    for (const T of THREADS) T.marks = null;
    state.fidHits = null;
    const info = $('search-info');
    if (!q) { info.textContent = ''; return; }
    const hit = new Set();
    for (const fid in FNS) {
      const f = FNS[fid];
      if ((f[0] + ' ' + f[1] + ' ' + f[2]).toLowerCase().includes(q)) hit.add(Number(fid));
    }
    state.fidHits = hit;
    let calls = 0;
    for (const T of THREADS) calls += markThread(T, hit);
    info.textContent = calls ? plural(calls, 'matching call') : 'no call matches';
  }

  /* Mark every record that matches or contains a match (one pass, no recursion). */
  function markThread(T, hit) {
    const b = T.buf, marks = new Uint8Array(b.length + 1);
    const offs = [], left = [], posA = [], done = [];
    offs.push(-1); left.push(T.root.nitems); posA.push(T.root.kids); done.push(0);
    let hits = 0;
    while (offs.length) {
      const sp = offs.length - 1;
      if (left[sp] === 0) { offs.pop(); left.pop(); posA.pop(); done.pop(); continue; }
      left[sp]--;
      const pos = posA[sp];
      RD.b = b; RD.p = pos;
      const w = rv(); rv();
      let nitems = 0, kids, end, match = false;
      if (w % 4 === 1) {
        const period = Math.floor(w / 4);
        rv(); rv(); const count = rv(); rv();
        if (period > 1) for (let k = 0; k < 2 * period; k++) rv();
        const cb = rv();
        nitems = period * count; kids = RD.p; end = kids + cb;
      } else {
        const fid = Math.floor(w / 4);
        rv(); const fl = rv();
        if (Math.floor(fl / 16) % 2) { const calls = rv(); nitems = rv(); const cb = rv(); kids = RD.p; end = kids + cb; void calls; }
        else { kids = end = RD.p; }
        match = hit.has(fid);
      }
      posA[sp] = end;
      if (match) {
        hits++;
        marks[pos] = 3;
        for (let k = sp; k >= 0 && !done[k]; k--) { if (offs[k] >= 0) marks[offs[k]] |= 1; done[k] = 1; }
      }
      if (nitems) { offs.push(pos); left.push(nitems); posA.push(kids); done.push(match ? 1 : 0); }
    }
    T.marks = marks;
    return hits;
  }

  /* ------------------------------------------------------------ call tree */

  function rowFor(r, level, label) {
    const row = el('div', 'row');
    row.style.paddingLeft = (4 + level * 16) + 'px';
    const tw = el('span', 'tw');
    row.appendChild(tw);
    const T = r.T;
    row.dataset.thread = T.idx;
    if (r.rep) {
      row.dataset.kind = 'rep';
      row.appendChild(el('span', 'name', 'repetition #' + fmtInt(r.k + 1)));
      row.appendChild(el('span', 'where', r.items.map((c) => c.group ? c.count + '× […]' : fnLabel(c.fid)).join(', ')));
      row.appendChild(el('span', 'time', fmtNs(r.dursum)));
      row.appendChild(el('span', 'num', plural(r.calls, 'call')));
      tw.textContent = '▸';
      return row;
    }
    if (r.group) {
      const names = tmplNames(r, 2);
      row.dataset.kind = 'group';
      row.dataset.count = r.count;
      row.dataset.calls = r.calls;
      row.dataset.period = r.period;
      row.dataset.name = names.join(', ');
      row.appendChild(el('span', 'badge group', fmtInt(r.count) + '×'));
      const nm = el('span', 'name', '[' + (names.length > 6 ? names.slice(0, 6).join(', ') + ', …' : names.join(', ')) + ']');
      nm.style.marginLeft = '6px';
      row.appendChild(nm);
      row.appendChild(el('span', 'time', fmtNs(r.dursum)));
      row.appendChild(el('span', 'num', plural(r.calls, 'call') + ' · ' + fmtNs(r.dursum / r.count) + ' per repetition'));
      if (state.fidHits && names.length && firstRep(r).some((c) => !c.group && state.fidHits.has(c.fid))) row.classList.add('hit');
      tw.textContent = '▸';
      return row;
    }
    const f = fn(r.fid);
    row.dataset.kind = 'span';
    row.dataset.name = f[0];
    row.dataset.calls = r.calls;
    row.dataset.callno = r.callNo;
    row.dataset.depth = r.depth;
    if (label) row.appendChild(el('span', 'num', label)).style.marginLeft = '0';
    const nm = row.appendChild(el('span', 'name', f[0]));
    if (label) nm.style.marginLeft = '6px';
    row.appendChild(el('span', 'where', f[3]));
    if (r.depth > 1) {
      row.dataset.recursive = '1';
      row.appendChild(el('span', 'badge rec', '↻ recursion depth ' + fmtInt(r.depth) + ' · ' + plural(r.calls, 'call')));
    }
    if (r.kind === KIND_RESUME) row.appendChild(el('span', 'badge slice', 'resumed'));
    if (r.kind === KIND_CONT) row.appendChild(el('span', 'badge slice', 'continued'));
    if (r.how === END_RAISE) row.appendChild(el('span', 'badge raise', 'raised'));
    if (r.how === END_OPEN) row.appendChild(el('span', 'badge slice', 'still running'));
    if (r.kind !== KIND_RESUME && DATA.captured[T.idx + ':' + r.callNo]) {
      row.dataset.args = '1';
      row.appendChild(el('span', 'badge args', 'args'));
    }
    row.appendChild(el('span', 'time', fmtNs(r.dur)));
    if (r.calls > 1 && r.depth <= 1) row.appendChild(el('span', 'num', plural(r.calls, 'call')));
    const bar = el('span', 'bar');
    const pd = r.parentDur || r.dur || 1;
    bar.style.width = Math.max(1, Math.round(80 * Math.min(1, r.dur / pd))) + 'px';
    row.appendChild(bar);
    if (state.fidHits && state.fidHits.has(r.fid)) row.classList.add('hit');
    tw.textContent = r.nitems ? '▸' : '';
    return row;
  }

  /* A tree node: its row and, once opened, a container of child nodes. */
  function addNode(container, r, level, label) {
    const node = el('div', 'node');
    const row = rowFor(r, level, label);
    node.appendChild(row);
    node._r = r;
    node._level = level;
    container.appendChild(node);
    row.addEventListener('click', (ev) => {
      if (ev.target.classList.contains('tw')) toggle(node);
      select(node);
    });
    row.addEventListener('dblclick', () => toggle(node));
    return node;
  }

  function expandable(r) { return r.rep || r.group || r.root || r.nitems > 0; }

  function childSource(r) {
    if (r.rep) return r.items[Symbol.iterator]();
    if (r.group) return repetitions(r);
    return items(r);
  }

  function toggle(node) {
    if (node._open) collapse(node); else expand(node);
  }
  function collapse(node) {
    node._open = false;
    if (node._kids) node._kids.remove();
    node._kids = null;
    const tw = node.firstChild.querySelector('.tw');
    if (tw && tw.textContent) tw.textContent = '▸';
  }
  function expand(node) {
    const r = node._r;
    if (!expandable(r) || node._open) return 0;
    node._open = true;
    const tw = node.firstChild.querySelector('.tw');
    if (tw) tw.textContent = '▾';
    node._kids = el('div', 'kids');
    node.appendChild(node._kids);
    const src = r.group && !r.rep ? visibleReps(r) : visible(childSource(r));
    return renderPage(node, src, r);
  }

  function* visibleReps(g) {
    for (const c of repetitions(g)) {
      if (c.rep) { if (c.items.some(isMarked)) yield c; continue; }
      if (!isMarked(c)) continue;
      if (c.group) { if (!groupHidden(c)) yield c; continue; }
      if (spanHidden(c)) continue;
      yield c;
    }
  }

  function renderPage(node, src, owner) {
    let n = 0;
    const level = node._level + 1;
    while (n < PAGE) {
      const x = src.next();
      if (x.done) return n;
      const r = x.value;
      r.parentDur = owner.group ? owner.dursum / Math.max(1, owner.count) : (owner.rep ? owner.dursum : owner.dur);
      const label = owner.group && !owner.rep && owner.period === 1 && !r.group ? '#' + fmtInt(r.index + 1) : null;
      addNode(node._kids, r, level, label);
      n++;
    }
    const more = el('div', 'row');
    more.dataset.kind = 'more';
    more.style.paddingLeft = (4 + level * 16) + 'px';
    more.textContent = 'show ' + PAGE + ' more…';
    more.addEventListener('click', () => {
      more.remove();
      renderPage(node, src, owner);
    });
    node._kids.appendChild(more);
    return n;
  }

  function renderTree() {
    const tree = $('tree');
    tree.textContent = '';
    let budget = AUTO_ROWS;
    const queue = [];
    /* a multi-process trace: a level per process above its threads */
    let procKids = null, procName = null;
    for (const T of THREADS) {
      if (T.meta.process && T.meta.process !== procName) {
        procName = T.meta.process;
        const ph = el('div', 'node');
        const prow = el('div', 'row');
        prow.dataset.kind = 'process';
        prow.appendChild(el('span', 'tw', '▾'));
        prow.appendChild(el('span', 'name', procName));
        const mine = THREADS.filter((U) => U.meta.process === procName);
        prow.appendChild(el('span', 'time', fmtNs(Math.max(...mine.map((U) => U.root.dur)))));
        prow.appendChild(el('span', 'num', plural(mine.reduce((a, U) => a + U.root.calls, 0), 'call') + ' · ' +
                                           plural(mine.length, 'thread')));
        ph.appendChild(prow);
        procKids = el('div', 'kids');
        ph.appendChild(procKids);
        tree.appendChild(ph);
        const kids = procKids;
        prow.addEventListener('click', () => {
          const open = kids.style.display !== 'none';
          kids.style.display = open ? 'none' : '';
          prow.querySelector('.tw').textContent = open ? '▸' : '▾';
        });
      }
      const head = el('div', 'node');
      const row = el('div', 'row');
      row.dataset.kind = 'thread';
      row.appendChild(el('span', 'tw', '▾'));
      row.appendChild(el('span', 'name', 'Thread ' + T.name));
      row.appendChild(el('span', 'time', fmtNs(T.root.dur)));
      row.appendChild(el('span', 'num', plural(T.root.calls, 'call') + (T.meta.groups ? ' · ' + plural(T.meta.groups, 'group') + ' folded' : '')));
      head.appendChild(row);
      head._r = T.root;
      head._level = -1;
      (T.meta.process && procKids ? procKids : tree).appendChild(head);
      row.addEventListener('click', () => toggle(head));
      if (T.marks && !T.marks.some((x) => x)) continue;
      budget -= expand(head);
      queue.push(head);
    }
    /* open what helps to see the structure: small lists of calls, breadth first;
     * with a search, every path to a match */
    while (queue.length && budget > 0) {
      const node = queue.shift();
      if (!node._kids) continue;
      for (const child of Array.from(node._kids.children)) {
        const r = child._r;
        if (!r || budget <= 0) continue;
        const searching = !!state.fidHits;
        const wanted = searching ? (r.group || r.rep || (r.nitems > 0 && r.T.marks[r.off] & 1))
          : (!r.group && !r.rep && r.nitems > 0 && r.depth <= 1 && r.nitems <= 24 && child._level < 10);
        if (!wanted) continue;
        budget -= expand(child);
        queue.push(child);
      }
    }
  }

  /* ------------------------------------------------------------ details */

  function select(node) {
    if (state.selected) state.selected.firstChild.classList.remove('selected');
    state.selected = node;
    node.firstChild.classList.add('selected');
    setDetail('tree', node._r);
  }

  function kv(table, k, v, cls) {
    const tr = el('tr');
    tr.appendChild(el('td', null, k));
    const td = el('td', cls || (typeof v === 'string' && NUMERIC.test(v) ? 'num' : null));
    if (v instanceof Node) td.appendChild(v); else td.textContent = v;
    tr.appendChild(td);
    table.appendChild(tr);
  }
  function pre(text) { return el('pre', null, text); }
  /* a value that is a number or a time (kept on one line) */
  const NUMERIC = /^[+#]?[\d.,]+(\u00a0| )?(ns|µs|ms|s|%)?( \([\d.]+%\))?$/;

  /* The side panel shows the selection of the tab in view: each tab keeps its own. */
  const DETAIL = { tree: null, flame: null, timeline: null, stats: null };
  function setDetail(tab, item) {
    DETAIL[tab] = item;
    if (state.tab === tab) renderDetail();
  }
  function renderDetail() {
    const d = $('details'), item = DETAIL[state.tab];
    d.dataset.tab = state.tab;
    d.textContent = '';
    if (!item) {
      const hint = { tree: 'Select a call to see its details and, when they were captured, its arguments.',
        flame: 'Click a frame to see its function, times and stack (arrow keys move, Enter zooms, s: sandwich).',
        timeline: 'Click a block to see its call; drag on the ruler (or shift-drag) to measure a stretch of time.',
        stats: 'Click a function of the table to see its numbers.' }[state.tab];
      d.appendChild(el('div', 'muted', hint));
      return;
    }
    if (state.tab === 'flame') flameDetails(d, item);
    else if (state.tab === 'stats') statDetails(d, item);
    else showDetails(item);
  }

  function showDetails(r) {
    const d = $('details');
    d.textContent = '';
    if (!r || r.root) return;
    const T = r.T;
    if (r.rep) {
      d.appendChild(el('h3', null, 'Repetition #' + fmtInt(r.k + 1) + ' of ' + fmtInt(r.g.count)));
      const t = el('table');
      kv(t, 'time', fmtNs(r.dursum));
      kv(t, 'calls', fmtInt(r.calls));
      kv(t, 'calls', r.items.map((c) => c.group ? c.count + '× […]' : fnLabel(c.fid)).join(', '));
      d.appendChild(t);
      return;
    }
    if (r.group) {
      const tmpl = firstRep(r);
      d.appendChild(el('h3', null, fmtInt(r.count) + '× [' + tmplNames(r, 3).join(', ') + ']'));
      const t = el('table');
      kv(t, 'repetitions', fmtInt(r.count));
      kv(t, 'calls per repetition', fmtInt(r.period) + ' at this level');
      kv(t, 'total time', fmtNs(r.dursum) + ' (from first to last: ' + fmtNs(r.dur) + ')');
      kv(t, 'per repetition', fmtNs(r.dursum / r.count) + ' on average');
      kv(t, 'calls', fmtInt(r.calls) + ' in all (calls #' + fmtInt(r.callNo) + '–#' + fmtInt(r.callNo + r.calls - 1) + ')');
      kv(t, 'thread', T.name);
      d.appendChild(t);
      d.appendChild(el('h3', null, 'The pattern, over all repetitions'));
      const t2 = el('table');
      tmpl.forEach((c, k) => {
        const name = c.group ? c.count + '× [' + tmplNames(c, 2).join(', ') + ']' : fnLabel(c.fid) + '  ' + fn(c.fid)[3];
        kv(t2, '#' + (k + 1), name + ' — ' + fmtNs(r.aggs[k][0]) + ', ' + plural(r.aggs[k][1], 'call'));
      });
      d.appendChild(t2);
      if (r.count <= 200000) {
        let min = Infinity, max = -1, at = 0, sum = 0, k = 0;
        for (const rep of repetitions(r)) {
          const v = rep.dursum;
          if (v < min) min = v;
          if (v > max) { max = v; at = k; }
          sum += v; k++;
        }
        const t3 = el('table');
        kv(t3, 'fastest repetition', fmtNs(min));
        kv(t3, 'slowest repetition', fmtNs(max) + ' (#' + fmtInt(at + 1) + ')');
        d.appendChild(t3);
      }
      return;
    }
    const f = fn(r.fid);
    d.appendChild(el('h3', null, f[0]));
    const t = el('table');
    if (f[1] && f[1] !== f[0]) kv(t, 'qualname', f[1]);
    kv(t, 'module', f[2] || '?');
    kv(t, 'where', f[4] ? f[4] + ':' + (f[3].split(':').pop()) : f[3]);
    kv(t, 'thread', T.name);
    if (r.kind !== KIND_RESUME) kv(t, 'call', '#' + fmtInt(r.callNo));
    kv(t, 'started', '+' + fmtNs(r.t0 - T.root.t0));
    kv(t, 'duration', fmtNs(r.dur));
    kv(t, 'calls inside', fmtInt(Math.max(0, r.calls - (r.kind === KIND_RESUME ? 0 : 1))));
    if (r.depth > 1) kv(t, 'recursion', 'depth ' + fmtInt(r.depth) + ', ' + plural(r.calls, 'call') + ' in all');
    const ends = ['returned', 'raised', 'suspended (yielded)', 'still running when tracing stopped'];
    kv(t, 'ended', ends[r.how] || '?');
    const flags = fnFlags(r.fid);
    kv(t, 'in scope', flags & FLAG_IN_SCOPE ? 'yes' : 'no');
    if (r.kind === KIND_RESUME) kv(t, 'kind', 'a resumed slice of a generator or coroutine');
    d.appendChild(t);
    const cap = r.kind !== KIND_RESUME ? DATA.captured[T.idx + ':' + r.callNo] : null;
    const box = el('div', 'captured');
    box.id = 'captured';
    if (cap) {
      box.appendChild(el('h3', null, 'Arguments of this call'));
      const ta = el('table');
      ta.className = 'args';
      if (cap.args) for (const [k, v] of cap.args) kv(ta, k, pre(v));
      else kv(ta, 'arguments', pre(cap.args_error || '?'));
      if (cap.raised !== undefined) kv(ta, 'raised', pre(cap.raised));
      if (cap.returned !== undefined) kv(ta, 'returned', pre(cap.returned));
      if (cap.yields) kv(ta, 'yielded', pre(cap.yields.join('\n')));
      kv(ta, 'status', cap.status);
      box.appendChild(ta);
    } else if (r.kind !== KIND_RESUME && (flags & FLAG_IN_SCOPE)) {
      box.appendChild(el('div', 'muted', 'Arguments not captured for this call (retracer captures the first calls of each function).'));
    }
    d.appendChild(box);
  }

  /* ------------------------------------------------------------ flame graph */

  /* The flame graph is flame.js (RtFlame, the renderer of the standalone flame graph
   * page too), given every thread's merged call paths under one root. */
  const FLAME = { nodes: null, api: null };

  function buildFlame() {
    const nodes = [{ name: 'all threads', total: 0, self: 0, calls: 0, kids: [], parent: -1, depth: 0, synthetic: true, fid: -1 }];
    const procNode = {};  /* a multi-process trace: a level per process between the root and its threads */
    for (const T of THREADS) {
      let top = 0;
      if (T.meta.process) {
        if (procNode[T.meta.process] === undefined) {
          procNode[T.meta.process] = nodes.length;
          nodes.push({ name: T.meta.process, label: T.meta.process, fid: -3, total: 0, self: 0, calls: 0, kids: [],
                       parent: 0, depth: 1, synthetic: true, key: 'process:' + T.meta.process });
          nodes[0].kids.push(procNode[T.meta.process]);
        }
        top = procNode[T.meta.process];
      }
      RD.b = T.pathsBuf; RD.p = 0;
      const n = rv();
      const map = new Array(n);
      for (let k = 0; k < n; k++) {
        const fid1 = rv(), par1 = rv(), calls = rv(), total = rv(), self = rv();
        if (k === 0) {
          const id = nodes.length;
          nodes.push({ name: 'Thread ' + T.name, label: 'Thread ' + T.name, fid: -2, total: total, self: 0, calls: 0, kids: [],
                       parent: top, depth: nodes[top].depth + 1, thread: T, synthetic: true, key: 'thread:' + T.idx });
          nodes[top].kids.push(id);
          if (top) nodes[top].total += total;
          nodes[0].total += total;
          map[0] = id;
          continue;
        }
        const parent = map[par1 - 1];
        const id = nodes.length, f = fn(fid1 - 1);
        nodes.push({ name: f[0], label: f[0] + ' (' + f[3] + ')', module: f[2] || (f[6] === 'c' ? 'builtins' : ''), where: f[3],
                     key: fid1 - 1, fid: fid1 - 1, total: total, self: self, calls: calls, kids: [], parent: parent, depth: nodes[parent].depth + 1 });
        nodes[parent].kids.push(id);
        map[k] = id;
      }
    }
    FLAME.nodes = nodes;
    FLAME.api = RtFlame.mount($('flame-root'), {
      nodes: nodes, fmt: fmtNs, search: false,
      hidden: flameHidden,
      dimmed: (nd) => state.hideExternal && nd.fid >= 0 && !(fnFlags(nd.fid) & FLAG_IN_SCOPE),
      onSelect: (nd) => { setDetail('flame', nd); },
    });
    /* the names the tests and the rest of the page know */
    const root = $('flame-root');
    root.querySelector('.rtf-wrap canvas').id = 'flame';
    root.querySelector('.rtf-reset').id = 'flame-reset';
    root.querySelector('.rtf-path').id = 'flame-path';
    FLAME.api.setSearch(state.search);
  }

  /* a colour per module (the timeline's blocks; flame.js has the same rule) */
  function flameColor(node, dim) {
    if (node.fid < 0) return '#c9ced6';
    const key = fn(node.fid)[2] || '?', name = fnLabel(node.fid);
    let h = 0, v = 0;
    for (let i = 0; i < key.length; i++) h = (h * 31 + key.charCodeAt(i)) | 0;
    for (let i = 0; i < name.length; i++) v = (v * 31 + name.charCodeAt(i)) | 0;
    return 'hsl(' + (Math.abs(h) % 360) + ',' + (dim ? 30 : 58) + '%,' + (dim ? 88 : 70 + Math.abs(v) % 12 - 6) + '%)';
  }

  function flameHidden(node) {
    if (node.fid < 0) return false;
    if (state.hideImports && (fnFlags(node.fid) & FLAG_IMPORT)) return true;
    if (state.minDur && node.total < state.minDur) return true;
    return false;
  }

  function drawFlame() {
    if (!FLAME.api) { buildFlame(); return; }
    FLAME.api.setSearch(state.search);
  }

  function flameDetails(d, nd) {
    const all = FLAME.nodes[0].total || 1;
    d.appendChild(el('h3', null, nd.name));
    const t = el('table');
    if (nd.fid >= 0) {
      const f = fn(nd.fid);
      if (f[1] && f[1] !== f[0]) kv(t, 'qualname', f[1]);
      kv(t, 'module', f[2] || '?');
      kv(t, 'where', f[4] ? f[4] + ':' + (f[3].split(':').pop()) : f[3]);
    }
    kv(t, 'total', fmtNs(nd.total) + ' (' + (100 * nd.total / all).toFixed(1) + '%)', 'num');
    if (nd.fid >= 0) {
      kv(t, 'own', fmtNs(nd.self), 'num');
      kv(t, 'calls', fmtInt(nd.calls), 'num');
      if (nd.calls) kv(t, 'per call', fmtNs(nd.total / nd.calls), 'num');
    }
    const path = [];
    for (let k = FLAME.nodes.indexOf(nd); k > 0; k = FLAME.nodes[k].parent) path.unshift(FLAME.nodes[k].name);
    kv(t, 'stack', path.join(' › '));
    d.appendChild(t);
  }

  /* ------------------------------------------------------------ timeline */

  /* Lanes: one per thread, keyed by an id, with a label; a lane may name a group
   * (a process, later) whose header is drawn once above its lanes. */
  const TL = { v0: 0, v1: 1, rows: 30, rowH: 16, laneGap: 22, axisH: 26, hits: [], lanes: [], sel: null, axis: [] };

  function tlLanes() {
    return THREADS.map((T) => ({ id: 't' + T.idx, label: 'Thread ' + T.name, group: T.meta.process || null, T: T }));
  }

  function tlBounds() {
    let a = Infinity, b = -Infinity;
    for (const T of THREADS) {
      if (!T.root.nitems) continue;
      a = Math.min(a, T.root.t0); b = Math.max(b, T.root.t1);
    }
    if (!isFinite(a)) { a = 0; b = 1; }
    if (b <= a) b = a + 1;
    return [a, b];
  }

  function drawTimeline() {
    const cv = $('timeline');
    const W = cv.parentElement.clientWidth - 24 || 800;
    if (!TL.lanes.length) TL.lanes = tlLanes();
    const rowsOf = (L) => Math.min(TL.rows, L.T.meta.maxDepth || TL.rows);
    let H = TL.axisH + 4, lastGroup = null;
    for (const L of TL.lanes) {
      if (L.group && L.group !== lastGroup) H += TL.laneGap;
      lastGroup = L.group;
      H += rowsOf(L) * TL.rowH + TL.laneGap;
    }
    const dpr = window.devicePixelRatio || 1;
    cv.width = W * dpr; cv.height = H * dpr; cv.style.height = H + 'px';
    const ctx = cv.getContext('2d');
    ctx.scale(dpr, dpr);
    ctx.font = '11px system-ui, sans-serif';
    ctx.textBaseline = 'middle';
    TL.hits = [];
    TL.W = W;
    const v0 = TL.v0, v1 = TL.v1, k = W / (v1 - v0);
    const base = tlBounds()[0];
    /* the ruler: ticks relative to the start of the trace, following zoom and pan */
    const tk = RtFlame.ticks(v0 - base, v1 - v0, W);
    ctx.fillStyle = '#f4f5f7'; ctx.fillRect(0, 0, W, TL.axisH - 6);
    TL.axis = [];
    for (const [t, lab] of tk) {
      const x = Math.round((t - (v0 - base)) * k) + 0.5;
      ctx.strokeStyle = '#b9bec6';
      ctx.beginPath(); ctx.moveTo(x, TL.axisH - 12); ctx.lineTo(x, TL.axisH - 6); ctx.stroke();
      ctx.strokeStyle = 'rgba(0,0,0,0.06)';
      ctx.beginPath(); ctx.moveTo(x, TL.axisH - 6); ctx.lineTo(x, H); ctx.stroke();
      ctx.fillStyle = '#4b5057';
      ctx.fillText(lab, Math.min(x + 3, W - ctx.measureText(lab).width - 2), 8);
      TL.axis.push(lab);
    }
    let y0 = TL.axisH;
    lastGroup = null;
    for (const L of TL.lanes) {
      if (L.group && L.group !== lastGroup) {
        ctx.fillStyle = '#1d1f21';
        ctx.fillText(String(L.group), 4, y0 + 9);
        y0 += TL.laneGap;
      }
      lastGroup = L.group;
      ctx.fillStyle = '#eef2f7'; ctx.fillRect(0, y0 + 1, W, TL.laneGap - 6);
      ctx.fillStyle = '#2d5b8c';
      ctx.fillText(L.label + '  ·  ' + fmtNs(L.T.root.dur), (L.group ? 16 : 4), y0 + 9);
      L.top = y0 + TL.laneGap - 4;
      drawLane(ctx, L.T, L.top, rowsOf(L), k, v0, v1, W);
      y0 = L.top + rowsOf(L) * TL.rowH + 4;
    }
    /* the selection (drag on the ruler, or shift-drag): a band and its duration */
    const selInfo = $('tl-sel');
    if (TL.sel) {
      const a = Math.min(TL.sel[0], TL.sel[1]), b = Math.max(TL.sel[0], TL.sel[1]);
      const xa = (a - v0) * k, xb = (b - v0) * k;
      ctx.fillStyle = 'rgba(45, 91, 140, 0.14)'; ctx.fillRect(xa, 0, Math.max(1, xb - xa), H);
      ctx.strokeStyle = '#2d5b8c';
      ctx.beginPath(); ctx.moveTo(xa + 0.5, 0); ctx.lineTo(xa + 0.5, H); ctx.moveTo(xb + 0.5, 0); ctx.lineTo(xb + 0.5, H); ctx.stroke();
      const lab = fmtNs(b - a);
      const tw = ctx.measureText(lab).width + 8;
      const lx = Math.min(Math.max(0, (xa + xb) / 2 - tw / 2), W - tw);
      ctx.fillStyle = '#2d5b8c'; ctx.fillRect(lx, TL.axisH - 6, tw, 15);
      ctx.fillStyle = '#fff'; ctx.fillText(lab, lx + 4, TL.axisH + 1.5);
      selInfo.textContent = 'selection: ' + lab + ' (from +' + fmtNs(a - base) + ' to +' + fmtNs(b - base) + ')';
      $('tl-zoomsel').hidden = false;
    } else {
      selInfo.textContent = '';
      $('tl-zoomsel').hidden = true;
    }
    $('tl-range').textContent = fmtNs(v1 - v0) + ' shown';
  }

  function drawLane(ctx, T, top, maxRows, k, v0, v1, W) {
    const searching = !!state.fidHits;
    const stack = [[items(T.root), 0]];
    let drawn = 0;
    while (stack.length) {
      const [it, depth] = stack[stack.length - 1];
      const n = it.next();
      if (n.done) { stack.pop(); continue; }
      const r = n.value;
      if (r.t1 < v0) continue;
      if (r.t0 > v1) { stack.pop(); continue; }
      const x0 = Math.max(0, (r.t0 - v0) * k), x1 = Math.min(W, (r.t1 - v0) * k);
      const w = Math.max(x1 - x0, 0.6);
      const y = top + depth * TL.rowH;
      if (r.group) {
        if (!state.patterns || (r.t1 - r.t0) * k / r.count >= 4) { stack.push([items(r), depth]); continue; }
        if (groupHidden(r)) continue;
        ctx.fillStyle = '#b99ad6';
        ctx.fillRect(x0, y, w, TL.rowH - 1);
        const names = firstRep(r).map((c) => c.group ? '…' : fnLabel(c.fid));
        label(ctx, r.count + '× [' + names.join(', ') + ']', x0, w, y);
        TL.hits.push([x0, y, w, TL.rowH, r]);
        drawn++;
        continue;
      }
      if (spanHidden(r)) continue;
      if (state.hideExternal && !(fnFlags(r.fid) & FLAG_IN_SCOPE)) {
        if (r.nitems) stack.push([items(r), depth]);
        continue;
      }
      const hit = searching && state.fidHits.has(r.fid);
      ctx.fillStyle = hit ? '#e0409a' : flameColor({ fid: r.fid, name: '' }, searching && !hit);
      ctx.fillRect(x0, y, w, TL.rowH - 1);
      label(ctx, fnLabel(r.fid), x0, w, y);
      TL.hits.push([x0, y, w, TL.rowH, r]);
      drawn++;
      if (r.nitems && w >= 2 && depth + 1 < maxRows) stack.push([items(r), depth + 1]);
      if (drawn > 60000) break;
    }
  }

  function label(ctx, text, x, w, y) {
    if (w < 30) return;
    const max = Math.floor((w - 6) / 6.2);
    ctx.fillStyle = '#1d1f21';
    ctx.fillText(text.length > max ? text.slice(0, Math.max(0, max - 1)) + '…' : text, x + 3, y + TL.rowH / 2);
  }

  function tlAt(ev) {
    const b = $('timeline').getBoundingClientRect();
    const x = ev.clientX - b.left, y = ev.clientY - b.top;
    for (let k = TL.hits.length - 1; k >= 0; k--) {
      const [rx, ry, rw, rh, r] = TL.hits[k];
      if (x >= rx && x < rx + Math.max(rw, 2) && y >= ry && y < ry + rh) return r;
    }
    return null;
  }

  /* ------------------------------------------------------------ statistics */

  function renderStats() {
    const s = DATA.stats, box = $('stats');
    box.textContent = '';
    const cards = el('div', 'cards');
    const card = (v, k) => { const c = el('div', 'card'); c.appendChild(el('div', 'v', v)); c.appendChild(el('div', 'k', k)); cards.appendChild(c); };
    card(fmtInt(s.calls), 'calls (profile)');
    card(fmtInt(s.stream_calls), 'calls in the call stream');
    card(fmtInt(s.functions), 'distinct functions');
    card(fmtInt(s.threads), s.threads === 1 ? 'thread' : 'threads');
    card(fmtInt(s.groups), 'repeated sequences folded');
    box.appendChild(cards);
    box.appendChild(el('h3', null, 'Top functions by own time'));
    const t = el('table', 'top');
    const head = el('tr');
    for (const h of ['function', 'where', 'calls', 'own', 'own %', 'cumulative', 'own / call']) head.appendChild(el('th', null, h));
    t.appendChild(head);
    const total = s.top.reduce((a, r) => a + r[2], 0) || 1;
    for (const [fid, calls, own, cum] of s.top) {
      const tr = el('tr');
      tr.dataset.fid = fid;
      tr.addEventListener('click', () => {
        for (const o of t.querySelectorAll('tr.selected')) o.classList.remove('selected');
        tr.classList.add('selected');
        setDetail('stats', { fid: fid, calls: calls, own: own, cum: cum, total: total });
      });
      tr.appendChild(el('td', null, fnLabel(fid)));
      tr.appendChild(el('td', null, fn(fid)[3]));
      tr.appendChild(el('td', null, fmtInt(calls)));
      tr.appendChild(el('td', null, fmtNs(own)));
      tr.appendChild(el('td', null, (100 * own / total).toFixed(1) + '%'));
      tr.appendChild(el('td', null, fmtNs(cum)));
      tr.appendChild(el('td', null, fmtNs(calls ? own / calls : 0)));
      t.appendChild(tr);
    }
    box.appendChild(t);
  }

  function statDetails(d, s) {
    const f = fn(s.fid);
    d.appendChild(el('h3', null, f[0]));
    const t = el('table');
    kv(t, 'module', f[2] || '?');
    kv(t, 'where', f[4] ? f[4] + ':' + (f[3].split(':').pop()) : f[3]);
    kv(t, 'calls', fmtInt(s.calls), 'num');
    kv(t, 'own', fmtNs(s.own), 'num');
    kv(t, 'cumulative', fmtNs(s.cum), 'num');
    kv(t, 'own / call', fmtNs(s.calls ? s.own / s.calls : 0), 'num');
    d.appendChild(t);
  }

  /* ------------------------------------------------------------ wiring */

  function rerender() {
    if (state.tab === 'tree') renderTree();
    if (state.tab === 'flame') drawFlame();
    if (state.tab === 'timeline') drawTimeline();
    document.body.dataset.rendered = String(Number(document.body.dataset.rendered || 0) + 1);
  }

  function showTab(name) {
    state.tab = name;
    for (const b of document.querySelectorAll('.tab')) b.classList.toggle('active', b.dataset.tab === name);
    for (const p of document.querySelectorAll('.panel')) p.classList.toggle('active', p.id === 'panel-' + name);
    renderDetail();
    if (name === 'stats') renderStats(); else rerender();
  }

  function tooltip(ev, text) {
    const tt = $('tooltip');
    if (!text) { tt.hidden = true; return; }
    tt.hidden = false;
    tt.textContent = text;
    tt.style.left = Math.min(ev.clientX + 14, window.innerWidth - 300) + 'px';
    tt.style.top = (ev.clientY + 14) + 'px';
  }

  function recText(r) {
    if (r.group) return r.count + '× [' + firstRep(r).map((c) => c.group ? '…' : fnLabel(c.fid)).join(', ') + ']\n' + fmtNs(r.dursum) + ' in all · ' + plural(r.calls, 'call');
    return fnLabel(r.fid) + '  ' + fn(r.fid)[3] + '\n' + fmtNs(r.dur) + (r.calls > 1 ? ' · ' + plural(r.calls, 'call') : '');
  }

  function wire() {
    for (const b of document.querySelectorAll('.tab')) b.addEventListener('click', () => showTab(b.dataset.tab));
    const pat = $('f-patterns'), ext = $('f-external'), imp = $('f-imports'), md = $('f-mindur'), q = $('f-search');
    pat.checked = state.patterns;
    imp.checked = state.hideImports;
    pat.addEventListener('change', () => { state.patterns = pat.checked; rerender(); });
    ext.addEventListener('change', () => { state.hideExternal = ext.checked; rerender(); });
    imp.addEventListener('change', () => { state.hideImports = imp.checked; rerender(); });
    md.addEventListener('change', () => { const v = parseFloat(md.value); state.minDur = isFinite(v) && v > 0 ? v * 1e6 : 0; rerender(); });
    let timer = 0;
    q.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(() => { state.search = q.value; computeSearch(); rerender(); }, 200);
    });
    const tl = $('timeline');
    let drag = null;
    tl.addEventListener('wheel', (ev) => {
      ev.preventDefault();
      const b = tl.getBoundingClientRect();
      const fx = (ev.clientX - b.left) / b.width;
      const span = TL.v1 - TL.v0, at = TL.v0 + fx * span;
      const ns = Math.max(1000, span * (ev.deltaY > 0 ? 1.25 : 0.8));
      TL.v0 = at - fx * ns; TL.v1 = TL.v0 + ns;
      drawTimeline();
    }, { passive: false });
    const tAt = (ev) => { const b = tl.getBoundingClientRect(); return TL.v0 + (ev.clientX - b.left) / b.width * (TL.v1 - TL.v0); };
    tl.addEventListener('mousedown', (ev) => {
      const b = tl.getBoundingClientRect();
      const onRuler = ev.clientY - b.top < TL.axisH;
      if (onRuler || ev.shiftKey) { drag = { select: true, t: tAt(ev), moved: false }; ev.preventDefault(); return; }
      drag = { x: ev.clientX, v0: TL.v0, v1: TL.v1, moved: false };
    });
    window.addEventListener('mouseup', (ev) => {
      if (drag && drag.select && !drag.moved) { TL.sel = null; drawTimeline(); }
      else if (drag && !drag.moved) { const r = tlAt(ev); if (r) setDetail('timeline', r); }
      drag = null;
    });
    tl.addEventListener('mousemove', (ev) => {
      if (drag && drag.select) {
        const t = tAt(ev);
        if (Math.abs(t - drag.t) * tl.getBoundingClientRect().width / (TL.v1 - TL.v0) > 2) drag.moved = true;
        if (drag.moved) { TL.sel = [drag.t, t]; drawTimeline(); }
        return;
      }
      if (drag) {
        const dx = ev.clientX - drag.x;
        if (Math.abs(dx) > 2) drag.moved = true;
        const per = (drag.v1 - drag.v0) / tl.getBoundingClientRect().width;
        TL.v0 = drag.v0 - dx * per; TL.v1 = drag.v1 - dx * per;
        drawTimeline();
        return;
      }
      const r = tlAt(ev);
      tooltip(ev, r ? recText(r) : null);
    });
    tl.addEventListener('mouseleave', () => tooltip(null, null));
    $('tl-reset').addEventListener('click', () => { [TL.v0, TL.v1] = tlBounds(); TL.sel = null; drawTimeline(); });
    $('tl-zoomsel').addEventListener('click', () => {
      if (!TL.sel) return;
      const a = Math.min(TL.sel[0], TL.sel[1]), b = Math.max(TL.sel[0], TL.sel[1]);
      TL.v0 = a; TL.v1 = Math.max(b, a + 1000); TL.sel = null; drawTimeline();
    });
    window.addEventListener('resize', () => { if (state.tab === 'timeline') drawTimeline(); });
  }

  function summary() {
    $('cmd').textContent = DATA.command || DATA.trace;
    const s = DATA.stats, box = $('summary');
    const add = (v, k) => { box.appendChild(el('b', null, v)); box.appendChild(document.createTextNode(' ' + k + '   ')); };
    add(fmtInt(s.calls), 'calls');
    add(fmtInt(s.functions), 'functions');
    add(fmtInt(s.threads), s.threads === 1 ? 'thread' : 'threads');
    let dur = 0;
    for (const T of THREADS) dur = Math.max(dur, T.root.dur);
    add(fmtNs(dur), 'traced');
    if (DATA.complete === false) box.appendChild(el('span', 'err', 'incomplete trace (stopped by ' + (DATA.stopped_by || '?') + ')'));
    if (DATA.stream_cut) box.appendChild(el('span', 'err', ' the call stream stopped after ' + DATA.stream_cut.after_s + ' s (--max-stream-bytes): the tree and timeline cover the run until then'));
    box.appendChild(el('span', 'muted', ' ' + DATA.trace));
  }

  async function main() {
    const t0 = performance.now();
    try {
      if (typeof DecompressionStream === 'undefined') throw new Error('this browser cannot decompress the data (it needs DecompressionStream: Chrome 80+, Firefox 113+, Safari 16.4+)');
      THREADS = await Promise.all(DATA.threads.map(async (m) => {
        const T = { idx: m.idx, name: m.name, meta: m, buf: await inflate(b64(m.tree)), pathsBuf: await inflate(b64(m.paths)), marks: null };
        T.root = decodeRoot(T);
        m.maxDepth = Math.max(1, Math.min(40, m.max_depth || 1));
        return T;
      }));
      summary();
      wire();
      [TL.v0, TL.v1] = tlBounds();
      renderTree();
      window.__rtReadyMs = performance.now() - t0;
      window.__rtReadyAt = performance.now();
      /* read-only hooks for tests: what the canvases drew */
      window.__rtDebug = {
        flameFrames: () => FLAME.api.debug.frames().map((f) => f.name),
        flamePath: () => FLAME.api.debug.path(),
        flameRect: (name) => {
          const r = FLAME.api.debug.frames().find((f) => f.name === name);
          return r ? [r.x, r.y, r.w, 17] : null;
        },
        flame: () => FLAME.api,
        flameNodes: () => FLAME.nodes.map((n) => n.name),
        timelineBlocks: () => TL.hits.map((h) => h[4].group ? h[4].count + '×' : fnLabel(h[4].fid)),
        timelineAxis: () => TL.axis.slice(),
        timelineLanes: () => TL.lanes.map((L) => ({ id: L.id, label: L.label, group: L.group, top: L.top })),
        timelineSelection: () => $('tl-sel').textContent,
      };
      document.body.dataset.ready = '1';
    } catch (e) {
      $('loading').textContent = 'retracer view: ' + (e && e.message ? e.message : String(e));
      $('loading').classList.add('err');
      document.body.dataset.ready = 'error';
    }
  }

  main();
})();
