// The public Client (a thin face over Client::Impl), parse_address, and the
// Impl's entry points: the lock, posting onto the strand, the command inbox,
// start and stop, and the deferred reactions that run after each entry.
#include <boost/asio/post.hpp>
#include <charconv>

#include "store/cache/redis_client_impl.h"
#include "store/logging.h"

namespace store::redis {

namespace asio = boost::asio;

namespace {

bool parse_number(std::string_view text, long long max, long long& out) {
  if (text.empty() || text.size() > 10) return false;
  long long value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value < 0 || value > max) {
    return false;
  }
  out = value;
  return true;
}

bool valid_host(std::string_view host, bool bracketed) {
  if (host.empty()) return false;
  for (const char c : host) {
    const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (bracketed ? !(alnum || c == ':' || c == '.' || c == '%')
                  : !(alnum || c == '.' || c == '-' || c == '_')) {
      return false;
    }
  }
  return !bracketed || host.find(':') != std::string_view::npos;
}

}  // namespace

std::optional<Options> parse_address(std::string_view address) {
  Options options;
  constexpr std::string_view kScheme = "redis://";
  const bool url = address.substr(0, kScheme.size()) == kScheme;
  if (url) {
    address.remove_prefix(kScheme.size());
    if (const auto slash = address.find('/'); slash != std::string_view::npos) {
      long long db = 0;
      if (!parse_number(address.substr(slash + 1), 1'000'000, db)) return std::nullopt;
      options.db = static_cast<int>(db);
      address = address.substr(0, slash);
    }
  }
  std::string_view host;
  std::string_view rest;
  const bool bracketed = !address.empty() && address.front() == '[';
  if (bracketed) {
    const auto close = address.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = address.substr(1, close - 1);
    rest = address.substr(close + 1);
  } else {
    const auto colon = address.find(':');
    host = address.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view() : address.substr(colon);
  }
  if (!valid_host(host, bracketed)) return std::nullopt;
  if (rest.empty()) {
    if (!url) return std::nullopt;  // HOST:PORT needs its port
  } else {
    long long port = 0;
    if (rest.front() != ':' || !parse_number(rest.substr(1), 65535, port) || port == 0) {
      return std::nullopt;
    }
    options.port = static_cast<std::uint16_t>(port);
  }
  options.host = std::string(host);
  return options;
}

Client::Impl::Impl(asio::io_context& io, Options options)
    : strand(asio::make_strand(io)),
      options(std::move(options)),
      main(*this, strand, this->options.min_backoff),
      random(std::random_device{}()) {}

std::shared_ptr<spdlog::logger> Client::Impl::logger() {
  return store::component_logger("cache");
}

Result Client::Impl::failure(std::string error) {
  Result result;
  result.error = std::move(error);
  return result;
}

HiredisAsio::Runner Client::Impl::runner() {
  return [weak = weak_from_this()](const std::function<void()>& event) {
    enter(weak, [&](Impl&) { event(); });
  };
}

void Client::Impl::post(std::function<void(Impl&)> body) {
  asio::post(strand, [weak = weak_from_this(), body = std::move(body)] {
    enter(weak, [&](Impl& self) {
      if (!self.stopping) body(self);
    });
  });
}

void Client::Impl::submit(std::vector<std::string> argv, Callback done) {
  ++commands;
  bool accepted = false;
  bool post_drain = false;
  {
    std::lock_guard lock(inbox_mutex);
    if (!inbox_closed) {
      inbox.push_back({std::move(argv), std::move(done)});
      accepted = true;
      post_drain = !drain_posted;
      drain_posted = true;
    }
  }
  if (post_drain) {  // one drain per batch: what queues up meanwhile is pipelined
    asio::post(strand,
               [weak = weak_from_this()] { enter(weak, [](Impl& self) { self.drain_inbox(); }); });
  }
  if (accepted) return;
  ++errors;  // after stop()
  asio::post(strand, [done = std::move(done)] { done(failure("stopped")); });
}

void Client::Impl::drain_inbox() {
  std::vector<Queued> batch;
  {
    std::lock_guard lock(inbox_mutex);
    batch.swap(inbox);
    drain_posted = false;
  }
  for (auto& queued : batch) {
    if (stopping) {
      fail(std::move(queued.done), "stopped");
    } else if (queued.argv.empty()) {
      fail(std::move(queued.done), "empty command");
    } else if (main.state != State::up ||
               !issue(main, queued.argv, queued.done, true, options.command_timeout)) {
      fail(std::move(queued.done), "not connected");
    }
  }
}

void Client::Impl::start() {
  if (started || stopping) return;
  started = true;
  connect(main);
}

void Client::Impl::stop() {
  std::lock_guard lock(mutex);
  if (stopping) return;
  stopping = true;
  std::vector<Queued> batch;
  {
    std::lock_guard inbox_lock(inbox_mutex);
    inbox_closed = true;
    batch.swap(inbox);
  }
  for (auto& queued : batch) fail(std::move(queued.done), "stopped");
  main.resolver.cancel();
  main.handshake_timer.cancel();
  main.deadline_timer.cancel();
  main.retry_timer.cancel();
  drop(main, "stopped");  // pending commands fail with "stopped"
  connected = false;
  run_deferred();
}

void Client::Impl::defer_event(std::function<void()> event) {
  deferred.push_back({{}, {}, std::move(event)});
}

void Client::Impl::run_deferred() {
  while (!deferred.empty()) {
    std::vector<Deferred> batch;
    batch.swap(deferred);
    for (auto& item : batch) {
      try {
        if (item.done) {
          item.done(std::move(item.result));  // exactly once, even after stop()
        } else if (item.event && !stopping) {
          item.event();
        }
      } catch (const std::exception& error) {
        logger()->error("redis client callback threw: {}", error.what());
      } catch (...) {
        logger()->error("redis client callback threw");
      }
    }
  }
}

Client::Client(boost::asio::io_context& io, Options options)
    : impl_(std::make_shared<Impl>(io, std::move(options))) {}

Client::~Client() {
  stop();
}

void Client::start() {
  impl_->post([](Impl& impl) { impl.start(); });
}

void Client::stop() {
  impl_->stop();
}

bool Client::connected() const {
  return impl_->connected;
}

void Client::command(std::vector<std::string> argv, Callback done) {
  if (!done) done = [](Result) {};
  impl_->submit(std::move(argv), std::move(done));
}

void Client::set_on_state_change(StateCallback callback) {
  std::lock_guard lock(impl_->mutex);
  impl_->on_state_change = std::move(callback);
}

Client::Stats Client::stats() const {
  Stats stats;
  stats.commands = impl_->commands;
  stats.replies = impl_->replies;
  stats.error_replies = impl_->error_replies;
  stats.timeouts = impl_->timeouts;
  stats.errors = impl_->errors;
  stats.connects = impl_->connects;
  stats.reconnects = impl_->reconnects;
  stats.in_flight = impl_->in_flight;
  return stats;
}

}  // namespace store::redis
