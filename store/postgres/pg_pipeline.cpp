// Connection::exec_pipeline: several statements in one round trip, with
// libpq's pipeline mode (PostgreSQL 14+). The group-commit writer sends a
// whole batch this way: without it, every statement costs a wake-up, a send
// and a receive on both sides, and the writer and the server take turns
// instead of working at the same time.
#include <libpq-fe.h>
#include <poll.h>

#include <cerrno>
#include <memory>

#include "store/postgres/pg_connection.h"

namespace store::postgres {
namespace {

using Owned = std::unique_ptr<pg_result, decltype(&PQclear)>;

bool is_error(ExecStatusType status) {
  return status == PGRES_FATAL_ERROR || status == PGRES_NONFATAL_ERROR ||
         status == PGRES_BAD_RESPONSE;
}

// One result to read, in the order sent: a statement's prepare (its text, to
// forget it if it failed) or the statement itself.
struct Expected {
  std::optional<std::string> prepare;
};

}  // namespace

void Connection::flush_all(std::chrono::steady_clock::time_point deadline) {
  while (true) {
    const int flushed = PQflush(conn_);
    if (flushed == 0) return;
    if (flushed < 0) fail("send");
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) time_out();
    // The server may be blocked writing answers we have not read: read them
    // while waiting to send more.
    pollfd descriptor{PQsocket(conn_), POLLIN | POLLOUT, 0};
    const int ready = ::poll(&descriptor, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno != EINTR) fail("send");
    if (ready > 0 && (descriptor.revents & POLLIN) && !PQconsumeInput(conn_)) fail("receive");
  }
}

pg_result* Connection::next_result(std::chrono::steady_clock::time_point deadline) {
  while (PQisBusy(conn_)) {
    if (!wait_socket(false, deadline)) time_out();
    if (!PQconsumeInput(conn_)) fail("receive");
  }
  return PQgetResult(conn_);
}

std::vector<Result> Connection::exec_pipeline(std::span<const Statement> statements) {
  if (!usable()) throw PgError("connection lost", "", true);
  if (statements.empty()) return {};
  const auto deadline = std::chrono::steady_clock::now() + answer_timeout_;
  std::vector<Result> results;
  results.reserve(statements.size());
  Owned error(nullptr, &PQclear);
  try {
    if (!PQenterPipelineMode(conn_)) fail("pipeline");
    std::vector<Expected> expected;
    expected.reserve(statements.size() * 2);
    std::vector<const char*> values;
    for (const Statement& statement : statements) {
      values.clear();
      for (const Param& value : statement.params)
        values.push_back(value ? value->c_str() : nullptr);
      bool queued = false;
      const std::string name =
          queue_prepare(statement.sql, static_cast<int>(values.size()), queued);
      if (queued) expected.push_back({std::string(statement.sql)});
      if (!PQsendQueryPrepared(conn_, name.c_str(), static_cast<int>(values.size()), values.data(),
                               nullptr, nullptr, /*text results*/ 0)) {
        fail("send");
      }
      expected.push_back({});
    }
    if (!PQpipelineSync(conn_)) fail("send");
    flush_all(deadline);
    for (const Expected& next : expected) {
      Owned result(next_result(deadline), &PQclear);
      if (!result) fail("pipeline: a result is missing");
      // Each statement's results end with a null one.
      if (Owned end(next_result(deadline), &PQclear); end) fail("pipeline: an extra result");
      const auto status = PQresultStatus(result.get());
      const bool ran = !is_error(status) && status != PGRES_PIPELINE_ABORTED;
      if (!ran && next.prepare) prepared_.erase(*next.prepare);
      if (is_error(status) && !error) error = std::move(result);
      if (ran && !next.prepare) results.emplace_back(result.release());
    }
    Owned sync(next_result(deadline), &PQclear);
    if (!sync || PQresultStatus(sync.get()) != PGRES_PIPELINE_SYNC) fail("pipeline: no sync");
    if (!PQexitPipelineMode(conn_)) fail("pipeline");
  } catch (const PgError&) {
    // Results may be left unread: the connection's state is unknown.
    broken_ = true;
    throw;
  }
  if (error) fail("query", error.release());
  return results;
}

}  // namespace store::postgres
