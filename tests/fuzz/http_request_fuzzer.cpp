// libFuzzer target: arbitrary bytes as what a client sends on one HTTP connection.
// They go through Beast's request parser with the server's limits (as
// registry/http_server.cpp reads them) and every request that parses goes through
// registry::Api against a real SQLite store, group-commit writer and cache, with
// the registration address policy installed. Nothing here probes the registered
// addresses (there is no health checker).
// Invariants beyond "no crash, no exception, no sanitizer report": each request
// gets exactly one response, with a status in 200..599 and a body that is JSON
// (an object; errors carry a string "error").
#include <signal.h>
#include <unistd.h>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include <spdlog/spdlog.h>

#include "registry/address_policy.h"
#include "registry/api.h"
#include "registry/http_server.h"
#include "store/cache/service_cache.h"
#include "store/sqlite/sqlite_store.h"

namespace {

namespace http = boost::beast::http;
using namespace std::chrono_literals;

void check(bool condition) {
  if (!condition) std::abort();
}

constexpr std::string_view kDatabasePrefix = "discoveryd-http-fuzz-";

// A scratch database on tmpfs when there is one: the store's fsyncs are then cheap.
// libFuzzer leaves without running static destructors, so the files of earlier
// runs (whose process is gone) are removed here instead.
std::filesystem::path scratch_database() {
  const std::filesystem::path dir =
      std::filesystem::exists("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path();
  std::error_code ignored;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ignored)) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with(kDatabasePrefix)) continue;
    const long pid = std::atol(name.c_str() + kDatabasePrefix.size());
    if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      std::filesystem::remove(entry.path(), ignored);
    }
  }
  return dir / (std::string(kDatabasePrefix) + std::to_string(::getpid()) + ".db");
}

void remove_database(const std::filesystem::path& path) {
  std::error_code ignored;
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
    std::filesystem::remove(path.string() + suffix, ignored);
  }
}

// The daemon's registry stack, without sockets. Rebuilt from an empty database
// every kRunsPerDatabase inputs so the store stays small and fast.
class Stack {
 public:
  explicit Stack(const std::filesystem::path& path)
      : path_((remove_database(path), path)),
        store_({path_.string(), /*synchronous_full=*/false, 2000ms}),
        writer_(store_, [this](const store::Writer::Commit& commit) { cache_.on_commit(commit); }),
        cache_(store_, writer_, {}),
        api_(store_, writer_, cache_, {30s, 2s, 3}),
        // As the daemon wires it: default ranges, its own HTTP and DNS endpoints.
        policy_(registry::AddressPolicy::default_deny_ranges(),
                {{*store::IpAddress::parse("127.0.0.1"), 8500},
                 {*store::IpAddress::parse("0.0.0.0"), 8600}}) {
    api_.set_registration_filter(
        [this](const store::Registration& registration) { return policy_.check(registration); });
    cache_.start();
  }
  ~Stack() {
    writer_.stop();
    cache_.stop();
    remove_database(path_);
  }
  registry::Api& api() { return api_; }

 private:
  std::filesystem::path path_;
  store::SqliteStore store_;
  store::Writer writer_;
  store::ServiceCache cache_;
  registry::Api api_;
  registry::AddressPolicy policy_;
};

constexpr int kRunsPerDatabase = 4096;
// Pipelined requests answered per input; more only repeats the same paths.
constexpr int kMaxRequestsPerInput = 8;

// What one request's respond callback saw, shared with the callback so that a
// late second call is still counted.
struct Reply {
  std::mutex mutex;
  std::condition_variable done;
  int calls = 0;
  registry::HttpResponse response;
};

void check_response(const registry::HttpResponse& response) {
  check(response.status >= 200 && response.status <= 599);
  const auto body = nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  check(!body.is_discarded() && body.is_object());
  if (response.status >= 400) check(body.contains("error") && body["error"].is_string());
}

void handle(registry::Api& api, registry::HttpRequest request) {
  // Checked at the next request: by then a second call would most likely have come.
  static std::shared_ptr<Reply> previous;
  if (previous) {
    std::lock_guard lock(previous->mutex);
    check(previous->calls == 1);
  }
  auto reply = std::make_shared<Reply>();
  api.handle(request, [reply](registry::HttpResponse response) {
    std::lock_guard lock(reply->mutex);
    if (++reply->calls == 1) reply->response = std::move(response);
    reply->done.notify_all();
  });
  std::unique_lock lock(reply->mutex);
  // Writes are answered from the writer thread; a missing answer is a hang.
  check(reply->done.wait_for(lock, 10s, [&] { return reply->calls > 0; }));
  check_response(reply->response);
  previous = reply;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::filesystem::path path = scratch_database();
  static std::unique_ptr<Stack> stack;
  static int runs = 0;
  if (!stack || ++runs % kRunsPerDatabase == 0) {
    stack.reset();
    stack = std::make_unique<Stack>(path);
  }

  static const registry::HttpServerOptions limits;
  boost::beast::flat_buffer buffer;
  const std::size_t copied =
      boost::asio::buffer_copy(buffer.prepare(size), boost::asio::buffer(data, size));
  buffer.commit(copied);
  // A connection: requests are read one after another from the same bytes, as
  // keep-alive and pipelining deliver them; the end of input is the peer closing.
  for (int request_count = 0; request_count < kMaxRequestsPerInput; ++request_count) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
    parser.body_limit(limits.max_body_bytes);
    boost::beast::error_code ec;
    while (!parser.is_done() && buffer.size() > 0) {
      const std::size_t used = parser.put(buffer.data(), ec);
      buffer.consume(used);
      if (ec == http::error::need_more) {
        ec = {};
        break;  // nothing more will arrive
      }
      if (ec || used == 0) break;
    }
    if (!ec && !parser.is_done() && parser.got_some()) parser.put_eof(ec);
    if (ec || !parser.is_done()) return 0;

    auto& request = parser.get();
    handle(stack->api(),
           registry::HttpRequest{
               std::string(request.method_string()), std::string(request.target()),
               std::string(request[http::field::content_type]), std::move(request.body()),
               std::string(request[http::field::authorization]), "127.0.0.1:40000"});
    if (!request.keep_alive()) return 0;
  }
  return 0;
}
