// The Server and its UDP side. UDP reads and writes batches of datagrams with
// recvmmsg/sendmmsg on the socket's native handle: one system call per batch
// instead of two per query is most of a DNS server's per-query CPU.
#include "dns/server.h"

#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <vector>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/post.hpp>

#include "dns/deferred_answer.h"
#include "dns/rate_limiter.h"
#include "dns/server_context.h"
#include "dns/tcp_listener.h"

namespace dns {

namespace asio = boost::asio;
using asio::ip::udp;
using boost::system::error_code;

namespace {

// Datagrams per recvmmsg call, and calls per wakeup before yielding to TCP work.
constexpr std::size_t kBatchSize = 32;
constexpr int kBatchesPerWakeup = 8;
// Queries are small; a larger datagram is cut and answered FORMERR (or dropped).
constexpr std::size_t kMaxQuerySize = 4096;
constexpr int kReceiveBufferBytes = 4 * 1024 * 1024;  // absorbs bursts; capped by rmem_max
constexpr int kPortAttempts = 16;

bool would_block(int error) {
  return error == EAGAIN || error == EWOULDBLOCK;
}

// recvmmsg fills only IPv4 and IPv6 peers; anything else counts as 0.0.0.0.
store::IpAddress to_ip_address(const sockaddr_storage& peer) {
  return store::IpAddress::from_sockaddr(reinterpret_cast<const sockaddr&>(peer))
      .value_or(store::IpAddress{});
}

Endpoint to_endpoint(const asio::ip::address& address, std::uint16_t port) {
  return {address.to_string(), port};
}

}  // namespace

std::string Endpoint::to_string() const {
  const bool v6 = address.find(':') != std::string::npos;
  return (v6 ? "[" + address + "]" : address) + ":" + std::to_string(port);
}

class UdpListener : public std::enable_shared_from_this<UdpListener> {
 public:
  UdpListener(asio::io_context& io, std::shared_ptr<ServerContext> context)
      : context_(std::move(context)),
        socket_(io),
        response_size_(context_->processor.buffer_size(Transport::udp)),
        queries_(kBatchSize * kMaxQuerySize),
        responses_(kBatchSize * response_size_),
        deferred_response_(response_size_) {
    // Off (null) costs the query path one branch per datagram.
    if (RateLimiter::enabled(context_->options.rate_limit)) {
      limiter_ = std::make_unique<RateLimiter>(context_->options.rate_limit);
    }
  }

  void bind(const udp::endpoint& endpoint, error_code& error) {
    socket_.open(endpoint.protocol(), error);
    if (!error) socket_.bind(endpoint, error);
    if (!error) socket_.non_blocking(true, error);
    if (error) {
      close();
      return;
    }
    error_code ignored;  // best effort: the kernel may cap it
    socket_.set_option(asio::socket_base::receive_buffer_size(kReceiveBufferBytes), ignored);
  }

  udp::endpoint local_endpoint() const {
    error_code ignored;
    return socket_.local_endpoint(ignored);
  }

  void start() { wait_readable(); }

  void close() {
    error_code ignored;
    socket_.close(ignored);
  }

 private:
  void wait_readable() {
    socket_.async_wait(udp::socket::wait_read,
                       [self = shared_from_this()](const error_code& error) {
                         if (error) return;  // closed
                         self->drain();
                       });
  }

  // Answers datagrams until the socket is empty. Asio's reactor is edge-triggered,
  // so waiting again before reading EAGAIN could miss queued datagrams; after
  // kBatchesPerWakeup batches the rest is drained in a posted handler instead.
  void drain() {
    for (int batch = 0; batch < kBatchesPerWakeup; ++batch) {
      const int received = receive_batch();
      if (received < 0) {
        wait_readable();
        return;
      }
      answer_batch(static_cast<std::size_t>(received));
    }
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
      if (self->socket_.is_open()) self->drain();
    });
  }

  // Returns the number of datagrams, or -1 when none are waiting (or on error).
  int receive_batch() {
    for (std::size_t i = 0; i < kBatchSize; ++i) {
      receive_iov_[i] = {&queries_[i * kMaxQuerySize], kMaxQuerySize};
      msghdr& header = receive_[i].msg_hdr;
      header = {};
      header.msg_name = &peers_[i];
      header.msg_namelen = sizeof(peers_[i]);
      header.msg_iov = &receive_iov_[i];
      header.msg_iovlen = 1;
    }
    while (true) {
      const int received =
          recvmmsg(socket_.native_handle(), receive_.data(), kBatchSize, MSG_DONTWAIT, nullptr);
      if (received > 0) return received;
      if (received < 0 && errno == EINTR) continue;
      if (received < 0 && !would_block(errno)) {
        context_->log->warn("dns udp receive failed: {}", std::strerror(errno));
      }
      return -1;
    }
  }

  void answer_batch(std::size_t received) {
    // One clock reading per batch: the datagrams of a batch arrived together.
    const auto now = limiter_ ? RateLimiter::Clock::now() : RateLimiter::Clock::time_point{};
    std::size_t replies = 0;
    for (std::size_t i = 0; i < received; ++i) {
      Stats::bump(context_->stats.udp_queries);
      const std::span<const std::uint8_t> query(&queries_[i * kMaxQuerySize], receive_[i].msg_len);
      const std::span<std::uint8_t> response(&responses_[i * response_size_], response_size_);
      // Limited before processing, so that a flood costs little CPU as well.
      if (limiter_ && !within_rate_limit(i, query, response, now, replies)) continue;
      Outcome outcome = context_->processor.process(query, Transport::udp, response);
      switch (outcome.kind) {
        case Outcome::Kind::respond: {
          context_->stats.count_response(outcome.rcode, outcome.truncated);
          queue_reply(i, response.first(outcome.size), replies);
          break;
        }
        case Outcome::Kind::drop:
          Stats::bump(context_->stats.dropped);
          break;
        case Outcome::Kind::needs_lookup:
          answer_later(i, std::move(outcome.pending));
          break;
        case Outcome::Kind::transfer:
          answer_transfer(i, query, response, replies);
          break;
      }
    }
    send_batch(replies);
  }

  // IXFR over UDP (the SOA-only reply) or AXFR (refused): xfr/ decides.
  void answer_transfer(std::size_t slot, std::span<const std::uint8_t> query,
                       std::span<std::uint8_t> response, std::size_t& replies) {
    const std::size_t size = context_->transfers ? context_->transfers->answer_udp(
                                                       query, to_ip_address(peers_[slot]), response)
                                                 : 0;
    if (size == 0) {
      Stats::bump(context_->stats.dropped);
      return;
    }
    context_->stats.count_response(response[3] & 0x0F, false);
    queue_reply(slot, response.first(size), replies);
  }

  // Adds the reply to send_[replies] for the datagram in slot `slot`.
  void queue_reply(std::size_t slot, std::span<std::uint8_t> reply, std::size_t& replies) {
    send_iov_[replies] = {reply.data(), reply.size()};
    msghdr& header = send_[replies].msg_hdr;
    header = {};
    header.msg_name = &peers_[slot];
    header.msg_namelen = receive_[slot].msg_hdr.msg_namelen;
    header.msg_iov = &send_iov_[replies];
    header.msg_iovlen = 1;
    ++replies;
  }

  // False when the client is over its rate limit: the query then got a slip reply
  // (queued like any reply) or nothing.
  bool within_rate_limit(std::size_t slot, std::span<const std::uint8_t> query,
                         std::span<std::uint8_t> response, RateLimiter::Clock::time_point now,
                         std::size_t& replies) {
    const RateLimiter::Verdict verdict = limiter_->check(to_ip_address(peers_[slot]), now);
    if (verdict == RateLimiter::Verdict::respond) return true;
    const std::size_t size =
        verdict == RateLimiter::Verdict::slip ? encode_slip_response(query, response) : 0;
    if (size == 0) {
      Stats::bump(context_->stats.rate_limited_dropped);
      return false;
    }
    Stats::bump(context_->stats.rate_limited_slipped);
    queue_reply(slot, response.first(size), replies);
    return false;
  }

  void send_batch(std::size_t replies) {
    std::size_t sent = 0;
    while (sent < replies) {
      const int result = sendmmsg(socket_.native_handle(), &send_[sent],
                                  static_cast<unsigned>(replies - sent), MSG_DONTWAIT);
      if (result > 0) {
        sent += static_cast<std::size_t>(result);
        continue;
      }
      if (errno == EINTR) continue;
      if (would_block(errno)) {
        // The socket buffer is full: UDP may drop, and clients retry.
        context_->stats.dropped.fetch_add(replies - sent, std::memory_order_relaxed);
        return;
      }
      // This destination failed (e.g. unreachable); skip it, keep the others.
      Stats::bump(context_->stats.dropped);
      ++sent;
    }
  }

  // The slow path (dns/deferred_answer.h): the parsed query waits for its
  // service; the answer goes to the peer of slot `slot` once it is fetched.
  void answer_later(std::size_t slot, std::shared_ptr<const PendingQuery> pending) {
    fetch_then_answer(*context_, Transport::udp, std::move(pending), socket_.get_executor(),
                      deferred_response_,
                      [self = shared_from_this(), peer = peers_[slot],
                       peer_length = receive_[slot].msg_hdr.msg_namelen](const Outcome& outcome) {
                        self->send_deferred(outcome, peer, peer_length);
                      });
  }

  void send_deferred(const Outcome& outcome, const sockaddr_storage& peer, socklen_t peer_length) {
    if (!socket_.is_open()) return;
    if (outcome.kind != Outcome::Kind::respond) {
      Stats::bump(context_->stats.dropped);
      return;
    }
    context_->stats.count_response(outcome.rcode, outcome.truncated);
    const ssize_t sent =
        sendto(socket_.native_handle(), deferred_response_.data(), outcome.size, MSG_DONTWAIT,
               reinterpret_cast<const sockaddr*>(&peer), peer_length);
    if (sent < 0) Stats::bump(context_->stats.dropped);
  }

  std::shared_ptr<ServerContext> context_;
  udp::socket socket_;
  std::size_t response_size_;
  std::vector<std::uint8_t> queries_;    // kBatchSize slots of kMaxQuerySize
  std::vector<std::uint8_t> responses_;  // kBatchSize slots of response_size_
  std::vector<std::uint8_t> deferred_response_;
  std::array<mmsghdr, kBatchSize> receive_{};
  std::array<mmsghdr, kBatchSize> send_{};
  std::array<iovec, kBatchSize> receive_iov_{};
  std::array<iovec, kBatchSize> send_iov_{};
  std::array<sockaddr_storage, kBatchSize> peers_{};
  std::unique_ptr<RateLimiter> limiter_;  // null: rate limiting is off
};

struct Server::Impl {
  Impl(asio::io_context& io, Options options, std::shared_ptr<const Zone> zone,
       store::ServiceLookup& lookup)
      : io(io),
        context(std::make_shared<ServerContext>(std::move(options), std::move(zone), lookup)) {}

  asio::io_context& io;
  std::shared_ptr<ServerContext> context;
  std::shared_ptr<UdpListener> udp;
  std::shared_ptr<TcpListener> tcp;
  // Kept from start() so that they stay readable after stop().
  Endpoint udp_endpoint;
  Endpoint tcp_endpoint;
};

Server::Server(asio::io_context& io, Options options, std::shared_ptr<const Zone> zone,
               store::ServiceLookup& lookup)
    : impl_(std::make_shared<Impl>(io, std::move(options), std::move(zone), lookup)) {}

Server::~Server() {
  stop();
}

void Server::set_transfer_handler(std::shared_ptr<TransferHandler> handler) {
  impl_->context->transfers = std::move(handler);
}

void Server::start() {
  if (impl_->udp) throw std::logic_error("dns server already started");
  const Options& options = impl_->context->options;
  error_code error;
  const asio::ip::address address = asio::ip::make_address(options.listen_address, error);
  if (error) throw std::system_error(error, "dns listen address '" + options.listen_address + "'");

  for (int attempt = 0; attempt < kPortAttempts; ++attempt) {
    auto udp_listener = std::make_shared<UdpListener>(impl_->io, impl_->context);
    udp_listener->bind({address, options.listen_port}, error);
    if (error)
      throw std::system_error(
          error,
          "dns udp bind " + Endpoint{options.listen_address, options.listen_port}.to_string());
    const std::uint16_t port = udp_listener->local_endpoint().port();

    auto tcp_listener = std::make_shared<TcpListener>(impl_->io, impl_->context);
    tcp_listener->bind({address, port}, error);
    if (error) {
      udp_listener->close();
      // With port 0 the kernel chose a UDP port whose TCP twin may be taken: retry.
      if (options.listen_port == 0 && error == asio::error::address_in_use) continue;
      throw std::system_error(error,
                              "dns tcp bind " + Endpoint{options.listen_address, port}.to_string());
    }
    impl_->udp_endpoint = to_endpoint(address, port);
    impl_->tcp_endpoint = to_endpoint(address, tcp_listener->local_endpoint().port());
    impl_->udp = std::move(udp_listener);
    impl_->tcp = std::move(tcp_listener);
    impl_->udp->start();
    impl_->tcp->start();
    impl_->context->log->info("dns listening on {} (udp, tcp)", udp_endpoint().to_string());
    return;
  }
  throw std::system_error(error, "dns bind: no port free for both UDP and TCP");
}

void Server::stop() {
  asio::dispatch(impl_->io, [impl = impl_] {
    if (impl->udp) impl->udp->close();
    if (impl->tcp) impl->tcp->stop();
  });
}

Endpoint Server::udp_endpoint() const {
  return impl_->udp_endpoint;
}

Endpoint Server::tcp_endpoint() const {
  return impl_->tcp_endpoint;
}

const Stats& Server::stats() const {
  return impl_->context->stats;
}

}  // namespace dns
