// 网页话机: the seat's phone in the call desk, so an operator needs only a browser and a
// headset. While the desk is open the page registers the seat at Kamailio over its
// WebSocket (JsSIP, digest with the seat's HA1); the queue then offers it calls like any
// registered phone. The operator answers here; the desk's panel pops as before.
"use strict";
(function () {
  const box = document.getElementById("softphone");
  if (!box || !window.JsSIP) {
    return;
  }
  const state = document.getElementById("softphone-state");
  const answer = document.getElementById("softphone-answer");
  const hangUp = document.getElementById("softphone-hang-up");
  const audio = document.getElementById("softphone-audio");
  let session = null;

  function say(text) {
    state.textContent = text;
    box.dataset.state = text;
  }

  const url = box.dataset.wsUrl ||
    (location.protocol === "https:" ? "wss" : "ws") + "://" + location.hostname + ":" + box.dataset.wsPort;
  const host = new URL(url).hostname;
  const ua = new JsSIP.UA({
    sockets: [new JsSIP.WebSocketInterface(url)],
    uri: "sip:" + box.dataset.seat + "@" + host,
    authorization_user: box.dataset.seat,
    realm: box.dataset.realm,
    ha1: box.dataset.ha1,
    register: true,
    register_expires: 300,
    session_timers: false,
    user_agent: "12345-desk",
  });
  ua.on("registered", function () {
    if (!session) say("话机已注册，等待来电");
  });
  ua.on("unregistered", function () {
    say("话机未注册");
  });
  ua.on("registrationFailed", function (e) {
    say("话机注册失败（" + e.cause + "），请刷新页面");
  });

  function idle(text) {
    session = null;
    answer.hidden = true;
    hangUp.hidden = true;
    say(text);
  }

  ua.on("newRTCSession", function (e) {
    if (e.originator !== "remote") return;
    if (session) {
      e.session.terminate({ status_code: 486 });
      return;
    }
    session = e.session;
    session.on("peerconnection", function (p) {
      p.peerconnection.addEventListener("track", function (t) {
        audio.srcObject = t.streams[0];
      });
    });
    session.on("confirmed", function () {
      answer.hidden = true;
      hangUp.hidden = false;
      say("通话中");
    });
    session.on("ended", function () {
      idle("通话已结束，等待来电");
    });
    session.on("failed", function () {
      idle("来电已取消，等待来电");
    });
    answer.hidden = false;
    say("来电振铃，请接听");
  });

  answer.addEventListener("click", function () {
    if (session && !session.isEstablished()) {
      session.answer({ mediaConstraints: { audio: true, video: false }, pcConfig: { iceServers: [] } });
    }
  });
  hangUp.addEventListener("click", function () {
    if (session) session.terminate();
  });
  // Closing the desk signs the phone off at once, so the queue offers it no more calls.
  window.addEventListener("pagehide", function () {
    ua.stop();
  });
  ua.start();
})();
