// retracer flame graph, SVG variant (the layout rules of flame.js): hover shows a
// frame's details, click zooms into it, "Reset zoom" (or Escape) shows everything
// again; the time axis follows the zoom; positions are in percent of the width, so
// the graph fills the window, and labels are refitted when it is resized.
// F[i] = [x, w, depth] of frame i (x and w in nanoseconds); the <g> of frame i
// has id "f<i>" and holds a <title>, a <rect> and a <text>. No network, no libraries.
(function () {
  var F = {{FRAMES}};
  var W = {{WIDTH}}, PAD = {{PAD}}, CHAR = {{CHARW}}, TOP = {{TOP}};
  var NS = "http://www.w3.org/2000/svg";
  var svg = document.documentElement.tagName.toLowerCase() === "svg" ? document.documentElement : document.querySelector("svg");
  var details = document.getElementById("rt-details");
  var unzoom = document.getElementById("rt-unzoom");
  var axis = document.getElementById("rt-axis");
  var nodes = [], view = [0, F.length ? F[0][1] : 1];
  for (var i = 0; i < F.length; i++) {
    var g = document.getElementById("f" + i);
    nodes.push(g);
    g.addEventListener("mouseover", show);
    g.addEventListener("mouseout", hide);
    g.addEventListener("click", zoom);
    g.addEventListener("keydown", function (ev) { if (ev.key === "Enter") zoom.call(this, ev); });
  }
  function pct(v) { return (100 * v / W).toFixed(4) + "%"; }
  function px() { var w = svg.getBoundingClientRect().width; return w > 0 ? w / W : 1; }
  function info(g) { return g.getElementsByTagName("title")[0].textContent; }
  function show() { details.textContent = info(this); }
  function hide() { details.textContent = " "; }
  function fit(g, width) {
    var t = g.getElementsByTagName("text")[0];
    var label = g.getAttribute("data-label");
    var n = Math.floor((width - 6) / CHAR);
    t.textContent = n < 3 ? "" : (label.length <= n ? label : label.substring(0, n - 2) + "..");
  }
  function place(i, x0, span, k) {
    var g = nodes[i], r = g.getElementsByTagName("rect")[0], t = g.getElementsByTagName("text")[0];
    var x = PAD + (F[i][0] - x0) / span * (W - 2 * PAD);
    var w = F[i][1] / span * (W - 2 * PAD);
    r.setAttribute("x", pct(x));
    r.setAttribute("width", pct(Math.max(w, 0.1)));
    t.setAttribute("x", pct(x + 3));
    fit(g, w * k);
    g.style.display = "";
  }
  function step(span, n) {
    var raw = span / n, p = Math.pow(10, Math.floor(Math.log(raw) / Math.LN10)), m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }
  function drawAxis(span) {
    while (axis.firstChild) axis.removeChild(axis.firstChild);
    if (!(span > 0)) return;
    var s = step(span, 10);
    var u = s >= 1e8 ? [1e9, "s"] : s >= 1e5 ? [1e6, "ms"] : s >= 100 ? [1e3, "\u00b5s"] : [1, "ns"];
    var digits = s / u[0] >= 1 ? 0 : Math.min(6, Math.ceil(-Math.log(s / u[0]) / Math.LN10));
    for (var k = 0; k * s <= span * (1 + 1e-9); k++) {
      var x = PAD + k * s / span * (W - 2 * PAD);
      var l = document.createElementNS(NS, "line");
      l.setAttribute("class", "rt-tickline");
      l.setAttribute("x1", pct(x)); l.setAttribute("x2", pct(x));
      l.setAttribute("y1", TOP - 8); l.setAttribute("y2", TOP - 2);
      var t = document.createElementNS(NS, "text");
      t.setAttribute("class", "rt-tick");
      t.setAttribute("x", pct(x + 2)); t.setAttribute("y", TOP - 10);
      t.textContent = k === 0 ? "0" : (k * s / u[0]).toFixed(digits) + "\u00a0" + u[1];
      axis.appendChild(l); axis.appendChild(t);
    }
  }
  var current = 0;
  function zoomTo(k) {
    current = k;
    var x0 = F[k][0], span = F[k][1] || 1, d = F[k][2], scale = px();
    for (var i = 0; i < F.length; i++) {
      var inside = F[i][0] >= x0 && F[i][0] + F[i][1] <= x0 + span + 1e-6;
      if (F[i][2] < d && F[i][0] <= x0 && F[i][0] + F[i][1] >= x0 + span) {
        place(i, F[i][0], F[i][1] || 1, scale);  // an ancestor: full width
        nodes[i].classList.add("rt-parent");
      } else if (F[i][2] >= d && inside) {
        place(i, x0, span, scale);
        nodes[i].classList.remove("rt-parent");
      } else {
        nodes[i].style.display = "none";
      }
    }
    drawAxis(span);
    unzoom.style.display = k === 0 ? "none" : "";
  }
  function zoom(ev) {
    if (ev) ev.stopPropagation();
    zoomTo(parseInt(this.id.substring(1), 10));
  }
  unzoom.addEventListener("click", function () { zoomTo(0); });
  document.addEventListener("keydown", function (ev) { if (ev.key === "Escape" && F.length) zoomTo(0); });
  var last = 0;
  window.addEventListener("resize", function () {
    var w = svg.getBoundingClientRect().width;
    if (F.length && Math.abs(w - last) > 1) { last = w; zoomTo(current); }
  });
  if (F.length) { last = svg.getBoundingClientRect().width; zoomTo(0); }
})();
