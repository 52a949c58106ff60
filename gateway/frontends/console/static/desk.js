// The call desk without reload: the server sends the desk's panel again, whole, whenever
// what it shows changes (gateway/frontends/console/desk_events.py); this swaps it in.
"use strict";
(function () {
  const status = document.getElementById("desk-link");
  const panel = document.getElementById("desk-panel");
  if (!status || !panel || !window.EventSource) {
    return;
  }
  const stream = new EventSource(status.dataset.events);
  stream.addEventListener("panel", function (event) {
    panel.innerHTML = event.data;
    // Read out by screen readers (aria-live): what the call is now, and when it changed.
    const call = panel.querySelector("#call-state");
    const at = new Date().toLocaleTimeString("zh-CN", { timeZone: status.dataset.zone, hour12: false });
    status.textContent = (call ? call.textContent.trim() : "坐席信息已更新") + "（" + at + "）";
    status.classList.remove("desk-lost");
  });
  stream.addEventListener("ended", function () {
    stream.close();
    status.textContent = "登录已失效，请刷新页面重新登录。";
    status.classList.add("desk-lost");
  });
  stream.addEventListener("error", function () {
    if (stream.readyState === EventSource.CLOSED) {
      status.textContent = "与服务器的连接已断开，请刷新页面。";
      status.classList.add("desk-lost");
    }
  });
})();
