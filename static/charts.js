/* Draws the page's charts with plotly.js (static/vendor/plotly.min.js, our own origin).
   <div class="chart" data-source="ID" data-figure="NAME"> shows figure NAME of the JSON block
   <script type="application/json" id="ID">{"figures": {NAME: {"data": [...], "layout": {...}}}}</script>;
   <select class="chart-switch" data-target="DIV ID"> swaps the figure a chart shows. */
(function () {
  "use strict";
  var sources = {};
  var config = {responsive: true, displaylogo: false};

  function figures(id) {
    if (!(id in sources)) {
      var block = document.getElementById(id);
      sources[id] = block ? JSON.parse(block.textContent).figures : {};
    }
    return sources[id];
  }

  function draw(div, name, first) {
    var figure = figures(div.dataset.source)[name];
    if (!figure) { return; }
    div.dataset.figure = name;
    (first ? Plotly.newPlot : Plotly.react)(div, figure.data, figure.layout, config);
  }

  if (typeof Plotly === "undefined") { return; }
  document.querySelectorAll("div.chart[data-source]").forEach(function (div) {
    draw(div, div.dataset.figure, true);
  });
  document.querySelectorAll("select.chart-switch").forEach(function (select) {
    select.addEventListener("change", function () {
      var div = document.getElementById(select.dataset.target);
      if (div) { draw(div, select.value, false); }
    });
  });
})();
