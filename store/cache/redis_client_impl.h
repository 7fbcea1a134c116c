// Internal to the Redis client: the state of store::redis::Client shared by its
// three files, each one role:
//   redis_client.cpp      the public Client, parse_address, the entry points
//                         (the lock, posting, the command inbox, start, stop)
//                         and the deferred reactions
//   redis_connection.cpp  connecting, the handshake, backoff, losing and
//                         dropping a connection
//   redis_commands.cpp    issuing commands, their replies and deadlines
// Not for use outside store/redis_*.cpp; the interface is store/redis_client.h.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "store/cache/hiredis_asio.h"
#include "store/cache/redis_client.h"

namespace spdlog {
class logger;
}

namespace store::redis {

// All state below is guarded by `mutex`, which every entry point takes: Asio
// handlers (bound to `strand`), stop() and set_on_state_change(). hiredis is
// only ever called under it. Its C callbacks only record what happened
// (`deferred`); the reactions, including all user callbacks, run afterwards in
// run_deferred(), still under the lock but never inside hiredis. That is what
// makes it safe for a callback to issue commands or call stop().
struct Client::Impl : std::enable_shared_from_this<Impl> {
  using Clock = std::chrono::steady_clock;
  using Strand = boost::asio::strand<boost::asio::io_context::executor_type>;

  enum class State { idle, resolving, connecting, handshaking, up, waiting };

  struct Pending {
    std::uint64_t id = 0;
    Clock::time_point deadline;
    Callback done;  // empty once timed out: the late reply is dropped
    bool user = false;
  };

  struct Connection {
    Connection(Impl& owner, const Strand& strand, std::chrono::milliseconds backoff)
        : owner(owner),
          resolver(strand),
          handshake_timer(strand),
          deadline_timer(strand),
          retry_timer(strand),
          backoff(backoff) {}

    Impl& owner;
    redisAsyncContext* context = nullptr;
    State state = State::idle;
    std::uint64_t generation = 0;  // bumped per connection attempt and on loss
    std::deque<Pending> pending;   // in the order sent, which is the order answered
    std::uint64_t next_id = 1;
    std::uint32_t consecutive_timeouts = 0;
    std::string closing_reason;  // given to pending commands when we free the context
    boost::asio::ip::tcp::resolver resolver;
    boost::asio::steady_timer handshake_timer;
    boost::asio::steady_timer deadline_timer;
    std::optional<Clock::time_point> deadline_armed;
    boost::asio::steady_timer retry_timer;
    std::chrono::milliseconds backoff;
    bool ever_up = false;
    std::uint64_t failed_attempts = 0;
    Clock::time_point last_failure_log;
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

  Impl(boost::asio::io_context& io, Options options);
  ~Impl() = default;

  static std::shared_ptr<spdlog::logger> logger();  // the "cache" component's
  static Result failure(std::string error);

  // ---- redis_client_impl.h: the lock around every entry point.
  // Runs `body` under the lock if the client still exists, then the reactions.
  template <typename Body>
  static void enter(const std::weak_ptr<Impl>& weak, Body&& body) {
    const auto self = weak.lock();
    if (!self) return;
    std::lock_guard lock(self->mutex);
    body(*self);
    self->run_deferred();
  }

  // ---- redis_client.cpp: the entry points (posting, the command inbox, start, stop).
  HiredisAsio::Runner runner();
  void post(std::function<void(Impl&)> body);
  void submit(std::vector<std::string> argv, Callback done);
  void drain_inbox();
  void start();
  void stop();

  // ---- redis_client.cpp: the deferred reactions.
  void defer_event(std::function<void()> event);
  void run_deferred();

  // ---- redis_connection.cpp: connecting, the handshake, losing a connection, backoff.
  void connect(Connection& c);
  void open(Connection& c, const std::string& ip);
  static void on_connect(const redisAsyncContext* context, int status);
  static void on_disconnect(const redisAsyncContext* context, int status);
  // The context is gone (freed by hiredis or by us): react after hiredis returns.
  void connection_gone(Connection& c, std::string reason);
  void handshake(Connection& c);
  void became_up(Connection& c);
  void notify_state(bool up);
  // A connection attempt failed or an established connection was lost.
  void lost(Connection& c, const std::string& reason, bool was_up);
  std::chrono::milliseconds next_backoff(Connection& c);
  // Frees the context now: its pending commands fail with `reason`.
  void drop(Connection& c, const std::string& reason);

  // ---- redis_commands.cpp: issuing commands, their replies and deadlines.
  // Sends argv on c; on success takes `done` (else leaves it untouched).
  bool issue(Connection& c, const std::vector<std::string>& argv, Callback& done, bool user,
             std::chrono::milliseconds timeout);
  void issue_internal(Connection& c, const std::vector<std::string>& argv,
                      std::function<void(const Result&)> on_result);
  static void on_reply(redisAsyncContext* context, void* reply, void* privdata);
  void handle_reply(Connection& c, const redisReply* reply, std::uint64_t id);
  void arm_deadline(Connection& c, Clock::time_point deadline);
  void expire(Connection& c);
  void fail(Callback done, std::string error, bool count = true);

  Strand strand;
  const Options options;
  std::recursive_mutex mutex;
  bool started = false;
  bool stopping = false;
  Connection main;  // the one connection
  StateCallback on_state_change;
  std::vector<Deferred> deferred;
  std::minstd_rand random;

  std::mutex inbox_mutex;
  std::vector<Queued> inbox;
  bool drain_posted = false;
  bool inbox_closed = false;

  std::atomic<bool> connected{false};
  std::atomic<std::uint64_t> commands{0}, replies{0}, error_replies{0}, timeouts{0}, errors{0},
      connects{0}, reconnects{0}, in_flight{0};
};

}  // namespace store::redis
