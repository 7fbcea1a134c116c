// Connecting: resolving the host, opening the hiredis context on the strand,
// the handshake (SELECT, PING), reconnecting with backoff and jitter, and
// dropping the connection.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/ip/address.hpp>

#include "store/cache/redis_client_impl.h"

namespace store::redis {

namespace asio = boost::asio;

namespace {

constexpr auto kFailureLogInterval = std::chrono::seconds(30);

}  // namespace

void Client::Impl::connect(Connection& c) {
  ++c.generation;
  boost::system::error_code error;
  asio::ip::make_address(options.host, error);
  if (!error) {
    open(c, options.host);
    return;
  }
  c.state = State::resolving;
  c.resolver.async_resolve(
      options.host, std::to_string(options.port),
      [weak = weak_from_this(), generation = c.generation](
          const boost::system::error_code& error,
          const asio::ip::tcp::resolver::results_type& results) {
        enter(weak, [&](Impl& self) {
          Connection& c = self.main;
          if (self.stopping || c.generation != generation || c.state != State::resolving) return;
          if (error || results.empty()) {
            self.lost(c, "resolve " + self.options.host + ": " + error.message(), false);
          } else {
            self.open(c, results.begin()->endpoint().address().to_string());
          }
        });
      });
}

void Client::Impl::open(Connection& c, const std::string& ip) {
  c.closing_reason.clear();
  c.consecutive_timeouts = 0;
  redisAsyncContext* context = redisAsyncConnect(ip.c_str(), options.port);
  if (!context || context->err) {
    const std::string error = context ? context->errstr : "out of memory";
    if (context) redisAsyncFree(context);
    lost(c, "connect: " + error, false);
    return;
  }
  try {
    HiredisAsio::attach(context, strand, runner());
  } catch (const std::exception& error) {  // e.g. the reactor refused the descriptor
    redisAsyncFree(context);
    lost(c, std::string("attach: ") + error.what(), false);
    return;
  }
  // Keepalive probes eventually notice a peer that vanished while idle.
  if (redisEnableKeepAlive(&context->c) != REDIS_OK) {
    context->c.err = 0;  // not fatal; hiredis refuses to do I/O while err is set
    context->err = 0;
  }
  context->data = &c;
  c.context = context;
  c.state = State::connecting;
  redisAsyncSetConnectCallback(context, &Impl::on_connect);
  redisAsyncSetDisconnectCallback(context, &Impl::on_disconnect);
  c.handshake_timer.expires_after(options.connect_timeout);
  c.handshake_timer.async_wait(
      [weak = weak_from_this(), generation = c.generation](const boost::system::error_code& e) {
        if (e) return;
        enter(weak, [&](Impl& self) {
          Connection& c = self.main;
          if (self.stopping || c.generation != generation || c.state == State::up) return;
          self.drop(c, "connect timeout");
        });
      });
}

void Client::Impl::on_connect(const redisAsyncContext* context, int status) {
  auto& c = *static_cast<Connection*>(context->data);
  Impl& self = c.owner;
  if (status != REDIS_OK) {
    // hiredis frees the context when we return; no disconnect callback follows.
    const std::string error = context->errstr ? context->errstr : "connect failed";
    c.context = nullptr;
    self.connection_gone(c, "connect: " + error);
    return;
  }
  c.state = State::handshaking;
  self.defer_event([&self, &c, generation = c.generation] {
    if (c.generation == generation && c.state == State::handshaking) self.handshake(c);
  });
}

void Client::Impl::on_disconnect(const redisAsyncContext* context, int /*status*/) {
  auto& c = *static_cast<Connection*>(context->data);
  std::string reason = c.closing_reason;
  if (reason.empty()) reason = context->errstr && *context->errstr ? context->errstr : "closed";
  c.context = nullptr;
  c.owner.connection_gone(c, reason);
}

void Client::Impl::connection_gone(Connection& c, std::string reason) {
  const bool was_up = c.state == State::up;
  c.state = State::idle;
  ++c.generation;
  connected = false;
  defer_event([this, &c, reason = std::move(reason), was_up] { lost(c, reason, was_up); });
}

void Client::Impl::handshake(Connection& c) {
  const auto generation = c.generation;
  auto step_failed = [this, &c, generation](const char* step, const Result& result) {
    if (c.generation != generation) return;
    drop(c, std::string(step) + " failed: " + (result.ok ? result.reply.text : result.error));
  };
  if (options.db != 0) {
    issue_internal(c, {"SELECT", std::to_string(options.db)}, [step_failed](const Result& result) {
      if (!result.ok || result.reply.is_error()) step_failed("SELECT", result);
    });
  }
  issue_internal(c, {"PING"}, [this, &c, generation, step_failed](const Result& result) {
    if (!result.ok || result.reply.is_error()) return step_failed("PING", result);
    if (c.generation == generation && c.state == State::handshaking) became_up(c);
  });
}

void Client::Impl::became_up(Connection& c) {
  c.state = State::up;
  c.handshake_timer.cancel();
  c.backoff = options.min_backoff;
  if (c.failed_attempts > 0) {
    logger()->info("redis connected role=main endpoint={}:{} after_failed_attempts={}",
                   options.host, options.port, c.failed_attempts);
  } else {
    logger()->info("redis connected role=main endpoint={}:{}", options.host, options.port);
  }
  c.failed_attempts = 0;
  ++connects;
  if (c.ever_up) ++reconnects;
  connected = true;
  notify_state(true);
  c.ever_up = true;
}

void Client::Impl::notify_state(bool up) {
  if (on_state_change) on_state_change(up);
}

void Client::Impl::lost(Connection& c, const std::string& reason, bool was_up) {
  if (stopping) return;
  c.state = State::idle;
  c.handshake_timer.cancel();
  c.deadline_timer.cancel();
  c.deadline_armed.reset();
  c.pending.clear();  // hiredis has already completed them all
  const auto delay = next_backoff(c);
  if (was_up) {
    logger()->warn("redis connection lost role=main endpoint={}:{} error=\"{}\" retry_in_ms={}",
                   options.host, options.port, reason, delay.count());
  } else {
    // A down Redis means a failure every max_backoff: log the first, then a
    // summary every 30 s.
    const auto now = Clock::now();
    if (c.failed_attempts++ == 0 || now - c.last_failure_log >= kFailureLogInterval) {
      logger()->warn(
          "redis connect failed role=main endpoint={}:{} error=\"{}\" attempts={} retry_in_ms={}",
          options.host, options.port, reason, c.failed_attempts, delay.count());
      c.last_failure_log = now;
    }
  }
  if (was_up) notify_state(false);
  c.state = State::waiting;
  c.retry_timer.expires_after(delay);
  c.retry_timer.async_wait(
      [weak = weak_from_this(), generation = c.generation](const boost::system::error_code& e) {
        if (e) return;
        enter(weak, [&](Impl& self) {
          Connection& c = self.main;
          if (!self.stopping && c.generation == generation && c.state == State::waiting) {
            self.connect(c);
          }
        });
      });
}

std::chrono::milliseconds Client::Impl::next_backoff(Connection& c) {
  const auto base = std::max(c.backoff, std::chrono::milliseconds(1));
  c.backoff = std::min(c.backoff * 2, options.max_backoff);
  std::uniform_int_distribution<std::int64_t> jitter(base.count() / 2, base.count());
  return std::chrono::milliseconds(jitter(random));
}

void Client::Impl::drop(Connection& c, const std::string& reason) {
  if (!c.context) {
    if (c.state == State::resolving) {
      c.resolver.cancel();
      connection_gone(c, reason);
    }
    return;
  }
  c.closing_reason = reason;
  redisAsyncContext* context = c.context;
  redisAsyncFree(context);  // runs on_reply(nullptr) per pending command, then on_disconnect
  if (c.context) {          // never connected: hiredis calls no disconnect callback
    c.context = nullptr;
    connection_gone(c, reason);
  }
}

}  // namespace store::redis
