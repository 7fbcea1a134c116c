// Wakes a daemon when any daemon commits a change: one dedicated connection
// that LISTENs on "discoveryd_changes", to which PostgresStore sends the last
// sequence number of every committed batch that changed something (pg_notify,
// delivered at commit, in commit order). Notifications are not stored: one
// sent while this connection is down is lost, so on_connected fires after
// every (re)connect once LISTEN is active, and the caller rereads the change
// feed from its last applied sequence then (and best on a slow timer too: a
// server that hangs without closing the socket goes unnoticed until TCP
// keepalives give up).
//
// Fully asynchronous on the given io_context (non-blocking libpq driven by
// Asio watching PQsocket()): it never blocks the io_context's thread.
// Reconnects with backoff, 100 ms doubling up to 2 s.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace boost::asio {
class io_context;
}

namespace store {

class ChangeNotifications {
 public:
  static constexpr const char* kChannel = "discoveryd_changes";
  using OnNotify = std::function<void(std::uint64_t seq)>;
  using OnConnected = std::function<void()>;

  // `url` as in PostgresOptions::url. The callbacks run on the io_context's thread.
  ChangeNotifications(boost::asio::io_context& io, std::string url, OnNotify on_notify,
                      OnConnected on_connected);
  ~ChangeNotifications();  // stop()
  ChangeNotifications(const ChangeNotifications&) = delete;
  ChangeNotifications& operator=(const ChangeNotifications&) = delete;

  // Starts connecting (on the io_context). Thread-safe.
  void start();
  // Closes the connection; no callback starts after it returns. Thread-safe; the
  // connection is closed on the io_context's thread (at once when called there).
  void stop();
  // True while LISTEN is active. Thread-safe.
  bool connected() const;

 private:
  class Impl;
  // Shared with the handlers waiting on the io_context, which outlive a stop().
  std::shared_ptr<Impl> impl_;
  boost::asio::io_context* io_;
};

}  // namespace store
