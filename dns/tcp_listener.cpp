#include "dns/tcp_listener.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include "dns/deferred_answer.h"
#include "dns/wire.h"

namespace dns {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr std::size_t kFramePrefix = 2;
constexpr std::size_t kMaxFrame = kFramePrefix + kMaxMessageSize;
constexpr std::size_t kInitialInputSize = 4096;
// Stop answering (and reading) while this much output waits for a slow reader.
constexpr std::size_t kMaxQueuedOutput = 256 * 1024;
constexpr auto kAcceptRetryDelay = std::chrono::milliseconds(100);

}  // namespace

// One client connection. Reads frames, answers them in order (pausing while a
// service is fetched), writes the answers back; closes when idle, on error,
// after the client closed its side and every answer has been written, or after
// a frame that is not a DNS message (once its FORMERR, if any, is written).
class TcpSession : public std::enable_shared_from_this<TcpSession> {
 public:
  TcpSession(tcp::socket socket, std::shared_ptr<TcpListener> listener,
             TcpListener::ClientKey client)
      : socket_(std::move(socket)),
        idle_timer_(socket_.get_executor()),
        listener_(std::move(listener)),
        context_(*listener_->context_),
        client_(client),
        input_(kInitialInputSize) {
    listener_->sessions_.insert(this);
    ++listener_->sessions_per_client_[client_];
    context_.stats.tcp_connections_open.fetch_add(1, std::memory_order_relaxed);
  }

  ~TcpSession() {
    listener_->sessions_.erase(this);
    const auto count = listener_->sessions_per_client_.find(client_);
    if (--count->second == 0) listener_->sessions_per_client_.erase(count);
    context_.stats.tcp_connections_open.fetch_sub(1, std::memory_order_relaxed);
  }

  void start() {
    touch();
    wait_idle();
    read();
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    idle_timer_.cancel();
  }

 private:
  using Clock = std::chrono::steady_clock;

  void touch() { deadline_ = Clock::now() + context_.options.tcp_idle_timeout; }

  void wait_idle() {
    idle_timer_.expires_at(deadline_);
    idle_timer_.async_wait([self = shared_from_this()](const error_code& error) {
      if (error || self->closed_) return;
      // A query waiting for the store is not idleness (RFC 7766 section 6.2.3).
      if (Clock::now() >= self->deadline_ && !self->awaiting_lookup_) {
        Stats::bump(self->context_.stats.tcp_connections_idle_closed);
        self->close();
        return;
      }
      if (self->awaiting_lookup_) self->touch();
      self->wait_idle();
    });
  }

  bool output_full() const { return queued_output_.size() >= kMaxQueuedOutput; }

  void read() {
    if (reading_ || closed_ || peer_closed_ || malformed_ || awaiting_lookup_ || output_full()) {
      return;
    }
    if (input_size_ == input_.size()) {
      // Everything buffered is one partial frame; a frame never exceeds kMaxFrame.
      if (input_.size() >= kMaxFrame) return;
      input_.resize(std::min(input_.size() * 2, kMaxFrame));
    }
    reading_ = true;
    socket_.async_read_some(
        asio::buffer(input_.data() + input_size_, input_.size() - input_size_),
        [self = shared_from_this()](const error_code& error, std::size_t bytes) {
          self->on_read(error, bytes);
        });
  }

  void on_read(const error_code& error, std::size_t bytes) {
    reading_ = false;
    if (closed_) return;
    if (error) {
      if (error != asio::error::eof) {
        close();
        return;
      }
      peer_closed_ = true;  // answer what was received, then close
    }
    input_size_ += bytes;
    if (bytes > 0) touch();
    answer_buffered_queries();
    flush();
    close_if_done();
    read();
  }

  // Answers complete frames in order until one needs a fetch or output is full.
  void answer_buffered_queries() {
    std::size_t offset = 0;
    while (!closed_ && !malformed_ && !awaiting_lookup_ && !stream_ && !output_full() &&
           input_size_ - offset >= kFramePrefix) {
      const std::size_t length = load_u16(&input_[offset]);
      if (input_size_ - offset - kFramePrefix < length) break;
      const std::span<const std::uint8_t> query(&input_[offset + kFramePrefix], length);
      Stats::bump(context_.stats.tcp_queries);
      Outcome outcome = context_.processor.process(query, Transport::tcp, response_buffer());
      if (outcome.kind == Outcome::Kind::transfer) {
        // The queries after it wait until the whole transfer is queued.
        offset += kFramePrefix + length;
        start_transfer(query);
        continue;
      }
      if (outcome.kind == Outcome::Kind::needs_lookup) {
        // The frame stays buffered (at the front after compaction) until its
        // answer is queued, so that answers leave in the order of the queries.
        answer_later(std::move(outcome.pending));
        break;
      }
      queue_response(outcome);
      offset += kFramePrefix + length;
      if (outcome.malformed) {
        // A client that sends what is not DNS gains nothing from the connection,
        // and what follows may not even be framed: answer what it sent before,
        // then its FORMERR (when it had a header), then close, as Knot and NSD
        // do, instead of holding the slot until the idle timeout.
        malformed_ = true;
        offset = input_size_;
      }
    }
    // Keep the unanswered bytes at the front of the buffer.
    std::memmove(input_.data(), input_.data() + offset, input_size_ - offset);
    input_size_ -= offset;
  }

  // The slow path (dns/deferred_answer.h); the parsed query is the frame at the
  // front of the input.
  void answer_later(std::shared_ptr<const PendingQuery> pending) {
    awaiting_lookup_ = true;
    fetch_then_answer(
        context_, Transport::tcp, std::move(pending), socket_.get_executor(), response_buffer(),
        [self = shared_from_this()](const Outcome& outcome) { self->on_answered_later(outcome); });
  }

  void on_answered_later(const Outcome& outcome) {
    awaiting_lookup_ = false;
    if (closed_) return;
    queue_response(outcome);
    const std::size_t frame = kFramePrefix + load_u16(&input_[0]);
    std::memmove(input_.data(), input_.data() + frame, input_size_ - frame);
    input_size_ -= frame;
    answer_buffered_queries();
    flush();
    close_if_done();
    read();
  }

  void queue_response(const Outcome& outcome) {
    if (outcome.kind != Outcome::Kind::respond) {
      Stats::bump(context_.stats.dropped);
      return;
    }
    context_.stats.count_response(outcome.rcode, outcome.truncated);
    queue_frame(outcome.size);
  }

  // The first `size` bytes of the response buffer, framed, at the end of the output.
  void queue_frame(std::size_t size) {
    const std::size_t at = queued_output_.size();
    queued_output_.resize(at + kFramePrefix + size);
    store_u16(&queued_output_[at], static_cast<std::uint16_t>(size));
    std::memcpy(&queued_output_[at + kFramePrefix], response_buffer().data(), size);
  }

  // A zone transfer (dns/transfer.h): its messages are produced only as the
  // output drains, so a large zone never sits in memory twice and a slow
  // secondary paces its own transfer.
  void start_transfer(std::span<const std::uint8_t> query) {
    if (!context_.transfers) return;
    error_code error;
    const auto peer = socket_.remote_endpoint(error);
    if (error) return;
    const auto client = store::IpAddress::parse(peer.address().to_string());
    if (!client) return;
    stream_ = context_.transfers->transfer(query, *client);
    pump_transfer();
  }

  void pump_transfer() {
    while (stream_ && !closed_ && !output_full()) {
      const std::size_t size = stream_->next(response_buffer());
      if (size == 0) {
        stream_.reset();
        break;
      }
      context_.stats.count_response(stream_->rcode(), false);
      queue_frame(size);
    }
  }

  void flush() {
    if (writing_ || closed_ || queued_output_.empty()) return;
    writing_ = true;
    writing_output_.swap(queued_output_);
    asio::async_write(socket_, asio::buffer(writing_output_),
                      [self = shared_from_this()](const error_code& error, std::size_t) {
                        self->on_written(error);
                      });
  }

  void on_written(const error_code& error) {
    writing_ = false;
    writing_output_.clear();
    if (closed_) return;
    if (error) {
      close();
      return;
    }
    touch();
    pump_transfer();
    answer_buffered_queries();  // may have paused on a full output queue
    flush();
    close_if_done();
    read();
  }

  void close_if_done() {
    const bool done = (peer_closed_ || malformed_) && !awaiting_lookup_ && !stream_ && !writing_ &&
                      queued_output_.empty();
    if (done) close();
  }

  std::span<std::uint8_t> response_buffer() { return listener_->response_buffer(); }

  tcp::socket socket_;
  asio::steady_timer idle_timer_;
  std::shared_ptr<TcpListener> listener_;
  ServerContext& context_;  // kept alive by listener_
  TcpListener::ClientKey client_;
  Clock::time_point deadline_;
  std::vector<std::uint8_t> input_;
  std::size_t input_size_ = 0;
  std::vector<std::uint8_t> queued_output_;
  std::vector<std::uint8_t> writing_output_;
  bool reading_ = false;
  bool writing_ = false;
  bool awaiting_lookup_ = false;
  std::unique_ptr<MessageStream> stream_;  // a zone transfer being written
  bool peer_closed_ = false;
  bool malformed_ = false;  // a frame was not DNS: nothing more is read
  bool closed_ = false;
};

TcpListener::TcpListener(asio::io_context& io, std::shared_ptr<ServerContext> context)
    : context_(std::move(context)),
      acceptor_(io),
      accept_retry_timer_(io),
      response_buffer_(context_->processor.buffer_size(Transport::tcp)) {}

void TcpListener::bind(const tcp::endpoint& endpoint, error_code& error) {
  acceptor_.open(endpoint.protocol(), error);
  if (error) return;
  // Lets a restarted daemon bind while old connections sit in TIME_WAIT.
  acceptor_.set_option(tcp::acceptor::reuse_address(true), error);
  if (!error) acceptor_.bind(endpoint, error);
  if (!error) acceptor_.listen(asio::socket_base::max_listen_connections, error);
  if (error) {
    error_code ignored;
    acceptor_.close(ignored);
  }
}

tcp::endpoint TcpListener::local_endpoint() const {
  error_code ignored;
  return acceptor_.local_endpoint(ignored);
}

void TcpListener::start() {
  accept();
}

void TcpListener::stop() {
  stopped_ = true;
  error_code ignored;
  acceptor_.close(ignored);
  accept_retry_timer_.cancel();
  // close() does not erase from sessions_ (destructors do, later), but copy anyway.
  const std::vector<TcpSession*> open(sessions_.begin(), sessions_.end());
  for (TcpSession* session : open) session->close();
}

void TcpListener::accept() {
  if (stopped_) return;
  acceptor_.async_accept([self = shared_from_this()](const error_code& error, tcp::socket socket) {
    self->on_accept(error, std::move(socket));
  });
}

void TcpListener::on_accept(const error_code& error, tcp::socket socket) {
  if (stopped_ || error == asio::error::operation_aborted) return;
  if (error) {
    // Typically EMFILE: retry later instead of spinning on a failing accept.
    context_->log->warn("dns tcp accept failed: {}", error.message());
    accept_retry_timer_.expires_after(kAcceptRetryDelay);
    accept_retry_timer_.async_wait([self = shared_from_this()](const error_code& wait_error) {
      if (!wait_error) self->accept();
    });
    return;
  }
  error_code peer_error;
  const tcp::endpoint peer = socket.remote_endpoint(peer_error);
  const ClientKey client = client_key(peer.address());
  const std::size_t per_client_cap = context_->options.max_tcp_connections_per_client;
  error_code ignored;
  if (peer_error) {
    socket.close(ignored);  // already reset by the client
  } else if (sessions_.size() >= context_->options.max_tcp_connections) {
    Stats::bump(context_->stats.tcp_connections_rejected);
    socket.close(ignored);
  } else if (const auto open = sessions_per_client_.find(client);
             per_client_cap != 0 && open != sessions_per_client_.end() &&
             open->second >= per_client_cap) {
    Stats::bump(context_->stats.tcp_refused_per_client);
    socket.close(ignored);
  } else {
    Stats::bump(context_->stats.tcp_connections_accepted);
    std::make_shared<TcpSession>(std::move(socket), shared_from_this(), client)->start();
  }
  accept();
}

TcpListener::ClientKey TcpListener::client_key(const asio::ip::address& address) {
  if (address.is_v4()) {
    return asio::ip::make_address_v6(asio::ip::v4_mapped, address.to_v4()).to_bytes();
  }
  return address.to_v6().to_bytes();
}

}  // namespace dns
