/* A chat box on Netia's public chat API (POST /api/v1/chat), as a visitor's browser would use it.
   Used by the portal's "Try it" panel and by the public demo page. Configuration comes from data-*
   attributes of the [data-chat] element: data-chat-url, data-chat-token, data-leads-url (optional). */
"use strict";
(function () {
  function randomId() {
    var bytes = new Uint8Array(12);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function bubble(log, role, text) {
    var item = document.createElement("div");
    item.className = "bubble " + role;
    var meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = role === "visitor" ? "You" : "Bot";
    var body = document.createElement("p");
    body.textContent = text;
    item.appendChild(meta);
    item.appendChild(body);
    log.appendChild(item);
    log.scrollTop = log.scrollHeight;
    return item;
  }

  var REASONS = {
    trial_ended: "The free trial has ended: choose a plan to wake the bot up.",
    plan_limit_reached: "This month's AI replies are used up: upgrade the plan.",
    subscription_inactive: "The subscription is not active.",
    payment_overdue: "A payment is overdue.",
    tenant_suspended: "This account is suspended."
  };

  function setup(box) {
    var log = box.querySelector("[data-chat-log]");
    var form = box.querySelector("form");
    var input = form.querySelector("input[name=message]");
    var status = box.querySelector("[data-chat-status]");
    // The first message opens a conversation (named by a fresh session id); the answer's signed
    // conversation_token continues it. It is kept per chat token for the browser tab's lifetime.
    var storageKey = "netia-chat-conversation:" + box.getAttribute("data-chat-token");

    function turnBody(text) {
      var token = window.sessionStorage.getItem(storageKey);
      if (token) { return { conversation_token: token, message: text }; }
      return { session_id: (box.getAttribute("data-chat-session-prefix") || "web-") + randomId(), message: text };
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var text = input.value.trim();
      if (!text) { return; }
      bubble(log, "visitor", text);
      input.value = "";
      status.textContent = "The bot is typing…";
      form.querySelector("button").disabled = true;
      fetch(box.getAttribute("data-chat-url"), {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          "Authorization": "Bearer " + box.getAttribute("data-chat-token")
        },
        body: JSON.stringify(turnBody(text))
      }).then(function (response) {
        return response.json().then(function (data) { return { ok: response.ok, status: response.status, data: data }; });
      }).then(function (result) {
        status.textContent = "";
        if (!result.ok) {
          var error = result.data.error || {};
          if (error.code === "conversation_token_invalid") {
            window.sessionStorage.removeItem(storageKey);  // expired: the next message opens a new conversation
          }
          var reason = (error.details || {}).reason;
          status.textContent = REASONS[reason] || error.message || "Something went wrong. Try again.";
          return;
        }
        var data = result.data;
        window.sessionStorage.setItem(storageKey, data.conversation_token);
        if (data.reply) {
          var item = bubble(log, "bot", data.reply);
          if (data.sources && data.sources.length) {
            var sources = document.createElement("div");
            sources.className = "sources";
            sources.textContent = "From: ";
            data.sources.forEach(function (source) {
              var tag = document.createElement("span");
              tag.textContent = source.title;
              sources.appendChild(tag);
            });
            item.appendChild(sources);
          }
          if (data.lead_captured) {
            var lead = document.createElement("div");
            lead.className = "chat-lead";
            var leadsUrl = box.getAttribute("data-leads-url");
            if (leadsUrl) {
              var link = document.createElement("a");
              link.href = leadsUrl;
              link.textContent = "Lead saved: see it in Leads";
              lead.appendChild(link);
            } else {
              lead.textContent = "Thanks! The team has your details.";
            }
            item.appendChild(lead);
          }
        }
        if (data.handoff) {
          status.textContent = "The conversation is with the team now: the bot stays silent.";
        }
      }).catch(function () {
        status.textContent = "The bot could not be reached. Check your connection and try again.";
      }).then(function () {
        form.querySelector("button").disabled = false;
        input.focus();
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-chat]").forEach(setup);
  });
})();
