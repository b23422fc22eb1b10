/* Draws the page's charts with plotly.js (static/vendor/plotly.min.js, our own origin).
   <div class="chart" data-source="ID" data-figure="NAME"> shows figure NAME of the JSON block
   <script type="application/json" id="ID">{"figures": {NAME: {"data": [...], "layout": {...}}}}</script>;
   <div class="chart" data-url="URL" data-figure="NAME"> shows figure NAME of the same JSON fetched from URL
   (once per URL, however many charts use it);
   <select class="chart-switch" data-target="DIV ID"> swaps the figure a chart shows. */
(function () {
  "use strict";
  var blocks = {};
  var fetches = {};
  var config = {responsive: true, displaylogo: false};

  function inline(id) {
    if (!(id in blocks)) {
      var block = document.getElementById(id);
      blocks[id] = block ? JSON.parse(block.textContent).figures : {};
    }
    return Promise.resolve(blocks[id]);
  }

  function fetched(url) {
    if (!(url in fetches)) {
      fetches[url] = fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
        .then(function (response) {
          if (!response.ok) { throw new Error(url + ": HTTP " + response.status); }
          return response.json();
        })
        .then(function (data) { return data.figures || {}; });
    }
    return fetches[url];
  }

  function figures(div) {
    return div.dataset.url ? fetched(div.dataset.url) : inline(div.dataset.source);
  }

  function draw(div, name, first) {
    return figures(div).then(function (all) {
      var figure = all[name];
      if (!figure) { return; }
      div.dataset.figure = name;
      return (first ? Plotly.newPlot : Plotly.react)(div, figure.data, figure.layout, config);
    }).catch(function (error) {
      div.textContent = "The chart could not be loaded (" + error.message + ").";
      div.classList.add("chart-error");
    });
  }

  if (typeof Plotly === "undefined") { return; }
  document.querySelectorAll("div.chart[data-source], div.chart[data-url]").forEach(function (div) {
    draw(div, div.dataset.figure, true);
  });
  document.querySelectorAll("select.chart-switch").forEach(function (select) {
    select.addEventListener("change", function () {
      var div = document.getElementById(select.dataset.target);
      if (div) { draw(div, select.value, false); }
    });
  });
})();
