// The HTTP transport of the registration API: Boost.Beast on an Asio io_context,
// plain HTTP or HTTPS (OpenSSL). It only reads requests, hands them to
// registry::Api and writes the responses; every limit that protects the daemon
// from slow or abusive clients lives here.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace boost::asio {
class io_context;
}

namespace registry {

class Api;

struct HttpServerOptions {
  std::string address = "127.0.0.1";
  std::uint16_t port = 8500;  // 0: any free port (see HttpServer::port)
  std::size_t max_connections = 1024;
  // A whole request (headers and body) must arrive within this time, which also
  // bounds how long an idle keep-alive connection is held open.
  std::chrono::milliseconds request_timeout{10'000};
  std::chrono::milliseconds write_timeout{10'000};
  std::size_t max_header_bytes = 8 * 1024;
  std::size_t max_body_bytes = 64 * 1024;
  // Both set: serve HTTPS only (TLS 1.2 or later) with this PEM certificate chain
  // (leaf first) and PEM private key (unencrypted). Both empty: plain HTTP. The
  // TLS handshake must complete within request_timeout; until it does, the client
  // counts against max_connections like any other.
  std::string tls_certificate_file;
  std::string tls_private_key_file;
};

struct HttpServerStats {
  std::size_t open_connections = 0;
  std::uint64_t accepted = 0;
  std::uint64_t rejected_over_limit = 0;
  std::uint64_t requests = 0;
  // Handshakes that failed or timed out, plain HTTP sent to the HTTPS port included.
  std::uint64_t tls_handshake_failures = 0;
};

// The HTTP server's part of GET /v1/status (docs/api.md).
nlohmann::json status_json(const HttpServerStats& stats, bool tls);

class HttpServer {
 public:
  HttpServer(boost::asio::io_context& io, HttpServerOptions options, Api& api);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Loads the TLS certificate and key (if configured), binds and starts accepting.
  // Throws std::invalid_argument when only one of the certificate and key is set,
  // std::runtime_error naming the file and OpenSSL's reason when either cannot be
  // loaded, and std::system_error naming the endpoint when it cannot be bound.
  void start();
  // Re-reads the TLS certificate and key (after a renewal): new connections use
  // them, connections already open keep theirs. Returns false when the server
  // speaks plain HTTP. Throws like start() when a file cannot be used, leaving
  // the certificate in force unchanged. Call on the io_context's thread.
  bool reload_tls();
  // The bound port (useful when options.port was 0).
  std::uint16_t port() const;
  // Stops accepting and closes idle connections; requests in flight complete and
  // their connections close after the response. Call on the io_context's thread.
  void stop();
  HttpServerStats stats() const;
  // Whether the API is served over TLS (a certificate is configured).
  bool tls() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace registry
