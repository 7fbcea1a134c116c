#include "registry/http_server.h"
#include "store/logging.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <list>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <variant>

#include "registry/api.h"

namespace registry {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;
using AnyStream = std::variant<beast::tcp_stream, TlsStream>;

namespace {

// close_notify is a courtesy: a peer that neither answers it nor closes does not
// get to hold its connection slot for long.
constexpr std::chrono::milliseconds kTlsShutdownTimeout{1'000};
// After refusing a request whose rest is still arriving (a body over the limit),
// the server reads and discards for a while before closing: closing a socket with
// unread data resets the connection, and the reset destroys the error response in
// the client's receive buffer before the client has read it.
constexpr std::chrono::milliseconds kLingerTimeout{2'000};
constexpr std::size_t kLingerMaxBytes = 1024 * 1024;

// Reads and throws away what the client sends until it closes, kLingerMaxBytes
// or kLingerTimeout; returns the error that ended it.
template <typename Stream>
asio::awaitable<boost::system::error_code> linger(Stream& stream, beast::tcp_stream& transport) {
  transport.expires_after(kLingerTimeout);
  std::array<char, 16 * 1024> scratch;
  std::size_t discarded = 0;
  boost::system::error_code ec;
  while (!ec && discarded < kLingerMaxBytes) {
    discarded += co_await stream.async_read_some(asio::buffer(scratch),
                                                 asio::redirect_error(asio::use_awaitable, ec));
  }
  co_return ec;
}

std::shared_ptr<spdlog::logger> logger() {
  return store::component_logger("http");
}

// Runs Api::handle and resumes the calling coroutine with its response on the
// coroutine's own executor (writes complete on the store's writer thread).
template <typename CompletionToken>
auto async_handle(Api& api, HttpRequest request, CompletionToken&& token) {
  return asio::async_initiate<CompletionToken, void(HttpResponse)>(
      [&api](auto handler, HttpRequest request) {
        auto executor = asio::get_associated_executor(handler);
        auto shared_handler = std::make_shared<decltype(handler)>(std::move(handler));
        api.handle(request, [shared_handler, executor](HttpResponse response) {
          asio::post(executor, [shared_handler, response = std::move(response)]() mutable {
            (*shared_handler)(std::move(response));
          });
        });
      },
      token, std::move(request));
}

http::response<http::string_body> to_beast(HttpResponse response, unsigned version,
                                           bool keep_alive) {
  http::response<http::string_body> beast_response{static_cast<http::status>(response.status),
                                                   version};
  beast_response.set(http::field::server, "discoveryd");
  beast_response.set(http::field::content_type, "application/json");
  for (auto& [name, value] : response.headers) beast_response.set(name, value);
  beast_response.keep_alive(keep_alive);
  beast_response.body() = std::move(response.body);
  beast_response.prepare_payload();
  return beast_response;
}

// A complete HTTP/1.1 response, for the moments no parsed request exists.
std::string raw_response(int status, const std::string& reason, const std::string& error) {
  const std::string body = R"({"error":")" + error + R"(","field":null})";
  return "HTTP/1.1 " + std::to_string(status) + " " + reason +
         "\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

// What to answer when reading a request failed: the limits and bytes that are not
// HTTP get an error response; a transport failure (timeout, reset, TLS alert, the
// client closing) leaves nobody to answer.
std::optional<HttpResponse> refusal_for(const boost::system::error_code& ec,
                                        const HttpServerOptions& options) {
  if (ec == http::error::body_limit) {
    return error_response(
        413, "request body larger than " + std::to_string(options.max_body_bytes) + " bytes",
        "body");
  }
  if (ec == http::error::header_limit) {
    return error_response(
        431, "request headers larger than " + std::to_string(options.max_header_bytes) + " bytes");
  }
  const bool parse_error =
      &ec.category() == &http::make_error_code(http::error::end_of_stream).category();
  if (parse_error && ec != http::error::end_of_stream) {
    return error_response(400, "malformed HTTP request: " + ec.message());
  }
  return std::nullopt;
}

// OpenSSL's reasons for the last failure of this thread, earliest first, e.g.
// "no start line; PEM lib", or `fallback` when it recorded none.
std::string openssl_reasons(const std::string& fallback) {
  std::string reasons;
  while (const unsigned long code = ERR_get_error()) {
    const char* reason = ERR_reason_error_string(code);
    if (reason == nullptr || reasons.find(reason) != std::string::npos) continue;
    if (!reasons.empty()) reasons += "; ";
    reasons += reason;
  }
  return reasons.empty() ? fallback : reasons;
}

// Fails with the system's reason (e.g. "No such file or directory") before OpenSSL
// reports the same as "system lib".
void require_readable(const std::string& what, const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) throw std::runtime_error(what + " " + path + ": " + std::strerror(errno));
  std::fclose(file);
}

std::shared_ptr<ssl::context> make_tls_context(const HttpServerOptions& options) {
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* native = context->native_handle();
  // TLS 1.0 and 1.1 are deprecated (RFC 8996). Compression enables CRIME; the
  // server's cipher order keeps clients on forward-secret AEAD suites; clients may
  // not renegotiate (a cheap way to make the server do expensive work).
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(
      native, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_cipher_list(native,
                          "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                          "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                          "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305");
  // OpenSSL would otherwise prompt on the terminal for an encrypted key's passphrase.
  context->set_password_callback(
      [](std::size_t, ssl::context::password_purpose) { return std::string(); });

  require_readable("TLS certificate file", options.tls_certificate_file);
  require_readable("TLS private key file", options.tls_private_key_file);
  ERR_clear_error();
  if (SSL_CTX_use_certificate_chain_file(native, options.tls_certificate_file.c_str()) != 1) {
    throw std::runtime_error("TLS certificate file " + options.tls_certificate_file +
                             ": not a PEM certificate chain (" +
                             openssl_reasons("cannot be loaded") + ")");
  }
  if (SSL_CTX_use_PrivateKey_file(native, options.tls_private_key_file.c_str(), SSL_FILETYPE_PEM) !=
      1) {
    throw std::runtime_error("TLS private key file " + options.tls_private_key_file +
                             ": not an unencrypted PEM private key matching the certificate (" +
                             openssl_reasons("cannot be loaded") + ")");
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    throw std::runtime_error("TLS private key file " + options.tls_private_key_file +
                             " does not match the certificate in " + options.tls_certificate_file +
                             ": " + openssl_reasons("key values mismatch"));
  }
  return context;
}

}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  struct Connection {
    // The TLS context the connection started with (null: plain HTTP). Held here,
    // declared before the stream, so that a certificate reload cannot free it
    // under a session that still uses it.
    std::shared_ptr<ssl::context> tls_context;
    AnyStream stream;
    bool busy = false;  // a request is being handled or answered
    // The request being read, so that stop() can tell a half-received request
    // (which it lets finish) from an idle keep-alive connection (which it closes).
    const http::request_parser<http::string_body>* reading = nullptr;
    std::string peer;  // "address:port" of the client, for logs
    Connection(tcp::socket socket, std::shared_ptr<ssl::context> tls)
        : tls_context(std::move(tls)), stream(make_stream(std::move(socket), tls_context.get())) {
      boost::system::error_code ec;
      const auto endpoint = transport().socket().remote_endpoint(ec);
      if (!ec) peer = endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
    }
    beast::tcp_stream& transport() {
      return std::visit([](auto& s) -> beast::tcp_stream& { return beast::get_lowest_layer(s); },
                        stream);
    }
    static AnyStream make_stream(tcp::socket socket, ssl::context* tls) {
      if (tls) return AnyStream(std::in_place_type<TlsStream>, std::move(socket), *tls);
      return AnyStream(std::in_place_type<beast::tcp_stream>, std::move(socket));
    }
  };

  Impl(asio::io_context& io, HttpServerOptions options, Api& api)
      : io(io), options(std::move(options)), api(api), acceptor(io) {}

  asio::io_context& io;
  HttpServerOptions options;
  Api& api;
  // Null: plain HTTP. Replaced as a whole by reload_tls(); new connections take
  // the current one.
  std::shared_ptr<ssl::context> tls;
  tcp::acceptor acceptor;
  std::list<std::shared_ptr<Connection>> connections;
  bool stopping = false;
  HttpServerStats counters;

  asio::awaitable<void> accept_loop() {
    auto self = shared_from_this();
    while (!stopping) {
      boost::system::error_code ec;
      tcp::socket socket =
          co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (ec == asio::error::operation_aborted || stopping) co_return;
        // EMFILE and friends: log, back off briefly, keep serving existing clients.
        logger()->warn("accept failed: {}", ec.message());
        asio::steady_timer pause(io, std::chrono::milliseconds(50));
        co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        continue;
      }
      ++counters.accepted;
      if (connections.size() >= options.max_connections) {
        ++counters.rejected_over_limit;
        // Over the cap: close at once, without reading the request. Plain HTTP gets a
        // 503 first (a new socket's send buffer is empty, so this non-blocking send
        // cannot stall). HTTPS clients are only closed on: a 503 would need a TLS
        // handshake, which is the expensive work the cap exists to refuse.
        if (!tls) {
          static const std::string kBusy =
              raw_response(503, "Service Unavailable", "too many connections");
          socket.non_blocking(true, ec);
          socket.send(asio::buffer(kBusy), 0, ec);
        }
        socket.close(ec);
        continue;
      }
      auto connection = std::make_shared<Connection>(std::move(socket), tls);
      connections.push_back(connection);
      auto position = std::prev(connections.end());
      asio::co_spawn(io, session(connection, position), asio::detached);
    }
  }

  asio::awaitable<void> session(std::shared_ptr<Connection> connection,
                                std::list<std::shared_ptr<Connection>>::iterator position) {
    auto self = shared_from_this();
    co_await std::visit([&](auto& stream) { return serve(*connection, stream); },
                        connection->stream);
    connections.erase(position);
  }

  // One connection from accept to close, over plain TCP or TLS.
  template <typename Stream>
  asio::awaitable<void> serve(Connection& connection, Stream& stream) {
    constexpr bool kTls = std::is_same_v<Stream, TlsStream>;
    if constexpr (kTls) {
      if (!co_await handshake(connection, stream)) {
        connection.transport().close();
        co_return;
      }
    }
    const boost::system::error_code ec = co_await request_loop(connection, stream);
    // Close in order only when the stream is sound (a response went out, the client
    // said goodbye, or stop() ended an idle wait); after a timeout or an error
    // there is nobody to be polite to.
    const bool orderly =
        !ec || ec == http::error::end_of_stream || ec == asio::error::operation_aborted;
    if constexpr (kTls) {
      if (orderly) {
        connection.transport().expires_after(std::min(options.write_timeout, kTlsShutdownTimeout));
        boost::system::error_code ignored;  // stream_truncated and timeouts included
        co_await stream.async_shutdown(asio::redirect_error(asio::use_awaitable, ignored));
      }
    } else {
      boost::system::error_code ignored;
      if (orderly) stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    }
    connection.transport().close();
  }

  // The TLS handshake, within the request timeout. Returns false if it failed.
  asio::awaitable<bool> handshake(Connection& connection, TlsStream& stream) {
    beast::tcp_stream& tcp = connection.transport();
    tcp.expires_after(options.request_timeout);
    boost::system::error_code ec;
    // Look at the first bytes: a TLS client opens with a handshake record (0x16), an
    // HTTP client with a method name. The latter is told in plain text what is wrong.
    beast::flat_buffer first;
    const std::size_t got = co_await tcp.async_read_some(
        first.prepare(4096), asio::redirect_error(asio::use_awaitable, ec));
    first.commit(got);
    const auto* bytes = static_cast<const unsigned char*>(first.data().data());
    if (!ec && got > 0 && bytes[0] >= 'A' && bytes[0] <= 'Z') {
      static const std::string kPlainHttp =
          raw_response(400, "Bad Request", "this port serves HTTPS: use https://");
      co_await asio::async_write(tcp, asio::buffer(kPlainHttp),
                                 asio::redirect_error(asio::use_awaitable, ec));
      ++counters.tls_handshake_failures;
      // Debug, not warn: scanners and health probes do this all day.
      logger()->debug("plain HTTP on the HTTPS port peer={}", connection.peer);
      if (!ec) {
        tcp.socket().shutdown(tcp::socket::shutdown_send, ec);
        co_await linger(tcp, tcp);
      }
      co_return false;
    }
    if (!ec) {
      co_await stream.async_handshake(ssl::stream_base::server, first.data(),
                                      asio::redirect_error(asio::use_awaitable, ec));
    }
    if (ec) {
      ++counters.tls_handshake_failures;
      logger()->debug("TLS handshake failed peer={} error={}", connection.peer, ec.message());
      co_return false;
    }
    co_return true;
  }

  // Reads requests and answers them until the client or the server ends the
  // connection; returns the error (if any) of the last read or write.
  template <typename Stream>
  asio::awaitable<boost::system::error_code> request_loop(Connection& connection, Stream& stream) {
    beast::flat_buffer buffer;
    beast::tcp_stream& tcp = connection.transport();
    boost::system::error_code ec;
    while (!stopping) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(options.max_header_bytes));
      parser.body_limit(options.max_body_bytes);
      tcp.expires_after(options.request_timeout);
      connection.reading = &parser;
      co_await http::async_read(stream, buffer, parser,
                                asio::redirect_error(asio::use_awaitable, ec));
      connection.reading = nullptr;
      if (ec) {
        if (auto refusal = refusal_for(ec, options)) {
          connection.busy = true;
          auto response = to_beast(std::move(*refusal), 11, false);
          tcp.expires_after(options.write_timeout);
          co_await http::async_write(stream, response,
                                     asio::redirect_error(asio::use_awaitable, ec));
          if (!ec) {
            // The client reads the response and closes; over TCP, the half-close
            // says no more is coming. TLS has no half-close (close_notify is the
            // end of the session), so it waits for the client to go.
            if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
              tcp.socket().shutdown(tcp::socket::shutdown_send, ec);
            }
            ec = co_await linger(stream, tcp);
          }
        } else if (&ec.category() == &asio::error::get_ssl_category()) {
          logger()->debug("TLS error peer={} error={}", connection.peer, ec.message());
        }
        co_return ec;
      }
      connection.busy = true;
      ++counters.requests;
      auto& request = parser.get();
      HttpRequest plain{std::string(request.method_string()),
                        std::string(request.target()),
                        std::string(request[http::field::content_type]),
                        std::move(request.body()),
                        std::string(request[http::field::authorization]),
                        connection.peer};
      HttpResponse answer = co_await async_handle(api, std::move(plain), asio::use_awaitable);
      const bool keep_alive = request.keep_alive() && !stopping;
      auto response = to_beast(std::move(answer), request.version(), keep_alive);
      tcp.expires_after(options.write_timeout);
      co_await http::async_write(stream, response, asio::redirect_error(asio::use_awaitable, ec));
      connection.busy = false;
      if (ec || !keep_alive) co_return ec;
    }
    co_return ec;
  }
};

HttpServer::HttpServer(asio::io_context& io, HttpServerOptions options, Api& api)
    : impl_(std::make_shared<Impl>(io, std::move(options), api)) {}

HttpServer::~HttpServer() = default;

void HttpServer::start() {
  const auto& options = impl_->options;
  // Certificate problems are start-up errors (before binding), never a server that
  // runs and fails every handshake.
  if (options.tls_certificate_file.empty() != options.tls_private_key_file.empty()) {
    throw std::invalid_argument(
        "HTTPS needs both a certificate file and a private key file (only the " +
        std::string(options.tls_certificate_file.empty() ? "key" : "certificate") + " is set)");
  }
  if (!options.tls_certificate_file.empty()) impl_->tls = make_tls_context(options);
  const tcp::endpoint endpoint(asio::ip::make_address(options.address), options.port);
  try {
    impl_->acceptor.open(endpoint.protocol());
    impl_->acceptor.set_option(asio::socket_base::reuse_address(true));
    impl_->acceptor.bind(endpoint);
    impl_->acceptor.listen(asio::socket_base::max_listen_connections);
  } catch (const boost::system::system_error& error) {
    throw std::system_error(
        error.code(), "HTTP listen on " + options.address + ":" + std::to_string(options.port));
  }
  asio::co_spawn(impl_->io, impl_->accept_loop(), asio::detached);
}

bool HttpServer::reload_tls() {
  if (!impl_->tls) return false;
  impl_->tls = make_tls_context(impl_->options);  // throws, keeping the current one
  return true;
}

std::uint16_t HttpServer::port() const {
  return impl_->acceptor.local_endpoint().port();
}

void HttpServer::stop() {
  impl_->stopping = true;
  boost::system::error_code ec;
  impl_->acceptor.close(ec);
  for (auto& connection : impl_->connections) {
    // Idle connections (and ones still in the TLS handshake) wait in a read;
    // cancelling it ends the session. Busy ones, and ones in the middle of
    // receiving a request, finish their response (within the request timeout) and
    // then see `stopping`.
    const bool receiving = connection->reading && connection->reading->got_some();
    if (!connection->busy && !receiving) connection->transport().cancel();
  }
}

HttpServerStats HttpServer::stats() const {
  HttpServerStats stats = impl_->counters;
  stats.open_connections = impl_->connections.size();
  return stats;
}

bool HttpServer::tls() const {
  return !impl_->options.tls_certificate_file.empty();
}

nlohmann::json status_json(const HttpServerStats& stats, bool tls) {
  return {{"open_connections", stats.open_connections},
          {"accepted", stats.accepted},
          {"rejected_over_limit", stats.rejected_over_limit},
          {"requests", stats.requests},
          {"tls", tls},
          {"tls_handshake_failures", stats.tls_handshake_failures}};
}

}  // namespace registry
