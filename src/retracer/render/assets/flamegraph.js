// retracer flame graph: hover shows a frame's details, click zooms into it,
// "Reset zoom" (or Escape) shows everything again. No network, no libraries.
// F[i] = [x, w, depth] of frame i (x and w in nanoseconds); the <g> of frame i
// has id "f<i>" and holds a <title>, a <rect> and a <text>.
(function () {
  var F = {{FRAMES}};
  var W = {{WIDTH}}, PAD = {{PAD}}, CHAR = {{CHARW}};
  var TOTAL = F.length ? F[0][1] : 1;
  var details = document.getElementById("rt-details");
  var unzoom = document.getElementById("rt-unzoom");
  var nodes = [];
  for (var i = 0; i < F.length; i++) {
    var g = document.getElementById("f" + i);
    nodes.push(g);
    g.addEventListener("mouseover", show);
    g.addEventListener("mouseout", hide);
    g.addEventListener("click", zoom);
    g.addEventListener("keydown", function (ev) { if (ev.key === "Enter") zoom.call(this, ev); });
  }
  function info(g) { return g.getElementsByTagName("title")[0].textContent; }
  function show() { details.textContent = info(this); }
  function hide() { details.textContent = " "; }
  function fit(g, width) {
    var t = g.getElementsByTagName("text")[0];
    var label = g.getAttribute("data-label");
    var n = Math.floor((width - 6) / CHAR);
    t.textContent = n < 3 ? "" : (label.length <= n ? label : label.substring(0, n - 2) + "..");
  }
  function place(i, x0, span) {
    var g = nodes[i], r = g.getElementsByTagName("rect")[0], t = g.getElementsByTagName("text")[0];
    var x = PAD + (F[i][0] - x0) / span * (W - 2 * PAD);
    var w = F[i][1] / span * (W - 2 * PAD);
    r.setAttribute("x", x.toFixed(2));
    r.setAttribute("width", Math.max(w, 0.1).toFixed(2));
    t.setAttribute("x", (x + 3).toFixed(2));
    fit(g, w);
    g.style.display = "";
  }
  function zoomTo(k) {
    var x0 = F[k][0], span = F[k][1] || 1, d = F[k][2];
    for (var i = 0; i < F.length; i++) {
      var inside = F[i][0] >= x0 && F[i][0] + F[i][1] <= x0 + span + 1e-6;
      if (F[i][2] < d && F[i][0] <= x0 && F[i][0] + F[i][1] >= x0 + span) {
        place(i, F[i][0], F[i][1] || 1);  // an ancestor: full width
        nodes[i].classList.add("rt-parent");
      } else if (F[i][2] >= d && inside) {
        place(i, x0, span);
        nodes[i].classList.remove("rt-parent");
      } else {
        nodes[i].style.display = "none";
      }
    }
    unzoom.style.display = k === 0 ? "none" : "";
  }
  function zoom(ev) {
    if (ev) ev.stopPropagation();
    zoomTo(parseInt(this.id.substring(1), 10));
  }
  unzoom.addEventListener("click", function () { zoomTo(0); });
  document.addEventListener("keydown", function (ev) { if (ev.key === "Escape" && F.length) zoomTo(0); });
  if (F.length) zoomTo(0);
})();
