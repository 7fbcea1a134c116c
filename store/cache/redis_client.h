// An asynchronous Redis client for the cache layer, driven by a Boost.Asio
// io_context (hiredis underneath, kept out of this header).
//
// Contract:
//  - command() never blocks. Its `done` runs exactly once, on a thread running
//    the client's io_context, with one of:
//      ok == true:  Redis answered; the answer may be an error reply
//                   (reply.kind == error, e.g. WRONGTYPE): that is not a transport
//                   failure.
//      ok == false: the command may or may not have been executed. `error` is
//                   "timeout" (no reply within Options::command_timeout; a late
//                   reply is dropped), "not connected" (nothing is queued while
//                   the connection is down), "connection lost", or "stopped".
//  - The client connects in the background and reconnects forever, with
//    exponential backoff and jitter, until stop(). A connection whose last
//    Options::max_consecutive_timeouts commands all timed out is presumed dead
//    (a paused or unreachable peer) and replaced.
//  - Callbacks (done, state changes) run on the io_context under the client's
//    internal lock, one at a time. They must not block; they may call any
//    method of the client, including stop(), but must not destroy it.
//
// Threading: every method may be called from any thread. stop() (and so the
// destructor) runs synchronously: when it returns, every pending `done` has been
// called with "stopped" (on the calling thread, for those still pending) and no
// callback of this client runs any more. The client must be destroyed before its
// io_context.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace store::redis {

struct Options {
  std::string host = "127.0.0.1";  // an IP address or a name (resolved asynchronously)
  std::uint16_t port = 6379;
  int db = 0;  // SELECTed on every connect when not 0
  std::chrono::milliseconds command_timeout{5};
  // Bounds the TCP connect plus the handshake (SELECT, PING).
  std::chrono::milliseconds connect_timeout{200};
  std::chrono::milliseconds min_backoff{50}, max_backoff{2000};
  // This many timeouts in a row, with no reply in between, drop the connection.
  std::uint32_t max_consecutive_timeouts = 8;
};

// Accepts "HOST:PORT", "[V6]:PORT", "redis://HOST:PORT", "redis://[V6]:PORT" and
// "redis://HOST:PORT/DB" (the port may be omitted after redis://: 6379). Other
// fields of the result keep their defaults. nullopt when malformed.
std::optional<Options> parse_address(std::string_view address);

// A decoded RESP2 reply: a plain value.
struct Reply {
  enum class Kind { status, error, integer, string, nil, array };
  Kind kind = Kind::nil;
  std::string text;  // status, error and string (binary-safe)
  std::int64_t integer = 0;
  std::vector<Reply> elements;  // array

  bool is_error() const { return kind == Kind::error; }
  bool is_nil() const { return kind == Kind::nil; }
};

struct Result {
  bool ok = false;    // false: transport failure, see `error`
  Reply reply;        // when ok
  std::string error;  // when !ok
};

class Client {
 public:
  using Callback = std::function<void(Result)>;
  using StateCallback = std::function<void(bool connected)>;

  struct Stats {
    std::uint64_t commands = 0;       // command() calls
    std::uint64_t replies = 0;        // replies delivered to callers (error replies included)
    std::uint64_t error_replies = 0;  // of which Redis error replies
    std::uint64_t timeouts = 0;       // commands failed with "timeout"
    std::uint64_t errors = 0;  // commands failed otherwise: not connected, connection lost, stopped
    std::uint64_t connects = 0;    // connection established (handshake done)
    std::uint64_t reconnects = 0;  // of which after an earlier connection
    std::uint64_t in_flight = 0;   // commands sent and not yet completed (a gauge)
  };

  Client(boost::asio::io_context& io, Options options);
  ~Client();  // stop()
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Starts connecting (asynchronously); idempotent. No effect after stop().
  void start();
  // Fails pending commands with "stopped", cancels timers, disconnects. Final and
  // idempotent.
  void stop();

  // True while the connection is up (handshake done). Thread-safe.
  bool connected() const;

  // Sends argv (binary-safe) as one command. Commands issued together are
  // pipelined; each has its own deadline. See the contract above.
  void command(std::vector<std::string> argv, Callback done);

  // Called on the io_context whenever the connection comes up (after the
  // handshake) or goes down. Not called by stop(). Set it before start().
  void set_on_state_change(StateCallback callback);

  Stats stats() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace store::redis
