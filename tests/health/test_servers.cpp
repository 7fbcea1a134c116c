#include "tests/health/test_servers.h"

#include <sys/resource.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace health_test {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

// An io_context on its own thread, kept running until destroyed.
struct Loop {
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
  std::thread thread{[this] { io.run(); }};
  ~Loop() { stop(); }
  void stop() {
    guard.reset();
    io.stop();
    if (thread.joinable()) thread.join();
  }
  // Runs `task` on the loop's thread and waits for it.
  template <typename Task>
  void run_sync(Task task) {
    std::promise<void> done;
    asio::post(io, [&] {
      task();
      done.set_value();
    });
    done.get_future().wait();
  }
};

}  // namespace

void raise_fd_limit(std::size_t wanted) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur >= wanted) return;
  rlimit raised = limit;
  raised.rlim_cur = wanted;
  if (raised.rlim_max < wanted) raised.rlim_max = wanted;
  if (::setrlimit(RLIMIT_NOFILE, &raised) != 0) {
    raised.rlim_cur = limit.rlim_max;
    raised.rlim_max = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &raised);
  }
}

// --- TestHttpServer -------------------------------------------------------------

struct TestHttpServer::Impl : std::enable_shared_from_this<TestHttpServer::Impl> {
  std::unique_ptr<Loop> loop = std::make_unique<Loop>();
  std::unique_ptr<tcp::acceptor> acceptor = std::make_unique<tcp::acceptor>(loop->io);

  mutable std::mutex mutex;
  Mode mode = Mode::respond;
  int status = 200;
  std::deque<int> script;
  std::string extra_headers;
  std::size_t body_bytes = 2;
  std::size_t header_bytes = 0;
  std::size_t connections = 0;
  std::size_t requests = 0;
  std::map<int, std::size_t> responses;
  std::vector<std::string> peers;
  std::vector<std::string> locals;
  std::optional<std::string> last_request;
  std::vector<std::shared_ptr<tcp::socket>> held;  // silent mode keeps them open

  void accept() {
    acceptor->async_accept(
        [self = shared_from_this()](const error_code& error, tcp::socket socket) {
          if (error) {
            if (error != asio::error::operation_aborted) self->accept();
            return;
          }
          self->serve(std::make_shared<tcp::socket>(std::move(socket)));
          self->accept();
        });
  }

  void serve(std::shared_ptr<tcp::socket> socket) {
    error_code ignored;
    Mode current;
    {
      std::lock_guard lock(mutex);
      ++connections;
      peers.push_back(socket->remote_endpoint(ignored).address().to_string());
      locals.push_back(socket->local_endpoint(ignored).address().to_string());
      current = mode;
    }
    if (current == Mode::silent) {
      std::lock_guard lock(mutex);
      held.push_back(socket);
      return;
    }
    read(socket, std::make_shared<std::string>());
  }

  void read(std::shared_ptr<tcp::socket> socket, std::shared_ptr<std::string> request) {
    auto chunk = std::make_shared<std::array<char, 2048>>();
    socket->async_read_some(asio::buffer(*chunk),
                            [self = shared_from_this(), socket, request, chunk](
                                const error_code& error, std::size_t bytes) {
                              if (error) return;
                              request->append(chunk->data(), bytes);
                              if (request->find("\r\n\r\n") == std::string::npos) {
                                return self->read(socket, request);
                              }
                              self->respond(socket, *request);
                            });
  }

  void respond(std::shared_ptr<tcp::socket> socket, const std::string& request) {
    auto response = std::make_shared<std::string>();
    {
      std::lock_guard lock(mutex);
      ++requests;
      last_request = request;
      int code = status;
      if (!script.empty()) {
        code = script.front();
        script.pop_front();
      }
      if (code == 0) {
        held.push_back(socket);
        return;
      }
      ++responses[code];
      response->append("HTTP/1.1 " + std::to_string(code) + " Scripted\r\n");
      if (code >= 300 && code <= 399) response->append("Location: http://192.0.2.1/\r\n");
      response->append(extra_headers);
      if (header_bytes > 0)
        response->append("X-Padding: " + std::string(header_bytes, 'p') + "\r\n");
      response->append("Content-Length: " + std::to_string(body_bytes) + "\r\n");
      response->append("Connection: close\r\n\r\n");
      response->append(std::string(body_bytes, 'b'));
    }
    asio::async_write(*socket, asio::buffer(*response),
                      [socket, response](const error_code&, std::size_t) {
                        error_code ignored;
                        socket->shutdown(tcp::socket::shutdown_both, ignored);
                        socket->close(ignored);
                      });
  }
};

TestHttpServer::TestHttpServer(const std::string& address, std::uint16_t port)
    : impl_(std::make_shared<Impl>()) {
  const tcp::endpoint endpoint(asio::ip::make_address(address), port);
  impl_->acceptor->open(endpoint.protocol());
  impl_->acceptor->set_option(tcp::acceptor::reuse_address(true));
  impl_->acceptor->bind(endpoint);
  impl_->acceptor->listen(1024);
  impl_->loop->run_sync([impl = impl_] { impl->accept(); });
}

TestHttpServer::~TestHttpServer() {
  impl_->loop->run_sync([impl = impl_] {
    error_code ignored;
    impl->acceptor->close(ignored);
    for (auto& socket : impl->held) socket->close(ignored);
    impl->held.clear();
  });
  // Asio objects go before their io_context; queued handlers die with it.
  impl_->loop->stop();
  impl_->acceptor.reset();
  impl_->loop.reset();
}

std::uint16_t TestHttpServer::port() const {
  return impl_->acceptor->local_endpoint().port();
}
void TestHttpServer::set_mode(Mode mode) {
  std::lock_guard lock(impl_->mutex);
  impl_->mode = mode;
}
void TestHttpServer::set_status(int status) {
  std::lock_guard lock(impl_->mutex);
  impl_->status = status;
}
void TestHttpServer::set_script(std::vector<int> statuses) {
  std::lock_guard lock(impl_->mutex);
  impl_->script.assign(statuses.begin(), statuses.end());
}
void TestHttpServer::set_extra_headers(std::string headers) {
  std::lock_guard lock(impl_->mutex);
  impl_->extra_headers = std::move(headers);
}
void TestHttpServer::set_body_bytes(std::size_t bytes) {
  std::lock_guard lock(impl_->mutex);
  impl_->body_bytes = bytes;
}
void TestHttpServer::set_header_bytes(std::size_t bytes) {
  std::lock_guard lock(impl_->mutex);
  impl_->header_bytes = bytes;
}
std::size_t TestHttpServer::connections() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->connections;
}
std::size_t TestHttpServer::requests() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->requests;
}
std::size_t TestHttpServer::responses(int status) const {
  std::lock_guard lock(impl_->mutex);
  const auto found = impl_->responses.find(status);
  return found == impl_->responses.end() ? 0 : found->second;
}
std::vector<std::string> TestHttpServer::peers() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->peers;
}
std::vector<std::string> TestHttpServer::local_addresses() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->locals;
}
std::optional<std::string> TestHttpServer::last_request() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->last_request;
}

// --- ListenerFarm ---------------------------------------------------------------

struct ListenerFarm::Impl : std::enable_shared_from_this<ListenerFarm::Impl> {
  std::unique_ptr<Loop> loop = std::make_unique<Loop>();
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  std::vector<std::uint16_t> ports;
  mutable std::mutex mutex;
  std::vector<std::size_t> accepts;
  std::vector<std::optional<std::chrono::steady_clock::time_point>> firsts;

  void accept(std::size_t index) {
    acceptors[index]->async_accept(
        [self = shared_from_this(), index](const error_code& error, tcp::socket socket) {
          if (error) {
            if (error != asio::error::operation_aborted && self->acceptors[index]->is_open()) {
              self->accept(index);
            }
            return;
          }
          {
            std::lock_guard lock(self->mutex);
            ++self->accepts[index];
            if (!self->firsts[index]) self->firsts[index] = std::chrono::steady_clock::now();
          }
          self->answer(std::make_shared<tcp::socket>(std::move(socket)));
          self->accept(index);
        });
  }

  void answer(std::shared_ptr<tcp::socket> socket) {
    auto chunk = std::make_shared<std::array<char, 1024>>();
    socket->async_read_some(
        asio::buffer(*chunk), [socket, chunk](const error_code& error, std::size_t) {
          if (error) return;  // a tcp check connects and resets
          static const std::string kOk =
              "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
          asio::async_write(*socket, asio::buffer(kOk), [socket](const error_code&, std::size_t) {
            error_code ignored;
            socket->close(ignored);
          });
        });
  }
};

ListenerFarm::ListenerFarm(std::size_t count) : impl_(std::make_shared<Impl>()) {
  raise_fd_limit(count * 3 + 1024);
  impl_->accepts.assign(count, 0);
  impl_->firsts.assign(count, std::nullopt);
  for (std::size_t i = 0; i < count; ++i) {
    auto acceptor = std::make_unique<tcp::acceptor>(impl_->loop->io);
    const tcp::endpoint endpoint(asio::ip::address_v4::loopback(), 0);
    acceptor->open(endpoint.protocol());
    acceptor->bind(endpoint);
    acceptor->listen(128);
    impl_->ports.push_back(acceptor->local_endpoint().port());
    impl_->acceptors.push_back(std::move(acceptor));
  }
  impl_->loop->run_sync([impl = impl_] {
    for (std::size_t i = 0; i < impl->acceptors.size(); ++i) impl->accept(i);
  });
}

ListenerFarm::~ListenerFarm() {
  impl_->loop->run_sync([impl = impl_] {
    error_code ignored;
    for (auto& acceptor : impl->acceptors) acceptor->close(ignored);
  });
  impl_->loop->stop();
  impl_->acceptors.clear();
  impl_->loop.reset();
}

std::size_t ListenerFarm::size() const {
  return impl_->ports.size();
}
std::uint16_t ListenerFarm::port(std::size_t index) const {
  return impl_->ports.at(index);
}
std::size_t ListenerFarm::accepts(std::size_t index) const {
  std::lock_guard lock(impl_->mutex);
  return impl_->accepts.at(index);
}
std::optional<std::chrono::steady_clock::time_point> ListenerFarm::first_accept(
    std::size_t index) const {
  std::lock_guard lock(impl_->mutex);
  return impl_->firsts.at(index);
}
void ListenerFarm::close(std::size_t index) {
  impl_->loop->run_sync([impl = impl_, index] {
    error_code ignored;
    impl->acceptors.at(index)->close(ignored);
  });
}

}  // namespace health_test
