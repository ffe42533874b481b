// The field pages' position (redline/serve/field.py): the browser's position, when the user lets
// the page have it (Permissions-Policy geolocation=(self)), sorts "my field checks" by distance
// (the page is reloaded with ?lat=…&lon=…, so the server sorts; without JavaScript the small
// form does the same) and fills the finding form's position fields. No request leaves the
// service: the position goes only into the page's own URL and form.
(function () {
  "use strict";
  var status = document.getElementById("locate-status");
  var list = document.getElementById("field-list");
  var form = document.getElementById("finding-form");
  if (!navigator.geolocation || (!list && !form)) { return; }
  if (list && list.dataset.positioned === "1") { return; }  // already sorted by a position
  function say(key) { if (status) { status.textContent = status.dataset[key] || ""; } }
  function located(pos) {
    var c = pos.coords;
    say("located");
    if (list) {
      var q = new URLSearchParams({ lat: c.latitude.toFixed(6), lon: c.longitude.toFixed(6) });
      window.location.replace("/field?" + q.toString());
      return;
    }
    var lat = document.getElementById("lat"), lon = document.getElementById("lon"), acc = document.getElementById("accuracy");
    if (lat.value || lon.value) { return; }  // typed by hand: kept
    lat.value = c.latitude.toFixed(6);
    lon.value = c.longitude.toFixed(6);
    acc.value = isFinite(c.accuracy) ? String(Math.round(c.accuracy * 10) / 10) : "";
  }
  say("locating");
  navigator.geolocation.getCurrentPosition(located, function () { say("failed"); },
    { enableHighAccuracy: true, timeout: 20000, maximumAge: 60000 });
}());
