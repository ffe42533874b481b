// The queue's map: every alert of the current filter (all pages), drawn from /map.geojson with
// the same query string, no basemap (the service runs offline and its Content-Security-Policy
// allows its own origin only). Popups are built with textContent: no value becomes markup.
(function () {
  "use strict";
  var el = document.getElementById("queue-map");
  if (!el || !window.L || !window.fetch) { return; }
  var colours = { new: "#d7191c", under_review: "#fdae61", field_check: "#f46d43", confirmed: "#7b3294",
                  dismissed: "#999999", rectifying: "#2b83ba", rectified: "#1a9641", recovered: "#1a9641" };
  var map = L.map(el, { attributionControl: false });
  L.control.scale({ imperial: false }).addTo(map);
  function popup(p) {
    var box = document.createElement("div");
    var a = document.createElement("a");
    a.href = "/alerts/" + encodeURIComponent(p.alert_id) + (el.dataset.link ? "?" + el.dataset.link : "");
    a.textContent = p.alert_id;
    box.appendChild(a);
    var line = document.createElement("div");
    line.textContent = [p.status_label, p.type_label, p.zone_id, p.first_detected].join(" · ");
    box.appendChild(line);
    return box;
  }
  fetch(el.dataset.src, { credentials: "same-origin" }).then(function (r) {
    if (!r.ok) { throw new Error("map.geojson: HTTP " + r.status); }
    return r.json();
  }).then(function (fc) {
    var layer = L.geoJSON(fc, {
      style: function (f) { return { color: colours[f.properties.status] || "#d7191c", weight: 2, fillOpacity: 0.3 }; },
      pointToLayer: function (f, latlng) { return L.circleMarker(latlng, { radius: 5 }); },
      onEachFeature: function (f, l) { l.bindPopup(popup(f.properties)); }
    }).addTo(map);
    if (layer.getLayers().length) { map.fitBounds(layer.getBounds(), { maxZoom: 16, padding: [20, 20] }); } else { map.setView([30, 104], 5); }
    window.redlineQueueMap = { map: map, layer: layer, count: layer.getLayers().length };
  });
}());
