// DNS over TCP (RFC 7766), internal to dns/: 2-byte length framing, pipelined
// queries answered in order, an idle timeout, and caps on open connections: in
// all, and per client address.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <unordered_set>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "dns/server_context.h"

namespace dns {

class TcpSession;

class TcpListener : public std::enable_shared_from_this<TcpListener> {
 public:
  TcpListener(boost::asio::io_context& io, std::shared_ptr<ServerContext> context);

  // Opens, binds and listens; failures go to `error`.
  void bind(const boost::asio::ip::tcp::endpoint& endpoint, boost::system::error_code& error);
  void start();
  void stop();
  boost::asio::ip::tcp::endpoint local_endpoint() const;

 private:
  friend class TcpSession;
  void accept();
  void on_accept(const boost::system::error_code& error, boost::asio::ip::tcp::socket socket);
  // A client's address as IPv6 bytes, IPv4 as IPv4-mapped: a dual-stack socket
  // reports one client either way.
  using ClientKey = std::array<unsigned char, 16>;
  static ClientKey client_key(const boost::asio::ip::address& address);
  // Sessions process queries synchronously on the one io_context thread, so they
  // can share one response buffer.
  std::vector<std::uint8_t>& response_buffer() { return response_buffer_; }

  std::shared_ptr<ServerContext> context_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer accept_retry_timer_;
  std::unordered_set<TcpSession*> sessions_;
  // Open sessions per client; entries go when their count drops to zero, so the
  // map holds at most max_tcp_connections entries.
  std::map<ClientKey, std::size_t> sessions_per_client_;
  std::vector<std::uint8_t> response_buffer_;
  bool stopped_ = false;
};

}  // namespace dns
