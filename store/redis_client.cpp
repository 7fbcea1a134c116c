#include "store/redis_client.h"
#include "store/logging.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <charconv>
#include <cstring>
#include <deque>
#include <mutex>
#include <random>

#include "store/hiredis_asio.h"

namespace store::redis {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

constexpr char kInvalidateChannel[] = "__redis__:invalidate";
constexpr auto kFailureLogInterval = std::chrono::seconds(30);

std::shared_ptr<spdlog::logger> logger() {
  return store::component_logger("cache");
}

Result failure(std::string error) {
  Result result;
  result.error = std::move(error);
  return result;
}

Reply convert(const redisReply* reply) {
  Reply out;
  switch (reply->type) {
    case REDIS_REPLY_STATUS:
      out.kind = Reply::Kind::status;
      out.text.assign(reply->str, reply->len);
      break;
    case REDIS_REPLY_ERROR:
      out.kind = Reply::Kind::error;
      out.text.assign(reply->str, reply->len);
      break;
    case REDIS_REPLY_STRING:
      out.kind = Reply::Kind::string;
      out.text.assign(reply->str, reply->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.kind = Reply::Kind::integer;
      out.integer = reply->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.kind = Reply::Kind::array;
      out.elements.reserve(reply->elements);
      for (std::size_t i = 0; i < reply->elements; ++i) {
        out.elements.push_back(convert(reply->element[i]));
      }
      break;
    default:
      out.kind = Reply::Kind::nil;
      break;
  }
  return out;
}

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

// All state below is guarded by `mutex`, which every entry point takes: Asio
// handlers (bound to `strand`), stop() and set_on_state_change(). hiredis is
// only ever called under it. Its C callbacks only record what happened
// (`deferred`); the reactions, including all user callbacks, run afterwards in
// run_deferred(), still under the lock but never inside hiredis. That is what
// makes it safe for a callback to issue commands or call stop().
struct Client::Impl : std::enable_shared_from_this<Impl> {
  enum class Role { main, tracking };
  enum class State { idle, resolving, connecting, handshaking, up, waiting };

  struct Pending {
    std::uint64_t id = 0;
    Clock::time_point deadline;
    Callback done;  // empty once timed out: the late reply is dropped
    bool user = false;
  };

  struct Connection {
    Connection(Impl& owner, Role role, const asio::strand<asio::io_context::executor_type>& strand,
               std::chrono::milliseconds backoff)
        : owner(owner),
          role(role),
          resolver(strand),
          handshake_timer(strand),
          deadline_timer(strand),
          retry_timer(strand),
          backoff(backoff) {}
    const char* name() const { return role == Role::main ? "main" : "tracking"; }

    Impl& owner;
    Role role;
    redisAsyncContext* context = nullptr;
    State state = State::idle;
    std::uint64_t generation = 0;  // bumped per connection attempt and on loss
    std::deque<Pending> pending;   // in the order sent, which is the order answered
    std::uint64_t next_id = 1;     // 0 tags the subscription callback
    std::uint32_t consecutive_timeouts = 0;
    std::string closing_reason;  // given to pending commands when we free the context
    asio::ip::tcp::resolver resolver;
    asio::steady_timer handshake_timer;
    asio::steady_timer deadline_timer;
    std::optional<Clock::time_point> deadline_armed;
    asio::steady_timer retry_timer;
    std::chrono::milliseconds backoff;
    bool ever_up = false;
    std::uint64_t failed_attempts = 0;
    Clock::time_point last_failure_log;
    long long client_id = -1;  // tracking connection: its CLIENT ID
  };

  struct Tracker {
    std::string prefix;
    InvalidateCallback on_invalidate;
    ResetCallback on_reset;
  };

  struct Deferred {
    Callback done;                // a command completion (user or internal) ...
    Result result;                // ... and its result
    std::function<void()> event;  // or an internal reaction / notification
  };

  struct Queued {
    std::vector<std::string> argv;
    Callback done;
  };

  enum class Tracking { off, enabling, active };

  Impl(asio::io_context& io, Options options)
      : strand(asio::make_strand(io)),
        options(std::move(options)),
        main(*this, Role::main, strand, this->options.min_backoff),
        tracking(*this, Role::tracking, strand, this->options.min_backoff),
        random(std::random_device{}()) {}

  ~Impl() = default;

  // ---- entry points -------------------------------------------------------

  // Runs `body` under the lock if the client still exists, then the reactions.
  template <typename Body>
  static void enter(const std::weak_ptr<Impl>& weak, Body&& body) {
    const auto self = weak.lock();
    if (!self) return;
    std::lock_guard lock(self->mutex);
    body(*self);
    self->run_deferred();
  }

  HiredisAsio::Runner runner() {
    return [weak = weak_from_this()](const std::function<void()>& event) {
      enter(weak, [&](Impl&) { event(); });
    };
  }

  Connection& connection(Role role) { return role == Role::main ? main : tracking; }

  void post(std::function<void(Impl&)> body) {
    asio::post(strand, [weak = weak_from_this(), body = std::move(body)] {
      enter(weak, [&](Impl& self) {
        if (!self.stopping) body(self);
      });
    });
  }

  void submit(std::vector<std::string> argv, Callback done) {
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
      asio::post(strand, [weak = weak_from_this()] {
        enter(weak, [](Impl& self) { self.drain_inbox(); });
      });
    }
    if (accepted) return;
    ++errors;  // after stop()
    asio::post(strand, [done = std::move(done)] { done(failure("stopped")); });
  }

  void drain_inbox() {
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

  void start() {
    if (started || stopping) return;
    started = true;
    connect(main);
    if (!trackers.empty()) connect(tracking);
  }

  void add_tracker(Tracker tracker) {
    trackers.push_back(std::move(tracker));
    if (!started) return;
    if (tracking.state == State::idle) {
      connect(tracking);
    } else if (tracking.state == State::up) {
      enable_tracking();  // again, with the new prefix
    }
  }

  void stop() {
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
    for (Connection* c : {&main, &tracking}) {
      c->resolver.cancel();
      c->handshake_timer.cancel();
      c->deadline_timer.cancel();
      c->retry_timer.cancel();
      drop(*c, "stopped");  // pending commands fail with "stopped"
    }
    connected = false;
    tracking_is_active = false;
    run_deferred();
  }

  // ---- connecting ---------------------------------------------------------

  void connect(Connection& c) {
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
        [weak = weak_from_this(), role = c.role, generation = c.generation](
            const boost::system::error_code& error,
            const asio::ip::tcp::resolver::results_type& results) {
          enter(weak, [&](Impl& self) {
            Connection& c = self.connection(role);
            if (self.stopping || c.generation != generation || c.state != State::resolving) return;
            if (error || results.empty()) {
              self.lost(c, "resolve " + self.options.host + ": " + error.message(), false);
            } else {
              self.open(c, results.begin()->endpoint().address().to_string());
            }
          });
        });
  }

  void open(Connection& c, const std::string& ip) {
    c.closing_reason.clear();
    c.consecutive_timeouts = 0;
    c.client_id = -1;
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
    c.handshake_timer.async_wait([weak = weak_from_this(), role = c.role,
                                  generation = c.generation](const boost::system::error_code& e) {
      if (e) return;
      enter(weak, [&](Impl& self) {
        Connection& c = self.connection(role);
        if (self.stopping || c.generation != generation || c.state == State::up) return;
        self.drop(c, "connect timeout");
      });
    });
  }

  static void on_connect(const redisAsyncContext* context, int status) {
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

  static void on_disconnect(const redisAsyncContext* context, int /*status*/) {
    auto& c = *static_cast<Connection*>(context->data);
    std::string reason = c.closing_reason;
    if (reason.empty()) reason = context->errstr && *context->errstr ? context->errstr : "closed";
    c.context = nullptr;
    c.owner.connection_gone(c, reason);
  }

  // The context is gone (freed by hiredis or by us): react after hiredis returns.
  void connection_gone(Connection& c, std::string reason) {
    const bool was_up = c.state == State::up;
    c.state = State::idle;
    ++c.generation;
    if (c.role == Role::main) connected = false;
    if (c.role == Role::tracking || was_up) tracking_is_active = false;
    defer_event([this, &c, reason = std::move(reason), was_up] { lost(c, reason, was_up); });
  }

  void handshake(Connection& c) {
    const auto generation = c.generation;
    auto step_failed = [this, &c, generation](const char* step, const Result& result) {
      if (c.generation != generation) return;
      drop(c, std::string(step) + " failed: " + (result.ok ? result.reply.text : result.error));
    };
    if (c.role == Role::main) {
      if (options.db != 0) {
        issue_internal(c, {"SELECT", std::to_string(options.db)},
                       [step_failed](const Result& result) {
                         if (!result.ok || result.reply.is_error()) step_failed("SELECT", result);
                       });
      }
      issue_internal(c, {"PING"}, [this, &c, generation, step_failed](const Result& result) {
        if (!result.ok || result.reply.is_error()) return step_failed("PING", result);
        if (c.generation == generation && c.state == State::handshaking) became_up(c);
      });
    } else {
      issue_internal(c, {"CLIENT", "ID"}, [&c, generation, step_failed](const Result& result) {
        if (!result.ok || result.reply.kind != Reply::Kind::integer) {
          return step_failed("CLIENT ID", result);
        }
        if (c.generation == generation) c.client_id = result.reply.integer;
      });
      // The subscription's replies arrive through on_reply with id 0; the
      // confirmation completes the handshake.
      const char* argv[] = {"SUBSCRIBE", kInvalidateChannel};
      const std::size_t lengths[] = {9, sizeof kInvalidateChannel - 1};
      if (redisAsyncCommandArgv(c.context, &Impl::on_reply, nullptr, 2, argv, lengths) !=
          REDIS_OK) {
        drop(c, "SUBSCRIBE failed");
      }
    }
  }

  void became_up(Connection& c) {
    c.state = State::up;
    c.handshake_timer.cancel();
    c.backoff = options.min_backoff;
    if (c.failed_attempts > 0) {
      logger()->info("redis connected role={} endpoint={}:{} after_failed_attempts={}", c.name(),
                     options.host, options.port, c.failed_attempts);
    } else {
      logger()->info("redis connected role={} endpoint={}:{}", c.name(), options.host,
                     options.port);
    }
    c.failed_attempts = 0;
    if (c.role == Role::main) {
      ++connects;
      if (c.ever_up) ++reconnects;
      connected = true;
      notify_state(true);
    }
    c.ever_up = true;
    enable_tracking();
  }

  // A connection attempt failed or an established connection was lost.
  void lost(Connection& c, const std::string& reason, bool was_up) {
    if (stopping) return;
    c.state = State::idle;
    c.handshake_timer.cancel();
    c.deadline_timer.cancel();
    c.deadline_armed.reset();
    c.pending.clear();  // hiredis has already completed them all
    const auto delay = next_backoff(c);
    if (was_up) {
      logger()->warn("redis connection lost role={} endpoint={}:{} error=\"{}\" retry_in_ms={}",
                     c.name(), options.host, options.port, reason, delay.count());
    } else {
      // A down Redis means a failure every max_backoff: log the first, then a
      // summary every 30 s.
      const auto now = Clock::now();
      if (c.failed_attempts++ == 0 || now - c.last_failure_log >= kFailureLogInterval) {
        logger()->warn(
            "redis connect failed role={} endpoint={}:{} error=\"{}\" attempts={} retry_in_ms={}",
            c.name(), options.host, options.port, reason, c.failed_attempts, delay.count());
        c.last_failure_log = now;
      }
    }
    if (c.role == Role::main && was_up) notify_state(false);
    if (!trackers.empty() && (was_up || tracking_state != Tracking::off)) {
      tracking_state = Tracking::off;
      tracking_is_active = false;
      reset_trackers();
    }
    if (c.role == Role::tracking && trackers.empty()) return;
    c.state = State::waiting;
    c.retry_timer.expires_after(delay);
    c.retry_timer.async_wait([weak = weak_from_this(), role = c.role,
                              generation = c.generation](const boost::system::error_code& e) {
      if (e) return;
      enter(weak, [&](Impl& self) {
        Connection& c = self.connection(role);
        if (!self.stopping && c.generation == generation && c.state == State::waiting) {
          self.connect(c);
        }
      });
    });
  }

  std::chrono::milliseconds next_backoff(Connection& c) {
    const auto base = std::max(c.backoff, std::chrono::milliseconds(1));
    c.backoff = std::min(c.backoff * 2, options.max_backoff);
    std::uniform_int_distribution<std::int64_t> jitter(base.count() / 2, base.count());
    return std::chrono::milliseconds(jitter(random));
  }

  // Frees the context now: its pending commands fail with `reason`.
  void drop(Connection& c, const std::string& reason) {
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

  // ---- commands -----------------------------------------------------------

  // Sends argv on c; on success takes `done` (else leaves it untouched).
  bool issue(Connection& c, const std::vector<std::string>& argv, Callback& done, bool user,
             std::chrono::milliseconds timeout) {
    if (!c.context) return false;
    std::vector<const char*> pointers;
    std::vector<std::size_t> lengths;
    pointers.reserve(argv.size());
    lengths.reserve(argv.size());
    for (const auto& arg : argv) {
      pointers.push_back(arg.data());
      lengths.push_back(arg.size());
    }
    const std::uint64_t id = c.next_id++;
    if (redisAsyncCommandArgv(
            c.context, &Impl::on_reply, reinterpret_cast<void*>(static_cast<std::uintptr_t>(id)),
            static_cast<int>(argv.size()), pointers.data(), lengths.data()) != REDIS_OK) {
      return false;
    }
    const auto deadline = Clock::now() + timeout;
    if (user) ++in_flight;
    c.pending.push_back({id, deadline, std::move(done), user});
    arm_deadline(c, deadline);
    return true;
  }

  void issue_internal(Connection& c, const std::vector<std::string>& argv,
                      std::function<void(const Result&)> on_result) {
    Callback done = [this, on_result = std::move(on_result)](Result result) {
      if (!stopping) on_result(result);
    };
    if (!issue(c, argv, done, false, options.connect_timeout)) {
      fail(std::move(done), "not connected");
    }
  }

  static void on_reply(redisAsyncContext* context, void* reply, void* privdata) {
    auto* c = static_cast<Connection*>(context->data);
    if (!c) return;
    const auto id = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(privdata));
    c->owner.handle_reply(*c, static_cast<const redisReply*>(reply), id);
  }

  void handle_reply(Connection& c, const redisReply* reply, std::uint64_t id) {
    if (id == 0) {
      if (reply) handle_subscription(c, reply);
      return;
    }
    const auto it = std::find_if(c.pending.begin(), c.pending.end(),
                                 [id](const Pending& p) { return p.id == id; });
    if (it == c.pending.end()) return;
    Pending pending = std::move(*it);
    c.pending.erase(it);
    if (reply) c.consecutive_timeouts = 0;
    if (!pending.done) return;  // timed out earlier
    if (pending.user) --in_flight;
    Result result;
    if (reply) {
      result.ok = true;
      result.reply = convert(reply);
      if (pending.user) {
        ++replies;
        if (result.reply.is_error()) ++error_replies;
      }
    } else {
      result.error = c.closing_reason.empty() ? "connection lost" : c.closing_reason;
      if (pending.user) ++errors;
    }
    deferred.push_back({std::move(pending.done), std::move(result), {}});
  }

  void arm_deadline(Connection& c, Clock::time_point deadline) {
    if (c.deadline_armed && *c.deadline_armed <= deadline) return;
    c.deadline_armed = deadline;
    c.deadline_timer.expires_at(deadline);
    c.deadline_timer.async_wait([weak = weak_from_this(), role = c.role,
                                 generation = c.generation](const boost::system::error_code& e) {
      if (e == asio::error::operation_aborted) return;
      enter(weak, [&](Impl& self) {
        Connection& c = self.connection(role);
        if (self.stopping || c.generation != generation) return;
        c.deadline_armed.reset();
        self.expire(c);
      });
    });
  }

  void expire(Connection& c) {
    const auto now = Clock::now();
    std::optional<Clock::time_point> next;
    for (auto& pending : c.pending) {
      if (!pending.done) continue;
      if (pending.deadline <= now) {
        if (pending.user) {
          ++timeouts;
          --in_flight;
        }
        ++c.consecutive_timeouts;
        fail(std::move(pending.done), "timeout", false);
        pending.done = nullptr;
      } else if (!next || pending.deadline < *next) {
        next = pending.deadline;
      }
    }
    if (c.state == State::up && c.consecutive_timeouts >= options.max_consecutive_timeouts) {
      const std::string reason =
          "no reply to " + std::to_string(c.consecutive_timeouts) + " consecutive commands";
      // The tracking connection goes to the same, presumably dead, server.
      if (c.role == Role::main) drop(tracking, reason);
      drop(c, reason);
      return;
    }
    if (next) arm_deadline(c, *next);
  }

  void fail(Callback done, std::string error, bool count = true) {
    if (!done) return;
    if (count) ++errors;
    deferred.push_back({std::move(done), failure(std::move(error)), {}});
  }

  // ---- tracking -----------------------------------------------------------

  void enable_tracking() {
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
        logger()->error("redis refused client-side caching endpoint={}:{} error=\"{}\"",
                        options.host, options.port, result.reply.text);
      } else {
        tracking_state = Tracking::active;
        tracking_is_active = true;
        logger()->info("redis invalidation tracking active endpoint={}:{} prefixes={}",
                       options.host, options.port, trackers.size());
        reset_trackers();  // anything cached before now may be stale
      }
    });
  }

  // ["subscribe", channel, n] or ["message", channel, keys | nil]
  void handle_subscription(Connection& c, const redisReply* reply) {
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

  void reset_trackers() {
    for (const auto& tracker : trackers) {
      if (tracker.on_reset) tracker.on_reset();
    }
  }

  void notify_state(bool up) {
    if (on_state_change) on_state_change(up);
  }

  // ---- deferred reactions -------------------------------------------------

  void defer_event(std::function<void()> event) { deferred.push_back({{}, {}, std::move(event)}); }

  void run_deferred() {
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

  asio::strand<asio::io_context::executor_type> strand;
  const Options options;
  std::recursive_mutex mutex;
  bool started = false;
  bool stopping = false;
  Connection main;
  Connection tracking;
  std::vector<Tracker> trackers;
  Tracking tracking_state = Tracking::off;
  std::uint64_t tracking_epoch = 0;
  StateCallback on_state_change;
  std::vector<Deferred> deferred;
  std::minstd_rand random;

  std::mutex inbox_mutex;
  std::vector<Queued> inbox;
  bool drain_posted = false;
  bool inbox_closed = false;

  std::atomic<bool> connected{false};
  std::atomic<bool> tracking_is_active{false};
  std::atomic<std::uint64_t> commands{0}, replies{0}, error_replies{0}, timeouts{0}, errors{0},
      connects{0}, reconnects{0}, invalidations{0}, in_flight{0};
};

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

void Client::track_prefix(std::string prefix, InvalidateCallback on_invalidate,
                          ResetCallback on_reset) {
  impl_->post(
      [tracker = Impl::Tracker{std::move(prefix), std::move(on_invalidate), std::move(on_reset)}](
          Impl& impl) mutable { impl.add_tracker(std::move(tracker)); });
}

bool Client::tracking_active() const {
  return impl_->tracking_is_active;
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
  stats.invalidations = impl_->invalidations;
  stats.in_flight = impl_->in_flight;
  return stats;
}

}  // namespace store::redis
