/* Contact with the HIL Scheduler as this page sees it (issue 11: frozen data never looks live).
   Every answer the page gets from the server (a Dash callback or the /healthz probe of
   dashboard/connection.py) is noted; window.hilContact is read by the connection watchdog. */
(function () {
    "use strict";
    var contact = window.hilContact = {lastOk: Date.now(), lastAsked: Date.now(), probing: false};
    var fetchOriginal = window.fetch.bind(window);
    window.fetch = function (input, init) {
        var url = typeof input === "string" ? input : (input && input.url) || "";
        var isCallback = url.indexOf("_dash-update-component") >= 0;
        if (isCallback) { contact.lastAsked = Date.now(); }
        return fetchOriginal(input, init).then(function (response) {
            if (response.ok) { contact.lastOk = Date.now(); }
            return response;
        });
    };
})();
