// Blocking libpq connections for the store's worker threads (the group-commit
// writer and the read workers), internal to store/postgres/. Blocking is fine
// there, never on an event loop, but never unbounded: every call waits at most
// the statement timeout plus a margin for the answer, and a connection whose
// server does not answer in time is dropped (a SIGSTOPped server still has
// its socket acknowledged by the kernel, so TCP timeouts alone would not fire).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "store/postgres/postgres_store.h"

struct pg_conn;
struct pg_result;

namespace store::postgres {

// A failed libpq call: the server's SQLSTATE ("" when none arrived) and whether
// the connection is gone (then only reconnecting helps).
class PgError : public std::runtime_error {
 public:
  PgError(std::string message, std::string sqlstate, bool connection_lost)
      : std::runtime_error(std::move(message)),
        sqlstate_(std::move(sqlstate)),
        connection_lost_(connection_lost) {}
  const std::string& sqlstate() const { return sqlstate_; }
  bool connection_lost() const { return connection_lost_; }
  // A serialisation failure or deadlock: running the transaction again may work.
  bool retryable() const { return sqlstate_ == "40001" || sqlstate_ == "40P01"; }

 private:
  std::string sqlstate_;
  bool connection_lost_;
};

// The contract's error prefix for a failure ("database unavailable: ", "database
// busy: ", ...) followed by the server's message; other errors (a constraint, a
// trigger) keep the message alone.
std::string describe_failure(const PgError& error);

// A query's rows in text format.
class Result {
 public:
  explicit Result(pg_result* result) : result_(result) {}
  int rows() const;
  bool is_null(int row, int column) const;
  std::string_view text(int row, int column) const;
  std::string string(int row, int column) const { return std::string(text(row, column)); }
  std::int64_t int64(int row, int column) const;
  double real(int row, int column) const;
  std::optional<std::int64_t> optional_int64(int row, int column) const;
  // Rows an INSERT, UPDATE or DELETE touched.
  std::uint64_t affected_rows() const;

 private:
  struct Clear {
    void operator()(pg_result* result) const;
  };
  std::unique_ptr<pg_result, Clear> result_;
};

// Query parameters in text format; nullopt is SQL NULL.
using Param = std::optional<std::string>;
Param param(std::int64_t value);
Param param(double value);
Param param(std::string_view value);
Param param(const char* value);
Param param(std::optional<double> value);
// Array parameters in text format, for statements over many rows at once
// (unnest($1::text[], ...)): every element quoted and escaped.
Param text_array(const std::vector<std::string_view>& values);
Param bigint_array(const std::vector<std::int64_t>& values);

// One statement of a pipeline (Connection::exec_pipeline). `sql` must outlive
// the call (the statements are static text).
struct Statement {
  std::string_view sql;
  std::vector<Param> params;
};

class Connection {
 public:
  // Connects with the store's session settings (application_name, keepalives,
  // tcp_user_timeout, connect_timeout, statement_timeout, lock_timeout); throws
  // PgError (connection_lost) when the server cannot be reached.
  explicit Connection(const PostgresOptions& options);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // One statement with parameters; throws PgError. A statement with parameters
  // is prepared on its first use on this connection and executed by name from
  // then on: the server parses and plans it once, not per call.
  Result exec(std::string_view sql, const std::vector<Param>& params = {});
  // Several statements without parameters (migrations); throws PgError.
  void exec_script(std::string_view sql);
  // The statements in one round trip (libpq's pipeline mode, pg_pipeline.cpp):
  // all are sent, then every result is read, one per statement. Throws PgError
  // for the first that failed; the ones after it did not run (and an open
  // transaction is then aborted: roll it back). Prepared like exec().
  std::vector<Result> exec_pipeline(std::span<const Statement> statements);
  // False once a call found the connection gone or the server did not answer.
  bool usable() const;

 private:
  // Sends the query (already queued by PQsendQuery*) and waits for every result.
  Result finish_query();
  // Sends what libpq buffered, reading whatever the server answers meanwhile so
  // that neither side blocks on a full socket buffer.
  void flush_all(std::chrono::steady_clock::time_point deadline);
  // The next result of a pipeline (null at the end of each statement's).
  pg_result* next_result(std::chrono::steady_clock::time_point deadline);
  [[noreturn]] void time_out();
  // The prepared statement's name for `sql`, queueing its PQsendPrepare when new
  // (pipeline: its result is read before the statement's own).
  const std::string& queue_prepare(std::string_view sql, int params, bool& queued);
  bool wait_socket(bool for_write, std::chrono::steady_clock::time_point deadline);
  [[noreturn]] void fail(std::string what, pg_result* result = nullptr);

  pg_conn* conn_ = nullptr;
  std::unordered_map<std::string, std::string> prepared_;  // statement text -> name
  std::size_t statements_named_ = 0;
  std::chrono::milliseconds answer_timeout_;
  bool broken_ = false;
};

// The read connections: opened on demand up to a cap, kept while usable,
// replaced after a failure, so reads recover by themselves once the server is
// back.
class ConnectionPool {
 public:
  ConnectionPool(const PostgresOptions& options, std::size_t max_connections);

  class Lease {
   public:
    Lease(ConnectionPool& pool, std::unique_ptr<Connection> connection)
        : pool_(&pool), connection_(std::move(connection)) {}
    Lease(Lease&&) noexcept = default;
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
      if (connection_) pool_->release(std::move(connection_));
    }
    Connection& operator*() const { return *connection_; }
    Connection* operator->() const { return connection_.get(); }

   private:
    ConnectionPool* pool_;
    std::unique_ptr<Connection> connection_;
  };

  // Throws PgError when no connection can be opened.
  Lease acquire();

 private:
  void release(std::unique_ptr<Connection> connection);

  const PostgresOptions& options_;
  const std::size_t max_connections_;
  std::mutex mutex_;
  std::condition_variable released_;
  std::vector<std::unique_ptr<Connection>> idle_;
  std::size_t open_count_ = 0;  // idle and leased
};

// libpq's connection keywords and values for these options: the URL first, so
// that the settings after it apply, then the session settings. Shared with
// ChangeNotifications.
struct ConnectParams {
  std::vector<std::string> keywords;
  std::vector<std::string> values;
  std::vector<const char*> keyword_pointers() const;
  std::vector<const char*> value_pointers() const;
};
ConnectParams connect_params(const std::string& url, std::chrono::milliseconds connect_timeout,
                             std::chrono::milliseconds tcp_user_timeout,
                             std::chrono::milliseconds statement_timeout);

}  // namespace store::postgres
