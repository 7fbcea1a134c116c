// The PostgreSQL store tests' fixture: one real server per test process
// (started once, in SetUpTestSuite: initdb and start cost about a second), a
// fresh database per test, so tests never see each other's rows.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <span>
#include <string>

#include "store/postgres/postgres_store.h"
#include "tests/store/store_test_support.h"
#include "tests/support/postgres_server.h"

namespace postgres_test {

using store_test::kNow;
using store_test::make_registration;

class PostgresStoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    try {
      server_ = std::make_unique<test_support::PostgresServer>();
      started_ = server_->start();
    } catch (const std::exception& error) {
      setup_error_ = error.what();
    }
  }
  static void TearDownTestSuite() { server_.reset(); }

  void SetUp() override {
    ASSERT_TRUE(server_) << setup_error_;
    // A test that killed or stopped the server leaves it to the next one running.
    if (!server_->accepts()) started_ = server_->restart();
    ASSERT_TRUE(started_) << server_->log();
    database_ = "t_" + std::to_string(++databases_);
    server_->psql("CREATE DATABASE " + database_, "postgres");
    url_ = server_->url(database_);
  }

  store::PostgresOptions options() const {
    store::PostgresOptions options;
    options.url = url_;
    return options;
  }
  // psql on this test's database.
  std::string sql(const std::string& statement) const {
    return server_->psql(statement, database_);
  }

  static store::MutationResult apply(store::PostgresStore& db, store::Mutation mutation,
                                     store::TimePoint now = kNow) {
    return db.apply(std::span(&mutation, 1), now)[0];
  }

  static inline std::unique_ptr<test_support::PostgresServer> server_;
  static inline bool started_ = false;
  static inline std::string setup_error_;
  static inline int databases_ = 0;
  std::string database_;
  std::string url_;
};

}  // namespace postgres_test
