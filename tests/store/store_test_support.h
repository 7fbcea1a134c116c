// Shared by the store tests: a registration builder, a fixed clock and a fixture
// with a database file in a fresh directory.
#pragma once

#include <gtest/gtest.h>

#include <span>
#include <string>

#include "store/sqlite/sqlite_store.h"
#include "tests/support/process.h"

namespace store_test {

inline store::Registration make_registration(std::string service, std::string id,
                                             std::string address = "127.0.0.1",
                                             std::uint16_t port = 8080) {
  store::Registration registration;
  registration.service = std::move(service);
  registration.id = std::move(id);
  registration.address = *store::IpAddress::parse(address);
  registration.port = port;
  return registration;
}

inline const store::TimePoint kNow = store::TimePoint(std::chrono::milliseconds(1'700'000'000'000));

class SqliteStoreTest : public ::testing::Test {
 protected:
  test_support::TempDir dir;
  std::string path = dir.file("registry.db");

  static store::MutationResult apply(store::SqliteStore& db, store::Mutation mutation) {
    return db.apply(std::span(&mutation, 1), kNow)[0];
  }
};

}  // namespace store_test
