// The alert page's map: the alert's outline (red) over its zone's (green), no basemap (the
// service runs offline and its Content-Security-Policy allows its own origin only). The
// geometries come from data- attributes (GeoJSON, EPSG:4326): no inline script.
(function () {
  "use strict";
  var el = document.getElementById("alert-map");
  if (!el || !window.L || !el.dataset.geometry) { return; }
  var map = L.map(el, { attributionControl: false });
  if (el.dataset.zone) {
    L.geoJSON(JSON.parse(el.dataset.zone), { style: { color: "#238b45", weight: 2, fillOpacity: 0.05 } }).addTo(map);
  }
  var alertLayer = L.geoJSON(JSON.parse(el.dataset.geometry), { style: { color: "#d7191c", weight: 3, fillOpacity: 0.25 } }).addTo(map);
  map.fitBounds(alertLayer.getBounds(), { maxZoom: 17, padding: [40, 40] });
  L.control.scale({ imperial: false }).addTo(map);
  window.redlineAlertMap = { map: map, alert: alertLayer };
}());
