#include "store/postgres/change_notifications.h"

#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <chrono>
#include <string_view>

#include "store/postgres/pg_connection.h"

namespace store {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

constexpr std::chrono::milliseconds kFirstBackoff = 100ms;
constexpr std::chrono::milliseconds kMaxBackoff = 2s;
// PQconnectPoll has no timeout of its own (connect_timeout is for the blocking
// calls): the timer bounds a connection attempt.
constexpr std::chrono::milliseconds kConnectTimeout = 3s;
constexpr std::chrono::milliseconds kTcpUserTimeout = 5s;

}  // namespace

class ChangeNotifications::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(asio::io_context& io, std::string url, OnNotify on_notify, OnConnected on_connected)
      : url_(std::move(url)),
        on_notify_(std::move(on_notify)),
        on_connected_(std::move(on_connected)),
        socket_(io),
        timer_(io) {}
  ~Impl() { close(); }

  void start() {
    stopped_ = false;
    if (!conn_) connect();
  }
  void stop() {
    stopped_ = true;
    close();
  }
  std::atomic<bool> stopped_{true};
  std::atomic<bool> connected_{false};

 private:
  using Step = void (Impl::*)();

  void connect();
  void connect_step(PostgresPollingStatusType status);
  void poll_connect() { connect_step(PQconnectPoll(conn_)); }
  void send_listen();
  void flush();
  void on_readable();
  bool read_results();
  void deliver_notifications();
  void wait_socket(bool for_write, Step next, bool reregister);
  void drop();
  void close();
  void schedule_reconnect();

  const std::string url_;
  const OnNotify on_notify_;
  const OnConnected on_connected_;
  PGconn* conn_ = nullptr;
  asio::posix::stream_descriptor socket_;
  asio::steady_timer timer_;  // the connect timeout, then the reconnect backoff
  std::chrono::milliseconds backoff_ = kFirstBackoff;
  // Moves on every close: a handler of an older connection finds it changed and
  // does nothing (its socket may even be a new one with the same number).
  std::uint64_t generation_ = 0;
  bool listen_pending_ = false;
};

void ChangeNotifications::Impl::connect() {
  close();
  const auto params = postgres::connect_params(url_, kConnectTimeout, kTcpUserTimeout, 0ms);
  const auto keywords = params.keyword_pointers();
  const auto values = params.value_pointers();
  conn_ = PQconnectStartParams(keywords.data(), values.data(), /*expand_dbname=*/1);
  if (!conn_ || PQstatus(conn_) == CONNECTION_BAD) return drop();
  const auto generation = generation_;
  timer_.expires_after(kConnectTimeout);
  timer_.async_wait([self = shared_from_this(), generation](const boost::system::error_code& ec) {
    if (ec || self->stopped_ || generation != self->generation_) return;
    if (!self->connected_) self->drop();  // still not listening: try again
  });
  // libpq: right after PQconnectStart, behave as if PQconnectPoll asked to write.
  connect_step(PGRES_POLLING_WRITING);
}

void ChangeNotifications::Impl::connect_step(PostgresPollingStatusType status) {
  switch (status) {
    case PGRES_POLLING_OK:
      return send_listen();
    case PGRES_POLLING_FAILED:
      return drop();
    case PGRES_POLLING_READING:
      // The socket may change while connecting (another address, SSL refused):
      // register the current one afresh at every step.
      return wait_socket(false, &Impl::poll_connect, true);
    default:
      return wait_socket(true, &Impl::poll_connect, true);
  }
}

void ChangeNotifications::Impl::send_listen() {
  if (PQsetnonblocking(conn_, 1) != 0) return drop();
  const std::string listen = std::string("LISTEN ") + kChannel;
  if (!PQsendQuery(conn_, listen.c_str())) return drop();
  listen_pending_ = true;
  flush();
}

void ChangeNotifications::Impl::flush() {
  const int flushed = PQflush(conn_);
  if (flushed < 0) return drop();
  if (flushed == 1) return wait_socket(true, &Impl::flush, false);
  wait_socket(false, &Impl::on_readable, false);
}

void ChangeNotifications::Impl::on_readable() {
  if (!PQconsumeInput(conn_)) return drop();
  const auto generation = generation_;
  if (!read_results()) return drop();
  if (stopped_ || generation != generation_) return;
  deliver_notifications();
  // A callback may have stopped us, or the server said goodbye (a terminated
  // backend sends its FATAL error, then closes).
  if (stopped_ || generation != generation_) return;
  if (PQstatus(conn_) != CONNECTION_OK) return drop();
  wait_socket(false, &Impl::on_readable, false);
}

// Takes the results that arrived (LISTEN's, or an error); false when the
// connection is no longer usable.
bool ChangeNotifications::Impl::read_results() {
  const auto generation = generation_;
  while (generation == generation_ && !PQisBusy(conn_)) {
    PGresult* result = PQgetResult(conn_);
    if (!result) break;
    const auto status = PQresultStatus(result);
    PQclear(result);
    if (status == PGRES_FATAL_ERROR || status == PGRES_BAD_RESPONSE) return false;
    if (listen_pending_ && status == PGRES_COMMAND_OK) {
      listen_pending_ = false;
      connected_ = true;
      backoff_ = kFirstBackoff;
      timer_.cancel();  // the connect timeout
      // Anything committed while we were away was not notified: the caller
      // rereads the feed now.
      if (on_connected_ && !stopped_) on_connected_();
    }
  }
  return true;
}

void ChangeNotifications::Impl::deliver_notifications() {
  const auto generation = generation_;
  while (PGnotify* notify = PQnotifies(conn_)) {
    const std::string_view payload = notify->extra ? notify->extra : "";
    std::uint64_t seq = 0;
    const auto [end, error] = std::from_chars(payload.data(), payload.data() + payload.size(), seq);
    const bool valid = error == std::errc() && end == payload.data() + payload.size();
    PQfreemem(notify);
    // Someone else's NOTIFY on our channel without a sequence: ignored.
    if (valid && on_notify_ && !stopped_) on_notify_(seq);
    if (stopped_ || generation != generation_) return;
  }
}

void ChangeNotifications::Impl::wait_socket(bool for_write, Step next, bool reregister) {
  const int fd = PQsocket(conn_);
  if (fd < 0) return drop();
  if (reregister || !socket_.is_open()) {
    boost::system::error_code ignored;
    if (socket_.is_open()) socket_.release();
    socket_.assign(fd, ignored);
    if (ignored) return drop();
  }
  const auto generation = generation_;
  socket_.async_wait(
      for_write ? asio::posix::stream_descriptor::wait_write
                : asio::posix::stream_descriptor::wait_read,
      [self = shared_from_this(), generation, next](const boost::system::error_code& ec) {
        if (self->stopped_ || generation != self->generation_) return;
        if (ec) return self->drop();
        (self.get()->*next)();
      });
}

void ChangeNotifications::Impl::drop() {
  close();
  if (!stopped_) schedule_reconnect();
}

void ChangeNotifications::Impl::close() {
  ++generation_;
  connected_ = false;
  listen_pending_ = false;
  // libpq owns the descriptor: release it (cancelling our waits) before PQfinish
  // closes it, so Asio never closes or watches a number libpq reuses.
  if (socket_.is_open()) socket_.release();
  if (conn_) PQfinish(conn_);
  conn_ = nullptr;
  timer_.cancel();
}

void ChangeNotifications::Impl::schedule_reconnect() {
  const auto generation = generation_;
  timer_.expires_after(backoff_);
  backoff_ = std::min(backoff_ * 2, kMaxBackoff);
  timer_.async_wait([self = shared_from_this(), generation](const boost::system::error_code& ec) {
    if (ec || self->stopped_ || generation != self->generation_) return;
    self->connect();
  });
}

ChangeNotifications::ChangeNotifications(asio::io_context& io, std::string url, OnNotify on_notify,
                                         OnConnected on_connected)
    : impl_(std::make_shared<Impl>(io, std::move(url), std::move(on_notify),
                                   std::move(on_connected))),
      io_(&io) {}

ChangeNotifications::~ChangeNotifications() {
  stop();
}

void ChangeNotifications::start() {
  asio::post(*io_, [impl = impl_] { impl->start(); });
}

void ChangeNotifications::stop() {
  // Set at once so that no callback starts from now on, whichever thread runs
  // the io_context; the connection itself is closed on that thread.
  impl_->stopped_ = true;
  // A stopped io_context runs no handler: close here rather than never.
  if (io_->get_executor().running_in_this_thread() || io_->stopped()) {
    impl_->stop();
  } else {
    asio::post(*io_, [impl = impl_] { impl->stop(); });
  }
}

bool ChangeNotifications::connected() const {
  return impl_->connected_;
}

}  // namespace store
