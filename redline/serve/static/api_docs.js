// The API's docs page (/api/docs): Swagger UI, from the installed fastapi-offline package
// (/lib/swagger-ui/), renders /api/openapi.json. A file, not an inline script: the service's
// Content-Security-Policy allows scripts from its own origin only. No validator badge (it would
// call validator.swagger.io).
(function () {
  "use strict";
  var el = document.getElementById("swagger-ui");
  if (!el || !window.SwaggerUIBundle) { return; }
  window.redlineApiDocs = window.SwaggerUIBundle({
    url: el.dataset.openapi,
    domNode: el,
    validatorUrl: null,
    deepLinking: false,
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
}());
