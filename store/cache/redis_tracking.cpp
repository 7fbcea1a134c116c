// Client-side caching: enabling CLIENT TRACKING (BCAST, REDIRECT to the
// tracking connection) for the trackers' prefixes, the invalidation messages
// that connection receives, and resetting the trackers.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "store/cache/redis_client_impl.h"

namespace store::redis {

void Client::Impl::enable_tracking() {
  if (trackers.empty() || main.state != State::up || tracking.state != State::up ||
      tracking.client_id < 0) {
    return;
  }
  tracking_state = Tracking::enabling;
  tracking_is_active = false;
  const auto epoch = ++tracking_epoch;
  // Switching the redirect or the prefixes needs tracking off first.
  issue_internal(main, {"CLIENT", "TRACKING", "off"}, [](const Result&) {});
  std::vector<std::string> argv = {
      "CLIENT", "TRACKING", "on", "REDIRECT", std::to_string(tracking.client_id), "BCAST"};
  // Redis refuses overlapping prefixes: send only the shortest ones. An empty
  // prefix means every key (BCAST without PREFIX).
  std::vector<std::string> prefixes;
  for (const auto& tracker : trackers) prefixes.push_back(tracker.prefix);
  std::sort(prefixes.begin(), prefixes.end());
  std::vector<std::string> minimal;
  for (const auto& prefix : prefixes) {
    if (minimal.empty() || prefix.compare(0, minimal.back().size(), minimal.back()) != 0) {
      minimal.push_back(prefix);
    }
  }
  if (!(minimal.size() == 1 && minimal.front().empty())) {
    for (const auto& prefix : minimal) {
      argv.push_back("PREFIX");
      argv.push_back(prefix);
    }
  }
  if (options.tracking_noloop) argv.push_back("NOLOOP");
  issue_internal(main, argv, [this, epoch](const Result& result) {
    if (epoch != tracking_epoch || tracking_state != Tracking::enabling) return;
    if (!result.ok) {
      // Try again on a fresh tracking connection.
      tracking_state = Tracking::off;
      drop(tracking, "CLIENT TRACKING failed: " + result.error);
    } else if (result.reply.is_error()) {
      tracking_state = Tracking::off;
      logger()->error("redis refused client-side caching endpoint={}:{} error=\"{}\"", options.host,
                      options.port, result.reply.text);
    } else {
      tracking_state = Tracking::active;
      tracking_is_active = true;
      logger()->info("redis invalidation tracking active endpoint={}:{} prefixes={}", options.host,
                     options.port, trackers.size());
      reset_trackers();  // anything cached before now may be stale
    }
  });
}

void Client::Impl::handle_subscription(Connection& c, const redisReply* reply) {
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
      reply->element[0]->type != REDIS_REPLY_STRING) {
    return;
  }
  const std::string_view kind(reply->element[0]->str, reply->element[0]->len);
  if (kind == "subscribe") {
    defer_event([this, &c, generation = c.generation] {
      if (c.generation == generation && c.state == State::handshaking && c.client_id >= 0) {
        became_up(c);
      }
    });
    return;
  }
  if (kind != "message") return;
  const redisReply* payload = reply->element[2];
  if (payload->type == REDIS_REPLY_NIL) {  // FLUSHALL / FLUSHDB
    defer_event([this] { reset_trackers(); });
    return;
  }
  std::vector<std::string> keys;
  if (payload->type == REDIS_REPLY_ARRAY) {
    for (std::size_t i = 0; i < payload->elements; ++i) {
      const redisReply* key = payload->element[i];
      if (key->type == REDIS_REPLY_STRING) keys.emplace_back(key->str, key->len);
    }
  } else if (payload->type == REDIS_REPLY_STRING) {
    keys.emplace_back(payload->str, payload->len);
  }
  invalidations += keys.size();
  defer_event([this, keys = std::move(keys)] {
    std::vector<std::string> matching;
    for (const auto& tracker : trackers) {
      matching.clear();
      for (const auto& key : keys) {
        if (key.compare(0, tracker.prefix.size(), tracker.prefix) == 0) matching.push_back(key);
      }
      if (!matching.empty() && tracker.on_invalidate) tracker.on_invalidate(matching);
    }
  });
}

void Client::Impl::reset_trackers() {
  for (const auto& tracker : trackers) {
    if (tracker.on_reset) tracker.on_reset();
  }
}

}  // namespace store::redis
