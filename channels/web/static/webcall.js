// 网上呼叫: the page calls the hotline with JsSIP over Kamailio's WebSocket. The site gives a
// call token first (POST /call/token); the INVITE carries it, and the worker answering
// checks it. Keys go as RFC 4733 telephone events in the call's audio.
"use strict";
(function () {
  const form = document.getElementById("call-form");
  const call = document.getElementById("call");
  const hangUp = document.getElementById("hang-up");
  const keypad = document.getElementById("keypad");
  const status = document.getElementById("status");
  const remote = document.getElementById("remote");
  let ua = null;
  let session = null;

  function say(text) {
    status.textContent = text;
  }

  function wsUrl() {
    if (form.dataset.wsUrl) return form.dataset.wsUrl;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    return scheme + "://" + location.hostname + ":" + form.dataset.wsPort;
  }

  function idle() {
    session = null;
    if (ua) ua.stop();
    ua = null;
    call.hidden = false;
    call.disabled = false;
    hangUp.hidden = true;
    keypad.hidden = true;
  }

  async function ticket() {
    const response = await fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.problem || "暂时无法呼叫，请稍后再试。");
    return answer;
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    call.disabled = true;
    say("正在连接…");
    let answer;
    try {
      answer = await ticket();
    } catch (error) {
      say(error.message);
      call.disabled = false;
      return;
    }
    const url = wsUrl();
    const host = new URL(url).hostname;
    ua = new JsSIP.UA({
      sockets: [new JsSIP.WebSocketInterface(url)],
      uri: "sip:web@anonymous.invalid",
      display_name: "网上呼叫",
      register: false,
      session_timers: false,
      user_agent: "12345-webcall",
    });
    ua.on("disconnected", function () {
      if (!session) {
        say("暂时无法接通，请稍后再试，或拨打12345热线电话。");
        idle();
      }
    });
    ua.start();
    session = ua.call("sip:" + form.dataset.number + "@" + host, {
      mediaConstraints: { audio: true, video: false },
      extraHeaders: [answer.header + ": " + answer.token],
      pcConfig: { iceServers: [] },
    });
    // The call's RTCPeerConnection exists once call() returns (its "peerconnection" event
    // came during it): what the hotline says is played as it arrives.
    session.connection.addEventListener("track", function (t) {
      remote.srcObject = t.streams[0];
    });
    session.on("progress", function () {
      say("正在呼叫…");
    });
    session.on("confirmed", function () {
      say("已接通，请按语音提示操作");
      call.hidden = true;
      hangUp.hidden = false;
      keypad.hidden = false;
    });
    session.on("ended", function () {
      say("通话已结束");
      idle();
    });
    session.on("failed", function (e) {
      say(e.cause === JsSIP.C.causes.USER_DENIED_MEDIA_ACCESS
        ? "请允许浏览器使用麦克风后再呼叫。"
        : "呼叫未能接通（" + e.cause + "），请稍后再试。");
      idle();
    });
  });

  hangUp.addEventListener("click", function () {
    if (session) session.terminate();
  });

  keypad.addEventListener("click", function (event) {
    const key = event.target.dataset && event.target.dataset.key;
    if (key && session && session.isEstablished()) {
      session.sendDTMF(key, { transportType: "RFC2833", duration: 160, interToneGap: 80 });
    }
  });
})();
