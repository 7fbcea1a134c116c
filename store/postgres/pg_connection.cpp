#include "store/postgres/pg_connection.h"

#include <memory>

#include <libpq-fe.h>
#include <poll.h>

#include <cerrno>
#include <charconv>

namespace store::postgres {
namespace {

// Waiting for an answer: the server's statement_timeout cancels a slow statement
// first; this margin covers the round trip of that cancellation.
constexpr std::chrono::milliseconds kAnswerMargin{1000};

std::string trimmed(const char* message) {
  std::string text = message ? message : "";
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

bool starts_with(const std::string& text, std::string_view prefix) {
  return text.rfind(prefix, 0) == 0;
}

}  // namespace

std::string describe_failure(const PgError& error) {
  const std::string& state = error.sqlstate();
  const std::string message = error.what();
  // Class 08 is the connection; 57P01..57P03 a server shutting down or starting.
  if (error.connection_lost() || starts_with(state, "08") || starts_with(state, "57P") ||
      state == "53300") {
    return "database unavailable: " + message;
  }
  // A lock or statement timeout, a serialisation failure or deadlock that
  // outlived its retries: someone else holds what this write needs.
  if (state == "55P03" || state == "57014" || state == "40001" || state == "40P01") {
    return "database busy: " + message;
  }
  if (state == "53100") return "database full: " + message;
  if (state == "25006") return "database read-only: " + message;
  // 53xxx: out of memory or another resource; 58xxx: the server's own I/O; XX001:
  // a corrupt data page.
  if (starts_with(state, "53") || starts_with(state, "58") || starts_with(state, "XX")) {
    return "database I/O error: " + message;
  }
  return message;
}

int Result::rows() const {
  return PQntuples(result_.get());
}
bool Result::is_null(int row, int column) const {
  return PQgetisnull(result_.get(), row, column) != 0;
}
std::string_view Result::text(int row, int column) const {
  return {PQgetvalue(result_.get(), row, column),
          static_cast<std::size_t>(PQgetlength(result_.get(), row, column))};
}
std::int64_t Result::int64(int row, int column) const {
  const auto value = text(row, column);
  std::int64_t number = 0;
  const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), number);
  if (error != std::errc() || end != value.data() + value.size()) {
    throw PgError("not an integer: " + std::string(value), "", false);
  }
  return number;
}
double Result::real(int row, int column) const {
  const auto value = text(row, column);
  double number = 0;
  const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), number);
  if (error != std::errc() || end != value.data() + value.size()) {
    throw PgError("not a number: " + std::string(value), "", false);
  }
  return number;
}
std::uint64_t Result::affected_rows() const {
  const char* count = PQcmdTuples(result_.get());
  std::uint64_t value = 0;
  if (count) std::from_chars(count, count + std::char_traits<char>::length(count), value);
  return value;
}

std::optional<std::int64_t> Result::optional_int64(int row, int column) const {
  if (is_null(row, column)) return std::nullopt;
  return int64(row, column);
}
void Result::Clear::operator()(pg_result* result) const {
  PQclear(result);
}

Param param(std::int64_t value) {
  return std::to_string(value);
}
Param param(double value) {
  // The shortest text that reads back as the same double (PostgreSQL 12+ prints
  // it the same way), so a load written and read back compares equal.
  char buffer[32];
  const auto [end, error] = std::to_chars(buffer, buffer + sizeof buffer, value);
  return error == std::errc() ? std::string(buffer, end) : std::to_string(value);
}
Param param(std::string_view value) {
  return std::string(value);
}
Param param(const char* value) {
  return std::string(value);
}
Param text_array(const std::vector<std::string_view>& values) {
  std::string out = "{";
  for (const auto value : values) {
    if (out.size() > 1) out += ',';
    out += '"';
    for (const char c : value) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

Param bigint_array(const std::vector<std::int64_t>& values) {
  std::string out = "{";
  for (const auto value : values) {
    if (out.size() > 1) out += ',';
    out += std::to_string(value);
  }
  return out + "}";
}

Param param(std::optional<double> value) {
  return value ? param(*value) : Param{};
}

std::vector<const char*> ConnectParams::keyword_pointers() const {
  std::vector<const char*> pointers;
  for (const auto& keyword : keywords) pointers.push_back(keyword.c_str());
  pointers.push_back(nullptr);
  return pointers;
}
std::vector<const char*> ConnectParams::value_pointers() const {
  std::vector<const char*> pointers;
  for (const auto& value : values) pointers.push_back(value.c_str());
  pointers.push_back(nullptr);
  return pointers;
}

ConnectParams connect_params(const std::string& url, std::chrono::milliseconds connect_timeout,
                             std::chrono::milliseconds tcp_user_timeout,
                             std::chrono::milliseconds statement_timeout) {
  // libpq counts connect_timeout in whole seconds and treats 1 as 2.
  const auto seconds = std::max<std::int64_t>(2, (connect_timeout.count() + 999) / 1000);
  const auto statement = std::to_string(statement_timeout.count());
  // Keepalives find a peer that vanished while the connection was idle (a
  // LISTEN connection is idle most of the time); tcp_user_timeout one that
  // stopped acknowledging what was sent. lock_timeout matches the statement
  // timeout, so a write waiting for another daemon's lock fails as "busy".
  return {{"dbname", "application_name", "connect_timeout", "keepalives", "keepalives_idle",
           "keepalives_interval", "keepalives_count", "tcp_user_timeout", "options"},
          {url, "discoveryd", std::to_string(seconds), "1", "5", "2", "3",
           std::to_string(tcp_user_timeout.count()),
           "-c statement_timeout=" + statement + " -c lock_timeout=" + statement}};
}

Connection::Connection(const PostgresOptions& options)
    : answer_timeout_(options.statement_timeout + kAnswerMargin) {
  const auto params = connect_params(options.url, options.connect_timeout, options.tcp_user_timeout,
                                     options.statement_timeout);
  const auto keywords = params.keyword_pointers();
  const auto values = params.value_pointers();
  conn_ = PQconnectdbParams(keywords.data(), values.data(), /*expand_dbname=*/1);
  if (!conn_) throw PgError("out of memory for a connection", "", true);
  if (PQstatus(conn_) != CONNECTION_OK) {
    std::string message = trimmed(PQerrorMessage(conn_));
    PQfinish(conn_);
    conn_ = nullptr;
    throw PgError("cannot connect: " + message, "", true);
  }
  // Non-blocking sends: finish_query() flushes with its own deadline.
  PQsetnonblocking(conn_, 1);
}

Connection::~Connection() {
  if (conn_) PQfinish(conn_);
}

bool Connection::usable() const {
  return conn_ && !broken_ && PQstatus(conn_) == CONNECTION_OK;
}

void Connection::fail(std::string what, pg_result* result) {
  std::string sqlstate;
  std::string message = trimmed(PQerrorMessage(conn_));
  if (result) {
    if (const char* state = PQresultErrorField(result, PG_DIAG_SQLSTATE)) sqlstate = state;
    message = trimmed(PQresultErrorMessage(result));
    PQclear(result);
  }
  if (PQstatus(conn_) != CONNECTION_OK) broken_ = true;
  // FATAL errors (a terminated backend, a shutdown) end the session too.
  if (sqlstate.rfind("08", 0) == 0 || sqlstate.rfind("57P", 0) == 0) broken_ = true;
  if (message.empty()) message = "no answer";
  throw PgError(what + ": " + message, sqlstate, broken_);
}

void Connection::time_out() {
  // The server did not answer: the connection's state is unknown, drop it.
  broken_ = true;
  throw PgError(
      "no answer from the server within " + std::to_string(answer_timeout_.count()) + " ms", "",
      true);
}

bool Connection::wait_socket(bool for_write, std::chrono::steady_clock::time_point deadline) {
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd descriptor{PQsocket(conn_), static_cast<short>(for_write ? POLLOUT : POLLIN), 0};
    const int ready = ::poll(&descriptor, 1, static_cast<int>(left.count()));
    if (ready > 0) return true;
    if (ready < 0 && errno != EINTR) return false;
  }
}

Result Connection::finish_query() {
  const auto deadline = std::chrono::steady_clock::now() + answer_timeout_;
  for (int flushed = PQflush(conn_); flushed != 0; flushed = PQflush(conn_)) {
    if (flushed < 0) fail("send");
    if (!wait_socket(true, deadline)) time_out();
  }
  // Owned until handed on: a throw below (a lost connection, a timeout) must
  // not leak a result already received.
  using Owned = std::unique_ptr<pg_result, decltype(&PQclear)>;
  Owned last(nullptr, &PQclear);
  Owned error(nullptr, &PQclear);
  while (true) {
    while (PQisBusy(conn_)) {
      if (!wait_socket(false, deadline)) time_out();
      if (!PQconsumeInput(conn_)) fail("receive");
    }
    Owned result(PQgetResult(conn_), &PQclear);
    if (!result) break;
    const auto status = PQresultStatus(result.get());
    // Keep the first error (a script stops at it) and otherwise the last result.
    if (status == PGRES_FATAL_ERROR || status == PGRES_NONFATAL_ERROR ||
        status == PGRES_BAD_RESPONSE) {
      if (!error) {
        error = std::move(result);
        continue;
      }
    }
    last = std::move(result);
  }
  if (error) fail("query", error.release());
  if (!last) fail("query");
  return Result(last.release());
}

Result Connection::exec(std::string_view sql, const std::vector<Param>& params) {
  if (!usable()) throw PgError("connection lost", "", true);
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const Param& value : params) values.push_back(value ? value->c_str() : nullptr);
  if (params.empty()) {
    const std::string statement(sql);
    if (!PQsendQueryParams(conn_, statement.c_str(), 0, nullptr, nullptr, nullptr, nullptr,
                           /*text results*/ 0)) {
      fail("send");
    }
    return finish_query();
  }
  bool queued = false;
  const std::string name = queue_prepare(sql, static_cast<int>(values.size()), queued);
  if (queued) {
    try {
      finish_query();  // throws if the statement does not parse
    } catch (...) {
      prepared_.erase(std::string(sql));
      throw;
    }
  }
  if (!PQsendQueryPrepared(conn_, name.c_str(), static_cast<int>(values.size()), values.data(),
                           nullptr, nullptr, /*text results*/ 0)) {
    fail("send");
  }
  return finish_query();
}

const std::string& Connection::queue_prepare(std::string_view sql, int params, bool& queued) {
  auto [found, fresh] = prepared_.try_emplace(std::string(sql));
  queued = fresh;
  if (fresh) {
    found->second = "s" + std::to_string(++statements_named_);
    if (!PQsendPrepare(conn_, found->second.c_str(), found->first.c_str(), params, nullptr)) {
      prepared_.erase(found);
      fail("send");
    }
  }
  return found->second;
}

void Connection::exec_script(std::string_view sql) {
  if (!usable()) throw PgError("connection lost", "", true);
  const std::string script(sql);
  if (!PQsendQuery(conn_, script.c_str())) fail("send");
  finish_query();
}

ConnectionPool::ConnectionPool(const PostgresOptions& options, std::size_t max_connections)
    : options_(options), max_connections_(std::max<std::size_t>(1, max_connections)) {}

ConnectionPool::Lease ConnectionPool::acquire() {
  std::unique_lock lock(mutex_);
  released_.wait(lock, [&] { return !idle_.empty() || open_count_ < max_connections_; });
  if (!idle_.empty()) {
    auto connection = std::move(idle_.back());
    idle_.pop_back();
    return Lease(*this, std::move(connection));
  }
  ++open_count_;
  lock.unlock();
  try {
    return Lease(*this, std::make_unique<Connection>(options_));
  } catch (...) {
    lock.lock();
    --open_count_;
    released_.notify_one();
    throw;
  }
}

void ConnectionPool::release(std::unique_ptr<Connection> connection) {
  {
    std::lock_guard lock(mutex_);
    // A broken connection is closed; the next read opens a fresh one.
    if (connection && connection->usable()) {
      idle_.push_back(std::move(connection));
    } else {
      --open_count_;
    }
  }
  released_.notify_one();
}

}  // namespace store::postgres
