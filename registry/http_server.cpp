#include "registry/http_server.h"
#include "store/logging.h"

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <list>

#include "registry/api.h"

namespace registry {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

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

}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  struct Connection {
    beast::tcp_stream stream;
    bool busy = false;  // a request is being handled or answered
    // The request being read, so that stop() can tell a half-received request
    // (which it lets finish) from an idle keep-alive connection (which it closes).
    const http::request_parser<http::string_body>* reading = nullptr;
    std::string peer;  // "address:port" of the client, for logs
    explicit Connection(tcp::socket socket) : stream(std::move(socket)) {
      boost::system::error_code ec;
      const auto endpoint = stream.socket().remote_endpoint(ec);
      if (!ec) peer = endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
    }
  };

  Impl(asio::io_context& io, HttpServerOptions options, Api& api)
      : io(io), options(std::move(options)), api(api), acceptor(io) {}

  asio::io_context& io;
  HttpServerOptions options;
  Api& api;
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
        // Over the cap: answer at once and close, without reading the request. A new
        // socket's send buffer is empty, so this non-blocking send cannot stall.
        ++counters.rejected_over_limit;
        static const std::string kBusy = [] {
          const std::string body = R"({"error":"too many connections","field":null})";
          return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                 "Connection: close\r\nContent-Length: " +
                 std::to_string(body.size()) + "\r\n\r\n" + body;
        }();
        socket.non_blocking(true, ec);
        socket.send(asio::buffer(kBusy), 0, ec);
        socket.close(ec);
        continue;
      }
      auto connection = std::make_shared<Connection>(std::move(socket));
      connections.push_back(connection);
      auto position = std::prev(connections.end());
      asio::co_spawn(io, session(connection, position), asio::detached);
    }
  }

  asio::awaitable<void> session(std::shared_ptr<Connection> connection,
                                std::list<std::shared_ptr<Connection>>::iterator position) {
    auto self = shared_from_this();
    beast::flat_buffer buffer;
    beast::tcp_stream& stream = connection->stream;
    boost::system::error_code ec;
    while (!stopping) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(options.max_header_bytes));
      parser.body_limit(options.max_body_bytes);
      stream.expires_after(options.request_timeout);
      connection->reading = &parser;
      co_await http::async_read(stream, buffer, parser,
                                asio::redirect_error(asio::use_awaitable, ec));
      connection->reading = nullptr;
      if (ec) {
        std::optional<HttpResponse> refusal;
        if (ec == http::error::body_limit) {
          refusal = error_response(
              413, "request body larger than " + std::to_string(options.max_body_bytes) + " bytes",
              "body");
        } else if (ec == http::error::header_limit) {
          refusal = error_response(431, "request headers larger than " +
                                            std::to_string(options.max_header_bytes) + " bytes");
        } else if (ec != http::error::end_of_stream && ec != beast::error::timeout &&
                   ec != asio::error::operation_aborted && ec != asio::error::connection_reset &&
                   ec != asio::error::eof) {
          refusal = error_response(400, "malformed HTTP request: " + ec.message());
        }
        if (refusal) {
          connection->busy = true;
          auto response = to_beast(std::move(*refusal), 11, false);
          stream.expires_after(options.write_timeout);
          co_await http::async_write(stream, response,
                                     asio::redirect_error(asio::use_awaitable, ec));
        }
        break;
      }
      connection->busy = true;
      ++counters.requests;
      auto& request = parser.get();
      HttpRequest plain{std::string(request.method_string()),
                        std::string(request.target()),
                        std::string(request[http::field::content_type]),
                        std::move(request.body()),
                        std::string(request[http::field::authorization]),
                        connection->peer};
      HttpResponse answer = co_await async_handle(api, std::move(plain), asio::use_awaitable);
      const bool keep_alive = request.keep_alive() && !stopping;
      auto response = to_beast(std::move(answer), request.version(), keep_alive);
      stream.expires_after(options.write_timeout);
      co_await http::async_write(stream, response, asio::redirect_error(asio::use_awaitable, ec));
      connection->busy = false;
      if (ec || !keep_alive) break;
    }
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream.close();
    connections.erase(position);
  }
};

HttpServer::HttpServer(asio::io_context& io, HttpServerOptions options, Api& api)
    : impl_(std::make_shared<Impl>(io, std::move(options), api)) {}

HttpServer::~HttpServer() = default;

void HttpServer::start() {
  const tcp::endpoint endpoint(asio::ip::make_address(impl_->options.address), impl_->options.port);
  try {
    impl_->acceptor.open(endpoint.protocol());
    impl_->acceptor.set_option(asio::socket_base::reuse_address(true));
    impl_->acceptor.bind(endpoint);
    impl_->acceptor.listen(asio::socket_base::max_listen_connections);
  } catch (const boost::system::system_error& error) {
    throw std::system_error(error.code(), "HTTP listen on " + impl_->options.address + ":" +
                                              std::to_string(impl_->options.port));
  }
  asio::co_spawn(impl_->io, impl_->accept_loop(), asio::detached);
}

std::uint16_t HttpServer::port() const {
  return impl_->acceptor.local_endpoint().port();
}

void HttpServer::stop() {
  impl_->stopping = true;
  boost::system::error_code ec;
  impl_->acceptor.close(ec);
  for (auto& connection : impl_->connections) {
    // Idle connections wait in a read; cancelling it ends the session. Busy ones,
    // and ones in the middle of receiving a request, finish their response (within
    // the request timeout) and then see `stopping`.
    const bool receiving = connection->reading && connection->reading->got_some();
    if (!connection->busy && !receiving) connection->stream.cancel();
  }
}

HttpServerStats HttpServer::stats() const {
  HttpServerStats stats = impl_->counters;
  stats.open_connections = impl_->connections.size();
  return stats;
}

}  // namespace registry
